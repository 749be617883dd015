"""DAVIS region similarity (J), boundary accuracy (F) and their per-sequence statistics.

Pure numpy (plus OpenCV and scikit-image for the boundary dilation, the same operations the
official evaluators use). Every function reproduces the value of the official DAVIS evaluators
(davisvideochallenge/davis2017-evaluation ``davis2017/metrics.py`` and ``davis2017/utils.py``,
and the DAVIS 2016 toolkit ``python/lib/davis``) bit for bit; docs/metrics.md lists the rules.

Conventions: masks are ``[..., H, W]`` arrays, any non-zero value is "inside" (they are cast to
bool); ``T`` is the number of frames. ``void`` marks pixels that count for neither side: they are
removed from both masks before the region and the boundaries are computed.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage.morphology import disk

log = logging.getLogger(__name__)

DEFAULT_BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal
RECALL_THRESHOLD = 0.5  # a frame is "recalled" when its score is strictly above this
DECAY_BINS = 4
_TIE_BREAK = 1e-10  # added before rounding the decay bin edges, as the official code does
_UINT8_WRAP = 256

__all__ = [
    "DEFAULT_BOUND_TH",
    "Stats",
    "boundary_f",
    "boundary_tolerance",
    "decay_bin_edges",
    "pairwise_scores",
    "region_iou",
    "seg_to_boundary",
    "statistics",
]


@dataclass(frozen=True)
class Stats:
    """Summary of per-frame scores: mean, recall (fraction of frames > 0.5) and decay."""

    mean: float
    recall: float
    decay: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# input checks


def _as_masks(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{what} must be [..., H, W], got shape {a.shape}")
    return a.astype(bool, copy=False)


def _check_pair(gt, pred, void) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    gt = _as_masks(gt, "gt")
    pred = _as_masks(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"gt {gt.shape} and pred {pred.shape} shapes differ")
    if void is not None:
        void = _as_masks(void, "void")
        if void.shape != gt.shape:
            raise ValueError(f"void {void.shape} and gt {gt.shape} shapes differ")
    return gt, pred, void


# --------------------------------------------------------------------------------------------
# J: region similarity


def region_iou(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """Jaccard index of two masks per frame.

    Args:
        gt: ``[..., H, W]`` ground-truth mask (bool; non-zero is inside), e.g. ``[T, H, W]``.
        pred: predicted mask, same shape.
        void: optional ``[..., H, W]`` bool, pixels excluded from both masks.

    Returns:
        ``[...]`` float64 (``[T]`` for ``[T, H, W]`` input, 0-d for one frame):
        ``|gt & pred| / |gt | pred|`` over the non-void pixels, 1.0 where that union is empty
        (both masks empty counts as a perfect frame).
    """
    gt, pred, void = _check_pair(gt, pred, void)
    both = gt & pred
    either = gt | pred
    if void is not None:
        keep = ~void
        both &= keep
        either &= keep
    inter = np.count_nonzero(both, axis=(-2, -1))
    union = np.count_nonzero(either, axis=(-2, -1))
    out = np.ones(np.shape(union), dtype=np.float64)
    nonempty = union > 0
    out[nonempty] = inter[nonempty] / union[nonempty]
    return out


# --------------------------------------------------------------------------------------------
# F: boundary accuracy


def seg_to_boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask, DAVIS / BSDS style.

    A pixel is on the boundary when its value differs from its right, lower or lower-right
    neighbour (pixels outside the image count as 0). The boundary therefore lies half a pixel
    towards the origin: a square's outline includes the column and row just before it and its own
    last column and row. The image border is special: in the last row only the right
    neighbour is compared, in the last column only the lower one, and the bottom-right pixel is
    never a boundary, so an object touching the right or bottom border has no boundary along it.

    Args:
        mask: ``[..., H, W]`` (non-zero is inside).

    Returns:
        ``[..., H, W]`` bool.
    """
    seg = _as_masks(mask, "mask")
    out = np.zeros(seg.shape, dtype=bool)
    here = seg[..., :-1, :-1]
    out[..., :-1, :-1] = (
        (here != seg[..., :-1, 1:]) | (here != seg[..., 1:, :-1]) | (here != seg[..., 1:, 1:])
    )
    out[..., -1, :-1] = seg[..., -1, :-1] != seg[..., -1, 1:]  # last row: right neighbour only
    out[..., :-1, -1] = seg[..., :-1, -1] != seg[..., 1:, -1]  # last column: lower neighbour only
    return out  # the bottom-right pixel stays False


