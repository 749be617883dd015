"""Segment one video: ``moseg segment VIDEO --out DIR`` and :func:`moseg.segment`.

Output (``DIR``):

- ``masks/<frame>.png``: indexed PNGs in the DAVIS palette at the video's original size, one id
  per object (0 background);
- ``overlay.mp4``: every object in its colour, semi-transparent, outlined, at the frame rate of
  the kept frames;
- ``objects.json``: the run (video, mode, which path segmented it and why, settings) and per
  object its id, the frames it is in, its area and bounding box per frame;
- ``.moseg/``: the run's state (settings digest, one record per finished chunk) for resuming.

Two modes:

- **automatic** (no prompts): every moving object. Per chunk: tracks (``moseg preprocess``'s
  pipeline), the classifier (the shipped checkpoint, else the geometric one), then SAM2 or the
  weight-free densifier. Objects keep their id across chunks by matching them on the shared
  frames, by their masks and their tracks (:func:`link_objects`).
- **prompted** (``--point``/``--box``): only the prompted objects, with the user's ids. With a
  SAM2 checkpoint SAM2 is prompted directly (:class:`~moseg.segmentation.sam2_prompted.
  Sam2Follower`); without one the weight-free path follows the tracks near the clicks
  (:class:`~moseg.segmentation.follow.TrackFollower`). A chunk starts from the previous chunk's
  masks on the shared frames.

Long videos: frames are decoded one at a time and processed in chunks of ``chunk.size`` frames
(``chunk.overlap`` shared), so memory is bounded by the chunk, not the video. Every mask file and
chunk record is written atomically; an interrupted run resumes at its first unfinished chunk.
Every check of the input (the video, every frame's size, the prompts, the checkpoints, the
output folder) happens before anything is written. Progress per stage and frame:
:mod:`moseg.segmentation.progress`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig

from moseg.config import to_plain
from moseg.datasets.common import prep_config
from moseg.densify.base import TrackSet
from moseg.inference.masks import read_mask_png, write_mask_png
from moseg.prep.frames import Frames, FrameSpec, Source, iter_frames, probe, resize_longest
from moseg.segmentation.progress import Progress
from moseg.segmentation.prompts import (
    MAX_OBJECT_ID,
    Point,
    Prompt,
    PromptError,
    check_prompts,
    frame_prompts,
)
from moseg.utils.atomic import atomic_path, atomic_write_text, remove_stale_temps

log = logging.getLogger(__name__)

STATE_DIR = ".moseg"
OUTPUTS = ("masks", "overlay.mp4", "objects.json", STATE_DIR)  # what moseg writes in DIR


class SegmentError(RuntimeError):
    """The output folder cannot be used, or a chunk failed; the message says what to do."""


# ----------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------
def plan_chunks(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Positions ``[a, b)`` of the chunks covering ``n`` frames: ``size`` frames each, every
    chunk sharing ``overlap`` frames with the one before."""
    if size < 2 or not 0 <= overlap < size:
        raise ValueError(
            f"chunk.size must be >= 2 and 0 <= chunk.overlap < size, got {size}, {overlap}"
        )
    out, a = [], 0
    while True:
        b = min(a + size, n)
        out.append((a, b))
        if b >= n:
            return out
        a = b - overlap


def work_size(size: tuple[int, int], longest_side: int | None) -> tuple[int, int]:
    """(h, w) that :func:`~moseg.prep.frames.resize_longest` gives a frame of ``size`` (H, W)."""
    return resize_longest(np.zeros((*size, 1), np.uint8), longest_side).shape[:2]


def choose_method(cfg: DictConfig) -> tuple[str, str]:
    """(``sam2`` | ``weight_free``, why) from the ``densify`` group, spelled as in evaluate.py:
    ``densify=sam2`` needs ``densify.checkpoint`` to be a file (null: random weights, with a
    warning, for tests and speed measurements only)."""
    d = cfg.get("densify") or {}
    target = str(d.get("_target_", ""))
    if target.endswith("WeightFreeDensifier"):
        return "weight_free", "densify=weight_free"
    if not target.endswith("Sam2Densifier"):
        raise ValueError(f"densify must be weight_free or sam2, got _target_ {target!r}")
    ckpt = d.get("checkpoint")
    if ckpt is None:
        return "sam2", "densify=sam2 with random weights (densify.checkpoint=null)"
    path = Path(str(ckpt)).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"densify=sam2 but the SAM2 checkpoint {path} is not a file; set "
            "densify.checkpoint=PATH (and densify.model to match) or densify=weight_free"
        )
    return "sam2", f"SAM2 checkpoint {path}"


