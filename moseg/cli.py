"""The ``moseg`` command line: ``validate``, ``info``, ``runs``, ``preprocess``, ``segment`` and
``import-release``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from moseg.io import (
    LABEL_MOVING,
    LABEL_UNKNOWN,
    ContractError,
    SequenceFile,
    list_sequences,
    validate,
)
from moseg.utils.paths import check_out_folder


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
    bad = 0
    for path in _expand(args.files):
        try:
            info = _info(path)
        except (ContractError, FileNotFoundError, KeyError, OSError, ValueError) as e:
            bad += 1
            why = f"missing {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
            print(
                f"error: {path}: not a readable contract file ({why}); `moseg validate "
                f"{path}` lists every problem",
                file=sys.stderr,
            )
            continue
        print(json.dumps(info, indent=None if args.compact else 2))
    return 2 if bad else 0


def _info(path: Path) -> dict:
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
    return info


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


def _compose(name: str, overrides: list[str]):
    """``moseg/conf/<name>.yaml`` with ``overrides``; None (after printing Hydra's message, which
    names the bad override) when they do not apply."""
    from moseg.config import compose

    try:
        return compose(name, overrides)
    except Exception as e:
        print(f"error: {e}", file=sys.stderr)
        return None


PREPROCESS_RULE = (
    "Each free argument is an input when it is an existing file or folder, and a setting when "
    "Hydra's override parser reads it (key=value, +key=value, ~key, group=option); one that is "
    "both, or neither, is an error naming it. --input PATH is always an input (for a path "
    "that also reads as an override, such as a file called a=b.mp4)."
)


class ArgumentRuleError(ValueError):
    """A free argument of ``moseg preprocess`` that the rule cannot place; names the argument."""


def split_inputs_and_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """``moseg preprocess``'s free arguments -> (inputs, Hydra overrides), each in the given
    order, by :data:`PREPROCESS_RULE`: an input exists as a path, an override is what
    ``hydra.core.override_parser`` parses, and an argument that is both or neither raises
    :class:`ArgumentRuleError`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    inputs: list[str] = []
    overrides: list[str] = []
    for arg in items:
        try:
            parser.parse_overrides([arg])
            is_override = True
        except OverrideParseException:
            is_override = False
        try:
            is_path = Path(arg).exists()
        except OSError:  # e.g. a long override (features.config={...}) is no file name
            is_path = False
        if is_path and is_override:
            raise ArgumentRuleError(
                f"{arg}: is both an existing path and a Hydra override; give it as "
                f"--input {arg} if it is an input, or rename the file if it is a setting"
            )
        if is_path:
            inputs.append(arg)
        elif is_override:
            overrides.append(arg)
        elif arg.startswith("-"):
            raise ArgumentRuleError(f"{arg}: unrecognized option of moseg preprocess")
        else:
            raise ArgumentRuleError(
                f"{arg}: does not exist, and is not a Hydra override (key=value) either"
            )
    return inputs, overrides


def cmd_preprocess(args: argparse.Namespace) -> int:
    """Videos / frame folders -> contract files, through moseg/conf/prepare.yaml with
    dataset=video."""
    from omegaconf import OmegaConf

    from moseg.datasets.common import InputError, run_prepare
    from moseg.datasets.video import make_jobs
    from moseg.utils.atomic import FolderLockedError

    why = check_out_folder(Path(args.out))
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    try:
        inputs, user_overrides = split_inputs_and_overrides(args.items)
    except ArgumentRuleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    inputs += args.input or []
    if not inputs:
        print(
            "error: no input: give video files or frame folders (or --input PATH)",
            file=sys.stderr,
        )
        return 2
    overrides = ["dataset=video", f"workers={args.workers}", *user_overrides]
    if args.overwrite:
        overrides.append("overwrite=true")
    cfg = _compose("prepare", overrides)
    if cfg is None:
        return 2
    # paths go in as values, not override syntax (commas, brackets and '=' in names are fine)
    cfg.dataset.inputs = [str(Path(p)) for p in inputs]
    cfg.dataset.out = str(args.out)
    OmegaConf.resolve(cfg.dataset)
    try:
        jobs = make_jobs(cfg)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        report = run_prepare(cfg, jobs, desc="preprocess")
    except FolderLockedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {_write_error(e)}", file=sys.stderr)
        return 2
    for name in report.written + report.skipped:
        print(f"{name}: {Path(args.out) / (name + '.h5')}")
    return 0 if report.ok else 1


