"""Interfaces every preprocessing back-end implements, and the helpers they share.

A back-end is a callable object built from a config group by :func:`hydra.utils.instantiate`:

- a **tracker** maps ``frames [T, H, W, 3] uint8 RGB`` to a :class:`TrackResult`;
- a **depth model** maps frames to ``[T, Hd, Wd] float32`` depth or disparity (attribute ``kind``);
- a **feature model** maps frames, tracks and query frames to one ``[N, C]`` vector per track.

Each has ``name`` and ``provenance()`` (a JSON-able dict of its settings and weights), which the
pipeline stores in the contract file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class TrackResult:
    """Point tracks in frame pixels, (x, y) with pixel centres at integers (the contract's)."""

    tracks: np.ndarray  # [N, T, 2] float32, finite everywhere
    visibility: np.ndarray  # [N, T] bool; true at each track's query frame
    confidence: np.ndarray  # [N, T] float32 in [0, 1]
    query_frame: np.ndarray  # [N] int32
    info: dict[str, Any] = field(default_factory=dict)  # statistics for logs and provenance

    def __post_init__(self) -> None:
        n, t = self.visibility.shape
        if self.tracks.shape != (n, t, 2) or self.confidence.shape != (n, t):
            raise ValueError(
                f"inconsistent track arrays: tracks {self.tracks.shape}, visibility "
                f"{self.visibility.shape}, confidence {self.confidence.shape}"
            )
        if self.query_frame.shape != (n,):
            raise ValueError(f"query_frame has shape {self.query_frame.shape}, expected ({n},)")

    @property
    def num_tracks(self) -> int:
        return int(self.visibility.shape[0])

    def sorted_by_query(self) -> TrackResult:
        """The same tracks ordered by query frame (stable), as the contract recommends."""
        order = np.argsort(self.query_frame, kind="stable")
        return TrackResult(
            self.tracks[order],
            self.visibility[order],
            self.confidence[order],
            self.query_frame[order],
            dict(self.info),
        )

    def inside_frame(self, height: int, width: int) -> TrackResult:
        """Learned trackers may place a visible point outside the frame (a point leaving the
        view). Those points become invisible; at its query frame, where a track is visible by
        definition, the point is clipped into the frame instead. The counts go into ``info``."""
        x, y = self.tracks[..., 0], self.tracks[..., 1]
        out = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
        n = self.num_tracks
        at_query = np.zeros_like(out)
        at_query[np.arange(n), self.query_frame] = True
        hidden = out & self.visibility & ~at_query
        clipped = out & at_query
        if not hidden.any() and not clipped.any():
            return self
        tracks = self.tracks.copy()
        vis = self.visibility & ~hidden
        q = tracks[np.arange(n), self.query_frame]
        q[:, 0] = np.clip(q[:, 0], -0.5, width - 0.5)
        q[:, 1] = np.clip(q[:, 1], -0.5, height - 0.5)
        tracks[np.arange(n), self.query_frame] = q
        info = {
            **self.info,
            "outside_frame_hidden": int(hidden.sum()),
            "outside_frame_clipped_at_query": int(clipped.sum()),
        }
        return TrackResult(tracks, vis, self.confidence, self.query_frame, info)


@runtime_checkable
class Tracker(Protocol):
    name: str

    def __call__(self, frames: np.ndarray) -> TrackResult: ...

    def provenance(self) -> dict[str, Any]: ...


@runtime_checkable
class DepthModel(Protocol):
    name: str
    kind: str  # "depth" or "disparity"

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...

    def provenance(self) -> dict[str, Any]: ...


@runtime_checkable
class FeatureModel(Protocol):
    name: str
    dim: int

    def __call__(
        self, frames: np.ndarray, tracks: np.ndarray, query_frame: np.ndarray
    ) -> np.ndarray: ...

    def provenance(self) -> dict[str, Any]: ...


class MissingBackendError(ImportError):
    """A configured back-end needs a package or a checkpoint that is not there."""


def require(module: str, backend: str, install: str) -> Any:
    """Import ``module`` for ``backend``, or raise :class:`MissingBackendError` saying how."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingBackendError(
            f"the {backend!r} back-end needs the Python package {module!r}, which is not "
            f"installed ({e}). Install it with: {install}"
        ) from e


def require_checkpoint(checkpoint: str | None, backend: str, what: str, how: str) -> Path:
    """The file ``checkpoint``, or :class:`MissingBackendError` saying that the tracker
    ``backend`` needs ``what`` and ``how`` to get it."""
    path = Path(checkpoint).expanduser() if checkpoint else None
    if path is None or not path.is_file():
        raise MissingBackendError(
            f"the {backend!r} back-end needs {what}, not found at {str(checkpoint)!r}. {how} and "
            "pass its path: tracker.checkpoint=PATH"
        )
    return path


def query_grid(
    num_frames: int,
    height: int,
    width: int,
    every: int,
    grid_px: float,
    margin_px: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Query points on a regular grid on frames ``0, every, 2*every, ...``.

    The grid is offset by half a cell on alternate query frames so that successive query frames
    sample different pixels. Returns ``points [M, 2]`` (x, y) and ``frames [M]``.
    """
    if every < 1 or grid_px <= 0:
        raise ValueError(f"need every >= 1 and grid_px > 0, got {every}, {grid_px}")
    pts, frs = [], []
    for i, q in enumerate(range(0, num_frames, every)):
        off = grid_px / 2 * (i % 2) + grid_px / 2
        xs = np.arange(margin_px + off - grid_px / 2, width - margin_px, grid_px)
        ys = np.arange(margin_px + off - grid_px / 2, height - margin_px, grid_px)
        xs, ys = xs[xs <= width - 1], ys[ys <= height - 1]
        gx, gy = np.meshgrid(xs, ys)
        p = np.stack([gx.ravel(), gy.ravel()], axis=1)
        pts.append(p)
        frs.append(np.full(len(p), q, np.int32))
    return np.concatenate(pts).astype(np.float32), np.concatenate(frs)


def grid_track_result(
    tracks: np.ndarray,
    confidence: np.ndarray,
    points: np.ndarray,
    query_frame: np.ndarray,
    t0: float,
    *,
    visibility: np.ndarray | None = None,
    pin_confidence: bool = False,
    **info: Any,
) -> TrackResult:
    """A model's tracks ``[N, T, 2]`` (frame px) of the query points ``points [N, 2]`` on frames
    ``query_frame [N]`` as a :class:`TrackResult`: non-finite coordinates zeroed, each track at
    its query frame put exactly on its query point and marked visible there (confidence 1 there
    too with ``pin_confidence``). ``visibility`` defaults to ``confidence > 0.5`` (confidence
    clipped to [0, 1] first); ``info`` goes into the statistics, after the query counts and
    before the visible fraction and the seconds since ``t0`` (:func:`time.perf_counter`)."""
    if visibility is None:
        confidence = np.clip(np.nan_to_num(confidence), 0.0, 1.0).astype(np.float32)
        visibility = confidence > 0.5
    tracks = np.nan_to_num(tracks, nan=0.0, posinf=0.0, neginf=0.0)
    idx = np.arange(len(query_frame))
    tracks[idx, query_frame] = points  # the query point itself, exactly
    visibility[idx, query_frame] = True  # contract: visible at the query frame
    if pin_confidence:
        confidence[idx, query_frame] = 1.0
    stats = {
        "num_queries": int(len(query_frame)),
        "query_frames": int(len(np.unique(query_frame))),
        **info,
        "visible_fraction": float(visibility.mean()) if visibility.size else 0.0,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return TrackResult(tracks, visibility, confidence, query_frame.astype(np.int32), stats)


def check_frames(frames: np.ndarray, what: str = "frames") -> None:
    """Raise ValueError unless ``frames`` is ``[T, H, W, 3] uint8`` with T >= 1."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 1:
        raise ValueError(
            f"{what}: expected [T, H, W, 3] uint8 RGB with T >= 1, got {frames.shape} "
            f"{frames.dtype}"
        )
