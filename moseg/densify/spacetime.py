"""Space-time graph cut: per-frame foreground evidence -> temporally consistent binary masks.

Shapes: ``T`` frames of ``h x w`` (the densifier's working resolution).

One s-t min cut (PyMaxflow's Boykov-Kolmogorov solver) over all pixels of a block of frames:

- **Unary**: a pixel's foreground log-odds are ``track_weight * logit(prob) + colour_weight * C``,
  where ``prob`` is the track evidence (the densifier's splat probability, clipped to
  ``[eps, 1 - eps]``) and ``C`` the log-ratio of a video-level colour model: smoothed 3-D
  colour histograms of the confident foreground (``prob >= sure_fg``) and of the confident
  background (``prob <= sure_bg``) near the objects (inside each frame's region of interest),
  pooled over the whole video. Pixels outside the region of interest (the objects' boxes grown
  by ``margin``) are background.
- **Spatial edges** (4-neighbours): ``pair_weight * exp(-beta |I_p - I_q|^2)``, contrast-sensitive
  as in GrabCut, ``beta`` from the mean squared colour difference of the video.
- **Temporal edges**: pixel ``p`` of frame ``t`` is linked to ``p + flow(p)`` of frame ``t + 1``
  (OpenCV DIS optical flow, forward and backward; a link only where the two agree within
  ``fb_tol`` px), weighted ``temporal_weight * exp(-beta |I_t(p) - I_{t+1}(p')|^2)``.

Frames are cut in blocks of ``block`` frames that overlap by one frame, and the overlap's labels
are carried into the next block as a hard constraint, so memory stays bounded on long videos.
Deterministic: no random state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class SpaceTimeParams:
    """The cut's weights (see the module docstring); the defaults are the weight-free
    densifier's (``st_*``, ``gc_sure_fg``, ``gc_sure_bg`` and ``gc_margin`` in
    moseg/conf/densify/weight_free.yaml), chosen on DAVIS2016_train."""

    track_weight: float = 1.0
    colour_weight: float = 2.0
    pair_weight: float = 20.0
    temporal_weight: float = 10.0
    sure_fg: float = 0.85
    sure_bg: float = 0.1
    bins: int = 32
    margin: float = 0.15
    fb_tol: float = 1.0
    block: int = 24
    eps: float = 0.02


def _links(
    dis, frame0: np.ndarray, frame1: np.ndarray, fb_tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Flow links of two RGB frames ``[h, w, 3]``: (flat pixel of ``frame0``, flat pixel of
    ``frame1`` it moves to), where the forward flow and the backward flow at its end agree
    within ``fb_tol`` px and the end is inside the frame (OpenCV DIS flow)."""
    g0 = cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY)
    h, w = g0.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fwd = dis.calc(g0, g1, None)
    bwd = dis.calc(g1, g0, None)
    x1, y1 = xs + fwd[..., 0], ys + fwd[..., 1]
    back = cv2.remap(
        bwd, x1, y1, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(1e4, 1e4)
    )
    err = np.hypot(fwd[..., 0] + back[..., 0], fwd[..., 1] + back[..., 1])
    c, r = np.rint(x1).astype(np.int64), np.rint(y1).astype(np.int64)
    ok = (err <= fb_tol) & (c >= 0) & (c < w) & (r >= 0) & (r < h)
    return np.flatnonzero(ok), (r * w + c)[ok]


def _rois(prob: np.ndarray, threshold: float, margin: float) -> np.ndarray:
    """``prob [T, h, w]`` -> bool [T, h, w]: each frame's box around ``prob >= threshold`` grown by
    ``margin`` of its size (+4 px); empty where nothing reaches the threshold."""
    T, h, w = prob.shape
    roi = np.zeros(prob.shape, dtype=bool)
    for t in range(T):
        rows, cols = np.nonzero(prob[t] >= threshold)
        if rows.size == 0:
            continue
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        mr = int(round(margin * (r1 - r0))) + 4
        mc = int(round(margin * (c1 - c0))) + 4
        roi[t, max(0, r0 - mr) : min(h, r1 + mr), max(0, c0 - mc) : min(w, c1 + mc)] = True
    return roi


