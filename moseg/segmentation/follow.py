"""The weight-free prompted follower: clicks, boxes or carried masks -> those objects' masks on
every frame of a chunk, on the CPU and with no checkpoint (``moseg segment --point/--box``
without SAM2).

Shapes: ``T`` frames of ``H x W`` (one chunk, working resolution); ``N`` tracks; ``K`` objects.
A *point* is one track on one frame. Labels are per point, not per track, because a flow track
often changes side: a background track is dragged along by an object that passes over it, an
object track is left behind on the background (on DAVIS a third of the object's points lie on
such tracks, and per-point ground-truth labels densify 8 J&F points better than per-track ones).

For every object, independently:

1. **Key frames** are the frames with prompts or carried masks. Their constraints: *seeds*
   (the visible tracks within ``seed_radius`` of a positive click, else the nearest
   ``seed_min`` within three radii; inside the carried mask eroded by ``carried_margin``; inside
   a box, the tracks whose motion is typical of the box and not of a ring around it, since a box
   also holds background that moves like its surroundings, else the box's central half when
   nothing in it moves apart), *fixed background* on that frame (outside the box, outside the
   dilated carried mask, the other objects' seeds) and *excluded* points (the region of a
   negative click: never this object, also on later frames).
2. **Grow** on each key frame from the seeds: the points within ``grow_radius`` of the object
   are candidates and join when the votes below say object, until nothing changes. The region
   of a negative click (its tracks within ``negative_radius``) grows at the same time as a
   competitor, so a negative click removes the part of the object nearer to it.
3. **Votes** on frame ``t``: the camera's motion from ``t`` to ``t + h`` is a RANSAC affine
   fitted to the non-object points, for the horizons ``h`` = +-``horizon_short``,
   +-``horizon_mid`` and +-``horizon_long``; a point's residual is its displacement minus the
   camera's. The residuals of the object's points and of all other points give two densities (a
   histogram smoothed by ``motion_sigma`` px, in a space that widens the kernel by
   ``motion_rel`` times the residual's size: fast motion is tracked less precisely). A horizon
   votes object where the object's density is ``motion_ratio`` times the background's (or where
   the background's is at most ``outlier_density``: nothing else moves like that), background
   in the reverse case, and abstains in between; the point says object (background) when at
   least ``vote_frac`` of its horizons do. Comparing with the object's *whole* residual
   distribution, not only with its neighbours, stops the slow creep through smeared boundary
   tracks; comparing with the camera's stops a flood into a region that moves like the
   object's border but is static; several horizons see slow objects (long) and fast ones whose
   tracks die quickly (short). Colour vetoes: a point whose colour is ``colour_ratio`` times more
   frequent in a ring of ``ring_radius`` px around the object than on the object cannot join,
   and leaves unless its motion says object (untextured sky or smoke next to an object takes
   the object's optical flow).
4. **Propagate** from every key frame forwards and backwards, halfway to the next key frame:
   points keep their track's label; points of new tracks (re-seeded every few frames, or coming
   back) take the majority label of their labelled neighbours within ``new_radius``, counting
   the tracks lost in the last ``ghost_frames`` frames at their flow-followed positions (a fast
   object loses its tracks quickly); then one round of votes on the points near the object
   corrects drift, grows the object into parts that come into view, and drops its points whose
   motion has not said object for ``decay`` frames. The object's densities only use the points
   whose last vote was object, so a cluster of left-behind points cannot vouch for itself.

Objects never share a point: a point claimed by several objects goes to the one whose unshared
points are nearest on that frame. Then :class:`moseg.densify.weight_free.WeightFreeDensifier`
(``groups`` given) turns the labelled points into masks: every track is cut into its runs per
owner (object ``k`` evidence, background evidence otherwise), the splats are refined by the
densifier's spatial stage, the space-time graph cut by default (GrabCut with ``method=grabcut``;
:data:`DENSIFIER_DEFAULTS`: only near-certain pixels are sure foreground, so the colour model
and GrabCut can trim the halo of dragged background points one grid cell wide around an
object), and where the refined mask keeps less than ``collapse_frac`` of an object's splat
area (colours that do not separate it from the background) that frame keeps the splat mask.

Cost on DAVIS (854 x 480, 15-30k tracks): about 0.03 s/frame for the selection on one core, the
rest is the densifier.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

from moseg.densify.base import DensifyResult, TrackSet, check_inputs
from moseg.densify.weight_free import WeightFreeDensifier
from moseg.segmentation.prompts import FramePrompt

log = logging.getLogger(__name__)

UNKNOWN, BACKGROUND, OBJECT, EXCLUDED = -1, 0, 1, 2
_KDE_BIN = 0.5  # histogram bin of the residual densities (compressed px)
_FIT_MAX_POINTS = 4000  # points per background fit (a deterministic stride above this)
_REFIT = 0.1  # growth re-fits the background when the object's point count changed this much
# The densifier's settings that differ from its automatic-pipeline defaults: prompted objects'
# point labels have a halo of dragged boundary points one grid cell wide, so GrabCut must be able
# to remove it (only near-certain pixels are sure foreground) and gets more iterations to do so.
# With the space-time cut (the densifier's default method since issue 19) the same 0.95 picks
# the colour model's foreground samples; gc_iters then only matters with method=grabcut.
DENSIFIER_DEFAULTS: dict[str, Any] = {"gc_sure_fg": 0.95, "gc_iters": 5}


@dataclass
class _Key:
    """One object's constraints on one key frame (track indices)."""

    frame: int
    seeds: np.ndarray
    fixed_bg: np.ndarray
    negatives: np.ndarray
    notes: list[str] = field(default_factory=list)


