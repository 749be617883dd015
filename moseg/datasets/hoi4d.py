"""HOI4D -> contract files: egocentric RGB videos with 2D motion-segmentation masks.

Raw layout of the public release (docs/datasets/hoi4d.md), one sequence per id
``ZY2021080000*/H*/C*/N*/S*/s*/T*`` (camera, human, object class, object instance, room, room
layout, task):

- ``<raw>/<id>/align_rgb/image.mp4``: the RGB video (1920x1080, 300 frames at 15 fps);
- ``<annotations>/<id>/2Dseg/shift_mask/<frame>.png`` or ``.../2Dseg/mask/<frame>.png``: one
  colour-coded motion mask per frame, ``<frame>`` the zero-padded video frame index (00000.png).
  The first of ``dataset.mask_dirs`` holding PNGs is used (``shift_mask`` before ``mask``, as in
  the reference method). ``annotations`` is the same tree as ``raw`` unless set
  (HOI4D_annotations is a separate download).

Every 4th frame is kept by default (``dataset.frames.interval``); the frame provenance records
which. Masks -> object ids: black is background; a colour of HOI4D's colour map (the PASCAL VOC
one, :func:`moseg.datasets.raw.voc_palette`) takes its index there, so an id means the same part
in every sequence of an object class (definitions/motion segmentation/label.csv of the HOI4D
instructions names them); a colour within ``colour_tolerance`` of a map colour snaps to it;
any other colour gets the next free id, in order of colour value, the same for the whole
sequence. Everything in the motion masks moves (labels: id > 0 is moving).

Source files are only read, never moved, renamed or deleted (the reference's script moves them).

    python -m data_prep.hoi4d dataset.raw=/data/HOI4D_release \
        dataset.annotations=/data/HOI4D_annotations
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
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
from moseg.datasets.raw import (
    RawSequence,
    pack_rgb,
    preprocess_masks,
    read_label_image,
    voc_palette,
)
from moseg.io.contract import MASK_VOID, Sequence
from moseg.prep.frames import FrameError, FrameSpec, read_frames
from moseg.prep.jobs import Job
from moseg.prep.pipeline import resize_masks

log = logging.getLogger(__name__)

VERSION = 1
VIDEO = "align_rgb/image.mp4"
MASK_DIRS = ("2Dseg/shift_mask", "2Dseg/mask")
MISSING_MASKS = ("error", "unannotated")


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------
def find_sequences(root: str | Path, video: str = VIDEO) -> list[str]:
    """Ids (``/``-joined paths relative to ``root``) of the folders holding ``video``, sorted.

    The walk stops descending at a sequence folder, so decoded frames below it cost nothing.
    """
    root = Path(root)
    first = Path(video).parts[0]
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if first in dirnames and (Path(dirpath) / video).is_file():
            found.append(Path(dirpath).relative_to(root).as_posix())
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)


def read_id_list(path: str | Path) -> list[str]:
    """Sequence ids from a list file such as HOI4D's ``release.txt`` (one id per line)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot be read ({e})") from e
    ids = [ln.strip().strip("/") for ln in lines if ln.strip() and not ln.startswith("#")]
    if not ids:
        raise InputError(f"{path}: lists no sequence")
    return list(dict.fromkeys(ids))


def sequence_name(seq_id: str) -> str:
    """File name of a sequence: its id with ``/`` replaced by ``_``."""
    return seq_id.strip("/").replace("/", "_")


def in_val(seq_id: str, val_fraction: float) -> bool:
    """Deterministic split: a hash of the id below ``val_fraction`` puts it in val.

    A sequence keeps its split when others are added or removed.
    """
    h = int.from_bytes(hashlib.sha256(seq_id.encode()).digest()[:8], "big") / 2.0**64
    return h < val_fraction


def assign_splits(ids: list[str], val_fraction: float) -> dict[str, str]:
    """``id -> "train" | "val"``; at least one val sequence when ``val_fraction > 0`` and there
    are two or more sequences (the one with the smallest hash)."""
    out = {i: ("val" if in_val(i, val_fraction) else "train") for i in ids}
    if val_fraction > 0 and len(ids) >= 2 and "val" not in out.values():
        first = min(ids, key=lambda i: hashlib.sha256(i.encode()).digest())
        out[first] = "val"
    return out


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------
def mask_folder(ann_root: str | Path, seq_id: str, mask_dirs: list[str] | tuple[str, ...]) -> Path:
    """The first of ``<ann_root>/<seq_id>/<mask_dirs>`` that holds PNG files."""
    base = Path(ann_root) / seq_id
    for d in mask_dirs:
        folder = base / d
        if folder.is_dir() and any(p.suffix.lower() == ".png" for p in folder.iterdir()):
            return folder
    tried = ", ".join(str(base / d) for d in mask_dirs)
    raise FrameError(f"{tried}: no mask PNGs for sequence {seq_id}")


