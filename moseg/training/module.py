"""LightningModule training the track classifier."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryF1Score,
    BinaryJaccardIndex,
)

from moseg.config import to_plain
from moseg.models import (
    ClassifierConfig,
    ReleaseClassifier,
    ReleaseConfig,
    TrackClassifier,
    count_parameters,
    load_classifier_checkpoint,
)
from moseg.models.checkpoint import TRAINED_RELEASE_INPUTS
from moseg.utils.atomic import atomic_path

log = logging.getLogger(__name__)


def track_loss(
    logits: Tensor,
    label: Tensor,
    kind: str = "weighted_bce",
    focal_gamma: float = 2.0,
    max_pos_weight: float | None = 100.0,
) -> Tensor:
    """Loss over tracks with ``label`` in {0, 1}; -1 (ignore, padding) is left out.

    ``weighted_bce``: the paper's BCE with positives weighted by #negatives / #positives, per clip
    (capped at ``max_pos_weight``, None: uncapped as in the paper; a clip without positives
    weights them 1). ``focal``: the same
    weights on the focal loss with ``focal_gamma``. ``bce``: unweighted. Mean over valid tracks.
    ``logits, label: [B, N]``."""
    valid = label >= 0
    y = label.clamp_min(0).to(logits.dtype)
    logits = logits.float()
    if kind in ("weighted_bce", "focal"):
        pos = ((label == 1) & valid).sum(-1, keepdim=True).float()
        neg = ((label == 0) & valid).sum(-1, keepdim=True).float()
        pw = torch.where(pos > 0, neg / pos.clamp_min(1), torch.ones_like(pos))
        if max_pos_weight is not None:
            pw = pw.clamp(max=max_pos_weight)
        w = torch.where(y > 0, pw.expand_as(y), torch.ones_like(y))
    elif kind == "bce":
        w = torch.ones_like(y)
    else:
        raise ValueError(f"unknown loss {kind!r}: weighted_bce, focal or bce")
    per = F.binary_cross_entropy_with_logits(logits, y.float(), reduction="none")
    if kind == "focal":
        p = torch.sigmoid(logits)
        pt = torch.where(y > 0, p, 1 - p)
        per = per * (1 - pt).pow(focal_gamma)
    per = per * w * valid
    return per.sum() / valid.sum().clamp_min(1)


def val_metrics(prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "track_ap": BinaryAveragePrecision(),
            "roc_auc": BinaryAUROC(),
            "f1": BinaryF1Score(),
            "iou50": BinaryJaccardIndex(threshold=0.5),
            "iou70": BinaryJaccardIndex(threshold=0.7),
        },
        prefix=prefix,
        # explicit groups: torchmetrics' automatic grouping merges metrics whose states happen
        # to be equal after the first batch, which silently made iou70 a copy of iou50 whenever
        # the first batch had no score in [0.5, 0.7)
        compute_groups=[["track_ap", "roc_auc"], ["f1"], ["iou50"], ["iou70"]],
    )


class TrackClassifierModule(L.LightningModule):
    """Trains :class:`~moseg.models.TrackClassifier`.

    ``net``: :class:`~moseg.models.ClassifierConfig` fields. ``optimizer``: a partial taking the
    parameters (``_partial_: true`` in Hydra). ``scheduler``: a partial taking the optimizer and
    ``total_steps``, or None for a constant LR. Metrics are logged as ``val/<source>/<metric>``,
    and their mean over sources as ``val/<metric>``."""

    def __init__(
        self,
        net: Mapping[str, Any],
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        loss: Mapping[str, Any] | None = None,
        val_sources: list[str] | None = None,
        name: str = "",
        architecture: str = "moseg",
    ):
        super().__init__()
        net, loss = to_plain(net), to_plain(loss)
        if architecture not in ("moseg", "release"):
            raise ValueError(f"architecture must be moseg or release, not {architecture!r}")
        self.architecture = architecture
        if architecture == "release":  # model=release: the release's network, exactly
            self.model_cfg = ReleaseConfig.from_dict(dict(net))
            self.net = ReleaseClassifier(self.model_cfg)
        else:
            self.model_cfg = ClassifierConfig.from_dict(dict(net))
            self.net = TrackClassifier(self.model_cfg)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_cfg = dict(loss or {"kind": "weighted_bce"})
        self.val_sources = list(val_sources or ["val"])
        self.metrics = nn.ModuleDict({s: val_metrics(f"val/{s}/") for s in self.val_sources})
        self.name = name
        # the data's windows (TrackDataModule.trained_on), set by moseg.training.run; saved in
        # checkpoints so that inference cuts the windows the network was trained on
        self.trained_on: dict[str, Any] | None = None
        log.info("classifier %s: %d parameters", name, count_parameters(self.net))

    def forward(self, batch: Mapping[str, Any]) -> Tensor:
        # collate leaves depth and features at zero where a sample has none (depth_valid /
        # features_valid false), which is what the network expects for a missing modality
        feats = batch["features"]
        fwd = self.net.forward_tracks if self.architecture == "release" else self.net
        return fwd(
            batch["tracks"],
            batch["visibility"],
            batch["confidence"],
            batch["image_size"],
            depth=batch["depth"],
            features=feats if feats.shape[-1] else None,
            track_mask=batch["track_mask"],
            query_frame=batch.get("query_frame"),
        )

    def _loss(self, logits: Tensor, label: Tensor) -> Tensor:
        return track_loss(logits, label, **self.loss_cfg)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        logits = self(batch)
        loss = self._loss(logits, batch["label"])
        bs = int(batch["label"].shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/tracks", batch["track_mask"].sum().float() / bs, batch_size=bs)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0):
        logits = self(batch)
        label = batch["label"]
        bs = int(label.shape[0])
        loss = self._loss(logits, label)
        src = self.val_sources[dataloader_idx]
        self.log(f"val/{src}/loss", loss, batch_size=bs, add_dataloader_idx=False, sync_dist=True)
        keep = label >= 0
        self.metrics[src].update(torch.sigmoid(logits.float())[keep], label[keep])

    def on_validation_epoch_end(self) -> None:
        means: dict[str, list[Tensor]] = {}
        for src in self.val_sources:
            m = self.metrics[src]
            if not any(mm.update_count for mm in m.values()):
                continue
            vals = m.compute()
            m.reset()
            self.log_dict(vals, add_dataloader_idx=False, sync_dist=True)
            for k, v in vals.items():
                means.setdefault(k.rsplit("/", 1)[-1], []).append(v)
        for k, vs in means.items():
            self.log(f"val/{k}", torch.stack(vs).mean(), prog_bar=k == "track_ap", sync_dist=True)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            opt = torch.optim.Adam(self.parameters(), lr=1e-4, weight_decay=1e-4)
        else:
            opt = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        sched = self.scheduler_factory(opt, total_steps=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # enough to rebuild the network without Hydra or this module (see load_classifier)
        if self.architecture == "release":
            checkpoint["moseg"] = {
                "architecture": "release",
                "release": self.model_cfg.to_dict(),
                "inputs": dict(TRAINED_RELEASE_INPUTS),
                "name": self.name,
            }
        else:
            checkpoint["moseg"] = {"classifier": self.model_cfg.to_dict(), "name": self.name}
        if self.trained_on is not None:
            checkpoint["moseg"]["trained_on"] = dict(self.trained_on)

    def setup(self, stage: str) -> None:
        # CPU DDP: one thread per process, or the ranks oversubscribe the cores
        tr = self._trainer
        if tr is not None and tr.world_size > 1 and tr.strategy.root_device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // tr.world_size))


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 500,
    min_lr_ratio: float = 0.01,
) -> LambdaLR:
    """Linear warm-up over ``warmup_steps``, then a cosine down to ``min_lr_ratio`` x the LR."""
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return LambdaLR(optimizer, factor)


def _read_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    from moseg.models.checkpoint import read_checkpoint_file

    ckpt = read_checkpoint_file(path, map_location)  # weights_only: unpickling runs no code
    if not isinstance(ckpt, dict) or "moseg" not in ckpt:
        raise ValueError(f"{path}: not a moseg classifier checkpoint (no 'moseg' entry)")
    return ckpt


def load_classifier_and_decision(
    path: str, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained network of a checkpoint of either format (moseg, or the SegAnyMo release's
    ``moseg.pth``; see :mod:`moseg.models.checkpoint`; weights in float32, eval mode), and the
    decision settings it carries (``{"thresholds": [...]}`` from :func:`export_classifier`)."""
    loaded = load_classifier_checkpoint(path, map_location=map_location)
    return loaded.net, dict(loaded.decision)


