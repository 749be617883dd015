"""The ``moseg`` command line: ``moseg validate FILE...``, ``moseg info FILE``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from moseg.io import LABEL_MOVING, LABEL_UNKNOWN, SequenceFile, list_sequences, validate


def _expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = list_sequences(p)
            if not found:
                print(f"{p}: folder holds no .h5 file", file=sys.stderr)
            out += found
        else:
            out.append(p)
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    files = _expand(args.files)
    n_bad = 0
    for path in files:
        problems = validate(path)
        if problems:
            n_bad += 1
            for p in problems:
                print(p, file=sys.stderr)
        elif not args.quiet:
            print(f"{path}: ok")
    total = len(files)
    print(f"{total - n_bad} of {total} files valid", file=sys.stderr if n_bad else sys.stdout)
    return 1 if n_bad or total == 0 else 0


def cmd_info(args: argparse.Namespace) -> int:
    for path in _expand(args.files):
        with SequenceFile(path) as f:
            m = f.meta
            label = f.read("label")
            vis = f.read("visibility")
            info = {
                "file": str(path),
                "name": m.name,
                "source": m.source,
                "split": m.split,
                "frames": m.num_frames,
                "size": [m.height, m.width],
                "fps": m.fps,
                "tracks": m.num_tracks,
                "moving": int((label == LABEL_MOVING).sum()),
                "unknown": int((label == LABEL_UNKNOWN).sum()),
                "visible_fraction": round(float(np.mean(vis)), 4) if vis.size else 0.0,
                "fields": list(m.fields),
                "provenance": m.provenance,
            }
        print(json.dumps(info, indent=None if args.compact else 2))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from moseg.training.compare import find_runs, plot, table

    try:
        runs = find_runs([Path(r) for r in args.roots])
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not runs:
        print(
            f"error: no run folders (with summary.json) under {' '.join(args.roots)}",
            file=sys.stderr,
        )
        return 1
    metrics = args.metric or ["val/track_ap", "val/roc_auc", "val/iou70"]
    print(table(runs, metrics, sort_by=metrics[0]))
    if args.plot:
        print(f"plot: {plot(runs, metrics[0], Path(args.plot))}")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    """Videos / frame folders -> contract files, through conf/prepare.yaml with dataset=video."""
    from omegaconf import OmegaConf

    from data_prep.common import InputError, run_prepare
    from data_prep.video import make_jobs
    from moseg.config import compose

    overrides = ["dataset=video", f"workers={args.workers}", *args.overrides]
    if args.overwrite:
        overrides.append("overwrite=true")
    try:
        cfg = compose("prepare", overrides)
    except Exception as e:  # bad override: Hydra's message says which
        print(f"error: {e}", file=sys.stderr)
        return 2
    # paths go in as values, not override syntax (commas, brackets and '=' in names are fine)
    cfg.dataset.inputs = [str(Path(p)) for p in args.inputs]
    cfg.dataset.out = str(args.out)
    OmegaConf.resolve(cfg.dataset)
    try:
        jobs = make_jobs(cfg)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_prepare(cfg, jobs, desc="preprocess")
    for name in report.written + report.skipped:
        print(f"{name}: {Path(args.out) / (name + '.h5')}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(prog="moseg", description="moseg command line tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="check contract files; exit 1 if any is bad")
    v.add_argument("files", nargs="+", help="HDF5 files or folders of them")
    v.add_argument("-q", "--quiet", action="store_true", help="print only problems and the count")
    v.set_defaults(func=cmd_validate)
    i = sub.add_parser("info", help="summary of contract files as JSON")
    i.add_argument("files", nargs="+")
    i.add_argument("--compact", action="store_true", help="one line per file")
    i.set_defaults(func=cmd_info)
    r = sub.add_parser("runs", help="compare training runs from their local folders")
    r.add_argument("roots", nargs="*", default=["outputs/train"], help="run folders or parents")
    r.add_argument("--metric", action="append", help="metric column(s); the first sorts")
    r.add_argument("--plot", metavar="PNG", help="also plot the first metric against step")
    r.set_defaults(func=cmd_runs)
    p = sub.add_parser(
        "preprocess",
        help="videos or frame folders -> contract files (tracks, depth, features)",
        description="Track, add depth and features, and write one contract file per input. "
        "Settings as Hydra overrides of conf/prepare.yaml, e.g. tracker=opencv "
        "tracker.grid_px=12 dataset.frames.interval=2 dataset.frames.longest_side=640 "
        "features=dinov2 depth=depth_anything_v2.",
    )
    p.add_argument("inputs", nargs="+", help="video files (mp4, mov, avi, ...) or frame folders")
    p.add_argument("--out", required=True, type=Path, help="output folder (<out>/<name>.h5)")
    p.add_argument("--workers", type=int, default=1, help="videos processed in parallel")
    p.add_argument("--overwrite", action="store_true", help="redo finished outputs")
    p.add_argument("overrides", nargs="*", default=[], help="key=value config overrides")
    p.set_defaults(func=cmd_preprocess)
    args, extra = ap.parse_known_args(argv)
    if getattr(args, "func", None) is cmd_preprocess:
        # overrides look like key=value; argparse cannot tell them from inputs, so split here
        items = [*args.inputs, *args.overrides, *extra]
        args.inputs = [a for a in items if "=" not in a or Path(a).exists()]
        args.overrides = [a for a in items if a not in args.inputs]
    elif extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
