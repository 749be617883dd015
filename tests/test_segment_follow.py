"""The weight-free prompted follower (moseg/segmentation/follow.py) on a small rendered clip
tracked by the project's real OpenCV tracker, so the tracks have the smearing, losses and
re-seeding of real ones.

The clip (12 frames, 160 x 224, camera panning 1.5, 0.5 px/frame over a blocky texture):
object A, a textured reddish 90 x 50 bar moving (5, 1) px/frame, and object B, a textured bluish
disc of radius 24 moving (-4, 0) px/frame; they never touch. A is about 4,500 px, 13 % of the
frame, B 1,800 px."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moseg.densify.base import TrackSet
from moseg.densify.weight_free import WeightFreeDensifier
from moseg.prep.trackers.flow import FlowTracker
from moseg.segmentation.follow import TrackFollower, _inherit, _split_tracks
from moseg.segmentation.prompts import FramePrompt, interior_point

T, H, W = 12, 160, 224
PAN = (1.5, 0.5)
BAR = dict(x0=30.0, y0=30.0, w=90, h=50, v=(5.0, 1.0), tint=(220, 60, 40))
DISC = dict(cx=175.0, cy=120.0, r=24, v=(-4.0, 0.0), tint=(40, 70, 220))


def _blocks(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """A blocky random texture [h, w, 3] float (corners for the tracker to hold on to)."""
    small = rng.integers(30, 226, size=(h // cell + 2, w // cell + 2, 3)).astype(np.float32)
    return np.kron(small, np.ones((cell, cell, 1), np.float32))[:h, :w]


def render(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(frames [T, H, W, 3] uint8, gt [T, H, W] uint8)`` with 1 = bar A, 2 = disc B."""
    rng = np.random.default_rng(seed)
    bg = _blocks(rng, H + 40, W + 40, 6)
    tex_a = 0.6 * _blocks(rng, 64, 128, 5) + 0.4 * np.array(BAR["tint"], np.float32)
    tex_b = 0.6 * _blocks(rng, 64, 64, 5) + 0.4 * np.array(DISC["tint"], np.float32)
    yy, xx = np.mgrid[:H, :W]
    frames = np.zeros((T, H, W, 3), np.uint8)
    gt = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        ox, oy = int(round(4 + PAN[0] * t)), int(round(4 + PAN[1] * t))
        img = bg[oy : oy + H, ox : ox + W].copy()
        x0, y0 = round(BAR["x0"] + BAR["v"][0] * t), round(BAR["y0"] + BAR["v"][1] * t)
        a = (xx >= x0) & (xx < x0 + BAR["w"]) & (yy >= y0) & (yy < y0 + BAR["h"])
        cx, cy = round(DISC["cx"] + DISC["v"][0] * t), round(DISC["cy"] + DISC["v"][1] * t)
        b = (xx - cx) ** 2 + (yy - cy) ** 2 <= DISC["r"] ** 2
        img[a] = tex_a[yy[a] - y0, xx[a] - x0]
        img[b] = tex_b[yy[b] - cy + 32, xx[b] - cx + 32]
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        gt[t][a], gt[t][b] = 1, 2
    return frames, gt


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, TrackSet]:
    frames, gt = render()
    res = FlowTracker(progress=False)(frames)
    n = len(res.query_frame)
    # no classifier: the follower must not need its probabilities
    ts = TrackSet(
        res.tracks, res.visibility, res.query_frame, np.full(n, np.nan, np.float32),
        np.zeros(n, bool),
    )  # fmt: skip
    return frames, gt, ts


def click(obj: int, frame: int, xy, negative=()) -> FramePrompt:
    pts = np.array([xy, *negative], np.float32).reshape(-1, 2)
    return FramePrompt(obj, frame, pts, np.array([1] + [0] * len(negative), np.int32))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def mean_iou(masks: np.ndarray, gt: np.ndarray, value: int, gt_id: int) -> float:
    return float(np.mean([iou(m == value, g == gt_id) for m, g in zip(masks, gt, strict=True)]))


# Thresholds. The masks come from 8 px-grid tracks splatted and cut by GrabCut: a boundary off by
# up to one grid cell all round the bar (perimeter 280 px) changes ~2,200 of its 4,500 px, an
# IoU of ~0.67 in the worst case, and the disc (perimeter 150 px) ~0.6. A flood into the
# background or a jump to the other object gives an IoU far below (the frame is 8 x the bar).
IOU_BAR, IOU_DISC = 0.65, 0.55


