"""Prompted segmentation with SAM2: the user's clicks and boxes, tracked through a chunk.

With a SAM2 checkpoint configured, ``moseg segment VIDEO --point X,Y[@F][:neg] --box
X0,Y0,X1,Y1[@F] --object ID`` gives the prompts to SAM2 directly (as in SAM2's video tutorials)
and SAM2 tracks every object through the video. Long videos come in chunks of frames that overlap
by a few frames; a chunk starts from the previous chunk's masks on the overlap frames.

Shapes: one chunk of ``T`` frames of ``H x W``; ``P`` clicks.

One chunk (:meth:`Sam2Follower.__call__`), talking to SAM2 only through
:class:`~moseg.densify.sam2.PromptablePredictor` (the real :class:`Sam2Predictor` or a fake):

1. **Sort the prompts**, per object and frame (several :class:`FramePrompt` of one object on one
   frame are merged: clicks concatenated, the last box wins):

   - a prompt with a positive click or a box *starts* the object on its frame: SAM2 segments the
     frame from the prompt alone (an initial conditioning frame) and keeps that mask there;
   - a prompt of negative clicks only *corrects* the object: it needs a mask to cut from, so it
     waits until the object has been tracked (step 4).

2. **Carried masks** become mask prompts (``add_mask``), every overlap frame of every object,
   except where the user starts that object on the same frame (the user's prompt wins). Why all
   overlap frames and not only the last: with the released SAM2 configs the output on a
   mask-prompted frame is the mask itself, so the overlap frames continue the previous chunk
   exactly (no jump at the seam), and several frames give SAM2 back a short memory of the
   object's recent appearance, as its memory bank held at the end of the previous chunk, rather
   than a single frame. An empty carried mask (object hidden there) goes in too, as "not visible
   here"; but an object whose carried masks are all empty and that the user does not start in
   this chunk is dropped: nothing is left to find it by.

3. **Propagate** from the earliest conditioning frame (over all objects) forward to the last
   frame, then backward from it to frame 0 (when it is not frame 0). SAM2 attends to the memories
   of *all* of an object's conditioning frames from every frame, earlier or later
   (``max_cond_frames_in_attn = -1`` in the released configs), and on a conditioning frame
   returns the prompt's mask instead of a tracked one; so one forward pass from the earliest
   covers every later frame, those between and after later prompts included, and one backward
   pass covers the frames before it. (Propagating backward from the latest prompt instead would
   track the frames between prompts a second time, for nothing.) An object first prompted later
   than that frame is tracked on the earlier frames too, from the memory of its prompts, as SAM2
   does in one session.

4. **Corrections**: each negative-only prompt then refines the tracked mask on its frame (SAM2's
   correction clicks: memory and the current mask go into the decoder with the clicks; the frame
   becomes a conditioning frame) and step 3 runs again over the whole chunk. On a frame with a
   carried mask, the negative clicks thus cut from the carried mask.

5. **Label map** ``masks [T, H, W] uint8``, value = the user's object id (1..254, may be
   sparse). Where objects overlap, the pixel goes to the object that is *smaller on that frame*
   (ties: the lower id); objects are painted from the largest down. A small object in front of
   a large one so survives whole while the large one loses a little; the predictor returns
   binary masks, so there are no logits to compare.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from moseg.densify.base import DensifyResult, TrackSet
from moseg.densify.sam2 import PromptablePredictor, Sam2Params, Sam2Predictor
from moseg.segmentation.prompts import MAX_OBJECT_ID, FramePrompt

log = logging.getLogger(__name__)

# Keys of moseg/conf/densify/sam2.yaml that are not settings of the model (Sam2Predictor): Hydra's
# target and the automatic densifier's algorithm (moseg.densify.sam2.Sam2Params). Accepted and
# ignored, so the whole densify config can be passed.
IGNORED_KEYS = ("_target_", *(f.name for f in fields(Sam2Params)))

Carried = Mapping[int, Mapping[int, np.ndarray]]  # {obj_id: {local frame: mask [H, W]}}


@dataclass
class _Object:
    """One object's plan for a chunk."""

    obj: int
    starts: dict[int, FramePrompt] = field(default_factory=dict)  # frame -> positive/box prompt
    corrections: dict[int, FramePrompt] = field(default_factory=dict)  # frame -> negatives only
    carried: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> mask [H, W] bool
    overridden: list[int] = field(default_factory=list)  # carried frames the user prompts


