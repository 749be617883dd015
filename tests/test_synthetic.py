from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moseg.datasets.synthetic import (
    CLASSES,
    RealisticTracker,
    _layer_depth,
    clip_seed,
    generate_clip,
    generate_split,
)
from moseg.io import (
    FIELDS,
    LABEL_MOVING,
    LABEL_STATIC,
    check_sequence,
    list_sequences,
    load_sequence,
    validate,
)
from moseg.utils.atomic import owner_tag
from tests.conftest import tiny_config

SEEDS = range(6)


def _world_points(clip):
    """[N, T, 3] world position of every track's surface point, from the renderer's poses."""
    gt, layers = clip.gt, clip.scene.layers
    uv1 = np.concatenate([gt.uv, np.ones((len(gt.uv), 1))], axis=1)
    out = np.zeros((len(uv1), gt.xy.shape[1], 3))
    for lid in np.unique(gt.layer):
        sel = gt.layer == lid
        out[sel] = np.einsum("tij,nj->nti", layers[lid].M, uv1[sel])
    return out


def test_same_seed_same_clip_other_seed_other_clip():
    cfg = tiny_config(save_frames=True, realistic={"enabled": True})
    a = generate_clip(cfg, [5, 1]).sequence
    b = generate_clip(cfg, [5, 1]).sequence
    c = generate_clip(cfg, [5, 2]).sequence
    for name in FIELDS:
        if getattr(a, name) is not None:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.slow
def test_split_is_identical_whatever_the_worker_count(tmp_path):
    cfg = tiny_config()
    generate_split(tmp_path / "one", "train", 4, cfg, seed=3, workers=1)
    generate_split(tmp_path / "two", "train", 4, cfg, seed=3, workers=2)
    one, two = list_sequences(tmp_path / "one"), list_sequences(tmp_path / "two")
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 4
    for p, q in zip(one, two, strict=True):
        a, b = load_sequence(p), load_sequence(q)
        for name in ("tracks", "visibility", "label", "features", "masks", "depth"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("seed", SEEDS)
def test_labels_follow_the_objects_world_motion(seed):
    clip = generate_clip(tiny_config(), [11, seed])
    seq = clip.sequence
    world = _world_points(clip)
    world_motion = np.linalg.norm(world - world[:, :1], axis=2).max(axis=1)
    moving = seq.label == LABEL_MOVING
    static = seq.label == LABEL_STATIC
    assert (moving | static).all()
    assert (world_motion[moving] > 1e-3).all(), "a track labelled moving does not move"
    assert (world_motion[static] < 1e-9).all(), "a track labelled static moves in the world"


def test_static_objects_move_in_the_image_through_camera_motion():
    """The hard case: static, yet displaced in the image by parallax, zoom and rotation."""
    shifts = []
    for seed in SEEDS:
        clip = generate_clip(tiny_config(), [11, seed])
        gt, seq = clip.gt, clip.sequence
        on_static_object = (seq.label == LABEL_STATIC) & (gt.layer > 0)
        xy = gt.xy[on_static_object]
        shifts.append(np.linalg.norm(xy[:, -1] - xy[:, 0], axis=1))
        # and they move differently from the background: parallax, not a global shift
        bg = gt.xy[gt.layer == 0]
        if len(bg) and len(xy):
            bg_shift = np.median(np.linalg.norm(bg[:, -1] - bg[:, 0], axis=1))
            shifts.append(np.abs(np.linalg.norm(xy[:, -1] - xy[:, 0], axis=1) - bg_shift))
    shifts = np.concatenate(shifts)
    assert np.median(shifts) > 1.0, "camera motion barely moves static objects"


@pytest.mark.parametrize("seed", SEEDS)
def test_visibility_is_false_where_a_nearer_surface_covers_the_point(seed):
    clip = generate_clip(tiny_config(), [13, seed])
    gt, r, seq = clip.gt, clip.render, clip.sequence
    T, H, W = r.ids.shape
    x, y = gt.xy[..., 0], gt.xy[..., 1]
    inside = (x >= -0.5) & (x < W - 0.5) & (y >= -0.5) & (y < H - 0.5)
    xi = np.clip(np.rint(x), 0, W - 1).astype(int)
    yi = np.clip(np.rint(y), 0, H - 1).astype(int)
    t = np.broadcast_to(np.arange(T), x.shape)
    # depth of the track's own surface at the pixel centre, from the plane equation
    own = np.full(x.shape, np.inf)
    for lid in np.unique(gt.layer):
        layer = clip.scene.layers[lid]
        for tt in range(T):
            sel = gt.layer == lid
            own[sel, tt] = _layer_depth(
                layer, clip.scene.cam, tt, xi[sel, tt].astype(float), yi[sel, tt].astype(float)
            )
    covered = inside & (r.depth[t, yi, xi] < own * (1 - 1e-6))
    assert covered.sum() > 0, "no occlusion in this clip: the test would be vacuous"
    assert not seq.visibility[covered].any(), "a covered point is marked visible"
    assert not seq.visibility[~inside].any(), "a point outside the frame is marked visible"
    # where the point is the visible surface, it is visible
    on_top = inside & (r.ids[t, yi, xi] == gt.layer[:, None])
    np.testing.assert_array_equal(seq.visibility, on_top)


def test_masks_and_objects_match_the_render():
    clip = generate_clip(tiny_config(), [17])
    seq = clip.sequence
    np.testing.assert_array_equal(seq.masks, clip.render.ids)
    assert seq.object_moving.tolist() == [layer.moving for layer in clip.scene.layers]
    assert not seq.object_moving[0]  # the background never moves
    np.testing.assert_array_equal(seq.instance, clip.gt.layer)
    assert seq.depth.shape == (8, 64, 80) and float(seq.depth.max()) == 1.0


def test_semantic_features_carry_the_class():
    cfg = tiny_config(feature_dim=32)
    feats, classes = [], []
    for seed in SEEDS:
        clip = generate_clip(cfg, [19, seed])
        feats.append(clip.sequence.features.astype(np.float32))
        classes.append(np.array([layer.cls for layer in clip.scene.layers])[clip.gt.layer])
    f, c = np.concatenate(feats), np.concatenate(classes)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(f), (2, 20000))
    sim = (f[i] * f[j]).sum(1)
    same, diff = sim[c[i] == c[j]].mean(), sim[c[i] != c[j]].mean()
    assert same > diff + 0.3, (same, diff)
    assert len(np.unique(c)) >= 4 and len(CLASSES) > 4


