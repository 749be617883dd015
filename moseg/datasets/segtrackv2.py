"""SegTrackv2: ``JPEGImages/<seq>/*`` and ``GroundTruth/<seq>/`` holding one mask per frame (one
object) or one sub-folder per object (``1/``, ``2/``, ...), merged into object ids and paired with
the frames by sorted order; the optional ``ImageSets/all.txt`` lists the sequences.

The layout's folders (:func:`segtrackv2_sequence_dirs`, :func:`segtrackv2_check_root`,
:func:`segtrackv2_list_sequences`) and its ground truth (:func:`segtrackv2_ground_truth`). The
converter, which picks the reader by ``dataset.layout``, is :mod:`moseg.datasets.davis`
(``dataset=segtrackv2``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moseg.datasets.common import (
    GroundTruth,
    InputError,
    LayoutOptions,
    check_mask_size,
    listed_sequences,
    require_dir,
    subdirs,
)
from moseg.datasets.raw import read_label_image
from moseg.prep.frames import IMAGE_EXTS, FrameError, list_frame_files


# ----------------------------------------------------------------------------------------------
# Where things are
# ----------------------------------------------------------------------------------------------
def segtrackv2_sequence_dirs(
    root: Path, seq: str, split: str | None, opts: LayoutOptions
) -> tuple[Path, Path]:
    """(frame folder, ground-truth folder) of ``seq``; SegTrackv2 has one set (``split`` is
    ignored)."""
    return root / "JPEGImages" / seq, root / "GroundTruth" / seq


def segtrackv2_check_root(root: Path, opts: LayoutOptions, splits: list[str] | None) -> None:
    """:class:`InputError` naming the folder when ``root`` lacks ``JPEGImages/`` (with sequence
    folders) or ``GroundTruth/``."""
    require_dir(root / "JPEGImages", "frame folder of a SegTrackv2 tree")
    require_dir(root / "GroundTruth", "ground-truth folder of a SegTrackv2 tree")
    if not subdirs(root / "JPEGImages"):
        raise InputError(f"{root / 'JPEGImages'}: holds no sequence folders")


def segtrackv2_list_sequences(root: Path, split: str | None, opts: LayoutOptions) -> list[str]:
    """The sequences of ``ImageSets/all.txt`` (a leading ``*`` is dropped) that have frames, or
    every frame folder without that list; ``split`` is ignored."""
    present = subdirs(root / "JPEGImages")
    lst = root / "ImageSets" / "all.txt"
    if not lst.is_file():
        return present
    return listed_sequences(lst, present)


# ----------------------------------------------------------------------------------------------
# Ground truth
# ----------------------------------------------------------------------------------------------
def _binary(path: Path) -> np.ndarray:
    """A mask file -> ``[H, W]`` bool: above half of the file's largest value (0/1 or 0/255)."""
    a = read_label_image(path)
    if a.ndim == 3:
        a = a.max(axis=2)
    top = int(a.max())
    return a > top / 2 if top > 0 else np.zeros(a.shape, bool)


def segtrackv2_ground_truth(
    files: list[Path], kept: np.ndarray, gt_dir: Path, opts: LayoutOptions, size: tuple[int, int]
) -> GroundTruth:
    """Masks of the ``kept`` frames (indices into ``files``) from ``gt_dir``, at ``size`` (H, W):
    object folders become ids 1, 2, ... (a later one covers an earlier one); every frame is
    annotated."""
    if not gt_dir.is_dir():
        raise FrameError(f"{gt_dir}: ground-truth folder does not exist")
    subs = [gt_dir / s for s in subdirs(gt_dir)]
    folders = subs or [gt_dir]
    notes: list[str] = []
    per_object: list[list[Path]] = []
    for folder in folders:
        masks, _ = list_frame_files(folder)
        if len(masks) != len(files):
            raise FrameError(
                f"{folder}: {len(masks)} masks for {len(files)} frames in {files[0].parent}; "
                "masks are paired with frames by sorted order, so the counts must agree"
            )
        if [m.stem for m in masks] != [f.stem for f in files]:
            notes.append(f"{folder.name}: mask names differ from frame names; paired by order")
        per_object.append(masks)
    if subs:
        loose = [p for p in gt_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
        if loose:
            notes.append(f"ignored {len(loose)} mask files next to the object folders")
    out = np.zeros((len(kept), *size), np.uint8)
    overlap = 0
    used: list[str | None] = []
    for t, i in enumerate(kept):
        for k, masks in enumerate(per_object, 1):
            p = masks[int(i)]
            m = _binary(p)
            check_mask_size(p, m.shape, size, str(files[int(i)]))
            overlap += int((m & (out[t] > 0)).sum())
            out[t][m] = k  # a later object covers an earlier one
        used.append("|".join(str(m[int(i)]) for m in per_object))
    if overlap:
        notes.append(f"{overlap} pixels belong to several objects; the later folder wins")
    return GroundTruth(
        masks=out,
        annotated=np.ones(len(kept), bool),
        files=used,
        info={
            "mask_dir": str(gt_dir),
            "objects": [f.name for f in folders] if subs else ["1 (single folder)"],
            "object_ids": list(range(1, len(folders) + 1)),
            "annotated_frames": len(kept),
            "notes": notes,
        },
    )
