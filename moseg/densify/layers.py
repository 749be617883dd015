"""Two-layer motion refinement of the moving objects a classifier and the grouping found.

Shapes: ``N`` tracks, ``T`` frames; ``tracks [N, T, 2]`` (x, y) px, ``visibility [N, T]`` bool,
``object_id [N]`` int (0 static, 1..K objects).

For every frame pair ``(t, t + gap)`` the background's motion is a homography fitted (OpenCV
RANSAC) to the static tracks (or, with ``background="gric"``, a homography or a fundamental
matrix, whichever Torr's GRIC prefers: a fundamental matrix explains parallax), and each
object's motion an affine map fitted (OpenCV RANSAC) to its tracks. A track near object ``k``
(within ``radius`` px of one of its points at ``t``) votes for the model that explains its
displacement better, when the two models disagree about it by at least ``min_px`` and one
error is below ``beta`` times the other. Over the track's life:

- ``grow``: a static track that voted for object ``k`` in at least ``min_pairs`` pairs and at
  least ``min_frac`` of the pairs it was near ``k`` joins ``k`` (the parts of a car or a body
  that the classifier missed but that move with the rest of it);
- ``prune``: a track of object ``k`` that voted for the background as often leaves it (points
  that the camera's motion explains, which the classifier took for motion).

Per frame, :attr:`Layers.own` also says where an object's track moved with the background
(a track that drifted off its object), for the densifier's ``layer_per_frame``.

This is a per-track decision between two motion layers, seeded by the classifier; it never
creates an object. Deterministic (``cv2.setRNGSeed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

MODES = ("none", "grow", "prune", "both")
BACKGROUND = ("homography", "gric")


def gric(err2: np.ndarray, sigma: float, d: int, k: int, r: int = 4) -> float:
    """Torr's Geometric Robust Information Criterion of a two-view model (lower is better):
    ``sum(min(e^2 / sigma^2, 2 (r - d))) + log(r) d n + log(r n) k`` for ``n`` correspondences
    of dimension ``r`` (4 for two views), a model manifold of dimension ``d`` (2 for a
    homography, 3 for a fundamental matrix) and ``k`` parameters (8 and 7)."""
    n = len(err2)
    rho = np.minimum(err2 / sigma**2, 2.0 * (r - d)).sum()
    return float(rho + np.log(r) * d * n + np.log(r * n) * k)


def sampson(F: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sampson distance (px^2, first-order geometric error) of ``a -> b`` under ``F``."""
    ah = np.c_[a, np.ones(len(a))]
    bh = np.c_[b, np.ones(len(b))]
    Fa = ah @ F.T  # epipolar lines in the second view
    Fb = bh @ F  # in the first
    num = np.einsum("ij,ij->i", bh, Fa) ** 2
    den = Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Fb[:, 0] ** 2 + Fb[:, 1] ** 2
    return num / np.maximum(den, 1e-12)


def background_errors(
    a: np.ndarray, b: np.ndarray, static: np.ndarray, model: str, px: float, sigma: float = 1.0
) -> tuple[np.ndarray | None, str, np.ndarray | None]:
    """Per-point error (px) of ``a -> b`` under the camera model fitted to the ``static``
    points: a RANSAC homography (transfer error), or with ``model="gric"`` also a USAC
    fundamental matrix (Sampson distance), the one with the lower GRIC on the static points
    chosen. A fundamental matrix explains parallax; a homography wins for a rotating camera
    or a planar scene, where a fundamental matrix is ill-posed. Returns (errors, "H" or "F",
    the homography's errors)."""
    H, _ = cv2.findHomography(a[static], b[static], cv2.RANSAC, px)
    if H is None:
        return None, "H", None
    e_h = np.linalg.norm(cv2.perspectiveTransform(a[None], H)[0] - b, axis=1)
    if model == "homography" or static.sum() < 15:
        return e_h, "H", e_h
    F, _ = cv2.findFundamentalMat(a[static], b[static], cv2.USAC_MAGSAC, px, 0.99, 1000)
    if F is None or F.shape != (3, 3):
        return e_h, "H", e_h
    e2_f = sampson(F, a, b)
    # transfer error has two coordinates of residual, Sampson's one geometric distance
    g_h = gric(e_h[static] ** 2 / 2.0, sigma, d=2, k=8)
    g_f = gric(e2_f[static], sigma, d=3, k=7)
    return (np.sqrt(e2_f), "F", e_h) if g_f < g_h else (e_h, "H", e_h)


def _affine_errors(
    a_fit: np.ndarray, b_fit: np.ndarray, a: np.ndarray, b: np.ndarray, px: float
) -> np.ndarray | None:
    """Errors (px) of ``a -> b`` under the affine map OpenCV's RANSAC fits to ``a_fit -> b_fit``
    (inlier threshold ``px``); None when no map is found."""
    M, _ = cv2.estimateAffine2D(a_fit, b_fit, method=cv2.RANSAC, ransacReprojThreshold=px)
    if M is None:
        return None
    return np.linalg.norm(a @ M[:, :2].T + M[:, 2] - b, axis=1)


