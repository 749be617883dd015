"""Training data: samples cut from contract files (``samples``), which sample next
(``samplers``), mixtures of sources and the LightningDataModule (``datamodule``)."""

from moseg.data.datamodule import (
    MissingSourceError,
    Source,
    TrackDataModule,
    TrackDataset,
    collate,
)
from moseg.data.samplers import FixedSampler, MixtureSampler
from moseg.data.samples import Augment, Sample, SamplingSpec, augment, read_sample

__all__ = [
    "Augment",
    "FixedSampler",
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