@pytest.mark.slow
def test_realistic_tracker_corrupts_like_a_tracker():
    exact_cfg = tiny_config(num_tracks=600)
    real_cfg = tiny_config(
        num_tracks=600,
        realistic=RealisticTracker(enabled=True, swap_prob=1.0, die_prob=0.5, vis_flip_prob=0.05),
    )
    swaps = lost = 0
    for seed in SEEDS:
        exact = generate_clip(exact_cfg, [23, seed]).sequence
        clip = generate_clip(real_cfg, [23, seed])
        real, gt = clip.sequence, clip.gt
        n = np.arange(real.num_tracks)
        q = real.query_frame
        # the query point is exact and visible; labels come from the query frame
        np.testing.assert_array_equal(real.tracks[n, q], exact.tracks[n, q])
        assert real.visibility[n, q].all()
        np.testing.assert_array_equal(real.label, exact.label)
        err = np.linalg.norm(real.tracks - gt.xy, axis=2)
        assert 0.05 < np.median(err[gt.visible & real.visibility]) < 3.0  # jitter and drift
        swaps += int((err.max(axis=1) > 8).sum())  # latched onto another surface
        lost += int((gt.visible & ~real.visibility).sum())
        assert real.confidence.min() >= 0 and real.confidence.max() <= 1
        assert float(real.confidence[err > 3].mean()) < float(real.confidence[err < 0.5].mean())
        assert check_sequence(real) == []
    assert swaps > 0 and lost > 0


@pytest.mark.slow
def test_generate_split_resumes_and_refuses_mixed_settings(tmp_path):
    cfg = tiny_config()
    first = generate_split(tmp_path, "train", 3, cfg, seed=0, workers=1)
    assert first["written"] == 3
    victim = tmp_path / "train" / "synth_train_000001.h5"
    before = load_sequence(victim).tracks
    victim.unlink()
    # a half-written file of a writer that was killed (its process is gone)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    host = owner_tag().rsplit("-", 1)[0]
    (tmp_path / "train" / f".synth_train_000002.h5.{host}-{gone}.abc.tmp").write_bytes(b"half")
    again = generate_split(tmp_path, "train", 4, cfg, seed=0, workers=1)
    assert again["kept"] == 2 and again["written"] == 2
    np.testing.assert_array_equal(load_sequence(victim).tracks, before)
    assert not list((tmp_path / "train").glob(".*.tmp"))
    assert all(validate(p) == [] for p in list_sequences(tmp_path))
    with pytest.raises(RuntimeError, match="other settings"):
        generate_split(tmp_path, "train", 4, tiny_config(num_tracks=100), seed=0, workers=1)


def test_clip_seed_depends_on_split_and_index():
    a = np.random.default_rng(clip_seed(0, "train", 0)).random()
    assert a != np.random.default_rng(clip_seed(0, "val", 0)).random()
    assert a != np.random.default_rng(clip_seed(0, "train", 1)).random()


@pytest.mark.slow
def test_hydra_entry_point_writes_valid_files(tmp_path):
    root = Path(__file__).resolve().parents[1]
    cmd = [
        sys.executable,
        "-m",
        "data_prep.synthetic",
        f"dataset.root={tmp_path}/d",
        "dataset.splits.train=2",
        "dataset.splits.val=1",
        "dataset.workers=1",
        "dataset.generator.num_tracks=200",
        "dataset.generator.height=64",
        "dataset.generator.width=64",
        f"hydra.run.dir={tmp_path}/run",
    ]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    files = list_sequences(tmp_path / "d")
    assert len(files) == 3 and all(validate(p) == [] for p in files)
    assert load_sequence(files[-1]).frames is not None  # val stores frames (save_frames_splits)
    assert "train: 2 written" in proc.stdout
