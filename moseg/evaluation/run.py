"""``evaluate.py``: run a benchmark end to end and score it.

Stages per sequence: preprocess (HDF5 cache, reused while valid) -> classify tracks -> densify ->
indexed PNG masks in ``<run>/masks/<sequence>/`` -> J, F, J&F. With ``masks_dir=DIR`` only the
scoring runs, on ``DIR/<sequence>/*.png``.

A rerun in the same run folder (``hydra.run.dir=...``) keeps every finished sequence (its mask
folder and ``sequences/<seq>.json`` exist; both are written atomically) and does the rest, so an
interrupted evaluation resumes. ``metrics.json`` is written last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from moseg.config import to_plain
from moseg.datasets.common import InputError, prep_config, sequence_jobs
from moseg.datasets.davis import VERSION as DAVIS_VERSION
from moseg.datasets.davis import sequence_dirs
from moseg.evaluation.bench import BenchSpec, scored_frames
from moseg.inference import Segmenter, check_preset_checkpoint, resolve_checkpoint
from moseg.inference.masks import (
    MaskError,
    clean_temp_folders,
    read_sequence_masks,
    write_sequence_masks,
)
from moseg.io import load_sequence
from moseg.metrics import (
    SequenceScore,
    ShapeMismatchError,
    TooManyObjectsError,
    aggregate,
    evaluate_sequence,
    get_protocol,
)
from moseg.prep.frames import FrameError, Frames, read_frames
from moseg.prep.jobs import Job, run_jobs
from moseg.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)


# what predict_sequence reads from a cached file (the required fields come with it)
CLASSIFIER_FIELDS = ("track_depth", "depth", "features", "visibility_prob")


class PartialEvaluationError(RuntimeError):
    """Some sequences have no score: ``metrics.json`` was written for the others and lists them
    (``result`` holds it)."""

    def __init__(self, message: str, result: dict[str, Any]):
        super().__init__(message)
        self.result = result


class EvaluationError(RuntimeError):
    """The benchmark could not be completed; the message says which sequences and why."""


# what scoring one sequence may raise on bad data (its masks, its ground truth, its frames):
# that sequence stays unscored, the others are scored
SCORING_ERRORS = (
    EvaluationError,
    MaskError,
    InputError,
    FrameError,
    ShapeMismatchError,
    TooManyObjectsError,
    FileNotFoundError,
)


# ----------------------------------------------------------------------------------------------
# Preprocessing (cached)
# ----------------------------------------------------------------------------------------------
def preprocess_jobs(cfg: DictConfig, bench: BenchSpec, seqs: list[str]) -> list[Job]:
    """One ``moseg.datasets.davis:convert`` job per sequence, writing into a cache folder keyed by
    every setting that changes the file (so other settings never overwrite it)."""
    common = {
        "layout": bench.format,
        "root": str(bench.root.resolve()),
        "frames": asdict(bench.spec),
        "options": bench.options.to_dict(),
        "prep": prep_config(cfg),
        "source": bench.id,
    }
    blob = json.dumps({"v": DAVIS_VERSION, **common}, sort_keys=True, default=str)
    key = hashlib.sha256(blob.encode()).hexdigest()[:10]
    # keyed by data and settings, not by benchmark: davis2016 and davis2016_moving share files
    out = Path(str(cfg.cache_dir)) / f"{bench.format}-{bench.root.resolve().name}" / key
    split = bench.split or "all"
    found = [(split, s, {}) for s in seqs]
    return sequence_jobs(
        found,
        out,
        "moseg.datasets.davis:convert",
        common,
        DAVIS_VERSION,
        name_key="sequence",
        qualified=False,
    )


def preprocess_all(
    cfg: DictConfig, bench: BenchSpec, seqs: list[str]
) -> tuple[dict, dict, dict[str, str]]:
    """``({sequence: h5 path}, {sequence: seconds or None when cached}, {sequence: why it
    failed})``; the failed ones have no h5 path."""
    jobs = preprocess_jobs(cfg, bench, seqs)
    report = run_jobs(
        jobs,
        workers=cfg.get("workers", 1),
        desc=f"{bench.id}: preprocess",
        progress=cfg.get("progress"),
        overwrite=False,
        lock_wait_s=6 * 3600,  # another evaluation filling the same cache: wait, then reuse
    )
    log.info("preprocess: %s", report.summary())
    failed = {f.name: f"preprocessing: {f.error}" for f in report.failed}
    for name, why in failed.items():
        log.error("%s: %s", name, why)
    seconds = {j.name: report.stats.get(j.name, {}).get("seconds") for j in jobs}
    return {j.name: j.out for j in jobs if j.name not in failed}, seconds, failed


# ----------------------------------------------------------------------------------------------
# One sequence through the pipeline
# ----------------------------------------------------------------------------------------------
def read_bench_frames(bench: BenchSpec, seq: str) -> Frames:
    frames_dir, _ = sequence_dirs(
        bench.format, bench.root, seq, split=bench.raw_split, options=bench.options
    )
    return read_frames(frames_dir, bench.spec, fps=bench.options.fps)


def predict_sequence(
    name: str,
    h5: Path,
    bench: BenchSpec,
    segmenter: Segmenter,
    out_dir: Path,
) -> tuple[dict[str, Any], Frames, np.ndarray]:
    """Classify, densify (:class:`moseg.inference.Segmenter`, as ``moseg segment`` does) and
    write the masks of one sequence; returns its record, its frames and the masks at the
    frames' size (for overlays, so nothing is read twice)."""
    t0 = time.perf_counter()
    # the tracks and what a classifier may use; not the stored ground-truth masks
    seq = load_sequence(h5, fields=CLASSIFIER_FIELDS)
    frames = read_bench_frames(bench, name)
    if frames.size != (seq.height, seq.width) or frames.num_frames != seq.num_frames:
        raise EvaluationError(
            f"{name}: cached tracks are for {seq.num_frames} frames of {seq.width}x{seq.height}, "
            f"the frames read now are {frames.num_frames} of {frames.size[1]}x{frames.size[0]}; "
            f"delete {h5} and rerun"
        )
    t1 = time.perf_counter()
    out = segmenter(seq, frames.frames)
    moving, keep, res = out.moving, out.keep, out.result
    t3 = time.perf_counter()
    masks = res.masks
    dropped = 0
    if not get_protocol(bench.protocol).merge_objects and masks.max() > bench.max_objects:
        # the fine-grained scorer (like the official one) refuses ids above max_objects: keep
        # the largest objects (by area over the video), renumbered 1..max_objects
        area = np.bincount(masks.ravel(), minlength=256)[1:]
        order = np.argsort(-area, kind="stable")[: bench.max_objects]
        lut = np.zeros(256, np.uint8)
        lut[order + 1] = np.arange(1, len(order) + 1)
        dropped = int((area > 0).sum() - (area[order] > 0).sum())
        log.warning(
            "%s: %d smallest objects dropped (max_objects=%d)", name, dropped, bench.max_objects
        )
        masks = lut[masks]
    H0, W0 = frames.original_size
    full = masks
    if masks.shape[1:] != (H0, W0):
        full = np.stack([cv2.resize(m, (W0, H0), interpolation=cv2.INTER_NEAREST) for m in masks])
    write_sequence_masks(out_dir / "masks" / name, frames.names, full)
    t4 = time.perf_counter()
    labelled = seq.label >= 0
    correct = (moving == (seq.label == 1)) & labelled & keep
    record = {
        "sequence": name,
        "frames": int(frames.num_frames),
        "tracks": int(seq.num_tracks),
        "classified": int(keep.sum()),
        "moving": int(moving.sum()),
        "threshold": out.threshold,
        "missing_inputs": list(getattr(segmenter.classifier, "missing_inputs", [])),
        "track_accuracy": float(correct.sum() / max(1, (labelled & keep).sum())),
        "objects": int(res.num_objects),
        "objects_dropped": int(dropped),
        "seconds": {
            "classify": out.seconds["classify"],
            "read_frames": round(t1 - t0, 3),
            "densify": out.seconds["densify"],
            "write": round(t4 - t3, 3),
        },
        "densify_info": json.loads(json.dumps(res.info, default=str)),
    }
    return record, frames, masks


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------
def score_sequence(bench: BenchSpec, seq: str, folder: Path) -> SequenceScore:
    """Score ``folder/<frame>.png`` (one per kept frame, matched by name as the official
    evaluator does) against the ground truth of ``seq``: only annotated frames count (sparse
    ground truth, e.g. FBMS), minus the first and last with ``skip_first_last``. A missing mask
    file or one of another size is an error naming the sequence."""
    gt = bench.ground_truth(seq)
    names = bench.frame_names(seq)
    try:
        pred = read_sequence_masks(folder, names)
    except MaskError as e:
        raise EvaluationError(f"{seq}: {e}") from e
    extra = sorted({p.stem for p in folder.glob("*.png")} - set(names))
    if extra:
        log.warning(
            "%s: %d mask file(s) match no frame and are ignored (first: %s.png)",
            seq,
            len(extra),
            extra[0],
        )
    kw = {"name": seq, "max_objects": bench.max_objects, "skip_first_last": False}
    if pred.shape[1:] != gt.masks.shape[1:]:
        (h, w), (H, W) = pred.shape[1:], gt.masks.shape[1:]
        raise EvaluationError(
            f"{seq}: mask {folder / names[0]}.png is {w}x{h} px, the ground truth is {W}x{H}: "
            "write masks at the frames' original size"
        )
    if pred.shape != gt.masks.shape:  # the scorer's error names both shapes
        return evaluate_sequence(gt.masks, pred, bench.protocol, **kw)
    keep = scored_frames(gt, bench.skip_first_last)
    if keep.size == 0:
        raise EvaluationError(f"{seq}: no annotated frame to score among the {len(names)} kept")
    score = evaluate_sequence(
        gt.masks[keep],
        pred[keep],
        bench.protocol,
        official_decay_bins=bench.official_decay_bins,
        **kw,
    )
    score.frame_names = [names[i] for i in keep]  # what the per-frame values refer to
    return score


