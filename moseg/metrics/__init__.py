"""DAVIS J&F metrics, equal to the official evaluators, and the MOS / fine-grained protocols.

See docs/metrics.md. Pure numpy (OpenCV and scikit-image only for the boundary dilation).
"""

from moseg.metrics.davis import (
    DEFAULT_BOUND_TH,
    Stats,
    boundary_f,
    boundary_tolerance,
    decay_bin_edges,
    pairwise_scores,
    region_iou,
    seg_to_boundary,
    statistics,
)
from moseg.metrics.protocols import (
    DEFAULT_MAX_OBJECTS,
    PROTOCOLS,
    VOID_LABEL,
    ObjectScore,
    Protocol,
    SequenceScore,
    ShapeMismatchError,
    TooManyObjectsError,
    aggregate,
    evaluate_sequence,
    get_protocol,
)

__all__ = [
    "DEFAULT_BOUND_TH",
    "DEFAULT_MAX_OBJECTS",
    "PROTOCOLS",
    "VOID_LABEL",
    "ObjectScore",
    "Protocol",
    "SequenceScore",
    "ShapeMismatchError",
    "Stats",
    "TooManyObjectsError",
    "aggregate",
    "boundary_f",
    "boundary_tolerance",
    "decay_bin_edges",
    "evaluate_sequence",
    "get_protocol",
    "pairwise_scores",
    "region_iou",
    "seg_to_boundary",
    "statistics",
]