def test_one_click_follows_the_clicked_object_only(scene):
    frames, gt, ts = scene
    res = TrackFollower()(frames, ts, [click(1, 0, interior_point(gt[0] == 1))])
    assert res.masks.shape == (T, H, W) and res.masks.dtype == np.uint8
    assert set(np.unique(res.masks)) <= {0, 1}
    assert mean_iou(res.masks, gt, 1, 1) > IOU_BAR
    assert (res.masks[gt == 2] == 1).mean() < 0.02  # the disc is not taken
    info = res.info
    assert info["method"] == "weight_free"
    obj = info["objects"]["1"]
    assert obj["seed_tracks"] >= 3 and obj["member_tracks"] > 5 * obj["seed_tracks"]
    assert obj["frames_without_mask"] == []
    json.dumps(info)  # JSON-able


def test_the_other_click_gives_the_other_object(scene):
    frames, gt, ts = scene
    res = TrackFollower()(frames, ts, [click(1, 0, interior_point(gt[0] == 2))])
    assert mean_iou(res.masks, gt, 1, 2) > IOU_DISC
    assert (res.masks[gt == 1] == 1).mean() < 0.02


@pytest.mark.slow
def test_two_objects_keep_their_ids_1_and_3(scene):
    frames, gt, ts = scene
    prompts = [click(1, 0, interior_point(gt[0] == 1)), click(3, 0, interior_point(gt[0] == 2))]
    res = TrackFollower()(frames, ts, prompts)
    assert set(np.unique(res.masks)) == {0, 1, 3}
    assert mean_iou(res.masks, gt, 1, 1) > IOU_BAR
    assert mean_iou(res.masks, gt, 3, 2) > IOU_DISC
    assert sorted(res.info["objects"]) == ["1", "3"]


def test_a_prompt_on_a_later_frame_is_followed_both_ways(scene):
    frames, gt, ts = scene
    res = TrackFollower()(frames, ts, [click(2, 7, interior_point(gt[7] == 2))])
    assert mean_iou(res.masks, gt, 2, 2) > IOU_DISC
    assert iou(res.masks[0] == 2, gt[0] == 2) > IOU_DISC  # frame 0, seven frames before
    assert res.info["objects"]["2"]["key_frames"] == [7]


@pytest.mark.slow
def test_a_box_around_an_object(scene):
    frames, gt, ts = scene
    ys, xs = np.nonzero(gt[0] == 1)
    box = np.array([xs.min() - 6, ys.min() - 6, xs.max() + 6, ys.max() + 6], np.float32)
    res = TrackFollower()(frames, ts, [FramePrompt(1, 0, box=box)])
    assert mean_iou(res.masks, gt, 1, 1) > IOU_BAR
    assert (res.masks[gt == 2] == 1).mean() < 0.02