def summary_row(sc: SequenceScore) -> dict[str, Any]:
    return {
        "sequence": sc.name,
        "J": sc.j.mean,
        "F": sc.f.mean,
        "JF": sc.jf,
        "J_recall": sc.j.recall,
        "J_decay": sc.j.decay,
        "F_recall": sc.f.recall,
        "F_decay": sc.f.decay,
        "objects": len(sc.objects),
    }


def overall_scores(scores: list[SequenceScore]) -> dict[str, Any]:
    """The benchmark's J, F (mean, recall, decay) and J&F (see :func:`moseg.metrics.aggregate`:
    a mean over objects, i.e. over sequences under MOS)."""
    a = aggregate(scores)
    return {
        "J": {k: a[f"J-{k.capitalize()}"] for k in ("mean", "recall", "decay")},
        "F": {k: a[f"F-{k.capitalize()}"] for k in ("mean", "recall", "decay")},
        "JF": a["J&F-Mean"],
        "num_sequences": a["num_sequences"],
        "num_objects": a["num_objects"],
    }


def format_table(bench_id: str, rows: list[dict[str, Any]], overall: dict[str, Any]) -> str:
    lines = [f"{bench_id}: {len(rows)} sequences", f"{'sequence':<22}{'J':>8}{'F':>8}{'J&F':>8}"]
    for r in rows:
        lines.append(f"{r['sequence']:<22}{r['J']:>8.3f}{r['F']:>8.3f}{r['JF']:>8.3f}")
    lines.append(
        f"{'overall (mean)':<22}{overall['J']['mean']:>8.3f}{overall['F']['mean']:>8.3f}"
        f"{overall['JF']:>8.3f}"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
def _record_path(out_dir: Path, seq: str) -> Path:
    return out_dir / "sequences" / f"{seq}.json"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.bench``; writes ``metrics.json`` into the run folder and returns it."""
    out_dir = Path(str(cfg.paths.output_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    segmenter = None
    if not cfg.get("masks_dir"):
        # the classifier first: a broken or mismatched checkpoint stops before any work (the
        # benchmark's generation, preprocessing); thresholds null: the classifier's own rule,
        # the reference's list for a model, 0.5 for geometric and oracle
        check_preset_checkpoint(cfg)
        segmenter = Segmenter.from_config(cfg.classifier, cfg.get("ckpt"), densifier=None)
        dens = cfg.get("densify") or {}
        if str(dens.get("_target_", "")).endswith("Sam2Densifier"):
            from moseg.densify.sam2 import missing_checkpoint

            missing = missing_checkpoint(dens.get("checkpoint"), str(dens.get("model")))
            if missing:
                raise FileNotFoundError(missing)
    bench = BenchSpec.from_cfg(cfg.bench)
    bench.ensure()
    seqs = bench.list()
    started = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}  # sequence -> why it has no score
    if cfg.get("masks_dir"):
        masks_root = Path(str(cfg.masks_dir))
        if not masks_root.is_dir():
            raise EvaluationError(f"masks_dir {masks_root} is not a folder")
        mode = "score_only"
    else:
        mode = "pipeline"
        masks_root = out_dir / "masks"
        records, failed = _run_pipeline(cfg, bench, seqs, out_dir, segmenter)
    pipeline_s = time.perf_counter() - started

    # every sequence that can be scored is; the others are listed with their reason
    rows, scores = [], []
    for s in tqdm(seqs, desc=f"{bench.id}: score", disable=not cfg.get("progress")):
        if s in failed:
            continue
        try:
            sc = score_sequence(bench, s, masks_root / s)
        except SCORING_ERRORS as e:
            failed[s] = f"scoring: {e}"
            log.error("%s: %s", s, e)
            continue
        scores.append(sc)
        rows.append(summary_row(sc))
    if not scores:
        raise EvaluationError(
            f"{bench.id}: no sequence could be scored:\n  "
            + "\n  ".join(f"{s}: {why}" for s, why in failed.items())
        )
    overall = overall_scores(scores)
    frames = sum(r.get("frames", 0) for r in records.values())
    timing = None
    if mode == "pipeline" and frames:
        timing = _timing(records, frames, pipeline_s)
    result = {
        "bench": bench.id,
        "mode": mode,
        # a classifier with use_depth given sequences without depth: an error unless this is
        # true; then the sequences it let through are listed in warnings
        "allow_missing_depth": _allow_missing_depth(cfg),
        "warnings": _depth_warnings(records),
        "protocol": bench.protocol,
        "masks": str(masks_root),
        "overall": overall,
        "sequences": rows,
        # sequences without a score and why; the overall figures are over the others
        "failed": [{"sequence": s, "reason": why} for s, why in failed.items()],
        "per_frame": {
            sc.name: {"frames": sc.frame_names, **sc.to_dict(per_frame=True)} for sc in scores
        },
        "pipeline": {s: records[s] for s in seqs if s in records} if records else None,
        "timing": timing,
        "notes": bench.notes(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2, default=str))
    table = format_table(bench.id, rows, overall)
    print(table)
    if timing:
        cached = len(timing["preprocess_cached"])
        note = f"; preprocessing of {cached} cached sequence(s) not counted" if cached else ""
        print(f"seconds per frame: {timing['s_per_frame']:.3f} ({frames} frames{note})")
    print(f"metrics: {out_dir / 'metrics.json'}")
    _log_wandb(cfg, bench, rows, overall, timing, masks_root, out_dir)
    if failed:
        raise PartialEvaluationError(
            f"{bench.id}: {len(failed)} of {len(seqs)} sequence(s) have no score (the overall "
            f"figures above are over the other {len(scores)}; finished ones are kept, rerun with "
            f"hydra.run.dir={out_dir} to resume):\n  "
            + "\n  ".join(f"{s}: {why}" for s, why in failed.items()),
            result,
        )
    return result


def _allow_missing_depth(cfg: DictConfig) -> bool:
    """``allow_missing_depth`` (top level; moseg/conf/classifier passes it on to the model
    classifier
    as ``classifier.model.allow_missing_depth``, which may also be set on its own)."""
    model = (cfg.get("classifier") or {}).get("model") or {}
    return bool(cfg.get("allow_missing_depth", False) or model.get("allow_missing_depth", False))


def _depth_warnings(records: dict[str, dict[str, Any]]) -> list[str]:
    """One line per sequence classified without the depth its classifier uses."""
    return [
        f"{s}: the classifier uses depth but the preprocessed file has none: it saw zeros "
        "(allow_missing_depth=true)"
        for s, r in records.items()
        if "depth" in (r.get("missing_inputs") or [])
    ]


def _timing(records: dict[str, dict[str, Any]], frames: int, wall: float) -> dict[str, Any]:
    stages: dict[str, float] = {}
    cached = []
    for s, r in records.items():
        for k, v in r["seconds"].items():
            stages[k] = stages.get(k, 0.0) + float(v or 0.0)
        if r.get("preprocess_s") is None:
            cached.append(s)
        else:
            stages["preprocess"] = stages.get("preprocess", 0.0) + float(r["preprocess_s"])
    total = sum(stages.values())
    return {
        "frames": frames,
        "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
        "s_per_frame": round(total / frames, 4),
        "stage_s_per_frame": {k: round(v / frames, 4) for k, v in stages.items()},
        "wall_seconds_this_run": round(wall, 1),
        "preprocess_cached": cached,
        "note": "sums of the stage times of each sequence as recorded when it was computed; "
        "sequences in preprocess_cached reused a cached HDF5, so their preprocessing is not "
        "counted",
    }


def settings_digest(cfg: DictConfig) -> str:
    """A digest of every setting that changes a sequence's masks (so a resumed run never mixes
    sequences made with different settings)."""
    keys = ("bench", "tracker", "depth", "features", "densify", "classifier", "prep", "ckpt")
    plain = {k: to_plain(cfg.get(k)) for k in keys}
    plain["bench"] = {  # everything but the choice of sequences and the name
        k: v for k, v in (plain["bench"] or {}).items() if k not in ("id", "sequences")
    }
    plain["ckpt"] = resolve_checkpoint(plain["ckpt"])
    if plain["ckpt"]:
        p = Path(str(plain["ckpt"]))
        plain["ckpt"] = [str(p.resolve()), p.stat().st_mtime_ns if p.exists() else None]
    blob = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run_pipeline(
    cfg: DictConfig, bench: BenchSpec, seqs: list[str], out_dir: Path, segmenter: Segmenter
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Records of the sequences segmented (now or by an earlier run with the same settings)
    and ``{sequence: why}`` for those that failed; one failure never stops the others."""
    import hydra

    overwrite = bool(cfg.get("overwrite", False))
    clean_temp_folders(out_dir / "masks")
    digest = settings_digest(cfg)
    records: dict[str, dict[str, Any]] = {}
    todo, changed = [], []
    for s in seqs:
        rec = _record_path(out_dir, s)
        if not overwrite and rec.is_file() and (out_dir / "masks" / s).is_dir():
            old = json.loads(rec.read_text())
            if old.get("settings_digest") == digest:
                records[s] = old
                continue
            changed.append(s)
        todo.append(s)
    if records:
        log.info("resuming: %d sequences already done in %s", len(records), out_dir)
    if changed:
        log.warning(
            "%d sequence(s) in %s were made with other settings and are redone: %s",
            len(changed),
            out_dir,
            ", ".join(changed[:8]),
        )
    if not todo:
        return records, {}
    files, prep_s, failed = preprocess_all(cfg, bench, todo)
    densifier = segmenter.densifier = hydra.utils.instantiate(cfg.densify)
    log.info(
        "pipeline: classifier %s, densifier %s, %d sequences",
        segmenter.name,
        getattr(densifier, "name", densifier),
        len(todo),
    )
    bar = tqdm(todo, desc=f"{bench.id}: segment", unit="seq", disable=not cfg.get("progress"))
    for s in bar:
        bar.set_postfix_str(s, refresh=False)
        if s in failed:
            continue
        try:
            rec, frames, masks = predict_sequence(s, files[s], bench, segmenter, out_dir)
        except Exception as e:  # record and go on: one bad sequence must not lose the others
            log.exception("%s failed", s)
            failed[s] = f"pipeline: {type(e).__name__}: {e}"
            continue
        rec["settings_digest"] = digest
        rec["preprocess_s"] = prep_s.get(s)
        rec["classifier"] = segmenter.name
        rec["densifier"] = getattr(densifier, "name", str(densifier))
        try:
            _overlays(cfg, s, frames, masks, out_dir)
        except Exception as e:  # pictures are extras: never lose a finished sequence to them
            log.warning("%s: overlays failed (%s: %s)", s, type(e).__name__, e)
            rec["overlay_error"] = f"{type(e).__name__}: {e}"
        atomic_write_text(_record_path(out_dir, s), json.dumps(rec, indent=2))
        records[s] = rec
    return records, failed


