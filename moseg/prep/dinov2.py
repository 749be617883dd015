"""Semantic point features from DINOv2 (through Hugging Face ``transformers``).

As in the reference method, a ViT-B/14 is run with *overlapping* patches (patch-embedding stride 7
instead of 14) and the **key** projection of the last block is taken as the feature map; each track
gets the map sampled bilinearly at its position in its query frame. Only query frames are encoded.

Coordinate mapping (frame pixels -> token grid), used by :func:`frame_to_grid`:

- Frame pixel centres are integers, a frame of width ``W`` spans ``[-0.5, W - 0.5]`` (the
  contract's convention). The frame is resized to ``Wr`` (no crop), so in *edge* coordinates of the
  resized image (``u`` in ``[0, Wr]``, pixel ``k`` covering ``[k, k + 1)``) a frame point is
  ``u = (x + 0.5) * Wr / W``.
- Token ``j`` of the patch embedding (kernel ``p``, stride ``s``) covers resized pixels
  ``[j * s, j * s + p)``; its centre is ``u_j = j * s + p / 2``.
- So the grid coordinate (token centres at integers, as :func:`moseg.io.contract.bilinear` takes)
  is ``gx = ((x + 0.5) * Wr / W - p / 2) / s``, and likewise ``gy`` with ``H, Hr``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from moseg.io.contract import bilinear
from moseg.prep.base import check_frames, require
from moseg.prep.depth import HF_INSTALL, load_hf_model, on_device, run_batches

FACETS = ("key", "query", "value", "token")
# attention projections by facet: transformers 5.x names first, then 4.x (Dinov2SelfAttention)
_PROJECTIONS = {
    "key": ("k_proj", "attention.key"),
    "query": ("q_proj", "attention.query"),
    "value": ("v_proj", "attention.value"),
}


def valid_side(length: float, patch: int, stride: int) -> int:
    """The side nearest ``length`` that patches of ``patch`` px at ``stride`` tile exactly:
    ``patch + k * stride`` (at least ``patch``)."""
    return patch + stride * max(0, round((length - patch) / stride))


def frame_to_grid(
    x: np.ndarray,
    y: np.ndarray,
    frame_hw: tuple[int, int],
    input_hw: tuple[int, int],
    patch: int,
    stride: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame pixel coordinates -> token-grid coordinates (token centres at integers); see the
    module docstring for the derivation."""
    (H, W), (Hr, Wr) = frame_hw, input_hw
    gx = ((np.asarray(x, np.float64) + 0.5) * (Wr / W) - patch / 2) / stride
    gy = ((np.asarray(y, np.float64) + 0.5) * (Hr / H) - patch / 2) / stride
    return gx, gy


def _projection(attention: torch.nn.Module, facet: str) -> torch.nn.Module:
    for path in _PROJECTIONS[facet]:
        m: Any = attention
        for part in path.split("."):
            m = getattr(m, part, None)
        if isinstance(m, torch.nn.Module):
            return m
    raise AttributeError(
        f"no {facet} projection found in {type(attention).__name__} (looked for "
        f"{', '.join(_PROJECTIONS[facet])}); unsupported transformers version?"
    )


