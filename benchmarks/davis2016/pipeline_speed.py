"""Seconds per frame of the whole weight-free CPU pipeline of ``evaluate.py`` on real DAVIS video:
preprocess (opencv tracks + appearance features, not cached: a fresh cache folder), classify,
densify (weight-free), write the PNG masks. Full 854x480 frames.

Prints ``pipeline_s_per_frame_davis`` and the per-stage split, then one JSON line. The J&F of
the sequences timed is printed for information only (two sequences are no benchmark). Target
(issue 5): the 20 DAVIS-2016 val sequences (1376 frames) in <= 30 min, i.e. <= 1.3 s/frame.
Needs ../shared/data (or --davis); prints a skip reason and an empty JSON otherwise.

    python benchmarks/davis2016/pipeline_speed.py [--sequences dog car-shadow] [--ckpt C]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from moseg.config import compose
from moseg.evaluation.run import run

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding DAVIS2016/")
    ap.add_argument("--sequences", nargs="+", default=["dog", "car-shadow"])
    ap.add_argument("--ckpt", default=None, help="classifier checkpoint (default: evaluate's)")
    ap.add_argument("overrides", nargs="*", help="extra evaluate.py overrides")
    a = ap.parse_args()
    if not (a.data / "DAVIS2016" / "JPEGImages").is_dir():
        print(f"skipped: no DAVIS2016 under {a.data}")
        print(json.dumps({}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        over = [
            "bench=davis2016",
            f"paths.data_dir={a.data}",
            f"cache_dir={tmp}/cache",
            f"bench.sequences=[{','.join(a.sequences)}]",
            "wandb.enabled=false",
            "output.overlays=0",
            "progress=false",
            *a.overrides,
        ]
        if a.ckpt:
            over.append(f"ckpt={a.ckpt}")
        cfg = compose("evaluate", over)
        OmegaConf.set_struct(cfg, False)
        cfg.paths.output_dir = f"{tmp}/run"
        res = run(cfg)
    t = res["timing"]
    clf = next(iter(res["pipeline"].values()))["classifier"]
    print(f"classifier {clf}, {t['frames']} frames of {', '.join(a.sequences)}")
    for k, v in t["stage_s_per_frame"].items():
        print(f"  {k:<12} {v:.3f} s/frame")
    wall = t["wall_seconds_this_run"] / t["frames"]
    print(f"  wall time of the run (stages, scoring, set-up): {wall:.3f} s/frame")
    print(f"pipeline_s_per_frame_davis {t['s_per_frame']:.3f}  (J&F {res['overall']['JF']:.3f})")
    print(json.dumps({"pipeline_s_per_frame_davis": t["s_per_frame"]}))


if __name__ == "__main__":
    main()
