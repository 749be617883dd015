"""Any video into the contract: mp4/mov/avi/... files or folders of frames (any image format and
naming, natural sort), with the configured tracker, depth and features. Tracks get label -1
(unknown): there is no ground truth. Used by ``moseg preprocess`` and by the benchmarks.

    python -m data_prep.video dataset.inputs=[clip.mp4,frames_dir] dataset.out=data/video
    python -m data_prep.video dataset.raw=folder_of_videos dataset.frames.interval=2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from moseg.config import to_plain
from moseg.datasets.common import (
    InputError,
    frame_settings,
    main,
    prep_config,
    select_sequences,
    sequence_jobs,
)
from moseg.io.contract import Sequence
from moseg.prep.frames import IMAGE_EXTS, FrameSpec, is_video, read_frames
from moseg.prep.jobs import Job
from moseg.prep.pipeline import preprocess

VERSION = 1


def find_inputs(root: str | Path) -> list[Path]:
    """Videos in ``root`` and its sub-folders that hold images (one sequence each), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    found = []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        is_frames = p.is_dir() and any(c.suffix.lower() in IMAGE_EXTS for c in p.iterdir())
        if is_frames or (p.is_file() and is_video(p)):
            found.append(p)
    if not found and any(c.suffix.lower() in IMAGE_EXTS for c in root.iterdir()):
        found.append(root)  # the folder itself is a frame folder
    if not found:
        raise InputError(f"{root}: no video files and no folders of frames in it")
    return found


def sequence_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def make_jobs(cfg: DictConfig) -> list[Job]:
    d = cfg.dataset
    inputs = [Path(p) for p in (to_plain(d.get("inputs")) or [])]
    if d.get("raw"):
        inputs += find_inputs(d.raw)
    if not inputs:
        raise InputError("nothing to preprocess: set dataset.inputs=[...] or dataset.raw=DIR")
    for p in inputs:
        if not p.exists():
            raise InputError(f"{p}: does not exist")
        if p.is_file() and not is_video(p):
            raise InputError(
                f"{p}: not a video file (by its extension); give a video or a folder of frames"
            )
    names = [sequence_name(p) for p in inputs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"two inputs would both be written as {dup}: rename one of them")
    wanted = to_plain(d.get("sequences"))
    keep = set(select_sequences(names, wanted, "dataset.inputs"))
    common = {
        "frames": frame_settings(d),  # fail early on bad settings
        "fps": float(d.get("fps", 24.0)),
        "prep": prep_config(cfg),
    }
    # without dataset.split the files go straight into dataset.out, as split "test"
    split = d.get("split")
    found = [
        (str(split or ""), name, {"path": str(p.resolve()), "split": split or "test"})
        for p, name in zip(inputs, names, strict=True)
        if name in keep
    ]
    return sequence_jobs(
        found, d.out, "moseg.datasets.video:convert", common, VERSION, qualified=False
    )


def convert(
    path: str, name: str, split: str, frames: dict[str, Any], fps: float, prep: dict[str, Any]
) -> Sequence:
    video = read_frames(path, FrameSpec.from_dict(frames), fps=fps)
    return preprocess(video, prep, name=name, source="video", split=split)


if __name__ == "__main__":
    main("video", make_jobs)
