"""Frames (+ optional ground truth) -> one contract :class:`~moseg.io.contract.Sequence`.

Every converter and ``moseg preprocess`` go through :func:`preprocess`, so real videos, benchmark
clips and training data get the same tracker, depth and features. ``prep`` is the plain-dict form
of the ``tracker``, ``depth``, ``features`` and ``prep`` config groups (see
moseg/conf/prepare.yaml).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from moseg.io.contract import (
    LABEL_UNKNOWN,
    Sequence,
    normalise_depth,
    sample_depth,
)
from moseg.prep.base import MissingBackendError, TrackResult, check_frames
from moseg.prep.frames import Frames
from moseg.prep.labels import label_from_masks

log = logging.getLogger(__name__)

PIPELINE_VERSION = 1
_BUILT: dict[str, Any] = {}  # back-ends built in this process, by config


def build_backend(cfg: Mapping[str, Any] | None) -> Any:
    """Instantiate a back-end config (``_target_`` + arguments); None or a null target: none.

    Built objects are cached per process, so a worker converting many sequences loads a model once.
    """
    if not cfg or cfg.get("_target_") is None:
        return None
    key = json.dumps(dict(cfg), sort_keys=True, default=str)
    if key not in _BUILT:
        from hydra.utils import instantiate

        try:
            _BUILT[key] = instantiate(dict(cfg), _convert_="all")
        except Exception as e:
            # Hydra wraps constructor errors; show a missing package or checkpoint as it is
            cause = e.__cause__
            if isinstance(cause, MissingBackendError | ValueError | FileNotFoundError):
                raise cause from None
            raise
    return _BUILT[key]


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Instance masks ``[T, H, W]`` to ``size`` (H, W) with nearest-neighbour sampling."""
    if masks.shape[1:] == tuple(size):
        return masks
    h, w = size
    return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in masks])


def resize_depth(depth: np.ndarray, max_side: int | None) -> np.ndarray:
    """Depth maps ``[T, H, W]`` downscaled (area) so the longer side is at most ``max_side``."""
    T, H, W = depth.shape
    if not max_side or max(H, W) <= max_side:
        return depth.astype(np.float32)
    s = max_side / max(H, W)
    size = (max(1, round(W * s)), max(1, round(H * s)))
    return np.stack([cv2.resize(d, size, interpolation=cv2.INTER_AREA) for d in depth])


