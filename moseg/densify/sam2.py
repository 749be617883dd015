"""SAM2 densification: moving tracks -> per-object masks with the SAM2 video predictor.

Shapes: ``T`` frames of ``H x W`` (the frames' own resolution: tracks come in and masks go out
at it); ``N`` tracks; ``P`` prompt points; ``K`` objects.

The algorithm (:func:`densify_with_predictor`) talks to SAM2 only through the small
:class:`VideoPredictor` protocol, so it runs the same on the real model (:class:`Sam2Predictor`)
and on a deterministic fake in the tests. Every number and rule is a knob of
:class:`Sam2Params`; the defaults are the release's (``sam2/run_sam2.py`` of "Segment Any Motion
in Videos"), and each rule we tried instead is kept as a named alternative (docs/densify-sam2.md
lists them with why we had them).

1. **Group** (the release's ``process_invisible_traj``). Among the moving tracks not yet used,
   count the visible ones per frame; the *canonical frame* is the temporally middle one of the
   ``int(canonical_top_fraction * T)`` frames with the most (``canonical_rule``). Click the medoid
   of the visible tracks there (a fresh SAM2 session, one positive point) and read the mask, and
   the mask dilated (``dilate_kernel`` square, ``dilate_iterations`` times), at the tracks
   (``pixel_lookup``). The round gives an object when the dilated mask holds at least
   ``min_tracks`` tracks and the mask itself at least one (``require_prompt_track``), or when the
   whole video has fewer than ``min_tracks`` moving tracks (``take_all``: one round, accepted).
   The object's tracks are those in the mask (``object_tracks``); the tracks in the dilated mask
   leave the pool either way (``drop_clicked_track``: the clicked one too). Rounds stop after
   ``clamp(ceil(T / prompt_every), min_rounds, max_rounds)`` or when fewer than ``min_tracks``
   tracks are left.
2. **Prompt and propagate, per object** (a fresh session each, SAM2 object id = the object's
   number 1..K in the order found). Prompt frames: the canonical frame, then 0, ``prompt_every``,
   2 ``prompt_every``, ... (``prompt_frames``), skipping frames where fewer than
   ``prompt_min_tracks`` of the object's tracks are visible. On each, click the medoid of the
   visible tracks; when the mask (``reprompt_coverage_on``) holds fewer than
   ``reprompt_coverage`` of them, click again with ``reprompt_points`` points (``reprompt_pick``),
   seeded with the first click's mask (``reprompt_mode``). Propagate forward from the first
   prompted frame and, when that is not frame 0, backward from it; the two passes are OR-ed.
3. **Merge** objects whose masks agree (IoU > ``merge_iou`` or one covers at least
   ``merge_cover`` of the other) on at least ``merge_min_frames`` of the frames (``merge_over``);
   groups as the release forms them (``merge_groups``), masks OR-ed.
4. **Label map.** Where objects overlap the first in the release's numbering wins
   (``overlap``); objects left with no pixel are dropped; ids 1..K follow ``order``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from moseg.densify.base import DensifyResult, TrackSet, check_inputs

log = logging.getLogger(__name__)

INSTALL = (
    "pip install -e '.[sam2]' && SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation "
    "sam2==1.1.0 (or `make setup`; a plain `pip install sam2` works too but pulls torchvision "
    "and a CUDA torch)"
)
# Meta's release folders: SAM 2.1 (2024-09-28) and SAM 2 (2024-07-28)
CHECKPOINT_URLS = {
    "sam2.1": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/",
    "sam2": "https://dl.fbaipublicfiles.com/segment_anything_2/072824/",
}
SIZE_NAMES = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}

SIZES = {
    "t": "t",
    "tiny": "t",
    "s": "s",
    "small": "s",
    "b+": "b+",
    "b": "b+",
    "base_plus": "b+",
    "base-plus": "b+",
    "l": "l",
    "large": "l",
}
CANONICAL_RULES = ("floor_latest", "ceil_earliest")
PIXEL_LOOKUPS = ("truncate_clip", "nearest_on_frame")
MASK_SETS = ("prompt_mask", "dilated_mask")
PROMPT_FRAMES = ("release_grid", "around_canonical")
REPROMPT_PICKS = ("release", "farthest_point")
REPROMPT_MODES = ("refine", "replace")
MERGE_OVER = ("all", "union")
MERGE_GROUPS = ("release", "transitive")
OVERLAPS = ("release", "smaller_wins")
ORDERS = ("release", "size", "appearance")
DTYPES = ("auto", "bfloat16", "float16", "float32")


# --------------------------------------------------------------------------------------------
# the predictor protocol


class VideoPredictor(Protocol):
    """What the algorithm needs from SAM2. Points are ``[P, 2]`` float (x, y) in frame pixels
    (pixel centres at integers); labels ``[P]`` int (1 positive, 0 negative); masks ``[H, W]``
    bool at the frame resolution."""

    def load(self, frames: np.ndarray) -> None:
        """Take the video ``[T, H, W, 3] uint8 RGB`` (replacing any earlier one)."""

    def reset(self) -> None:
        """Forget every object, prompt and result; keep the video."""

    def click(
        self,
        frame: int,
        obj_id: int,
        points: np.ndarray,
        labels: np.ndarray,
        refine: bool = False,
    ) -> np.ndarray:
        """Set (replace) object ``obj_id``'s points on ``frame``; its mask there ``[H, W]``.
        ``refine``: SAM2 also gets the object's last mask on that frame as its mask input (what
        SAM2's ``add_new_points_or_box`` does when a frame is clicked twice); otherwise the frame
        is segmented afresh. The densifier passes ``refine`` only when it is true."""

    def propagate(self, start: int, reverse: bool) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Track every prompted object from ``start`` to the last frame (to frame 0 when
        ``reverse``); yields ``(frame, {obj_id: mask [H, W] bool})``."""

    def release(self) -> None:
        """Free the video and its state."""


