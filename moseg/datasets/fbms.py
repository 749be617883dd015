"""FBMS-59: ``{Trainingset,Testset}/<seq>/*.jpg``, with sparse ground truth in
``<seq>/GroundTruth/``: ``<seq>Def.dat`` plus one PGM/PPM/PNG per annotated frame, each object a
distinct grey or colour (frames without a file are not annotated).

The layout's folders (:func:`fbms_sequence_dirs`, :func:`fbms_check_root`,
:func:`fbms_list_sequences`) and its ground truth (:func:`fbms_ground_truth`). The converter,
which picks the reader by ``dataset.layout``, is :mod:`moseg.datasets.davis` (``dataset=fbms59``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moseg.datasets.common import (
    GroundTruth,
    InputError,
    LayoutOptions,
    check_mask_size,
    require_dir,
    subdirs,
)
from moseg.datasets.raw import pack_rgb, read_label_image
from moseg.io.contract import MASK_VOID
from moseg.prep.frames import IMAGE_EXTS, FrameError, natural_key

log = logging.getLogger(__name__)

WHITE = 0xFFFFFF
SPLIT_DIRS = {"train": "Trainingset", "test": "Testset"}


# ----------------------------------------------------------------------------------------------
# Where things are
# ----------------------------------------------------------------------------------------------
def split_dirs(root: Path, split: str | None) -> list[Path]:
    """The set folders of ``split`` (train/test or the folder's name); both sets when None."""
    if split is None:
        return [root / d for d in SPLIT_DIRS.values()]
    return [root / SPLIT_DIRS.get(split, split)]


def fbms_sequence_dirs(
    root: Path, seq: str, split: str | None, opts: LayoutOptions
) -> tuple[Path, Path]:
    """(frame folder, ground-truth folder) of ``seq``, searched in the set of ``split`` (both
    sets when None); :class:`InputError` when it is in none or in both."""
    found = [d / seq for d in split_dirs(root, split) if (d / seq).is_dir()]
    if len(found) > 1:
        raise InputError(f"{root}: sequence {seq!r} is in {found}; give the split")
    if not found:
        where = " or ".join(str(d / seq) for d in split_dirs(root, split))
        raise InputError(f"{where}: sequence folder not found")
    return found[0], found[0] / "GroundTruth"


def fbms_check_root(root: Path, opts: LayoutOptions, splits: list[str] | None) -> None:
    """:class:`InputError` naming the folder when a set folder of ``splits`` (both sets when
    None) is missing."""
    dirs = (
        split_dirs(root, None)
        if splits is None
        else [d for s in splits for d in split_dirs(root, s)]
    )
    for d in dirs:
        require_dir(d, "FBMS-59 set folder")


def fbms_list_sequences(root: Path, split: str | None, opts: LayoutOptions) -> list[str]:
    """The sequence folders of the set of ``split`` (both sets when None), in natural order per
    set."""
    return [s for d in split_dirs(root, split) if d.is_dir() for s in subdirs(d)]


# ----------------------------------------------------------------------------------------------
# Ground truth
# ----------------------------------------------------------------------------------------------
@dataclass
class FbmsDefinition:
    """The parts of an FBMS ``<seq>Def.dat`` the converter uses."""

    path: Path
    regions: list[int]  # colour value of each region (grey, or R*65536 + G*256 + B)
    num_frames: int | None  # "Total number of frames in this shot"
    labeled: list[tuple[int, str]]  # (frame number, ground-truth file name)


def parse_fbms_definition(path: str | Path) -> FbmsDefinition:
    """Read an FBMS ground-truth definition file (``<seq>Def.dat``).

    The file is a list of labels, each followed by its value(s) on the next line(s):
    ``Total number of regions:`` N, then N region colour values (blank lines between them), a
    ``Confusion penality matrix`` (N rows, skipped), ``Total number of frames in this shot:``,
    ``Total number of labeled frames for this shot:`` L, and L blocks ``Frame number:`` /
    ``File name:`` / ``Input file name:``. Raises :class:`FrameError` naming the file when it is
    malformed.
    """
    path = Path(path)
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    except OSError as e:
        raise FrameError(f"{path}: cannot be read ({e})") from e
    lines = [ln for ln in lines if ln]

    def bad(msg: str) -> FrameError:
        return FrameError(f"{path}: malformed FBMS definition file ({msg})")

    def value_after(i: int, what: str) -> str:
        if i + 1 >= len(lines):
            raise bad(f"no value after {what!r}")
        return lines[i + 1]

    def int_after(i: int, what: str) -> int:
        v = value_after(i, what)
        try:
            return int(v.split()[0])
        except ValueError:
            raise bad(f"{what!r} is followed by {v!r}, not a number") from None

    regions: list[int] = []
    num_frames = None
    labeled: list[tuple[int, str]] = []
    frame_no: int | None = None
    n_labeled = None
    i = 0
    while i < len(lines):
        low = lines[i].lower()
        if low.startswith("total number of regions"):
            n = int_after(i, "Total number of regions")
            vals = lines[i + 2 : i + 2 + n]
            try:
                regions = [int(v.split()[0]) for v in vals]
            except ValueError:
                raise bad(f"region colours are not numbers: {vals}") from None
            if len(regions) != n:
                raise bad(f"{n} regions announced, {len(regions)} listed")
            i += 2 + n
            continue
        if low.startswith("confusion penal"):
            i += 1 + len(regions)
            continue
        if low.startswith("total number of frames"):
            num_frames = int_after(i, "Total number of frames")
            i += 2
            continue
        if low.startswith("total number of labeled frames"):
            n_labeled = int_after(i, "Total number of labeled frames")
            i += 2
            continue
        if low.startswith("frame number"):
            frame_no = int_after(i, "Frame number")
            i += 2
            continue
        if low.startswith("file name"):
            if frame_no is None:
                raise bad("'File name:' before any 'Frame number:'")
            labeled.append((frame_no, value_after(i, "File name")))
            frame_no = None
            i += 2
            continue
        if low.startswith("input file name"):
            i += 2
            continue
        i += 1
    if not regions:
        raise bad("no 'Total number of regions:' with region colours")
    if n_labeled is not None and n_labeled != len(labeled):
        raise bad(f"{n_labeled} labeled frames announced, {len(labeled)} listed")
    return FbmsDefinition(path=path, regions=regions, num_frames=num_frames, labeled=labeled)


def _last_int(s: str) -> int | None:
    m = re.findall(r"\d+", s)
    return int(m[-1]) if m else None


def _fbms_gt_stem(path: Path) -> str:
    return re.sub(r"_?gt$", "", path.stem, flags=re.IGNORECASE)


def fbms_ground_truth(
    files: list[Path], kept: np.ndarray, gt_dir: Path, opts: LayoutOptions, size: tuple[int, int]
) -> GroundTruth:
    """Masks of the ``kept`` frames (indices into ``files``) from ``gt_dir``, at ``size`` (H, W):
    region colours from the definition file (or the colours found, in order of value), the
    background chosen by ``opts.background``; frames without a file are void, not annotated."""
    if not gt_dir.is_dir():
        raise FrameError(f"{gt_dir}: ground-truth folder does not exist")
    defs = sorted(gt_dir.glob("*Def.dat")) or sorted(gt_dir.glob("*.dat"))
    if len(defs) > 1:
        raise FrameError(f"{gt_dir}: several definition files ({', '.join(p.name for p in defs)})")
    definition = parse_fbms_definition(defs[0]) if defs else None
    notes: list[str] = []
    if definition is not None:
        entries: list[tuple[Path, int | None]] = []
        for frame_no, name in definition.labeled:
            p = gt_dir / name
            if not p.is_file():
                raise FrameError(f"{p}: ground-truth file named in {definition.path} is missing")
            entries.append((p, frame_no))
    else:
        cand = [
            p
            for p in gt_dir.iterdir()
            if p.is_file()
            and p.suffix.lower() in IMAGE_EXTS
            and "prob" not in p.name.lower()
            and not p.name.startswith(".")
        ]
        by_stem: dict[str, Path] = {}
        for p in sorted(cand, key=lambda p: natural_key(p.name)):  # a .ppm wins over a .pgm
            if p.stem not in by_stem or p.suffix.lower() == ".ppm":
                by_stem[p.stem] = p
        entries = [(p, None) for p in by_stem.values()]
        notes.append("no definition file; object ids from the colours in order of value")
    if not entries:
        raise FrameError(f"{gt_dir}: no ground-truth files")

    stems = {f.stem: i for i, f in enumerate(files)}
    nums: dict[int, int] = {}
    for i, f in enumerate(files):
        n = _last_int(f.stem)
        if n is not None:
            nums[n] = -1 if n in nums else i
    gt_of: dict[int, Path] = {}
    for p, frame_no in entries:
        stem = _fbms_gt_stem(p)
        n = _last_int(stem)
        if stem in stems:
            idx = stems[stem]
        elif n is not None and nums.get(n, -1) >= 0:
            idx = nums[n]
        elif frame_no is not None and 0 <= frame_no < len(files):
            idx = frame_no
            notes.append(f"{p.name}: matched to frame {frame_no} by the definition file")
        else:
            raise FrameError(f"{p}: ground truth matches no frame in {files[0].parent}")
        if frame_no is not None and idx != frame_no:
            notes.append(f"{p.name}: definition says frame {frame_no}, name matches frame {idx}")
        if idx in gt_of:
            raise FrameError(f"{p}: frame {files[idx].name} already has {gt_of[idx].name}")
        gt_of[idx] = p

    # every ground-truth file, so that object ids do not depend on the frames kept
    values = {idx: read_label_image(p) for idx, p in gt_of.items()}
    for idx, a in values.items():
        check_mask_size(gt_of[idx], a.shape, size, str(files[idx]))
    colour = any(a.ndim == 3 for a in values.values())
    if colour:  # grey files among colour ones: grey v is the colour (v, v, v)
        values = {
            k: (a if a.ndim == 3 else np.repeat(a[..., None], 3, 2)) for k, a in values.items()
        }
        packed = {k: pack_rgb(a) for k, a in values.items()}
    else:
        packed = {k: a.astype(np.int64) for k, a in values.items()}
    if definition is not None:
        regions = list(definition.regions)
    else:
        regions = [
            int(v) for v in np.unique(np.concatenate([np.unique(v) for v in packed.values()]))
        ]
    # background: white in colour ground truth (black if white is not among its colours), black
    # in grey ground truth -- as public FBMS readers do; see docs/datasets/davis.md
    white = WHITE if colour else max(int(np.iinfo(a.dtype).max) for a in values.values())
    auto = white if colour and white in regions else 0
    bg = {"black": 0, "white": white, "auto": auto}[opts.background]
    objects = [v for v in regions if v != bg]
    if len(objects) > MASK_VOID - 1:
        raise FrameError(f"{gt_dir}: {len(objects)} objects; at most {MASK_VOID - 1} fit")
    id_of = {v: k for k, v in enumerate(objects, 1)}
    id_of[bg] = 0

    out = np.full((len(kept), *size), MASK_VOID, np.uint8)
    annotated = np.zeros(len(kept), bool)
    used: list[str | None] = [None] * len(kept)
    unlisted = 0
    for t, i in enumerate(kept):
        if int(i) not in packed:
            continue
        vals, inv = np.unique(packed[int(i)], return_inverse=True)
        lut = np.array([id_of.get(int(v), MASK_VOID) for v in vals], np.uint8)
        out[t] = lut[inv.reshape(packed[int(i)].shape)]
        unlisted += int(sum(int(v) not in id_of for v in vals))
        annotated[t] = True
        used[t] = str(gt_of[int(i)])
    if unlisted:
        notes.append(f"{unlisted} colour(s) not among the defined regions were set to void")
        log.warning("%s: colours not in the definition file were set to void", gt_dir)
    return GroundTruth(
        masks=out,
        annotated=annotated,
        files=used,
        info={
            "mask_dir": str(gt_dir),
            "definition": str(definition.path) if definition else None,
            "background_value": int(bg),
            "object_values": [int(v) for v in objects],  # object id k has value object_values[k-1]
            "object_ids": list(range(1, len(objects) + 1)),
            "annotated_frames": int(annotated.sum()),
            "ground_truth_frames": sorted(int(i) for i in gt_of),
            "notes": notes,
        },
    )
