"""Peak memory of ``moseg segment`` against video length: chunked processing keeps it flat.

Renders a clip (a textured disc crossing a panning textured background, made one frame at a
time) of ``--short`` and ``--long`` frames as mp4, segments each in its own process and reads
the process's peak resident memory. Three runs: short and long with ``chunk.size=--chunk``, and
the long one in a single chunk (what memory would be without streaming). Last line: JSON.

    python benchmarks/segment/stream_memory.py [--short 96] [--long 384] [--chunk 48]

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/stream_memory.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

CHILD = """
import resource, sys
from moseg.cli import main
rc = main(sys.argv[1:])
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(rc)
"""

RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def frames(n: int, h: int = 240, w: int = 320, seed: int = 0):
    """``n`` RGB frames, one at a time (the long clip is never held in memory here either)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 10 + 4, (w + n) // 10 + 4, 3)).astype(np.float32)
    bg = cv2.resize(
        small, (small.shape[1] * 10, small.shape[0] * 10), interpolation=cv2.INTER_CUBIC
    )
    bg = np.clip(bg + rng.normal(0, 15, bg.shape), 0, 255).astype(np.uint8)
    disc = np.clip(rng.normal(150, 50, (80, 80, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for t in range(n):
        img = bg[10 : 10 + h, t : t + w].copy()  # 1 px/frame pan
        cx = int((40 + 7 * t) % (w + 80)) - 40
        inside = (xx - cx) ** 2 + (yy - h // 2) ** 2 <= 35**2
        img[inside] = disc[(yy[inside] - h // 2 + 40) % 80, (xx[inside] - cx + 40) % 80]
        yield img


def run(video: Path, out: Path, chunk: int) -> tuple[float, float]:
    cmd = [sys.executable, "-c", CHILD, "segment", str(video), "--out", str(out), "--no-overlay"]
    cmd += [f"chunk.size={chunk}", "chunk.overlap=8", "progress=false"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"segment failed on {video} (exit {proc.returncode})")
    kb = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("PEAK_KB")]
    return int(kb[0]) / 1024.0, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", type=int, default=96)
    ap.add_argument("--long", type=int, default=384)
    ap.add_argument("--chunk", type=int, default=48)
    args = ap.parse_args()
    from moseg.viz import write_video

    fig = {}
    with tempfile.TemporaryDirectory(prefix="moseg-stream-") as tmp:
        tmp = Path(tmp)
        for n in (args.short, args.long):
            write_video(tmp / f"clip{n}.mp4", frames(n), fps=24.0, size=(240, 320))
        runs = [
            ("short_chunked", args.short, args.chunk),
            ("long_chunked", args.long, args.chunk),
            ("long_one_chunk", args.long, args.long),
        ]
        for key, n, chunk in runs:
            mb, wall = run(tmp / f"clip{n}.mp4", tmp / key, chunk)
            fig[f"segment_peak_rss_mb_{key}"] = round(mb, 1)
            print(f"{key:<16} {n:4d} frames, chunk {chunk:4d}: peak {mb:7.1f} MB, {wall:5.1f} s")
    fig["segment_rss_ratio_long_over_short_chunked"] = round(
        fig["segment_peak_rss_mb_long_chunked"] / fig["segment_peak_rss_mb_short_chunked"], 3
    )
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], fig)
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