class _PromptAction(argparse.Action):
    """Keeps ``--point``, ``--box`` and ``--object`` in command-line order (``--object`` sets
    the object of the prompts after it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, "prompt_items", None) or []
        items.append((self.dest, values))
        namespace.prompt_items = items


def parse_prompt_items(items: list[tuple[str, str]]) -> list:
    from moseg.segmentation.prompts import check_object_id, parse_box, parse_point

    out, obj = [], 1
    for kind, value in items:
        if kind == "object":
            obj = check_object_id(value)
        elif kind == "point":
            out.append(parse_point(value, obj))
        else:
            out.append(parse_box(value, obj))
    return out


# moseg.segmentation.run's state file (STATE_DIR/state.json), named here so that checking --out
# imports nothing slow
SEGMENT_STATE = Path(".moseg") / "state.json"


def _segment_out_problem(out: Path, overwrite: bool) -> str | None:
    """The checks of ``moseg segment``'s output folder that need no settings (the rest, such
    as a segmentation with other settings, comes once the video is probed)."""
    why = check_out_folder(out)
    if why or overwrite or not out.is_dir() or not any(out.iterdir()):
        return why
    if not (out / SEGMENT_STATE).is_file():
        return (
            f"--out {out}: the folder is not empty and holds no moseg segmentation; choose an "
            "empty or new folder"
        )
    return None


def _write_error(e: OSError) -> str:
    """One line for an output that could not be written (read-only file system, disk full)."""
    return f"cannot write {e.filename or 'the output'}: {e.strerror or e}"


def cmd_segment(args: argparse.Namespace) -> int:
    """A video or frame folder -> DIR/masks/*.png, DIR/overlay.mp4, DIR/objects.json."""
    why = _segment_out_problem(Path(args.out), bool(args.overwrite))
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    from moseg.prep.frames import FrameError
    from moseg.segmentation.prompts import PromptError
    from moseg.segmentation.run import SegmentError, plan, prompt_summary, run

    try:
        prompts = parse_prompt_items(args.prompt_items or [])
    except PromptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    overrides = list(args.overrides)
    if args.overwrite:
        overrides.append("overwrite=true")
    if args.no_overlay:
        overrides.append("output.overlay=false")
    cfg = _compose("segment", overrides)
    if cfg is None:
        return 2
    if args.ckpt:
        cfg.ckpt = str(args.ckpt)
    try:
        job = plan(cfg, args.video, args.out, prompts)
        print(
            f"{args.video}: {len(job.kept)} frames, {job.mode} mode"
            + (f" ({prompt_summary(prompts)})" if prompts else "")
            + f", {job.method} path ({job.why})",
            flush=True,
        )
        info = run(job)
    except (FrameError, PromptError, SegmentError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {_write_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted: finished frames are kept in {args.out}; rerun the same command to "
            "resume",
            file=sys.stderr,
        )
        return 130
    if info.get("classifier"):
        ck = info.get("classifier_checkpoint") or "no checkpoint"
        print(f"classifier: {info['classifier']} ({ck})")
    for o in info["objects"]:
        print(
            f"object {o['id']}: {len(o['frames'])} frames "
            f"({o['frames'][0]}..{o['frames'][-1]}), mean area "
            f"{np.mean(list(o['area'].values())):.0f} px"
        )
    if not info["objects"]:
        print("no object found")
    for n in info.get("notes", []):
        print(f"note: {n}")
    out = Path(args.out)
    print(f"masks: {out / 'masks'}")
    if (out / "overlay.mp4").is_file() and cfg.output.overlay:
        print(f"overlay: {out / 'overlay.mp4'}")
    print(f"objects: {out / 'objects.json'}")
    return 0


def cmd_import_release(args: argparse.Namespace) -> int:
    """A SegAnyMo release checkpoint (moseg.pth) -> a moseg checkpoint, converted once."""
    from moseg.models.checkpoint import CheckpointError, import_release

    flags = {}
    for item in args.flag or []:
        key, sep, val = item.partition("=")
        if not sep or val.lower() not in ("true", "false"):
            print(f"error: --flag takes NAME=true|false, got {item!r}", file=sys.stderr)
            return 2
        flags[key] = val.lower() == "true"
    th = None
    if args.thresholds:
        try:
            th = [float(t) for t in args.thresholds.split(",") if t]
        except ValueError:
            print(f"error: --thresholds takes numbers, got {args.thresholds!r}", file=sys.stderr)
            return 2
    try:
        meta = import_release(args.src, args.dst, flags=flags, thresholds=th, note=args.note)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rel = meta["release"]
    on = [k for k in ("tracks", "depth", "extra_info", "pos_embed", "dino", "time_att") if rel[k]]
    print(
        f"{args.dst}: release architecture ({', '.join(on)}), epoch "
        f"{meta['imported_from']['epoch']}, thresholds {meta['decision']['thresholds']}"
    )
    return 0


PROMPT_OPTIONS = ("--point", "--box")


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--point -5,100`` -> ``--point=-5,100``: argparse would take a value starting with
    ``-`` for an option (a point or box may lie left of or above the frame, which is then
    reported as outside it)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a in PROMPT_OPTIONS and nxt.startswith("-") and not nxt.startswith("--"):
            out.append(f"{a}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


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
        "Settings as Hydra overrides of moseg/conf/prepare.yaml, e.g. tracker=opencv "
        "tracker.grid_px=12 dataset.frames.interval=2 dataset.frames.longest_side=640 "
        "features=dinov2 depth=depth_anything_v2.",
        epilog=PREPROCESS_RULE,
    )
    p.add_argument(
        "items",
        nargs="*",
        metavar="INPUT|OVERRIDE",
        help="video files (mp4, mov, avi, ...) or frame folders, and key=value config overrides",
    )
    p.add_argument(
        "--input",
        action="append",
        metavar="PATH",
        help="a video file or frame folder, never read as an override (repeatable)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (<out>/<name>.h5)")
    p.add_argument("--workers", type=int, default=1, help="videos processed in parallel")
    p.add_argument("--overwrite", action="store_true", help="redo finished outputs")
    p.set_defaults(func=cmd_preprocess)
    g = sub.add_parser(
        "segment",
        help="segment a video: every moving object, or the objects you click or box",
        description="Segment VIDEO (mp4/mov/avi/... or a folder of frames) into DIR: "
        "masks/<frame>.png (indexed, one id per object), overlay.mp4 and objects.json. Without "
        "prompts every moving object is found; with --point/--box only those objects are "
        "followed. The densifier is spelled as in evaluate.py: densify=weight_free (the "
        "default, CPU) or densify=sam2 densify.checkpoint=PATH. A rerun with the same --out "
        "resumes. Settings as key=value overrides of moseg/conf/segment.yaml, e.g. "
        "frames.longest_side=640 chunk.size=64.",
        epilog="Coordinates are pixels of the original video; FRAME is the 0-based frame "
        "number (default 0). Example: moseg segment clip.mp4 --out seg --point 320,180 "
        "--point 300,240:neg --object 2 --box 10,20,110,140@15",
    )
    g.add_argument("video", type=Path, help="video file or folder of frames")
    g.add_argument("--out", required=True, type=Path, help="output folder")
    g.add_argument(
        "--point",
        action=_PromptAction,
        metavar="X,Y[@FRAME][:neg]",
        help="a click on the object (repeatable; :neg = not the object)",
    )
    g.add_argument(
        "--box", action=_PromptAction, metavar="X0,Y0,X1,Y1[@FRAME]", help="a box around the object"
    )
    g.add_argument(
        "--object",
        action=_PromptAction,
        metavar="ID",
        help="object id (1-254) of the prompts that follow (default 1)",
    )
    g.add_argument("--ckpt", help="classifier checkpoint (default: the shipped one)")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier result in --out")
    g.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    g.add_argument("overrides", nargs="*", default=[], help="key=value config overrides")
    g.set_defaults(func=cmd_segment, prompt_items=None)
    m = sub.add_parser(
        "import-release",
        help="convert a SegAnyMo release checkpoint (moseg.pth) into a moseg checkpoint",
        description="Read SRC (the release's {'model_state_dict', 'epoch'} file) and write DST: "
        "the same weights for model=release, with the release's flags, input conventions and "
        "decision thresholds. evaluate.py and moseg segment also take SRC directly (ckpt=SRC).",
    )
    m.add_argument("src", type=Path, help="release checkpoint (moseg.pth)")
    m.add_argument("dst", type=Path, help="moseg checkpoint to write")
    m.add_argument(
        "--flag",
        action="append",
        metavar="NAME=true|false",
        help="a release constructor flag, when it was trained with other flags than released "
        "(tracks, depth, extra_info, pos_embed, dino, dino_later, dino_woatt, time_att)",
    )
    m.add_argument("--thresholds", help="decision thresholds, descending, comma-separated")
    m.add_argument("--note", help="free text stored with the checkpoint")
    m.set_defaults(func=cmd_import_release)
    args, extra = ap.parse_known_args(_join_negative_values(sys.argv[1:] if argv is None else argv))
    if getattr(args, "func", None) is cmd_preprocess:
        # free arguments after an option land in ``extra``; cmd_preprocess places them all
        args.items = [*args.items, *extra]
    elif getattr(args, "func", None) is cmd_segment and extra:
        bad = [a for a in extra if "=" not in a]
        if bad:
            ap.error(f"unrecognized arguments: {' '.join(bad)}")
        args.overrides = [*args.overrides, *extra]
    elif extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
