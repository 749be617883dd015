"""Helpers for reading raw dataset layouts, shared by the converters.

Id and label images (:func:`read_id_map`, :func:`read_label_image`, the VOC colour map), the
dataset's own point tracks (rescaled to the kept frames, clamped, query frames drawn on a grid),
label-rule settings (:func:`float_settings`), and :class:`RawSequence` with
:func:`preprocess_masks` for datasets whose masks show only moving objects. Frames are read with
:func:`moseg.prep.frames.build_frames` or :func:`moseg.prep.frames.read_frames`; discovery and
jobs are in :mod:`moseg.datasets.common`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import cv2
import numpy as np

from moseg.io.contract import Sequence
from moseg.prep.base import TrackResult
from moseg.prep.frames import FrameError, Frames
from moseg.prep.pipeline import preprocess
from moseg.viz import davis_palette as voc_palette  # noqa: F401  (re-exported: VOC map)

S = TypeVar("S")


# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------
def float_settings(cls: type[S], d: Mapping[str, Any] | None, what: str) -> S:
    """The dataclass ``cls`` of float settings from the mapping ``d`` (defaults for what it does
    not set); a key ``cls`` does not have is a ValueError naming ``what`` settings."""
    d = dict(d or {})
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} settings {sorted(unknown)}")
    return cls(**{k: float(v) for k, v in d.items()})


# ----------------------------------------------------------------------------------------------
# Id and label images
# ----------------------------------------------------------------------------------------------
def read_id_map(path: Path) -> np.ndarray:
    """An instance-id image (palette, 8- or 16-bit grey PNG) as ``[H, W]`` integer ids.

    OpenCV would expand a palette PNG to colours, so PIL reads the indices."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"{path}: does not exist")
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
                raise ValueError(
                    f"{path}: is a {im.mode} image; expected instance ids (palette or grey PNG)"
                )
            ids = np.array(im)
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"{path}: cannot be read as an image ({e})") from e
    if ids.ndim != 2:
        raise ValueError(f"{path}: expected one channel of instance ids, got shape {ids.shape}")
    return ids.astype(np.int64)


def sized(img: np.ndarray, size: tuple[int, int], path: Path | str) -> np.ndarray:
    """``img`` if it is ``size`` (H, W) like the frames, else a ValueError naming ``path``."""
    if img.shape[:2] != tuple(size):
        raise ValueError(
            f"{path}: is {img.shape[1]}x{img.shape[0]}, but the frames are {size[1]}x{size[0]}"
        )
    return img


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3]`` RGB -> ``R * 65536 + G * 256 + B`` as int64 (FBMS's colour value)."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_label_image(path: Path) -> np.ndarray:
    """A label image as stored: ``[H, W]`` grey or ``[H, W, 3]`` RGB (alpha dropped)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FrameError(f"{path}: cannot be read as an image (corrupt or not an image)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return img


# ----------------------------------------------------------------------------------------------
# The dataset's own point tracks
# ----------------------------------------------------------------------------------------------
def rescale_points(xy: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """(x, y) px in a ``src`` (H, W) frame -> the same points in a ``dst`` (H, W) frame (pixel
    centres at integers, as cv2.resize aligns them)."""
    if tuple(src) == tuple(dst):
        return xy
    out = xy.astype(np.float32, copy=True)
    out[..., 0] = (out[..., 0] + 0.5) * (dst[1] / src[1]) - 0.5
    out[..., 1] = (out[..., 1] + 0.5) * (dst[0] / src[0]) - 0.5
    return out


def inside(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Points within the frame ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` (and finite)."""
    H, W = size
    x, y = xy[..., 0], xy[..., 1]
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(x)
            & np.isfinite(y)
            & (x >= -0.5)
            & (x <= W - 0.5)
            & (y >= -0.5)
            & (y <= H - 0.5)
        )


