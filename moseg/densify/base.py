"""What every densifier takes and returns.

A densifier turns the tracks a classifier called moving into per-object pixel masks for every
frame of the video. It gets the frames themselves (RGB, uint8, full resolution) and all tracks
with their moving probability, so it can use static tracks as negative evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class TrackSet:
    """Tracks of one video in the frames' pixel coordinates (OpenCV convention: the centre of
    the top-left pixel is (0, 0)).

    ``moving`` is the classifier's decision (after its threshold rule); ``prob`` the moving
    probability behind it (1/0 for hard labels)."""

    tracks: np.ndarray  # [N, T, 2] float32 (x, y) px
    visibility: np.ndarray  # [N, T] bool
    query_frame: np.ndarray  # [N] int
    prob: np.ndarray  # [N] float32 in [0, 1]
    moving: np.ndarray  # [N] bool

    def __post_init__(self) -> None:
        N, T = self.visibility.shape
        if self.tracks.shape != (N, T, 2):
            raise ValueError(f"tracks {self.tracks.shape} do not match visibility {(N, T)}")
        for name in ("query_frame", "prob", "moving"):
            if getattr(self, name).shape != (N,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {(N,)}")

    @property
    def num_frames(self) -> int:
        return int(self.visibility.shape[1])

    def subset(self, keep: np.ndarray) -> TrackSet:
        return TrackSet(
            self.tracks[keep],
            self.visibility[keep],
            self.query_frame[keep],
            self.prob[keep],
            self.moving[keep],
        )


@dataclass
class DensifyResult:
    """``masks [T, H, W] uint8``: 0 background, 1..K objects (K <= 254)."""

    masks: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)  # per-object notes, timings, knobs

    @property
    def num_objects(self) -> int:
        return int(len(np.setdiff1d(np.unique(self.masks), [0])))


class Densifier(Protocol):
    """``densify(frames [T, H, W, 3] uint8 RGB, tracks) -> DensifyResult`` with masks of the
    frames' size; ``name`` goes into metrics and logs."""

    name: str

    def __call__(self, frames: np.ndarray, tracks: TrackSet) -> DensifyResult: ...


def check_inputs(frames: np.ndarray, tracks: TrackSet) -> tuple[int, int, int]:
    """(T, H, W) after checking that frames and tracks agree."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be [T, H, W, 3] uint8, got {frames.shape} {frames.dtype}")
    T, H, W = frames.shape[:3]
    if tracks.num_frames != T:
        raise ValueError(f"tracks cover {tracks.num_frames} frames, the video has {T}")
    return T, H, W
