"""Prompted segmentation of DAVIS sequences with one simulated click, through ``moseg.segment``.

For each sequence: one positive click on frame 0 at the ground-truth mask's most interior pixel
(:func:`moseg.segmentation.prompts.interior_point`), the whole ``moseg segment`` run (tracking,
following, writing masks), then J, F and J&F of the masks against the ground truth (MOS
protocol: foreground against foreground, every annotated frame). Prints a per-sequence table
and, as its last line, a JSON object with the figures::

    python benchmarks/segment/davis_click.py                          # DAVIS 2016 val, 20 seqs
    python benchmarks/segment/davis_click.py --sequences dog car-shadow --set chunk.size=48

A rerun with the same ``--out`` resumes (finished sequences are kept); a sequence whose folder
holds a run with other settings (a changed default or ``--set``) is redone, and says so.

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/davis_click.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import runpy
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--bench", default="DAVIS2016", help="folder under --data (DAVIS layout)")
    ap.add_argument("--sequences", nargs="*", help="default: every sequence with masks")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "segment-davis-click")
    ap.add_argument("--set", action="append", default=[], help="key=value of the segment config")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import moseg
    from moseg.inference.masks import read_mask_png
    from moseg.metrics import evaluate_sequence
    from moseg.prep.frames import list_frame_files
    from moseg.segmentation.prompts import interior_point
    from moseg.segmentation.run import STATE_DIR, SegmentError

    root = args.data / args.bench
    frames_root, gt_root = root / "JPEGImages" / "480p", root / "Annotations" / "480p"
    if not gt_root.is_dir():
        print(f"no DAVIS data at {root}: nothing measured")
        print(json.dumps({}))
        return 0
    seqs = args.sequences or sorted(p.name for p in gt_root.iterdir() if p.is_dir())
    rows, frames_total, seconds = [], 0, 0.0
    print(f"{'sequence':<20}{'J':>7}{'F':>7}{'J&F':>7}{'s/frame':>9}  click (x, y)")
    for s in seqs:
        files, _ = list_frame_files(gt_root / s)
        gt = np.stack([read_mask_png(f) > 0 for f in files]).astype(np.uint8)
        x, y = interior_point(gt[0])
        t0 = time.perf_counter()
        kw = dict(points=[(x, y)], overrides=args.set, progress=False)
        try:
            res = moseg.segment(frames_root / s, args.out / s, **kw)
        except SegmentError:
            # only a folder holding an earlier moseg segmentation (other settings) is redone;
            # anything else in the way is the user's to move
            if not (args.out / s / STATE_DIR / "state.json").is_file():
                raise
            print(f"{s}: {args.out / s} holds a run with other settings; redoing it", flush=True)
            res = moseg.segment(frames_root / s, args.out / s, overwrite=True, **kw)
        dt = time.perf_counter() - t0
        # masks by frame name, as the official evaluator matches them
        pred = np.stack([res.labels(f.stem) > 0 for f in files]).astype(np.uint8)
        sc = evaluate_sequence(gt, pred, "mos", name=s)
        spent = sum(res.info["seconds"].values())  # computed now or when first run (resumed)
        rows.append((s, float(sc.j.mean), float(sc.f.mean), float(sc.jf)))
        frames_total += len(res)
        seconds += spent
        print(
            f"{s:<20}{sc.j.mean:7.3f}{sc.f.mean:7.3f}{sc.jf:7.3f}{spent / len(res):9.3f}  "
            f"({x:.0f}, {y:.0f})  [{res.method}, {dt:.0f} s wall]",
            flush=True,
        )
    J, F, JF = (float(np.mean([r[i] for r in rows])) for i in (1, 2, 3))
    print(f"{'mean':<20}{J:7.3f}{F:7.3f}{JF:7.3f}{seconds / max(frames_total, 1):9.3f}")
    figures = {
        "davis_click_bench": args.bench,
        "davis_click_sequences": len(rows),
        "davis_click_j": round(J, 6),
        "davis_click_f": round(F, 6),
        "davis_click_jf": round(JF, 6),
        "davis_click_s_per_frame": round(seconds / max(frames_total, 1), 4),
        "davis_click_by_sequence": {
            r[0]: {"J": round(r[1], 6), "F": round(r[2], 6), "JF": round(r[3], 6)} for r in rows
        },
    }
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