def finite_tracks(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Tracks with non-finite or far-away coordinates clamped (the contract wants finite values)."""
    bound = 4.0 * max(size)
    return np.clip(np.nan_to_num(xy, nan=-bound, posinf=bound, neginf=-bound), -bound, bound)


def grid_queries(
    visibility: np.ndarray, every: int, per_query: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Query frames ``0, every, 2 * every, ...``; for each, up to ``per_query`` of the tracks
    visible there, drawn without replacement. A track may serve several query frames (the trainer
    samples one query frame's tracks at a time). Returns rows into ``visibility`` and their query
    frames, ordered by query frame.

    The trackers' :func:`moseg.prep.base.query_grid` lays a pixel grid on the same query frames;
    here the points are the dataset's own tracks, so a random subset of the visible ones is drawn
    instead."""
    if every < 1 or per_query < 1:
        raise ValueError(
            f"need query_every >= 1 and tracks_per_query >= 1, got {every}, {per_query}"
        )
    rows, frames = [], []
    for q in range(0, visibility.shape[1], every):
        cand = np.flatnonzero(visibility[:, q])
        if len(cand) > per_query:
            cand = np.sort(rng.choice(cand, size=per_query, replace=False))
        rows.append(cand)
        frames.append(np.full(len(cand), q, np.int32))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    return np.concatenate(rows).astype(np.int64), np.concatenate(frames)


def sequence_rng(seed: int, name: str) -> np.random.Generator:
    """A generator fixed by the seed and the sequence name (same draw on every rerun)."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def frame_tracks(
    xy: np.ndarray, visible: np.ndarray, src: tuple[int, int], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's tracks ``xy [N, T, 2]`` (x, y) px in ``src`` (H, W) frames, seen where
    ``visible [N, T]``, in the kept frames of ``size``: ``(xy, visibility)``, visible only
    :func:`inside` the frame."""
    xy = rescale_points(xy, src, size)
    return xy, visible & inside(xy, size)


def grid_rows(
    visibility: np.ndarray, opts: Mapping[str, Any], name: str, every: int, per_query: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`grid_queries` with the settings ``query_every``, ``tracks_per_query`` (defaults
    ``every``, ``per_query``) and ``seed`` (default 0) of ``opts`` and sequence ``name``'s
    generator: ``(rows, query frames, a description for the provenance)``."""
    every = int(opts.get("query_every", every))
    rng = sequence_rng(int(opts.get("seed", 0)), name)
    rows, q = grid_queries(visibility, every, int(opts.get("tracks_per_query", per_query)), rng)
    return rows, q, f"grid every {every} frames"


def track_result(
    xy: np.ndarray,
    visibility: np.ndarray,
    rows: np.ndarray,
    query_frame: np.ndarray,
    size: tuple[int, int],
    info: dict[str, Any],
) -> TrackResult:
    """Rows ``rows`` of the dataset's tracks (:func:`frame_tracks`) with their query frames, as
    the pipeline takes them: coordinates clamped (:func:`finite_tracks`), confidence 1."""
    return TrackResult(
        tracks=finite_tracks(xy[rows], size).astype(np.float32),
        visibility=visibility[rows],
        confidence=np.ones(visibility[rows].shape, np.float32),
        query_frame=query_frame.astype(np.int32),
        info=info,
    )


# ----------------------------------------------------------------------------------------------
# Datasets whose masks show the moving objects only
# ----------------------------------------------------------------------------------------------
class RawSequence(NamedTuple):
    """A sequence read for conversion: unpack as ``frames, masks, annotated, info``."""

    frames: Frames  # the kept frames, possibly resized
    masks: np.ndarray  # [T, H, W] uint8 at the frames' (possibly resized) size
    annotated: np.ndarray  # [T] bool
    info: dict[str, Any]


def preprocess_masks(
    rs: RawSequence,
    prep: Mapping[str, Any],
    converter: str,
    version: int,
    *,
    name: str,
    source: str,
    split: str,
    **dataset: Any,
) -> Sequence:
    """The pipeline on ``rs`` with every annotated object moving. The provenance's ``dataset``
    entry holds ``converter``, ``version``, then ``dataset``, then ``rs.info`` as
    ``ground_truth``."""
    return preprocess(
        rs.frames,
        prep,
        name=name,
        source=source,
        split=split,
        masks=rs.masks,
        annotated=rs.annotated,
        object_moving=None,  # every annotated object moves
        extra_provenance={
            "dataset": {
                "converter": converter,
                "version": version,
                **dataset,
                "ground_truth": rs.info,
            }
        },
    )
