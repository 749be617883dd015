"""J&F and speed of the whole weight-free CPU pipeline of ``evaluate.py`` on DAVIS16-Moving:
preprocess (opencv tracks + appearance features, not cached: a fresh cache folder), classify
(the shipped checkpoint unless ``--ckpt``), densify (weight-free), write the PNG masks, score
with the official J and F. Full 854x480 frames, the 16 sequences of ``bench=davis2016_moving``.

Prints the per-sequence table, ``davis_moving_jf`` (J&F, in [0, 1]), ``pipeline_s_per_frame_davis``
and the per-stage split, then one JSON line. Targets (issue 6): J&F >= 0.70 in <= 30 min. The
same figures as ``python evaluate.py bench=davis2016_moving paths.data_dir=../shared/data``.
Needs ../shared/data (or --data); prints a skip reason and an empty JSON otherwise.

    python benchmarks/davis2016/davis_moving.py [--sequences dog car-shadow] [--ckpt C]

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/davis_moving.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from moseg.config import compose
from moseg.evaluation.run import run

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding DAVIS2016/")
    ap.add_argument("--sequences", nargs="+", default=None, help="default: all 16")
    ap.add_argument("--ckpt", default=None, help="classifier checkpoint (default: evaluate's)")
    ap.add_argument("overrides", nargs="*", help="extra evaluate.py overrides")
    a = ap.parse_args()
    if not (a.data / "DAVIS2016" / "JPEGImages").is_dir():
        print(f"skipped: no DAVIS2016 under {a.data}")
        print(json.dumps({}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        over = [
            "bench=davis2016_moving",
            f"paths.data_dir={a.data}",
            f"cache_dir={tmp}/cache",
            "wandb.enabled=false",
            "output.overlays=0",
            "progress=false",
            *a.overrides,
        ]
        if a.sequences:
            over.append(f"bench.sequences=[{','.join(a.sequences)}]")
        if a.ckpt:
            over.append(f"ckpt={a.ckpt}")
        cfg = compose("evaluate", over)
        OmegaConf.set_struct(cfg, False)
        cfg.paths.output_dir = f"{tmp}/run"
        res = run(cfg)
    t = res["timing"]
    clf = next(iter(res["pipeline"].values()))["classifier"]
    names = list(res["pipeline"])
    print(f"classifier {clf}, {t['frames']} frames of {len(names)} sequences")
    print(f"{'sequence':<22} {'J':>6} {'F':>6} {'J&F':>6}")
    for m in res["sequences"]:
        print(f"{m['sequence']:<22} {m['J']:6.3f} {m['F']:6.3f} {m['JF']:6.3f}")
    o = res["overall"]
    j, f = o["J"]["mean"], o["F"]["mean"]
    print(f"{'overall (mean)':<22} {j:6.3f} {f:6.3f} {o['JF']:6.3f}")
    for k, v in t["stage_s_per_frame"].items():
        print(f"  {k:<12} {v:.3f} s/frame")
    wall = t["wall_seconds_this_run"] / t["frames"]
    print(f"  wall time of the run (stages, scoring, set-up): {wall:.3f} s/frame")
    minutes = t["wall_seconds_this_run"] / 60
    print(f"davis_moving_jf {o['JF']:.4f}  ({minutes:.1f} min for the run)")
    print(f"pipeline_s_per_frame_davis {t['s_per_frame']:.3f}")
    figures = {
        "davis_moving_jf": round(o["JF"], 6),
        "pipeline_s_per_frame_davis": t["s_per_frame"],
        "davis_moving_minutes": round(minutes, 2),
        "davis_moving_j": round(j, 6),
        "davis_moving_f": round(f, 6),
        "davis_moving_stage_s_per_frame": t["stage_s_per_frame"],
        "davis_moving_frames": t["frames"],
        "davis_moving_by_sequence": {
            m["sequence"]: {k: round(m[k], 6) for k in ("J", "F", "JF")} for m in res["sequences"]
        },
    }
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