def _check_id(obj: Any, what: str) -> int:
    i = int(obj)
    if i != obj or not 1 <= i <= MAX_OBJECT_ID:
        raise ValueError(f"{what}: object id {obj!r} is not an integer in 1..{MAX_OBJECT_ID}")
    return i


def _check_frame(frame: Any, T: int, what: str) -> int:
    f = int(frame)
    if f != frame or not 0 <= f < T:
        raise ValueError(f"{what}: frame {frame!r} is not in this chunk's 0..{T - 1}")
    return f


def merge_prompts(prompts: Iterable[FramePrompt], T: int) -> dict[tuple[int, int], FramePrompt]:
    """``{(obj, frame): prompt}`` with the prompts of one object on one frame merged (clicks
    concatenated in order, the last box wins); checks ids, frames and shapes."""
    merged: dict[tuple[int, int], FramePrompt] = {}
    for p in prompts:
        what = f"prompt of object {p.obj} on frame {p.frame}"
        obj, frame = _check_id(p.obj, what), _check_frame(p.frame, T, what)
        pts = np.asarray(p.points, np.float32).reshape(-1, 2)
        labels = np.asarray(p.labels).reshape(-1)
        if len(labels) != len(pts) or not np.isin(labels, (0, 1)).all():
            raise ValueError(f"{what}: need one label (1 or 0) per point, got {labels.tolist()}")
        box = None if p.box is None else np.asarray(p.box, np.float32).reshape(-1)
        if box is not None and box.shape != (4,):
            raise ValueError(f"{what}: a box is [x0, y0, x1, y1], got {box.tolist()}")
        if not np.isfinite(pts).all() or (box is not None and not np.isfinite(box).all()):
            raise ValueError(f"{what}: coordinates must be finite")
        if len(pts) == 0 and box is None:
            raise ValueError(f"{what}: no click and no box")
        old = merged.get((obj, frame))
        if old is not None:
            pts = np.concatenate([old.points, pts])
            labels = np.concatenate([old.labels, labels])
            box = old.box if box is None else box
        merged[(obj, frame)] = FramePrompt(obj, frame, pts, labels.astype(np.int32), box)
    return merged


