"""DAVIS-style folders (DAVIS 2016/2017, FBMS-59, SegTrackv2) -> contract files, and the readers
the benchmarks share.

Three raw layouts, chosen by ``dataset.layout`` (docs/datasets/davis.md has the details):

- ``davis``: ``JPEGImages/<res>/<seq>/*.jpg``, ``Annotations/<res>/<seq>/*.png`` (DAVIS 2016: grey
  0/255, one object; DAVIS 2017: palette PNGs whose indices are object ids, 255 void) and split
  lists ``ImageSets/<res>/<split>.txt`` (DAVIS 2016: frame/mask path pairs) or
  ``ImageSets/2017/<split>.txt`` (DAVIS 2017: sequence names).
- ``fbms59``: ``{Trainingset,Testset}/<seq>/*.jpg`` with sparse ground truth in
  ``<seq>/GroundTruth/`` (``<seq>Def.dat`` plus one PGM/PPM/PNG per annotated frame, each object
  a distinct grey or colour). Frames without ground truth are not annotated (masks 255).
- ``segtrackv2``: ``JPEGImages/<seq>/*`` and ``GroundTruth/<seq>/`` holding one mask per frame
  (one object) or one sub-folder per object (``1/``, ``2/``, ...), merged into object ids. Masks
  are matched to frames by natural sort order, with a count check.

Every object in these masks moves (labels: any object id > 0 is moving). The readers
(:func:`list_sequences`, :func:`read_masks`, :func:`read_sequence`) are public so that the
benchmark code loads ground truth exactly as the converter does. Source files are only read.

    python -m data_prep.davis dataset.raw=/path/to/DAVIS [dataset.splits=[val]] [workers=2]
    python -m data_prep.davis dataset=fbms59 dataset.raw=/path/to/FBMS59
    python -m data_prep.davis dataset=segtrackv2 dataset.raw=/path/to/SegTrackv2
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig
from PIL import Image

from moseg.config import to_plain
from moseg.datasets.common import (
    InputError,
    frame_settings,
    main,
    prep_config,
    select_found,
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
from moseg.prep.frames import (
    IMAGE_EXTS,
    FrameError,
    FrameSpec,
    list_frame_files,
    natural_key,
    read_frames,
)
from moseg.prep.jobs import Job
from moseg.prep.pipeline import resize_masks

log = logging.getLogger(__name__)

VERSION = 1
LAYOUTS = ("davis", "fbms59", "segtrackv2")
FBMS_SPLIT_DIRS = {"train": "Trainingset", "test": "Testset"}
MASK_FORMATS = ("auto", "binary", "indexed")
MISSING_MASKS = ("error", "unannotated")
BACKGROUNDS = ("auto", "white", "black")
WHITE = 0xFFFFFF


# ----------------------------------------------------------------------------------------------
# Options and results
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayoutOptions:
    """How to read a raw tree; the same keys as in
    moseg/conf/dataset/{davis,fbms59,segtrackv2}.yaml."""

    resolution: str = "480p"  # davis: sub-folder of JPEGImages/ and Annotations/
    imagesets: str | None = None  # davis: folder of the split lists (relative to the root)
    masks: str = "auto"  # davis: auto | binary | indexed
    missing_masks: str = "error"  # davis: a kept frame without a mask: error | unannotated
    background: str = "auto"  # fbms59: colour of the background region: auto | white | black
    fps: float = 24.0  # frame rate of the frame folders (they carry none)

    def __post_init__(self) -> None:
        for name, allowed in (
            ("masks", MASK_FORMATS),
            ("missing_masks", MISSING_MASKS),
            ("background", BACKGROUNDS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, d: Any) -> LayoutOptions:
        """Options from a mapping (e.g. the ``dataset`` config); unknown keys are ignored."""
        d = dict(to_plain(d) or {})
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known and v is not None}
        if "fps" in kw:
            kw["fps"] = float(kw["fps"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _options(options: LayoutOptions | dict[str, Any] | None) -> LayoutOptions:
    if isinstance(options, LayoutOptions):
        return options
    return LayoutOptions.from_dict(options or {})


@dataclass
class GroundTruth:
    """Instance masks of the kept frames of one sequence, at the frames' original size."""

    masks: np.ndarray  # [T, H, W] uint8: 0 background, 1..254 objects, 255 void / not annotated
    annotated: np.ndarray  # [T] bool: the frame has ground truth
    files: list[str | None]  # [T] the mask file(s) of each frame ("a|b" for several objects)
    info: dict[str, Any]  # JSON-able: format, object ids, notes (stored in the provenance)


