"""What checking a contract file on load costs: ``load_sequence(validate=True)`` (the default,
issue 21) against ``validate=False``, side by side on one file, and that cost as a share of one
DAVIS16-Moving sequence through the whole CPU pipeline (davis_moving.py's recorded seconds per
frame).

    python benchmarks/perf/load_validate.py [--tracks 10000] [--frames 80] [--repeats 7]

Last line: {"load_validate_ratio": ..., ...}. Run without arguments (as ``make bench`` runs it),
it also stores its figures in ``docs/figures/load_validate.json`` (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from moseg.io import Sequence, load_sequence, write_sequence

RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json
FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"


def clip(n: int, t: int, h: int = 480, w: int = 854, c: int = 48) -> Sequence:
    """A DAVIS-sized sequence: ``n`` tracks over ``t`` frames, appearance features, depth."""
    rng = np.random.default_rng(0)
    q = np.sort(rng.integers(0, t, n)).astype(np.int32)
    xy = rng.uniform([0, 0], [w - 1, h - 1], (n, t, 2)).astype(np.float32)
    vis = rng.random((n, t)) > 0.2
    vis[np.arange(n), q] = True
    return Sequence(
        name="bench",
        tracks=xy,
        visibility=vis,
        confidence=rng.random((n, t)).astype(np.float16),
        query_frame=q,
        label=np.zeros(n, np.int8),
        features=rng.standard_normal((n, c)).astype(np.float16),
        height=h,
        width=w,
    )


def timed(path: Path, validate: bool) -> float:
    t0 = time.perf_counter()
    load_sequence(path, validate=validate)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=10000)
    ap.add_argument("--frames", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_sequence(Path(tmp) / "bench.h5", clip(args.tracks, args.frames))
        timed(path, True)  # warm the page cache
        on, off = [], []
        for _ in range(args.repeats):  # interleaved, so load on the machine hits both alike
            off.append(timed(path, False))
            on.append(timed(path, True))
    t_on, t_off = statistics.median(on), statistics.median(off)
    figures = {
        "load_validate_s": round(t_on, 4),
        "load_no_validate_s": round(t_off, 4),
        "load_validate_ratio": round(t_on / t_off, 3),
        "load_validate_tracks": args.tracks,
        "load_validate_frames": args.frames,
    }
    davis = FIGURES / "davis_moving.json"
    if davis.is_file():  # the whole pipeline's time for as many frames, from its own record
        spf = json.loads(davis.read_text()).get("figures", {}).get("pipeline_s_per_frame_davis")
        if spf:
            share = (t_on - t_off) / (float(spf) * args.frames)
            figures["load_validate_share_of_pipeline"] = round(share, 5)
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