def load_classifier(path: str, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained network of a checkpoint (see :func:`load_classifier_and_decision`)."""
    return load_classifier_and_decision(path, map_location)[0]


def export_classifier(
    src: str,
    dst: str,
    half: bool = True,
    thresholds: list[float] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """A slim inference checkpoint: the network's weights (float16 with ``half``), its config,
    and optionally the decision thresholds chosen for it (read by the evaluation and
    segmentation classifiers instead of the reference's). Written atomically; returns the
    stored ``moseg`` entry."""
    ckpt = _read_checkpoint(src)
    state = {
        k: (v.half() if half and v.is_floating_point() else v)
        for k, v in ckpt["state_dict"].items()
        if k.startswith("net.")
    }
    meta = dict(ckpt["moseg"])
    meta["exported_from"] = {"file": str(src), "global_step": ckpt.get("global_step")}
    if thresholds is not None:
        th = [float(t) for t in thresholds]
        if th != sorted(th, reverse=True) or not th:
            raise ValueError(f"thresholds must be a non-empty descending list, got {th}")
        meta["decision"] = {"thresholds": th}
    if note:
        meta["note"] = note
    out = {"moseg": meta, "state_dict": state}
    with atomic_path(dst) as tmp:
        torch.save(out, tmp)
    return meta