def boundary_tolerance(height: int, width: int, bound_th: float = DEFAULT_BOUND_TH) -> float:
    """Matching distance in pixels: ``bound_th`` itself when >= 1, else
    ``ceil(bound_th * sqrt(H^2 + W^2))`` (8 px at 480 x 854 with the default 0.008)."""
    if bound_th >= 1:
        return bound_th
    return float(np.ceil(bound_th * np.linalg.norm((height, width))))


@functools.lru_cache(maxsize=16)
def _dilation_kernel(radius: float) -> np.ndarray:
    return disk(radius).astype(np.uint8)


def _dilate(boundary: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Binary dilation of one ``[H, W]`` map with ``kernel`` (OpenCV, as the official code)."""
    return cv2.dilate(boundary.astype(np.uint8), kernel).astype(bool)


def _f_from_counts(
    n_pred: np.ndarray, n_gt: np.ndarray, pred_hits: np.ndarray, gt_hits: np.ndarray
) -> np.ndarray:
    """Boundary F-measure from counts (all broadcastable arrays of ints).

    ``n_pred``/``n_gt``: boundary pixels of each side; ``pred_hits``: predicted boundary pixels
    within the tolerance of the ground-truth boundary; ``gt_hits``: the converse.
    Precision is ``pred_hits / n_pred`` and 1 when the prediction has no boundary; recall is
    ``gt_hits / n_gt`` and 1 when the ground truth has none. With an empty side the hits on the
    other side are 0, so this gives the official table: both empty P = R = 1 (F = 1); only the
    prediction empty P = 1, R = 0; only the ground truth empty P = 0, R = 1 (F = 0 in both).
    F = 2PR / (P + R), and 0 when P + R = 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, pred_hits / np.maximum(n_pred, 1), 1.0)
        recall = np.where(n_gt > 0, gt_hits / np.maximum(n_gt, 1), 1.0)
        total = precision + recall
        f = np.where(total == 0, 0.0, 2 * precision * recall / total)
    return f.astype(np.float64)


def boundary_f(
    gt: np.ndarray,
    pred: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
) -> np.ndarray:
    """Boundary F-measure per frame.

    Both masks lose their void pixels, are turned into boundary maps (:func:`seg_to_boundary`),
    and a boundary pixel of one side matches when a boundary pixel of the other lies within
    ``skimage.morphology.disk(r)`` of it, ``r = boundary_tolerance(H, W, bound_th)``.

    Args:
        gt: ``[..., H, W]`` ground-truth mask, e.g. ``[T, H, W]`` bool.
        pred: predicted mask, same shape.
        void: optional ``[..., H, W]`` bool, pixels removed from both masks.
        bound_th: tolerance, a fraction of the image diagonal (< 1) or pixels (>= 1).

    Returns:
        ``[...]`` float64 in [0, 1]: 1 where both boundaries are empty, 0 where only one is.
    """
    gt, pred, void = _check_pair(gt, pred, void)
    if void is not None:
        gt = gt & ~void
        pred = pred & ~void
    lead = gt.shape[:-2]
    height, width = gt.shape[-2:]
    kernel = _dilation_kernel(boundary_tolerance(height, width, bound_th))
    gt_b = seg_to_boundary(gt).reshape(-1, height, width)
    pred_b = seg_to_boundary(pred).reshape(-1, height, width)
    n = gt_b.shape[0]
    counts = np.zeros((4, n), dtype=np.int64)  # n_pred, n_gt, pred_hits, gt_hits
    for i in range(n):
        counts[0, i] = np.count_nonzero(pred_b[i])
        counts[1, i] = np.count_nonzero(gt_b[i])
        if counts[0, i] and counts[1, i]:
            counts[2, i] = np.count_nonzero(pred_b[i] & _dilate(gt_b[i], kernel))
            counts[3, i] = np.count_nonzero(gt_b[i] & _dilate(pred_b[i], kernel))
    return _f_from_counts(*counts).reshape(lead)


# --------------------------------------------------------------------------------------------
# all (prediction, ground truth) pairs of two label maps at once


