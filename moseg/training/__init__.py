"""Training the track classifier with Lightning (``train.py`` calls :func:`run`)."""

from moseg.training.module import (
    TrackClassifierModule,
    load_classifier,
    track_loss,
    warmup_cosine,
)

__all__ = ["TrackClassifierModule", "load_classifier", "track_loss", "warmup_cosine"]
