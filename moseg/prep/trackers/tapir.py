"""BootsTAPIR point tracks through DeepMind's ``tapnet`` PyTorch model.

Conventions: tapnet works in *raster* coordinates whose origin is the top-left corner of the
top-left pixel (pixel centres at ``i + 0.5``), at the resized resolution; the contract puts pixel
centres at integers. So a frame point ``x`` is ``(x + 0.5) * rw / W`` for the model, and a model
output ``x'`` is ``x' * W / rw - 0.5`` in the frame. Queries are ``(t, y, x)``; outputs are
``tracks [B, N, T, 2]`` (x, y) and ``occlusion`` / ``expected_dist`` logits ``[B, N, T]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from moseg.prep.base import (
    TrackResult,
    check_frames,
    grid_track_result,
    query_grid,
    require,
    require_checkpoint,
)
from moseg.utils.device import resolve_device

INSTALL = "pip install 'tapnet @ git+https://github.com/google-deepmind/tapnet'"
CHECKPOINT_URL = "https://storage.googleapis.com/dm-tapnet/bootstap/bootstapir_checkpoint_v2.pt"


def tapir_confidence(occlusion: torch.Tensor, expected_dist: torch.Tensor) -> torch.Tensor:
    """TAPIR's visibility probability from its logits: ``(1 - σ(occ)) * (1 - σ(expected_dist))``;
    a point is visible where this exceeds 0.5."""
    return (1 - torch.sigmoid(occlusion)) * (1 - torch.sigmoid(expected_dist))


class TapirTracker:
    """BootsTAPIR on a grid of query points (every ``query_every`` frames, ``grid_px`` apart).

    - ``checkpoint``: path of the PyTorch BootsTAPIR checkpoint (``bootstapir_checkpoint_v2.pt``).
    - ``resize``: (height, width) the video is resized to for the model, multiples of 8; None keeps
      the frame size (which must then be multiples of 8). BootsTAPIR was trained at 256x256.
    - ``chunk_size``: queries per forward pass (each pass re-encodes the video);
      ``query_chunk_size``: queries per cost-volume chunk inside tapnet (memory).
    - ``pyramid_level``, ``extra_convs``, ``num_pips_iter``: architecture (BootsTAPIR: 1, True, 4).
    """

    name = "tapir"

    def __init__(
        self,
        checkpoint: str = "checkpoints/bootstapir_checkpoint_v2.pt",
        resize: Sequence[int] | None = (256, 256),
        query_every: int = 8,
        grid_px: float = 8,
        chunk_size: int = 4096,
        query_chunk_size: int = 64,
        pyramid_level: int = 1,
        extra_convs: bool = True,
        num_pips_iter: int = 4,
        device: str = "auto",
    ) -> None:
        require("tapnet", self.name, INSTALL)
        tapir_model = require("tapnet.torch.tapir_model", self.name, INSTALL)
        if resize is not None:
            resize = (int(resize[0]), int(resize[1]))
            if resize[0] % 8 or resize[1] % 8 or min(resize) < 8:
                raise ValueError(f"resize must be multiples of 8, got {resize}")
        if chunk_size < 1 or query_chunk_size < 1:
            raise ValueError("chunk_size and query_chunk_size must be >= 1")
        path = require_checkpoint(
            checkpoint,
            self.name,
            "the BootsTAPIR PyTorch checkpoint",
            f"Download it from {CHECKPOINT_URL}",
        )
        self.checkpoint = str(path)
        self.resize = resize
        self.query_every = int(query_every)
        self.grid_px = float(grid_px)
        self.chunk_size = int(chunk_size)
        self.query_chunk_size = int(query_chunk_size)
        self.arch = {
            "pyramid_level": int(pyramid_level),
            "extra_convs": bool(extra_convs),
            "num_pips_iter": int(num_pips_iter),
        }
        self.device = resolve_device(device)
        model = tapir_model.TAPIR(**self.arch)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model = model.to(self.device).eval()

    def _video(self, frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """``[T, H, W, 3] uint8`` -> ``[1, T, h, w, 3]`` float in [-1, 1] on the device."""
        out = []
        for s in range(0, len(frames), 16):  # resize in slices: full-size float video is big
            x = torch.from_numpy(np.ascontiguousarray(frames[s : s + 16])).to(self.device)
            x = x.permute(0, 3, 1, 2).float()
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(
                    x, size=size, mode="bilinear", align_corners=False, antialias=True
                )
            out.append((x / 127.5 - 1.0).clamp(-1, 1).permute(0, 2, 3, 1))
        return torch.cat(out)[None]

    def __call__(self, frames: np.ndarray) -> TrackResult:
        """``frames [T, H, W, 3] uint8 RGB`` -> tracks of the query grid, in frame pixels."""
        check_frames(frames)
        t0 = time.perf_counter()
        T, H, W = frames.shape[:3]
        rh, rw = self.resize or (H, W)
        if rh % 8 or rw % 8:
            raise ValueError(
                f"TAPIR needs sizes that are multiples of 8, got {rh}x{rw}; set resize"
            )
        pts, qf = query_grid(T, H, W, every=self.query_every, grid_px=self.grid_px)
        # (t, y, x) in the model's raster coordinates (pixel corners at integers)
        q = np.stack([qf, (pts[:, 1] + 0.5) * rh / H, (pts[:, 0] + 0.5) * rw / W], 1)
        q = torch.from_numpy(q.astype(np.float32))
        tracks, conf = [], []
        with torch.inference_mode():
            video = self._video(frames, (rh, rw))
            for s in range(0, len(q), self.chunk_size):
                out = self.model(
                    video,
                    q[s : s + self.chunk_size][None].to(self.device),
                    query_chunk_size=self.query_chunk_size,
                )
                tracks.append(out["tracks"][0].float().cpu())
                conf.append(tapir_confidence(out["occlusion"][0], out["expected_dist"][0]).cpu())
        tr = torch.cat(tracks).numpy().astype(np.float32)  # [N, T, 2] resized raster coords
        confidence = torch.cat(conf).float().numpy().astype(np.float32)
        tr[..., 0] = tr[..., 0] * (W / rw) - 0.5
        tr[..., 1] = tr[..., 1] * (H / rh) - 0.5
        return grid_track_result(tr, confidence, pts, qf, t0, model_size=[int(rh), int(rw)])

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": "BootsTAPIR (tapnet.torch)",
            "checkpoint": Path(self.checkpoint).name,
            "resize": list(self.resize) if self.resize else None,
            "query_every": self.query_every,
            "grid_px": self.grid_px,
            "chunk_size": self.chunk_size,
            **self.arch,
        }
