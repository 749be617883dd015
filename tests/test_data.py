"""Training samples, augmentation, batching, mixtures and the datamodule."""

import numpy as np
import pytest
import torch

from moseg.data import (
    Augment,
    MissingSourceError,
    MixtureSampler,
    SamplingSpec,
    TrackDataModule,
    augment,
    collate,
    read_sample,
)
from moseg.data.samples import _window
from moseg.datasets.synthetic import generate_split
from moseg.io import SequenceFile, list_sequences
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synthetic"
    cfg = tiny_config()
    generate_split(root, "train", 3, cfg, seed=0, workers=1, progress=False)
    generate_split(root, "val", 2, cfg, seed=0, workers=1, progress=False)
    return root


def test_window_contains_the_query_frame_and_respects_stride():
    rng = np.random.default_rng(0)
    for T in (5, 24, 100):
        for s in (1, 4):
            spec = SamplingSpec(num_frames=8, frame_stride=s)
            for q in range(0, T, 3):
                t = _window(T, q, spec, rng)
                assert q in t and t.min() >= 0 and t.max() < T
                assert len(t) == min(8, q // s + (T - 1 - q) // s + 1)
                assert (np.diff(t) == s).all()


def test_read_sample_is_a_function_of_the_seed(tiny_root):
    f = SequenceFile(list_sequences(tiny_root / "train")[0])
    spec = SamplingSpec(num_tracks=(20, 40), num_frames=3, frame_stride=2)
    a = read_sample(f, spec, np.random.default_rng(5))
    b = read_sample(f, spec, np.random.default_rng(5))
    assert np.array_equal(a.tracks, b.tracks) and np.array_equal(a.label, b.label)
    assert a.tracks.shape[1] == 3 and a.tracks.shape[0] in (20, 40)
    # every chosen track starts at the sample's query frame, where it is visible
    assert a.visibility[:, a.query_index].all()
    assert a.depth is not None and a.depth.shape == a.visibility.shape
    assert a.features is not None and a.features.shape == (a.tracks.shape[0], 16)
    # the sample is the file's data at the window's frames (stride 2) for one query frame
    full, qf = f.read("tracks"), f.read("query_frame")

    def found_at(q):
        t0 = int(q) - 2 * a.query_index
        if t0 < 0:
            return False
        window = full[qf == q][:, t0 : t0 + 5 : 2]
        return window.shape[1] == 3 and all(
            (window == tr).all(axis=(1, 2)).any() for tr in a.tracks
        )

    assert sum(found_at(q) for q in np.unique(qf)) == 1
    f.close()


def test_augment_keeps_labels_true_and_query_points_visible(tiny_root):
    f = SequenceFile(list_sequences(tiny_root / "train")[1])
    spec = SamplingSpec(num_tracks=(50,), num_frames=8)
    aug = Augment(
        hflip=1.0,
        time_reverse=1.0,
        scale=(1.3, 1.3),
        jitter_px=0.5,
        drop_points=0.5,
        drop_depth=1.0,
        drop_features=1.0,
    )
    s0 = read_sample(f, spec, np.random.default_rng(1))
    s = augment(read_sample(f, spec, np.random.default_rng(1)), aug, np.random.default_rng(2))
    assert s.visibility[:, s.query_index].all()
    assert s.depth is None and s.features is None
    assert s.tracks.shape[0] <= s0.tracks.shape[0] and len(s.label) == s.tracks.shape[0]
    # time reversal moves the query frame; flip mirrors x about the centre
    flip = augment(
        read_sample(f, spec, np.random.default_rng(1)), Augment(hflip=1.0), np.random.default_rng(0)
    )
    W = s0.image_size[1]
    assert np.allclose(flip.tracks[..., 0], W - 1 - s0.tracks[..., 0])
    rev = augment(
        read_sample(f, spec, np.random.default_rng(1)),
        Augment(time_reverse=1.0),
        np.random.default_rng(0),
    )
    assert rev.query_index == s0.tracks.shape[1] - 1 - s0.query_index
    assert np.array_equal(rev.tracks[:, ::-1], s0.tracks)
    f.close()


def test_collate_pads_tracks_and_frames(tiny_root):
    f = SequenceFile(list_sequences(tiny_root / "train")[0])
    a = read_sample(f, SamplingSpec(num_tracks=(30,), num_frames=8), np.random.default_rng(0))
    b = read_sample(f, SamplingSpec(num_tracks=(10,), num_frames=5), np.random.default_rng(1))
    b.depth = None
    batch = collate([a, b], feature_dim=16)
    assert batch["tracks"].shape == (2, 30, 8, 2)
    assert batch["track_mask"].sum(1).tolist() == [30, 10]
    assert (batch["label"][1, 10:] == -1).all() and not batch["visibility"][1, 10:].any()
    assert not batch["visibility"][1, :, 5:].any()  # padded frames are unseen
    assert batch["depth_valid"].tolist() == [True, False]
    f.close()


def test_mixture_sampler_weights_and_ranks():
    s = MixtureSampler([5, 3, 4], [0.5, 0.0, 0.5], num_samples=2000, seed=1)
    items = list(s)
    files = np.array([i for i, _ in items])
    assert not ((files >= 5) & (files < 8)).any()  # the weight-0 source is never drawn
    frac_first = (files < 5).mean()
    assert 0.45 < frac_first < 0.55
    assert items == list(s)  # same epoch, same samples
    s.set_epoch(1)
    assert items != list(s)
    with pytest.raises(ValueError):
        MixtureSampler([1], [0.0], 10, 0)


def test_missing_source_names_path_and_command(tmp_path, tiny_root):
    sources = {
        "synthetic": {"root": str(tiny_root), "weight": 1.0},
        "kubric": {
            "root": str(tmp_path / "kubric"),
            "weight": 0.35,
            "make": "python -m data_prep.kubric",
        },
    }
    dm = TrackDataModule(sources, feature_dim=16, num_workers=0)
    with pytest.raises(MissingSourceError) as e:
        dm.check_sources()
    msg = str(e.value)
    assert str(tmp_path / "kubric" / "train") in msg and "python -m data_prep.kubric" in msg
    # weight 0: the missing source is not needed at all
    sources["kubric"]["weight"] = 0
    dm = TrackDataModule(sources, feature_dim=16, num_workers=0)
    dm.check_sources()
    with pytest.raises(ValueError, match="768-d"):
        TrackDataModule({"k": {"root": "x", "feature_dim": 768}}, feature_dim=16)
    # files whose features have another width than configured: named, with the fix
    dm = TrackDataModule({"synthetic": {"root": str(tiny_root)}}, feature_dim=48, num_workers=0)
    with pytest.raises(ValueError, match=r"16-d semantic features .* data.feature_dim=16"):
        dm.check_sources()


def test_datamodule_batches(tiny_root):
    dm = TrackDataModule(
        {"synthetic": {"root": str(tiny_root), "sampling": {"num_tracks": [16, 32]}}},
        feature_dim=16,
        batch_size=3,
        num_workers=0,
        samples_per_epoch=6,
        augment={"hflip": 0.5, "drop_features": 0.5},
    )
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    b = batches[0]
    assert b["tracks"].shape[0] == 3 and b["tracks"].shape[-1] == 2
    assert b["features"].shape[-1] == 16 and b["label"].dtype == torch.long
    (val,) = dm.val_dataloader()
    assert sum(v["tracks"].shape[0] for v in val) == 2
    again = list(dm.train_dataloader())
    assert all(torch.equal(x["tracks"], y["tracks"]) for x, y in zip(batches, again, strict=True))


def test_loader_workers_give_the_same_samples(tiny_root):
    kw = dict(
        sources={"s": {"root": str(tiny_root), "sampling": {"num_tracks": [16]}}},
        feature_dim=16,
        batch_size=2,
        samples_per_epoch=4,
        augment={"hflip": 0.5},
    )
    out = []
    for workers in (0, 2):
        dm = TrackDataModule(num_workers=workers, **kw)
        dm.setup("fit")
        out.append([b["tracks"] for b in dm.train_dataloader()])
    assert all(torch.equal(a, b) for a, b in zip(*out, strict=True))


def test_sample_from_feature_and_depth_maps(tmp_path):
    """Files without per-track depth/features: both are sampled from the maps."""
    from moseg.datasets.synthetic import generate_clip
    from moseg.io import write_sequence

    clip = generate_clip(tiny_config(), seed=3, name="maps", split="train")
    seq = clip.sequence
    # replace per-track features with a constant feature map at every query frame
    qs = np.unique(seq.query_frame)
    seq.feature_maps = np.ones((len(qs), 4, 4, 16), np.float16) * np.arange(16, dtype=np.float16)
    seq.feature_map_frames = qs.astype(np.int32)
    seq.feature_map_stride = 16.0
    seq.features = None
    seq.track_depth = None
    p = write_sequence(tmp_path / "maps.h5", seq)
    with SequenceFile(p) as f:
        s = read_sample(f, SamplingSpec(num_tracks=(10,)), np.random.default_rng(0))
    assert np.allclose(s.features, np.arange(16))
    assert s.depth is not None and np.isfinite(s.depth).all()
