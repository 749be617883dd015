"""Depth means one thing to the model, whatever a file stores (docs/data-contract.md, "Depth
convention"): disparity (near = large), min-max normalised per frame to [0, 1]. Checked on the
conversion functions, on one synthetic scene stored both ways, on the HOI4D, Kubric, Dynamic
Replica and DAVIS converters (their test fixtures), and on the missing-depth check of train.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moseg.config import compose
from moseg.data import SamplingSpec, TrackDataModule, read_sample
from moseg.datasets import dynamic_replica as dr
from moseg.datasets import kubric
from moseg.datasets.synthetic import generate_clip
from moseg.io import (
    MissingDepthError,
    SequenceFile,
    depth_frame_range,
    list_sequences,
    load_sequence,
    model_depth,
    model_track_depth,
    normalise_depth,
    sample_depth,
    sample_model_depth,
    sequence_model_depth,
    to_disparity,
    write_sequence,
)
from moseg.prep.jobs import run_jobs
from moseg.training.run import run
from tests.conftest import tiny_config
from tests.test_training import tiny_overrides


class FakeDisparity:
    """A depth back-end for tests: disparity ``(1 + t) * (1 + x / (W - 1))``, so each frame
    normalised on its own is ``x / (W - 1)`` while the video-normalised value changes with t."""

    name = "fake_disparity"
    kind = "disparity"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        T, H, W = frames.shape[:3]
        x = np.linspace(0.0, 1.0, W, dtype=np.float32)[None, None, :]
        t = np.arange(T, dtype=np.float32)[:, None, None]
        return np.broadcast_to((1 + t) * (1 + x), (T, H, W)).astype(np.float32)

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name}


FAKE_DEPTH = f"depth._target_={__name__}.FakeDisparity"


def samples(path: Path, n: int = 3) -> list:
    """Training samples (the training read path) of every query frame, over every frame of the
    clip (so sample frame i is the clip's frame i)."""
    spec = SamplingSpec(num_tracks=(10_000,), num_frames=1000)
    with SequenceFile(path) as f:
        qs = np.unique(f.read("query_frame"))
        out = [
            read_sample(f, spec, np.random.default_rng(i), query_frame=int(q))
            for q in qs
            for i in range(n)
        ]
    assert all(s.tracks.shape[1] == out[0].tracks.shape[1] for s in out)
    return out


def ramp_expected(tracks: np.ndarray, map_w: int, frame_w: int) -> np.ndarray:
    """The convention for :class:`FakeDisparity`'s maps (disparity rising linearly along x):
    ``x / (W - 1)`` at each track's (clamped) map position, in every frame."""
    xd = np.clip((tracks[..., 0] + 0.5) * map_w / frame_w - 0.5, 0, map_w - 1)
    return xd / (map_w - 1)


# ----------------------------------------------------------------------------------------------
# The conversion functions
# ----------------------------------------------------------------------------------------------
def test_model_depth_of_distance_and_disparity_maps():
    T, H, W = 3, 4, 6
    dist = (
        2.0
        + np.arange(T)[:, None, None]
        + np.linspace(0, 3, W)[None, None, :]
        + np.zeros((1, H, 1))
    )
    dist[2] = 7.0  # a constant frame
    stored, raw = normalise_depth(dist)
    got = model_depth(stored, "depth", raw)
    disp = 1.0 / dist
    lo, hi = disp.min(axis=(1, 2), keepdims=True), disp.max(axis=(1, 2), keepdims=True)
    want = np.where(hi > lo, (disp - lo) / np.where(hi > lo, hi - lo, 1), 0.0)
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert got.dtype == np.float32 and got[:2, :, 0].min() == 1.0 and got[:2, :, -1].max() == 0.0
    assert (got[2] == 0).all()  # constant frame -> 0
    # the same scene stored as disparity reads the same
    stored_d, raw_d = normalise_depth(disp)
    np.testing.assert_allclose(model_depth(stored_d, "disparity", raw_d), want, atol=2e-3)
    # non-positive or non-finite distances carry no disparity: 0, and the frame's range
    # comes from the valid pixels only
    bad = np.array([[[0.0, 1.0, 2.0, 4.0]]], np.float32)
    out = model_depth(bad / 4.0, "depth", (0.0, 4.0))
    np.testing.assert_allclose(out[0, 0], [0.0, 1.0, 1 / 3, 0.0], atol=1e-6)
    assert np.isnan(to_disparity(np.array([np.nan], np.float32), "disparity", None)).all()
    with pytest.raises(ValueError, match="kind"):
        model_depth(stored, "inverse", raw)


def test_track_depth_is_read_with_the_maps_range():
    rng = np.random.default_rng(0)
    T, H, W, N = 4, 12, 16, 50
    disp = rng.uniform(0.2, 3.0, (T, H, W)) * (1 + np.arange(T))[:, None, None]
    stored, raw = normalise_depth(disp)
    tracks = np.stack([rng.uniform(0, 31, (N, T)), rng.uniform(0, 23, (N, T))], -1)
    td = sample_depth(stored, tracks, (24, 32)).astype(np.float16)
    fr = depth_frame_range(stored, "disparity", raw)
    from_tracks = model_track_depth(td, "disparity", raw, fr)
    from_maps = sample_model_depth(stored, tracks, (24, 32), "disparity", raw)
    np.testing.assert_allclose(from_tracks, from_maps, atol=2e-3)
    np.testing.assert_allclose(
        from_maps, sample_depth(model_depth(stored, "disparity", raw), tracks, (24, 32)), atol=1e-6
    )
    # distances stored per track blend across edges: refused, the maps are read instead
    with pytest.raises(ValueError, match="sample_model_depth"):
        model_track_depth(td, "depth", raw, fr)


def test_one_scene_stored_as_distance_or_disparity_gives_the_same_channel(tmp_path):
    """The synthetic generator stores the same scene either way: training samples and the
    inference reader give the same depth channel (up to float16 storage)."""
    got = {}
    for kind in ("depth", "disparity"):
        seq = generate_clip(tiny_config(depth_kind=kind), seed=7, name=kind).sequence
        assert seq.depth_kind == kind
        path = write_sequence(tmp_path / f"{kind}.h5", seq)
        spec = SamplingSpec(num_tracks=(200,), num_frames=6, frame_stride=1)
        with SequenceFile(path) as f:
            s = read_sample(f, spec, np.random.default_rng(3))
        got[kind] = (s.depth, sequence_model_depth(load_sequence(path)))
    for a, b in zip(got["depth"], got["disparity"], strict=True):
        assert a.shape == b.shape and a.min() >= 0 and a.max() <= 1
        np.testing.assert_allclose(a, b, atol=2e-3)
    # per frame, not per video: every frame of the maps spans [0, 1]
    seq = load_sequence(tmp_path / "depth.h5")
    m = model_depth(seq.depth, seq.depth_kind, seq.depth_raw_range)
    assert np.allclose(m.min(axis=(1, 2)), 0) and np.allclose(m.max(axis=(1, 2)), 1)
    # track_depth without the maps has no kind or range: no depth
    seq.depth = None
    assert sequence_model_depth(seq) is None


# ----------------------------------------------------------------------------------------------
# The dataset paths: Kubric and Dynamic Replica (their own distances), HOI4D and DAVIS
# (Depth Anything's disparity, here a fake with the same kind, or none by default)
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kubric_distances_read_as_per_frame_disparity(tmp_path):
    from tests.test_prep_kubric import W, make_scene, prepare_cfg

    make_scene(tmp_path / "raw" / "train" / "scene_a")  # distance 5 + t + x / (W - 1)
    report = run_jobs(kubric.make_jobs(prepare_cfg(tmp_path / "raw", tmp_path / "out")))
    assert report.ok, report.summary()
    path = tmp_path / "out/train/scene_a.h5"
    seq = load_sequence(path)
    assert seq.depth_kind == "depth"
    for s in samples(path):
        t = np.arange(s.tracks.shape[1])[None, :]
        x = np.clip(s.tracks[..., 0], 0, W - 1) / (W - 1)
        d = 1.0 / (5.0 + t + x)
        lo, hi = 1.0 / (6.0 + t), 1.0 / (5.0 + t)
        np.testing.assert_allclose(s.depth, (d - lo) / (hi - lo), atol=0.02)
    md = sequence_model_depth(seq)
    x = np.clip(seq.tracks[..., 0], 0, W - 1) / (W - 1)
    t = np.arange(seq.num_frames)[None, :]
    want = (1 / (5.0 + t + x) - 1 / (6.0 + t)) / (1 / (5.0 + t) - 1 / (6.0 + t))
    np.testing.assert_allclose(md, want, atol=0.02)


def test_dynamic_replica_distances_read_as_per_frame_disparity(tmp_path):
    from tests.test_prep_dynamic_replica import SEQ, W, cfg_for, make_dr

    make_dr(tmp_path / "raw")  # distance 1 + 0.1 t + 2 x / (W - 1), float16
    cfg = cfg_for(tmp_path / "raw", tmp_path / "out", "dataset.tracks.query_every=4")
    assert run_jobs(dr.make_jobs(cfg)).ok
    path = tmp_path / "out" / "val" / f"{SEQ}.h5"
    assert load_sequence(path).depth_kind == "depth"
    for s in samples(path):
        t = np.arange(s.tracks.shape[1])[None, :]
        x = np.clip(s.tracks[..., 0], 0, W - 1) / (W - 1)
        d = 1.0 / (1.0 + 0.1 * t + 2.0 * x)
        lo, hi = 1.0 / (3.0 + 0.1 * t), 1.0 / (1.0 + 0.1 * t)
        np.testing.assert_allclose(s.depth, (d - lo) / (hi - lo), atol=0.02)


@pytest.mark.slow
def test_hoi4d_and_davis_with_a_disparity_model_and_without_depth(tmp_path):
    from tests.test_prep_davis import davis2016
    from tests.test_prep_davis import prepare as prepare_davis
    from tests.test_prep_hoi4d import hoi4d_tree
    from tests.test_prep_hoi4d import prepare as prepare_hoi4d

    rel, ann, _ = hoi4d_tree(tmp_path / "hoi4d")
    davis_raw = tmp_path / "davis"
    davis2016(davis_raw)
    made = {
        "hoi4d": lambda out, *o: prepare_hoi4d(rel, out, f"dataset.annotations={ann}", *o),
        "davis": lambda out, *o: prepare_davis(davis_raw, out, *o),
    }
    for name, prepare in made.items():
        # with a disparity model: what Depth Anything gives, read per frame (x / (W - 1)),
        # whatever the frame's scale; the stored, video-normalised value depends on t
        out = tmp_path / "out" / name
        assert prepare(out / "with", FAKE_DEPTH).ok
        files = list_sequences(out / "with")
        assert files
        for path in files:
            seq = load_sequence(path)
            assert seq.depth_kind == "disparity" and seq.track_depth is not None
            Wd = seq.depth.shape[2]
            for s in samples(path, n=1):
                want = ramp_expected(s.tracks, Wd, seq.width)
                np.testing.assert_allclose(s.depth, want, atol=2e-3)
            want = ramp_expected(seq.tracks, Wd, seq.width)
            np.testing.assert_allclose(sequence_model_depth(seq), want, atol=2e-3)
        # the default (depth=none): a model with depth refuses the source before training
        assert prepare(out / "none").ok
        src = {
            "root": str(out / "none"),
            "train_split": list_sequences(out / "none")[0].parent.name,
            "val_split": None,
            "make": f"python -m data_prep.{name}",
        }
        dm = TrackDataModule({name: src})
        with pytest.raises(MissingDepthError) as e:
            dm.check_depth()
        msg = str(e.value)
        assert f"data source '{name}' has no depth (converted with depth=none)" in msg
        assert f"python -m data_prep.{name} depth=depth_anything_v2" in msg
        assert "model.net.use_depth=false" in msg and "allow_missing_depth=true" in msg
        assert dm.check_depth(allow_missing=True) == [msg]
        # a source configured not to sample depth is not checked; nor is one with depth
        off = TrackDataModule({name: {**src, "sampling": {"use_depth": False}}})
        assert off.check_depth() == []
        ok = TrackDataModule({name: {**src, "root": str(out / "with")}})
        assert ok.check_depth() == []


# ----------------------------------------------------------------------------------------------
# train.py: an error before training, or with allow_missing_depth a recorded warning
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_training_without_depth_stops_or_warns_and_records(tmp_path):
    data_root = tmp_path / "synthetic"
    no_depth = "data.sources.synthetic.prepare.generator.save_depth=false"
    cfg = compose("train", [*tiny_overrides(tmp_path / "refused", data_root), no_depth])
    assert cfg.allow_missing_depth is False and cfg.model.net.use_depth is True
    with pytest.raises(SystemExit) as e:
        run(cfg)
    msg = str(e.value)
    assert "data source 'synthetic' has no depth (converted with depth=exact, but none" in msg
    assert "save_depth=true" in msg and "allow_missing_depth=true" in msg
    assert not (tmp_path / "refused" / "checkpoints").exists()  # nothing trained

    out = tmp_path / "allowed"
    over = [*tiny_overrides(out, data_root), no_depth, "allow_missing_depth=true"]
    run(compose("train", [*over, "+trainer.fast_dev_run=true"]))
    summary = json.loads((out / "summary.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["allow_missing_depth"] is True
    for warnings in (summary["warnings"], metrics["warnings"]):
        assert len(warnings) == 1 and "data source 'synthetic' has no depth" in warnings[0]

    # modality dropout hides depth from samples on purpose: no warning, no error
    out = tmp_path / "dropout"
    over = [*tiny_overrides(out, tmp_path / "with_depth"), "data.module.augment.drop_depth=1.0"]
    run(compose("train", [*over, "+trainer.fast_dev_run=true"]))
    assert json.loads((out / "metrics.json").read_text())["warnings"] == []


@pytest.mark.slow
def test_evaluate_records_allow_missing_depth():
    from moseg.evaluation.run import _allow_missing_depth, _depth_warnings

    assert _allow_missing_depth(compose("evaluate", [])) is False
    cfg = compose("evaluate", ["allow_missing_depth=true"])
    assert _allow_missing_depth(cfg) is True
    records = {"a": {"missing_inputs": ["depth"]}, "b": {"missing_inputs": []}, "c": {}}
    (w,) = _depth_warnings(records)
    assert w.startswith("a: the classifier uses depth")
