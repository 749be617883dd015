"""Reading classifier checkpoints of either format, without Lightning.

Two formats are accepted, told apart by their contents (never by the file name):

- **moseg**: ``{'moseg': {...}, 'state_dict': {'net.<param>': ...}}``, written by ``train.py``,
  ``python -m moseg.training.export`` and ``moseg import-release``. ``moseg['architecture']`` is
  ``'release'`` for an imported release network, else ours (:class:`~moseg.models.TrackClassifier`,
  config in ``moseg['classifier']``).
- **release**: the SegAnyMo release's ``moseg.pth``, ``{'model_state_dict': ..., 'epoch': ...}``
  (or a bare release state dict), loaded into :class:`~moseg.models.release.ReleaseClassifier`
  with the release's flags.

Files are unpickled with ``weights_only=True``: a checkpoint holding other Python objects is
refused rather than run. Every failure is a :class:`CheckpointError` naming the file and what is
wrong with it.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from moseg.models.classifier import ClassifierConfig, TrackClassifier
from moseg.models.release import (
    ReleaseClassifier,
    ReleaseConfig,
    config_from_release_state,
    is_release_state_dict,
    load_release_state,
)

log = logging.getLogger(__name__)

# the release's inference (its inference.py): thresholds tried in turn, the first giving at least
# min_moving moving tracks wins, else the fallback_top most probable; videos longer than
# long_frames use long_thresholds; an equal share of max_tracks tracks per query frame
RELEASE_DECISION: dict[str, Any] = {
    "thresholds": [0.95, 0.93, 0.9, 0.85, 0.8, 0.75, 0.7],
    "min_moving": 10,
    "fallback_top": 3,
    "long_frames": 300,
    "long_thresholds": [0.99, 0.98, 0.97, 0.96, 0.95],
}
# what the release network is fed, and how (classify.ReleaseModelClassifier follows these)
RELEASE_INPUTS: dict[str, Any] = {
    "traj": "x / W * 2 - 1 and y / H * 2 - 1, clamped to [-1, 1] (normalize_point_traj_torch)",
    "depth": "per-frame min-max normalised disparity maps (Depth Anything V2)",
    # 'release': the depth lookup reads at the [-1, 1] coordinates, as the weights were trained;
    # 'fixed': it reads at the true pixel (x / W, y / H)
    "depth_lookup": "release",
    "visib_value": "TAPIR visibility probability 1 - sigmoid(occlusion logit)",
    "confi_value": "TAPIR confidence 1 - sigmoid(expected distance), zeroed when not confident",
    "dino": "768-d DINOv2 ViT-B/14 key feature at the track's query-frame position",
    "frames": "the whole video in one pass",
    "max_tracks": 5000,
}


# what `train.py model=release` feeds the release network (ReleaseClassifier.forward_tracks):
# depth sampled bilinearly at the true position, visibility as 0/1
TRAINED_RELEASE_INPUTS: dict[str, Any] = {
    **RELEASE_INPUTS,
    "depth_lookup": "bilinear",
    "visib_value": "visibility",
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


@dataclass
class LoadedClassifier:
    """A network ready for inference (eval mode, float32) and what its checkpoint says."""

    net: nn.Module
    architecture: str  # "moseg" (TrackClassifier) or "release" (ReleaseClassifier)
    source_format: str  # "moseg" or "release" (the file's layout)
    decision: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def describe(self, path: str | Path) -> str:
        if self.source_format == "release":
            epoch = self.meta.get("epoch")
            return (
                f"{path}: SegAnyMo release checkpoint (model_state_dict"
                f"{'' if epoch is None else f', epoch {epoch}'}), release architecture"
            )
        arch = (
            "release architecture (imported)"
            if self.architecture == "release"
            else (f"moseg architecture {self.meta.get('name') or ''}".rstrip())
        )
        return f"{path}: moseg checkpoint, {arch}"


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointNotFoundError(f"{p}: classifier checkpoint not found")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        blocked = re.search(r"unsupported GLOBAL (\S+)", msg)
        if "Unsupported global" in msg or blocked:
            what = (
                blocked.group(1)
                if blocked
                else msg.split("Unsupported global:", 1)[1].split(" was not", 1)[0].strip()
            )
            raise CheckpointError(
                f"{p}: holds Python objects besides weights ({what}); it is not unpickled, "
                "since that could run code. Export a training checkpoint with "
                "`python -m moseg.training.export SRC DST` first"
            ) from None
        raise CheckpointError(
            f"{p}: not a readable PyTorch checkpoint (corrupt, truncated or another format)"
        ) from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{p}: not a readable PyTorch checkpoint (corrupt, truncated or another format: "
            f"{type(e).__name__}: {first[:120]})"
        ) from None


def checkpoint_format(obj: Any) -> str | None:
    """'moseg', 'release' or None for what :func:`read_checkpoint_file` returned."""
    if isinstance(obj, dict):
        if "moseg" in obj and "state_dict" in obj:
            return "moseg"
        state = obj.get("model_state_dict", obj)
        if isinstance(state, dict) and is_release_state_dict(state):
            return "release"
    return None


def _describe_keys(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:8]]
        return f"top-level keys {keys}{' ...' if len(obj) > 8 else ''}"
    return f"a {type(obj).__name__}"


def release_network(
    state: dict[str, torch.Tensor], flags: dict[str, Any] | None = None, where: str = ""
) -> ReleaseClassifier:
    """A :class:`ReleaseClassifier` holding a release state dict (CheckpointError if it does
    not fit: missing and unexpected keys are listed)."""
    try:
        cfg = config_from_release_state(state, **(flags or {}))
        return load_release_state(ReleaseClassifier(cfg), state, where or "checkpoint")
    except ValueError as e:
        msg = str(e)
        text = msg if where and msg.startswith(where) else f"{where}: {msg}"
        raise CheckpointError(text) from None


def load_classifier_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    release_flags: dict[str, Any] | None = None,
) -> LoadedClassifier:
    """The network of a checkpoint of either format (see the module docstring), in eval mode
    with float32 weights, with its decision settings and input conventions."""
    where = str(path)
    obj = read_checkpoint_file(path, map_location)
    fmt = checkpoint_format(obj)
    if fmt is None:
        raise CheckpointError(
            f"{where}: neither a moseg checkpoint ('moseg' and 'state_dict') nor a SegAnyMo "
            f"release checkpoint ('model_state_dict' of the release network); found "
            f"{_describe_keys(obj)}"
        )
    if fmt == "release":
        state = obj.get("model_state_dict", obj)
        net = release_network(state, release_flags, where)
        meta = {"epoch": obj.get("epoch"), "release": net.cfg.to_dict()}
        return LoadedClassifier(
            net.eval(), "release", "release", dict(RELEASE_DECISION), dict(RELEASE_INPUTS), meta
        )
    meta = dict(obj["moseg"])
    sd = obj["state_dict"]
    state = {k[4:]: v for k, v in sd.items() if isinstance(k, str) and k.startswith("net.")}
    if meta.get("architecture") == "release":
        cfg = ReleaseConfig.from_dict(meta.get("release") or {})
        net = ReleaseClassifier(cfg)
        _load_strict(net, state, where)
        inputs = {**RELEASE_INPUTS, **(meta.get("inputs") or {})}
        decision = {**RELEASE_DECISION, **(meta.get("decision") or {})}
        return LoadedClassifier(net.eval(), "release", "moseg", decision, inputs, meta)
    if "classifier" not in meta:
        raise CheckpointError(f"{where}: moseg checkpoint without a 'classifier' config")
    try:
        cfg = ClassifierConfig.from_dict(meta["classifier"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: its classifier config does not fit: {e}") from None
    net = TrackClassifier(cfg)
    _load_strict(net, state, where)
    return LoadedClassifier(
        net.eval(), "moseg", "moseg", dict(meta.get("decision") or {}), {}, meta
    )


def _load_strict(net: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    ours = net.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: the weights do not fit the network its config describes: missing "
            f"{missing[:20]} ({len(missing)}), unexpected {unexpected[:20]} ({len(unexpected)})"
        )
    bad = [k for k in ours if tuple(state[k].shape) != tuple(ours[k].shape)]
    if bad:
        raise CheckpointError(
            f"{where}: weight shapes differ from the network its config describes: "
            + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(ours[k].shape)}" for k in bad[:10])
        )
    net.load_state_dict({k: v.float() for k, v in state.items()})


def import_release(
    src: str | Path,
    dst: str | Path,
    flags: dict[str, Any] | None = None,
    thresholds: list[float] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Convert a release checkpoint (``moseg.pth``) into a moseg checkpoint once: the same
    weights under our names, with the release architecture's flags, its input conventions and
    its decision rule. Written atomically; returns the stored ``moseg`` entry."""
    from moseg.utils.atomic import atomic_path

    loaded = load_classifier_checkpoint(src, release_flags=flags)
    if loaded.source_format != "release":
        raise CheckpointError(f"{src}: already a moseg checkpoint; nothing to import")
    decision = dict(loaded.decision)
    if thresholds is not None:
        th = [float(t) for t in thresholds]
        if not th or th != sorted(th, reverse=True):
            raise CheckpointError(f"thresholds must be a non-empty descending list, got {th}")
        decision["thresholds"] = th
    meta: dict[str, Any] = {
        "architecture": "release",
        "name": "release",
        "release": loaded.net.cfg.to_dict(),
        "inputs": dict(loaded.inputs),
        "decision": decision,
        "imported_from": {"file": str(src), "epoch": loaded.meta.get("epoch")},
    }
    if note:
        meta["note"] = note
    state = {f"net.{k}": v.detach().clone() for k, v in loaded.net.state_dict().items()}
    with atomic_path(dst) as tmp:
        torch.save({"moseg": meta, "state_dict": state}, tmp)
    return meta
