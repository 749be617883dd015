"""Accuracy of the weight-free opencv tracker against the synthetic scenes' exact ground truth.

For each clip (default 256x256, 24 frames, moving camera and objects), the tracker runs on the
rendered frames; every track's query point is then mapped onto the surface under it and projected
exactly into every frame (moseg.datasets.synthetic.ground_truth_tracks). Prints

- ``tracker_median_err_px``: median position error over points visible in the ground truth and
  reported visible by the tracker (TAP-Vid's convention for position accuracy),
- ``tracker_median_err_px_all_gt_visible``: the same over every ground-truth-visible point,
- ``tracker_visibility_acc``: agreement of the visibility flags over all points and frames,
- ``tracker_delta_avg``: TAP-Vid's < delta^x_avg (fraction within 1, 2, 4, 8, 16 px, averaged),

and a JSON line with all of them. Targets (issue 4): median error <= 1.5 px, visibility >= 0.9.

    python benchmarks/prep/tracker_accuracy.py [--clips 8] [--seed 0] [preset=fast ...]

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/tracker_accuracy.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from moseg.config import CONF_DIR
from moseg.datasets.synthetic import SynthConfig, generate_clip, ground_truth_tracks
from moseg.prep.trackers.flow import FlowTracker

RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def evaluate_clip(tracker: FlowTracker, cfg: SynthConfig, seed: int) -> dict[str, np.ndarray]:
    clip = generate_clip(cfg, [seed, 4242], name=f"acc{seed}")
    frames = clip.render.frames
    res = tracker(frames)
    n = np.arange(res.num_tracks)
    gt = ground_truth_tracks(clip.render, res.tracks[n, res.query_frame], res.query_frame)
    err = np.linalg.norm(res.tracks - gt.xy, axis=2)
    return {"err": err, "gt_vis": gt.visible, "vis": res.visibility}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument(
        "overrides",
        nargs="*",
        help="tracker settings over moseg/conf/tracker/opencv.yaml, e.g. preset=fast",
    )
    ap.add_argument("--threads", type=int, default=0, help="OpenCV threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    cfg = SynthConfig(height=args.size, width=args.size, num_frames=args.frames, num_tracks=64)
    tcfg = OmegaConf.merge(
        OmegaConf.load(CONF_DIR / "tracker" / "opencv.yaml"),
        OmegaConf.from_dotlist(args.overrides),
    )
    tracker = instantiate(tcfg, progress=False)
    errs_both, errs_gt, agree, total, deltas = [], [], 0, 0, []
    t0 = time.perf_counter()
    for i in range(args.clips):
        r = evaluate_clip(tracker, cfg, args.seed + i)
        both = r["gt_vis"] & r["vis"]
        errs_both.append(r["err"][both])
        errs_gt.append(r["err"][r["gt_vis"]])
        agree += int((r["gt_vis"] == r["vis"]).sum())
        total += r["vis"].size
        e = r["err"][r["gt_vis"]]
        deltas.append([(e < d).mean() for d in (1, 2, 4, 8, 16)])
    secs = time.perf_counter() - t0
    out = {
        "tracker_median_err_px": round(float(np.median(np.concatenate(errs_both))), 3),
        "tracker_median_err_px_all_gt_visible": round(float(np.median(np.concatenate(errs_gt))), 3),
        "tracker_visibility_acc": round(agree / total, 4),
        "tracker_delta_avg": round(float(np.mean(deltas)), 4),
        "tracker_clips": args.clips,
        "tracker_clip_size": args.size,
        "tracker_clip_frames": args.frames,
        "tracker_seconds_per_clip": round(secs / args.clips, 2),
    }
    for k, v in out.items():
        print(f"{k:40s} {v}")
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
