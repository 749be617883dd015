"""Inference, shared by ``evaluate.py``, ``moseg segment`` and the Python API: load a
classifier (either checkpoint format, no Lightning import), classify and decide which tracks
move, densify the moving tracks into per-object masks, and read and write the indexed PNG masks.
Evaluation (:mod:`moseg.evaluation`) is scoring on top of it.

    from moseg.inference import Segmenter
    seg = Segmenter.from_config(cfg.classifier, ckpt, densifier)   # once
    result = seg(seq, frames)                                        # per sequence or chunk
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moseg.config import to_plain
from moseg.densify.base import DensifyResult, TrackSet
from moseg.inference.classify import (
    REFERENCE_THRESHOLDS,
    SHIPPED_CHECKPOINT,
    GeometricClassifier,
    ModelClassifier,
    OracleClassifier,
    ReleaseModelClassifier,
    build_classifier,
    classify_tracks,
    decide,
    load_model_classifier,
    resolve_checkpoint,
)
from moseg.inference.masks import (
    MaskError,
    read_mask_png,
    read_sequence_masks,
    write_mask_png,
    write_sequence_masks,
)
from moseg.io import Sequence
from moseg.models.checkpoint import CheckpointError

__all__ = [
    "check_preset_checkpoint",
    "REFERENCE_THRESHOLDS",
    "SHIPPED_CHECKPOINT",
    "GeometricClassifier",
    "MaskError",
    "ModelClassifier",
    "OracleClassifier",
    "ReleaseModelClassifier",
    "Segmentation",
    "Segmenter",
    "build_classifier",
    "classify_tracks",
    "decide",
    "decision_settings",
    "load_model_classifier",
    "read_mask_png",
    "read_sequence_masks",
    "resolve_checkpoint",
    "write_mask_png",
    "write_sequence_masks",
]


def check_preset_checkpoint(cfg: Mapping[str, Any]) -> None:
    """``preset=paper`` classifies DINOv2-featured tracks: it needs ``ckpt=PATH`` (a classifier
    trained with ``experiment=paper``, or the release's), never the shipped CPU classifier
    (48-d appearance features) nor the geometric fallback. Raises
    :class:`~moseg.models.checkpoint.CheckpointError` saying so."""
    if cfg.get("preset_name") != "paper":
        return
    ckpt = cfg.get("ckpt")
    if ckpt is None or str(ckpt) in ("", "null", "None", "auto"):
        raise CheckpointError(
            f"preset=paper needs ckpt=PATH (got ckpt={ckpt}): a classifier trained with "
            "`python train.py experiment=paper` (768-d DINOv2 features) or the release's "
            "moseg.pth; the shipped checkpoint is the CPU path's (48-d appearance features)"
        )


def decision_settings(options: Mapping[str, Any], classifier: object) -> dict[str, Any]:
    """The keyword arguments of :func:`decide` from the ``classifier`` config group:
    ``thresholds`` null means the classifier's own rule."""
    c = to_plain(options)
    th = c.get("thresholds")
    if th is None:
        th = classifier.thresholds  # type: ignore[attr-defined]
    return {
        "thresholds": [float(x) for x in th],
        "min_moving": int(c["min_moving"]),
        "fallback_top": int(c["fallback_top"]),
    }


@dataclass
class Segmentation:
    """What :class:`Segmenter` made of one sequence: the classified tracks and decisions, the
    densifier's result, and seconds per stage."""

    tracks: TrackSet  # the classified tracks (those with a score), as the densifier took them
    moving: np.ndarray  # [N] bool over all tracks of the sequence
    keep: np.ndarray  # [N] bool: classified
    threshold: float  # the threshold used (NaN: fallback or direct labels)
    result: DensifyResult
    seconds: dict[str, float] = field(default_factory=dict)


class Segmenter:
    """A classifier, its decision rule and a densifier: ``(seq, frames) -> Segmentation``."""

    def __init__(self, classifier: object, decide_kw: dict[str, Any], densifier: Any):
        self.classifier = classifier
        self.decide_kw = decide_kw
        self.densifier = densifier

    @classmethod
    def from_config(cls, options: Mapping[str, Any], ckpt: str | None, densifier: Any) -> Segmenter:
        """From the ``classifier`` config group, a checkpoint (``auto`` allowed) and a built
        densifier. The checkpoint is read here, so a broken one fails before any work."""
        c = to_plain(options)
        classifier = build_classifier(str(c["kind"]), resolve_checkpoint(ckpt), c)
        return cls(classifier, decision_settings(c, classifier), densifier)

    @property
    def name(self) -> str:
        return str(getattr(self.classifier, "name", self.classifier))

    def classify(self, seq: Sequence) -> tuple[TrackSet, np.ndarray, np.ndarray, float]:
        return classify_tracks(self.classifier, seq, self.decide_kw)

    def __call__(self, seq: Sequence, frames: np.ndarray) -> Segmentation:
        t0 = time.perf_counter()
        tracks, moving, keep, threshold = self.classify(seq)
        t1 = time.perf_counter()
        res = self.densifier(frames, tracks)
        t2 = time.perf_counter()
        secs = {"classify": round(t1 - t0, 3), "densify": round(t2 - t1, 3)}
        return Segmentation(tracks, moving, keep, threshold, res, secs)
