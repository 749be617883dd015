"""``train.py``: compose the config, build data, model, loggers and trainer, fit, report.

The run folder gets ``config.yaml`` (the resolved config), ``data_manifest.json`` (the files it
trains and validates on; a later start in the folder that finds other files stops),
``summary.json`` (written by :class:`~moseg.training.callbacks.RunSummary` after each
validation), ``checkpoints/`` and, at the end, ``metrics.json``: the validation metrics of the
best checkpoint and the run's warnings (e.g. sources without depth let through by
``allow_missing_depth=true``). ``resume=<run folder>`` goes on with a run in its folder, with its
config (:mod:`moseg.training.resume`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from moseg.data import DataManifestError, MissingSourceError, compare_manifests
from moseg.io import MissingDepthError
from moseg.models.checkpoint import CheckpointError
from moseg.training.callbacks import RunSummary
from moseg.training.resume import ResumeError, check_checkpoint_fits, find_run, resume_config
from moseg.utils.atomic import atomic_write_text

log = logging.getLogger("moseg.train")

DATA_MANIFEST = "data_manifest.json"


def _instantiate_list(node: Any) -> list[Any]:
    if node is None:
        return []
    return [hydra.utils.instantiate(c) for c in node.values() if c is not None]


def model_uses_depth(cfg: DictConfig) -> bool:
    """Whether the configured network reads depth: ``model.net.use_depth`` (our architecture)
    or ``model.net.depth`` (``model=release``); true when neither is set (both default to it)."""
    net = OmegaConf.select(cfg, "model.net", default=None) or {}
    return bool(net.get("use_depth", net.get("depth", True)))


def _start(cfg: DictConfig, overrides: Sequence[str]) -> tuple[DictConfig, str | None, str]:
    """``(the config to run, the checkpoint to go on from, a hint for its errors)``."""
    if cfg.get("resume"):
        if cfg.get("ckpt_path"):
            raise ResumeError(
                f"resume={cfg.resume} and ckpt_path={cfg.ckpt_path} together: to resume a run "
                "from one of its checkpoints give resume=<that checkpoint>"
            )
        cfg, ckpt, given = resume_config(cfg, overrides)
        log.info("resuming %s from %s, overrides: %s", cfg.paths.output_dir, ckpt, given or "none")
        hint = ""
        if given:
            hint = f" (resumed with {' '.join(given)}: leave out what changes the model)"
        return cfg, str(ckpt), hint
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return cfg, None, ""
    if not Path(ckpt).is_file():
        raise ResumeError(f"ckpt_path {ckpt}: no such checkpoint file")
    try:
        hint = f"; to resume its run with that run's config: train.py resume={find_run(ckpt)[0]}"
    except ResumeError:
        hint = ""
    return cfg, str(ckpt), hint


def _check_data_manifest(dm: Any, path: Path) -> None:
    """Record the files the run reads in ``path`` when it is new; else stop unless they are the
    ones recorded there (a resumed run, or another start in the same folder)."""
    if not hasattr(dm, "data_manifest"):
        return
    current = dm.data_manifest()
    if not path.exists():
        atomic_write_text(path, json.dumps(current, indent=1))
        return
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataManifestError(
            f"{path}: unreadable ({e}); delete it to record the data anew"
        ) from None
    diff = compare_manifests(recorded, current)
    if diff:
        raise DataManifestError(
            f"{path}: the files this run reads have changed since it recorded them ({diff}); "
            "restore them to go on with this run, or start a new run to train on them as they "
            "are now"
        )


def run(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Train; return the validation metrics of the best checkpoint (or the last weights).

    With ``resume=<run folder or checkpoint>`` the run's own ``config.yaml`` is used, with
    ``overrides`` (the command line's, as composed into ``cfg``) on top
    (:func:`~moseg.training.resume.resume_config`); a checkpoint, resumed or given as
    ``ckpt_path``, is checked against the configured model before any data is made."""
    try:
        cfg, ckpt, hint = _start(cfg, overrides)
    except ResumeError as e:
        raise SystemExit(f"error: {e}") from None
    L.seed_everything(int(cfg.seed), workers=True)
    dm = hydra.utils.instantiate(cfg.data.module)
    model = hydra.utils.instantiate(cfg.model.module, val_sources=dm.val_names)
    if ckpt:
        try:
            check_checkpoint_fits(ckpt, model, hint)
        except CheckpointError as e:
            raise SystemExit(f"error: {e}") from None
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(resolved))

    allow_missing_depth = bool(cfg.get("allow_missing_depth", False))
    warnings: list[str] = []
    try:
        dm.prepare_data()
        dm.check_sources()
        _check_data_manifest(dm, out_dir / DATA_MANIFEST)
        # a model built with depth must get depth from every source (before any training)
        if model_uses_depth(cfg) and hasattr(dm, "check_depth"):
            warnings += dm.check_depth(allow_missing=allow_missing_depth)
    except (MissingSourceError, MissingDepthError, DataManifestError) as e:
        raise SystemExit(f"error: {e}") from None
    if hasattr(dm, "trained_on"):
        model.trained_on = dm.trained_on()
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
