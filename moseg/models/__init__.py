"""Models (pure torch: no Lightning, Hydra or W&B imports)."""

from moseg.models.classifier import (
    ClassifierConfig,
    TrackClassifier,
    count_parameters,
    frequency_encode,
)

__all__ = ["ClassifierConfig", "TrackClassifier", "count_parameters", "frequency_encode"]