def _overlays(cfg: DictConfig, seq: str, frames: Frames, masks: np.ndarray, out_dir: Path) -> None:
    """Overlay pictures (and optionally a video) of ``masks [T, H, W]`` on ``frames``."""
    out = cfg.get("output") or {}
    n, video = int(out.get("overlays", 0) or 0), bool(out.get("overlay_video", False))
    if n <= 0 and not video:
        return
    from moseg.viz import overlay_masks, save_png, write_video

    T = frames.num_frames
    pick = sorted({int(round(x)) for x in np.linspace(0, T - 1, n)}) if n > 0 else []
    for t in pick:
        save_png(
            out_dir / "overlays" / seq / f"{frames.names[t]}.png",
            overlay_masks(frames.frames[t], masks[t]),
        )
    if video:
        write_video(
            out_dir / "overlays" / f"{seq}.mp4",
            (overlay_masks(f, m) for f, m in zip(frames.frames, masks, strict=True)),
            fps=frames.fps,
            size=frames.size,
        )


def _log_wandb(
    cfg: DictConfig,
    bench: BenchSpec,
    rows: list[dict[str, Any]],
    overall: dict[str, Any],
    timing: dict[str, Any] | None,
    masks_root: Path,
    out_dir: Path,
) -> None:
    w = cfg.get("wandb") or {}
    if not w.get("enabled", False) or w.get("mode") == "disabled":
        return
    try:
        import wandb
    except ImportError:
        log.warning("wandb is not installed: skipping W&B logging")
        return
    try:
        run = wandb.init(
            project=w.get("project", "moseg"),
            name=w.get("name"),
            group=w.get("group"),
            mode=w.get("mode", "offline"),
            dir=str(out_dir),
            config=OmegaConf.to_container(cfg, resolve=True),
            job_type="evaluate",
            reinit="finish_previous",
        )
    except Exception as e:  # e.g. online mode without an API key: metrics.json is written
        log.error("W&B logging failed (%s); metrics are in %s", e, out_dir / "metrics.json")
        return
    try:
        b = bench.id
        data = {
            f"{b}/J": overall["J"]["mean"],
            f"{b}/F": overall["F"]["mean"],
            f"{b}/JF": overall["JF"],
        }
        for k in ("recall", "decay"):
            data[f"{b}/J_{k}"] = overall["J"][k]
            data[f"{b}/F_{k}"] = overall["F"][k]
        if timing:
            data[f"{b}/s_per_frame"] = timing["s_per_frame"]
        cols = ["sequence", "J", "F", "JF"]
        data[f"{b}/sequences"] = wandb.Table(
            columns=cols, data=[[r[c] for c in cols] for r in rows]
        )
        # a few overlays of every sequence, at most 24 pictures in all
        per_seq = [sorted(d.glob("*.png")) for d in sorted((out_dir / "overlays").glob("*/"))]
        k = max(1, 24 // max(1, len(per_seq)))
        pics = [p for ps in per_seq for p in ps[:k]][:24]
        if pics:
            data[f"{b}/overlays"] = [
                wandb.Image(str(p), caption=f"{p.parent.name}/{p.stem}") for p in pics
            ]
        run.log(data)
        run.summary.update({k: v for k, v in data.items() if isinstance(v, float)})
    finally:
        run.finish()
    if sys.stderr.isatty():
        log.info("W&B run written under %s (wandb sync to upload)", out_dir / "wandb")
