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
  weight-free densifier. Objects keep their id across chunks by matching their masks on the
  shared frames (Hungarian on IoU, ``chunk.link_iou``).
- **prompted** (``--point``/``--box``): only the prompted objects, with the user's ids. With a
  SAM2 checkpoint SAM2 is prompted directly (:class:`~moseg.segmentation.sam2_prompted.
  Sam2Follower`); without one the weight-free path follows the tracks near the clicks
  (:class:`~moseg.segmentation.follow.TrackFollower`). A chunk starts from the previous chunk's
  masks on the shared frames.

Long videos: frames are decoded one at a time and processed in chunks of ``chunk.size`` frames
(``chunk.overlap`` shared), so memory is bounded by the chunk, not the video. Every mask file and
chunk record is written atomically; an interrupted run resumes at its first unfinished chunk.
Every check of the input (the video, the prompts, the checkpoints) happens before anything is
written.
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
from tqdm import tqdm

from moseg.config import to_plain
from moseg.datasets.common import prep_config
from moseg.densify.base import TrackSet
from moseg.inference.masks import read_mask_png, write_mask_png
from moseg.prep.frames import Frames, FrameSpec, Source, iter_frames, probe, resize_longest
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
    plain = {k: to_plain(cfg.get(k)) for k in keys}
    prompted_weight_free = bool(prompts) and method == "weight_free"  # uses follow, not a group
    plain["densify"] = None if prompted_weight_free else to_plain(cfg.get("densify"))
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
    settings, is refused unless ``overwrite`` (which removes only moseg's own outputs)."""
    state = out / STATE_DIR / "state.json"
    if out.exists() and not out.is_dir():
        raise SegmentError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        old = json.loads(state.read_text()).get("digest") if state.is_file() else None
        if overwrite:
            for name in OUTPUTS:
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
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
        done[c] = json.loads(rec.read_text())
        c += 1
    return done


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
def link_objects(
    prev: np.ndarray, new: np.ndarray, num_new: int, next_id: int, min_iou: float
) -> tuple[np.ndarray, int, list[str]]:
    """Global ids for a chunk's local objects 1..``num_new``.

    ``prev [O, h, w]``: the global label maps already written for the shared frames; ``new
    [O, h, w]``: the chunk's local labels on the same frames. Pairs are matched by the Hungarian
    method on their IoU over the shared frames; a match below ``min_iou`` is no match. Returns
    ``(lut [256] local -> global, next free id, notes)``; objects beyond id 254 are dropped (and
    noted)."""
    from scipy.optimize import linear_sum_assignment

    lut = np.zeros(256, np.uint8)
    notes: list[str] = []
    old_ids = [int(i) for i in np.unique(prev) if 0 < i <= MAX_OBJECT_ID] if prev.size else []
    if old_ids and num_new:
        p = prev.reshape(-1)
        q = new.reshape(-1)
        inter = np.zeros((len(old_ids), num_new))
        union = np.zeros_like(inter)
        for a, g in enumerate(old_ids):
            pg = p == g
            for b in range(num_new):
                qb = q == b + 1
                inter[a, b] = np.count_nonzero(pg & qb)
                union[a, b] = np.count_nonzero(pg | qb)
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols, strict=True):
            if iou[r, c] >= min_iou:
                lut[c + 1] = old_ids[r]
    for b in range(1, num_new + 1):
        if lut[b]:
            continue
        if next_id > MAX_OBJECT_ID:
            notes.append(f"an object was dropped: all {MAX_OBJECT_ID} ids are used")
            continue
        lut[b] = next_id
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

        from moseg.inference import Segmenter, resolve_checkpoint

        cfg = job.cfg
        self.job = job
        self.classifier = None
        self.follower = None
        self.densifier = None
        self.ckpt = None
        if job.mode == "automatic":
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

            # follow.densifier: only what differs from the follower's own densifier settings
            self.follower = TrackFollower(**(to_plain(cfg.get("follow")) or {}))

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


def _tracks(job: Job, frames: Frames, name: str, prompted: bool):
    from moseg.prep.pipeline import preprocess

    prep = prep_config(job.cfg)
    if prompted:
        prep["features"] = None  # the follower uses the tracks only
    return preprocess(frames, prep, name=name, source="video", split="test")


def process_chunk(
    job: Job, algos: _Algorithms, c: int, frames: np.ndarray, prev: np.ndarray, next_id: int
) -> tuple[np.ndarray, dict[str, Any], int]:
    """Masks ``[Tc, h, w]`` (global ids) of chunk ``c`` from its ``frames [Tc, h, w, 3]``;
    ``prev [O, h, w]``: the masks already written for its first ``O`` frames."""
    a, b = job.chunks[c]
    T = len(frames)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
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
        out = algos.segmenter(seq, frames)  # the same step as evaluate.py's
        moving, threshold, res = out.moving, out.threshold, out.result
        times.update(out.seconds)
        local = res.masks
        num = int(local.max()) if local.size else 0
        O = len(prev)
        lut, next_id, notes = link_objects(
            prev, local[:O], num, next_id, float(job.cfg.chunk.link_iou)
        )
        masks = lut[local]
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
        res = algos.follower(frames, ts, prompts, carried)
        times["follow"] = time.perf_counter() - t1
        masks = res.masks
        rec["prompts"] = [{"object": p.obj, "frame": job.names[a + p.frame]} for p in prompts]
    rec["objects"] = sorted(int(i) for i in np.unique(masks) if i)
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
    progress = bool(cfg.get("progress", False))
    reader = _FrameReader(job)
    next_id = 1
    written = 0  # positions below this have their mask file
    h, w = job.work
    H, W = job.src.size
    bar = tqdm(total=len(job.kept), desc="segment", unit="frame", disable=not progress)
    for c, (a, b) in enumerate(job.chunks):
        frames = reader.get(a, b)
        if frames is None:
            job.notes.append(f"the video ended after {reader.next} frames")
            break
        if c in done:
            next_id = int(done[c]["next_id"])
            written = done[c]["positions"][1]
            bar.update(written - bar.n)
            continue
        # masks of the shared frames, as written (the previous chunk owns them)
        prev = np.zeros((0, h, w), np.uint8)
        if a < written:
            full = np.stack(
                [read_mask_png(out / "masks" / f"{n}.png") for n in job.names[a:written]]
            )
            prev = to_size(full, (h, w))
        masks, rec, next_id = process_chunk(job, algos, c, frames, prev, next_id)
        new = range(max(a, written), a + len(frames))
        full = to_size(masks[new.start - a :], (H, W))
        for pos, m in zip(new, full, strict=True):
            write_mask(out / "masks" / f"{job.names[pos]}.png", m)
        written = a + len(frames)
        rec["written"] = [new.start, written]
        atomic_write_text(out / STATE_DIR / "chunks" / f"{c:05d}.json", json.dumps(rec, indent=1))
        done[c] = rec
        bar.update(written - bar.n)
    bar.close()
    if written < len(job.kept):
        job.names = job.names[:written]
    result = finish(job, done, info, progress)
    return result


def finish(
    job: Job, done: dict[int, dict[str, Any]], info: dict[str, Any], progress: bool
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
        for name in tqdm(job.names, desc="objects", unit="frame", disable=not progress):
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

        def overlays():
            for (_, img), m in zip(iter_frames(job.src, spec), masks_iter(), strict=False):
                if m.shape != img.shape[:2]:
                    m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
                yield overlay_masks(img, m, alpha)

        write_video(out / "overlay.mp4", overlays(), fps=job.src.fps / job.spec.interval, size=size)
    else:
        for _ in masks_iter():
            pass
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
