"""Models (pure torch: no Lightning, Hydra or W&B imports)."""

from moseg.models.checkpoint import (
    CheckpointError,
    LoadedClassifier,
    import_release,
    load_classifier_checkpoint,
)
from moseg.models.classifier import (
    ClassifierConfig,
    TrackClassifier,
    count_parameters,
    frequency_encode,
)
from moseg.models.release import ReleaseClassifier, ReleaseConfig

__all__ = [
    "CheckpointError",
    "ClassifierConfig",
    "LoadedClassifier",
    "ReleaseClassifier",
    "ReleaseConfig",
    "TrackClassifier",
    "count_parameters",
    "frequency_encode",
    "import_release",
    "load_classifier_checkpoint",
]
