from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from moseg.datasets.synthetic import SynthConfig, generate_clip
from moseg.io import Sequence

# the real data next to the project (../shared/data); tests that need it skip without it
SHARED = Path(
    os.environ.get("MOSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data")
)
needs_davis = pytest.mark.skipif(
    not (SHARED / "DAVIS2016/JPEGImages/480p/blackswan").is_dir()
    or not (SHARED / "DAVIS2016/Annotations/480p/blackswan").is_dir(),
    reason=f"real DAVIS 2016 not found under {SHARED} (set MOSEG_SHARED_DATA)",
)

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
    seq.visibility_prob = rng.random(seq.visibility.shape).astype(np.float16)
    return seq