def layer_votes(
    tracks: np.ndarray,
    visibility: np.ndarray,
    object_id: np.ndarray,
    gap: int = 3,
    beta: float = 0.3,
    min_px: float = 1.0,
    radius: float = 30.0,
    ransac_px: float = 2.0,
    min_static: int = 12,
    min_object: int = 6,
    background: str = "homography",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(votes [N, K + 1], near [N], own [N, T])``: per track and object, the pairs in which
    it fitted the object's motion better (+1) or the background's (-1); column 0 is unused.
    ``near``: the pairs in which the track was near any object. ``own [N, T]`` int8: for the
    tracks of an object, +1 / -1 where the pair starting at that frame fitted their own
    object's / the background's motion better, 0 where undecided. ``background``: the camera
    model, one of :data:`BACKGROUND` (:func:`background_errors`)."""
    if background not in BACKGROUND:
        raise ValueError(f"background must be one of {BACKGROUND}, got {background!r}")
    N, T = visibility.shape
    K = int(object_id.max(initial=0))
    votes = np.zeros((N, K + 1), np.float32)
    near_count = np.zeros(N, np.float32)
    own = np.zeros((N, T), np.int8)
    if K == 0 or T < 2:
        return votes, near_count, own
    cv2.setRNGSeed(seed)
    for t in range(T - 1):
        u = min(t + gap, T - 1)
        both = np.flatnonzero(visibility[:, t] & visibility[:, u])
        ids = object_id[both]
        static = ids == 0
        if static.sum() < min_static:
            continue
        a = tracks[both, t].astype(np.float64)
        b = tracks[both, u].astype(np.float64)
        # pruning asks the chosen camera model (parallax included); joining asks the
        # homography, since a fundamental matrix also absorbs object motion along epipolar
        # lines and would keep the parts of a car that the classifier missed from joining it
        e_bg, _, e_h = background_errors(a, b, static, background, ransac_px)
        if e_bg is None:
            continue
        seen = np.zeros(len(both), bool)
        for k in range(1, K + 1):
            mk = ids == k
            if mk.sum() < min_object:
                continue
            e_k = _affine_errors(a[mk], b[mk], a, b, ransac_px)
            if e_k is None:
                continue
            dist, _ = cKDTree(a[mk]).query(a, k=1, distance_upper_bound=radius)
            near = np.isfinite(dist)
            seen |= near
            fits_k = near & (np.maximum(e_h, e_k) >= min_px) & (e_k < beta * e_h)
            fits_bg = near & (np.maximum(e_bg, e_k) >= min_px) & (e_bg < beta * e_k)
            votes[both[fits_k], k] += 1
            votes[both[fits_bg], k] -= 1
            own[both[mk & fits_k], t] = 1
            own[both[mk & fits_bg], t] = -1
        near_count[both[seen]] += 1
    return votes, near_count, own


@dataclass
class Layers:
    """``object_id [N]`` after the refinement; ``own [N, T]`` int8 (see :func:`layer_votes`):
    per frame, whether an object's track moved with its object (+1) or with the background
    (-1) in the pair starting there; 0 undecided."""

    object_id: np.ndarray
    own: np.ndarray


def refine_layers(
    tracks: np.ndarray,
    visibility: np.ndarray,
    object_id: np.ndarray,
    mode: str = "both",
    min_pairs: int = 4,
    min_frac: float = 0.7,
    **vote_kw: float,
) -> Layers:
    """The objects after growing and/or pruning them (module docstring); ``mode`` one of
    :data:`MODES`. ``vote_kw`` go to :func:`layer_votes`."""
    if mode not in MODES:
        raise ValueError(f"layers mode must be one of {MODES}, got {mode!r}")
    object_id = np.asarray(object_id)
    if mode == "none" or object_id.max(initial=0) == 0:
        return Layers(object_id.copy(), np.zeros(visibility.shape, np.int8))
    votes, near, own = layer_votes(tracks, visibility, object_id, **vote_kw)
    frac = votes / np.maximum(near, 1.0)[:, None]
    new = object_id.copy()
    K = votes.shape[1] - 1
    if mode in ("grow", "both"):
        # a static track joins the object it voted for most, if that vote is strong enough
        best = np.argmax(votes[:, 1:], axis=1) + 1
        v = votes[np.arange(len(new)), best]
        f = frac[np.arange(len(new)), best]
        add = (object_id == 0) & (v >= min_pairs) & (f >= min_frac)
        new[add] = best[add]
    if mode in ("prune", "both") and K > 0:
        mine = np.clip(object_id, 0, K)
        v = votes[np.arange(len(new)), mine]
        f = frac[np.arange(len(new)), mine]
        drop = (object_id > 0) & (-v >= min_pairs) & (-f >= min_frac)
        new[drop] = 0
    own[new != object_id] = 0  # the per-frame fits were to the object a track left or joined
    return Layers(new, own)
