"""J&F and speed of the whole weight-free CPU pipeline of ``evaluate.py`` on DAVIS 2016 val and
DAVIS16-Moving: preprocess (opencv tracks + appearance features, not cached: a fresh cache
folder), classify (the shipped checkpoint unless ``--ckpt``), densify (weight-free), write the
PNG masks, score with the official J and F. Full 854x480 frames, the 20 sequences of
``bench=davis2016`` in one run; DAVIS16-Moving is 16 of them (``bench=davis2016_moving``), and a
sequence's score does not depend on which others run with it, so its figures are the mean over
those 16 of the same run.

Prints the per-sequence table, ``davis2016_jf`` and ``davis_moving_jf`` (J&F, in [0, 1]),
``pipeline_s_per_frame_davis`` (all 20 sequences) and the per-stage split, then one JSON line.
Targets (issue 19): J&F >= 0.62 on the 20, >= 0.60 on the 16, <= 0.5 s per frame. The same
figures as ``python evaluate.py bench=davis2016 paths.data_dir=../shared/data``.
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

import numpy as np
from omegaconf import OmegaConf

from moseg.config import compose
from moseg.evaluation.run import run

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding DAVIS2016/")
    ap.add_argument("--sequences", nargs="+", default=None, help="default: all 20")
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
    moving16 = set(compose("evaluate", ["bench=davis2016_moving"]).bench.sequences)
    rows = res["sequences"]
    print(f"classifier {clf}, {t['frames']} frames of {len(names)} sequences")
    print(f"{'sequence':<22} {'J':>6} {'F':>6} {'J&F':>6}")
    for m in rows:
        star = "" if m["sequence"] in moving16 else "  (not in DAVIS16-Moving)"
        print(f"{m['sequence']:<22} {m['J']:6.3f} {m['F']:6.3f} {m['JF']:6.3f}{star}")

    def means(sub: list[dict]) -> tuple[float, float, float]:
        j, f = float(np.mean([m["J"] for m in sub])), float(np.mean([m["F"] for m in sub]))
        return j, f, (j + f) / 2

    j20, f20, jf20 = means(rows)
    mov = [m for m in rows if m["sequence"] in moving16]
    j, f, jf = means(mov) if mov else (float("nan"),) * 3
    n20 = len(rows)
    print(f"{'DAVIS 2016 val (mean)':<22} {j20:6.3f} {f20:6.3f} {jf20:6.3f}  ({n20} sequences)")
    print(f"{'DAVIS16-Moving (mean)':<22} {j:6.3f} {f:6.3f} {jf:6.3f}  ({len(mov)} sequences)")
    for k, v in t["stage_s_per_frame"].items():
        print(f"  {k:<12} {v:.3f} s/frame")
    wall = t["wall_seconds_this_run"] / t["frames"]
    print(f"  wall time of the run (stages, scoring, set-up): {wall:.3f} s/frame")
    minutes = t["wall_seconds_this_run"] / 60
    print(f"davis2016_jf {jf20:.4f}  davis_moving_jf {jf:.4f}  ({minutes:.1f} min for the run)")
    print(f"pipeline_s_per_frame_davis {t['s_per_frame']:.3f}")
    by_seq = {m["sequence"]: {k: round(m[k], 6) for k in ("J", "F", "JF")} for m in rows}
    figures = {
        "davis2016_jf": round(jf20, 6),
        "davis2016_j": round(j20, 6),
        "davis2016_f": round(f20, 6),
        "davis_moving_jf": round(jf, 6),
        "pipeline_s_per_frame_davis": t["s_per_frame"],
        "davis_moving_minutes": round(minutes, 2),
        "davis_moving_j": round(j, 6),
        "davis_moving_f": round(f, 6),
        "davis_moving_stage_s_per_frame": t["stage_s_per_frame"],
        "davis_moving_frames": t["frames"],
        "davis_moving_by_sequence": {k: v for k, v in by_seq.items() if k in moving16},
        "davis2016_by_sequence": by_seq,
    }
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
