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

One reader per layout: the DAVIS masks are read here, FBMS-59's in :mod:`moseg.datasets.fbms`,
SegTrackv2's in :mod:`moseg.datasets.segtrackv2`; the folders of all three, the dispatch and the
converter are here.

Every object in these masks moves (labels: any object id > 0 is moving). The readers
(:func:`list_sequences`, :func:`read_masks`, :func:`read_sequence`) are public so that the
benchmark code loads ground truth exactly as the converter does. Source files are only read.

    python -m data_prep.davis dataset.raw=/path/to/DAVIS [dataset.splits=[val]] [workers=2]
    python -m data_prep.davis dataset=fbms59 dataset.raw=/path/to/FBMS59
    python -m data_prep.davis dataset=segtrackv2 dataset.raw=/path/to/SegTrackv2
"""

from __future__ import annotations

import logging
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


def _gt_reader(layout: str):
    """The ground-truth reader of ``layout``: one module per layout (fbms59 and segtrackv2 live
    in :mod:`moseg.datasets.fbms` and :mod:`moseg.datasets.segtrackv2`, imported here late, since
    they use this module's shared helpers)."""
    if layout == "fbms59":
        from moseg.datasets.fbms import fbms_ground_truth

        return fbms_ground_truth
    if layout == "segtrackv2":
        from moseg.datasets.segtrackv2 import segtrackv2_ground_truth

        return segtrackv2_ground_truth
    return _davis_gt


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
    gt = _gt_reader(layout)(files, kept, gt_dir, opts, tuple(size))
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