class PromptablePredictor(Protocol):
    """What prompted segmentation (:mod:`moseg.segmentation.sam2_prompted`) needs from SAM2: the
    user's clicks and boxes, masks as prompts, propagation. Coordinates and masks as in
    :class:`VideoPredictor`; ``box`` ``[4]`` float (x0, y0, x1, y1) px."""

    def load(self, frames: np.ndarray) -> None:
        """Take the video ``[T, H, W, 3] uint8 RGB`` (replacing any earlier one)."""

    def reset(self) -> None:
        """Forget every object, prompt and result; keep the video."""

    def prompt(
        self,
        frame: int,
        obj_id: int,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        refine: bool = False,
    ) -> np.ndarray:
        """Set object ``obj_id``'s clicks ``points [P, 2]`` / ``labels [P]`` and/or ``box [4]`` on
        ``frame`` (replacing earlier prompts there); its mask there ``[H, W]``. ``refine``: on a
        frame already tracked, correct the tracked mask (SAM2's correction clicks) instead of
        segmenting the frame afresh; the corrected frame conditions later propagation."""

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray) -> np.ndarray:
        """Set object ``obj_id``'s prompt on ``frame`` to ``mask [H, W]`` bool (replacing
        earlier prompts there); its mask there ``[H, W]``."""

    def propagate(self, start: int, reverse: bool) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """As :meth:`VideoPredictor.propagate`."""

    def release(self) -> None:
        """Free the video and its state."""


# --------------------------------------------------------------------------------------------
# the algorithm