class DinoV2Features:
    """DINOv2 features per track, sampled at the track's query-frame position.

    - ``checkpoint``: Hugging Face model id or local folder; ``config`` (a ``Dinov2Config`` as a
      dict) builds a seeded random-initialised model instead (tests).
    - ``layer``: which transformer block (python index, -1 = last); ``facet``: ``key``, ``query``
      or ``value`` (that block's attention projection, heads concatenated) or ``token`` (the
      block's output, before the final layer norm).
    - ``stride``: patch-embedding stride in resized pixels (< patch size = overlapping patches;
      the position embeddings are interpolated to the resulting token grid).
    - ``input_size``: the longer side of the resized frame, rounded to ``patch + k * stride``;
      ``None``: the frame's own size, each side rounded up to a multiple of the patch (the
      release's; 480x854 -> 490x854, a 69x121 token grid at stride 7).
    - ``normalize``: L2-normalise each output vector. ``fp16`` applies on CUDA only.
    """

    name = "dinov2"

    def __init__(
        self,
        checkpoint: str | None = "facebook/dinov2-base",
        config: Mapping[str, Any] | None = None,
        layer: int = -1,
        facet: str = "key",
        stride: int = 7,
        input_size: int | None = 448,
        device: str = "auto",
        fp16: bool = True,
        normalize: bool = False,
        batch_size: int = 4,
    ) -> None:
        transformers = require("transformers", self.name, HF_INSTALL)
        if facet not in FACETS:
            raise ValueError(f"facet must be one of {FACETS}, got {facet!r}")
        self.checkpoint = None if config is not None else checkpoint
        self.facet = facet
        self.normalize = bool(normalize)
        self.batch_size = max(1, int(batch_size))
        model = load_hf_model(
            transformers.Dinov2Model,
            transformers.Dinov2Config,
            checkpoint,
            config,
            self.name,
            "features",
        )
        self.model, self.device, self.dtype = on_device(model, device, fp16)
        cfg = self.model.config
        p = cfg.patch_size
        self.patch = int(p if isinstance(p, int) else p[0])
        self.dim = int(cfg.hidden_size)
        if not 1 <= stride <= self.patch:
            raise ValueError(f"stride must be in [1, {self.patch}], got {stride}")
        self.stride = int(stride)
        self.input_size = None if input_size is None else valid_side(input_size, self.patch, stride)
        if input_size is None and self.patch % self.stride:
            raise ValueError(
                f"input_size=null (sides rounded up to multiples of the patch {self.patch}) needs "
                f"a stride that divides the patch, got {stride}"
            )
        layers = self.model.encoder.layer
        if not -len(layers) <= layer < len(layers):
            raise ValueError(f"layer {layer} out of range for {len(layers)} blocks")
        self.layer = layer % len(layers)
        self._proj = None if facet == "token" else _projection(layers[self.layer].attention, facet)
        self._pos_cache: dict[tuple[int, int], torch.Tensor] = {}

    # geometry ------------------------------------------------------------------------------------
    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """(Hr, Wr) the frames are resized to: the longer side ``input_size``, the other scaled
        with it, each rounded to a side the patches tile exactly; ``input_size=None``: each side
        rounded up to a multiple of the patch (it tiles at any stride dividing the patch)."""
        if self.input_size is None:
            p = self.patch
            return -(-height // p) * p, -(-width // p) * p
        s = self.input_size / max(height, width)
        return (
            valid_side(height * s, self.patch, self.stride),
            valid_side(width * s, self.patch, self.stride),
        )

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) token grid for frames of ``height x width``."""
        Hr, Wr = self.input_shape(height, width)
        return (Hr - self.patch) // self.stride + 1, (Wr - self.patch) // self.stride + 1

    # network -------------------------------------------------------------------------------------
    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        """Position embeddings ``[1, 1 + h*w, C]`` for an ``h x w`` token grid (bicubic
        interpolation of the trained square grid, in float32)."""
        if (h, w) not in self._pos_cache:
            pe = self.model.embeddings.position_embeddings  # [1, 1 + n*n, C]
            cls_pe, patch_pe = pe[:, :1], pe[:, 1:]
            n = math.isqrt(patch_pe.shape[1])
            if (h, w) != (n, n):
                g = patch_pe.reshape(1, n, n, -1).permute(0, 3, 1, 2).float()
                g = F.interpolate(g, size=(h, w), mode="bicubic", align_corners=False)
                patch_pe = g.permute(0, 2, 3, 1).reshape(1, h * w, -1).to(pe.dtype)
            self._pos_cache[(h, w)] = torch.cat([cls_pe, patch_pe], dim=1)
        return self._pos_cache[(h, w)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``[B, 3, Hr, Wr]`` -> feature maps ``[B, h, w, C]``."""
        emb = self.model.embeddings
        conv = emb.patch_embeddings.projection
        t = F.conv2d(x.to(conv.weight.dtype), conv.weight, conv.bias, stride=self.stride)
        B, C, h, w = t.shape
        tokens = torch.cat([emb.cls_token.expand(B, -1, -1), t.flatten(2).transpose(1, 2)], 1)
        hidden = tokens + self._pos_embed(h, w)
        captured: list[torch.Tensor] = []
        hook = None
        if self._proj is not None:
            hook = self._proj.register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            for block in self.model.encoder.layer[: self.layer + 1]:
                out = block(hidden)
                hidden = out[0] if isinstance(out, tuple) else out  # 4.x returns tuples
        finally:
            if hook is not None:
                hook.remove()
        out = captured[-1] if captured else hidden  # [B, 1 + h*w, C]
        return out[:, 1:].reshape(B, h, w, out.shape[-1])

    def _maps(self, frames: np.ndarray) -> np.ndarray:
        """``frames [Q, H, W, 3] uint8`` -> token maps ``[Q, h, w, C] float32``."""
        return run_batches(
            lambda x: self._forward(x).float().cpu().numpy(),
            frames,
            self.input_shape(*frames.shape[1:3]),
            self.batch_size,
            self.device,
            self.dtype,
            self.name,
        )

    def _finish(self, feats: np.ndarray) -> np.ndarray:
        if self.normalize:
            feats = feats / np.maximum(np.linalg.norm(feats, axis=-1, keepdims=True), 1e-6)
        return feats

    # public --------------------------------------------------------------------------------------
    def __call__(
        self, frames: np.ndarray, tracks: np.ndarray, query_frame: np.ndarray
    ) -> np.ndarray:
        """``frames [T, H, W, 3] uint8``, ``tracks [N, T, 2]`` (x, y) frame px, ``query_frame
        [N]`` -> ``[N, C] float16``: each track's feature at its query-frame position."""
        check_frames(frames)
        T, H, W = frames.shape[:3]
        tracks = np.asarray(tracks, np.float32)
        query_frame = np.asarray(query_frame).astype(np.int64)
        N = len(query_frame)
        if tracks.shape != (N, T, 2):
            raise ValueError(f"tracks have shape {tracks.shape}, expected ({N}, {T}, 2)")
        if N == 0:
            return np.zeros((0, self.dim), np.float16)
        if query_frame.min() < 0 or query_frame.max() >= T:
            raise ValueError(
                f"query frames must be in [0, {T}), got {query_frame.min()}..{query_frame.max()}"
            )
        qs = np.unique(query_frame)
        maps = self._maps(frames[qs])  # only the distinct query frames are encoded
        xy = tracks[np.arange(N), query_frame]  # [N, 2]
        gx, gy = frame_to_grid(
            xy[:, 0], xy[:, 1], (H, W), self.input_shape(H, W), self.patch, self.stride
        )
        feats = bilinear(maps, gx, gy, lead=(np.searchsorted(qs, query_frame),))
        return self._finish(feats).astype(np.float16)

    def feature_map(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """One frame ``[H, W, 3] uint8`` -> ``(map [h, w, C] float32, cell_px)`` in the contract's
        ``feature_maps`` convention: cell ``(i, j)`` is centred at frame pixel
        ``((j + 0.5) * cell_px - 0.5, (i + 0.5) * cell_px - 0.5)``, ``cell_px`` = the token stride
        in frame pixels. The token grid (centred differently, see the module docstring) is
        resampled bilinearly onto these cells, so sampling the map agrees with :meth:`__call__`
        at cell centres."""
        check_frames(frame[None], "frame")
        H, W = frame.shape[:2]
        Hr, Wr = self.input_shape(H, W)
        tok = self._maps(frame[None])[0]
        cell = self.stride * (W / Wr + H / Hr) / 2
        hc, wc = max(1, math.ceil(H / cell)), max(1, math.ceil(W / cell))
        xs = (np.arange(wc) + 0.5) * cell - 0.5
        ys = (np.arange(hc) + 0.5) * cell - 0.5
        gx, gy = frame_to_grid(xs[None, :], ys[:, None], (H, W), (Hr, Wr), self.patch, self.stride)
        gx, gy = np.broadcast_arrays(gx, gy)
        return self._finish(bilinear(tok, gx, gy)), float(cell)

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checkpoint": self.checkpoint or "random-init",
            "layer": self.layer,
            "facet": self.facet,
            "stride": self.stride,
            "patch": self.patch,
            "input_size": self.input_size,
            "normalize": self.normalize,
            "dim": self.dim,
            "dtype": str(self.dtype).removeprefix("torch."),
        }
