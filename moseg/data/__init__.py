"""Training data: samples cut from contract files, mixtures of sources, a LightningDataModule."""

from moseg.data.datamodule import (
    MissingSourceError,
    MixtureSampler,
    Source,
    TrackDataModule,
    TrackDataset,
    collate,
)
from moseg.data.sampling import Augment, Sample, SamplingSpec, augment, read_sample

__all__ = [
    "Augment",
    "MissingSourceError",
    "MixtureSampler",
    "Sample",
    "SamplingSpec",
    "Source",
    "TrackDataModule",
    "TrackDataset",
    "augment",
    "collate",
    "read_sample",
]
