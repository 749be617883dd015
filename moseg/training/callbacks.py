"""Callbacks: a per-run summary file (what `moseg runs` reads) and a printed metrics table."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from moseg.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1 or isinstance(v, int | float):
            out[k] = float(v)
    return out


class RunSummary(L.Callback):
    """Writes ``<dir>/summary.json`` after every validation (atomically, rank 0): the latest and
    best validation metrics and the history, so runs can be compared offline, and the run's
    ``warnings`` (set by ``moseg.training.run``: e.g. sources let through without depth by
    ``allow_missing_depth=true``)."""

    def __init__(self, dirpath: str, monitor: str = "val/track_ap", mode: str = "max"):
        self.path = Path(dirpath) / "summary.json"
        self.monitor, self.mode = monitor, mode
        self.history: list[dict[str, float]] = []
        self.warnings: list[str] = []
        self.t0 = time.time()

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        vals = {k: v for k, v in _scalars(trainer.callback_metrics).items() if k.startswith("val")}
        if not vals:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step, **vals}
        self.history.append(row)
        if trainer.is_global_zero:
            self._print(row)
            self._write(trainer, final=False)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._write(trainer, final=True)

    def _write(self, trainer: L.Trainer, final: bool) -> None:
        scored = [h for h in self.history if self.monitor in h]
        best = None
        if scored:
            pick = max if self.mode == "max" else min
            best = pick(scored, key=lambda h: h[self.monitor])
        summary = {
            "monitor": self.monitor,
            "best": best,
            "last": self.history[-1] if self.history else None,
            "history": self.history,
            "global_step": trainer.global_step,
            "finished": final,
            "wall_s": round(time.time() - self.t0, 1),
            "warnings": self.warnings,
        }
        atomic_write_text(self.path, json.dumps(summary, indent=1))

    @staticmethod
    def _print(row: dict[str, float]) -> None:
        keys = sorted(k for k in row if k.startswith("val/"))
        lines = [f"validation after epoch {int(row['epoch'])} (step {int(row['step'])}):"]
        lines += [f"  {k:<28} {row[k]:.4f}" for k in keys]
        log.info("\n".join(lines))


class ProgressLog(L.Callback):
    """Progress as log lines every ``every_s`` seconds when there is no progress bar (logs, CI,
    cluster jobs): step, epoch, loss and steps per second."""

    def __init__(self, every_s: float = 30.0):
        self.every_s = every_s
        self._last = 0.0
        self._last_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last, self._last_step = time.time(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.progress_bar_callback is not None or not trainer.is_global_zero:
            return
        now = time.time()
        if now - self._last < self.every_s:
            return
        rate = (trainer.global_step - self._last_step) / (now - self._last)
        loss = trainer.callback_metrics.get("train/loss")
        total = trainer.estimated_stepping_batches
        log.info(
            "step %d/%s  epoch %d  loss %s  %.2f steps/s",
            trainer.global_step,
            total if total != float("inf") else "?",
            trainer.current_epoch,
            f"{float(loss):.4f}" if loss is not None else "-",
            rate,
        )
        self._last, self._last_step = now, trainer.global_step
