"""Compare training runs from their local folders (no W&B account): ``moseg runs``.

A run folder is any folder holding ``summary.json`` (written by
:class:`~moseg.training.callbacks.RunSummary`) and ``config.yaml`` (the resolved config).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

# config keys that differ between runs without being a choice of the experiment
# (`*.module.*` nodes are interpolated copies of the choices they are built from)
_NOISE = (
    "paths.",
    "hydra.",
    "data.module.",
    "model.module.",
    "logger.",
    "callbacks.",
    "trainer.default_root_dir",
)


@dataclass
class Run:
    path: Path
    config: dict[str, Any]  # flattened: "model.net.dim" -> 128
    summary: dict[str, Any]

    @property
    def best(self) -> dict[str, float]:
        return self.summary.get("best") or {}

    @property
    def last(self) -> dict[str, float]:
        return self.summary.get("last") or {}


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(d, list):
        return {prefix[:-1]: json.dumps(d)}
    return {prefix[:-1]: d}


def find_runs(roots: list[Path]) -> list[Run]:
    runs = []
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder")
        candidates = [root] if (root / "summary.json").exists() else []
        candidates += sorted(p.parent for p in root.rglob("summary.json") if p.parent != root)
        for d in candidates:
            try:
                summary = json.loads((d / "summary.json").read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{d / 'summary.json'}: unreadable ({e})") from e
            cfg_path = d / "config.yaml"
            config = OmegaConf.to_container(OmegaConf.load(cfg_path)) if cfg_path.exists() else {}
            runs.append(Run(d, flatten(config or {}), summary))
    return runs


def differing_keys(runs: list[Run]) -> list[str]:
    keys = sorted({k for r in runs for k in r.config})
    out = []
    for k in keys:
        if k.startswith(_NOISE) or k.endswith(("._target_", ".name")) and k != "model.name":
            continue
        values = {json.dumps(r.config.get(k), sort_keys=True, default=str) for r in runs}
        if len(values) > 1:
            out.append(k)
    return out


def table(runs: list[Run], metrics: list[str], sort_by: str | None = None) -> str:
    """A plain-text table: one row per run, the differing config keys, then best metrics."""
    if sort_by:
        runs = sorted(runs, key=lambda r: -(r.best.get(sort_by) or float("-inf")))
    diff = differing_keys(runs)
    header = ["run", *diff, *[f"best {m}" for m in metrics], "steps"]
    rows = []
    for r in runs:
        rows.append(
            [
                str(r.path),
                *[_fmt(r.config.get(k)) for k in diff],
                *[_fmt(r.best.get(m)) for m in metrics],
                str(r.summary.get("global_step", "")),
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def plot(runs: list[Run], metric: str, out: Path) -> Path:
    """``metric`` against training step for every run, one line each, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("plotting needs matplotlib: pip install 'moseg[plot]'") from e
    from moseg.utils.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        pts = [(h["step"], h[metric]) for h in r.summary.get("history", []) if metric in h]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=r.path.name or str(r.path))
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out
