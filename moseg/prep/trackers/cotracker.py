"""CoTracker (v3 offline by default) point tracks through Meta's ``cotracker`` package.

``CoTrackerPredictor`` takes the video at full size ``[B, T, 3, H, W]`` (float, 0..255) and queries
``[B, N, 3]`` as ``(t, x, y)`` in frame pixels; it resizes internally with ``align_corners=True``
scaling, so its coordinates have pixel centres at integers, as the contract's: no conversion is
needed. It returns ``tracks [B, T, N, 2]`` (x, y) and ``visibility [B, T, N]`` (boolean after its
own threshold; a float output is read as a probability).
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moseg.prep.base import (
    TrackResult,
    check_frames,
    grid_track_result,
    query_grid,
    require,
    require_checkpoint,
)
from moseg.utils.device import resolve_device

INSTALL = "pip install 'cotracker @ git+https://github.com/facebookresearch/co-tracker'"
CHECKPOINT_URL = "https://huggingface.co/facebook/cotracker3/resolve/main/scaled_offline.pth"


class CoTrackerTracker:
    """CoTracker on a grid of query points (every ``query_every`` frames, ``grid_px`` apart).

    - ``checkpoint``: path of the CoTracker checkpoint (``scaled_offline.pth`` for CoTracker3
      offline); ``offline``, ``v2``, ``window_len`` are passed to ``CoTrackerPredictor`` when its
      version accepts them.
    - ``backward_tracking``: also track backwards from each query frame (needed for queries after
      frame 0 to have positions in earlier frames).
    - ``chunk_size``: queries per forward pass (memory grows with it; CoTracker tracks each chunk's
      points jointly).
    """

    name = "cotracker"

    def __init__(
        self,
        checkpoint: str = "checkpoints/scaled_offline.pth",
        offline: bool = True,
        v2: bool = False,
        window_len: int = 60,
        backward_tracking: bool = True,
        query_every: int = 8,
        grid_px: float = 8,
        chunk_size: int = 2048,
        device: str = "auto",
    ) -> None:
        require("cotracker", self.name, INSTALL)
        predictor = require("cotracker.predictor", self.name, INSTALL)
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        path = require_checkpoint(
            checkpoint,
            self.name,
            "a CoTracker checkpoint",
            f"Download CoTracker3 offline from {CHECKPOINT_URL}",
        )
        self.checkpoint = str(path)
        self.backward_tracking = bool(backward_tracking)
        self.query_every = int(query_every)
        self.grid_px = float(grid_px)
        self.chunk_size = int(chunk_size)
        self.device = resolve_device(device)
        cls = predictor.CoTrackerPredictor
        wanted = {"offline": bool(offline), "v2": bool(v2), "window_len": int(window_len)}
        params = inspect.signature(cls).parameters
        self.arch = {k: v for k, v in wanted.items() if k in params}  # older versions: fewer
        self.model = cls(checkpoint=self.checkpoint, **self.arch).to(self.device).eval()

    def __call__(self, frames: np.ndarray) -> TrackResult:
        """``frames [T, H, W, 3] uint8 RGB`` -> tracks of the query grid, in frame pixels."""
        check_frames(frames)
        t0 = time.perf_counter()
        T, H, W = frames.shape[:3]
        pts, qf = query_grid(T, H, W, every=self.query_every, grid_px=self.grid_px)
        q = torch.from_numpy(np.concatenate([qf[:, None], pts], 1).astype(np.float32))  # (t, x, y)
        tracks, vis = [], []
        with torch.inference_mode():
            video = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
            video = video.permute(0, 3, 1, 2)[None].float()  # [1, T, 3, H, W], 0..255
            for s in range(0, len(q), self.chunk_size):
                tr, vi = self.model(
                    video,
                    queries=q[s : s + self.chunk_size][None].to(self.device),
                    backward_tracking=self.backward_tracking,
                )
                tracks.append(tr[0].float().transpose(0, 1).cpu())  # [n, T, 2]
                vis.append(vi[0].reshape(T, -1).transpose(0, 1).cpu())  # [n, T]
        tr = torch.cat(tracks).numpy().astype(np.float32)
        v = torch.cat(vis)
        if v.dtype == torch.bool:  # thresholded by CoTracker itself
            seen = v.numpy()
            return grid_track_result(
                tr, seen.astype(np.float32), pts, qf, t0, visibility=seen, pin_confidence=True
            )
        # a float output is a probability
        return grid_track_result(tr, v.float().numpy(), pts, qf, t0, pin_confidence=True)

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": "CoTracker (cotracker.predictor.CoTrackerPredictor)",
            "checkpoint": Path(self.checkpoint).name,
            "backward_tracking": self.backward_tracking,
            "query_every": self.query_every,
            "grid_px": self.grid_px,
            "chunk_size": self.chunk_size,
            **self.arch,
        }
