"""Training data: samples cut from contract files (``samples``), which sample next
(``samplers``), mixtures of sources and the LightningDataModule (``datamodule``)."""

from moseg.data.datamodule import (
    DataManifestError,
    MissingSourceError,
    Source,
    TrackDataModule,
    TrackDataset,
    collate,
    compare_manifests,
)
from moseg.data.samplers import FixedSampler, MixtureSampler
from moseg.data.samples import Augment, Sample, SamplingSpec, augment, read_sample

__all__ = [
    "Augment",
    "DataManifestError",
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
    "compare_manifests",
    "read_sample",
]
