"""Monocular depth with Depth Anything V2 through Hugging Face ``transformers``.

The model predicts relative *disparity* (larger = nearer, affine-invariant), one map per frame at
the network's input resolution; the pipeline resizes and normalises it per video.

Also home of the small helpers the weight-based back-ends share (:func:`progress`,
:func:`hf_config`, :func:`load_hf_model`, :func:`on_device`, :func:`run_batches`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from moseg.prep.base import MissingBackendError, check_frames, require
from moseg.utils.device import resolve_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HF_INSTALL = "pip install 'moseg[hf]'  (or: pip install 'transformers>=4.45')"


def progress(total: int, desc: str) -> Any:
    """A tqdm bar on stderr, switched off when stderr is not a terminal (logs, CI, workers)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", leave=False, disable=not sys.stderr.isatty())


def _plain(x: Any) -> Any:
    """OmegaConf containers (nested anywhere) -> plain dicts and lists."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(x, DictConfig | ListConfig):
        return OmegaConf.to_container(x, resolve=True)
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def hf_config(config_cls: Any, config: Mapping[str, Any]) -> Any:
    """Build ``config_cls(**config)``; a ``backbone_config`` given as a dict becomes a config object
    (its ``model_type`` defaults to ``"dinov2"``), which both transformers 4.x and 5.x accept."""
    kwargs = _plain(dict(config))
    bb = kwargs.get("backbone_config")
    if isinstance(bb, dict):
        from transformers import AutoConfig

        bb = dict(bb)
        kwargs["backbone_config"] = AutoConfig.for_model(bb.pop("model_type", "dinov2"), **bb)
    return config_cls(**kwargs)


def load_hf_model(
    model_cls: Any,
    config_cls: Any,
    checkpoint: str | None,
    config: Mapping[str, Any] | None,
    backend: str,
    config_key: str,
    seed: int = 0,
) -> Any:
    """Random-initialised ``model_cls`` from ``config`` (seeded, so reproducible), else the weights
    of ``checkpoint`` (a Hugging Face model id or a local folder). A checkpoint that cannot be
    loaded raises :class:`MissingBackendError` saying how to provide it."""
    if config is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return model_cls(hf_config(config_cls, config))
    if not checkpoint:
        raise ValueError(f"{backend}: give a checkpoint or a config")
    try:
        return model_cls.from_pretrained(checkpoint)
    except (OSError, ValueError) as e:
        if Path(checkpoint).expanduser().is_dir():
            how = "The folder must hold the model's config.json and model.safetensors."
        else:
            how = (
                f"Download it once while online (e.g. `huggingface-cli download {checkpoint}`, "
                "which fills the Hugging Face cache under $HF_HOME; set HF_HUB_OFFLINE=1 on "
                "machines without internet), or copy the model folder (config.json + "
                "model.safetensors) anywhere and pass its path: "
                f"{config_key}.checkpoint=/path/to/folder"
            )
        raise MissingBackendError(
            f"the {backend!r} back-end could not load the checkpoint {checkpoint!r} ({e}). {how}"
        ) from e


def on_device(model: Any, device: str, fp16: bool) -> tuple[Any, torch.device, torch.dtype]:
    """``(model, device, dtype)``: ``model`` in eval mode on ``device`` (:func:`resolve_device`),
    in float16 when ``fp16`` and the device is CUDA, else float32."""
    dev = resolve_device(device)
    dtype = torch.float16 if fp16 and dev.type == "cuda" else torch.float32
    return model.to(dev, dtype).eval(), dev, dtype


def resize_shorter_side(h: int, w: int, size: int, multiple: int) -> tuple[int, int]:
    """(h', w'): the shorter side scaled to ``size``, aspect kept, both sides rounded to the
    nearest multiple of ``multiple`` (at least one multiple)."""
    s = size / min(h, w)
    return (
        max(multiple, round(h * s / multiple) * multiple),
        max(multiple, round(w * s / multiple) * multiple),
    )


def to_model_input(
    frames: np.ndarray, size: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``frames [B, H, W, 3] uint8`` -> ``[B, 3, h, w]`` resized (bicubic, antialiased, as PIL's
    resize in the HF processors) and ImageNet-normalised, on ``device`` in ``dtype``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    x = x.permute(0, 3, 1, 2).float() / 255.0
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        x = x.clamp(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)


def run_batches(
    fn: Callable[[torch.Tensor], np.ndarray],
    frames: np.ndarray,
    size: tuple[int, int],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    desc: str,
) -> np.ndarray:
    """``fn`` on ``frames [T, H, W, 3] uint8`` in batches of ``batch_size``, each made model input
    of ``size`` by :func:`to_model_input`, without gradients and with a progress bar; ``fn``'s
    arrays concatenated."""
    out = []
    with torch.inference_mode(), progress(len(frames), desc) as bar:
        for s in range(0, len(frames), batch_size):
            x = to_model_input(frames[s : s + batch_size], size, device, dtype)
            out.append(fn(x))
            bar.update(len(x))
    return np.concatenate(out)


class DepthAnythingV2:
    """Depth Anything V2 (relative disparity) on every frame.

    ``checkpoint`` is a Hugging Face model id or a local folder; ``config`` (a
    ``DepthAnythingConfig`` as a dict, its ``backbone_config`` may be a dict) builds a
    random-initialised model instead, for tests. Frames are resized so the shorter side is
    ``input_size`` (both sides multiples of 14, aspect kept) and ImageNet-normalised in torch, so no
    image processor has to be downloaded. ``fp16`` applies on CUDA only.
    """

    name = "depth_anything_v2"
    kind = "disparity"
    multiple = 14  # ViT patch size: input sides must be multiples of it

    def __init__(
        self,
        checkpoint: str | None = "depth-anything/Depth-Anything-V2-Small-hf",
        config: Mapping[str, Any] | None = None,
        device: str = "auto",
        input_size: int = 518,
        batch_size: int = 4,
        fp16: bool = True,
    ) -> None:
        transformers = require("transformers", self.name, HF_INSTALL)
        if input_size < self.multiple or batch_size < 1:
            raise ValueError(
                f"need input_size >= 14 and batch_size >= 1, got {input_size}, {batch_size}"
            )
        self.checkpoint = None if config is not None else checkpoint
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        model = load_hf_model(
            transformers.DepthAnythingForDepthEstimation,
            transformers.DepthAnythingConfig,
            checkpoint,
            config,
            self.name,
            "depth",
        )
        self.model, self.device, self.dtype = on_device(model, device, fp16)

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the network sees for frames of ``height x width`` (also the output size)."""
        return resize_shorter_side(height, width, self.input_size, self.multiple)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``frames [T, H, W, 3] uint8 RGB`` -> disparity ``[T, h, w] float32`` at the model's
        resolution (:meth:`input_shape`); the caller resizes to the frame size."""
        check_frames(frames)
        size = self.input_shape(*frames.shape[1:3])

        def disparity(x: torch.Tensor) -> np.ndarray:
            d = self.model(pixel_values=x).predicted_depth  # [B, h, w]
            if d.ndim == 4:  # some versions keep a channel axis
                d = d[:, 0]
            if tuple(d.shape[-2:]) != size:
                d = F.interpolate(d[:, None].float(), size=size, mode="bilinear")[:, 0]
            return d.float().cpu().numpy()

        out = run_batches(
            disparity, frames, size, self.batch_size, self.device, self.dtype, self.name
        )
        return out.astype(np.float32, copy=False)

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checkpoint": self.checkpoint or "random-init",
            "input_size": self.input_size,
            "kind": self.kind,
            "dtype": str(self.dtype).removeprefix("torch."),
        }
