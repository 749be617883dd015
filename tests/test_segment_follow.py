"""The weight-free prompted follower (moseg/segmentation/follow.py) on a rendered clip with
known masks, tracked by the real OpenCV tracker: a textured disc (id 1, 9 px/frame right) and a
textured square (id 2, 8 px/frame left) over a background the camera pans across."""

from __future__ import annotations

import numpy as np
import pytest

from moseg.densify.base import TrackSet
from moseg.prep.trackers.flow import FlowTracker
from moseg.segmentation.follow import TrackFollower
from moseg.segmentation.prompts import FramePrompt, interior_point
from tests.test_segment import make_clip


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def scene():
    frames, gt = make_clip(T=16, pan=(1.5, 0.5), seed=2)
    tr = FlowTracker(progress=False)(frames)
    n = tr.num_tracks
    ts = TrackSet(
        tr.tracks, tr.visibility, tr.query_frame, np.full(n, np.nan, np.float32), np.zeros(n, bool)
    )
    return frames, gt, ts


def click(obj: int, frame: int, xy, negative=()) -> FramePrompt:
    pts = np.array([xy, *negative], np.float32).reshape(-1, 2)
    labels = np.array([1] + [0] * len(negative), np.int32)
    return FramePrompt(obj, frame, pts, labels)


def mean_iou(masks: np.ndarray, gt: np.ndarray, value: int, gt_id: int) -> float:
    return float(np.mean([_iou(m == value, g == gt_id) for m, g in zip(masks, gt, strict=True)]))


def test_one_click_follows_that_object_only(scene):
    """IoU > 0.5 averaged over 16 frames: the square is 4.7 % of the frame, so a flood into the
    background or a jump to the disc would fall far below it."""
    frames, gt, ts = scene
    res = TrackFollower()(frames, ts, [click(1, 0, interior_point(gt[0] == 2))])
    assert set(np.unique(res.masks)) <= {0, 1}
    assert mean_iou(res.masks, gt, 1, 2) > 0.5
    assert (res.masks[gt == 1] == 1).mean() < 0.05  # the disc is not taken
    info = res.info["objects"]["1"]
    assert info["seed_tracks"] > 0 and info["member_tracks"] >= info["seed_tracks"] // 2


def test_two_objects_keep_their_sparse_ids_and_a_later_frame_prompt_works(scene):
    frames, gt, ts = scene
    prompts = [click(3, 0, interior_point(gt[0] == 1)), click(7, 9, interior_point(gt[9] == 2))]
    res = TrackFollower()(frames, ts, prompts)
    assert set(np.unique(res.masks)) <= {0, 3, 7}
    assert mean_iou(res.masks, gt, 3, 1) > 0.5
    assert mean_iou(res.masks, gt, 7, 2) > 0.4  # prompted on frame 9, followed both ways


def test_carried_masks_alone_follow_the_object(scene):
    frames, gt, ts = scene
    carried = {5: {0: gt[0] == 1, 1: gt[1] == 1}}
    res = TrackFollower()(frames, ts, [], carried)
    assert mean_iou(res.masks, gt, 5, 1) > 0.5


def test_a_click_far_from_every_track_gives_an_empty_object_not_a_crash(scene):
    frames, gt, ts = scene
    empty = TrackSet(
        ts.tracks[:0], ts.visibility[:0], ts.query_frame[:0], ts.prob[:0], ts.moving[:0]
    )
    res = TrackFollower()(frames, empty, [click(1, 0, (10.0, 10.0))])
    assert not res.masks.any()
    assert "no track was followed" in " ".join(res.info["objects"]["1"]["notes"])


def test_negative_clicks_never_join_and_runs_are_deterministic(scene):
    frames, gt, ts = scene
    pos = interior_point(gt[0] == 2)
    neg = interior_point(gt[0] == 1)  # the other object: clicked as "not this"
    a = TrackFollower()(frames, ts, [click(1, 0, pos, negative=[neg])])
    b = TrackFollower()(frames, ts, [click(1, 0, pos, negative=[neg])])
    np.testing.assert_array_equal(a.masks, b.masks)
    assert (a.masks[0][gt[0] == 1] == 1).mean() < 0.05
