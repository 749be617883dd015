"""Synthetic videos for the real tracker (moseg/datasets/synthetic_video.py): the DAVIS-layout
export that data_prep.davis reads back, masks of the moving objects only, resume and refusal."""

import numpy as np
import pytest

from moseg.datasets.davis import list_sequences, read_sequence
from moseg.datasets.synthetic import SynthConfig, build_scene, render
from moseg.datasets.synthetic_video import SCENE_KEYS, clip_name, generate, make_clip, moving_masks

SMALL = dict(
    height=72,
    width=112,
    num_frames=8,
    num_static=[1, 2],
    num_moving=[1, 2],
    object_px=[20.0, 40.0],
    object_speed_px=[1.0, 3.0],
)


def test_moving_masks_keep_only_moving_layers():
    ids = np.array([[[0, 1, 2, 3]]], np.uint8)
    out = moving_masks(ids, np.array([False, True, False, True]))
    assert out.tolist() == [[[0, 1, 0, 3]]]


def test_export_reads_back_as_davis(tmp_path):
    raw = tmp_path / "raw"
    res = generate(raw, 2, SMALL, seed=3, progress=False)
    assert res["written"] == 2
    assert list_sequences("davis", raw, "train") == [clip_name(0), clip_name(1)]
    cfg = SynthConfig.from_dict({**SMALL, "num_tracks": 1, "feature_dim": 0})
    frames, masks, _ = make_clip(cfg, 3, 1)
    seq = read_sequence("davis", raw, clip_name(1))
    assert seq.frames.frames.shape == (8, 72, 112, 3)
    # JPEG changes pixels a little; the masks are exact
    assert np.abs(seq.frames.frames.astype(int) - frames.astype(int)).mean() < 8
    np.testing.assert_array_equal(seq.masks, masks)
    # only moving layers appear in the masks, and every moving layer that is seen does
    rng = np.random.default_rng(np.random.SeedSequence([3, 1]))
    scene = build_scene(rng, cfg)
    r = render(scene, cfg.height, cfg.width)
    seen = set(np.unique(r.ids).tolist())
    moving = {i for i in seen if scene.object_moving[i]}
    assert set(np.unique(masks).tolist()) - {0} == moving


def test_rerun_adds_only_missing_clips_and_refuses_other_settings(tmp_path):
    raw = tmp_path / "raw"
    generate(raw, 1, SMALL, seed=0, progress=False)
    first = (raw / "JPEGImages" / "480p" / clip_name(0) / "00000.jpg").stat().st_mtime_ns
    res = generate(raw, 2, SMALL, seed=0, progress=False)
    assert res["written"] == 1
    assert (raw / "JPEGImages" / "480p" / clip_name(0) / "00000.jpg").stat().st_mtime_ns == first
    with pytest.raises(ValueError, match="other settings"):
        generate(raw, 2, {**SMALL, "num_frames": 9}, seed=0, progress=False)
    with pytest.raises(ValueError, match="unknown synthetic_video generator settings"):
        generate(tmp_path / "other", 1, {**SMALL, "fps": 10}, progress=False)
    assert "fps" not in SCENE_KEYS
    # no temporary folders are left behind
    assert not list(raw.rglob(".*.tmp"))


def test_val_split_names_differ(tmp_path):
    generate(tmp_path, 1, SMALL, seed=1, split="val", progress=False)
    assert list_sequences("davis", tmp_path, "val") == ["synthvid_val_00000"]