# ----------------------------------------------------------------------------------------------
# Colour palettes and mask files
# ----------------------------------------------------------------------------------------------
def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image, from its header where possible."""
    try:
        with Image.open(path) as im:
            w, h = im.size
        return int(h), int(w)
    except Exception:  # formats PIL does not know: decode fully
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FrameError(f"{path}: cannot be read as an image") from None
        return int(img.shape[0]), int(img.shape[1])


def _check_size(path: Path | str, shape: tuple[int, ...], size: tuple[int, int], ref: str) -> None:
    if tuple(shape[:2]) != tuple(size):
        raise FrameError(
            f"{path}: mask is {shape[1]}x{shape[0]}, but the frames ({ref}) are {size[1]}x{size[0]}"
        )


def _read_davis_mask(path: Path) -> tuple[np.ndarray, str]:
    """A DAVIS annotation as ``(values [H, W], kind)``; kind is "palette", "grey" or "rgb"."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                return np.array(im, dtype=np.uint8), "palette"
            if mode in ("1", "L"):
                return np.array(im.convert("L"), dtype=np.uint8), "grey"
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.array(im)
                if a.max() > 255:
                    raise FrameError(f"{path}: 16-bit mask with values above 255")
                return a.astype(np.uint8), "grey"
            if mode in ("LA", "PA"):
                return np.array(im.convert("L"), dtype=np.uint8), "grey"
            return np.array(im.convert("RGB"), dtype=np.uint8), "rgb"
    except FrameError:
        raise
    except Exception as e:  # PIL raises many kinds for a broken file
        raise FrameError(f"{path}: cannot be read as a mask image ({e})") from e


_VOC_LOOKUP = {int(c): i for i, c in enumerate(pack_rgb(voc_palette()))}


