"""The weight-free densifier: moving tracks -> per-object masks on the CPU, with no checkpoint.

Shapes: ``T`` frames of ``H x W``; ``N`` tracks; ``K`` objects; ``h x w`` the working resolution
(``scale`` times the frame size).

Stages (each switchable, see moseg/conf/densify/weight_free.yaml and docs/densify-weight-free.md):

1. **Vote** (:func:`moseg.densify.grouping.vote_labels`): each visible point takes the mean label
   of its ``vote_k`` nearest visible neighbours in that frame; at least ``vote_threshold`` makes
   it a moving vote, less a static vote.
2. **Group** (:func:`moseg.densify.grouping.group_tracks`): tracks that are mostly moving votes
   are grouped into objects by proximity and common motion; tiny groups are dropped as noise.
   Objects whose point mass is below ``keep_ratio`` times the largest's are then dropped
   (:func:`moseg.densify.grouping.select_groups`: a primary-object prior), and with ``layers``
   static tracks that move with a nearby object join it and object tracks that move with the
   camera leave it (:func:`moseg.densify.layers.refine_layers`).
3. **Splat**: per frame, Gaussian splats of each object's moving points and of all static points,
   normalised by the frame's point density, give ``p_k = D_k / (sum_j D_j + w_s S + prior)``, the
   probability that a pixel belongs to object ``k``. Static points keep masks from bleeding; the
   prior makes pixels far from every track background.
4. **Temporal** (``temporal: none|warp``): ``p_k`` of the neighbouring frames is warped onto the
   frame with a similarity fitted to object ``k``'s tracks, and averaged with weights that favour
   close frames and pixels with evidence. Frames where an object lost its tracks borrow its mask.
5. **Spatial** (``method: splat|superpixel|grabcut|spacetime``): ``splat`` thresholds ``p``;
   ``superpixel`` averages ``p`` inside SLIC superpixels of the frame; ``grabcut`` runs
   ``cv2.grabCut`` per object on a crop, initialised with sure/probable fore- and background
   from ``p_k``; ``spacetime`` (the default) cuts the union of the objects over all frames at
   once (:func:`moseg.densify.spacetime.spacetime_cut`: track evidence, a video-level colour
   model, contrast-sensitive and optical-flow links) and gives each foreground pixel to the
   object whose map is largest nearby.
6. The maps are upsampled (bilinear) to the frame; a pixel gets the object with the largest
   ``p_k`` when ``sum_k p_k >= threshold``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from moseg.densify.base import DensifyResult, TrackSet, check_inputs
from moseg.densify.grouping import group_tracks, select_groups, vote_labels
from moseg.densify.layers import MODES as LAYER_MODES
from moseg.densify.layers import refine_layers
from moseg.densify.spacetime import SpaceTimeParams, spacetime_cut

log = logging.getLogger(__name__)

METHODS = ("splat", "superpixel", "grabcut", "spacetime")
ST_FROM = ("splat", "grabcut")
TEMPORAL = ("none", "warp")


def fit_similarity(src: np.ndarray, dst: np.ndarray, iters: int = 2) -> np.ndarray | None:
    """Least-squares similarity ``dst ~ A @ [src, 1]`` with a robust re-fit on the inliers.

    Args: src, dst: [M, 2]. Returns: [2, 3] float64, a translation for ``M < 3``, None for 0.
    """
    if len(src) == 0:
        return None
    if len(src) < 3:
        t = np.median(dst - src, axis=0)
        return np.array([[1.0, 0.0, t[0]], [0.0, 1.0, t[1]]])
    keep = np.ones(len(src), dtype=bool)
    A = None
    for _ in range(iters):
        s, d = src[keep].astype(np.float64), dst[keep].astype(np.float64)
        ms, md = s.mean(0), d.mean(0)
        s0, d0 = s - ms, d - md
        var = (s0**2).sum()
        if var < 1e-9:
            t = md - ms
            return np.array([[1.0, 0.0, t[0]], [0.0, 1.0, t[1]]])
        a = (s0 * d0).sum() / var  # s*cos
        b = (s0[:, 0] * d0[:, 1] - s0[:, 1] * d0[:, 0]).sum() / var  # s*sin
        R = np.array([[a, -b], [b, a]])
        A = np.hstack([R, (md - R @ ms)[:, None]])
        res = np.linalg.norm(src @ R.T + A[:, 2] - dst, axis=1)
        thr = max(3.0 * np.median(res[keep]), 1.0)
        new = res <= thr
        if new.sum() < 3 or (new == keep).all():
            break
        keep = new
    return A


class WeightFreeDensifier:
    """Weight-free densifier (see the module docstring). ``__call__(frames [T, H, W, 3] uint8
    RGB, tracks) -> DensifyResult`` with ``masks [T, H, W] uint8`` (0 background, 1..K objects,
    largest object first)."""

    name = "weight_free"

    def __init__(
        self,
        method: str = "spacetime",
        temporal: str = "none",
        scale: float = 0.5,
        use_prob: bool = False,
        vote_k: int = 1,
        vote_max_dist: float = 40.0,
        vote_threshold: float = 0.5,
        group_radius: float = 20.0,
        vel_abs: float = 2.0,
        vel_rel: float = 0.3,
        min_tracks: int = 10,
        min_points: float = 4.0,
        merge_radius: float = 40.0,
        keep_ratio: float = 0.1,
        layers: str = "both",
        layer_gap: int = 3,
        layer_beta: float = 0.3,
        layer_min_px: float = 1.0,
        layer_radius: float = 30.0,
        layer_min_pairs: int = 4,
        layer_min_frac: float = 0.7,
        layer_background: str = "homography",
        layer_per_frame: bool = True,
        sigma: float = 6.0,
        static_weight: float = 1.0,
        prior: float = 0.05,
        threshold: float = 0.5,
        temporal_window: int = 2,
        temporal_sigma: float = 1.5,
        sp_segments: int = 800,
        sp_compactness: float = 10.0,
        sp_blend: float = 0.7,
        gc_iters: int = 3,
        gc_margin: float = 0.15,
        gc_sure_fg: float = 0.85,
        gc_sure_bg: float = 0.1,
        gc_blend: float = 0.7,
        st_from: str = "splat",
        st_track_weight: float = 1.0,
        st_colour_weight: float = 2.0,
        st_pair_weight: float = 20.0,
        st_temporal_weight: float = 10.0,
        st_bins: int = 32,
        st_fb_tol: float = 1.0,
        st_block: int = 24,
        st_eps: float = 0.02,
        min_area: int = 0,
        seed: int = 0,
        prompted: Mapping[str, Any] | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if temporal not in TEMPORAL:
            raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")
        if layers not in LAYER_MODES:
            raise ValueError(f"layers must be one of {LAYER_MODES}, got {layers!r}")
        if not 0.0 <= keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in [0, 1], got {keep_ratio}")
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        if st_from not in ST_FROM:
            raise ValueError(f"st_from must be one of {ST_FROM}, got {st_from!r}")
        # ``prompted`` is not this densifier's: the settings that replace these when `moseg
        # segment` follows prompted objects (densify.prompted in weight_free.yaml, read by
        # moseg.segmentation.run); accepted here so the whole config instantiates
        del prompted
        self.method = method
        self.temporal = temporal
        self.scale = float(scale)
        self.use_prob = bool(use_prob)
        self.vote_k = int(vote_k)
        self.vote_max_dist = float(vote_max_dist)
        self.vote_threshold = float(vote_threshold)
        self.group_radius = float(group_radius)
        self.vel_abs = float(vel_abs)
        self.vel_rel = float(vel_rel)
        self.min_tracks = int(min_tracks)
        self.min_points = float(min_points)
        self.merge_radius = float(merge_radius)
        self.keep_ratio = float(keep_ratio)
        self.layers = layers
        self.layer_gap = int(layer_gap)
        self.layer_beta = float(layer_beta)
        self.layer_min_px = float(layer_min_px)
        self.layer_radius = float(layer_radius)
        self.layer_min_pairs = int(layer_min_pairs)
        self.layer_min_frac = float(layer_min_frac)
        self.layer_background = layer_background
        self.layer_per_frame = bool(layer_per_frame)
        self.sigma = float(sigma)
        self.static_weight = float(static_weight)
        self.prior = float(prior)
        self.threshold = float(threshold)
        self.temporal_window = int(temporal_window)
        self.temporal_sigma = float(temporal_sigma)
        self.sp_segments = int(sp_segments)
        self.sp_compactness = float(sp_compactness)
        self.sp_blend = float(sp_blend)
        self.gc_iters = int(gc_iters)
        self.gc_margin = float(gc_margin)
        self.gc_sure_fg = float(gc_sure_fg)
        self.gc_sure_bg = float(gc_sure_bg)
        self.gc_blend = float(gc_blend)
        self.st_from = st_from
        self.st_track_weight = float(st_track_weight)
        self.st_colour_weight = float(st_colour_weight)
        self.st_pair_weight = float(st_pair_weight)
        self.st_temporal_weight = float(st_temporal_weight)
        self.st_bins = int(st_bins)
        self.st_fb_tol = float(st_fb_tol)
        self.st_block = int(st_block)
        self.st_eps = float(st_eps)
        self.min_area = int(min_area)
        self.seed = int(seed)

    def knobs(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    # ------------------------------------------------------------------------------------------
    def __call__(
        self, frames: np.ndarray, tracks: TrackSet, groups: np.ndarray | None = None
    ) -> DensifyResult:
        """``groups [N]`` (optional): objects already chosen (0 none, else the object id that
        becomes the mask value, at most 254), e.g. by prompts; then the vote and the grouping
        are skipped and every other visible track is static evidence."""
        T, H, W = check_inputs(frames, tracks)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        vis = tracks.visibility.astype(bool)
        xy = tracks.tracks.astype(np.float32)
        if groups is not None:  # objects given: no vote, no grouping
            obj = np.asarray(groups).astype(np.int32)
            if obj.shape != (len(vis),) or obj.min(initial=0) < 0 or obj.max(initial=0) > 254:
                raise ValueError(f"groups must be [N] ids in 0..254, got {obj.shape}")
            mov_vote = vis & (obj > 0)[:, None]
            candidate = obj > 0
            sizes = np.bincount(obj, minlength=1)[1:]
        else:
            # 1. vote
            score = tracks.prob if self.use_prob else tracks.moving
            score = np.asarray(score, dtype=np.float32)
            vote = vote_labels(xy, vis, score, k=self.vote_k, max_dist=self.vote_max_dist)
            mov_vote = vis & (np.nan_to_num(vote, nan=0.0) >= self.vote_threshold)
            n_vis = vis.sum(1)
            frac = mov_vote.sum(1) / np.maximum(n_vis, 1)
            candidate = (n_vis > 0) & (frac >= 0.5)
            timings["vote"] = time.perf_counter() - t0

            # 2. group
            t1 = time.perf_counter()
            grouping = group_tracks(
                xy,
                vis,
                candidate,
                radius=self.group_radius,
                vel_abs=self.vel_abs,
                vel_rel=self.vel_rel,
                min_tracks=self.min_tracks,
                min_points=self.min_points,
                merge_radius=self.merge_radius,
            )
            if self.keep_ratio > 0:  # the primary object and those of comparable mass
                grouping = select_groups(vis, grouping, self.keep_ratio)
            obj, sizes = grouping.object_id, grouping.sizes
            timings["group"] = time.perf_counter() - t1
            own = None
            if self.layers != "none" and sizes.size:
                t1 = time.perf_counter()
                layered = refine_layers(
                    xy,
                    vis,
                    obj,
                    mode=self.layers,
                    min_pairs=self.layer_min_pairs,
                    min_frac=self.layer_min_frac,
                    gap=self.layer_gap,
                    beta=self.layer_beta,
                    min_px=self.layer_min_px,
                    radius=self.layer_radius,
                    background=self.layer_background,
                    seed=self.seed,
                )
                obj, own = layered.object_id, layered.own
                sizes = np.bincount(obj, minlength=sizes.size + 1)[1:]
                timings["layers"] = time.perf_counter() - t1
            if self.keep_ratio > 0 or self.layers != "none":
                # tracks of dropped objects (and pruned ones) are static evidence, grown ones
                # moving
                mov_vote = vis & (obj > 0)[:, None]
                candidate = obj > 0
            if own is not None and self.layer_per_frame:
                # a point of an object that moved with the background in the frame pair
                # starting at it (a track drifting off its object) is static evidence there
                mov_vote &= own >= 0
        stat_vote = vis & ~mov_vote
        K = int(sizes.size)
        info: dict[str, Any] = {
            "num_objects": int((sizes > 0).sum()),
            "object_tracks": sizes.tolist(),
            "moving_in": int(np.asarray(tracks.moving).sum()),
            "moving_votes": int(candidate.sum()),
            "knobs": self.knobs(),
        }
        masks = np.zeros((T, H, W), dtype=np.uint8)
        if K == 0:
            timings["total"] = time.perf_counter() - t0
            info["timings"] = timings
            return DensifyResult(masks, info)
        if K > 254:
            raise ValueError(f"{K} objects do not fit in uint8 masks")

        # 3. splat
        t2 = time.perf_counter()
        h, w = max(1, round(H * self.scale)), max(1, round(W * self.scale))
        sx, sy = w / W, h / H
        uv = np.empty_like(xy)  # working-resolution coordinates (pixel centres at integers)
        uv[..., 0] = (xy[..., 0] + 0.5) * sx - 0.5
        uv[..., 1] = (xy[..., 1] + 0.5) * sy - 0.5
        prob = np.zeros((T, K, h, w), dtype=np.float32)
        evidence = np.zeros((T, h, w), dtype=np.float32)
        for t in range(T):
            prob[t], evidence[t] = self._splat(uv[:, t], vis[:, t], mov_vote[:, t], obj, K, h, w)
        timings["splat"] = time.perf_counter() - t2

        # 4. temporal
        t3 = time.perf_counter()
        if self.temporal == "warp" and self.temporal_window > 0 and T > 1:
            prob = self._temporal(prob, evidence, uv, vis, obj, K)
        timings["temporal"] = time.perf_counter() - t3

        # 5. spatial + 6. upsample
        t4 = time.perf_counter()
        if self.method == "spacetime":
            prob = self._spacetime(frames, prob, stat_vote, uv, h, w)
        for t in range(T):
            p = prob[t]
            if self.method == "superpixel":
                p = self._superpixel(frames[t], p, h, w)
            elif self.method == "grabcut":
                p = self._grabcut(frames[t], p, stat_vote[:, t], uv[:, t], h, w)
            masks[t] = self._assemble(p, H, W)
        timings["spatial"] = time.perf_counter() - t4
        timings["total"] = time.perf_counter() - t0
        timings["per_frame"] = timings["total"] / T
        info["timings"] = timings
        log.debug("weight_free: %d frames, %d objects, %.3f s/frame", T, K, timings["per_frame"])
        return DensifyResult(masks, info)

    # ------------------------------------------------------------------------------------------
    def _impulses(self, uv: np.ndarray, h: int, w: int) -> np.ndarray:
        img = np.zeros((h, w), dtype=np.float32)
        if len(uv):
            c = np.clip(np.rint(uv[:, 0]).astype(np.int64), 0, w - 1)
            r = np.clip(np.rint(uv[:, 1]).astype(np.int64), 0, h - 1)
            inside = (uv[:, 0] > -0.5) & (uv[:, 0] < w - 0.5)
            inside &= (uv[:, 1] > -0.5) & (uv[:, 1] < h - 0.5)
            np.add.at(img, (r[inside], c[inside]), 1.0)
        return img

    def _blur(self, img: np.ndarray) -> np.ndarray:
        s = max(self.sigma * self.scale, 0.3)
        return cv2.GaussianBlur(img, (0, 0), s, borderType=cv2.BORDER_CONSTANT)

    def _splat(
        self,
        uv: np.ndarray,
        vis: np.ndarray,
        mov: np.ndarray,
        obj: np.ndarray,
        K: int,
        h: int,
        w: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``uv [N, 2]`` working px, ``vis``/``mov [N]`` -> (``p [K, h, w]``, evidence [h, w])."""
        n = int(vis.sum())
        p = np.zeros((K, h, w), dtype=np.float32)
        if n == 0:
            return p, np.zeros((h, w), dtype=np.float32)
        # density of all visible points, in points per working pixel: D/dens ~ 1 where covered
        dens = n / float(h * w)
        D = np.stack(
            [self._blur(self._impulses(uv[vis & mov & (obj == k + 1)], h, w)) for k in range(K)]
        )
        D /= dens
        S = self._blur(self._impulses(uv[vis & ~mov], h, w)) / dens
        total = D.sum(0)
        p = D / (total + self.static_weight * S + self.prior)[None]
        return p.astype(np.float32), np.minimum(total + S, 1.0).astype(np.float32)

    def _temporal(
        self,
        prob: np.ndarray,
        evidence: np.ndarray,
        uv: np.ndarray,
        vis: np.ndarray,
        obj: np.ndarray,
        K: int,
    ) -> np.ndarray:
        """Evidence-weighted average of ``prob [T, K, h, w]`` over neighbouring frames warped by
        each object's similarity."""
        T, _, h, w = prob.shape
        out = np.empty_like(prob)
        eps = 1e-3
        for t in range(T):
            for k in range(K):
                members = obj == k + 1
                num = evidence[t] * prob[t, k]
                den = evidence[t] + eps
                for dt in range(-self.temporal_window, self.temporal_window + 1):
                    s = t + dt
                    if dt == 0 or s < 0 or s >= T:
                        continue
                    common = members & vis[:, t] & vis[:, s]
                    A = fit_similarity(uv[common, s], uv[common, t])
                    if A is None:
                        continue
                    g = float(np.exp(-0.5 * (dt / self.temporal_sigma) ** 2))
                    pw = cv2.warpAffine(prob[s, k], A, (w, h), flags=cv2.INTER_LINEAR)
                    ew = cv2.warpAffine(evidence[s], A, (w, h), flags=cv2.INTER_LINEAR)
                    num += g * ew * pw
                    den += g * ew
                out[t, k] = num / den
        return out

    def _spacetime(
        self,
        frames: np.ndarray,
        prob: np.ndarray,
        stat: np.ndarray,
        uv: np.ndarray,
        h: int,
        w: int,
    ) -> np.ndarray:
        """One space-time graph cut of the union of the objects (moseg.densify.spacetime) over
        ``prob [T, K, h, w]`` (or its per-frame GrabCut, ``st_from: grabcut``); each foreground
        pixel goes to the object whose (blurred) map is largest there."""
        T, K = prob.shape[:2]
        small = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        src = prob
        if self.st_from == "grabcut":
            src = np.stack(
                [self._grabcut(frames[t], prob[t], stat[:, t], uv[:, t], h, w) for t in range(T)]
            )
        P = np.minimum(src.sum(1), 1.0)
        params = SpaceTimeParams(
            track_weight=self.st_track_weight,
            colour_weight=self.st_colour_weight,
            pair_weight=self.st_pair_weight,
            temporal_weight=self.st_temporal_weight,
            sure_fg=self.gc_sure_fg,
            sure_bg=self.gc_sure_bg,
            bins=self.st_bins,
            margin=self.gc_margin,
            fb_tol=self.st_fb_tol,
            block=self.st_block,
            eps=self.st_eps,
        )
        fg = spacetime_cut(small, P, params, threshold=self.threshold)
        if K == 1:
            owner = np.zeros((T, h, w), dtype=np.int64)
        else:
            s = 4.0 * max(self.sigma * self.scale, 0.3)
            spread = np.stack(
                [
                    [cv2.GaussianBlur(src[t, k], (0, 0), s) + src[t, k] for k in range(K)]
                    for t in range(T)
                ]
            )
            owner = spread.argmax(1)
        out = (1.0 - self.gc_blend) * src
        for k in range(K):
            out[:, k] += self.gc_blend * (fg & (owner == k))
        return out.astype(np.float32)

    def _superpixel(self, frame: np.ndarray, p: np.ndarray, h: int, w: int) -> np.ndarray:
        from skimage.segmentation import slic

        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        seg = slic(
            small,
            n_segments=self.sp_segments,
            compactness=self.sp_compactness,
            start_label=0,
            channel_axis=-1,
        )
        flat = seg.ravel()
        count = np.bincount(flat).astype(np.float32)
        count[count == 0] = 1.0
        out = np.empty_like(p)
        for k in range(p.shape[0]):
            mean = np.bincount(flat, weights=p[k].ravel(), minlength=count.size) / count
            out[k] = self.sp_blend * mean[seg] + (1.0 - self.sp_blend) * p[k]
        return out

    def _grabcut(
        self,
        frame: np.ndarray,
        p: np.ndarray,
        stat: np.ndarray,
        uv: np.ndarray,
        h: int,
        w: int,
    ) -> np.ndarray:
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(small[..., ::-1])
        out = p.copy()
        K = p.shape[0]
        others_any = p.sum(0)
        for k in range(K):
            pk = p[k]
            fg = pk >= self.threshold
            if not fg.any():
                continue
            rows, cols = np.nonzero(fg)
            r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            mr = int(round(self.gc_margin * (r1 - r0))) + 4
            mc = int(round(self.gc_margin * (c1 - c0))) + 4
            r0, r1 = max(0, r0 - mr), min(h, r1 + mr)
            c0, c1 = max(0, c0 - mc), min(w, c1 + mc)
            crop = pk[r0:r1, c0:c1]
            mask = np.full(crop.shape, cv2.GC_PR_BGD, dtype=np.uint8)
            mask[crop < self.gc_sure_bg] = cv2.GC_BGD
            mask[crop >= self.threshold] = cv2.GC_PR_FGD
            mask[crop >= self.gc_sure_fg] = cv2.GC_FGD
            other = (others_any - pk)[r0:r1, c0:c1] >= self.threshold
            mask[other] = cv2.GC_BGD
            is_fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
            if not is_fg.any() or is_fg.all() or min(crop.shape) < 4:
                continue
            bgd = np.zeros((1, 65), np.float64)
            fgd = np.zeros((1, 65), np.float64)
            cv2.setRNGSeed(self.seed)  # grabCut's k-means uses OpenCV's global RNG
            try:
                cv2.grabCut(
                    np.ascontiguousarray(bgr[r0:r1, c0:c1]),
                    mask,
                    None,
                    bgd,
                    fgd,
                    self.gc_iters,
                    cv2.GC_INIT_WITH_MASK,
                )
            except cv2.error as e:  # e.g. too few samples for a GMM
                log.debug("grabCut failed on object %d: %s", k + 1, e)
                continue
            seg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
            out[k, r0:r1, c0:c1] = self.gc_blend * seg + (1.0 - self.gc_blend) * crop
        return out

    def _assemble(self, p: np.ndarray, H: int, W: int) -> np.ndarray:
        """``p [K, h, w]`` -> mask [H, W] uint8."""
        K = p.shape[0]
        up = np.stack([cv2.resize(p[k], (W, H), interpolation=cv2.INTER_LINEAR) for k in range(K)])
        total = up.sum(0)
        label = (np.argmax(up, axis=0) + 1).astype(np.uint8)
        label[total < self.threshold] = 0
        if self.min_area > 0:
            for k in range(1, K + 1):
                n, cc, stats, _ = cv2.connectedComponentsWithStats((label == k).astype(np.uint8), 8)
                small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < self.min_area) + 1
                if small.size:
                    label[np.isin(cc, small)] = 0
        return label
