"""What every converter shares: config -> jobs -> parallel run -> summary and exit code.

A converter module defines ``make_jobs(cfg) -> list[Job]`` (one job per sequence; discovery only,
cheap) and a top-level ``convert(**kwargs) -> Sequence`` that the jobs name, and ends with
``if __name__ == "__main__": main("<dataset>", make_jobs)``. Then

    python -m data_prep.<dataset> dataset.raw=/path/to/raw [tracker=...] [workers=4]

converts every sequence into ``dataset.out/<split>/<sequence>.h5``, skips the ones already done
(validated, same settings), redoes broken ones, and exits 1 if any sequence failed (the summary
lists each failure). ``shard_index``/``shard_count`` split the work over cluster jobs (README).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from moseg.prep.jobs import Job, Report, run_jobs, shard
from moseg.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)


class InputError(ValueError):
    """The raw dataset is missing or malformed; the message names the path."""


def to_dict(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def prep_config(cfg: DictConfig) -> dict[str, Any]:
    """The plain-dict back-end settings a job needs (they enter the job digest)."""
    return {k: to_dict(cfg.get(k)) for k in ("tracker", "depth", "features", "prep")}


def select_sequences(found: list[str], wanted: list[str] | None, where: str) -> list[str]:
    """``found`` filtered to ``wanted`` (all when None); unknown names are an error."""
    if wanted is None:
        return found
    missing = [s for s in wanted if s not in found]
    if missing:
        raise InputError(f"{where}: no sequence(s) {missing}; found {len(found)}: {found[:8]}...")
    return [s for s in found if s in set(wanted)]


def run_prepare(cfg: DictConfig, jobs: list[Job], desc: str) -> Report:
    """Shard, run and report; writes ``<out>/prepare_report.json`` next to the outputs."""
    if cfg.get("shard_count", 1) > 1:
        jobs = shard(jobs, int(cfg.shard_index), int(cfg.shard_count))
    report = run_jobs(
        jobs,
        workers=cfg.get("workers", 1),
        desc=desc,
        progress=cfg.get("progress"),
        overwrite=bool(cfg.get("overwrite", False)),
    )
    print(f"{desc}: {report.summary()}")
    out = cfg.dataset.get("out")
    if out and jobs:
        suffix = f".{cfg.shard_index}" if cfg.get("shard_count", 1) > 1 else ""
        atomic_write_text(
            Path(out) / f"prepare_report{suffix}.json",
            json.dumps(
                {
                    "written": report.written,
                    "skipped": report.skipped,
                    "redone": report.redone,
                    "failed": [f.__dict__ for f in report.failed],
                    "stats": report.stats,
                },
                indent=2,
            ),
        )
    return report


def main(dataset: str, make_jobs: Callable[[DictConfig], list[Job]]) -> None:
    """Hydra entry point of ``python -m data_prep.<dataset>`` (``dataset=<dataset>`` preset)."""
    import hydra

    from moseg.config import CONF_DIR  # importing it registers the moseg.* resolvers

    if not any(a.startswith(("dataset=", "+dataset=")) for a in sys.argv[1:]):
        sys.argv.insert(1, f"dataset={dataset}")

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prepare")
    def _run(cfg: DictConfig) -> None:
        try:
            jobs = make_jobs(cfg)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        report = run_prepare(cfg, jobs, desc=dataset)
        if not report.ok:
            sys.exit(1)

    _run()
