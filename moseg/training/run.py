"""``train.py``: compose the config, build data, model, loggers and trainer, fit, report.

The run folder gets ``config.yaml`` (the resolved config), ``summary.json`` (written by
:class:`~moseg.training.callbacks.RunSummary` after each validation), ``checkpoints/`` and, at
the end, ``metrics.json``: the validation metrics of the best checkpoint and the run's warnings
(e.g. sources without depth let through by ``allow_missing_depth=true``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from moseg.data import MissingSourceError
from moseg.io import MissingDepthError
from moseg.training.callbacks import RunSummary
from moseg.utils.atomic import atomic_write_text

log = logging.getLogger("moseg.train")


def _instantiate_list(node: Any) -> list[Any]:
    if node is None:
        return []
    return [hydra.utils.instantiate(c) for c in node.values() if c is not None]


def model_uses_depth(cfg: DictConfig) -> bool:
    """Whether the configured network reads depth: ``model.net.use_depth`` (our architecture)
    or ``model.net.depth`` (``model=release``); true when neither is set (both default to it)."""
    net = OmegaConf.select(cfg, "model.net", default=None) or {}
    return bool(net.get("use_depth", net.get("depth", True)))


def run(cfg: DictConfig) -> dict[str, float]:
    """Train; return the validation metrics of the best checkpoint (or the last weights)."""
    ckpt = cfg.get("ckpt_path")
    if ckpt and not Path(ckpt).is_file():
        raise SystemExit(f"error: ckpt_path {ckpt}: no such checkpoint file")
    L.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(resolved))

    dm = hydra.utils.instantiate(cfg.data.module)
    allow_missing_depth = bool(cfg.get("allow_missing_depth", False))
    warnings: list[str] = []
    try:
        dm.prepare_data()
        dm.check_sources()
        # a model built with depth must get depth from every source (before any training)
        if model_uses_depth(cfg) and hasattr(dm, "check_depth"):
            warnings += dm.check_depth(allow_missing=allow_missing_depth)
    except (MissingSourceError, MissingDepthError) as e:
        raise SystemExit(f"error: {e}") from None
    model = hydra.utils.instantiate(cfg.model.module, val_sources=dm.val_names)
    callbacks = _instantiate_list(cfg.get("callbacks"))
    for cb in callbacks:
        if isinstance(cb, RunSummary):
            cb.warnings = list(warnings)
    loggers = _instantiate_list(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)

    trainer.fit(model, datamodule=dm, ckpt_path=ckpt)

    best = None
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "best_model_path", ""):
            best = cb.best_model_path
    metrics: dict[str, float] = {}
    if cfg.get("validate_best", True) and not trainer.interrupted and dm.val_names:
        res = trainer.validate(model, datamodule=dm, ckpt_path=best or None, verbose=False)
        metrics = {k: float(v) for r in res for k, v in r.items()}
        if trainer.is_global_zero:
            lines = [f"validation of {'best checkpoint ' + best if best else 'final weights'}:"]
            lines += [f"  {k:<28} {v:.4f}" for k, v in sorted(metrics.items())]
            log.info("\n".join(lines))
    if trainer.is_global_zero:
        record = {
            "metrics": metrics,
            "checkpoint": best or None,
            "interrupted": bool(trainer.interrupted),
            "allow_missing_depth": allow_missing_depth,
            "warnings": warnings,
        }
        atomic_write_text(out_dir / "metrics.json", json.dumps(record, indent=2))
        for w in warnings:
            log.warning("this run: %s", w)
        log.info("run folder: %s", out_dir)
    return metrics
