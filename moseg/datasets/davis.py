"""DAVIS-style folders (DAVIS 2016/2017, FBMS-59, SegTrackv2) -> contract files: the DAVIS
layout's reader, the readers the benchmarks share, and the converter.

Three raw layouts, chosen by ``dataset.layout`` (docs/datasets/davis.md has the details), one
module each:

- ``davis`` (here): ``JPEGImages/<res>/<seq>/*.jpg``, ``Annotations/<res>/<seq>/*.png`` (DAVIS
  2016: grey 0/255, one object; DAVIS 2017: palette PNGs whose indices are object ids, 255 void)
  and split lists ``ImageSets/<res>/<split>.txt`` (DAVIS 2016: frame/mask path pairs) or
  ``ImageSets/2017/<split>.txt`` (DAVIS 2017: sequence names).
- ``fbms59`` (:mod:`moseg.datasets.fbms`): ``{Trainingset,Testset}/<seq>/*.jpg`` with sparse
  ground truth in ``<seq>/GroundTruth/``. Frames without ground truth are not annotated (masks
  255).
- ``segtrackv2`` (:mod:`moseg.datasets.segtrackv2`): ``JPEGImages/<seq>/*`` and
  ``GroundTruth/<seq>/`` holding one mask per frame or one sub-folder per object.

Each layout module gives its folders (``<layout>_sequence_dirs``, ``<layout>_check_root``,
``<layout>_list_sequences``) and its ground truth (``<layout>_ground_truth``); :data:`READERS`
maps a layout to them, and the public readers below and the converter pick by layout. What the
three share (:class:`LayoutOptions`, :class:`GroundTruth`, split lists) is in
:mod:`moseg.datasets.common`.

Every object in these masks moves (labels: any object id > 0 is moving). The readers
(:func:`list_sequences`, :func:`read_masks`, :func:`read_sequence`) are public so that the
benchmark code loads ground truth exactly as the converter does. Source files are only read.

    python -m data_prep.davis dataset.raw=/path/to/DAVIS [dataset.splits=[val]] [workers=2]
    python -m data_prep.davis dataset=fbms59 dataset.raw=/path/to/FBMS59
    python -m data_prep.davis dataset=segtrackv2 dataset.raw=/path/to/SegTrackv2
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from moseg.config import to_plain
from moseg.datasets.common import (  # noqa: F401  (parse_split_list: re-exported)
    GroundTruth,
    InputError,
    LayoutOptions,
    check_mask_size,
    frame_settings,
    image_size,
    layout_options,
    listed_sequences,
    main,
    parse_split_list,
    prep_config,
    require_dir,
    select_found,
    sequence_jobs,
    subdirs,
)
from moseg.datasets.fbms import (
    fbms_check_root,
    fbms_ground_truth,
    fbms_list_sequences,
    fbms_sequence_dirs,
)
from moseg.datasets.raw import RawSequence, pack_rgb, preprocess_masks, voc_palette
from moseg.datasets.segtrackv2 import (
    segtrackv2_check_root,
    segtrackv2_ground_truth,
    segtrackv2_list_sequences,
    segtrackv2_sequence_dirs,
)
from moseg.io.contract import MASK_VOID, Sequence
from moseg.prep.frames import FrameError, FrameSpec, list_frame_files, natural_key, read_frames
from moseg.prep.jobs import Job
from moseg.prep.pipeline import resize_masks

VERSION = 1
LAYOUTS = ("davis", "fbms59", "segtrackv2")


# ----------------------------------------------------------------------------------------------
# DAVIS mask files
# ----------------------------------------------------------------------------------------------
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
# DAVIS folders
# ----------------------------------------------------------------------------------------------
def davis_sequence_dirs(
    root: Path, seq: str, split: str | None, opts: LayoutOptions
) -> tuple[Path, Path]:
    """(frame folder, annotation folder) of ``seq`` at ``opts.resolution``; ``split`` is not
    needed (the folders hold every split)."""
    return (
        root / "JPEGImages" / opts.resolution / seq,
        root / "Annotations" / opts.resolution / seq,
    )


def split_list_file(root: str | Path, split: str, options: Any = None) -> Path:
    """The DAVIS split list of ``split``; :class:`InputError` naming the paths tried if none."""
    opts, root = layout_options(options), Path(root)
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


def davis_check_root(root: Path, opts: LayoutOptions, splits: list[str] | None) -> None:
    """:class:`InputError` naming the folder when ``root`` has no sequence folders under
    ``JPEGImages/<resolution>/``."""
    img = root / "JPEGImages" / opts.resolution
    require_dir(img, f"frame folder of a DAVIS tree at resolution {opts.resolution!r}")
    if not subdirs(img):
        raise InputError(f"{img}: holds no sequence folders")


def davis_list_sequences(root: Path, split: str | None, opts: LayoutOptions) -> list[str]:
    """The sequences of ``split``'s list (:func:`split_list_file`) that have a frame folder;
    every frame folder when ``split`` is None."""
    present = subdirs(root / "JPEGImages" / opts.resolution)
    if split is None:
        return present
    return listed_sequences(split_list_file(root, split, opts), present)


# ----------------------------------------------------------------------------------------------
# DAVIS ground truth
# ----------------------------------------------------------------------------------------------
def davis_ground_truth(
    files: list[Path], kept: np.ndarray, gt_dir: Path, opts: LayoutOptions, size: tuple[int, int]
) -> GroundTruth:
    """Masks of the ``kept`` frames (indices into ``files``) from ``gt_dir``, at ``size`` (H, W),
    matched to the frames by name (or by order when no name matches and the counts agree);
    ``opts.masks`` tells binary from indexed masks, ``opts.missing_masks`` what a kept frame
    without a mask is."""
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
        check_mask_size(p, a.shape, size, str(files[i]))
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


# ----------------------------------------------------------------------------------------------
# One reader per layout
# ----------------------------------------------------------------------------------------------
class LayoutReader(NamedTuple):
    """What a layout module gives; each takes the root as a Path and :class:`LayoutOptions`."""

    sequence_dirs: Callable[[Path, str, str | None, LayoutOptions], tuple[Path, Path]]
    check_root: Callable[[Path, LayoutOptions, list[str] | None], None]
    list_sequences: Callable[[Path, str | None, LayoutOptions], list[str]]
    ground_truth: Callable[
        [list[Path], np.ndarray, Path, LayoutOptions, tuple[int, int]], GroundTruth
    ]


READERS: dict[str, LayoutReader] = {
    "davis": LayoutReader(
        davis_sequence_dirs, davis_check_root, davis_list_sequences, davis_ground_truth
    ),
    "fbms59": LayoutReader(
        fbms_sequence_dirs, fbms_check_root, fbms_list_sequences, fbms_ground_truth
    ),
    "segtrackv2": LayoutReader(
        segtrackv2_sequence_dirs,
        segtrackv2_check_root,
        segtrackv2_list_sequences,
        segtrackv2_ground_truth,
    ),
}


def reader(layout: str) -> LayoutReader:
    """The reader of ``layout``; :class:`InputError` for a layout not in :data:`LAYOUTS`."""
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return READERS[layout]


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
    return reader(layout).sequence_dirs(Path(root), seq, split, layout_options(options))


def check_root(
    layout: str, root: str | Path, options: Any = None, splits: list[str] | None = None
) -> None:
    """:class:`InputError` naming the path if ``root`` is not a tree in ``layout``."""
    read = reader(layout)
    opts, root = layout_options(options), Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: raw dataset folder not found (set dataset.raw)")
    read.check_root(root, opts, splits)


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
    read = reader(layout)
    opts, root = layout_options(options), Path(root)
    check_root(layout, root, opts, None if split is None or layout != "fbms59" else [split])
    return read.list_sequences(root, split, opts)


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
    opts = layout_options(options)
    spec = spec or FrameSpec()
    frames_dir, gt_dir = sequence_dirs(layout, root, seq, split=split, options=opts)
    files, _ = list_frame_files(frames_dir)
    kept = spec.select(len(files))
    if len(kept) == 0:
        raise FrameError(f"{frames_dir}: start={spec.start} is past its {len(files)} frames")
    size = frame_size or image_size(files[int(kept[0])])
    gt = reader(layout).ground_truth(files, kept, gt_dir, opts, tuple(size))
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
    opts = layout_options(options)
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
    reader(layout)
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
