"""Seconds per frame of ``moseg preprocess`` (opencv tracker, weight-free appearance features, no
depth) on a real DAVIS sequence at its full 854x480, reading JPEGs and writing the contract file.

Prints ``preprocess_s_per_frame_davis`` (the whole command in this process, so without Python's
start-up) and the per-stage split, then one JSON line. Also a tracking-quality figure on real video,
``tracker_mask_consistency_davis``: with the sequence's ground-truth masks, the fraction of visible
track points that are on the object exactly when the track's query point is (a track that stays on
its surface scores 1; one that slides off an object or onto an occluder does not), and the same
over tracks that start on the object only (``..._object``).
Target (issue 4): <= 0.2 s per frame on the 2-core CPU. Needs ../shared/data (or --davis);
prints a skip reason and an empty JSON otherwise.

    python benchmarks/prep/preprocess_speed.py [--sequence blackswan] [--davis DIR]

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/preprocess_speed.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from moseg.cli import main as moseg_main
from moseg.io import SequenceFile

DEFAULT_DAVIS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "DAVIS2016"
RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def mask_consistency(
    tracks: np.ndarray, vis: np.ndarray, query: np.ndarray, masks: np.ndarray
) -> tuple[float, float]:
    """Agreement of each visible point's on-object flag with its query point's (all tracks, and
    tracks starting on the object)."""
    T, H, W = masks.shape
    xi = np.clip(np.rint(tracks[..., 0]), 0, W - 1).astype(np.int64)
    yi = np.clip(np.rint(tracks[..., 1]), 0, H - 1).astype(np.int64)
    on = masks[np.arange(T)[None], yi, xi]
    start = on[np.arange(len(query)), query][:, None]
    agree = on == start
    return float(agree[vis].mean()), float(agree[vis & start].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--davis", type=Path, default=DEFAULT_DAVIS)
    ap.add_argument("--sequence", default="blackswan")
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. tracker.preset=fast")
    args = ap.parse_args()
    folder = args.davis / "JPEGImages" / "480p" / args.sequence
    if not folder.is_dir():
        print(f"skipped: {folder} not found (DAVIS data is not next to the project)")
        print(json.dumps({}))
        return
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        rc = moseg_main(["preprocess", str(folder), "--out", out, *args.overrides])
        secs = time.perf_counter() - t0
        if rc:
            raise SystemExit(f"moseg preprocess failed with exit code {rc}")
        with SequenceFile(Path(out) / f"{args.sequence}.h5") as f:
            T, n = f.meta.num_frames, f.meta.num_tracks
            timing = f.meta.provenance["timing"]
            size = f"{f.meta.width}x{f.meta.height}"
            tracks, vis, q = f.read("tracks"), f.read("visibility"), f.read("query_frame")
    masks = np.stack(
        [
            cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0
            for p in sorted((args.davis / "Annotations" / "480p" / args.sequence).glob("*.png"))
        ]
    )
    consistency, on_object = mask_consistency(tracks, vis, q, masks)
    figures = {
        "preprocess_s_per_frame_davis": round(secs / T, 4),
        "preprocess_sequence": args.sequence,
        "preprocess_frames": T,
        "preprocess_size": size,
        "preprocess_tracks": n,
        **{f"preprocess_{k}_per_frame": round(v / T, 4) for k, v in timing.items()},
        "tracker_mask_consistency_davis": round(consistency, 4),
        "tracker_mask_consistency_davis_object": round(on_object, 4),
    }
    for k, v in figures.items():
        print(f"{k:40s} {v}")
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
