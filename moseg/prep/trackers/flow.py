"""Long-term point tracks from chained dense optical flow, on CPU and without weights.

1. Dense flow between every pair of neighbouring frames, both ways (OpenCV's DIS by default).
2. Queries on a pixel grid on frames ``0, query_every, 2*query_every, ...``. With ``reseed``, a
   later query frame only starts tracks in grid cells that no live track covers, so the density
   stays even and dead tracks are replaced where they died.
3. Each track is followed forward to the last frame and backward to the first by sampling the flow
   (bilinear) at its position. Every step is checked forward-backward: following the reverse flow
   from the new position must come back to within ``fb_abs_px + fb_rel * |flow|`` of the old one.
   A track that fails the check (occlusion, disocclusion, flow error) or leaves the frame is
   invisible from then on (after ``max_lost`` tolerated failures); its position keeps following
   the flow so that it stays finite and plausible, but the model never uses it.
4. Confidence decays with the accumulated forward-backward error along the track.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from moseg.io.contract import bilinear
from moseg.prep.base import TrackResult, check_frames, query_grid

log = logging.getLogger(__name__)

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowTracker:
    """Chained-flow tracker; see the module docstring. Positions in frame pixels (x, y)."""

    name = "opencv"

    def __init__(
        self,
        flow: str = "dis",
        preset: str = "medium",
        query_every: int = 8,
        grid_px: float = 8.0,
        reseed: bool = True,
        fb_abs_px: float = 1.0,
        fb_rel: float = 0.05,
        max_lost: int = 0,
        min_texture: float = 0.0,
        flow_max_side: int | None = None,
        progress: bool | None = None,
    ):
        if flow not in ("dis", "farneback"):
            raise ValueError(f"tracker.flow must be 'dis' or 'farneback', got {flow!r}")
        if preset not in _PRESETS:
            raise ValueError(f"tracker.preset must be one of {sorted(_PRESETS)}, got {preset!r}")
        self.flow, self.preset = flow, preset
        self.query_every, self.grid_px, self.reseed = int(query_every), float(grid_px), reseed
        self.fb_abs_px, self.fb_rel, self.max_lost = float(fb_abs_px), float(fb_rel), int(max_lost)
        self.min_texture = float(min_texture)
        self.flow_max_side = flow_max_side
        self.progress = sys.stderr.isatty() if progress is None else progress

    def provenance(self) -> dict[str, Any]:
        keys = ["flow", "preset", "query_every", "grid_px", "reseed", "fb_abs_px", "fb_rel"]
        keys += ["max_lost", "min_texture", "flow_max_side"]
        return {"name": self.name, **{k: getattr(self, k) for k in keys}}

    # ------------------------------------------------------------------------------------------
    def _flow_fn(self):
        if self.flow == "dis":
            dis = cv2.DISOpticalFlow_create(_PRESETS[self.preset])
            return lambda a, b: dis.calc(a, b, None)
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 5, 7, 1.5, 0)

    def flows(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward ``[T-1, H, W, 2]`` (t -> t+1) and backward (t+1 -> t) flow in frame pixels."""
        T, H, W = frames.shape[:3]
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        scale = 1.0
        if self.flow_max_side and max(H, W) > self.flow_max_side:
            scale = self.flow_max_side / max(H, W)
            size = (max(8, round(W * scale)), max(8, round(H * scale)))
            grey = [cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in grey]
        calc = self._flow_fn()
        fwd = np.empty((max(T - 1, 0), H, W, 2), np.float32)
        bwd = np.empty_like(fwd)
        steps = tqdm(range(T - 1), desc="flow", unit="frame", disable=not self.progress)
        for t in steps:
            f, b = calc(grey[t], grey[t + 1]), calc(grey[t + 1], grey[t])
            if scale != 1.0:
                f = cv2.resize(f, (W, H), interpolation=cv2.INTER_LINEAR) / scale
                b = cv2.resize(b, (W, H), interpolation=cv2.INTER_LINEAR) / scale
            fwd[t], bwd[t] = f, b
        return fwd, bwd

    def _texture(self, frame: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
        k = max(3, int(self.grid_px) | 1)
        return cv2.blur(gx * gx + gy * gy, (k, k))

    def __call__(self, frames: np.ndarray) -> TrackResult:
        check_frames(frames)
        T, H, W = frames.shape[:3]
        fwd, bwd = self.flows(frames)
        grid, gframe = query_grid(T, H, W, self.query_every, self.grid_px)
        qframes = np.unique(gframe)

        xy_list: list[np.ndarray] = []  # per query frame: [n, T, 2]
        vis_list, err_list, q_list = [], [], []
        # forward pass: live tracks of every earlier query frame, seeded frame by frame
        pos = np.zeros((0, 2), np.float32)  # current positions of all tracks started so far
        alive = np.zeros(0, bool)
        lost = np.zeros(0, np.int32)
        owner: list[tuple[int, int]] = []  # (group, count) in start order
        for t in range(T):
            if t in qframes:
                new = grid[gframe == t]
                if self.min_texture > 0:
                    tex = self._texture(frames[t])
                    keep = tex[_ri(new[:, 1], H), _ri(new[:, 0], W)] >= self.min_texture
                    new = new[keep]
                if self.reseed and t > 0 and alive.any():
                    new = new[~_covered(pos[alive], new, self.grid_px, H, W)]
                g = len(xy_list)
                xy = np.zeros((len(new), T, 2), np.float32)
                vis = np.zeros((len(new), T), bool)
                err = np.zeros((len(new), T), np.float32)
                xy[:, t], vis[:, t] = new, True
                xy_list.append(xy)
                vis_list.append(vis)
                err_list.append(err)
                q_list.append(np.full(len(new), t, np.int32))
                owner.append((g, len(new)))
                pos = np.concatenate([pos, new])
                alive = np.concatenate([alive, np.ones(len(new), bool)])
                lost = np.concatenate([lost, np.zeros(len(new), np.int32)])
            if t == T - 1:
                break
            pos, ok, e = self._step(pos, fwd[t], bwd[t], H, W)
            lost = np.where(ok, 0, lost + 1)
            alive &= lost <= self.max_lost
            start = 0
            for g, n in owner:
                sl = slice(start, start + n)
                xy_list[g][:, t + 1] = pos[sl]
                vis_list[g][:, t + 1] = alive[sl] & ok[sl]
                err_list[g][:, t + 1] = e[sl]
                start += n

        # backward pass: every group from its query frame down to frame 0
        for xy, vis, err, q in zip(xy_list, vis_list, err_list, q_list, strict=True):
            t0 = int(q[0]) if len(q) else 0
            if t0 == 0 or not len(q):
                continue
            p = xy[:, t0].copy()
            a = np.ones(len(p), bool)
            lost_b = np.zeros(len(p), np.int32)
            for t in range(t0, 0, -1):
                p, ok, e = self._step(p, bwd[t - 1], fwd[t - 1], H, W)
                lost_b = np.where(ok, 0, lost_b + 1)
                a &= lost_b <= self.max_lost
                xy[:, t - 1], vis[:, t - 1], err[:, t - 1] = p, a & ok, e

        tracks = np.concatenate(xy_list) if xy_list else np.zeros((0, T, 2), np.float32)
        visibility = np.concatenate(vis_list) if vis_list else np.zeros((0, T), bool)
        err = np.concatenate(err_list) if err_list else np.zeros((0, T), np.float32)
        query = np.concatenate(q_list) if q_list else np.zeros(0, np.int32)
        confidence = self._confidence(err, visibility, query)
        bound = 4.0 * max(H, W)
        tracks = np.clip(np.nan_to_num(tracks, nan=-bound), -bound, bound)
        info = {
            "num_tracks": int(len(query)),
            "per_query_frame": {int(q): int((query == q).sum()) for q in np.unique(query)},
            "visible_fraction": round(float(visibility.mean()) if visibility.size else 0.0, 4),
        }
        return TrackResult(tracks, visibility, confidence, query, info)

    def _step(
        self, p: np.ndarray, flow: np.ndarray, back: np.ndarray, H: int, W: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Move ``p [n, 2]`` by ``flow``; check with ``back``. Returns new positions, ok, error."""
        if len(p) == 0:
            return p, np.zeros(0, bool), np.zeros(0, np.float32)
        f = _sample(flow, p)
        q = p + f
        b = _sample(back, q)
        e = np.linalg.norm(q + b - p, axis=1)
        inside = (q[:, 0] >= -0.5) & (q[:, 0] <= W - 0.5) & (q[:, 1] >= -0.5) & (q[:, 1] <= H - 0.5)
        ok = inside & (e <= self.fb_abs_px + self.fb_rel * np.linalg.norm(f, axis=1))
        return q.astype(np.float32), ok, e.astype(np.float32)

    def _confidence(self, err: np.ndarray, vis: np.ndarray, query: np.ndarray) -> np.ndarray:
        """exp(-accumulated forward-backward error / (4 fb_abs_px)), accumulated away from the
        query frame; invisible points get a tenth of that."""
        n, T = err.shape
        acc = np.zeros_like(err)
        for q in np.unique(query):
            rows = query == q
            e = err[rows]
            acc[rows, q + 1 :] = np.cumsum(e[:, q + 1 :], axis=1)
            acc[rows, :q] = np.cumsum(e[:, :q][:, ::-1], axis=1)[:, ::-1]
        conf = np.exp(-acc / (4.0 * self.fb_abs_px))
        return np.where(vis, conf, 0.1 * conf).astype(np.float32)


def _ri(v: np.ndarray, n: int) -> np.ndarray:
    return np.clip(np.rint(v), 0, n - 1).astype(np.int64)


def _sample(field: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``field [H, W, 2]`` at ``p [n, 2]`` (x, y); border values outside.

    Exact float interpolation (cv2.remap quantises weights to 1/32 px and limits maps to 32767
    points per side)."""
    return bilinear(field, p[:, 0], p[:, 1])


def _covered(live: np.ndarray, new: np.ndarray, cell: float, H: int, W: int) -> np.ndarray:
    """[len(new)] true where a live track lies in the same grid cell as the new query point."""
    gw, gh = int(np.ceil(W / cell)) + 1, int(np.ceil(H / cell)) + 1
    occ = np.zeros((gh, gw), bool)
    inside = (live[:, 0] >= -0.5) & (live[:, 0] <= W - 0.5)
    inside &= (live[:, 1] >= -0.5) & (live[:, 1] <= H - 0.5)
    cx = np.clip(((live[inside, 0] + 0.5) // cell).astype(np.int64), 0, gw - 1)
    cy = np.clip(((live[inside, 1] + 0.5) // cell).astype(np.int64), 0, gh - 1)
    occ[cy, cx] = True
    nx = np.clip(((new[:, 0] + 0.5) // cell).astype(np.int64), 0, gw - 1)
    ny = np.clip(((new[:, 1] + 0.5) // cell).astype(np.int64), 0, gh - 1)
    return occ[ny, nx]