def settings_digest(cfg: DictConfig, src: Source, prompts: Seq[Prompt], method: str) -> str:
    """Everything that changes the masks: the video (path, size, frames, modification time),
    the prompts, the path taken and every setting but the output's."""
    keys = ("tracker", "depth", "features", "classifier", "frames", "chunk", "follow", "prep")
    keys += ("ckpt", "seed", "fps")
    keys += ("densify",)  # the prompted weight-free follower's densifier takes these too
    plain = {k: to_plain(cfg.get(k)) for k in keys}
    p = Path(src.path)
    plain["video"] = [str(p.resolve()), src.total_frames, list(src.size), p.stat().st_mtime_ns]
    plain["prompts"] = [repr(x) for x in prompts]
    plain["method"] = method
    blob = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# The output folder
# ----------------------------------------------------------------------------------------------
def prepare_out(out: Path, digest: str, overwrite: bool) -> dict[int, dict[str, Any]]:
    """Create or reuse ``out``; returns the finished chunk records of a resumable run there.

    A folder holding other files than moseg's, or moseg's output of another video or other
    settings, is refused unless ``overwrite`` (which removes only moseg's own outputs). A
    folder that cannot be written (read-only, no permission) is a :class:`SegmentError`
    naming it."""
    try:
        return _prepare_out(out, digest, overwrite)
    except OSError as e:
        raise SegmentError(
            f"--out {out}: cannot write there ({e.strerror or e}); choose a folder you can write to"
        ) from e


def _prepare_out(out: Path, digest: str, overwrite: bool) -> dict[int, dict[str, Any]]:
    state = out / STATE_DIR / "state.json"
    if out.exists() and not out.is_dir():
        raise SegmentError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        old = json.loads(state.read_text()).get("digest") if state.is_file() else None
        if overwrite:
            remove_outputs(out)
        elif old is None:
            raise SegmentError(
                f"--out {out}: the folder is not empty and holds no moseg segmentation; choose "
                "an empty or new folder"
            )
        elif old != digest:
            raise SegmentError(
                f"--out {out}: holds a segmentation of another video or with other settings "
                f"(or prompts); pass --overwrite (overwrite=true) to replace it, or another --out"
            )
    (out / STATE_DIR / "chunks").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    remove_stale_temps(out / "masks")
    remove_stale_temps(out)
    if not state.is_file():
        atomic_write_text(state, json.dumps({"digest": digest}))
    done: dict[int, dict[str, Any]] = {}
    c = 0
    while (rec := out / STATE_DIR / "chunks" / f"{c:05d}.json").is_file():
        d = json.loads(rec.read_text())
        if d.get("pending"):  # killed while writing this chunk's masks: redone
            break
        done[c] = d
        c += 1
    return done


def written_masks(out: Path) -> set[str] | None:
    """Names of the mask files moseg wrote in ``out/masks`` (from the chunk records and the
    lists written before each chunk's masks); None when an older record does not list them."""
    names: set[str] = set()
    for rec in sorted((out / STATE_DIR / "chunks").glob("*.json")):
        files = json.loads(rec.read_text()).get("files")
        if files is None:
            return None
        names.update(files)
    return names


def remove_outputs(out: Path) -> None:
    """Remove moseg's outputs from ``out`` (``--overwrite``): the masks it wrote (by name, from
    its records), ``overlay.mp4``, ``objects.json`` and its state. Anything else, in ``out`` or
    in ``out/masks``, is left alone; ``masks/`` itself goes only when that leaves it empty."""
    masks = out / "masks"
    if masks.is_dir():
        names = written_masks(out)
        for p in masks.iterdir():
            ours = p.suffix == ".png" if names is None else p.name in names
            if p.is_file() and ours:  # records before the file lists: moseg's PNGs
                p.unlink()
        remove_stale_temps(masks)
        if not any(masks.iterdir()):
            masks.rmdir()
    for name in ("overlay.mp4", "objects.json"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)


