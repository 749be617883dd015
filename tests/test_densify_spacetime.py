"""Space-time graph cut (moseg.densify.spacetime) on a small synthetic clip: a red square moving
over grey texture, with track evidence that misses part of it and has a false blob."""

from __future__ import annotations

import numpy as np
import pytest

from moseg.densify.spacetime import SpaceTimeParams, colour_log_ratio, spacetime_cut

T, H, W, S = 6, 64, 96, 20  # frames, size, square side


def _clip() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    bg = rng.integers(90, 170, size=(H // 2, W // 2, 1)).repeat(3, axis=2).astype(np.uint8)
    bg = np.kron(bg, np.ones((2, 2, 1), np.uint8))
    frames = np.repeat(bg[None], T, axis=0).copy()
    gt = np.zeros((T, H, W), bool)
    for t in range(T):
        x0, y0 = 10 + 5 * t, 20
        gt[t, y0 : y0 + S, x0 : x0 + S] = True
        noise = rng.integers(-15, 15, size=(S, S, 3))
        frames[t, y0 : y0 + S, x0 : x0 + S] = np.clip(np.array([200, 40, 40]) + noise, 0, 255)
    P = np.where(gt, 0.9, 0.02).astype(np.float32)
    P[2, 25:36, 20 : 20 + S] = 0.02  # a band across the square has no evidence in frame 2
    P[3, 50:54, 80:84] = 0.9  # a false blob on the background
    return frames, P, gt


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_cut_fills_missing_evidence_and_drops_a_false_blob():
    frames, P, gt = _clip()
    fg = spacetime_cut(
        frames, P, SpaceTimeParams(colour_weight=2.0, pair_weight=20.0, temporal_weight=10.0)
    )
    assert fg.shape == (T, H, W) and fg.dtype == bool
    thresholded = P >= 0.5
    assert _iou(thresholded[2], gt[2]) < 0.6  # what the evidence alone gives
    assert _iou(fg[2], gt[2]) > 0.9
    assert not fg[3, 50:54, 80:84].any()
    assert min(_iou(fg[t], gt[t]) for t in range(T)) > 0.9


def test_without_colour_and_smoothing_the_cut_thresholds_the_evidence():
    frames, P, _ = _clip()
    fg = spacetime_cut(
        frames,
        P,
        SpaceTimeParams(colour_weight=0.0, pair_weight=0.0, temporal_weight=0.0, margin=10.0),
    )
    np.testing.assert_array_equal(fg, P >= 0.5)


def test_blocks_agree_with_one_cut_and_are_deterministic():
    frames, P, gt = _clip()
    kw = dict(colour_weight=2.0, pair_weight=20.0, temporal_weight=10.0)
    one = spacetime_cut(frames, P, SpaceTimeParams(block=T, **kw))
    blocks = spacetime_cut(frames, P, SpaceTimeParams(block=2, **kw))
    again = spacetime_cut(frames, P, SpaceTimeParams(block=2, **kw))
    np.testing.assert_array_equal(blocks, again)
    assert min(_iou(blocks[t], one[t]) for t in range(T)) > 0.95


def test_no_evidence_gives_no_foreground():
    frames, P, _ = _clip()
    assert not spacetime_cut(frames, np.zeros_like(P)).any()


def test_colour_log_ratio_sign():
    img = np.zeros((1, 4, 4, 3), np.uint8)
    img[0, :2] = (200, 40, 40)
    img[0, 2:] = (120, 120, 120)
    fg = np.zeros((1, 4, 4), bool)
    fg[0, :2] = True
    lr = colour_log_ratio(img, fg, ~fg, bins=16)
    assert (lr[0, :2] > 2).all() and (lr[0, 2:] < -2).all()
    assert not colour_log_ratio(img, fg, np.zeros_like(fg), bins=16).any()


def test_block_of_one_frame_raises():
    frames, P, _ = _clip()
    with pytest.raises(ValueError, match="at least 2"):
        spacetime_cut(frames, P, SpaceTimeParams(block=1))


def test_shape_mismatch_raises():
    frames, P, _ = _clip()
    with pytest.raises(ValueError, match="do not match"):
        spacetime_cut(frames[:-1], P)