def _numbered_pngs(folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for p in folder.iterdir():
        if p.suffix.lower() == ".png" and p.stem.isdigit() and not p.name.startswith("."):
            out[int(p.stem)] = p
    return out


class ColourIds:
    """Colour -> object id for one sequence (see the module docstring)."""

    def __init__(self, tolerance: int = 24):
        pal = voc_palette().astype(np.int64)
        self.palette = pal[:MASK_VOID]  # indices 0..254; VOC's 255 is its void colour
        self.void_colour = int(pack_rgb(pal[MASK_VOID]))
        self.exact = {int(c): i for i, c in enumerate(pack_rgb(self.palette))}
        self.tolerance = int(tolerance)
        self.snapped: dict[int, int] = {}
        self.unknown: list[int] = []

    def classify(self, colour: int) -> int | None:
        """The id of a colour from the map (exact or near), the void value, or None (unknown)."""
        if colour in self.exact:
            return self.exact[colour]
        if colour == self.void_colour:
            return MASK_VOID
        rgb = np.array([(colour >> 16) & 255, (colour >> 8) & 255, colour & 255])
        diff = np.abs(self.palette - rgb).max(axis=1)
        best = int(diff.argmin())
        if diff[best] <= self.tolerance:
            self.snapped[colour] = best
            return best
        return None

    def table(self, colours: set[int]) -> dict[int, int]:
        """Ids of all colours of a sequence: map ids, then unknown colours after the largest."""
        known = {c: self.classify(c) for c in sorted(colours)}
        unknown = [c for c, i in known.items() if i is None]
        used = [i for i in known.values() if i is not None and i != MASK_VOID]
        nxt = max(used, default=0) + 1
        if nxt + len(unknown) - 1 > MASK_VOID - 1:
            raise ValueError(f"{len(unknown)} colours outside the colour map do not fit in ids")
        self.unknown = unknown
        out = {c: i for c, i in known.items() if i is not None}
        out.update({c: nxt + k for k, c in enumerate(unknown)})
        return out


def read_masks(
    mask_dir: str | Path,
    indices: np.ndarray,
    frame_size: tuple[int, int],
    *,
    missing_masks: str = "error",
    colour_tolerance: int = 24,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Masks of video frames ``indices`` -> ``(ids [T, H, W] uint8, annotated [T], info)``.

    The mask of frame ``i`` is ``<mask_dir>/<i>.png`` (any zero padding). ``missing_masks``:
    "error" names the missing file; "unannotated" leaves the frame void and not annotated.
    """
    if missing_masks not in MISSING_MASKS:
        raise ValueError(f"missing_masks must be one of {MISSING_MASKS}, got {missing_masks!r}")
    mask_dir = Path(mask_dir)
    files = _numbered_pngs(mask_dir)
    width = max((len(p.stem) for p in files.values()), default=5)
    # one read per file: keep each mask as small local indices into its own colour list
    local: list[tuple[np.ndarray, np.ndarray] | None] = []
    used: list[str | None] = []
    for i in indices:
        p = files.get(int(i))
        if p is None:
            want = mask_dir / f"{int(i):0{width}d}.png"
            if missing_masks == "error":
                raise FrameError(f"{want}: mask missing for video frame {int(i)}")
            local.append(None)
            used.append(None)
            continue
        a = read_label_image(p)
        if a.shape[:2] != tuple(frame_size):
            raise FrameError(
                f"{p}: mask is {a.shape[1]}x{a.shape[0]}, the video is "
                f"{frame_size[1]}x{frame_size[0]}"
            )
        if a.ndim == 2:  # a grey mask: grey v is the colour (v, v, v)
            a = np.repeat(a[..., None], 3, axis=2)
        if a.dtype != np.uint8:
            a = (a // 257).astype(np.uint8)
        colours, inv = np.unique(pack_rgb(a), return_inverse=True)
        small = np.uint8 if len(colours) <= 256 else np.int32  # a 1080p mask: 2 MB, not 8
        local.append((colours, inv.reshape(a.shape[:2]).astype(small)))
        used.append(str(p))

    ids = ColourIds(colour_tolerance)
    allc = {int(c) for item in local if item is not None for c in item[0]}
    try:
        table = ids.table(allc)
    except ValueError as e:
        raise FrameError(f"{mask_dir}: {e}") from e
    out = np.full((len(indices), *frame_size), MASK_VOID, np.uint8)
    for t, item in enumerate(local):
        if item is not None:
            colours, inv = item
            out[t] = np.array([table[int(c)] for c in colours], np.uint8)[inv]
    annotated = np.array([item is not None for item in local], bool)
    if ids.unknown:
        log.warning(
            "%s: %d colours are not in the HOI4D colour map; given ids %s",
            mask_dir,
            len(ids.unknown),
            sorted({table[c] for c in ids.unknown}),
        )

    def hexc(c: int) -> str:
        return f"#{c:06x}"

    info = {
        "mask_dir": str(mask_dir),
        "colour_ids": {hexc(c): int(i) for c, i in sorted(table.items()) if i != 0},
        "snapped_colours": {hexc(c): int(i) for c, i in ids.snapped.items()},
        "unknown_colours": [hexc(c) for c in ids.unknown],
        "object_ids": sorted({int(i) for i in table.values() if 0 < i < MASK_VOID}),
        "annotated_frames": int(annotated.sum()),
        "missing_masks": missing_masks,
    }
    return out, annotated, info


# ----------------------------------------------------------------------------------------------
# Reading and converting one sequence
# ----------------------------------------------------------------------------------------------
def read_sequence(
    raw: str | Path,
    seq_id: str,
    spec: FrameSpec | None = None,
    *,
    annotations: str | Path | None = None,
    video: str = VIDEO,
    mask_dirs: list[str] | tuple[str, ...] = MASK_DIRS,
    missing_masks: str = "error",
    colour_tolerance: int = 24,
) -> RawSequence:
    """Frames and motion masks of one HOI4D sequence: ``frames, masks, annotated, info``."""
    spec = spec or FrameSpec(interval=4)
    ann_root = Path(annotations) if annotations else Path(raw)
    path = Path(raw) / seq_id / video
    if not path.is_file():
        raise FrameError(f"{path}: video not found")
    folder = mask_folder(ann_root, seq_id, mask_dirs)  # before decoding the video: cheap check
    frames = read_frames(path, spec)
    masks, annotated, info = read_masks(
        folder,
        frames.indices,
        frames.original_size,
        missing_masks=missing_masks,
        colour_tolerance=colour_tolerance,
    )
    masks = resize_masks(masks, frames.size)
    return RawSequence(frames, masks, annotated, {"sequence": seq_id, **info})


def convert(
    *,
    raw: str,
    sequence: str,
    split: str,
    frames: dict[str, Any],
    annotations: str | None,
    video: str,
    mask_dirs: list[str],
    missing_masks: str,
    colour_tolerance: int,
    prep: dict[str, Any],
    source: str,
) -> Sequence:
    """One HOI4D sequence -> one contract :class:`Sequence` (runs in a job)."""
    rs = read_sequence(
        raw,
        sequence,
        FrameSpec.from_dict(frames),
        annotations=annotations,
        video=video,
        mask_dirs=mask_dirs,
        missing_masks=missing_masks,
        colour_tolerance=colour_tolerance,
    )
    dataset = {"raw": str(raw), "annotations": annotations, "sequence": sequence}
    name = sequence_name(sequence)
    return preprocess_masks(
        rs, prep, "data_prep.hoi4d", VERSION, name=name, source=source, split=split, **dataset
    )


def make_jobs(cfg: DictConfig) -> list[Job]:
    """One job per HOI4D sequence (discovery only: no video is opened)."""
    d = cfg.dataset
    if not d.get("raw"):
        raise InputError("dataset.raw is not set: give the HOI4D_release folder")
    raw = Path(str(d.raw))
    if not raw.is_dir():
        raise InputError(f"{raw}: HOI4D folder not found (set dataset.raw)")
    annotations = str(d.annotations) if d.get("annotations") else None
    if annotations and not Path(annotations).is_dir():
        raise InputError(f"{annotations}: HOI4D annotation folder not found")
    video = str(d.get("video") or VIDEO)
    missing = str(d.get("missing_masks") or "error")
    if missing not in MISSING_MASKS:
        raise InputError(f"dataset.missing_masks must be one of {MISSING_MASKS}, got {missing!r}")
    spec = frame_settings(d)
    frac = float(d.get("val_fraction") or 0.0)
    if not 0.0 <= frac < 1.0:
        raise InputError(f"dataset.val_fraction must be in [0, 1), got {frac}")

    if d.get("list_file"):
        ids = read_id_list(str(d.list_file))  # a listed id without a video fails its own job
    else:
        ids = find_sequences(raw, video)
        if not ids:
            raise InputError(f"{raw}: no HOI4D sequences (no */{video} below it)")
    wanted = to_plain(d.get("sequences"))
    if wanted is not None:
        ids = select_sequences(ids, [str(w).strip("/") for w in wanted], str(raw))
    splits = assign_splits(ids, frac)
    common = {
        "raw": str(raw),
        "frames": spec,
        "annotations": annotations,
        "video": video,
        "mask_dirs": [str(m) for m in (to_plain(d.get("mask_dirs")) or MASK_DIRS)],
        "missing_masks": missing,
        "colour_tolerance": int(d.get("colour_tolerance", 24)),
        "prep": prep_config(cfg),
        "source": str(d.get("source") or "hoi4d"),
    }
    found = [(splits[i], sequence_name(i), {"sequence": i}) for i in ids]
    return sequence_jobs(
        found,
        str(d.out),
        "moseg.datasets.hoi4d:convert",
        common,
        VERSION,
        name_key=None,
        qualified=False,
    )


if __name__ == "__main__":
    main("hoi4d", make_jobs)
