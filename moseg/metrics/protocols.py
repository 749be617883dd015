"""Evaluation protocols on label maps: moving-object segmentation (MOS) and fine-grained.

A protocol is data (:class:`Protocol`), not a code path per benchmark: both protocols run the
same steps, and only the parameters differ.

1. Ground-truth objects: the merged foreground (``merge_objects=True``, MOS), or one object per
   id (``gt_objects="present"``: every id in 1..254 found in the sequence; ``"first_frame_max"``:
   ids ``1..max(first frame)``, what davis2017-evaluation does).
2. Predicted objects: the merged foreground (MOS: every non-zero value), or ids ``1..max(pred)``
   (more than ``max_objects`` is an error), padded with empty objects up to the number of
   ground-truth objects, as davis2017-evaluation does.
3. J and F of every (prediction, ground truth) pair per frame; Hungarian matching
   (``scipy.optimize.linear_sum_assignment``) maximising the mean over frames of (J + F) / 2.
4. Per matched ground-truth object: mean, recall and decay of J and F. The sequence score is the
   mean of those over its objects; :func:`aggregate` averages over all objects of all sequences
   (for MOS, one object per sequence: the mean over sequences), as the official global table.

Label maps are ``[T, H, W]`` uint8 (any integer dtype works): 0 background, 1..254 object ids,
255 void in the ground truth. See docs/metrics.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from moseg.metrics.davis import DEFAULT_BOUND_TH, Stats, pairwise_scores, statistics

log = logging.getLogger(__name__)

# the ground-truth value of "do not evaluate" pixels (equals moseg.io.contract.MASK_VOID)
VOID_LABEL = 255
DEFAULT_MAX_OBJECTS = 20  # davis2017-evaluation's max_n_proposals

VoidMode = Literal["exclude", "background"]
GtObjects = Literal["present", "first_frame_max"]

__all__ = [
    "DEFAULT_MAX_OBJECTS",
    "PROTOCOLS",
    "VOID_LABEL",
    "ObjectScore",
    "Protocol",
    "SequenceScore",
    "ShapeMismatchError",
    "TooManyObjectsError",
    "aggregate",
    "evaluate_sequence",
    "get_protocol",
]


class ShapeMismatchError(ValueError):
    """The prediction's frame count or frame size differs from the ground truth's."""


class TooManyObjectsError(ValueError):
    """A fine-grained prediction uses an object id above ``max_objects``."""


@dataclass(frozen=True)
class Protocol:
    """Parameters of an evaluation protocol.

    Attributes:
        name: label stored in the scores.
        merge_objects: True: all ground-truth ids form one object and all predicted ids another
            (MOS). False: objects are matched one to one (fine-grained).
        skip_first_last: evaluate frames ``1 .. T-2`` only (DAVIS 2016 toolkit, and
            davis2017-evaluation's semi-supervised task); the per-frame arrays keep length T
            with NaN at the skipped frames.
        max_objects: largest predicted id allowed when not merging (davis2017-evaluation: 20).
        official_decay_bins: wrap the decay bin edges modulo 256 as the official uint8 cast does.
        void: ``"exclude"``: ground-truth void pixels (255) are removed from both masks before J
            and F; ``"background"``: they count as background.
        gt_objects: ``"present"``: one ground-truth object per id present anywhere in the
            sequence; ``"first_frame_max"``: ids ``1..max`` of the first frame (ids beyond it
            are ignored, missing ones are empty objects), as davis2017-evaluation.
        bound_th: boundary tolerance, fraction of the image diagonal (< 1) or pixels (>= 1).
    """

    name: str
    merge_objects: bool
    skip_first_last: bool = False
    max_objects: int = DEFAULT_MAX_OBJECTS
    official_decay_bins: bool = False
    void: VoidMode = "exclude"
    gt_objects: GtObjects = "present"
    bound_th: float = DEFAULT_BOUND_TH

    def __post_init__(self) -> None:
        if self.void not in ("exclude", "background"):
            raise ValueError(f"void must be 'exclude' or 'background', got {self.void!r}")
        if self.gt_objects not in ("present", "first_frame_max"):
            raise ValueError(
                f"gt_objects must be 'present' or 'first_frame_max', got {self.gt_objects!r}"
            )
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")
        if self.bound_th <= 0:
            raise ValueError(f"bound_th must be > 0, got {self.bound_th}")


PROTOCOLS: dict[str, Protocol] = {
    # the project's protocols: every frame, correct decay, void excluded
    "mos": Protocol("mos", merge_objects=True),
    "fine_grained": Protocol("fine_grained", merge_objects=False),
    # exact reproductions of the official tools (docs/metrics.md)
    "davis2016_toolkit": Protocol(
        "davis2016_toolkit", merge_objects=True, skip_first_last=True, official_decay_bins=True
    ),
    "davis2017_unsupervised": Protocol(
        "davis2017_unsupervised",
        merge_objects=False,
        official_decay_bins=True,
        gt_objects="first_frame_max",
    ),
}


def get_protocol(protocol: str | Protocol = "mos", **overrides: Any) -> Protocol:
    """A protocol by name (a key of :data:`PROTOCOLS`) or as given, with some fields replaced.

    ``overrides`` whose value is None are ignored, so optional arguments can be passed through.
    """
    if isinstance(protocol, str):
        try:
            protocol = PROTOCOLS[protocol]
        except KeyError:
            raise ValueError(f"unknown protocol {protocol!r}; known: {sorted(PROTOCOLS)}") from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(protocol, **changes) if changes else protocol


# --------------------------------------------------------------------------------------------
# results


def _json_float(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _json_stats(s: Stats) -> dict[str, float | None]:
    return {k: _json_float(v) for k, v in s.to_dict().items()}


def _json_frames(a: np.ndarray) -> list[float | None]:
    return [_json_float(v) for v in a]


@dataclass
class ObjectScore:
    """Scores of one ground-truth object and the prediction matched to it.

    Attributes:
        gt_ids: ground-truth ids forming the object (one id, or all merged ids for MOS).
        pred_ids: predicted ids forming the matched prediction; empty when it was matched to a
            padding object (an empty mask) or when the prediction has no object at all.
        j, f: statistics over the evaluated frames.
        j_per_frame, f_per_frame: ``[T]`` float64, NaN at frames not evaluated.
    """

    gt_ids: tuple[int, ...]
    pred_ids: tuple[int, ...]
    j: Stats
    f: Stats
    j_per_frame: np.ndarray
    f_per_frame: np.ndarray

    @property
    def jf(self) -> float:
        return (self.j.mean + self.f.mean) / 2

    def to_dict(self, per_frame: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gt_ids": list(self.gt_ids),
            "pred_ids": list(self.pred_ids),
            "J&F": _json_float(self.jf),
            "J": _json_stats(self.j),
            "F": _json_stats(self.f),
        }
        if per_frame:
            out["J_per_frame"] = _json_frames(self.j_per_frame)
            out["F_per_frame"] = _json_frames(self.f_per_frame)
        return out


@dataclass
class SequenceScore:
    """Scores of one sequence.

    Attributes:
        name: sequence name.
        protocol: the :class:`Protocol` used.
        num_frames: T, frames in the sequence (evaluated or not).
        evaluated_frames: ``[T]`` bool, frames that count.
        j, f: mean over objects of the per-object statistics (one object for MOS; NaN when the
            sequence has no ground-truth object under the fine-grained protocol).
        jf: ``(j.mean + f.mean) / 2``.
        j_per_frame, f_per_frame: ``[T]`` float64, mean over objects per frame, NaN at frames
            not evaluated.
        objects: per-object scores, in the order the official evaluator lists them (by matched
            prediction), which :func:`aggregate` follows.
    """

    name: str
    protocol: Protocol
    num_frames: int
    evaluated_frames: np.ndarray
    j: Stats
    f: Stats
    j_per_frame: np.ndarray
    f_per_frame: np.ndarray
    objects: list[ObjectScore] = field(default_factory=list)

    @property
    def jf(self) -> float:
        return (self.j.mean + self.f.mean) / 2

    def to_dict(self, per_frame: bool = True) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        out: dict[str, Any] = {
            "name": self.name,
            "protocol": dataclasses.asdict(self.protocol),
            "num_frames": self.num_frames,
            "num_evaluated_frames": int(np.count_nonzero(self.evaluated_frames)),
            "J&F": _json_float(self.jf),
            "J": _json_stats(self.j),
            "F": _json_stats(self.f),
        }
        if per_frame:
            out["J_per_frame"] = _json_frames(self.j_per_frame)
            out["F_per_frame"] = _json_frames(self.f_per_frame)
        out["objects"] = [o.to_dict(per_frame) for o in self.objects]
        return out


# --------------------------------------------------------------------------------------------
# evaluation


def _check_labels(a: np.ndarray, what: str, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3:
        raise ValueError(f"sequence {name!r}: {what} must be a [T, H, W] label map, got {a.shape}")
    if a.dtype == bool:
        return a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"sequence {name!r}: {what} must hold integer ids, got {a.dtype}")
    if a.size and a.min() < 0:
        raise ValueError(f"sequence {name!r}: {what} has negative ids")
    return a


def _gt_object_ids(gt: np.ndarray, void: np.ndarray, mode: GtObjects) -> list[int]:
    """Ground-truth object ids, computed on the whole sequence."""
    if mode == "first_frame_max":
        first = gt[0][~void[0]]
        return list(range(1, int(first.max()) + 1)) if first.size else []
    return list(_present(gt, skip=(0, VOID_LABEL)))


def _present(labels: np.ndarray, skip: tuple[int, ...] = (0,)) -> tuple[int, ...]:
    """Ids found in ``labels``, ascending, without those in ``skip``."""
    if labels.size == 0:
        return ()
    if labels.dtype.itemsize <= 2 and labels.dtype.kind in "ub":  # a lookup table is fastest
        seen = np.zeros(1 << (8 * labels.dtype.itemsize), dtype=bool)
        seen[labels.ravel()] = True
        ids = np.flatnonzero(seen)
    else:
        ids = np.unique(labels)
    return tuple(int(i) for i in ids if i not in skip)


def evaluate_sequence(
    gt_labels: np.ndarray,
    pred_labels: np.ndarray,
    protocol: str | Protocol = "mos",
    *,
    name: str = "sequence",
    skip_first_last: bool | None = None,
    max_objects: int | None = None,
    official_decay_bins: bool | None = None,
    void: VoidMode | None = None,
    gt_objects: GtObjects | None = None,
    bound_th: float | None = None,
) -> SequenceScore:
    """Score one sequence.

    Args:
        gt_labels: ``[T, H, W]`` uint8 ground truth: 0 background, 1..254 objects, 255 void.
        pred_labels: ``[T, H, W]`` uint8 prediction: 0 background, other values object ids
            (MOS: every non-zero value is foreground).
        protocol: ``"mos"``, ``"fine_grained"``, another key of :data:`PROTOCOLS`, or a
            :class:`Protocol`. The keyword arguments below replace its fields when not None.
        name: sequence name, used in errors and stored in the result.

    Returns:
        :class:`SequenceScore`.

    Raises:
        ShapeMismatchError: the two label maps differ in frame count or frame size.
        TooManyObjectsError: fine-grained prediction with an id above ``max_objects``.
        ValueError: not [T, H, W] integer label maps, or no frame left to evaluate.
    """
    proto = get_protocol(
        protocol,
        skip_first_last=skip_first_last,
        max_objects=max_objects,
        official_decay_bins=official_decay_bins,
        void=void,
        gt_objects=gt_objects,
        bound_th=bound_th,
    )
    gt = _check_labels(gt_labels, "ground truth", name)
    pred = _check_labels(pred_labels, "prediction", name)
    if gt.shape != pred.shape:
        raise ShapeMismatchError(
            f"sequence {name!r}: prediction has shape {pred.shape} (T, H, W) but the ground "
            f"truth has {gt.shape}; frames are never truncated or padded"
        )
    num_frames = gt.shape[0]
    first = 1 if proto.skip_first_last else 0
    stop = num_frames - 1 if proto.skip_first_last else num_frames
    if stop - first < 1:
        raise ValueError(
            f"sequence {name!r}: {num_frames} frame(s) leave none to evaluate "
            f"(skip_first_last={proto.skip_first_last})"
        )
    evaluated = np.zeros(num_frames, dtype=bool)
    evaluated[first:stop] = True

    is_void = gt == VOID_LABEL
    # void as background: the pixels simply are not part of any ground-truth object
    exclude = is_void if proto.void == "exclude" else None

    # ground-truth objects -> index map 0..G (ids chosen on the whole sequence)
    if proto.merge_objects:
        gt_groups = [_present(gt, skip=(0, VOID_LABEL))]
        gt_index = ((gt != 0) & ~is_void).view(np.uint8)
    else:
        ids = _gt_object_ids(gt, is_void, proto.gt_objects)
        gt_groups = [(i,) for i in ids]
        lut = np.zeros(max(int(gt.max()), VOID_LABEL) + 1, dtype=np.int32)
        lut[ids] = np.arange(1, len(ids) + 1)
        gt_index = lut[gt]
        gt_index[is_void] = 0
    num_gt = len(gt_groups)

    sl = slice(first, stop)
    gt_index = gt_index[sl]
    pred = pred[sl]
    exclude = None if exclude is None else exclude[sl]

    # predicted objects -> index map 0..P, padded with empty objects up to G
    if proto.merge_objects:
        pred_groups = [_present(pred)]
        pred_index = (pred != 0).view(np.uint8)
    else:
        largest = int(pred.max()) if pred.size else 0
        if largest > proto.max_objects:
            raise TooManyObjectsError(
                f"sequence {name!r}: prediction uses object id {largest}, more than the "
                f"{proto.max_objects} objects allowed (ids must be 1..{proto.max_objects})"
            )
        pred_groups = [(i,) for i in range(1, largest + 1)]
        pred_index = pred
    if len(pred_groups) < num_gt:
        log.debug(
            "sequence %r: %d predicted object(s) for %d ground-truth object(s), padding with "
            "empty masks",
            name,
            len(pred_groups),
            num_gt,
        )
        pred_groups += [()] * (num_gt - len(pred_groups))
    num_pred = len(pred_groups)
    if num_gt == 0:
        log.warning("sequence %r: no ground-truth object, nothing to score", name)

    j, f = pairwise_scores(gt_index, pred_index, num_gt, num_pred, exclude, proto.bound_th)
    overall = (np.mean(j, axis=2) + np.mean(f, axis=2)) / 2
    rows, cols = linear_sum_assignment(-overall)  # rows come sorted: the official order

    objects: list[ObjectScore] = []
    for r, c in zip(rows, cols, strict=True):
        j_full = np.full(num_frames, np.nan)
        f_full = np.full(num_frames, np.nan)
        j_full[sl] = j[r, c]
        f_full[sl] = f[r, c]
        objects.append(
            ObjectScore(
                gt_ids=gt_groups[c],
                pred_ids=pred_groups[r],
                j=statistics(j[r, c], proto.official_decay_bins),
                f=statistics(f[r, c], proto.official_decay_bins),
                j_per_frame=j_full,
                f_per_frame=f_full,
            )
        )
    return SequenceScore(
        name=name,
        protocol=proto,
        num_frames=num_frames,
        evaluated_frames=evaluated,
        j=_mean_stats([o.j for o in objects]),
        f=_mean_stats([o.f for o in objects]),
        j_per_frame=_mean_frames([o.j_per_frame for o in objects], num_frames),
        f_per_frame=_mean_frames([o.f_per_frame for o in objects], num_frames),
        objects=objects,
    )


def _mean_stats(stats: Sequence[Stats]) -> Stats:
    if not stats:
        return Stats(math.nan, math.nan, math.nan)
    return Stats(
        mean=float(np.mean([s.mean for s in stats])),
        recall=float(np.mean([s.recall for s in stats])),
        decay=float(np.mean([s.decay for s in stats])),
    )


def _mean_frames(arrays: Sequence[np.ndarray], num_frames: int) -> np.ndarray:
    if not arrays:
        return np.full(num_frames, np.nan)
    return np.mean(np.stack(arrays), axis=0)


def aggregate(scores: Iterable[SequenceScore]) -> dict[str, Any]:
    """Benchmark score over sequences, as the official global table.

    Every statistic is the plain mean over all objects of all sequences (davis2017-evaluation
    appends one entry per object and averages the lists): for MOS, one object per sequence, that
    is the mean over sequences; for fine-grained a sequence weighs as many objects as it has.
    ``J&F-Mean = (J-Mean + F-Mean) / 2``. A NaN statistic (e.g. an official-mode decay of a long
    sequence) makes its mean NaN, as in the official code.

    Returns:
        dict with ``J&F-Mean``, ``J-Mean``, ``J-Recall``, ``J-Decay``, ``F-Mean``, ``F-Recall``,
        ``F-Decay`` (floats, NaN when there is no object), ``num_sequences``, ``num_objects``
        and ``protocol`` (name).
    """
    scores = list(scores)
    protocols = {s.protocol for s in scores}
    if len(protocols) > 1:
        names = sorted(p.name for p in protocols)
        raise ValueError(f"scores come from different protocols: {names}")
    objects = [o for s in scores for o in s.objects]
    j = _mean_stats([o.j for o in objects])
    f = _mean_stats([o.f for o in objects])
    return {
        "J&F-Mean": (j.mean + f.mean) / 2,
        "J-Mean": j.mean,
        "J-Recall": j.recall,
        "J-Decay": j.decay,
        "F-Mean": f.mean,
        "F-Recall": f.recall,
        "F-Decay": f.decay,
        "num_sequences": len(scores),
        "num_objects": len(objects),
        "protocol": next(iter(protocols)).name if protocols else None,
    }
