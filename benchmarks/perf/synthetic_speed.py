"""Synthetic scene generation speed: clips per second written to disk, every core used.

Target (issue 2): 200 clips of 24 frames at 256x256 with about 2000 tracks in at most 120 s on
the 2-core machine. Uses the generator settings of moseg/conf/dataset/synthetic.yaml
(realistic tracker on, no RGB frames stored, as for training). Process start-up is included.

    python benchmarks/perf/synthetic_speed.py [--clips 200] [--workers N]

Last line: {"synthetic_clips_per_s": ..., ...}

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/synthetic_speed.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import sys
import tempfile
import time
from pathlib import Path

from moseg.config import compose
from moseg.datasets.synthetic import SynthConfig, generate_split

RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    dataset = compose("prepare").dataset
    from omegaconf import OmegaConf

    cfg = SynthConfig.from_dict(OmegaConf.to_container(dataset.generator, resolve=True))
    workers = args.workers or len(os.sched_getaffinity(0))
    root = tempfile.mkdtemp(prefix="moseg-synth-bench-")
    try:
        t0 = time.perf_counter()
        stats = generate_split(
            root, "bench", args.clips, cfg, seed=123, workers=workers, progress=False
        )
        dt = time.perf_counter() - t0
    finally:
        shutil.rmtree(root)
    rate = args.clips / dt
    print(
        f"{args.clips} clips ({cfg.num_frames} frames, {cfg.height}x{cfg.width}, "
        f"{stats['tracks'] / args.clips:.0f} tracks each) in {dt:.1f} s with {workers} "
        f"processes: {rate:.2f} clips/s; 200 clips would take {200 / rate:.0f} s (target 120 s)"
    )
    figures = {
        "synthetic_clips_per_s": round(rate, 3),
        "synthetic_200_clips_s": round(200 / rate, 1),
        "synthetic_workers": workers,
    }
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
