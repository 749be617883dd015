"""Track-level steps of the weight-free densifier: label clean-up and grouping into objects.

Shapes: ``N`` tracks, ``T`` frames. ``tracks [N, T, 2]`` (x, y) px, ``visibility [N, T]`` bool.

1. :func:`vote_labels` smooths the classifier's per-track labels in every frame with the labels of
   the point's ``k`` nearest visible neighbours. A mislabelled point among correctly labelled ones
   is outvoted, and a track that drifts off its object is judged by its new surroundings.
2. :func:`group_tracks` links moving tracks that are near each other and move alike in the frames
   they share, takes connected components as objects, drops components too small to be more than
   noise and merges components that stay close and move together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

log = logging.getLogger(__name__)


def vote_labels(
    tracks: np.ndarray,
    visibility: np.ndarray,
    score: np.ndarray,
    k: int = 8,
    max_dist: float = 40.0,
) -> np.ndarray:
    """Per-frame neighbourhood vote of a per-track moving score.

    Args:
        tracks: [N, T, 2] px. visibility: [N, T] bool.
        score: [N] float in [0, 1], the classifier's moving decision (or probability) per track.
        k: neighbours in the vote, the point itself included; ``k <= 1`` turns voting off.
        max_dist: neighbours farther than this (px) do not vote.

    Returns:
        [N, T] float32: the mean score of each visible point's neighbourhood (NaN where the
        point is not visible).
    """
    N, T = visibility.shape
    out = np.full((N, T), np.nan, dtype=np.float32)
    score = np.asarray(score, dtype=np.float32)
    for t in range(T):
        idx = np.flatnonzero(visibility[:, t])
        if idx.size == 0:
            continue
        s = score[idx]
        kk = min(k, idx.size)
        if kk <= 1:
            out[idx, t] = s
            continue
        tree = cKDTree(tracks[idx, t])
        dist, nn = tree.query(tracks[idx, t], k=kk, distance_upper_bound=max_dist)
        valid = np.isfinite(dist)  # the point itself is always valid (distance 0)
        nn = np.where(valid, nn, 0)
        out[idx, t] = (s[nn] * valid).sum(1) / valid.sum(1)
    return out


def velocities(tracks: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """[N, T, 2] px/frame: central difference where both neighbours are visible, else the one
    visible one-sided difference, else NaN."""
    N, T = visibility.shape
    v = np.full((N, T, 2), np.nan, dtype=np.float32)
    if T < 2:
        return v
    d = tracks[:, 1:] - tracks[:, :-1]  # [N, T-1, 2]
    ok = visibility[:, 1:] & visibility[:, :-1]
    d = np.where(ok[..., None], d, np.nan)
    fwd = np.concatenate([d, np.full((N, 1, 2), np.nan, np.float32)], axis=1)
    bwd = np.concatenate([np.full((N, 1, 2), np.nan, np.float32), d], axis=1)
    both = np.isfinite(fwd[..., 0]) & np.isfinite(bwd[..., 0])
    v = np.where(both[..., None], 0.5 * (fwd + bwd), np.where(np.isfinite(fwd), fwd, bwd))
    v[~visibility] = np.nan
    return v.astype(np.float32)


@dataclass
class Grouping:
    """``object_id [N]`` int: 0 for tracks in no object, 1..K otherwise (largest object first).
    ``sizes [K]``: tracks per object."""

    object_id: np.ndarray
    sizes: np.ndarray

    @property
    def num_objects(self) -> int:
        return int(self.sizes.size)


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    return comp


def group_tracks(
    tracks: np.ndarray,
    visibility: np.ndarray,
    candidate: np.ndarray,
    radius: float = 20.0,
    vel_abs: float = 2.0,
    vel_rel: float = 0.3,
    min_tracks: int = 10,
    min_points: float = 4.0,
    merge_radius: float = 40.0,
) -> Grouping:
    """Group the candidate (moving) tracks into objects.

    Two candidates are linked when, over the frames where both are visible, they are within
    ``radius`` px of each other more often with similar velocity than with different velocity
    (``|v_i - v_j| <= vel_abs + vel_rel * max(|v_i|, |v_j|)``, px/frame). Objects are the
    connected components of the links. A component is noise when it has fewer than
    ``min_tracks`` tracks or fewer than ``min_points`` points in the median frame it appears in.
    Two kept components are merged when, in most frames they share, they come within
    ``merge_radius`` px and their median velocities agree.

    Args:
        tracks: [N, T, 2] px. visibility: [N, T] bool. candidate: [N] bool.

    Returns:
        :class:`Grouping` with ``object_id [N]``.
    """
    N, T = visibility.shape
    object_id = np.zeros(N, dtype=np.int32)
    cand = np.flatnonzero(candidate)
    if cand.size == 0:
        return Grouping(object_id, np.zeros(0, dtype=np.int64))
    tr = tracks[cand]
    vis = visibility[cand]
    vel = velocities(tr, vis)
    n = cand.size

    keys, votes = [], []
    for t in range(T):
        idx = np.flatnonzero(vis[:, t])
        if idx.size < 2:
            continue
        pairs = cKDTree(tr[idx, t]).query_pairs(radius, output_type="ndarray")
        if pairs.size == 0:
            continue
        a, b = idx[pairs[:, 0]], idx[pairs[:, 1]]
        va, vb = vel[a, t], vel[b, t]
        known = np.isfinite(va[:, 0]) & np.isfinite(vb[:, 0])
        diff = np.linalg.norm(va - vb, axis=1)
        scale = np.maximum(np.linalg.norm(va, axis=1), np.linalg.norm(vb, axis=1))
        agree = ~known | (diff <= vel_abs + vel_rel * scale)  # unknown velocity: proximity only
        keys.append(a.astype(np.int64) * n + b)
        votes.append(np.where(agree, 1, -1).astype(np.int32))
    if keys:
        key = np.concatenate(keys)
        uniq, inv = np.unique(key, return_inverse=True)
        net = np.bincount(inv, weights=np.concatenate(votes))
        linked = uniq[net > 0]
        comp = _components(n, linked // n, linked % n)
    else:
        comp = np.arange(n)

    # noise: too few tracks, or too few points per frame
    labels = np.unique(comp)
    kept = []
    for c in labels:
        members = comp == c
        if members.sum() < min_tracks:
            continue
        per_frame = vis[members].sum(0)
        if np.median(per_frame[per_frame > 0]) < min_points:
            continue
        kept.append(c)
    if not kept:
        log.debug("grouping: %d candidates, no component large enough", n)
        return Grouping(object_id, np.zeros(0, dtype=np.int64))

    # merge kept components that stay close and move alike
    K = len(kept)
    member = [comp == c for c in kept]
    close = np.zeros((K, K), dtype=np.int32)
    shared = np.zeros((K, K), dtype=np.int32)
    for t in range(T):
        present = [g for g in range(K) if vis[member[g], t].any()]
        if len(present) < 2:
            continue
        pts = {g: tr[member[g] & vis[:, t], t] for g in present}
        med_v = {}
        for g in present:
            vg = vel[member[g] & vis[:, t], t]
            vg = vg[np.isfinite(vg[:, 0])]
            med_v[g] = np.median(vg, axis=0) if len(vg) else None
        trees = {g: cKDTree(pts[g]) for g in present}
        for ia, ga in enumerate(present):
            for gb in present[ia + 1 :]:
                shared[ga, gb] += 1
                d, _ = trees[gb].query(pts[ga], k=1, distance_upper_bound=merge_radius)
                if not np.isfinite(d).any():
                    continue
                va, vb = med_v[ga], med_v[gb]
                if va is not None and vb is not None:
                    scale = max(np.linalg.norm(va), np.linalg.norm(vb))
                    if np.linalg.norm(va - vb) > vel_abs + vel_rel * scale:
                        continue
                close[ga, gb] += 1
    ii, jj = np.nonzero((close * 2 > shared) & (shared > 0))
    merged = _components(K, ii, jj)

    groups = [
        np.flatnonzero(np.isin(comp, np.asarray(kept)[merged == m])) for m in np.unique(merged)
    ]
    groups.sort(key=lambda g: (-g.size, int(g[0])))  # deterministic order: largest first
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    for obj, g in enumerate(groups, start=1):
        object_id[cand[g]] = obj
    log.debug("grouping: %d candidates -> %d objects %s", n, len(groups), sizes.tolist())
    return Grouping(object_id, sizes)


def select_groups(visibility: np.ndarray, grouping: Grouping, keep_ratio: float) -> Grouping:
    """Keep the primary object and the objects of comparable weight; drop the rest.

    An object's weight is its point mass: the number of visible points of its tracks summed
    over the video (a large, persistent object has a large mass; spray, water glints and
    parallax patches that are picked up in a few frames have a small one). Objects whose mass
    is below ``keep_ratio`` times the largest mass are dropped; ``keep_ratio <= 0`` keeps all.
    The kept objects are renumbered 1..K' in their previous order (largest first).

    Args:
        visibility: [N, T] bool. grouping: from :func:`group_tracks`. keep_ratio: in [0, 1].
    """
    K = grouping.num_objects
    if keep_ratio <= 0 or K <= 1:
        return grouping
    mass = np.bincount(grouping.object_id, weights=visibility.sum(1), minlength=K + 1)[1:]
    kept = np.flatnonzero(mass >= keep_ratio * mass.max()) + 1
    new_id = np.zeros(K + 1, dtype=np.int32)
    new_id[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
    log.debug("select_groups: masses %s, kept %s", mass.astype(int).tolist(), kept.tolist())
    return Grouping(new_id[grouping.object_id], grouping.sizes[kept - 1])