def write_mask(path: Path, labels: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        write_mask_png(tmp, labels)


def to_size(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label maps ``[T, h, w]`` to ``size`` (H, W), nearest neighbour."""
    if masks.shape[1:] == tuple(size):
        return masks
    H, W = size
    return np.stack([cv2.resize(m, (W, H), interpolation=cv2.INTER_NEAREST) for m in masks])


# ----------------------------------------------------------------------------------------------
# Object ids across chunks (automatic mode)
# ----------------------------------------------------------------------------------------------
LINK_COVER = 0.5  # an object lying mostly (this share of it) inside another continues it
POINT_RADIUS = 4  # px at the working size: a track point's footprint (covers the 8 px grid)
CARRY_TRACKS = 64  # at most this many tracks per object carried to the next chunk's record


def frame_ids(labels: np.ndarray) -> np.ndarray:
    """``[T, 256]`` bool: which ids each frame of ``labels [T, h, w]`` uint8 holds (one
    histogram per frame: no sort, no copy of the whole chunk)."""
    out = np.zeros((len(labels), 256), bool)
    for t, m in enumerate(labels):
        out[t] = np.bincount(m.ravel(), minlength=256) > 0
    return out


def track_members(
    xy: np.ndarray, vis: np.ndarray, labels: np.ndarray, drawn: np.ndarray | None = None
) -> np.ndarray:
    """The object each track belongs to, from a chunk's masks: ``[N]`` ids (0: none).

    ``xy [N, T, 2]`` (x, y) px and ``vis [N, T]``: the chunk's tracks; ``labels [T, h, w]``: its
    label map per frame. A track belongs to object ``k`` when it lies in ``k``'s mask on at
    least two frames and on at least half of the frames where ``k`` is drawn and the track is
    visible (a background track that an object passes over is not one of its tracks); of
    several, the one it lies in most often. ``drawn``: :func:`frame_ids` of ``labels``."""
    N, T = vis.shape
    if N == 0 or T == 0:
        return np.zeros(N, np.int32)
    h, w = labels.shape[1:]
    xy = np.nan_to_num(xy)  # (hidden points may hold anything)
    x = np.clip(np.rint(xy[..., 0]), 0, w - 1).astype(np.intp)
    y = np.clip(np.rint(xy[..., 1]), 0, h - 1).astype(np.intp)
    under = labels[np.arange(T)[None, :], y, x]  # [N, T] the label under each point
    under[~vis] = 0
    drawn = frame_ids(labels) if drawn is None else drawn
    best = np.zeros(N, np.int32)
    best_in = np.zeros(N, np.int64)
    for k in np.flatnonzero(drawn[:, 1 : MAX_OBJECT_ID + 1].any(0)) + 1:
        inside = (under == k).sum(1)
        shown = (vis & drawn[None, :, k]).sum(1)
        ok = (inside >= 2) & (2 * inside >= shown) & (inside > best_in)
        best[ok], best_in[ok] = k, inside[ok]
    return best


def member_points(
    xy: np.ndarray, vis: np.ndarray, member: np.ndarray, frames: range, cap: int | None = None
) -> np.ndarray:
    """``[M, 4]`` int rows ``(t, x, y, id)``: the visible points of the tracks that belong to
    an object (``member [N]``, 0 none) on ``frames`` (``t`` counted from ``frames.start``);
    ``cap``: at most this many tracks per object, evenly spread."""
    rows = []
    for k in np.unique(member[member > 0]):
        n = np.flatnonzero(member == k)
        if cap is not None and len(n) > cap:
            n = n[np.linspace(0, len(n) - 1, cap).round().astype(np.intp)]
        sub_vis = vis[n][:, frames.start : frames.stop]
        i, t = np.nonzero(sub_vis)
        p = np.rint(xy[n[i], frames.start + t]).astype(np.int64)
        rows.append(np.stack([t, p[:, 0], p[:, 1], np.full(len(t), k)], 1))
    return np.concatenate(rows) if rows else np.zeros((0, 4), np.int64)


def support(labels: np.ndarray, points: np.ndarray | None) -> np.ndarray:
    """``labels [O, h, w]`` with every object's track points (``[M, 4]`` rows ``(t, x, y, id)``)
    drawn as small discs where the masks are empty: where an object is on the shared frames by
    its pixels or by its tracks."""
    if points is None or len(points) == 0:
        return labels
    O, h, w = labels.shape
    t, x, y, k = points.T
    ok = (t >= 0) & (t < O) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
    dots = np.zeros_like(labels)
    dots[t[ok], y[ok], x[ok]] = k[ok]
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * POINT_RADIUS + 1,) * 2)
    out = labels.copy()
    for f in np.unique(t[ok]):
        grown = cv2.dilate(dots[f], disc)
        out[f] = np.where(labels[f] > 0, labels[f], grown)
    return out


def read_carry(rec: dict[str, Any] | None) -> np.ndarray | None:
    """The ``carry`` of a chunk record as ``[M, 4]`` rows ``(t, x, y, id)`` (None: none)."""
    text = (rec or {}).get("carry")
    if text is None:
        return None
    rows = [[int(v) for v in r.split(",")] for r in text.split()]
    return np.asarray(rows, np.int64).reshape(-1, 4)


def link_objects(
    prev: np.ndarray,
    new: np.ndarray,
    num_new: int,
    next_id: int,
    min_iou: float,
    prev_points: np.ndarray | None = None,
    new_points: np.ndarray | None = None,
    present: Seq[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, int, list[str]]:
    """Global ids for a chunk's local objects 1..``num_new``.

    ``prev [O, h, w]``: the global label maps already written for the shared frames; ``new
    [O, h, w]``: the chunk's local labels on the same frames. ``prev_points`` / ``new_points``
    (``[M, 4]`` rows ``(t, x, y, id)``, global and local ids): where the tracks of each object
    (of the previous chunk, of this one) are on the shared frames, so an object whose mask is
    missing there is still found by its tracks, and the same tracks in both chunks tie their
    objects together. Over all shared frames together, each object's pixels and track points
    are compared:

    - pairs are matched one to one by the Hungarian method on their IoU; a match needs IoU at
      least ``min_iou``;
    - an object left over continues the old object it lies mostly inside, or that lies mostly
      inside it (at least :data:`LINK_COVER` of the one or the other), or that it overlaps by
      ``min_iou``: an object split into several local ones keeps one id, one that the old
      chunk saw only in part (or the new one) keeps its id, and an object that matches never
      gets a new id;
    - the rest are new objects.

    ``present``: the local ids the chunk has (default all of 1..``num_new``); only these get an
    id. Returns ``(lut [256] local -> global, next free id, notes)``; objects beyond id 254 are
    dropped (and noted)."""
    from scipy.optimize import linear_sum_assignment

    lut = np.zeros(256, np.uint8)
    notes: list[str] = []
    if prev.size and num_new:
        pair = support(prev, prev_points).astype(np.uint16) * 256 + support(new, new_points)
        inter = np.bincount(pair.ravel(), minlength=256 * 256).reshape(256, 256)
        area_old, area_new = inter.sum(1), inter.sum(0)
        old_ids = [g for g in range(1, MAX_OBJECT_ID + 1) if area_old[g]]
        new_ids = [k for k in range(1, num_new + 1) if area_new[k]]
        if old_ids and new_ids:
            i = inter[np.ix_(old_ids, new_ids)].astype(np.float64)
            union = area_old[old_ids][:, None] + area_new[new_ids][None, :] - i
            iou = i / np.maximum(union, 1)
            # the share of the new object inside the old one, and of the old inside the new
            cover = np.maximum(
                i / np.maximum(area_new[new_ids][None, :], 1),
                i / np.maximum(area_old[old_ids][:, None], 1),
            )
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= min_iou:
                    lut[new_ids[c]] = old_ids[r]
            for c, k in enumerate(new_ids):
                if lut[k]:
                    continue
                r = int(np.argmax(cover[:, c] + iou[:, c]))
                if cover[r, c] >= LINK_COVER or iou[r, c] >= min_iou:
                    lut[k] = old_ids[r]
    keep = set(range(1, num_new + 1)) if present is None else {int(k) for k in present}
    for k in range(1, num_new + 1):
        if lut[k] or k not in keep:
            continue
        if next_id > MAX_OBJECT_ID:
            notes.append(f"an object was dropped: all {MAX_OBJECT_ID} ids are used")
            continue
        lut[k] = next_id
        next_id += 1
    return lut, next_id, notes


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One segmentation, checked and planned (nothing written yet)."""

    cfg: DictConfig
    src: Source
    spec: FrameSpec
    out: Path
    prompts: list[Prompt]
    kept: np.ndarray  # source indices of the processed frames
    names: list[str]  # their names (mask file names)
    chunks: list[tuple[int, int]]
    method: str
    why: str
    work: tuple[int, int]  # (h, w) the frames are processed at
    digest: str
    notes: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "prompted" if self.prompts else "automatic"


def plan(cfg: DictConfig, video: str | Path, out: str | Path, prompts: Seq[Prompt]) -> Job:
    """Check the video, the prompts and the settings; plan the chunks. Writes nothing."""
    src = probe(video, fps=float(cfg.get("fps", 24.0)))
    spec = FrameSpec.from_dict(to_plain(cfg.frames))
    kept = spec.select(src.total_frames)
    if len(kept) == 0:
        raise PromptError(
            f"{video}: frames.start={spec.start} is past its {src.total_frames} frames"
        )
    prompts = list(prompts)
    check_prompts(prompts, src.size, src.total_frames, where=str(video))
    kept_set = set(kept.tolist())
    for p in prompts:
        if p.frame not in kept_set:
            raise PromptError(
                f"{p.describe()}: frame {p.frame} is not among the frames processed "
                f"(frames.start={spec.start}, interval={spec.interval}, "
                f"max_frames={spec.max_frames}); prompt a processed frame"
            )
    method, why = choose_method(cfg)
    c = cfg.chunk
    chunks = plan_chunks(len(kept), int(c.size), int(c.overlap))
    return Job(
        cfg=cfg,
        src=src,
        spec=spec,
        out=Path(out),
        prompts=prompts,
        kept=kept,
        names=[src.name(int(i)) for i in kept],
        chunks=chunks,
        method=method,
        why=why,
        work=work_size(src.size, spec.longest_side),
        digest=settings_digest(cfg, src, prompts, method),
    )


class _Algorithms:
    """The classifier and densifier (automatic) or follower (prompted), built before anything
    is written, so a missing checkpoint fails early."""

    def __init__(self, job: Job):
        from hydra.utils import instantiate

        from moseg.inference import Segmenter, check_preset_checkpoint, resolve_checkpoint

        cfg = job.cfg
        self.job = job
        self.classifier = None
        self.follower = None
        self.densifier = None
        self.ckpt = None
        if job.mode == "automatic":
            check_preset_checkpoint(cfg)
            self.ckpt = resolve_checkpoint(cfg.get("ckpt"))
            self.segmenter = Segmenter.from_config(
                cfg.classifier, self.ckpt, instantiate(cfg.densify)
            )
            self.classifier = self.segmenter.classifier
            self.densifier = self.segmenter.densifier
        elif job.method == "sam2":
            from moseg.segmentation.sam2_prompted import Sam2Follower

            kw = {k: v for k, v in to_plain(cfg.densify).items() if k != "_target_"}
            self.follower = Sam2Follower(**kw)
        else:
            from moseg.segmentation.follow import TrackFollower

            follow = dict(to_plain(cfg.get("follow")) or {})
            if "densifier" in follow:
                raise ValueError(
                    "follow.densifier is gone: the follower's densifier takes the densify "
                    "settings (densify.<knob>; densify.prompted.<knob> for what differs in "
                    "prompted mode)"
                )
            dens = {k: v for k, v in to_plain(cfg.densify).items() if k != "_target_"}
            prompted = dens.pop("prompted", None) or {}
            self.follower = TrackFollower(**follow, densifier={**dens, **prompted})

    def announce(self, progress: Progress) -> None:
        """Let the densifier report its stage to ``progress`` when it starts (the segmenter
        classifies, then densifies, in one call)."""
        if self.densifier is not None:
            self.segmenter.densifier = _Announced(self.densifier, progress)

    @property
    def needs_tracks(self) -> bool:
        return not (self.job.mode == "prompted" and self.job.method == "sam2")

    def describe(self) -> dict[str, Any]:
        job = self.job
        out = {"mode": job.mode, "method": job.method, "why": job.why}
        if self.classifier is not None:
            out["classifier"] = getattr(self.classifier, "name", str(self.classifier))
            out["classifier_checkpoint"] = self.ckpt
        return out


class _Announced:
    """A densifier that starts the ``densify`` stage of a :class:`Progress` when called."""

    def __init__(self, densifier: Any, progress: Progress):
        self.densifier = densifier
        self.progress = progress

    def __call__(self, frames: np.ndarray, tracks: TrackSet) -> Any:
        self.progress.stage("densify", len(frames))
        return self.densifier(frames, tracks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.densifier, name)


def _tracks(job: Job, frames: Frames, name: str, prompted: bool):
    from moseg.prep.pipeline import preprocess

    prep = prep_config(job.cfg)
    if prompted:
        prep["features"] = None  # the follower uses the tracks only
    return preprocess(frames, prep, name=name, source="video", split="test")


def process_chunk(
    job: Job,
    algos: _Algorithms,
    c: int,
    frames: np.ndarray,
    prev: np.ndarray,
    next_id: int,
    prev_points: np.ndarray | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, dict[str, Any], int]:
    """Masks ``[Tc, h, w]`` (global ids) of chunk ``c`` from its ``frames [Tc, h, w, 3]``;
    ``prev [O, h, w]``: the masks already written for its first ``O`` frames; ``prev_points``:
    where the previous chunk's tracks of each object are on them (automatic mode, ``[M, 4]``
    rows ``(t, x, y, id)``, see :func:`link_objects`). The record holds ``carry``: the same for
    the next chunk."""
    a, b = job.chunks[c]
    T = len(frames)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    if progress is not None and algos.needs_tracks:
        progress.stage("tracks", T)
    fr = Frames(
        frames=frames,
        fps=job.src.fps / job.spec.interval,
        path=job.src.path,
        indices=job.kept[a : a + T],
        names=job.names[a : a + T],
        total_frames=job.src.total_frames,
        original_size=job.src.size,
    )
    rec: dict[str, Any] = {"chunk": c, "positions": [a, a + T]}
    seq = None
    if algos.needs_tracks:
        seq = _tracks(job, fr, f"{Path(job.src.path).stem}-{c:05d}", job.mode == "prompted")
        rec["tracks"] = int(seq.num_tracks)
    times["preprocess"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    notes: list[str] = []
    if job.mode == "automatic":
        if progress is not None:
            progress.stage("classify", T)  # the densifier says when it starts (_Announced)
        out = algos.segmenter(seq, frames)  # the same step as evaluate.py's
        moving, threshold, res = out.moving, out.threshold, out.result
        times.update(out.seconds)
        t2 = time.perf_counter()
        local = res.masks
        num = int(local.max()) if local.size else 0
        O = len(prev)
        tr = out.tracks
        drawn = frame_ids(local)
        member = track_members(tr.tracks, tr.visibility, local, drawn)
        lut, next_id, notes = link_objects(
            prev,
            local[:O],
            num,
            next_id,
            float(job.cfg.chunk.link_iou),
            prev_points=prev_points,
            new_points=member_points(tr.tracks, tr.visibility, member, range(O)),
            present=np.flatnonzero(drawn.any(0)),
        )
        masks = lut[local]
        if c + 1 < len(job.chunks):  # where this chunk's objects are on the next one's frames
            shared = range(min(job.chunks[c + 1][0] - a, T), T)
            carry = member_points(tr.tracks, tr.visibility, lut[member], shared, CARRY_TRACKS)
            rec["carry"] = " ".join(",".join(map(str, r)) for r in carry.tolist())
        times["link"] = time.perf_counter() - t2
        rec.update(
            moving=int(moving.sum()),
            threshold=threshold,
            ids={str(k): int(lut[k]) for k in range(1, num + 1) if lut[k]},
        )
    else:
        h, w = job.work
        H, W = job.src.size
        local_idx = {int(job.kept[a + t]): t for t in range(T)}
        prompts = frame_prompts(job.prompts, local_idx, (w / W, h / H))
        carried: dict[int, dict[int, np.ndarray]] = {}
        for t, m in enumerate(prev):
            for g in np.unique(m):
                if g:
                    carried.setdefault(int(g), {})[t] = m == g
        ts = None
        if seq is not None:
            n = seq.num_tracks
            ts = TrackSet(
                seq.tracks,
                seq.visibility,
                seq.query_frame,
                np.full(n, np.nan, np.float32),
                np.zeros(n, bool),
            )
        if progress is not None:
            progress.stage("follow", T)
        res = algos.follower(frames, ts, prompts, carried)
        times["follow"] = time.perf_counter() - t1
        masks = res.masks
        rec["prompts"] = [{"object": p.obj, "frame": job.names[a + p.frame]} for p in prompts]
    rec["objects"] = [int(i) for i in np.flatnonzero(frame_ids(masks).any(0)) if i]
    rec["info"] = json.loads(json.dumps(res.info, default=str))
    rec["notes"] = notes
    rec["seconds"] = {k: round(v, 3) for k, v in times.items()}
    rec["next_id"] = next_id
    return masks, rec, next_id


class _FrameReader:
    """Frames by position, read once in order; keeps only what the next chunk still needs."""

    def __init__(self, job: Job):
        self.it = iter_frames(job.src, job.spec)
        self.buf: dict[int, np.ndarray] = {}
        self.next = 0
        self.ended = False

    def get(self, a: int, b: int) -> np.ndarray:
        while self.next < b and not self.ended:
            try:
                _, img = next(self.it)
            except StopIteration:
                self.ended = True
                break
            self.buf[self.next] = img
            self.next += 1
        for p in [p for p in self.buf if p < a]:
            del self.buf[p]
        return (
            np.stack([self.buf[p] for p in range(a, min(b, self.next))]) if a < self.next else None
        )


def run(job: Job) -> dict[str, Any]:
    """Segment ``job`` (see the module docstring); returns the ``objects.json`` content."""
    cfg, out = job.cfg, job.out
    algos = _Algorithms(job)  # may fail (checkpoints): before anything is written
    done = prepare_out(out, job.digest, bool(cfg.get("overwrite", False)))
    final = out / "objects.json"
    if final.is_file() and len(done) == len(job.chunks):
        log.info("%s: already segmented with these settings", out)
        return json.loads(final.read_text())
    info = algos.describe()
    log.info(
        "%s: %d frames at %dx%d in %d chunk(s), %s mode, %s path (%s)",
        job.src.path,
        len(job.kept),
        job.work[1],
        job.work[0],
        len(job.chunks),
        job.mode,
        job.method,
        job.why,
    )
    progress = Progress(len(job.kept), bars=bool(cfg.get("progress", False)))
    algos.announce(progress)
    reader = _FrameReader(job)
    next_id = 1
    written = 0  # positions below this have their mask file
    h, w = job.work
    H, W = job.src.size
    for c, (a, b) in enumerate(job.chunks):
        progress.chunk(c, len(job.chunks), a, b)
        frames = reader.get(a, b)
        if frames is None:
            job.notes.append(f"the video ended after {reader.next} frames")
            break
        if c in done:
            next_id = int(done[c]["next_id"])
            written = done[c]["positions"][1]
            progress.resumed(written)
            continue
        # masks of the shared frames, as written (the previous chunk owns them)
        prev = np.zeros((0, h, w), np.uint8)
        if a < written:
            full = np.stack(
                [read_mask_png(out / "masks" / f"{n}.png") for n in job.names[a:written]]
            )
            prev = to_size(full, (h, w))
        masks, rec, next_id = process_chunk(
            job, algos, c, frames, prev, next_id, read_carry(done.get(c - 1)), progress
        )
        new = range(max(a, written), a + len(frames))
        files = [f"{job.names[pos]}.png" for pos in new]
        # the names go on record before the files exist, so --overwrite knows them even when
        # this chunk is killed half-way
        pending = out / STATE_DIR / "chunks" / f"{c:05d}.json"
        atomic_write_text(pending, json.dumps({"files": files, "pending": True}))
        t0 = time.perf_counter()
        progress.stage("write masks", len(files))
        for name, m in zip(files, masks[new.start - a :], strict=True):
            write_mask(out / "masks" / name, to_size(m[None], (H, W))[0])
            progress.wrote()
        rec["seconds"]["write_masks"] = round(time.perf_counter() - t0, 3)
        written = a + len(frames)
        rec["written"] = [new.start, written]
        rec["files"] = files
        atomic_write_text(out / STATE_DIR / "chunks" / f"{c:05d}.json", json.dumps(rec, indent=1))
        done[c] = rec
        progress.chunk_done(written, rec["seconds"])
    progress.close()
    if written < len(job.kept):
        job.names = job.names[:written]
    result = finish(job, done, info, progress)
    return result


def finish(
    job: Job, done: dict[int, dict[str, Any]], info: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """One streaming pass over the masks (and the frames, for the overlay): ``objects.json``
    and ``overlay.mp4``."""
    from moseg.viz import overlay_masks, write_video

    out, cfg = job.out, job.cfg
    o = cfg.get("output") or {}
    objects: dict[int, dict[str, Any]] = {}

    def stats(name: str, m: np.ndarray) -> None:
        area = np.bincount(m.ravel(), minlength=256)
        for i in np.flatnonzero(area[1 : MAX_OBJECT_ID + 1]) + 1:
            ys, xs = np.nonzero(m == i)
            ob = objects.setdefault(int(i), {"id": int(i), "frames": [], "area": {}, "bbox": {}})
            ob["frames"].append(name)
            ob["area"][name] = int(area[i])
            ob["bbox"][name] = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]

    def masks_iter():
        for name in job.names:
            m = read_mask_png(out / "masks" / f"{name}.png")
            stats(name, m)
            yield m

    H, W = job.src.size
    if o.get("overlay", True):
        spec = FrameSpec(
            start=job.spec.start,
            interval=job.spec.interval,
            max_frames=len(job.names),
            longest_side=o.get("overlay_longest_side"),
        )
        size = work_size((H, W), spec.longest_side)
        alpha = float(o.get("alpha", 0.5))

        def overlays(stage):
            for (_, img), m in zip(iter_frames(job.src, spec), masks_iter(), strict=False):
                if m.shape != img.shape[:2]:
                    m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
                yield overlay_masks(img, m, alpha)
                stage.step()  # the encoder took the frame

        stage = progress.frames("overlay", len(job.names))
        fps = job.src.fps / job.spec.interval
        write_video(out / "overlay.mp4", overlays(stage), fps=fps, size=size)
        stage.close(f"{out / 'overlay.mp4'}, {size[1]}x{size[0]}")
    else:
        stage = progress.frames("objects", len(job.names))
        for _ in masks_iter():
            stage.step()
        stage.close()
    notes = list(job.notes) + [n for r in done.values() for n in r.get("notes", [])]
    seconds: dict[str, float] = {}
    for r in done.values():
        for k, v in r.get("seconds", {}).items():
            seconds[k] = round(seconds.get(k, 0.0) + float(v), 3)
    result = {
        "video": job.src.path,
        **info,
        "frames": len(job.names),
        "frame_names": job.names,
        "size": [W, H],
        "work_size": [job.work[1], job.work[0]],
        "fps": job.src.fps / job.spec.interval,
        "prompts": [p.describe() for p in job.prompts],
        "objects": [objects[i] for i in sorted(objects)],
        "chunks": len(done),
        "seconds": seconds,
        "notes": notes,
        "digest": job.digest,
    }
    atomic_write_text(out / "objects.json", json.dumps(result, indent=1))
    return result


def prompt_summary(prompts: Seq[Prompt]) -> str:
    n_pts = sum(isinstance(p, Point) for p in prompts)
    n_obj = len({p.obj for p in prompts})
    return f"{n_pts} click(s), {len(prompts) - n_pts} box(es), {n_obj} object(s)"
