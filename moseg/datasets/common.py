"""What every converter shares: config -> jobs -> parallel run -> summary and exit code.

A converter module defines ``make_jobs(cfg) -> list[Job]`` (one job per sequence; discovery only,
cheap) and a top-level ``convert(**kwargs) -> Sequence`` that the jobs name, and ends with
``if __name__ == "__main__": main("<dataset>", make_jobs)``. Then

    python -m data_prep.<dataset> dataset.raw=/path/to/raw [tracker=...] [workers=4]

converts every sequence into ``dataset.out/<split>/<sequence>.h5``, skips the ones already done
(validated, same settings), redoes broken ones, and exits 1 if any sequence failed (the summary
lists each failure). ``shard_index``/``shard_count`` split the work over cluster
jobs (docs/data-prep.md).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from moseg.config import to_plain
from moseg.prep.frames import FrameSpec
from moseg.prep.jobs import Job, Report, make_job, run_jobs, shard
from moseg.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

Found = tuple[str, str, dict[str, Any]]
"""A discovered sequence: (output split, name, the keyword arguments of its own job)."""


class InputError(ValueError):
    """The raw dataset is missing or malformed; the message names the path."""


def prep_config(cfg: DictConfig) -> dict[str, Any]:
    """The plain-dict back-end settings a job needs (they enter the job digest)."""
    return {k: to_plain(cfg.get(k)) for k in ("tracker", "depth", "features", "prep")}


def dataset_settings(cfg: DictConfig, d: Mapping[str, Any], fps: float) -> dict[str, Any]:
    """The job settings of a converter that reads the dataset's own labels, tracks and depth
    (``d``: the plain ``dataset`` config): frame selection, frame rate (default ``fps``), label
    and track settings, whether to use the dataset's depth, and the back-ends'
    (:func:`prep_config`)."""
    return {
        "frames": d.get("frames") or {},
        "fps": float(d.get("fps", fps)),
        "labels": d.get("labels") or {},
        "tracks": d.get("tracks") or {},
        "use_dataset_depth": bool(d.get("use_dataset_depth", True)),
        "prep": prep_config(cfg),
    }


def select_sequences(found: list[str], wanted: list[str] | None, where: str) -> list[str]:
    """``found`` filtered to ``wanted`` (all when None); unknown names are an error."""
    if wanted is None:
        return found
    missing = [s for s in wanted if s not in found]
    if missing:
        raise InputError(f"{where}: no sequence(s) {missing}; found {len(found)}: {found[:8]}...")
    return [s for s in found if s in set(wanted)]


def select_found(
    found: list[Found], wanted: list[str] | None, where: str, max_per_split: int | None = None
) -> list[Found]:
    """``found`` filtered to ``wanted`` (each ``name`` or ``split/name``; all when None; unknown
    names are an error, as in :func:`select_sequences`), then cut to the first ``max_per_split``
    of each split (all when None)."""
    if wanted is not None:
        keys = [f"{s}/{n}" for s, n, _ in found]
        expanded: list[str] = []
        for w in wanted:
            w = str(w)
            hits = [k for k in keys if k == w or k.split("/", 1)[1] == w]
            expanded += hits or [w]  # an unknown name is reported by select_sequences
        keep = set(select_sequences(keys, expanded, where))
        found = [f for f, k in zip(found, keys, strict=True) if k in keep]
    if max_per_split is None:
        return found
    seen: dict[str, int] = {}
    out = []
    for item in found:
        seen[item[0]] = seen.get(item[0], 0) + 1
        if seen[item[0]] <= int(max_per_split):
            out.append(item)
    return out


def frame_settings(dataset: Any) -> dict[str, Any]:
    """``dataset.frames`` as a plain dict, checked here so that a bad setting stops discovery
    (:class:`InputError`) instead of failing every job."""
    try:
        spec = to_plain(dataset.get("frames")) or {}
        FrameSpec.from_dict(spec)
    except (TypeError, ValueError) as e:
        raise InputError(f"dataset.frames: {e}") from e
    return spec


def sequence_jobs(
    found: Iterable[Found],
    out: str | Path,
    fn: str,
    common: Mapping[str, Any],
    version: int,
    *,
    name_key: str | None = "name",
    qualified: bool = True,
) -> list[Job]:
    """One job per discovered ``(split, name, kwargs)``: it writes ``<out>/<split>/<name>.h5`` (an
    empty split: ``<out>/<name>.h5``), is named ``split/name`` (``name`` alone unless
    ``qualified``) and calls ``fn`` with ``common``, then ``split`` and ``{name_key: name}``
    (left out when ``name_key`` is None), then the item's own ``kwargs``."""
    out = Path(out)
    return [
        make_job(
            f"{split}/{name}" if qualified else name,
            out / split / f"{name}.h5",
            fn,
            {**common, "split": split, **({name_key: name} if name_key else {}), **kwargs},
            version=version,
        )
        for split, name, kwargs in found
    ]


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