@dataclass
class _ObjectBoundary:
    """Boundary pixels of one object in one frame, and its dilation on a window of the frame."""

    ys: np.ndarray  # boundary pixel rows, frame coordinates
    xs: np.ndarray  # boundary pixel columns
    y0: int = 0  # top-left corner of the window holding ``dilated``
    x0: int = 0
    dilated: np.ndarray | None = None  # dilated boundary (bool) on the window, None if empty

    def hits(self, ys: np.ndarray, xs: np.ndarray) -> int:
        """How many of the pixels ``(ys, xs)`` lie within this object's dilated boundary."""
        if self.dilated is None or ys.size == 0:
            return 0
        h, w = self.dilated.shape
        yy = ys - self.y0
        xx = xs - self.x0
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        return int(np.count_nonzero(self.dilated[yy[inside], xx[inside]]))


_NO_BOUNDARY = _ObjectBoundary(np.zeros(0, np.int64), np.zeros(0, np.int64))


def _object_boundaries(labels: np.ndarray, num: int, kernel: np.ndarray) -> list[_ObjectBoundary]:
    """Boundary and dilated boundary of objects ``1..num`` of an ``[H, W]`` label map.

    Works on each object's bounding box, grown by one pixel on each side: the boundary of a pixel
    depends only on its right and lower neighbours, and the extra row and column are either the
    frame's own last ones or free of the object, so the result equals the full-frame one. The
    dilation runs on that box grown by the kernel size, outside which it is zero.
    """
    height, width = labels.shape
    margin = kernel.shape[0]
    out: list[_ObjectBoundary] = []
    for k, box in enumerate(ndimage.find_objects(labels, max_label=num), start=1):
        if box is None:
            out.append(_NO_BOUNDARY)
            continue
        y0, y1 = max(box[0].start - 1, 0), min(box[0].stop + 1, height)
        x0, x1 = max(box[1].start - 1, 0), min(box[1].stop + 1, width)
        by, bx = np.nonzero(seg_to_boundary(labels[y0:y1, x0:x1] == k))
        if by.size == 0:  # e.g. an object covering the whole frame
            out.append(_NO_BOUNDARY)
            continue
        wy0, wy1 = max(y0 - margin, 0), min(y1 + margin, height)
        wx0, wx1 = max(x0 - margin, 0), min(x1 + margin, width)
        window = np.zeros((wy1 - wy0, wx1 - wx0), dtype=np.uint8)
        window[by + (y0 - wy0), bx + (x0 - wx0)] = 1
        dilated = cv2.dilate(window, kernel).astype(bool)
        out.append(_ObjectBoundary(by + y0, bx + x0, wy0, wx0, dilated))
    return out