@pytest.mark.slow
def test_a_negative_click_removes_its_region(scene):
    """Positive click on the bar's left end, negative on its right end: the bar is one rigid
    object, so without the negative click the right end is taken (checked first), with it the
    right quarter stays mostly out while the left half stays in."""
    frames, gt, ts = scene
    ys, xs = np.nonzero(gt[0] == 1)
    x0, x1, yc = xs.min(), xs.max(), float(ys.mean())
    pos, neg = (x0 + 12.0, yc), (x1 - 12.0, yc)

    def parts(masks):
        out = []
        for t in range(T):
            ys_t, xs_t = np.nonzero(gt[t] == 1)
            lo, hi = xs_t.min(), xs_t.max()
            bar = gt[t] == 1
            cols = np.arange(W)[None, :]
            left = bar & (cols < lo + (hi - lo) // 2)
            right = bar & (cols > hi - (hi - lo) // 4)
            out.append(((masks[t] == 1)[left].mean(), (masks[t] == 1)[right].mean()))
        return np.array(out).mean(0)

    left, right = parts(TrackFollower()(frames, ts, [click(1, 0, pos)]).masks)
    assert left > 0.8 and right > 0.6
    res = TrackFollower()(frames, ts, [click(1, 0, pos, negative=[neg])])
    left, right = parts(res.masks)
    assert left > 0.7 and right < 0.3


@pytest.mark.slow
def test_carried_masks_alone_follow_the_object(scene):
    frames, gt, ts = scene
    carried = {4: {0: gt[0] == 2, 1: gt[1] == 2, 2: gt[2] == 2}}
    res = TrackFollower()(frames, ts, [], carried)
    assert set(np.unique(res.masks)) <= {0, 4}
    assert mean_iou(res.masks[3:], gt[3:], 4, 2) > IOU_DISC
    assert res.info["objects"]["4"]["key_frames"] == [0, 1, 2]


@pytest.mark.slow
def test_carried_masks_and_a_new_objects_click_together(scene):
    frames, gt, ts = scene
    carried = {1: {0: gt[0] == 1, 1: gt[1] == 1}}
    res = TrackFollower()(frames, ts, [click(2, 0, interior_point(gt[0] == 2))], carried)
    assert mean_iou(res.masks, gt, 1, 1) > IOU_BAR
    assert mean_iou(res.masks, gt, 2, 2) > IOU_DISC


@pytest.mark.slow
def test_no_track_near_the_click_gives_an_empty_object_with_a_note(scene):
    frames, gt, ts = scene
    # keep only the tracks far from the bottom-left corner on frame 0, then click there
    far = ~((ts.tracks[:, 0, 0] < 80) & (ts.tracks[:, 0, 1] > 90))
    sub = ts.subset(far)
    prompts = [click(1, 0, (20.0, 140.0)), click(2, 0, interior_point(gt[0] == 1))]
    res = TrackFollower()(frames, sub, prompts)
    assert not (res.masks == 1).any()
    notes = " ".join(res.info["objects"]["1"]["notes"])
    assert "no visible track near the click" in notes and "no mask" in notes
    assert res.info["objects"]["1"]["frames_without_mask"] == list(range(T))
    assert mean_iou(res.masks, gt, 2, 1) > IOU_BAR  # the other object is unaffected


def test_no_tracks_at_all_and_no_prompts(scene):
    frames, gt, ts = scene
    res = TrackFollower()(
        frames, ts.subset(np.zeros(len(ts.query_frame), bool)), [click(1, 0, (50, 50))]
    )
    assert res.masks.shape == (T, H, W) and not res.masks.any()
    assert "no mask" in " ".join(res.info["objects"]["1"]["notes"])
    res = TrackFollower()(frames, ts, [])
    assert not res.masks.any() and res.info["objects"] == {}


@pytest.mark.slow
def test_deterministic(scene):
    frames, gt, ts = scene
    prompts = [click(1, 0, interior_point(gt[0] == 1)), click(3, 5, interior_point(gt[5] == 2))]
    a = TrackFollower()(frames, ts, prompts)
    b = TrackFollower()(frames, ts, prompts)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.info["objects"] == b.info["objects"]


def test_bad_inputs_raise(scene):
    frames, gt, ts = scene
    with pytest.raises(ValueError):
        TrackFollower()(frames, ts, [click(1, T, (50, 50))])  # frame past the chunk
    with pytest.raises(ValueError):
        TrackFollower()(frames, ts, [click(255, 0, (50, 50))])  # id does not fit uint8 masks
    with pytest.raises(ValueError):
        TrackFollower()(frames, ts, [], {1: {0: np.zeros((H // 2, W), bool)}})  # mask size
    with pytest.raises(ValueError):
        TrackFollower(vote_frac=0.0)


def test_densifier_settings():
    assert TrackFollower().densifier.gc_sure_fg == 0.95
    assert TrackFollower(densifier={"gc_iters": 2}).densifier.gc_iters == 2
    d = WeightFreeDensifier(sigma=4.0)
    assert TrackFollower(densifier=d).densifier is d


def test_split_tracks_cuts_a_track_into_its_runs():
    """A track that is on object 3 for its first two frames and then on the background becomes
    two densifier tracks: object-3 evidence, then background evidence."""
    tr = np.zeros((2, 4, 2), np.float32)
    vis = np.array([[1, 1, 1, 1], [1, 1, 0, 1]], bool)
    ts = TrackSet(tr, vis, np.zeros(2, np.int32), np.zeros(2, np.float32), np.zeros(2, bool))
    owner = np.array([[3, 3, 0, 0], [0, 0, 0, 0]], np.uint8)
    out, groups = _split_tracks(ts, owner)
    assert sorted(groups.tolist()) == [0, 0, 3]
    on3 = out.visibility[groups == 3]
    np.testing.assert_array_equal(on3, [[1, 1, 0, 0]])
    assert out.visibility[groups == 0].sum() == 2 + 3


def test_new_points_take_their_neighbours_label():
    xy = np.array([[0, 0], [8, 0], [16, 0], [100, 100], [4, 0], [104, 100], [300, 300]], float)
    known = np.arange(4)
    lab = np.array([1, 1, 0, 2], np.int8)
    got = _inherit(xy, known, lab, np.array([4, 5, 6]), radius=16.0)
    np.testing.assert_array_equal(got, [1, 2, 0])  # majority, excluded, nobody near
