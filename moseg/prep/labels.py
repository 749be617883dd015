"""Track labels from instance masks: the rule every mask-based converter shares.

A track takes the object id under its query-frame position (its one exact point: trackers return
the query point there). It is moving if that object moves (``object_moving[id]``; for datasets whose
masks show only moving objects, any id > 0 moves), static on background, and unknown (-1, ignored by
the loss) on void pixels, on unannotated frames and, optionally, within a few pixels of an object
boundary, where a one-pixel position error flips the answer.
"""

from __future__ import annotations

import cv2
import numpy as np

from moseg.io.contract import LABEL_MOVING, LABEL_STATIC, LABEL_UNKNOWN, MASK_VOID


def label_from_masks(
    tracks: np.ndarray,
    query_frame: np.ndarray,
    masks: np.ndarray,
    object_moving: np.ndarray | None = None,
    ignore_boundary_px: int = 0,
    annotated: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``[N] int8`` and instance ids ``[N] int32`` of ``tracks [N, T, 2]``.

    ``masks [T, H, W] uint8`` are instance masks in the tracks' pixel frame (0 background, 255
    void). ``annotated [T] bool`` marks frames that have ground truth (default: all).
    """
    n = len(query_frame)
    T, H, W = masks.shape
    if tracks.shape[:2] != (n, T):
        raise ValueError(f"tracks {tracks.shape} do not match {n} queries and {T} mask frames")
    q = query_frame.astype(np.int64)
    xy = tracks[np.arange(n), q]
    xi = np.clip(np.rint(xy[:, 0]), 0, W - 1).astype(np.int64)
    yi = np.clip(np.rint(xy[:, 1]), 0, H - 1).astype(np.int64)
    inst = masks[q, yi, xi].astype(np.int32)
    if object_moving is None:
        moving = (inst > 0) & (inst != MASK_VOID)
    else:
        om = np.zeros(256, bool)
        om[: len(object_moving)] = object_moving
        moving = om[inst]
    label = np.where(moving, LABEL_MOVING, LABEL_STATIC).astype(np.int8)
    unknown = inst == MASK_VOID
    if annotated is not None:
        unknown |= ~np.asarray(annotated, bool)[q]
    if ignore_boundary_px > 0:
        unknown |= near_boundary(masks, q, yi, xi, ignore_boundary_px)
    label[unknown] = LABEL_UNKNOWN
    return label, inst


def near_boundary(
    masks: np.ndarray, frame: np.ndarray, yi: np.ndarray, xi: np.ndarray, radius: int
) -> np.ndarray:
    """True where a pixel of another id lies within ``radius`` px (square window)."""
    out = np.zeros(len(frame), bool)
    k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    for t in np.unique(frame):
        m = masks[t]
        mixed = cv2.dilate(m, k) != cv2.erode(m, k)  # max != min in the window
        sel = frame == t
        out[sel] = mixed[yi[sel], xi[sel]]
    return out
