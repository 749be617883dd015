"""What every converter shares: config -> jobs -> parallel run -> summary and exit code.

A converter module defines ``make_jobs(cfg) -> list[Job]`` (one job per sequence; discovery only,
cheap) and a top-level ``convert(**kwargs) -> Sequence`` that the jobs name, and ends with
``if __name__ == "__main__": main("<dataset>", make_jobs)``. Then

    python -m data_prep.<dataset> dataset.raw=/path/to/raw [tracker=...] [workers=4]

converts every sequence into ``dataset.out/<split>/<sequence>.h5``, skips the ones already done
(validated, same settings), redoes broken ones, and exits 1 if any sequence failed (the summary
lists each failure). ``shard_index``/``shard_count`` split the work over cluster
jobs (docs/data-prep.md).

The frame-folder layouts (DAVIS in :mod:`moseg.datasets.davis`, FBMS-59 in
:mod:`moseg.datasets.fbms`, SegTrackv2 in :mod:`moseg.datasets.segtrackv2`) also share their
reading options (:class:`LayoutOptions`), the ground truth they return (:class:`GroundTruth`),
split lists and folder checks, defined at the end of this module.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig
from PIL import Image

from moseg.config import to_plain
from moseg.prep.frames import IMAGE_EXTS, FrameError, FrameSpec, natural_key
from moseg.prep.jobs import Job, Report, make_job, run_jobs, shard
from moseg.utils.atomic import FolderLockedError, atomic_write_text

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
        write_report(Path(out) / f"prepare_report{suffix}.json", report)
    return report


def write_report(path: Path, report: Report) -> dict[str, Any]:
    """Merge this run's outcome into ``path`` (atomically): ``sequences`` keeps every
    sequence's latest outcome over all runs into the folder (``written`` / ``skipped`` /
    ``failed``, with its error or statistics and the run's time), ``runs`` one line per run;
    ``written``, ``skipped``, ``redone`` and ``failed`` are this run's. A report that cannot be
    read is replaced, with a warning."""
    import time

    old: dict[str, Any] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable (%s); starting a new report", path, e)
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    seqs = dict(old.get("sequences") or {})
    for name in report.written:
        seqs[name] = {"outcome": "written", "at": now, "stats": report.stats.get(name)}
    for name in report.skipped:
        prev = seqs.get(name) or {}
        seqs[name] = {**prev, "outcome": prev.get("outcome", "skipped"), "checked": now}
    for f in report.failed:
        seqs[f.name] = {"outcome": "failed", "at": now, "error": f.error}
    runs = [
        *(old.get("runs") or []),
        {
            "at": now,
            "written": len(report.written),
            "skipped": len(report.skipped),
            "failed": len(report.failed),
        },
    ]
    merged = {
        "written": report.written,
        "skipped": report.skipped,
        "redone": report.redone,
        "failed": [f.__dict__ for f in report.failed],
        "stats": report.stats,
        "sequences": dict(sorted(seqs.items())),
        "runs": runs,
    }
    atomic_write_text(path, json.dumps(merged, indent=2))
    return merged


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
        try:
            report = run_prepare(cfg, jobs, desc=dataset)
        except FolderLockedError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except OSError as e:
            print(
                f"error: cannot write {e.filename or cfg.dataset.get('out')}: {e.strerror or e}",
                file=sys.stderr,
            )
            sys.exit(2)
        if not report.ok:
            sys.exit(1)

    _run()


# ----------------------------------------------------------------------------------------------
# Frame-folder layouts (DAVIS, FBMS-59, SegTrackv2): what their readers share
# ----------------------------------------------------------------------------------------------
MASK_FORMATS = ("auto", "binary", "indexed")
MISSING_MASKS = ("error", "unannotated")
BACKGROUNDS = ("auto", "white", "black")


@dataclass(frozen=True)
class LayoutOptions:
    """How to read a raw tree; the same keys as in
    moseg/conf/dataset/{davis,fbms59,segtrackv2}.yaml."""

    resolution: str = "480p"  # davis: sub-folder of JPEGImages/ and Annotations/
    imagesets: str | None = None  # davis: folder of the split lists (relative to the root)
    masks: str = "auto"  # davis: auto | binary | indexed
    missing_masks: str = "error"  # davis: a kept frame without a mask: error | unannotated
    background: str = "auto"  # fbms59: colour of the background region: auto | white | black
    fps: float = 24.0  # frame rate of the frame folders (they carry none)

    def __post_init__(self) -> None:
        for name, allowed in (
            ("masks", MASK_FORMATS),
            ("missing_masks", MISSING_MASKS),
            ("background", BACKGROUNDS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, d: Any) -> LayoutOptions:
        """Options from a mapping (e.g. the ``dataset`` config); unknown keys are ignored."""
        d = dict(to_plain(d) or {})
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known and v is not None}
        if "fps" in kw:
            kw["fps"] = float(kw["fps"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def layout_options(options: LayoutOptions | Mapping[str, Any] | None) -> LayoutOptions:
    """``options`` as :class:`LayoutOptions` (a mapping is read with ``from_dict``)."""
    if isinstance(options, LayoutOptions):
        return options
    return LayoutOptions.from_dict(options or {})


@dataclass
class GroundTruth:
    """Instance masks of the kept frames of one sequence, at the frames' original size."""

    masks: np.ndarray  # [T, H, W] uint8: 0 background, 1..254 objects, 255 void / not annotated
    annotated: np.ndarray  # [T] bool: the frame has ground truth
    files: list[str | None]  # [T] the mask file(s) of each frame ("a|b" for several objects)
    info: dict[str, Any]  # JSON-able: format, object ids, notes (stored in the provenance)


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image, from its header where possible."""
    try:
        with Image.open(path) as im:
            w, h = im.size
        return int(h), int(w)
    except Exception:  # formats PIL does not know: decode fully
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FrameError(f"{path}: cannot be read as an image") from None
        return int(img.shape[0]), int(img.shape[1])


def check_mask_size(
    path: Path | str, shape: tuple[int, ...], size: tuple[int, int], ref: str
) -> None:
    """:class:`FrameError` naming ``path`` when a mask of ``shape`` is not the frames' ``size``
    (H, W); ``ref`` names the frame it belongs to."""
    if tuple(shape[:2]) != tuple(size):
        raise FrameError(
            f"{path}: mask is {shape[1]}x{shape[0]}, but the frames ({ref}) are {size[1]}x{size[0]}"
        )


def subdirs(folder: Path) -> list[str]:
    """Names of the visible sub-folders of ``folder``, in natural order."""
    return sorted(
        (p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=natural_key,
    )


def require_dir(path: Path, what: str) -> None:
    """:class:`InputError` naming ``path`` (``what`` it should be) when it is not a folder."""
    if not path.is_dir():
        raise InputError(f"{path}: {what} not found")


def parse_split_list(path: str | Path) -> list[str]:
    """Sequence names in a DAVIS split list, in order, without repeats.

    A line is either a sequence name (DAVIS 2017) or a frame path, possibly followed by a mask
    path (DAVIS 2016: ``/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png``).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot be read ({e})") from e
    out: dict[str, None] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token = line.split()[0].lstrip("*")
        parts = [p for p in token.replace("\\", "/").split("/") if p]
        if not parts:
            raise InputError(f"{path}:{n}: cannot read a sequence from {line!r}")
        if len(parts) > 1 and Path(parts[-1]).suffix.lower() in IMAGE_EXTS:
            out[parts[-2]] = None
        else:
            out[parts[-1]] = None
    return list(out)


def listed_sequences(split_list: Path, present: list[str]) -> list[str]:
    """The sequences named in ``split_list`` (:func:`parse_split_list`) that are among
    ``present`` (the frame folders found), in natural order; listed ones without a folder are
    skipped with a warning, and a list naming none is an :class:`InputError`."""
    listed = parse_split_list(split_list)
    if not listed:
        raise InputError(f"{split_list}: lists no sequence")
    absent = [s for s in listed if s not in set(present)]
    if absent:
        log.warning(
            "%s: %d listed sequences have no frame folder and are skipped: %s",
            split_list,
            len(absent),
            ", ".join(absent[:8]) + (" ..." if len(absent) > 8 else ""),
        )
    return sorted((s for s in listed if s in set(present)), key=natural_key)