def _rgb_to_ids(rgb: np.ndarray, path: Path) -> np.ndarray:
    """An RGB mask in the VOC/DAVIS colours -> palette indices; other colours are an error."""
    packed = pack_rgb(rgb)
    vals, inv = np.unique(packed, return_inverse=True)
    lut = np.zeros(len(vals), np.uint8)
    for j, v in enumerate(vals):
        if int(v) not in _VOC_LOOKUP:
            r, g, b = (int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255
            raise FrameError(
                f"{path}: colour ({r}, {g}, {b}) is not in the DAVIS palette; save masks as "
                "palette or grey PNGs"
            )
        lut[j] = _VOC_LOOKUP[int(v)]
    return lut[inv.reshape(packed.shape)]


# ----------------------------------------------------------------------------------------------
# Where things are
# ----------------------------------------------------------------------------------------------
def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _subdirs(folder: Path) -> list[str]:
    return sorted(
        (p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=natural_key,
    )


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise InputError(f"{path}: {what} not found")


def _fbms_dirs(root: Path, split: str | None) -> list[Path]:
    if split is None:
        return [root / d for d in FBMS_SPLIT_DIRS.values()]
    return [root / FBMS_SPLIT_DIRS.get(split, split)]


def sequence_dirs(
    layout: str,
    root: str | Path,
    seq: str,
    *,
    split: str | None = None,
    options: LayoutOptions | dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """(frame folder, ground-truth folder) of sequence ``seq``.

    For ``fbms59``, ``split`` (train/test or the folder name) picks the set; without it both sets
    are searched.
    """
    _check_layout(layout)
    opts, root = _options(options), Path(root)
    if layout == "davis":
        return (
            root / "JPEGImages" / opts.resolution / seq,
            root / "Annotations" / opts.resolution / seq,
        )
    if layout == "segtrackv2":
        return root / "JPEGImages" / seq, root / "GroundTruth" / seq
    found = [d / seq for d in _fbms_dirs(root, split) if (d / seq).is_dir()]
    if len(found) > 1:
        raise InputError(f"{root}: sequence {seq!r} is in {found}; give the split")
    if not found:
        where = " or ".join(str(d / seq) for d in _fbms_dirs(root, split))
        raise InputError(f"{where}: sequence folder not found")
    return found[0], found[0] / "GroundTruth"


def split_list_file(root: str | Path, split: str, options: Any = None) -> Path:
    """The DAVIS split list of ``split``; :class:`InputError` naming the paths tried if none."""
    opts, root = _options(options), Path(root)
    if opts.imagesets:
        folders = [root / opts.imagesets]
    else:
        folders = [root / "ImageSets" / d for d in (opts.resolution, "2017", "2016", "")]
    tried = [f / f"{split}.txt" for f in folders]
    for p in tried:
        if p.is_file():
            return p
    raise InputError(
        f"{tried[0]}: split list not found (also looked for "
        f"{', '.join(str(p) for p in tried[1:]) or 'nothing else'}); set dataset.splits to the "
        "splits you have, or dataset.imagesets to the folder of the lists"
    )


def parse_split_list(path: str | Path) -> list[str]:
    """Sequence names in a DAVIS split list, in order, without repeats.

    A line is either a sequence name (DAVIS 2017) or a frame path, possibly followed by a mask
    path (DAVIS 2016: ``/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png``).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot be read ({e})") from e
    out: dict[str, None] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token = line.split()[0].lstrip("*")
        parts = [p for p in token.replace("\\", "/").split("/") if p]
        if not parts:
            raise InputError(f"{path}:{n}: cannot read a sequence from {line!r}")
        if len(parts) > 1 and Path(parts[-1]).suffix.lower() in IMAGE_EXTS:
            out[parts[-2]] = None
        else:
            out[parts[-1]] = None
    return list(out)


def check_root(
    layout: str, root: str | Path, options: Any = None, splits: list[str] | None = None
) -> None:
    """:class:`InputError` naming the path if ``root`` is not a tree in ``layout``."""
    _check_layout(layout)
    opts, root = _options(options), Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: raw dataset folder not found (set dataset.raw)")
    if layout == "davis":
        img = root / "JPEGImages" / opts.resolution
        _require_dir(img, f"frame folder of a DAVIS tree at resolution {opts.resolution!r}")
        if not _subdirs(img):
            raise InputError(f"{img}: holds no sequence folders")
    elif layout == "segtrackv2":
        _require_dir(root / "JPEGImages", "frame folder of a SegTrackv2 tree")
        _require_dir(root / "GroundTruth", "ground-truth folder of a SegTrackv2 tree")
        if not _subdirs(root / "JPEGImages"):
            raise InputError(f"{root / 'JPEGImages'}: holds no sequence folders")
    else:
        for d in _fbms_dirs(root, None) if splits is None else _fbms_dirs_for(root, splits):
            _require_dir(d, "FBMS-59 set folder")


def _fbms_dirs_for(root: Path, splits: list[str]) -> list[Path]:
    return [d for s in splits for d in _fbms_dirs(root, s)]


def list_sequences(
    layout: str,
    root: str | Path,
    split: str | None = None,
    *,
    options: LayoutOptions | dict[str, Any] | None = None,
) -> list[str]:
    """Names of the sequences of ``split`` present under ``root`` (natural order).

    - davis: the sequences in the split list (see :func:`split_list_file`) that have a frame
      folder (listed ones without are skipped with a warning); ``split=None``: every folder.
    - fbms59: the folders in ``Trainingset`` (split "train") or ``Testset`` ("test");
      ``split=None``: both.
    - segtrackv2: ``ImageSets/all.txt`` when present (a leading ``*`` is dropped), else every
      folder in ``JPEGImages``; ``split`` is ignored (SegTrackv2 has one set).
    """
    _check_layout(layout)
    opts, root = _options(options), Path(root)
    check_root(layout, root, opts, None if split is None or layout != "fbms59" else [split])
    if layout == "fbms59":
        return [s for d in _fbms_dirs(root, split) if d.is_dir() for s in _subdirs(d)]
    if layout == "davis":
        present = _subdirs(root / "JPEGImages" / opts.resolution)
        if split is None:
            return present
        lst = split_list_file(root, split, opts)
    else:
        present = _subdirs(root / "JPEGImages")
        lst = root / "ImageSets" / "all.txt"
        if not lst.is_file():
            return present
    listed = parse_split_list(lst)
    if not listed:
        raise InputError(f"{lst}: lists no sequence")
    absent = [s for s in listed if s not in set(present)]
    if absent:
        log.warning(
            "%s: %d listed sequences have no frame folder and are skipped: %s",
            lst,
            len(absent),
            ", ".join(absent[:8]) + (" ..." if len(absent) > 8 else ""),
        )
    return sorted((s for s in listed if s in set(present)), key=natural_key)


# ----------------------------------------------------------------------------------------------
# Ground truth per layout
# ----------------------------------------------------------------------------------------------
def _davis_gt(
    files: list[Path], kept: np.ndarray, gt_dir: Path, opts: LayoutOptions, size: tuple[int, int]
) -> GroundTruth:
    if not gt_dir.is_dir():
        raise FrameError(f"{gt_dir}: annotation folder does not exist")
    masks = {
        p.stem: p
        for p in gt_dir.iterdir()
        if p.is_file() and p.suffix.lower() == ".png" and not p.name.startswith(".")
    }
    if not masks:
        raise FrameError(f"{gt_dir}: no mask files (*.png)")
    frames_dir = files[0].parent
    if len(masks) > len(files):
        raise FrameError(f"{gt_dir}: {len(masks)} masks for {len(files)} frames in {frames_dir}")
    stems = [f.stem for f in files]
    notes: list[str] = []
    if set(masks) & set(stems):
        extra = sorted(set(masks) - set(stems), key=natural_key)
        if extra:
            raise FrameError(f"{masks[extra[0]]}: mask has no frame {frames_dir / extra[0]}.*")
        match = [masks.get(s) for s in stems]
    elif len(masks) == len(files):  # names differ: pair by order
        match = [masks[k] for k in sorted(masks, key=natural_key)]
        notes.append(f"mask names differ from frame names; paired {len(files)} by order")
    else:
        raise FrameError(
            f"{gt_dir}: mask names match no frame in {frames_dir} and the counts differ "
            f"({len(masks)} masks, {len(files)} frames)"
        )

    raw: list[tuple[np.ndarray, str] | None] = []
    used: list[str | None] = []
    for i in kept:
        p = match[i]
        if p is None:
            want = gt_dir / f"{stems[i]}.png"
            if opts.missing_masks == "error":
                raise FrameError(f"{want}: mask missing for frame {files[i]}")
            raw.append(None)
            used.append(None)
            continue
        a, kind = _read_davis_mask(p)
        _check_size(p, a.shape, size, str(files[i]))
        raw.append((a, kind))
        used.append(str(p))
    annotated = np.array([r is not None for r in raw], bool)
    if not annotated.any():
        notes.append("no kept frame has a mask")

    fmt = opts.masks
    if fmt == "auto":  # grey masks holding only 0 and 255 are DAVIS 2016's binary masks
        grey = [r[0] for r in raw if r is not None and r[1] == "grey"]
        values = {int(v) for a in grey for v in np.unique(a)}
        fmt = "binary" if grey and values <= {0, 255} else "indexed"
    out = np.full((len(kept), *size), MASK_VOID, np.uint8)
    for t, r in enumerate(raw):
        if r is None:
            continue
        a, kind = r
        if kind == "rgb":
            ids = (a.max(axis=2) > 0).astype(np.uint8) if fmt == "binary" else None
            out[t] = ids if ids is not None else _rgb_to_ids(a, Path(used[t] or ""))
        elif kind == "grey" and fmt == "binary":
            out[t] = (a >= 128).astype(np.uint8)
        else:
            out[t] = a
    ids = np.unique(out[annotated]) if annotated.any() else np.zeros(0, np.uint8)
    return GroundTruth(
        masks=out,
        annotated=annotated,
        files=used,
        info={
            "mask_dir": str(gt_dir),
            "format": fmt,
            "object_ids": [int(v) for v in ids if 0 < v < MASK_VOID],
            "annotated_frames": int(annotated.sum()),
            "notes": notes,
        },
    )


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


def _fbms_gt(
    files: list[Path], kept: np.ndarray, gt_dir: Path, opts: LayoutOptions, size: tuple[int, int]
) -> GroundTruth:
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
        _check_size(gt_of[idx], a.shape, size, str(files[idx]))
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


def _binary(path: Path) -> np.ndarray:
    """A mask file -> ``[H, W]`` bool: above half of the file's largest value (0/1 or 0/255)."""
    a = read_label_image(path)
    if a.ndim == 3:
        a = a.max(axis=2)
    top = int(a.max())
    return a > top / 2 if top > 0 else np.zeros(a.shape, bool)


def _segtrack_gt(
    files: list[Path], kept: np.ndarray, gt_dir: Path, opts: LayoutOptions, size: tuple[int, int]
) -> GroundTruth:
    if not gt_dir.is_dir():
        raise FrameError(f"{gt_dir}: ground-truth folder does not exist")
    subs = [gt_dir / s for s in _subdirs(gt_dir)]
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
            _check_size(p, m.shape, size, str(files[int(i)]))
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


_GT_READERS = {"davis": _davis_gt, "fbms59": _fbms_gt, "segtrackv2": _segtrack_gt}


# ----------------------------------------------------------------------------------------------
# Public readers
# ----------------------------------------------------------------------------------------------
def read_masks(
    layout: str,
    root: str | Path,
    seq: str,
    spec: FrameSpec | None = None,
    *,
    split: str | None = None,
    options: LayoutOptions | dict[str, Any] | None = None,
    frame_size: tuple[int, int] | None = None,
) -> GroundTruth:
    """Ground truth of the frames ``spec`` keeps, at the frames' original size, without decoding
    the frames (for evaluation). ``frame_size`` (H, W) skips reading one frame's header."""
    opts = _options(options)
    spec = spec or FrameSpec()
    frames_dir, gt_dir = sequence_dirs(layout, root, seq, split=split, options=opts)
    files, _ = list_frame_files(frames_dir)
    kept = spec.select(len(files))
    if len(kept) == 0:
        raise FrameError(f"{frames_dir}: start={spec.start} is past its {len(files)} frames")
    size = frame_size or _image_size(files[int(kept[0])])
    gt = _GT_READERS[layout](files, kept, gt_dir, opts, tuple(size))
    gt.info = {"layout": layout, "sequence": seq, **gt.info}
    return gt


def read_sequence(
    layout: str,
    root: str | Path,
    seq: str,
    spec: FrameSpec | None = None,
    *,
    split: str | None = None,
    options: LayoutOptions | dict[str, Any] | None = None,
) -> RawSequence:
    """Frames and ground truth of one sequence: ``frames, masks, annotated, info``.

    Masks are resized (nearest) to the frames' size when ``spec.longest_side`` shrank them.
    """
    opts = _options(options)
    frames_dir, _ = sequence_dirs(layout, root, seq, split=split, options=opts)
    frames = read_frames(frames_dir, spec, fps=opts.fps)
    gt = read_masks(
        layout, root, seq, spec, split=split, options=opts, frame_size=frames.original_size
    )
    if len(gt.masks) != frames.num_frames:  # both select from the same sorted file list
        raise FrameError(f"{frames_dir}: {frames.num_frames} frames but {len(gt.masks)} masks")
    masks = resize_masks(gt.masks, frames.size)
    return RawSequence(frames, masks, gt.annotated, gt.info)


# ----------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------
def convert(
    *,
    layout: str,
    root: str,
    sequence: str,
    split: str,
    frames: dict[str, Any],
    options: dict[str, Any],
    prep: dict[str, Any],
    source: str,
) -> Sequence:
    """One raw sequence -> one contract :class:`Sequence` (runs in a job)."""
    raw_split = split if layout == "fbms59" else None
    rs = read_sequence(
        layout, root, sequence, FrameSpec.from_dict(frames), split=raw_split, options=options
    )
    dataset = {"layout": layout, "root": str(root), "sequence": sequence, "options": options}
    return preprocess_masks(
        rs, prep, "data_prep.davis", VERSION, name=sequence, source=source, split=split, **dataset
    )


def make_jobs(cfg: DictConfig) -> list[Job]:
    """One job per sequence of every split in ``dataset.splits`` (discovery only)."""
    d = cfg.dataset
    layout = str(d.get("layout") or "davis")
    _check_layout(layout)
    if not d.get("raw"):
        raise InputError("dataset.raw is not set: give the folder of the raw dataset")
    root = Path(str(d.raw))
    try:
        opts = LayoutOptions.from_dict(d)
    except (TypeError, ValueError) as e:
        raise InputError(f"dataset settings: {e}") from e
    spec = frame_settings(d)
    splits = [str(s) for s in (to_plain(d.get("splits")) or [])]
    if not splits:
        raise InputError("dataset.splits is empty: name the splits to convert")
    if layout == "segtrackv2" and len(splits) > 1:
        raise InputError(f"SegTrackv2 has one set; give one split name, not {splits}")
    check_root(layout, root, opts, splits)
    found = [(s, q, {}) for s in splits for q in list_sequences(layout, root, s, options=opts)]
    wanted = to_plain(d.get("sequences"))
    found = select_found(found, wanted, f"{root} (splits {splits})")
    if not found:
        raise InputError(f"{root}: no sequences found for splits {splits}")
    common = {
        "layout": layout,
        "root": str(root),
        "frames": spec,
        "options": opts.to_dict(),
        "prep": prep_config(cfg),
        "source": str(d.get("source") or d.get("name") or layout),
    }
    return sequence_jobs(
        found, str(d.out), "moseg.datasets.davis:convert", common, VERSION, name_key="sequence"
    )


if __name__ == "__main__":
    main("davis", make_jobs)