@dataclass
class Sam2Params:
    """The numbers and rules of the densification algorithm (module docstring). The defaults are
    the release's; every rule has the alternative we used before as a named value."""

    # 1. grouping: one click per round on the canonical frame
    canonical_top_fraction: float = 0.2
    canonical_rule: str = "floor_latest"
    dilate_kernel: int = 6
    dilate_iterations: int = 3
    pixel_lookup: str = "truncate_clip"
    min_tracks: int = 6
    require_prompt_track: bool = True
    take_all: bool = True
    object_tracks: str = "prompt_mask"
    drop_clicked_track: bool = False
    min_rounds: int = 5
    max_rounds: int = 10
    # 2. per object: prompts, re-prompts, propagation
    prompt_frames: str = "release_grid"
    prompt_every: int = 16
    prompt_min_tracks: int = 1
    reprompt_coverage: float = 0.7
    reprompt_coverage_on: str = "prompt_mask"
    reprompt_pick: str = "release"
    reprompt_points: int = 3
    reprompt_mode: str = "refine"
    # 3. merging duplicates
    merge_iou: float = 0.9
    merge_cover: float = 0.9
    merge_min_frames: float = 0.3
    merge_over: str = "all"
    merge_groups: str = "release"
    # 4. label map
    overlap: str = "release"
    order: str = "release"

    def __post_init__(self) -> None:
        if not 0 < self.canonical_top_fraction <= 1:
            raise ValueError(
                f"canonical_top_fraction must be in (0, 1], got {self.canonical_top_fraction}"
            )
        if self.dilate_kernel < 0 or self.dilate_iterations < 0:
            raise ValueError("dilate_kernel and dilate_iterations must be >= 0")
        if self.min_tracks < 1 or self.prompt_min_tracks < 1:
            raise ValueError("need min_tracks >= 1 and prompt_min_tracks >= 1")
        if self.min_rounds < 0 or self.max_rounds < 0:
            raise ValueError("need min_rounds >= 0 and max_rounds >= 0")
        if self.max_rounds > 254:
            raise ValueError("max_rounds must be <= 254 (uint8 label maps)")
        if self.prompt_every < 1 or self.reprompt_points < 1:
            raise ValueError("prompt_every and reprompt_points must be >= 1")
        for name, allowed in (
            ("canonical_rule", CANONICAL_RULES),
            ("pixel_lookup", PIXEL_LOOKUPS),
            ("object_tracks", MASK_SETS),
            ("prompt_frames", PROMPT_FRAMES),
            ("reprompt_coverage_on", MASK_SETS),
            ("reprompt_pick", REPROMPT_PICKS),
            ("reprompt_mode", REPROMPT_MODES),
            ("merge_over", MERGE_OVER),
            ("merge_groups", MERGE_GROUPS),
            ("overlap", OVERLAPS),
            ("order", ORDERS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def rounds(self, T: int) -> int:
        """Click rounds at most for a video of ``T`` frames: the release's
        ``min(max(len(range(0, T, 16)), 5), 10)`` with 16, 5, 10 as knobs."""
        return min(max(math.ceil(T / self.prompt_every), self.min_rounds), self.max_rounds)


def canonical_frame(counts: np.ndarray, top_fraction: float, rule: str = "floor_latest") -> int:
    """The temporally middle frame among the frames with the highest ``counts [T]``.

    ``floor_latest`` (the release): the ``int(top_fraction * T)`` highest as the release's
    ``np.argsort(counts)[-top_k:]`` picks them (the same call, so ties fall as numpy's default
    sort leaves them: to the later frames up to 16 frames, where it is an insertion sort, in
    its quicksort's order beyond); when that number is 0 (``T < 5`` at 0.2) every frame, since
    ``[-0:]`` keeps the whole array. ``ceil_earliest``: the ``ceil(top_fraction * T)`` highest
    (at least one), ties to the earlier frames."""
    T = len(counts)
    if rule == "floor_latest":
        n = int(T * top_fraction)
        ascending = np.argsort(counts)
        top = ascending[-n:] if n > 0 else ascending
    else:
        n = min(T, max(1, math.ceil(top_fraction * T - 1e-9)))
        top = np.argsort(-counts, kind="stable")[:n]
    top = np.sort(top)
    return int(top[len(top) // 2])


def medoid(points: np.ndarray, chunk: int = 256) -> int:
    """Index of the point of ``points [M, 2]`` with the smallest summed distance to the others
    (the release's ``find_dense_pts``; ties: the first)."""
    p = points.astype(np.float64)
    total = np.empty(len(p))
    for s in range(0, len(p), chunk):
        total[s : s + chunk] = np.linalg.norm(p[s : s + chunk, None] - p[None], axis=-1).sum(1)
    return int(np.argmin(total))


def centroid_extremes(points: np.ndarray, n: int = 3) -> np.ndarray:
    """Indices of the release's re-prompt points (``find_centroid_and_nearest_farthest``) among
    ``points [M, 2]``: the point nearest the centroid, then the ``n - 1`` farthest from it in
    increasing distance. With one point it is taken twice, with two both are taken."""
    d = np.linalg.norm(points - points.mean(0), axis=1)
    nearest = int(np.argmin(d))
    if len(points) == 1:
        far = [nearest]
    elif len(points) == 2:
        far = [1 - nearest]
    else:
        far = np.argsort(d)[len(d) - (n - 1) :].tolist() if n > 1 else []  # the release's call
    return np.asarray([nearest, *far], dtype=np.int64)


def spread_points(points: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` points of ``points [M, 2]``: the one nearest the centroid, then each
    next the farthest from those chosen (farthest-point sampling)."""
    p = points.astype(np.float64)
    first = int(np.argmin(np.linalg.norm(p - p.mean(0), axis=1)))
    chosen = [first]
    dist = np.linalg.norm(p - p[first], axis=1)
    while len(chosen) < min(n, len(p)):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:
            break  # all remaining points coincide with chosen ones
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(p - p[nxt], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def dilate(mask: np.ndarray, kernel: int, iterations: int) -> np.ndarray:
    """``mask [H, W]`` bool dilated by a ``kernel x kernel`` square ``iterations`` times
    (``cv2.dilate``, default anchor: a 6 px kernel grows a mask 2 px up/left and 3 px down/right
    per iteration)."""
    if kernel <= 1 or iterations <= 0:
        return mask.astype(bool)
    k = np.ones((kernel, kernel), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), k, iterations=iterations).astype(bool)


def points_inside(
    mask: np.ndarray, points: np.ndarray, lookup: str = "truncate_clip"
) -> np.ndarray:
    """``[M]`` bool: whether each of ``points [M, 2]`` (x, y px) falls on ``mask [H, W]``.

    ``truncate_clip`` (the release's ``find_pts_in_mask``): pixel ``(int(x), int(y))``, clipped
    into the frame, so a point off the frame reads the border pixel. ``nearest_on_frame``: the
    nearest pixel (pixel centres at integers); points off the frame are outside."""
    H, W = mask.shape
    if lookup == "truncate_clip":
        xi = np.clip(points[:, 0].astype(np.int64), 0, W - 1)
        yi = np.clip(points[:, 1].astype(np.int64), 0, H - 1)
        return mask[yi, xi].astype(bool)
    xi = np.rint(points[:, 0]).astype(np.int64)
    yi = np.rint(points[:, 1]).astype(np.int64)
    ok = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
    out = np.zeros(len(points), dtype=bool)
    out[ok] = mask[yi[ok], xi[ok]]
    return out


def prompt_frames(canonical: int, every: int, T: int, rule: str = "release_grid") -> list[int]:
    """The prompt frames of an object, in prompting order.

    ``release_grid``: ``canonical``, then ``0, every, 2 every, ... < T`` without it.
    ``around_canonical``: ``canonical``, then ``canonical +- k * every`` inside ``[0, T)``,
    nearest first (later before earlier)."""
    if rule == "release_grid":
        return [canonical] + [f for f in range(0, T, every) if f != canonical]
    out = [canonical]
    for k in range(1, T // every + 2):
        out += [f for f in (canonical + k * every, canonical - k * every) if 0 <= f < T]
    return out


@dataclass
class _Group:
    tracks: np.ndarray  # [n] indices into the TrackSet
    canonical: int
    click: tuple[float, float]


def _checked_mask(mask: np.ndarray, H: int, W: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (H, W):
        raise ValueError(f"the predictor returned a mask of shape {mask.shape}, expected {(H, W)}")
    return mask.astype(bool)


def _click(
    predictor: VideoPredictor,
    frame: int,
    obj_id: int,
    points: np.ndarray,
    size: tuple[int, int],
    refine: bool = False,
) -> np.ndarray:
    """All-positive click(s) ``points [P, 2]``; ``refine`` is passed only when set, so that a
    predictor without it still serves every other call."""
    labels = np.ones(len(points), np.int32)
    pts = np.asarray(points, np.float32)
    if refine:
        mask = predictor.click(frame, obj_id, pts, labels, refine=True)
    else:
        mask = predictor.click(frame, obj_id, pts, labels)
    return _checked_mask(mask, *size)


def group_tracks(
    predictor: VideoPredictor,
    tracks: np.ndarray,
    usable: np.ndarray,
    candidates: np.ndarray,
    p: Sam2Params,
    size: tuple[int, int],
) -> tuple[list[_Group], list[dict[str, Any]]]:
    """Step 1: group the ``candidates`` (track indices, ascending) into objects by single clicks.

    ``tracks [N, T, 2]`` px, ``usable [N, T]`` (the points that count as visible). Returns the
    accepted groups in the order found and one note per click round."""
    T = usable.shape[1]
    remaining = np.asarray(candidates, dtype=np.int64)
    take_all = p.take_all and 0 < len(remaining) < p.min_tracks
    groups: list[_Group] = []
    rounds: list[dict[str, Any]] = []
    while len(rounds) < p.rounds(T) and len(remaining) > 0:
        if len(remaining) < p.min_tracks and not (take_all and not rounds):
            break
        vis = usable[remaining]  # [R, T]
        counts = vis.sum(0)
        c = canonical_frame(counts, p.canonical_top_fraction, p.canonical_rule)
        if counts[c] == 0:
            c = int(np.argmax(counts))
        if counts[c] == 0:
            break  # nothing left to click (the release would fail here)
        ids = remaining[vis[:, c]]
        pts = tracks[ids, c]
        m = medoid(pts)
        predictor.reset()
        mask = _click(predictor, c, 1, pts[m : m + 1], size)
        inside = ids[points_inside(mask, pts, p.pixel_lookup)]
        dilated = dilate(mask, p.dilate_kernel, p.dilate_iterations)
        covered = ids[points_inside(dilated, pts, p.pixel_lookup)]
        judged = len(covered) >= p.min_tracks and (len(inside) > 0 or not p.require_prompt_track)
        accepted = judged or take_all
        rounds.append(
            {
                "frame": c,
                "click": [float(pts[m, 0]), float(pts[m, 1])],
                "visible": len(ids),
                "inside": len(inside),
                "covered": len(covered),
                "mask_px": int(mask.sum()),
                "accepted": bool(accepted),
            }
        )
        if accepted:
            members = inside if p.object_tracks == "prompt_mask" else covered
            groups.append(_Group(members, c, (float(pts[m, 0]), float(pts[m, 1]))))
        drop = np.union1d(covered, ids[m : m + 1]) if p.drop_clicked_track else covered
        remaining = remaining[~np.isin(remaining, drop)]
        log.debug("sam2 group round %d: %s", len(rounds), rounds[-1])
    return groups, rounds


def reprompt_points(points: np.ndarray, p: Sam2Params) -> np.ndarray | None:
    """Indices of the re-prompt points among ``points [M, 2]``, or None when there is nothing
    to add (farthest-point sampling with one point or ``reprompt_points=1``)."""
    if p.reprompt_pick == "release":
        return centroid_extremes(points, p.reprompt_points)
    if p.reprompt_points <= 1 or len(points) <= 1:
        return None
    return spread_points(points, p.reprompt_points)


def track_object(
    predictor: VideoPredictor,
    tracks: np.ndarray,
    usable: np.ndarray,
    group: _Group,
    obj_id: int,
    p: Sam2Params,
    size: tuple[int, int],
) -> tuple[np.ndarray, dict[str, Any]]:
    """Step 2 for one object (SAM2 object id ``obj_id``): prompt, re-prompt, propagate. Returns
    ``masks [T, H, W]`` bool and notes."""
    H, W = size
    T = usable.shape[1]
    predictor.reset()
    prompted, reprompted, coverage = [], [], {}

    def share(mask: np.ndarray, pts: np.ndarray) -> int:
        if p.reprompt_coverage_on == "dilated_mask":
            mask = dilate(mask, p.dilate_kernel, p.dilate_iterations)
        return int(points_inside(mask, pts, p.pixel_lookup).sum())

    for f in prompt_frames(group.canonical, p.prompt_every, T, p.prompt_frames):
        ids = group.tracks[usable[group.tracks, f]]
        if len(ids) == 0 or (len(ids) < p.prompt_min_tracks and f != group.canonical):
            continue
        pts = tracks[ids, f]
        m = medoid(pts)
        mask = _click(predictor, f, obj_id, pts[m : m + 1], size)
        n_in = share(mask, pts)
        coverage[f] = [round(n_in / len(pts), 4)]
        if n_in < len(pts) * p.reprompt_coverage:
            sel = reprompt_points(pts, p)
            if sel is not None:
                refine = p.reprompt_mode == "refine"
                mask = _click(predictor, f, obj_id, pts[sel], size, refine=refine)
                coverage[f].append(round(share(mask, pts) / len(pts), 4))
                reprompted.append(f)
        prompted.append(f)
    masks = np.zeros((T, H, W), dtype=bool)
    if prompted:  # (the release would fail on an object with nothing to prompt)
        first = min(prompted)
        for reverse in (False, True) if first > 0 else (False,):
            for f, out in predictor.propagate(first, reverse):
                if obj_id in out:
                    masks[f] |= _checked_mask(out[obj_id], H, W)
    notes = {
        "sam2_obj_id": obj_id,
        "tracks": len(group.tracks),
        "canonical_frame": group.canonical,
        "click": list(group.click),
        "prompt_frames": prompted,
        "reprompted": reprompted,
        "coverage": {int(k): v for k, v in coverage.items()},
    }
    return masks, notes


def merge_objects(masks: list[np.ndarray], p: Sam2Params) -> list[list[int]]:
    """Step 3: groups of indices of ``masks`` (each ``[T, H, W]`` bool) that are one object, in
    the order of the final ids (``merge_groups``).

    As the release's ``analyze_frame_merges``: two objects agree on a frame when both have
    pixels there and IoU > ``merge_iou`` or one covers at least ``merge_cover`` of the other
    (``is_subset``); a pair merges when it agrees on at least ``merge_min_frames`` of the frames
    (``merge_over``). ``release`` groups: for each object with merges, in the order its first
    agreement was seen, it, its partners and their partners, unless already in a group; then
    every object in no group alone, in the order of the Python set the release takes them from.
    So an object can join two groups, and a chain of three merges is not closed.
    ``transitive``: the connected components of the merging pairs, by first member."""
    K = len(masks)
    if K == 0:
        return []
    T = masks[0].shape[0]
    area = np.stack([m.reshape(T, -1).sum(1) for m in masks])  # [K, T]
    agree: dict[tuple[int, int], np.ndarray] = {}
    for i in range(K):
        for j in range(i + 1, K):
            inter = (masks[i] & masks[j]).reshape(T, -1).sum(1)
            union = area[i] + area[j] - inter
            iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
            cover = inter / np.maximum(np.minimum(area[i], area[j]), 1)
            both = (area[i] > 0) & (area[j] > 0)
            agree[i, j] = both & ((iou > p.merge_iou) | (cover >= p.merge_cover))
    # ids 1..K and dict insertion orders as the release's loops make them
    counts: dict[int, dict[int, int]] = {}
    for t in range(T):
        for (i, j), a in agree.items():
            if a[t]:
                row = counts.setdefault(i + 1, {})
                row[j + 1] = row.get(j + 1, 0) + 1
    final: dict[int, list[int]] = {}
    for a, row in counts.items():
        for b, n in row.items():
            either = int(((area[a - 1] > 0) | (area[b - 1] > 0)).sum())
            base = T if p.merge_over == "all" else either
            if base > 0 and n / base >= p.merge_min_frames:
                final.setdefault(a, []).append(b)
    groups: list[list[int]] = []
    if p.merge_groups == "release":
        visited: set[int] = set()
        for a, partners in final.items():
            if a not in visited:
                group = set([a] + partners)
                for b in partners:
                    group.update(final.get(b, []))
                groups.append(sorted(group))
                visited.update(group)
        all_ids = {i for i in range(1, K + 1)}
        merged_ids = {i for group in groups for i in group}
        groups += [[i] for i in all_ids - merged_ids]  # a set's order, as released
    else:
        parent = list(range(K + 1))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, partners in final.items():
            for b in partners:
                parent[root(b)] = root(a)
        by_root: dict[int, list[int]] = {}
        for i in range(1, K + 1):
            by_root.setdefault(root(i), []).append(i)
        groups = list(by_root.values())
    return [[i - 1 for i in group] for group in groups]


def label_map(
    masks: list[np.ndarray],
    size: tuple[int, int, int],
    overlap: str = "release",
    order: str = "release",
) -> tuple[np.ndarray, list[int]]:
    """Step 4: ``masks`` (each ``[T, H, W]`` bool, in merge-group order) -> ``labels [T, H, W]``
    uint8 and, for each id 1..K, the index of its mask.

    ``overlap``: ``release`` paints the last mask first and the first last (its
    ``put_per_obj_mask``: the first object found wins); ``smaller_wins`` paints the largest (total
    area over the video) first. Masks left with no pixel are dropped. ``order``: ``release`` keeps
    the group order; ``size``: decreasing total area; ``appearance``: first frame with a pixel."""
    labels = np.zeros(size, dtype=np.uint8)
    area = [int(m.sum()) for m in masks]
    if overlap == "release":
        paint = list(range(len(masks)))[::-1]
    else:
        paint = sorted(range(len(masks)), key=lambda k: -area[k])
    for k in paint:
        labels[masks[k]] = k + 1
    present = [k for k in range(len(masks)) if area[k] > 0 and (labels == k + 1).any()]
    if order == "size":
        present.sort(key=lambda k: -area[k])
    elif order == "appearance":
        first = {k: int(np.argmax(masks[k].reshape(size[0], -1).any(1))) for k in present}
        present.sort(key=lambda k: (first[k], -area[k]))
    present = present[:254]
    lut = np.zeros(max(len(masks), 1) + 1, dtype=np.uint8)
    for new, k in enumerate(present, start=1):
        lut[k + 1] = new
    return lut[labels], present


def densify_with_predictor(
    predictor: VideoPredictor, frames: np.ndarray, tracks: TrackSet, params: Sam2Params
) -> DensifyResult:
    """The whole algorithm (module docstring) on ``frames [T, H, W, 3] uint8 RGB`` with
    ``tracks`` at the frames' resolution -> ``masks [T, H, W] uint8`` (0 bg, 1..K)."""
    T, H, W = check_inputs(frames, tracks)
    t0 = time.perf_counter()
    p = params
    xy = tracks.tracks
    moving = tracks.moving.astype(bool)
    usable = tracks.visibility.astype(bool) & np.isfinite(xy).all(-1)  # [N, T]
    if p.pixel_lookup == "nearest_on_frame":
        on_frame = (xy[..., 0] > -0.5) & (xy[..., 0] < W - 0.5) & (xy[..., 1] > -0.5)
        usable &= on_frame & (xy[..., 1] < H - 0.5)
        candidates = np.flatnonzero(moving & usable.any(1))
    else:  # the release counts every moving track, visible or not
        candidates = np.flatnonzero(moving)
    info: dict[str, Any] = {"params": asdict(p), "moving_tracks": int(len(candidates))}
    timing: dict[str, float] = {}
    if len(candidates) < p.min_tracks and not (p.take_all and usable[candidates].any()):
        log.info(
            "sam2: %d moving tracks (< min_tracks=%d): empty masks", len(candidates), p.min_tracks
        )
        info.update(
            objects=[],
            rounds=[],
            groups=0,
            timing={"total": time.perf_counter() - t0},
            s_per_object=None,
        )
        return DensifyResult(np.zeros((T, H, W), np.uint8), info)
    predictor.load(frames)
    try:
        timing["load"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        groups, rounds = group_tracks(predictor, xy, usable, candidates, p, (H, W))
        timing["group"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        masks, notes = [], []
        for obj_id, g in enumerate(groups, start=1):
            m, n = track_object(predictor, xy, usable, g, obj_id, p, (H, W))
            masks.append(m)
            notes.append(n)
        timing["track"] = time.perf_counter() - t1
    finally:
        predictor.release()
    t1 = time.perf_counter()
    merged = merge_objects(masks, p)
    obj_masks = [np.logical_or.reduce([masks[i] for i in grp]) for grp in merged]
    labels, kept = label_map(obj_masks, (T, H, W), p.overlap, p.order)
    timing["merge"] = time.perf_counter() - t1
    timing["total"] = time.perf_counter() - t0
    objects = []
    for new_id, k in enumerate(kept, start=1):
        parts = [notes[i] for i in merged[k]]
        objects.append(
            {
                "id": new_id,
                "area_px": int((labels == new_id).sum()),
                "frames": int((labels == new_id).reshape(T, -1).any(1).sum()),
                "merged_from": [int(i) for i in merged[k]],
                "parts": parts,
            }
        )
    info.update(
        objects=objects,
        rounds=rounds,
        groups=len(groups),
        merge_groups=[[int(i) for i in grp] for grp in merged],
        timing={k: round(v, 4) for k, v in timing.items()},
        s_per_object=round(timing["track"] / len(groups), 4) if groups else None,
    )
    log.info(
        "sam2: %d moving tracks -> %d click rounds, %d groups, %d objects in %.1f s",
        len(candidates),
        len(rounds),
        len(groups),
        len(objects),
        timing["total"],
    )
    return DensifyResult(labels, info)


# --------------------------------------------------------------------------------------------
# the real SAM2 video predictor


class _quiet_hydra(contextlib.AbstractContextManager):
    """Import-time guard: ``import sam2`` initialises Hydra's global state when it is empty, which
    would make a later ``@hydra.main`` (or ``hydra.initialize``) in the same process fail. Leave
    the global state as we found it."""

    def __enter__(self) -> _quiet_hydra:
        from hydra.core.global_hydra import GlobalHydra

        self._was = GlobalHydra.instance().is_initialized()
        return self

    def __exit__(self, *exc: object) -> None:
        from hydra.core.global_hydra import GlobalHydra

        if not self._was and GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()


def import_sam2() -> Any:
    """The ``sam2.sam2_video_predictor`` module, or an ImportError that says how to install it.
    Leaves Hydra's global state untouched."""
    from moseg.prep.base import MissingBackendError

    try:
        with _quiet_hydra():
            importlib.import_module("sam2")
            return importlib.import_module("sam2.sam2_video_predictor")
    except ImportError as e:
        raise MissingBackendError(
            f"densify=sam2 needs the Python package 'sam2', which is not importable ({e}). "
            f"Install it with: {INSTALL}"
        ) from e


def resolve_model_config(model: str) -> Path:
    """``sam2.1_hiera_l`` / ``sam2_hiera_tiny`` / ``sam2.1_hiera_base_plus`` ... (or a path to a
    yaml file) -> the package's yaml file."""
    if model.endswith((".yaml", ".yml")) and Path(model).expanduser().is_file():
        return Path(model).expanduser()
    name = model.strip().lower().replace("-", "_").removesuffix(".yaml")
    for prefix in ("sam2.1_hiera_", "sam2_hiera_"):
        if name.startswith(prefix) and name[len(prefix) :] in SIZES:
            version = prefix.split("_")[0]
            size = SIZES[name[len(prefix) :]]
            import_sam2()
            import importlib.resources as resources

            path = Path(str(resources.files("sam2") / "configs" / version))
            path = path / f"{version}_hiera_{size}.yaml"
            if not path.is_file():
                raise FileNotFoundError(f"the sam2 package has no config {path}")
            return path
    raise ValueError(
        f"unknown SAM2 model {model!r}: use sam2_hiera_{{t,s,b+,l}} or sam2.1_hiera_{{t,s,b+,l}} "
        "(tiny/small/base_plus/large also work), or a path to a SAM2 yaml config"
    )


def missing_checkpoint(checkpoint: str | Path | None, model: str) -> str | None:
    """Why ``checkpoint`` cannot be loaded (it is not a file: the message names the absolute
    path tried and where the file for ``model`` comes from), or None (a file, or null for random
    weights). Cheap: callers check it before any other work."""
    if checkpoint in (None, "", "null", "None"):
        return None
    path = Path(str(checkpoint)).expanduser().absolute()
    if path.is_file():
        return None
    return (
        f"SAM2 checkpoint not found: {path}. Download the one matching model={model} "
        f"({checkpoint_url(model)}) and pass densify.checkpoint=PATH (densify.model to match), "
        "densify.checkpoint=null for random weights, or densify=weight_free"
    )


def checkpoint_url(model: str) -> str:
    """Where Meta publishes the checkpoint of ``model`` (a name as :func:`resolve_model_config`
    takes it); a hint for error messages."""
    name = model.strip().lower().replace("-", "_")
    for version in ("sam2.1", "sam2"):
        prefix = f"{version}_hiera_"
        if name.startswith(prefix) and name[len(prefix) :] in SIZES:
            size = SIZE_NAMES[SIZES[name[len(prefix) :]]]
            return f"{CHECKPOINT_URLS[version]}{version}_hiera_{size}.pt"
    return "https://github.com/facebookresearch/sam2#download-checkpoints"


def _match_memory_dtype(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Forward pre-hook on SAM2's memory attention: the predictor stores memories in bfloat16;
    without autocast (float32 on CPU or GPU) cast them to the features' dtype."""
    import torch

    curr = kwargs.get("curr", args[0] if args else None)
    if isinstance(curr, list | tuple):
        curr = curr[0] if curr else None
    if not isinstance(curr, torch.Tensor) or torch.is_autocast_enabled(curr.device.type):
        return None
    changed = False
    for key in ("memory", "memory_pos"):
        v = kwargs.get(key)
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != curr.dtype:
            kwargs[key] = v.to(curr.dtype)
            changed = True
    return (args, kwargs) if changed else None


class Sam2Predictor:
    """:class:`VideoPredictor` on the official ``sam2`` package's video predictor.

    Also a :class:`PromptablePredictor` (:meth:`prompt`, :meth:`add_mask`) for prompted
    segmentation with the user's clicks and boxes.

    - ``model``: ``sam2.1_hiera_{t,s,b+,l}`` or ``sam2_hiera_{t,s,b+,l}`` (or a yaml path); built
      from the package's yaml with OmegaConf + ``hydra.utils.instantiate`` (no Hydra compose, so
      it works inside ``@hydra.main``).
    - ``checkpoint``: the matching ``.pt`` file; None gives random weights (a loud warning: only
      for tests and speed measurements).
    - ``image_size``: the model's square input (multiple of 32; 1024 as released); the memory
      attention's RoPE ``feat_sizes`` follow as ``image_size / 16``.
    - ``device``: auto | cpu | cuda[:i]; ``dtype``: auto (bfloat16 autocast on CUDA, float32 on
      CPU) | bfloat16 | float16 | float32. Without autocast the bfloat16 memories are cast.
    - ``offload_video_to_cpu`` / ``offload_state_to_cpu``: keep frames / per-frame state in host
      memory (long videos on a small GPU).
    - ``postprocess``: the video predictor's usual extras (stability fallback to multi-mask,
      binarised click masks in memory, hole filling up to ``fill_hole_area`` px, which needs the
      package's CUDA extension and is switched off without it).
    - ``mask_threshold``: logit threshold of the masks; ``jpeg_quality``, ``tmp_dir``: the
      temporary JPEG folder ``init_state`` reads (removed as soon as the frames are loaded);
      ``seed``: of the random weights; ``overrides``: extra ``{dotted.key: value}`` for the model
      config; ``progress``: sam2's tqdm bars (None: when stderr is a terminal).
    """

    def __init__(
        self,
        model: str = "sam2.1_hiera_l",
        checkpoint: str | None = None,
        image_size: int = 1024,
        device: str = "auto",
        dtype: str = "auto",
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        postprocess: bool = True,
        fill_hole_area: int = 8,
        mask_threshold: float = 0.0,
        jpeg_quality: int = 95,
        tmp_dir: str | None = None,
        seed: int = 0,
        overrides: dict[str, Any] | None = None,
        progress: bool | None = None,
    ) -> None:
        import torch

        image_size = int(image_size)
        if image_size < 64 or image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32 (>= 64), got {image_size}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        missing = missing_checkpoint(checkpoint, model)
        if missing:
            raise FileNotFoundError(missing)
        random_init = checkpoint in (None, "", "null", "None")
        ckpt = None if random_init else Path(str(checkpoint)).expanduser()
        vp = import_sam2()
        self.model_name = model
        self.config_path = resolve_model_config(model)
        self.checkpoint = str(ckpt) if ckpt else None
        self.image_size = image_size
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but CUDA is not available")
        if dtype == "auto":
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        self.dtype = dtype
        self.offload_video_to_cpu = bool(offload_video_to_cpu)
        self.offload_state_to_cpu = bool(offload_state_to_cpu)
        self.mask_threshold = float(mask_threshold)
        self.jpeg_quality = int(jpeg_quality)
        self.tmp_dir = tmp_dir
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self._vp = vp
        self._state: dict[str, Any] | None = None
        self.size: tuple[int, int] | None = None
        self.last_frame_dir: str | None = None

        settings: dict[str, Any] = {
            "_target_": "sam2.sam2_video_predictor.SAM2VideoPredictor",
            "image_size": image_size,
            "memory_attention.layer.self_attention.feat_sizes": [image_size // 16] * 2,
            "memory_attention.layer.cross_attention.feat_sizes": [image_size // 16] * 2,
        }
        if postprocess:
            settings.update(
                {
                    "sam_mask_decoder_extra_args.dynamic_multimask_via_stability": True,
                    "sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.05,
                    "sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.98,
                    "binarize_mask_from_pts_for_mem_enc": True,
                    "fill_hole_area": int(fill_hole_area) if self._has_cuda_ext() else 0,
                }
            )
        settings.update(dict(overrides or {}))
        self.model = self._build(settings, int(seed))

    @staticmethod
    def _has_cuda_ext() -> bool:
        try:
            importlib.import_module("sam2._C")
            return True
        except ImportError:
            log.info("sam2 has no compiled extension here: hole filling is off")
            return False

    def _build(self, settings: dict[str, Any], seed: int) -> Any:
        import torch
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(self.config_path)
        for key, value in settings.items():
            OmegaConf.update(cfg, f"model.{key}", value, force_add=True)
        OmegaConf.resolve(cfg)
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = instantiate(cfg.model, _recursive_=True)
        if self.checkpoint is None:
            log.warning(
                "SAM2 %s has RANDOM WEIGHTS (densify.checkpoint is null): its masks are "
                "meaningless; use this for tests and speed measurements only",
                self.model_name,
            )
        else:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            state = state.get("model", state) if isinstance(state, dict) else state
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RuntimeError(
                    f"{self.checkpoint} does not fit model={self.model_name}: "
                    f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} "
                    f"unexpected (e.g. {unexpected[:3]})"
                )
        model = model.to(self.device).eval()
        model.memory_attention.register_forward_pre_hook(_match_memory_dtype, with_kwargs=True)
        log.info(
            "SAM2 %s (%s, %.1f M parameters) at %d px on %s, %s, built in %.1f s",
            self.model_name,
            self.checkpoint or "random weights",
            sum(p.numel() for p in model.parameters()) / 1e6,
            self.image_size,
            self.device,
            self.dtype,
            time.perf_counter() - t0,
        )
        return model

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        """Autocast (when the dtype asks for it) and sam2's progress bars off (unless wanted)."""
        import torch

        with contextlib.ExitStack() as stack:
            if self.dtype != "float32":
                stack.enter_context(
                    torch.autocast(self.device.type, dtype=getattr(torch, self.dtype))
                )
            if not self.progress:
                misc = importlib.import_module("sam2.utils.misc")
                for mod in (self._vp, misc):
                    if hasattr(mod, "tqdm"):
                        orig = mod.tqdm
                        mod.tqdm = _silent(orig)
                        stack.callback(setattr, mod, "tqdm", orig)
            yield

    def load(self, frames: np.ndarray) -> None:
        """``frames [T, H, W, 3] uint8 RGB`` -> a temporary numbered JPEG folder -> init_state;
        the folder is removed once the frames are in memory."""
        self.release()
        T, H, W = frames.shape[:3]
        folder = tempfile.mkdtemp(prefix="moseg-sam2-", dir=self.tmp_dir)
        self.last_frame_dir = folder
        try:
            for t in range(T):
                ok = cv2.imwrite(
                    str(Path(folder) / f"{t:06d}.jpg"),
                    np.ascontiguousarray(frames[t, ..., ::-1]),
                    [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality],
                )
                if not ok:
                    raise OSError(f"could not write frame {t} to {folder}")
            with self._context():
                self._state = self.model.init_state(
                    folder,
                    offload_video_to_cpu=self.offload_video_to_cpu,
                    offload_state_to_cpu=self.offload_state_to_cpu,
                )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.size = (H, W)

    def _need_state(self) -> dict[str, Any]:
        if self._state is None:
            raise RuntimeError("Sam2Predictor: call load(frames) first")
        return self._state

    def reset(self) -> None:
        self.model.reset_state(self._need_state())

    def click(
        self,
        frame: int,
        obj_id: int,
        points: np.ndarray,
        labels: np.ndarray,
        refine: bool = False,
    ) -> np.ndarray:
        """Replace object ``obj_id``'s points on ``frame`` by ``points [P, 2]`` (x, y px) with
        ``labels [P]``; returns its mask ``[H, W]`` bool. ``refine``: leave the frame's earlier
        output in place, so that SAM2's ``add_new_points_or_box`` feeds its mask logits to the
        decoder with the new points (the release's second click on a frame); otherwise the
        frame's prompts are cleared first and the frame is segmented afresh."""
        state = self._need_state()
        with self._context():
            if not refine and int(obj_id) in state["obj_id_to_idx"]:
                # a fresh prompt, not a correction seeded with the previous mask's logits
                self.model.clear_all_prompts_in_frame(
                    state, int(frame), int(obj_id), need_output=False
                )
            _, ids, logits = self.model.add_new_points_or_box(
                state,
                frame_idx=int(frame),
                obj_id=int(obj_id),
                points=np.asarray(points, np.float32).reshape(-1, 2),
                labels=np.asarray(labels, np.int32).reshape(-1),
            )
        return self._mask(logits[list(ids).index(int(obj_id))])

    def prompt(
        self,
        frame: int,
        obj_id: int,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        refine: bool = False,
    ) -> np.ndarray:
        """All of object ``obj_id``'s prompts on ``frame``: clicks ``points [P, 2]`` (x, y px)
        with ``labels [P]`` (1 positive, 0 negative) and/or ``box [4]`` (x0, y0, x1, y1 px),
        replacing its earlier prompts there; returns its mask ``[H, W]`` bool.

        SAM2 encodes a box as two corner points placed before the clicks, so box and clicks act
        together as one prompt. Without ``refine`` the frame is segmented afresh (no memory, no
        earlier mask: an initial conditioning frame). With ``refine`` on a frame that SAM2 has
        tracked, the clicks correct the tracked mask (memory and the current mask logits go into
        the decoder with them), and the frame becomes a conditioning frame (as with sam2's
        ``add_all_frames_to_correct_as_cond``) so that a later propagation keeps the correction;
        on a frame not tracked yet ``refine`` makes no difference."""
        state = self._need_state()
        pts = None if points is None else np.asarray(points, np.float32).reshape(-1, 2)
        lab = None if labels is None else np.asarray(labels, np.int32).reshape(-1)
        if pts is not None and len(pts) == 0 and (lab is None or len(lab) == 0):
            pts = lab = None
        if (pts is None) != (lab is None) or (pts is not None and len(pts) != len(lab)):
            raise ValueError("prompt: give points [P, 2] together with labels [P]")
        box_arr = None if box is None else np.asarray(box, np.float32).reshape(4)
        if pts is None and box_arr is None:
            raise ValueError("prompt: give points (with labels) or a box")
        model = self.model
        with self._context():
            if not refine and int(obj_id) in state["obj_id_to_idx"]:
                # a fresh prompt, not a correction seeded with the previous mask's logits
                model.clear_all_prompts_in_frame(state, int(frame), int(obj_id), need_output=False)
            as_cond = model.add_all_frames_to_correct_as_cond
            model.add_all_frames_to_correct_as_cond = bool(refine) or as_cond
            try:
                _, ids, logits = model.add_new_points_or_box(
                    state,
                    frame_idx=int(frame),
                    obj_id=int(obj_id),
                    points=pts,
                    labels=lab,
                    clear_old_points=True,
                    box=box_arr,
                )
            finally:
                model.add_all_frames_to_correct_as_cond = as_cond
        return self._mask(logits[list(ids).index(int(obj_id))])

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray) -> np.ndarray:
        """Prompt object ``obj_id`` on ``frame`` with ``mask [H, W]`` (nonzero = object),
        replacing its earlier prompts there; returns its mask there ``[H, W]`` bool (with the
        released configs, ``use_mask_input_as_output_without_sam``, the given mask itself up to
        resampling to the model's input size and back)."""
        state = self._need_state()
        m = np.asarray(mask) > 0
        if self.size is not None and m.shape != self.size:
            raise ValueError(f"add_mask: mask of shape {m.shape}, the video is {self.size}")
        with self._context():
            if int(obj_id) in state["obj_id_to_idx"]:
                self.model.clear_all_prompts_in_frame(
                    state, int(frame), int(obj_id), need_output=False
                )
            _, ids, logits = self.model.add_new_mask(
                state, frame_idx=int(frame), obj_id=int(obj_id), mask=m
            )
        return self._mask(logits[list(ids).index(int(obj_id))])

    def _mask(self, logits: Any) -> np.ndarray:
        return (logits[0] > self.mask_threshold).cpu().numpy()

    def propagate(self, start: int, reverse: bool) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Yields ``(frame, {obj_id: mask [H, W] bool})`` from ``start`` on (backwards when
        ``reverse``). Autocast is on only while SAM2 computes, not while the caller runs."""
        state = self._need_state()
        steps = self.model.propagate_in_video(
            state, start_frame_idx=int(start), reverse=bool(reverse)
        )
        while True:
            with self._context():
                try:
                    f, ids, logits = next(steps)
                except StopIteration:
                    return
                out = {int(i): self._mask(logits[k]) for k, i in enumerate(ids)}
            yield int(f), out

    def release(self) -> None:
        self._state = None
        self.size = None
        import torch

        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _silent(tqdm_cls: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        kwargs["disable"] = True
        return tqdm_cls(*args, **kwargs)

    return make


# --------------------------------------------------------------------------------------------
# the densifier


class Sam2Densifier:
    """Densifier ``"sam2"``: ``__call__(frames [T, H, W, 3] uint8 RGB, tracks) -> DensifyResult``
    with ``masks [T, H, W] uint8`` at the frames' resolution (0 background, 1..K objects).

    Model knobs go to :class:`Sam2Predictor` (built here unless ``predictor`` is given, e.g. a
    fake in tests); algorithm knobs to :class:`Sam2Params` (see the module docstring)."""

    name = "sam2"

    def __init__(
        self,
        model: str = "sam2.1_hiera_l",
        checkpoint: str | None = None,
        image_size: int = 1024,
        device: str = "auto",
        dtype: str = "auto",
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        postprocess: bool = True,
        fill_hole_area: int = 8,
        mask_threshold: float = 0.0,
        jpeg_quality: int = 95,
        tmp_dir: str | None = None,
        seed: int = 0,
        overrides: dict[str, Any] | None = None,
        progress: bool | None = None,
        canonical_top_fraction: float = 0.2,
        canonical_rule: str = "floor_latest",
        dilate_kernel: int = 6,
        dilate_iterations: int = 3,
        pixel_lookup: str = "truncate_clip",
        min_tracks: int = 6,
        require_prompt_track: bool = True,
        take_all: bool = True,
        object_tracks: str = "prompt_mask",
        drop_clicked_track: bool = False,
        min_rounds: int = 5,
        max_rounds: int = 10,
        prompt_frames: str = "release_grid",
        prompt_every: int = 16,
        prompt_min_tracks: int = 1,
        reprompt_coverage: float = 0.7,
        reprompt_coverage_on: str = "prompt_mask",
        reprompt_pick: str = "release",
        reprompt_points: int = 3,
        reprompt_mode: str = "refine",
        merge_iou: float = 0.9,
        merge_cover: float = 0.9,
        merge_min_frames: float = 0.3,
        merge_over: str = "all",
        merge_groups: str = "release",
        overlap: str = "release",
        order: str = "release",
        predictor: VideoPredictor | None = None,
    ) -> None:
        given = locals()
        # each algorithm knob as its Sam2Params type (Hydra may hand 1 for 1.0)
        self.params = Sam2Params(
            **{f.name: type(f.default)(given[f.name]) for f in fields(Sam2Params)}
        )
        if predictor is None:
            predictor = Sam2Predictor(
                model=model,
                checkpoint=checkpoint,
                image_size=image_size,
                device=device,
                dtype=dtype,
                offload_video_to_cpu=offload_video_to_cpu,
                offload_state_to_cpu=offload_state_to_cpu,
                postprocess=postprocess,
                fill_hole_area=fill_hole_area,
                mask_threshold=mask_threshold,
                jpeg_quality=jpeg_quality,
                tmp_dir=tmp_dir,
                seed=seed,
                overrides=overrides,
                progress=progress,
            )
        self.predictor = predictor

    def __call__(self, frames: np.ndarray, tracks: TrackSet) -> DensifyResult:
        result = densify_with_predictor(self.predictor, frames, tracks, self.params)
        pred = self.predictor
        if isinstance(pred, Sam2Predictor):
            result.info["model"] = {
                "name": pred.model_name,
                "checkpoint": pred.checkpoint,
                "image_size": pred.image_size,
                "device": str(pred.device),
                "dtype": pred.dtype,
            }
        return result