def check_carried(
    carried: Carried | None, T: int, size: tuple[int, int]
) -> dict[int, dict[int, np.ndarray]]:
    """``{obj: {frame: mask [H, W] bool}}`` from ``carried`` (any nonzero value is the object),
    checking ids, frames and shapes."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for obj, per_frame in (carried or {}).items():
        o = _check_id(obj, "carried mask")
        for frame, mask in per_frame.items():
            f = _check_frame(frame, T, f"carried mask of object {o}")
            m = np.asarray(mask)
            if m.shape != size:
                raise ValueError(
                    f"carried mask of object {o} on frame {f}: shape {m.shape}, expected {size}"
                )
            out.setdefault(o, {})[f] = m > 0
    return out


def plan_objects(
    merged: Mapping[tuple[int, int], FramePrompt], carried: Mapping[int, Mapping[int, np.ndarray]]
) -> tuple[list[_Object], list[dict[str, Any]]]:
    """Steps 1-2 of the module docstring: the objects to track, by id, and the dropped ones
    (``{"id", "reason"}``)."""
    ids = sorted({o for o, _ in merged} | set(carried))
    objects, dropped = [], []
    for obj in ids:
        ob = _Object(obj)
        for (o, f), p in sorted(merged.items()):
            if o != obj:
                continue
            if bool((p.labels == 1).any()) or p.box is not None:
                ob.starts[f] = p
            else:
                ob.corrections[f] = p
        for f, m in sorted(carried.get(obj, {}).items()):
            if f in ob.starts:
                ob.overridden.append(f)
            else:
                ob.carried[f] = m
        if ob.starts or any(m.any() for m in ob.carried.values()):
            objects.append(ob)
        else:
            reason = (
                "its carried masks are empty and it has no positive click or box in this chunk"
                if obj in carried
                else "only negative clicks in this chunk and no mask carried over"
            )
            dropped.append({"id": obj, "reason": reason})
            log.info("sam2 prompted: object %d dropped: %s", obj, reason)
    return objects, dropped


def label_objects(masks: Mapping[int, np.ndarray], size: tuple[int, int, int]) -> np.ndarray:
    """``{obj_id: [T, H, W] bool}`` -> ``labels [T, H, W] uint8`` (value = id). On every frame
    the objects are painted from the largest area down (ties: higher ids first), so an
    overlapped pixel goes to the smaller object (ties: the lower id)."""
    labels = np.zeros(size, np.uint8)
    for t in range(size[0]):
        order = sorted(masks, key=lambda i: (-int(masks[i][t].sum()), -i))
        for i in order:
            labels[t][masks[i][t]] = i
    return labels


def _prompt_note(p: FramePrompt, kind: str, mask_px: int) -> dict[str, Any]:
    return {
        "frame": int(p.frame),
        "kind": kind,
        "points": np.round(p.points.astype(float), 2).tolist(),
        "labels": p.labels.astype(int).tolist(),
        "box": None if p.box is None else np.round(p.box.astype(float), 2).tolist(),
        "mask_px": mask_px,
    }


class Sam2Follower:
    """Prompted segmentation ``"sam2"``: ``__call__(frames, tracks, prompts, carried)`` ->
    :class:`DensifyResult` with ``masks [T, H, W] uint8`` (value = the user's object id) for one
    chunk; the algorithm is in the module docstring.

    ``predictor``: any :class:`PromptablePredictor` (a fake in tests); without one a
    :class:`Sam2Predictor` is built from ``predictor_kwargs``, the model section of
    ``moseg/conf/densify/sam2.yaml`` (model, checkpoint, image_size, device, dtype, offload_*, ...).
    The keys in :data:`IGNORED_KEYS` (that yaml's algorithm knobs and ``_target_``) are accepted
    and ignored, so the whole densify config can be passed; any other key is an error."""

    name = "sam2"

    def __init__(self, predictor: PromptablePredictor | None = None, **predictor_kwargs: Any):
        model_keys = set(inspect.signature(Sam2Predictor.__init__).parameters) - {"self"}
        unknown = sorted(set(predictor_kwargs) - model_keys - set(IGNORED_KEYS))
        if unknown:
            raise TypeError(
                f"Sam2Follower: unknown settings {unknown}; the model takes {sorted(model_keys)}"
            )
        self.ignored = sorted(set(predictor_kwargs) & set(IGNORED_KEYS))
        kwargs = {k: v for k, v in predictor_kwargs.items() if k in model_keys}
        if predictor is None:
            predictor = Sam2Predictor(**kwargs)
        elif kwargs:
            log.debug("Sam2Follower: predictor given, model settings %s unused", sorted(kwargs))
        self.predictor = predictor

    def model_info(self) -> dict[str, Any]:
        """The model behind the predictor, for ``info["model"]``."""
        pred = self.predictor
        if isinstance(pred, Sam2Predictor):
            return {
                "name": pred.model_name,
                "checkpoint": pred.checkpoint or "random weights",
                "image_size": pred.image_size,
                "device": str(pred.device),
                "dtype": pred.dtype,
            }
        return {
            "name": str(getattr(pred, "model_name", type(pred).__name__)),
            "checkpoint": getattr(pred, "checkpoint", None),
        }

    def __call__(
        self,
        frames: np.ndarray,
        tracks: TrackSet | None,
        prompts: Iterable[FramePrompt],
        carried: Carried | None = None,
    ) -> DensifyResult:
        """``frames [T, H, W, 3] uint8 RGB`` (one chunk); ``tracks``: unused (the signature of
        the weight-free follower); ``prompts`` with chunk-local frames; ``carried``
        ``{obj_id: {local frame: mask [H, W] bool}}``, the previous chunk's masks on this
        chunk's first frames. Objects without a prompt here and without a carried mask are
        absent from the result."""
        t0 = time.perf_counter()
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be [T, H, W, 3] uint8, got {frames.shape} {frames.dtype}"
            )
        T, H, W = frames.shape[:3]
        merged = merge_prompts(prompts, T)
        objects, dropped = plan_objects(merged, check_carried(carried, T, (H, W)))
        notes: dict[int, list[dict[str, Any]]] = {ob.obj: [] for ob in objects}
        passes: list[dict[str, Any]] = []
        timing: dict[str, float] = {}
        masks: dict[int, np.ndarray] = {}
        if objects:
            pred = self.predictor
            pred.load(frames)
            try:
                timing["load"] = time.perf_counter() - t0
                # steps 1-2: masks and starting prompts, frame by frame, ids in order
                todo = [(f, 0, ob) for ob in objects for f in ob.carried]
                todo += [(f, 1, ob) for ob in objects for f in ob.starts]
                for f, is_prompt, ob in sorted(todo, key=lambda x: (x[0], x[1], x[2].obj)):
                    if is_prompt:
                        p = ob.starts[f]
                        m = self._prompt(p, refine=False, size=(H, W))
                        notes[ob.obj].append(_prompt_note(p, "start", int(m.sum())))
                    else:
                        _checked(pred.add_mask(f, ob.obj, ob.carried[f]), (H, W))
                start = min(f for f, _, _ in todo)
                # step 3
                masks = self._propagate(start, [ob.obj for ob in objects], (T, H, W), passes)
                # step 4
                fixes = [(f, ob) for ob in objects for f in ob.corrections]
                fixes.sort(key=lambda x: (x[0], x[1].obj))
                for f, ob in fixes:
                    p = ob.corrections[f]
                    m = self._prompt(p, refine=True, size=(H, W))
                    notes[ob.obj].append(_prompt_note(p, "correct", int(m.sum())))
                if fixes:
                    start = min(start, fixes[0][0])
                    masks = self._propagate(start, [ob.obj for ob in objects], (T, H, W), passes)
            finally:
                pred.release()
        t1 = time.perf_counter()
        labels = label_objects(masks, (T, H, W))
        timing["label"] = time.perf_counter() - t1
        timing["total"] = time.perf_counter() - t0
        present = labels.reshape(T, -1) > 0
        info: dict[str, Any] = {
            "method": "sam2",
            "model": self.model_info(),
            "objects": [
                self._object_note(ob, notes[ob.obj], labels, masks[ob.obj]) for ob in objects
            ],
            "dropped": dropped,
            "passes": passes,
            "frames_without_mask": np.flatnonzero(~present.any(1)).tolist(),
            "timing": {k: round(v, 4) for k, v in timing.items()},
        }
        log.info(
            "sam2 prompted: %d frames, %d objects (%d dropped), %d propagation passes, %.1f s",
            T,
            len(objects),
            len(dropped),
            len(passes),
            timing["total"],
        )
        return DensifyResult(labels, info)

    # ------------------------------------------------------------------------------------------

    def _prompt(self, p: FramePrompt, refine: bool, size: tuple[int, int]) -> np.ndarray:
        has_points = len(p.points) > 0
        mask = self.predictor.prompt(
            p.frame,
            p.obj,
            p.points if has_points else None,
            p.labels if has_points else None,
            p.box,
            refine=refine,
        )
        return _checked(mask, size)

    def _propagate(
        self,
        start: int,
        ids: list[int],
        shape: tuple[int, int, int],
        passes: list[dict[str, Any]],
    ) -> dict[int, np.ndarray]:
        """Step 3: ``{obj_id: masks [T, H, W] bool}``, forward from ``start`` then backward."""
        T, H, W = shape
        out = {i: np.zeros(shape, bool) for i in ids}
        seen = np.zeros(T, bool)
        t0 = time.perf_counter()
        for reverse in (False, True) if start > 0 else (False,):
            for f, per_obj in self.predictor.propagate(start, reverse):
                seen[f] = True
                for i in ids:
                    if i in per_obj:
                        out[i][f] = _checked(per_obj[i], (H, W))
        if not seen.all():
            raise RuntimeError(
                f"the predictor's propagation from frame {start} skipped frames "
                f"{np.flatnonzero(~seen).tolist()}"
            )
        passes.append(
            {"start": int(start), "backward": start > 0, "s": round(time.perf_counter() - t0, 4)}
        )
        return out

    @staticmethod
    def _object_note(
        ob: _Object, prompts: list[dict[str, Any]], labels: np.ndarray, mask: np.ndarray
    ) -> dict[str, Any]:
        T = labels.shape[0]
        mine = (labels == ob.obj).reshape(T, -1).any(1)
        return {
            "id": ob.obj,
            "prompts": prompts,
            "carried_frames": sorted(ob.carried),
            "carried_overridden": ob.overridden,
            "area_px": int((labels == ob.obj).sum()),
            "area_px_before_overlaps": int(mask.sum()),
            "frames": int(mine.sum()),
            "frames_without_mask": np.flatnonzero(~mine).tolist(),
        }


def _checked(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != size:
        raise ValueError(f"the predictor returned a mask of shape {m.shape}, expected {size}")
    return m.astype(bool)