def pairwise_scores(
    gt_index: np.ndarray,
    pred_index: np.ndarray,
    num_gt: int,
    num_pred: int,
    void: np.ndarray | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of every (predicted object, ground-truth object) pair, per frame.

    Equal to calling :func:`region_iou` and :func:`boundary_f` on each pair of object masks, but
    each object's boundary and its dilation are computed once per frame (on its bounding box)
    instead of once per pair, and the overlaps come from one histogram of the two label maps.

    Args:
        gt_index: ``[T, H, W]`` int, ``k`` in ``1..num_gt`` marks ground-truth object ``k``, 0 no
            object (void pixels may carry any value; they are removed).
        pred_index: ``[T, H, W]`` int, ``1..num_pred`` predicted objects, 0 none. Ids above
            ``num_pred`` are not allowed; ids without pixels are empty objects.
        num_gt, num_pred: number of objects on each side.
        void: optional ``[T, H, W]`` bool, pixels removed from every mask.
        bound_th: boundary tolerance (see :func:`boundary_tolerance`).

    Returns:
        ``(J, F)``, each ``[num_pred, num_gt, T]`` float64.
    """
    gt_index = np.asarray(gt_index)
    pred_index = np.asarray(pred_index)
    if gt_index.ndim != 3 or gt_index.shape != pred_index.shape:
        raise ValueError(
            f"label maps must be [T, H, W] of one shape: {gt_index.shape}, {pred_index.shape}"
        )
    for what, a in (("gt_index", gt_index), ("pred_index", pred_index)):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise ValueError(f"{what} must hold integer ids, got {a.dtype}")
    if void is not None:
        void = np.asarray(void, dtype=bool)
        if void.shape != gt_index.shape:
            raise ValueError(f"void {void.shape} and label maps {gt_index.shape} shapes differ")
    num_frames, height, width = gt_index.shape
    if gt_index.size and (gt_index.min() < 0 or gt_index.max() > num_gt):
        raise ValueError(f"gt_index values must lie in 0..{num_gt}")
    if pred_index.size and (pred_index.min() < 0 or pred_index.max() > num_pred):
        raise ValueError(f"pred_index values must lie in 0..{num_pred}")
    kernel = _dilation_kernel(boundary_tolerance(height, width, bound_th))
    j = np.zeros((num_pred, num_gt, num_frames), dtype=np.float64)
    f = np.zeros((num_pred, num_gt, num_frames), dtype=np.float64)
    for t in range(num_frames):
        g = gt_index[t].astype(np.int64)
        p = pred_index[t].astype(np.int64)
        if void is not None:  # void pixels belong to no object on either side
            g[void[t]] = 0
            p[void[t]] = 0

        # J: the joint histogram of the two label maps holds every intersection
        joint = np.bincount((p * (num_gt + 1) + g).ravel(), minlength=(num_pred + 1) * (num_gt + 1))
        joint = joint.reshape(num_pred + 1, num_gt + 1)
        inter = joint[1:, 1:]
        union = joint[1:, :].sum(axis=1)[:, None] + joint[:, 1:].sum(axis=0)[None, :] - inter
        jt = np.ones((num_pred, num_gt), dtype=np.float64)
        nonempty = union > 0
        jt[nonempty] = inter[nonempty] / union[nonempty]
        j[:, :, t] = jt

        # F: boundaries and dilations once per object, then counts per pair
        gts = _object_boundaries(g, num_gt, kernel)
        preds = _object_boundaries(p, num_pred, kernel)
        n_gt = np.array([o.ys.size for o in gts], dtype=np.int64)
        n_pred = np.array([o.ys.size for o in preds], dtype=np.int64)
        pred_hits = np.zeros((num_pred, num_gt), dtype=np.int64)
        gt_hits = np.zeros((num_pred, num_gt), dtype=np.int64)
        for a, po in enumerate(preds):
            for b, go in enumerate(gts):
                pred_hits[a, b] = go.hits(po.ys, po.xs)
                gt_hits[a, b] = po.hits(go.ys, go.xs)
        f[:, :, t] = _f_from_counts(n_pred[:, None], n_gt[None, :], pred_hits, gt_hits)
    return j, f


# --------------------------------------------------------------------------------------------
# statistics over frames


def decay_bin_edges(num_frames: int, official_decay_bins: bool = False) -> np.ndarray:
    """Edges of the 4 temporal bins used by the decay, ``[5]`` int64 frame indices.

    ``round(linspace(1, n, 5) + 1e-10) - 1``; bin ``i`` spans frames ``e[i] .. e[i+1]``
    (inclusive, so neighbouring bins share their edge frame). The official code stores the
    edges as uint8, so from 257 frames on they wrap modulo 256; ``official_decay_bins=True``
    reproduces that (e.g. 300 frames: ``[0, 75, 150, 224, 43]`` instead of ``[0, 75, 150, 224,
    299]``).
    """
    if num_frames < 1:
        raise ValueError(f"need at least one frame, got {num_frames}")
    edges = np.round(np.linspace(1, num_frames, DECAY_BINS + 1) + _TIE_BREAK) - 1
    edges = edges.astype(np.int64)
    if official_decay_bins:
        edges = edges % _UINT8_WRAP
    return edges


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():  # empty or all-NaN input gives NaN, silently
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values))


def statistics(values: np.ndarray, official_decay_bins: bool = False) -> Stats:
    """Mean, recall and decay of per-frame scores, as the official ``db_statistics``.

    Args:
        values: ``[T]`` per-frame J or F (NaN entries are ignored by the means, and count as
            not recalled, as in the official code).
        official_decay_bins: wrap the bin edges modulo 256 like the official uint8 cast
            (matters only from 257 frames on; then the official decay is wrong or NaN).

    Returns:
        :class:`Stats`: ``mean`` = nanmean; ``recall`` = fraction of frames with a score
        strictly above 0.5; ``decay`` = mean of the first of 4 temporal bins minus mean of the
        last (see :func:`decay_bin_edges`); positive when quality drops over time.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty [T] array, got shape {values.shape}")
    edges = decay_bin_edges(values.size, official_decay_bins)
    # a bin ends one past its last edge frame (no wrap there: numpy 1.x, which the official
    # code requires, promotes uint8 + 1 to int64)
    first = values[edges[0] : edges[1] + 1]
    last = values[edges[DECAY_BINS - 1] : edges[DECAY_BINS] + 1]
    return Stats(
        mean=_nanmean(values),
        recall=float(np.mean(values > RECALL_THRESHOLD)),
        decay=_nanmean(first) - _nanmean(last),
    )