def _colour_index(img: np.ndarray, bins: int) -> np.ndarray:
    q = (img.astype(np.int32) * bins) // 256
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def colour_table(img: np.ndarray, fg: np.ndarray, bg: np.ndarray, bins: int) -> np.ndarray | None:
    """Log-ratio ``log p(c | fg) - log p(c | bg)`` per colour bin (``bins**3``, float32) of
    smoothed 3-D histograms fitted on the pixels ``fg`` and ``bg`` of ``img [..., 3]`` uint8;
    None where either set is empty."""
    if not fg.any() or not bg.any():
        return None
    n = bins**3
    hf = np.zeros(n, dtype=np.float64)
    hb = np.zeros(n, dtype=np.float64)
    for t in range(len(img)):  # frame by frame: no video-sized index array
        idx = _colour_index(img[t], bins)
        hf += np.bincount(idx[fg[t]], minlength=n)
        hb += np.bincount(idx[bg[t]], minlength=n)
    hf = gaussian_filter(hf.reshape(bins, bins, bins), 1.0, mode="constant")
    hb = gaussian_filter(hb.reshape(bins, bins, bins), 1.0, mode="constant")
    hf = hf / hf.sum() + 1.0 / (100.0 * n)
    hb = hb / hb.sum() + 1.0 / (100.0 * n)
    return (np.log(hf) - np.log(hb)).ravel().astype(np.float32)


def colour_log_ratio(img: np.ndarray, fg: np.ndarray, bg: np.ndarray, bins: int) -> np.ndarray:
    """:func:`colour_table` looked up at every pixel of ``img [T, h, w, 3]``: [T, h, w] float32,
    0 where either set is empty."""
    table = colour_table(img, fg, bg, bins)
    if table is None:
        return np.zeros(img.shape[:-1], dtype=np.float32)
    return table[_colour_index(img, bins)]


def _contrast_beta(lab_frames) -> float:
    """``1 / (2 mean |dI|^2)`` over the 4-neighbour pairs of every frame (GrabCut's beta)."""
    total, count = 0.0, 0
    for lab in lab_frames:
        dx = ((lab[:, 1:] - lab[:, :-1]) ** 2).sum(-1)
        dy = ((lab[1:, :] - lab[:-1, :]) ** 2).sum(-1)
        total += float(dx.sum() + dy.sum())
        count += dx.size + dy.size
    return 1.0 / (2.0 * max(total / max(count, 1), 1e-6))


def _lab(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)


def spacetime_cut(
    frames: np.ndarray,
    prob: np.ndarray,
    params: SpaceTimeParams | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """``frames [T, h, w, 3]`` uint8 RGB at the working resolution, ``prob [T, h, w]`` foreground
    probability from the tracks -> foreground ``[T, h, w]`` bool.

    Each block's graph holds only the box around its frames' regions of interest, plus a ring
    of one pixel; every pixel outside is background, so a flow link between the box and the
    outside becomes a cost of foreground on its end in the box (the same cut as over the whole
    frame, in a fraction of the memory)."""
    p = params or SpaceTimeParams()
    T, h, w = prob.shape
    if frames.shape[:3] != (T, h, w):
        raise ValueError(f"frames {frames.shape} do not match prob {prob.shape}")
    if p.block < 2:  # blocks overlap by one frame: one frame per block would never advance
        raise ValueError(f"block must be at least 2 frames, got {p.block}")
    roi = _rois(prob, threshold, p.margin)
    out = np.zeros((T, h, w), dtype=bool)
    if not roi.any():
        return out
    table = None
    if p.colour_weight > 0:
        table = colour_table(frames, roi & (prob >= p.sure_fg), roi & (prob <= p.sure_bg), p.bins)
    beta = _contrast_beta(_lab(f) for f in frames)
    temporal = p.temporal_weight > 0 and T > 1
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST) if temporal else None
    start = 0
    carry: np.ndarray | None = None  # labels of the previous block's last frame
    while True:
        stop = min(T, start + p.block)
        # the block's box: every region of interest of its frames, grown by a ring of 1 px; a
        # block without one stays background
        rows = np.flatnonzero(roi[start:stop].any(axis=(0, 2)))
        cols = np.flatnonzero(roi[start:stop].any(axis=(0, 1)))
        if rows.size:
            r0, r1 = max(0, rows[0] - 1), min(h, rows[-1] + 2)
            c0, c1 = max(0, cols[0] - 1), min(w, cols[-1] + 2)
            box = (slice(start, stop), slice(r0, r1), slice(c0, c1))
            fixed = None if carry is None else carry[r0:r1, c0:c1]
            out[box] = _cut_block(frames, prob, roi, box, fixed, table, beta, dis, p)
        if stop >= T:
            return out
        carry = out[stop - 1]
        start = stop - 1


