"""``train.py``: compose the config, build data, model, loggers and trainer, fit, report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from moseg.data import MissingSourceError
from moseg.utils.atomic import atomic_write_text

log = logging.getLogger("moseg.train")


def _instantiate_list(node: Any) -> list[Any]:
    if node is None:
        return []
    return [hydra.utils.instantiate(c) for c in node.values() if c is not None]


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
    try:
        dm.prepare_data()
        dm.check_sources()
    except MissingSourceError as e:
        raise SystemExit(f"error: {e}") from None
    model = hydra.utils.instantiate(cfg.model.module, val_sources=dm.val_names)
    callbacks = _instantiate_list(cfg.get("callbacks"))
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
        log.info("run folder: %s", out_dir)
    return metrics
