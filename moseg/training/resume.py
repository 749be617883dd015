"""Resuming a run: ``python train.py resume=<run folder or one of its checkpoints> [overrides]``.

A run folder holds ``config.yaml`` (the resolved config :func:`moseg.training.run.run` wrote) and
``checkpoints/``. Resuming reads that config, applies the command line's overrides on top and
continues, in the same folder, from the newer of ``checkpoints/last.ckpt`` and
``checkpoints/interrupted.ckpt`` (or from the checkpoint given): step count, optimizer, best
checkpoint and validation history go on. Every checkpoint given to ``train.py`` (``resume=`` or
``ckpt_path=``) is checked against the configured model before any data is made or read
(:func:`check_checkpoint_fits`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from moseg.config import CONF_DIR
from moseg.models.checkpoint import CheckpointError, read_checkpoint_file

RUN_CONFIG = "config.yaml"
RESUMABLE = ("last.ckpt", "interrupted.ckpt")  # written by callbacks/default.yaml


class ResumeError(ValueError):
    """A run that cannot be resumed as asked; the message names the path and the problem."""


def find_run(path: str | Path) -> tuple[Path, Path]:
    """``(run folder, checkpoint)`` for ``resume=path``: a run folder (its newer of
    ``checkpoints/last.ckpt`` and ``checkpoints/interrupted.ckpt``) or a checkpoint inside one
    (the run folder holds ``config.yaml`` beside the checkpoint or beside its folder)."""
    p = Path(path).expanduser().absolute()
    if p.is_dir():
        if not (p / RUN_CONFIG).is_file():
            raise ResumeError(f"resume={path}: {p} is not a run folder (it has no {RUN_CONFIG})")
        found = [p / "checkpoints" / n for n in RESUMABLE if (p / "checkpoints" / n).is_file()]
        if not found:
            raise ResumeError(
                f"resume={path}: {p / 'checkpoints'} holds neither {' nor '.join(RESUMABLE)}, "
                "so there is nothing to resume; start the run again without resume="
            )
        return p, max(found, key=lambda c: c.stat().st_mtime_ns)
    if p.is_file():
        for run_dir in (p.parent, p.parent.parent):
            if (run_dir / RUN_CONFIG).is_file():
                return run_dir, p
        raise ResumeError(
            f"resume={path}: not inside a run folder (no {RUN_CONFIG} beside it or its folder); "
            f"to start a new run from its training state give ckpt_path={path}"
        )
    raise ResumeError(f"resume={path}: no such run folder or checkpoint")


def resume_argv(args: list[str]) -> list[str]:
    """``train.py``'s arguments, plus Hydra's run dir set to the run folder when they resume a
    run, so that the log goes on there; Hydra's own copy of the config (``.hydra/``) is not
    rewritten. Raises :class:`ResumeError` for a ``resume=`` that names no run."""
    value = None
    for a in args:
        key, sep, v = a.partition("=")
        if sep and key.lstrip("+") == "resume":
            value = v.strip("'\"")
    if value in (None, "", "null") or any(a.startswith("hydra.run.dir=") for a in args):
        return args
    run_dir, _ = find_run(value)
    return [*args, f'hydra.run.dir="{run_dir}"', "hydra.output_subdir=null"]


# ----------------------------------------------------------------------------------------------
# The run's config with the command line's overrides
# ----------------------------------------------------------------------------------------------
def _get(d: Any, key: str) -> Any:
    for k in key.split("."):
        if not isinstance(d, dict) or k not in d:
            raise KeyError(key)
        d = d[k]
    return d


def _has(d: Any, key: str) -> bool:
    try:
        _get(d, key)
        return True
    except KeyError:
        return False


def _set(d: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for k in parents:
        d = d.setdefault(k, {})
    d[last] = value


def _interpolations(d: Any, prefix: str = "") -> dict[str, set[str]]:
    """``{key: the keys it refers to}`` for every value of the unresolved config ``d`` holding
    a ``${...}`` reference (a list counts as one value); relative references made absolute."""
    out: dict[str, set[str]] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_interpolations(v, f"{prefix}{k}."))
        return out
    texts = [x for x in (d if isinstance(d, list) else [d]) if isinstance(x, str)]
    refs = {r for t in texts for r in re.findall(r"\$\{([\w.]+)\}", t)}
    if not refs:
        return out
    key = prefix[:-1]
    parent = key.split(".")[:-1]
    targets = set()
    for r in refs:
        dots = len(r) - len(r.lstrip("."))
        base = parent[: len(parent) - dots + 1] if dots else []
        targets.add(".".join([*base, *r.lstrip(".").split(".")]))
    out[key] = targets
    return out


def _within(key: str, node: str) -> bool:
    return key == node or key.startswith(node + ".")


def _global_group(group: str, option: Any) -> bool:
    path = CONF_DIR / group / f"{option}.yaml"
    return path.is_file() and "@package _global_" in path.read_text().split("\n", 3)[0]


def resume_config(
    cfg: DictConfig, overrides: Sequence[str] = ()
) -> tuple[DictConfig, Path, list[str]]:
    """The run named by ``cfg.resume``: ``(its config, the checkpoint, the overrides applied)``.

    The config is the run's ``config.yaml`` with ``overrides`` (the command line, as composed
    into ``cfg``) on top: a value override sets that value, a group override (``trainer=ddp``)
    replaces that node, and values the run's config derived from a changed one (the
    interpolations of ``cfg``) are derived again. ``paths.output_dir`` is the run folder.
    Experiments (``@package _global_``) cannot be applied to a run: :class:`ResumeError`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    run_dir, ckpt = find_run(cfg.resume)
    saved_path = run_dir / RUN_CONFIG
    saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False)
    new = OmegaConf.to_container(cfg, resolve=False)
    given = [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra"))]
    changed: list[str] = []
    for o in OverridesParser.create().parse_overrides(given):
        key = o.key_or_group
        if (CONF_DIR / key).is_dir():  # a config group: its node is replaced
            if o.package == "_global_" or _global_group(key, o.value()):
                raise ResumeError(
                    f"resume={cfg.resume}: {o.input_line} changes settings all over the config "
                    f"and cannot be applied to a run; the run's settings are in {saved_path} "
                    "(change single values, e.g. trainer.max_epochs=...)"
                )
            key = o.package or key.replace("/", ".")
        elif not o.is_add() and not o.is_force_add() and not _has(saved, key):
            raise ResumeError(
                f"resume={cfg.resume}: {o.input_line}: the run's config {saved_path} has no "
                f"{key} (add it with +{o.input_line.lstrip('+')})"
            )
        if o.is_delete():
            *parent, last = key.split(".")
            if parent:
                _get(saved, ".".join(parent)).pop(last, None)
            else:
                saved.pop(last, None)
        else:
            _set(saved, key, _get(new, key))
        changed.append(key)
    # values derived from a changed one are derived again (e.g. data.module.sources)
    derived = _interpolations(new)
    todo = list(changed)
    while todo:
        c = todo.pop()
        for key, targets in derived.items():
            if any(_within(key, d) for d in changed) or not _has(saved, key.rpartition(".")[0]):
                continue
            if any(_within(t, c) or _within(c, t) for t in targets):
                _set(saved, key, _get(new, key))
                changed.append(key)
                todo.append(key)
    out = OmegaConf.create(saved)
    out.paths.output_dir = str(run_dir)
    try:
        OmegaConf.to_container(out, resolve=True)
    except Exception as e:  # noqa: BLE001 (any resolution error; it is reported, not hidden)
        raise ResumeError(
            f"resume={cfg.resume}: the overrides {given} do not fit the run's config "
            f"{saved_path}: {str(e).splitlines()[0]}"
        ) from None
    return out, ckpt, given


# ----------------------------------------------------------------------------------------------
# Does a checkpoint fit the configured model?
# ----------------------------------------------------------------------------------------------
def check_checkpoint_fits(path: str | Path, module: nn.Module, hint: str = "") -> None:
    """Raise :class:`~moseg.models.checkpoint.CheckpointError` (one sentence naming ``path``)
    unless ``path`` is a training checkpoint whose weights have the names and shapes of
    ``module``'s: what Lightning needs to go on from it. Reads it with ``weights_only=True``.
    ``hint`` ends the message (e.g. how to resume the run the checkpoint belongs to)."""
    obj = read_checkpoint_file(path)
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(state, dict) or "optimizer_states" not in obj or "loops" not in obj:
        if isinstance(obj, dict) and "moseg" in obj:
            what = "an exported classifier (weights only)"
        elif isinstance(obj, dict) and "model_state_dict" in obj:
            what = "a SegAnyMo release checkpoint (weights only)"
        else:
            keys = list(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
            what = f"not a training checkpoint (it holds {keys})"
        raise CheckpointError(
            f"{path}: {what}; training goes on only from a checkpoint train.py wrote, with the "
            f"optimizer and step count (checkpoints/last.ckpt of a run){hint}"
        )
    ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    reshaped = [k for k in ours if k in theirs and theirs[k] != ours[k]]
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    if not (reshaped or missing or unexpected):
        return
    parts = []
    if reshaped:
        shown = ", ".join(f"{k} {list(theirs[k])} vs {list(ours[k])}" for k in reshaped[:2])
        more = ", ..." if len(reshaped) > 2 else ""
        parts.append(
            f"{len(reshaped)} of its {len(theirs)} weights differ in shape from the configured "
            f"ones ({shown}{more})"
        )
    if missing:
        parts.append(f"{len(missing)} configured weights are not in it (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} of its weights are not configured (e.g. {unexpected[0]})")
    was = (obj.get("moseg") or {}).get("name")
    now = getattr(module, "name", "") or "?"
    raise CheckpointError(
        f"{path}: its model{f' ({was})' if was else ''} does not fit the configured model "
        f"({now}): {'; '.join(parts)}{hint}"
    )