class _State:
    """Per-track state of one pass: ``lab [N]`` label on the current frame, ``core [N]`` the
    point's last vote was object, ``unsup [N]`` frames in a row without an object vote."""

    def __init__(self, n: int) -> None:
        self.lab = np.full(n, UNKNOWN, np.int8)
        self.core = np.zeros(n, bool)
        self.unsup = np.zeros(n, np.int16)

    def copy(self) -> _State:
        s = _State(0)
        s.lab, s.core, s.unsup = self.lab.copy(), self.core.copy(), self.unsup.copy()
        return s


class TrackFollower:
    """Weight-free follower of prompted objects (see the module docstring).

    ``__call__(frames [T, H, W, 3] uint8 RGB, tracks, prompts, carried=None) -> DensifyResult``
    with ``masks [T, H, W] uint8`` holding the prompts' object ids."""

    name = "weight_free"

    def __init__(
        self,
        seed_radius: float = 16.0,
        seed_min: int = 3,
        negative_radius: float = 16.0,
        carried_margin: float = 4.0,
        horizon_short: int = 1,
        horizon_mid: int = 4,
        horizon_long: int = 8,
        fit_threshold: float = 1.5,
        motion_sigma: float = 1.0,
        motion_rel: float = 0.2,
        motion_ratio: float = 1.5,
        outlier_density: float = 0.0,
        vote_frac: float = 0.5,
        grow_radius: float = 48.0,
        grow_iters: int = 60,
        new_radius: float = 16.0,
        ghost_frames: int = 3,
        decay: int = 3,
        core_min: float = 0.2,
        colour_ratio: float = 4.0,
        colour_bins: int = 12,
        colour_blur: float = 0.7,
        colour_min_points: int = 50,
        ring_radius: float = 40.0,
        collapse_frac: float = 0.5,
        densifier: dict[str, Any] | WeightFreeDensifier | None = None,
        seed: int = 0,
    ) -> None:
        if not 0.0 < vote_frac <= 1.0:
            raise ValueError(f"vote_frac must be in (0, 1], got {vote_frac}")
        if motion_ratio < 1.0:
            raise ValueError(f"motion_ratio must be >= 1, got {motion_ratio}")
        if colour_bins < 2:
            raise ValueError(f"colour_bins must be >= 2, got {colour_bins}")
        self.seed_radius = float(seed_radius)
        self.seed_min = max(1, int(seed_min))
        self.negative_radius = float(negative_radius)
        self.carried_margin = float(carried_margin)
        self.horizon_short = int(horizon_short)
        self.horizon_mid = int(horizon_mid)
        self.horizon_long = int(horizon_long)
        self.fit_threshold = float(fit_threshold)
        self.motion_sigma = float(motion_sigma)
        self.motion_rel = float(motion_rel)
        self.motion_ratio = float(motion_ratio)
        self.outlier_density = float(outlier_density)
        self.vote_frac = float(vote_frac)
        self.grow_radius = float(grow_radius)
        self.grow_iters = int(grow_iters)
        self.new_radius = float(new_radius)
        self.ghost_frames = int(ghost_frames)
        self.decay = int(decay)
        self.core_min = float(core_min)
        self.colour_ratio = float(colour_ratio)
        self.colour_bins = int(colour_bins)
        self.colour_blur = float(colour_blur)
        self.colour_min_points = int(colour_min_points)
        self.ring_radius = float(ring_radius)
        self.collapse_frac = float(collapse_frac)
        self.seed = int(seed)
        if isinstance(densifier, WeightFreeDensifier):
            self.densifier = densifier
        else:
            kw = {**DENSIFIER_DEFAULTS, "seed": self.seed, **(densifier or {})}
            self.densifier = WeightFreeDensifier(**kw)

    def knobs(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "densifier"}
        out["densifier"] = self.densifier.knobs()
        return out

    @property
    def horizons(self) -> list[int]:
        hs = sorted({h for h in (self.horizon_short, self.horizon_mid, self.horizon_long) if h > 0})
        return [s * h for h in hs for s in (1, -1)]

    # ------------------------------------------------------------------------------------------
    def __call__(
        self,
        frames: np.ndarray,
        tracks: TrackSet,
        prompts: list[FramePrompt],
        carried: dict[int, dict[int, np.ndarray]] | None = None,
    ) -> DensifyResult:
        T, H, W = check_inputs(frames, tracks)
        t0 = time.perf_counter()
        xy = np.ascontiguousarray(tracks.tracks, dtype=np.float32)
        vis = np.asarray(tracks.visibility, dtype=bool)
        N = vis.shape[0]
        carried = carried or {}
        objects = sorted({int(p.obj) for p in prompts} | {int(o) for o in carried})
        for obj in objects:
            if not 1 <= obj <= 254:
                raise ValueError(f"object ids must be 1..254, got {obj}")
        for p in prompts:
            if not 0 <= p.frame < T:
                raise ValueError(f"prompt of object {p.obj} on frame {p.frame}: the chunk has {T}")
        self._xy, self._vis = xy, vis  # the chunk, for the helpers below (one call at a time)
        try:
            self._colour = self._colour_codes(frames, xy) if self.colour_ratio > 0 else None
            keys = {obj: self._keys(obj, prompts, carried.get(obj, {}), (H, W)) for obj in objects}
            labels = self._select(keys, N, T)
            t1 = time.perf_counter()
            owner = self._resolve(labels, N, T)  # [N, T] uint8
        finally:
            del self._xy, self._vis
            self.__dict__.pop("_colour", None)
        ts, groups = _split_tracks(tracks, owner)
        t2 = time.perf_counter()
        fallback: dict[int, list[int]] = {}
        if len(objects) and len(ts.query_frame):
            masks = self.densifier(frames, ts, groups=groups).masks
            if self.collapse_frac > 0 and self.densifier.method != "splat":
                masks, fallback = self._uncollapse(frames, ts, groups, masks)
        else:
            masks = np.zeros((T, H, W), np.uint8)
        t3 = time.perf_counter()

        empty_idx = np.zeros(0, np.int64)
        info: dict[str, Any] = {"method": self.name, "objects": {}}
        for obj in objects:
            mine = owner == obj
            seeds = [k.seeds for k in keys[obj]]
            notes = [n for k in keys[obj] for n in k.notes]
            empty = [int(t) for t in range(T) if not (masks[t] == obj).any()]
            if not mine.any():
                notes.append("no track was followed: the object has no mask")
            if fallback.get(obj):
                notes.append(f"GrabCut lost the object on frames {fallback[obj]}: splats used")
            info["objects"][str(obj)] = {
                "key_frames": [k.frame for k in keys[obj]],
                "seed_tracks": int(len(np.unique(np.concatenate([empty_idx, *seeds])))),
                "member_tracks": int(mine.any(1).sum()),
                "member_points": int(mine.sum()),
                "frames_without_mask": empty,
                "notes": notes,
            }
        info["timings"] = {
            "select": t1 - t0,
            "densify": t3 - t2,
            "total": t3 - t0,
            "per_frame": (t3 - t0) / max(T, 1),
        }
        info["knobs"] = self.knobs()
        log.debug("follow: %d objects, %d frames, %.3f s/frame", len(objects), T, (t3 - t0) / T)
        return DensifyResult(masks, info)

    def _select(self, keys: dict[int, list[_Key]], N: int, T: int) -> dict[int, np.ndarray]:
        """``{obj: [N, T] bool}``, every object's points; the objects' seeds are fixed background
        for the others on their key frames."""
        seeds_of: dict[tuple[int, int], np.ndarray] = {}
        for obj, ks in keys.items():
            for k in ks:
                seeds_of[(obj, k.frame)] = k.seeds
        for obj, ks in keys.items():
            for k in ks:
                others = [s for (o, f), s in seeds_of.items() if o != obj and f == k.frame]
                if others:
                    k.fixed_bg = np.union1d(k.fixed_bg, np.concatenate(others))
        return {obj: self._follow(ks) if N else np.zeros((0, T), bool) for obj, ks in keys.items()}

    # ------------------------------------------------------------------------------------------
    # key frames
    def _keys(
        self,
        obj: int,
        prompts: list[FramePrompt],
        carried: dict[int, np.ndarray],
        size: tuple[int, int],
    ) -> list[_Key]:
        xy, vis = self._xy, self._vis
        empty = np.zeros(0, np.int64)
        by_frame: dict[int, _Key] = {}
        for f, mask in sorted(carried.items()):
            f = int(f)
            if not 0 <= f < vis.shape[1]:
                continue
            by_frame[f] = self._carried_key(f, np.asarray(mask, bool), size)
        for p in prompts:
            if int(p.obj) != obj:
                continue
            f = int(p.frame)
            key = by_frame.setdefault(f, _Key(f, empty, empty, empty))
            visible = np.flatnonzero(vis[:, f])
            pts = xy[visible, f]
            for x, y in np.asarray(p.positive, np.float32).reshape(-1, 2):
                s = self._near(visible, pts, (x, y), self.seed_radius, self.seed_min)
                if s.size == 0:
                    key.notes.append(f"frame {f}: no visible track near the click {x:.0f},{y:.0f}")
                key.seeds = np.union1d(key.seeds, s)
            for x, y in np.asarray(p.negative, np.float32).reshape(-1, 2):
                d = np.linalg.norm(pts - [x, y], axis=1)
                key.negatives = np.union1d(key.negatives, visible[d <= self.negative_radius])
            if p.box is not None:
                s, bg, note = self._box_seeds(f, np.asarray(p.box, np.float32))
                key.seeds = np.union1d(key.seeds, s)
                key.fixed_bg = np.union1d(key.fixed_bg, bg)
                if note:
                    key.notes.append(note)
        for key in by_frame.values():
            key.negatives = np.setdiff1d(key.negatives, key.seeds)
            key.fixed_bg = np.setdiff1d(key.fixed_bg, key.seeds)
        keys = [k for _, k in sorted(by_frame.items())]
        usable = [k for k in keys if k.seeds.size]
        if not usable and keys:
            keys[0].notes.append("no seed track on any key frame")
        return usable or keys[:1]

    def _near(
        self, idx: np.ndarray, pts: np.ndarray, xy: tuple[float, float], radius: float, least: int
    ) -> np.ndarray:
        """Tracks ``idx`` (at ``pts [n, 2]``) within ``radius`` of ``xy``, else the nearest
        ``least`` within 3 radii (none farther: a click on a region without tracks)."""
        if idx.size == 0:
            return idx
        d = np.linalg.norm(pts - np.asarray(xy, np.float32), axis=1)
        order = np.argsort(d, kind="stable")
        inside = order[d[order] <= radius]
        if inside.size >= least:
            return np.sort(idx[inside])
        near = order[:least]
        return np.sort(idx[near[d[near] <= 3.0 * radius]])

    def _carried_key(self, f: int, mask: np.ndarray, size: tuple[int, int]) -> _Key:
        """Seeds inside the eroded mask, fixed background outside the dilated one."""
        H, W = size
        if mask.shape != (H, W):
            raise ValueError(f"carried mask on frame {f} is {mask.shape}, frames are {(H, W)}")
        r = max(int(round(self.carried_margin)), 0)
        m = mask.astype(np.uint8)
        if r:
            disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            inner, outer = cv2.erode(m, disk), cv2.dilate(m, disk)
        else:
            inner, outer = m, m
        idx = np.flatnonzero(self._vis[:, f])
        p = self._xy[idx, f]
        c = np.clip(np.rint(p[:, 0]).astype(np.int64), 0, W - 1)
        rr = np.clip(np.rint(p[:, 1]).astype(np.int64), 0, H - 1)
        inside = (p[:, 0] > -0.5) & (p[:, 0] < W - 0.5) & (p[:, 1] > -0.5) & (p[:, 1] < H - 0.5)
        seeds = idx[inside & (inner[rr, c] > 0)]
        bg = idx[~inside | (outer[rr, c] == 0)]
        notes = [] if seeds.size else [f"frame {f}: no visible track inside the carried mask"]
        return _Key(f, seeds, bg, np.zeros(0, np.int64), notes)

    def _box_seeds(self, f: int, box: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """Seeds in a box: the tracks inside that move unlike the tracks around it (a box also
        holds background, which moves like its surroundings); when none does (nothing moves, or
        the whole box moves like the ring), the tracks of the box's central half. Tracks outside
        the box are fixed background on that frame."""
        x0, y0, x1, y1 = (float(v) for v in box)
        idx = np.flatnonzero(self._vis[:, f])
        p = self._xy[idx, f]
        inb = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
        inside, outside = idx[inb], idx[~inb]
        if inside.size == 0:
            return inside, outside, f"frame {f}: no visible track inside the box"
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4, (y1 - y0) / 4
        pin = p[inb]
        central = inside[(np.abs(pin[:, 0] - cx) <= hw) & (np.abs(pin[:, 1] - cy) <= hh)]
        # the ring: tracks outside the box within a quarter of its size
        mx, my = max(2 * hw, self.grow_radius), max(2 * hh, self.grow_radius)
        pout = p[~inb]
        near = (pout[:, 0] >= x0 - mx) & (pout[:, 0] <= x1 + mx)
        near &= (pout[:, 1] >= y0 - my) & (pout[:, 1] <= y1 + my)
        ring = outside[near]
        # the box's own residual distribution against the ring's: a point more typical of the
        # box than of the ring moves unlike the surroundings
        lab = np.full(self._vis.shape[0], BACKGROUND, np.int8)
        lab[inside] = OBJECT
        v, na = self._motion_votes(f, lab, inside, np.ones(len(lab), bool), {}, bg_set=ring)
        unlike = inside[(na > 0) & (v >= np.maximum(1, np.ceil(self.vote_frac * na)))]
        if unlike.size >= self.seed_min:
            return unlike, outside, ""
        seeds = central if central.size else inside
        return seeds, outside, ""

    # ------------------------------------------------------------------------------------------
    # one object
    def _follow(self, keys: list[_Key]) -> np.ndarray:
        """``[N, T]`` bool: the object's points, from every key frame to halfway to the next."""
        N, T = self._vis.shape
        out = np.zeros((N, T), bool)
        keys = [k for k in keys if k.seeds.size]
        if not keys:
            return out
        frames = [k.frame for k in keys]
        for i, key in enumerate(keys):
            st = self._grow(key)
            out[:, key.frame] = self._vis[:, key.frame] & (st.lab == OBJECT)
            stop_fwd = (key.frame + frames[i + 1]) // 2 if i + 1 < len(keys) else T - 1
            stop_bwd = (frames[i - 1] + key.frame) // 2 + 1 if i > 0 else 0
            for direction, stop in ((1, stop_fwd), (-1, stop_bwd)):
                self._propagate(st.copy(), key.frame, stop, direction, out)
        return out

    def _grow(self, key: _Key) -> _State:
        """Grow the seeds (and the negative clicks' region, which competes) on the key frame."""
        N = self._vis.shape[0]
        f = key.frame
        vis = self._vis[:, f]
        st = _State(N)
        st.lab[vis] = BACKGROUND
        st.lab[key.negatives] = EXCLUDED
        st.lab[key.seeds] = OBJECT
        st.core[key.seeds] = True
        neg = _State(N)  # the negative region seen as an object of its own
        neg.lab[vis] = BACKGROUND
        neg.lab[key.negatives] = OBJECT
        neg.core[key.negatives] = True
        fixed_bg = key.fixed_bg
        fits: dict[int, Any] = {}
        fits_neg: dict[int, Any] = {}
        for _ in range(max(self.grow_iters, 0)):
            blocked = np.union1d(fixed_bg, np.flatnonzero(neg.lab == OBJECT))
            ch = self._correct(f, st, fits, fixed_obj=key.seeds, fixed_bg=blocked, grow=True)
            if key.negatives.size:
                blocked = np.union1d(key.seeds, np.flatnonzero(st.lab == OBJECT))
                ch += self._correct(
                    f, neg, fits_neg, fixed_obj=key.negatives, fixed_bg=blocked, grow=True
                )
            if ch == 0:
                break
        st.lab[(neg.lab == OBJECT) & (st.lab != OBJECT)] = EXCLUDED
        st.unsup[:] = 0  # growth counts no decay; propagation starts afresh
        return st

    def _propagate(self, st: _State, f: int, stop: int, direction: int, out: np.ndarray) -> None:
        """Carry the labels of frame ``f`` to ``stop`` (inclusive) one frame at a time."""
        xy, vis = self._xy, self._vis
        last = st.lab.copy()  # the label of every track on the last frame it was seen
        seen = np.where(vis[:, f], f, -(10**6) * direction).astype(np.int64)
        t = f
        while (t - stop) * direction < 0:
            t += direction
            v = vis[:, t]
            lab = np.where(v, last, UNKNOWN).astype(np.int8)
            new = np.flatnonzero(v & (lab == UNKNOWN))
            if new.size:
                ghost = ~v & (last != UNKNOWN) & ((t - seen) * direction <= self.ghost_frames)
                known = np.flatnonzero((v & (lab != UNKNOWN)) | ghost)
                lab[new] = _inherit(xy[:, t], known, last[known], new, self.new_radius)
            st.lab = lab
            st.core &= v
            st.unsup[~v] = 0
            self._correct(t, st, {})
            out[:, t] = v & (st.lab == OBJECT)
            last[v] = st.lab[v]
            seen[v] = t

    # ------------------------------------------------------------------------------------------
    # votes
    def _correct(
        self,
        t: int,
        st: _State,
        fits: dict[int, Any],
        fixed_obj: np.ndarray | None = None,
        fixed_bg: np.ndarray | None = None,
        grow: bool = False,
    ) -> int:
        """One round of votes on frame ``t`` for the points near the object; returns how many
        labels changed."""
        xy, vis = self._xy[:, t], self._vis[:, t]
        lab = st.lab
        obj = np.flatnonzero(vis & (lab == OBJECT))
        if obj.size == 0:
            return 0
        tree = cKDTree(xy[obj])
        allv = np.flatnonzero(vis)
        d, _ = tree.query(xy[allv], k=1, distance_upper_bound=self.grow_radius)
        cand = allv[np.isfinite(d) & (lab[allv] != EXCLUDED)]
        core = st.core & vis & (lab == OBJECT)
        if core.sum() < self.core_min * obj.size:
            core = vis & (lab == OBJECT)
        v, na = self._motion_votes(t, lab, cand, core, fits)
        need = np.maximum(1, np.ceil(self.vote_frac * na))
        pos = (na > 0) & (v >= need)
        neg = (na > 0) & (v <= -need)
        col = self._colour_votes(t, lab, cand, core, tree, allv)
        if col is not None:
            pos &= ~col
            neg |= col & (v <= 0)
        new = lab.copy()
        is_obj = lab[cand] == OBJECT
        new[cand[~is_obj & pos]] = OBJECT
        new[cand[is_obj & neg]] = BACKGROUND
        c_obj = cand[is_obj]
        st.unsup[c_obj] = np.where(v[is_obj] > 0, 0, st.unsup[c_obj] + 1)
        if not grow and self.decay > 0:
            new[c_obj[st.unsup[c_obj] >= self.decay]] = BACKGROUND
        st.core[:] = False
        st.core[cand[pos]] = True
        if fixed_obj is not None:
            new[fixed_obj] = OBJECT
            st.core[fixed_obj] = True
        if fixed_bg is not None:
            new[fixed_bg] = np.where(lab[fixed_bg] == EXCLUDED, EXCLUDED, BACKGROUND)
        changed = int((new != lab).sum())
        st.unsup[new != OBJECT] = 0
        lab[:] = new
        return changed

    def _motion_votes(
        self,
        t: int,
        lab: np.ndarray,
        cand: np.ndarray,
        core: np.ndarray,
        fits: dict[int, Any],
        bg_set: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Signed sum of the horizons' votes per candidate, and how many horizons voted."""
        xy, vis = self._xy, self._vis
        T = vis.shape[1]
        obj = np.flatnonzero(vis[:, t] & (lab == OBJECT) & core)
        bg = np.flatnonzero(vis[:, t] & (lab != OBJECT)) if bg_set is None else bg_set
        total = np.zeros(cand.size, np.int32)
        avail = np.zeros(cand.size, np.int32)
        if obj.size == 0 or cand.size == 0:
            return total, avail
        for h in self.horizons:
            u = t + h
            if not 0 <= u < T:
                continue
            n_obj = int((vis[:, t] & vis[:, u] & (lab == OBJECT)).sum())
            fit = fits.get(h)
            if fit is None or abs(fit[1] - n_obj) > _REFIT * max(fit[1], 10):
                fit = (self._fit_background(t, u, lab != OBJECT), n_obj)
                fits[h] = fit
            A = fit[0]
            if A is None:
                continue
            sig = self.motion_sigma * np.sqrt(abs(h) / 3.0)
            r_o, r_b, r_c = (
                _compress(_residuals(xy, vis, t, u, idx, A), sig, self.motion_rel)
                for idx in (obj, bg, cand)
            )
            ok = np.isfinite(r_c[:, 0])
            if not ok.any() or not np.isfinite(r_o[:, 0]).any():
                continue
            lim = float(np.nanmax(np.abs(np.concatenate([r_o, r_c])))) + 4.0 * sig
            p_o = _density(r_o, sig, lim, r_c)
            p_b = _density(r_b, sig, lim, r_c)
            eps = 1e-3
            outlier = p_b <= self.outlier_density
            plus = (p_o + eps >= self.motion_ratio * (p_b + eps)) | outlier
            minus = (p_b + eps >= self.motion_ratio * (p_o + eps)) & ~outlier
            total += np.where(ok & plus, 1, np.where(ok & minus, -1, 0))
            avail += ok
        return total, avail

    def _fit_background(self, t: int, u: int, allowed: np.ndarray) -> np.ndarray | None:
        """RANSAC affine ``[2, 3]`` from frame ``t`` to ``u`` on the allowed visible points."""
        idx = np.flatnonzero(self._vis[:, t] & self._vis[:, u] & allowed)
        if idx.size < 6:
            return None
        if idx.size > _FIT_MAX_POINTS:
            idx = idx[:: int(np.ceil(idx.size / _FIT_MAX_POINTS))]
        src = self._xy[idx, t].astype(np.float64)
        dst = self._xy[idx, u].astype(np.float64)
        A, _ = cv2.estimateAffine2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=self.fit_threshold
        )
        return A

    def _colour_votes(
        self,
        t: int,
        lab: np.ndarray,
        cand: np.ndarray,
        core: np.ndarray,
        tree: cKDTree,
        allv: np.ndarray,
    ) -> np.ndarray | None:
        """[len(cand)] bool: the colour says background (None: no colour model yet)."""
        if self._colour is None:
            return None
        vis = self._vis[:, t]
        obj = np.flatnonzero(vis & (lab == OBJECT) & core)
        if obj.size < self.colour_min_points:
            return None
        d, _ = tree.query(self._xy[allv, t], k=1, distance_upper_bound=self.ring_radius)
        ring = allv[np.isfinite(d) & (lab[allv] != OBJECT)]
        if ring.size < self.colour_min_points:
            return None
        code = self._colour[:, t]
        B = self.colour_bins
        h_o = _histogram(code[obj], B, self.colour_blur)
        h_b = _histogram(code[ring], B, self.colour_blur)
        e = 1.0 / B**3
        ratio = (h_b[code[cand]] + e) / (h_o[code[cand]] + e)
        return ratio >= self.colour_ratio

    def _colour_codes(self, frames: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """``[N, T]`` int32: the quantised RGB colour (``colour_bins`` levels a channel) under
        every point, from the frame at half resolution (less noise)."""
        T, H, W = frames.shape[:3]
        h, w = max(1, H // 2), max(1, W // 2)
        B = self.colour_bins
        out = np.zeros(xy.shape[:2], np.int32)
        for t in range(T):
            small = cv2.resize(frames[t], (w, h), interpolation=cv2.INTER_AREA)
            c = np.clip(np.rint((xy[:, t, 0] + 0.5) * w / W - 0.5), 0, w - 1).astype(np.int64)
            r = np.clip(np.rint((xy[:, t, 1] + 0.5) * h / H - 0.5), 0, h - 1).astype(np.int64)
            q = (small[r, c].astype(np.int32) * B) // 256
            out[:, t] = (q[:, 0] * B + q[:, 1]) * B + q[:, 2]
        return out

    def _uncollapse(
        self, frames: np.ndarray, ts: TrackSet, groups: np.ndarray, masks: np.ndarray
    ) -> tuple[np.ndarray, dict[int, list[int]]]:
        """GrabCut may trim an object's splat mask but not erase it: where an object keeps less
        than ``collapse_frac`` of its splat-only area (colours that do not separate it from the
        background), that frame takes the splat mask of the object."""
        kw = {**self.densifier.knobs(), "method": "splat"}
        splat = WeightFreeDensifier(**kw)(frames, ts, groups=groups).masks
        out = masks.copy()
        fallback: dict[int, list[int]] = {}
        for obj in np.unique(groups[groups > 0]):
            for t in range(len(masks)):
                ref = splat[t] == obj
                n_ref = int(ref.sum())
                if n_ref and (masks[t] == obj).sum() < self.collapse_frac * n_ref:
                    out[t][out[t] == obj] = 0
                    out[t][ref & (out[t] == 0)] = obj
                    fallback.setdefault(int(obj), []).append(t)
        return out, fallback

    # ------------------------------------------------------------------------------------------
    def _resolve(self, labels: dict[int, np.ndarray], N: int, T: int) -> np.ndarray:
        """``[N, T]`` uint8 owner of every point: a point claimed by several objects goes to the
        one whose unshared points are nearest on that frame."""
        owner = np.zeros((N, T), np.uint8)
        if not labels:
            return owner
        objs = sorted(labels)
        stack = np.stack([labels[o] for o in objs])  # [K, N, T]
        count = stack.sum(0)
        for k, o in enumerate(objs):
            owner[stack[k] & (count == 1)] = o
        for t in np.flatnonzero((count > 1).any(0)):
            shared = np.flatnonzero(count[:, t] > 1)
            best = np.full(shared.size, np.inf)
            for k, o in enumerate(objs):
                claims = stack[k, shared, t]
                own = np.flatnonzero(stack[k, :, t] & (count[:, t] == 1))
                if own.size == 0 or not claims.any():
                    continue
                d, _ = cKDTree(self._xy[own, t]).query(self._xy[shared, t], k=1)
                better = claims & (d < best)
                best[better] = d[better]
                owner[shared[better], t] = o
            lost = np.isinf(best)  # claimed, but no claimant has unshared points here
            for k, o in enumerate(objs):
                first = lost & stack[k, shared, t] & (owner[shared, t] == 0)
                owner[shared[first], t] = o
        return owner


# ----------------------------------------------------------------------------------------------
def _inherit(
    xy: np.ndarray, known: np.ndarray, known_lab: np.ndarray, new: np.ndarray, radius: float
) -> np.ndarray:
    """Labels of the ``new`` points: the majority label of their (up to) 4 nearest ``known``
    points within ``radius`` (object on ties with background, excluded on any tie with it);
    background when none is that close. ``xy [N, 2]`` positions on the frame."""
    out = np.full(new.size, BACKGROUND, np.int8)
    if known.size == 0 or new.size == 0:
        return out
    k = min(4, known.size)
    dist, nn = cKDTree(xy[known]).query(xy[new], k=k, distance_upper_bound=radius)
    dist, nn = dist.reshape(new.size, k), nn.reshape(new.size, k)
    found = np.isfinite(dist)
    lv = known_lab[np.where(found, nn, 0)]
    n_obj = ((lv == OBJECT) & found).sum(1)
    n_bg = ((lv == BACKGROUND) & found).sum(1)
    n_ex = ((lv == EXCLUDED) & found).sum(1)
    out[(n_obj > n_bg) & (n_obj > n_ex)] = OBJECT
    out[(n_ex >= n_obj) & (n_ex > n_bg)] = EXCLUDED
    return out


def _residuals(
    xy: np.ndarray, vis: np.ndarray, t: int, u: int, idx: np.ndarray, A: np.ndarray
) -> np.ndarray:
    """``[len(idx), 2]`` displacement from ``t`` to ``u`` minus the camera's ``A``; NaN where
    the point is not visible on ``u``."""
    p = xy[idx, t].astype(np.float64)
    r = (xy[idx, u] - (p @ A[:, :2].T + A[:, 2])).astype(np.float32)
    r[~vis[idx, u]] = np.nan
    return r


def _compress(r: np.ndarray, s0: float, rel: float) -> np.ndarray:
    """Map residuals so that a kernel of width ``s0`` there is ``s0 + rel * |r|`` wide in px:
    ``|g| = (s0 / rel) log(1 + rel |r| / s0)``, same direction."""
    if rel <= 0 or len(r) == 0:
        return r
    n = np.linalg.norm(r, axis=1, keepdims=True)
    g = (s0 / rel) * np.log1p(rel * n / s0)
    return (r * (g / np.maximum(n, 1e-9))).astype(np.float32)


def _density(samples: np.ndarray, sigma: float, lim: float, at: np.ndarray) -> np.ndarray:
    """Gaussian-smoothed 2-D histogram density of ``samples [n, 2]`` (NaN rows ignored) on
    ``[-lim, lim]^2``, normalised to sum 1 over the samples, read at ``at [m, 2]``."""
    n = int(np.ceil(2.0 * lim / _KDE_BIN)) + 1
    s = samples[np.isfinite(samples[:, 0])]
    hist = np.zeros((n, n), np.float32)
    if len(s):
        ij = np.clip(np.rint((s + lim) / _KDE_BIN).astype(np.int64), 0, n - 1)
        np.add.at(hist, (ij[:, 1], ij[:, 0]), 1.0)
        hist = cv2.GaussianBlur(hist, (0, 0), sigma / _KDE_BIN, borderType=cv2.BORDER_CONSTANT)
        hist /= len(s)
    ij = np.clip(np.rint((np.nan_to_num(at) + lim) / _KDE_BIN).astype(np.int64), 0, n - 1)
    return hist[ij[:, 1], ij[:, 0]]


def _histogram(codes: np.ndarray, bins: int, blur: float) -> np.ndarray:
    """Normalised colour histogram ``[bins**3]``, smoothed over neighbouring colours."""
    h = np.bincount(codes, minlength=bins**3).astype(np.float64).reshape(bins, bins, bins)
    if blur > 0:
        h = gaussian_filter(h, blur, mode="constant")
    return (h / max(h.sum(), 1e-12)).ravel()


def _split_tracks(tracks: TrackSet, owner: np.ndarray) -> tuple[TrackSet, np.ndarray]:
    """Every track cut into its runs per owner (``owner [N, T]`` uint8, 0 background), as the
    densifier's tracks and groups ``[M]``: it sees a dragged or left-behind track as object
    evidence only while the track is on the object."""
    vis = np.asarray(tracks.visibility, bool)
    parts, groups = [], []
    for o in np.unique(owner[vis]) if vis.any() else []:
        v = vis & (owner == o)
        keep = np.flatnonzero(v.any(1))
        parts.append((keep, v[keep]))
        groups.append(np.full(keep.size, int(o), np.int32))
    if not parts:
        return tracks.subset(np.zeros(len(vis), bool)), np.zeros(0, np.int32)
    rows = np.concatenate([p[0] for p in parts])
    ts = TrackSet(
        np.ascontiguousarray(tracks.tracks[rows], dtype=np.float32),
        np.concatenate([p[1] for p in parts]),
        np.asarray(tracks.query_frame)[rows],
        np.asarray(tracks.prob, np.float32)[rows],
        np.asarray(tracks.moving, bool)[rows],
    )
    return ts, np.concatenate(groups)
