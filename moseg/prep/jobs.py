"""One job per sequence: parallel, resumable, atomic, and loud about failures.

A :class:`Job` names a converter function (``"module:function"``, so it can run in a spawned worker
process), its keyword arguments and the output file. The function returns a
:class:`~moseg.io.contract.Sequence`; the runner stamps it with a digest of the job's settings and
writes it atomically. On a rerun a job is skipped only if its output passes
:func:`~moseg.io.contract.validate` (every chunk's checksum included) *and* carries the same digest;
broken, truncated or outdated outputs are redone. A failing job never stops the others: the
:class:`Report` lists each failure with its error, and callers exit non-zero if there is any.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from moseg.io.contract import ContractError, SequenceFile, validate, write_sequence
from moseg.utils.atomic import folder_lock, remove_stale_temps

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str  # sequence name, unique within a run
    out: Path  # contract file to write
    fn: str  # "package.module:function" returning a Sequence
    kwargs: dict[str, Any] = field(default_factory=dict)  # JSON-able
    digest: str = ""  # set by make_job from fn + kwargs + extra


def make_job(name: str, out: str | Path, fn: str, kwargs: dict[str, Any], version: int = 1) -> Job:
    """A job whose digest covers the function, its version and every argument."""
    blob = json.dumps({"fn": fn, "v": version, "kwargs": kwargs}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return Job(name=name, out=Path(out), fn=fn, kwargs=kwargs, digest=digest)


@dataclass
class Failure:
    name: str
    error: str
    traceback: str


@dataclass
class Report:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done and valid
    redone: list[str] = field(default_factory=list)  # existed but invalid or outdated
    failed: list[Failure] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # per written sequence

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [
            f"{len(self.written)} written ({len(self.redone)} of them redone), "
            f"{len(self.skipped)} already done, {len(self.failed)} failed"
        ]
        for f in self.failed:
            lines.append(f"  FAILED {f.name}: {f.error}")
        return "\n".join(lines)


def job_state(job: Job) -> str:
    """ "done", "missing", "invalid" (fails validation) or "outdated" (other settings)."""
    if not job.out.exists():
        return "missing"
    if validate(job.out):
        return "invalid"
    try:
        with SequenceFile(job.out) as f:
            digest = f.meta.provenance.get("job", {}).get("digest")
    except (ContractError, OSError):
        return "invalid"
    return "done" if digest == job.digest else "outdated"


def shard(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """Every ``count``-th job starting at ``index`` (for cluster arrays)."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in [0, {count})")
    return [j for i, j in enumerate(jobs) if i % count == index]


def resolve(fn: str) -> Callable[..., Any]:
    mod, _, attr = fn.partition(":")
    return getattr(importlib.import_module(mod), attr)


def _run_one(job: Job, threads: int | None) -> dict[str, Any]:
    """Run and write one job; returns its stats. Runs in the worker process."""
    if threads:
        import cv2

        cv2.setNumThreads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when a back-end imports it
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    t0 = time.perf_counter()
    seq = resolve(job.fn)(**job.kwargs)
    seq.provenance = dict(seq.provenance)
    seq.provenance["job"] = {"name": job.name, "fn": job.fn, "digest": job.digest}
    write_sequence(job.out, seq)
    lab = seq.label
    return {
        "frames": seq.num_frames,
        "tracks": seq.num_tracks,
        "moving": int((lab == 1).sum()),
        "unknown": int((lab == -1).sum()),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _safe(job: Job, threads: int | None) -> tuple[str, dict[str, Any] | Failure]:
    try:
        return job.name, _run_one(job, threads)
    except Exception as e:  # a failed sequence must never stop the others
        return job.name, Failure(job.name, f"{type(e).__name__}: {e}", traceback.format_exc())


def run_jobs(
    jobs: Sequence[Job],
    workers: int | None = 1,
    desc: str = "sequences",
    progress: bool | None = None,
    overwrite: bool = False,
    threads_per_worker: int | None = None,
    lock_wait_s: float = 0.0,
) -> Report:
    """Run every job that is not already done; never raises for a failing job.

    Each output folder is locked while the jobs run (:func:`~moseg.utils.atomic.folder_lock`):
    a second run on the same folder waits up to ``lock_wait_s`` seconds, then stops with
    :class:`~moseg.utils.atomic.FolderLockedError`, so two runs never do the same work or remove
    each other's files."""
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate sequence names: {dup[:10]}")
    with contextlib.ExitStack() as stack:
        for folder in sorted({j.out.parent for j in jobs}):
            stack.enter_context(folder_lock(folder, wait_s=lock_wait_s))
        return _run_locked(jobs, names, workers, desc, progress, overwrite, threads_per_worker)


def _run_locked(
    jobs: Sequence[Job],
    names: list[str],
    workers: int | None,
    desc: str,
    progress: bool | None,
    overwrite: bool,
    threads_per_worker: int | None,
) -> Report:
    report = Report()
    for folder in {j.out.parent for j in jobs}:
        if folder.is_dir():
            for p in remove_stale_temps(folder):
                log.info("removed an interrupted write: %s", p)
    todo = []
    for job in jobs:
        state = "missing" if overwrite else job_state(job)
        if state == "done":
            report.skipped.append(job.name)
            continue
        if state in ("invalid", "outdated"):
            log.warning("%s: existing %s is %s; redoing it", job.name, job.out, state)
            report.redone.append(job.name)
        todo.append(job)
    if progress is None:
        progress = sys.stderr.isatty()
    workers = max(1, min(workers or len(os.sched_getaffinity(0)), len(todo) or 1))
    if threads_per_worker is None and workers > 1:
        threads_per_worker = max(1, len(os.sched_getaffinity(0)) // workers)
    bar = tqdm(total=len(todo), desc=desc, unit="seq", disable=not progress)

    def record(name: str, res: dict[str, Any] | Failure) -> None:
        if isinstance(res, Failure):
            log.error("%s failed: %s", name, res.error)
            report.failed.append(res)
        else:
            report.written.append(name)
            report.stats[name] = res
            bar.set_postfix_str(f"{name}: {res['tracks']} tracks", refresh=False)
        bar.update()

    if workers == 1:
        for job in todo:
            bar.set_description(f"{desc} [{job.name}]")
            record(*_safe(job, threads_per_worker))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
            futs = {ex.submit(_safe, job, threads_per_worker): job for job in todo}
            for fut in as_completed(futs):
                try:
                    record(*fut.result())
                except BrokenProcessPool as e:  # a worker died (killed, out of memory)
                    name = futs[fut].name
                    record(name, Failure(name, f"worker process died: {e}", ""))
    bar.close()
    order = {n: i for i, n in enumerate(names)}
    report.failed.sort(key=lambda f: order[f.name])
    return report
