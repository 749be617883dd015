from __future__ import annotations

import numpy as np
import pytest

from data_prep.synthetic import SynthConfig, generate_clip
from moseg.io import Sequence

# Small scenes keep every test fast; the geometry is the same as at full size.
TINY = dict(
    height=64,
    width=80,
    num_frames=8,
    num_tracks=300,
    query_stride=4,
    object_px=(14.0, 30.0),
    object_speed_px=(1.0, 3.0),
    feature_dim=16,
)


def tiny_config(**overrides) -> SynthConfig:
    return SynthConfig.from_dict({**TINY, **overrides})


@pytest.fixture
def tiny_seq() -> Sequence:
    """A small sequence with every optional field filled."""
    clip = generate_clip(tiny_config(save_frames=True), [1, 2], name="tiny")
    seq = clip.sequence
    rng = np.random.default_rng(0)
    seq.feature_maps = rng.normal(size=(2, 8, 10, 16)).astype(np.float16)
    seq.feature_map_frames = np.array([0, 4], np.int32)
    seq.feature_map_stride = 8.0
    return seq