def _cut_block(
    frames: np.ndarray,
    prob: np.ndarray,
    roi: np.ndarray,
    box: tuple[slice, slice, slice],
    fixed: np.ndarray | None,
    table: np.ndarray | None,
    beta: float,
    dis,
    p: SpaceTimeParams,
) -> np.ndarray:
    """The min cut of the frames and box ``box`` (``fixed``: the first frame's labels, kept)
    -> foreground of the box, bool."""
    import maxflow

    (t0, t1), (r0, r1), (c0, c1) = ((sl.start, sl.stop) for sl in box)
    n, hc, wc, w = t1 - t0, r1 - r0, c1 - c0, prob.shape[2]
    big = 1e6
    lab = np.stack([_lab(f[r0:r1, c0:c1]) for f in frames[t0:t1]])
    # unary: source = foreground; cap_source is the cost of labelling background
    pc = np.clip(prob[box], p.eps, 1.0 - p.eps).astype(np.float64)
    odds = p.track_weight * (np.log(pc) - np.log1p(-pc))
    if table is not None:
        odds += p.colour_weight * table[_colour_index(frames[box], p.bins)]
    src = np.maximum(odds, 0.0)
    snk = np.maximum(-odds, 0.0)
    outside = ~roi[box]
    src[outside], snk[outside] = 0.0, big
    # spatial
    wx = np.zeros((n, hc, wc))
    wx[:, :, :-1] = p.pair_weight * np.exp(-beta * ((lab[:, :, 1:] - lab[:, :, :-1]) ** 2).sum(-1))
    wy = np.zeros((n, hc, wc))
    wy[:, :-1, :] = p.pair_weight * np.exp(-beta * ((lab[:, 1:] - lab[:, :-1]) ** 2).sum(-1))
    g = maxflow.Graph[float]()
    ids = g.add_grid_nodes((n, hc, wc))
    structure = np.zeros((3, 3, 3))
    structure[1, 1, 2] = 1
    g.add_grid_edges(ids, weights=wx, structure=structure, symmetric=True)
    structure = np.zeros((3, 3, 3))
    structure[1, 2, 1] = 1
    g.add_grid_edges(ids, weights=wy, structure=structure, symmetric=True)
    # temporal: flow links of the whole frame; those with one end outside the box charge the
    # end inside it (the outside end is background)
    lab_next = _lab(frames[t0]) if dis is not None else None
    for i in range(n - 1 if dis is not None else 0):
        t = t0 + i
        lab_t, lab_next = lab_next, _lab(frames[t + 1])  # whole frames, each converted once
        src_pix, dst_pix = _links(dis, frames[t], frames[t + 1], p.fb_tol)
        if src_pix.size == 0:
            continue
        sr, sc = np.divmod(src_pix, w)
        dr, dc = np.divmod(dst_pix, w)
        s_in = (sr >= r0) & (sr < r1) & (sc >= c0) & (sc < c1)
        d_in = (dr >= r0) & (dr < r1) & (dc >= c0) & (dc < c1)
        keep = s_in | d_in
        sr, sc, s_in = sr[keep], sc[keep], s_in[keep]
        dr, dc, d_in = dr[keep], dc[keep], d_in[keep]
        diff = lab_t[sr, sc] - lab_next[dr, dc]
        wt = p.temporal_weight * np.exp(-beta * (diff**2).sum(-1))
        both = s_in & d_in
        g.add_edges(
            ids[i, sr[both] - r0, sc[both] - c0],
            ids[i + 1, dr[both] - r0, dc[both] - c0],
            wt[both],
            wt[both],
        )
        only_s, only_d = s_in & ~d_in, d_in & ~s_in
        np.add.at(snk[i], (sr[only_s] - r0, sc[only_s] - c0), wt[only_s])
        np.add.at(snk[i + 1], (dr[only_d] - r0, dc[only_d] - c0), wt[only_d])
    if fixed is not None:  # the overlap frame keeps the previous block's labels
        src[0] = np.where(fixed, big, 0.0)
        snk[0] = np.where(fixed, 0.0, big)
    g.add_grid_tedges(ids, src, snk)
    g.maxflow()
    return ~g.get_grid_segments(ids)