def preprocess(
    frames: Frames,
    prep: Mapping[str, Any],
    *,
    name: str,
    source: str,
    split: str,
    masks: np.ndarray | None = None,
    annotated: np.ndarray | None = None,
    object_moving: np.ndarray | None = None,
    tracks: TrackResult | None = None,
    label: np.ndarray | None = None,
    instance: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    depth_kind: str = "depth",
    extra_provenance: Mapping[str, Any] | None = None,
) -> Sequence:
    """Track, label, add depth and features, and pack the result.

    - ``masks [T, H, W]`` (in the frames' size) label the tracks with
      :func:`~moseg.prep.labels.label_from_masks`; without masks and without ``label`` every track
      is unknown (-1), as for a user's own video.
    - ``tracks``/``label``/``instance`` given by a dataset (its own ground-truth tracks) replace
      the tracker and the mask rule; ``depth [T, H', W']`` given by a dataset replaces the depth
      model.
    """
    video = frames.frames
    check_frames(video, frames.path)
    T, H, W = video.shape[:3]
    timing: dict[str, float] = {}
    opts = dict(prep.get("prep") or {})

    t0 = time.perf_counter()
    tracker = None
    if tracks is None:
        tracker = build_backend(prep.get("tracker"))
        if tracker is None:
            raise ValueError("no tracker configured and no tracks given")
        tracks = tracker(video).inside_frame(H, W)
        if label is not None or instance is not None:
            raise ValueError("label/instance can only be given together with tracks")
    # the contract wants tracks grouped by query frame; given labels follow their tracks
    order = np.argsort(tracks.query_frame, kind="stable")
    tracks = tracks.sorted_by_query()
    label = None if label is None else np.asarray(label)[order]
    instance = None if instance is None else np.asarray(instance)[order]
    timing["track_s"] = time.perf_counter() - t0
    if tracks.tracks.shape[1] != T:
        raise ValueError(f"{name}: tracker returned {tracks.tracks.shape[1]} frames, video has {T}")

    if masks is not None and masks.shape != (T, H, W):
        raise ValueError(
            f"{name}: masks have shape {masks.shape}, frames are {T}x{H}x{W}; "
            "resize them with resize_masks first"
        )
    if label is None:
        if masks is not None:
            label, inst = label_from_masks(
                tracks.tracks,
                tracks.query_frame,
                masks,
                object_moving=object_moving,
                ignore_boundary_px=int(opts.get("ignore_boundary_px", 0)),
                annotated=annotated,
            )
            instance = inst if instance is None else instance
        else:
            label = np.full(tracks.num_tracks, LABEL_UNKNOWN, np.int8)

    t0 = time.perf_counter()
    depth_model = None
    depth_raw = depth
    if depth_raw is None:
        depth_model = build_backend(prep.get("depth"))
        if depth_model is not None:
            depth_raw = depth_model(video)
            depth_kind = depth_model.kind
    depth_n = track_depth = raw_range = None
    if depth_raw is not None:
        depth_n, raw_range = normalise_depth(
            resize_depth(depth_raw, opts.get("depth_max_side", 256))
        )
        track_depth = sample_depth(depth_n, tracks.tracks, (H, W)).astype(np.float16)
    timing["depth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    feat_model = build_backend(prep.get("features"))
    features = None
    if feat_model is not None:
        features = np.asarray(
            feat_model(video, tracks.tracks, tracks.query_frame), dtype=np.float16
        )
    timing["features_s"] = time.perf_counter() - t0
    timing = {k: round(v, 3) for k, v in timing.items()}
    log.info(
        "%s: %d frames %dx%d, %d tracks (%s)",
        name,
        T,
        W,
        H,
        tracks.num_tracks,
        ", ".join(f"{k} {v:.2f}" for k, v in timing.items()),
    )

    provenance: dict[str, Any] = {
        "pipeline": {"version": PIPELINE_VERSION, "prep": opts},
        "frames": frames.provenance(),
        "tracker": tracker.provenance() if tracker else {"name": "dataset"},
        "tracker_info": tracks.info,
        "depth": (
            depth_model.provenance()
            if depth_model
            else {"name": "dataset" if depth is not None else "none"}
        ),
        "features": feat_model.provenance() if feat_model else {"name": "none"},
        "labels": {
            "rule": "given" if masks is None and label is not None else "masks_at_query_frame",
            "ignore_boundary_px": int(opts.get("ignore_boundary_px", 0)),
        },
        "timing": timing,
    }
    provenance.update(extra_provenance or {})
    save_masks = masks is not None and opts.get("save_masks", True)
    return Sequence(
        name=name,
        tracks=tracks.tracks.astype(np.float32),
        visibility=tracks.visibility.astype(bool),
        confidence=np.clip(tracks.confidence, 0, 1).astype(np.float16),
        query_frame=tracks.query_frame.astype(np.int32),
        label=np.asarray(label, np.int8),
        height=H,
        width=W,
        fps=frames.fps,
        source=source,
        split=split,
        provenance=provenance,
        instance=None if instance is None else np.asarray(instance, np.int32),
        track_depth=track_depth,
        features=features,
        depth=depth_n,
        depth_kind=depth_kind,
        depth_raw_range=raw_range,
        masks=masks.astype(np.uint8) if save_masks else None,
        object_moving=(
            np.asarray(object_moving, bool) if save_masks and object_moving is not None else None
        ),
        frames=video if opts.get("save_frames", False) else None,
    )
