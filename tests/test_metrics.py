"""DAVIS J&F metrics and protocols (moseg.metrics) on hand-computed cases.

Every expected number below was worked out by hand (the derivation is in the comment next to
it); none comes from running the code under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from moseg.metrics import (
    PROTOCOLS,
    VOID_LABEL,
    Protocol,
    ShapeMismatchError,
    TooManyObjectsError,
    aggregate,
    boundary_f,
    boundary_tolerance,
    decay_bin_edges,
    evaluate_sequence,
    get_protocol,
    pairwise_scores,
    region_iou,
    seg_to_boundary,
    statistics,
)


def square(h: int, w: int, y: int, x: int, size: int) -> np.ndarray:
    """[H, W] bool with a size x size square whose top-left pixel is (y, x)."""
    m = np.zeros((h, w), dtype=bool)
    m[y : y + size, x : x + size] = True
    return m


def pixel(h: int, w: int, y: int, x: int) -> np.ndarray:
    return square(h, w, y, x, 1)


# --------------------------------------------------------------------------------------------
# J


def test_iou_empty_masks():
    empty = np.zeros((1, 5, 5), dtype=bool)
    one = empty.copy()
    one[0, 1, 1] = True
    assert region_iou(empty, empty).tolist() == [1.0]  # both empty: a perfect frame
    assert region_iou(one, empty).tolist() == [0.0]
    assert region_iou(empty, one).tolist() == [0.0]


def test_iou_shifted_square_and_frames():
    gt = square(30, 30, 5, 5, 10)
    shifted = square(30, 30, 5, 7, 10)  # 2 px to the right: overlap 10 x 8 = 80, union 120
    j = region_iou(np.stack([gt, gt]), np.stack([gt, shifted]))
    assert j.shape == (2,)
    assert j[0] == 1.0
    assert j[1] == pytest.approx(80 / 120)
    assert region_iou(gt, shifted).shape == ()  # one frame in, 0-d out


def test_iou_void_pixels_are_excluded():
    gt = square(12, 12, 2, 2, 4)  # 16 px
    extra = square(12, 12, 8, 8, 2)  # 4 px
    pred = gt | extra
    assert float(region_iou(gt, pred)) == pytest.approx(16 / 20)
    assert float(region_iou(gt, pred, void=extra)) == 1.0
    # void over the top half of the object; the prediction has only the bottom half
    top = square(12, 12, 2, 2, 4) & (np.arange(12)[:, None] < 4)
    assert float(region_iou(gt, gt & ~top, void=top)) == 1.0
    # all pixels void: nothing left on either side, which counts as a perfect frame
    assert float(region_iou(gt, extra, void=np.ones_like(gt))) == 1.0


# --------------------------------------------------------------------------------------------
# boundary map

# rectangle rows 1..3, cols 2..4 in a 6 x 7 frame. A pixel is boundary when it differs from its
# right, lower or lower-right neighbour: the outline of rows 0..3, cols 1..4, i.e. shifted half a
# pixel towards the origin (the row above and column left of the object, and its own last row
# and column).
RECT_BOUNDARY = np.array(
    [
        [0, 1, 1, 1, 1, 0, 0],
        [0, 1, 0, 0, 1, 0, 0],
        [0, 1, 0, 0, 1, 0, 0],
        [0, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=bool,
)


def test_boundary_of_rectangle():
    rect = np.zeros((6, 7), dtype=bool)
    rect[1:4, 2:5] = True
    b = seg_to_boundary(rect)
    assert b.dtype == bool
    np.testing.assert_array_equal(b, RECT_BOUNDARY)


def test_boundary_at_bottom_right_border():
    # object in the bottom-right 2 x 2 of a 3 x 3 frame. Last row: right neighbour only; last
    # column: lower neighbour only; the corner never. So (1, 2) and (2, 1) are not boundary
    # although they are object pixels on the frame's edge.
    seg = np.zeros((3, 3), dtype=bool)
    seg[1:, 1:] = True
    expected = np.array([[1, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(seg_to_boundary(seg), expected)


def test_boundary_full_empty_and_single_pixel():
    assert not seg_to_boundary(np.ones((4, 5), dtype=bool)).any()  # the frame edge is no boundary
    assert not seg_to_boundary(np.zeros((4, 5), dtype=bool)).any()
    # one pixel at (2, 2): itself (its right neighbour differs), the pixel left of it, above it
    # and above-left: a 2 x 2 block
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(seg_to_boundary(pixel(5, 5, 2, 2)), expected)
    # one-row frame: only right neighbours are compared, the last pixel never counts
    row = np.array([[0, 1, 1, 0, 1]], dtype=bool)
    np.testing.assert_array_equal(seg_to_boundary(row), [[1, 0, 1, 1, 0]])


def test_boundary_vectorised_over_frames():
    rect = np.zeros((6, 7), dtype=bool)
    rect[1:4, 2:5] = True
    frames = np.stack([rect, np.zeros_like(rect), rect])
    b = seg_to_boundary(frames)
    assert b.shape == (3, 6, 7)
    np.testing.assert_array_equal(b[0], RECT_BOUNDARY)
    assert not b[1].any()
    np.testing.assert_array_equal(b[2], RECT_BOUNDARY)


# --------------------------------------------------------------------------------------------
# F


def test_tolerance():
    # sqrt(480^2 + 854^2) = 979.65; x 0.008 = 7.84 -> 8
    assert boundary_tolerance(480, 854) == 8
    # sqrt(200) = 14.14; x 0.008 = 0.11 -> 1
    assert boundary_tolerance(10, 10) == 1
    # sqrt(100^2 + 200^2) = 223.6; x 0.008 = 1.79 -> 2
    assert boundary_tolerance(100, 200) == 2
    # sqrt(2) * 1000 = 1414.2; x 0.008 = 11.3 -> 12
    assert boundary_tolerance(1000, 1000) == 12
    assert boundary_tolerance(480, 854, bound_th=3) == 3  # >= 1 means pixels


def test_f_empty_masks():
    empty = np.zeros((1, 10, 10), dtype=bool)
    obj = square(10, 10, 3, 3, 3)[None]
    assert boundary_f(empty, empty).tolist() == [1.0]  # P = R = 1
    assert boundary_f(empty, obj).tolist() == [0.0]  # P = 0, R = 1
    assert boundary_f(obj, empty).tolist() == [0.0]  # P = 1, R = 0


def test_f_one_pixel_objects():
    # 40 x 40: tolerance ceil(0.008 * 56.6) = 1, and disk(1) is a plus-shaped cross.
    # A pixel at (10, 10) has the boundary block rows 9..10, cols 9..10.
    gt = pixel(40, 40, 10, 10)
    assert float(boundary_f(gt, gt)) == 1.0
    # 1 px to the right: block cols 10..11; every pixel is at most 1 px (4-neighbour) away
    assert float(boundary_f(gt, pixel(40, 40, 10, 11))) == 1.0
    # 1 px diagonally: block rows 10..11, cols 10..11. (11, 11) has no 4-neighbour in the other
    # block, the 3 others do: P = R = 3/4, F = 3/4
    assert float(boundary_f(gt, pixel(40, 40, 11, 11))) == 0.75
    # 4 px away: the blocks are 3 px apart, nothing matches: P = R = 0 -> F = 0
    assert float(boundary_f(gt, pixel(40, 40, 10, 14))) == 0.0


def test_f_tolerance_in_pixels():
    # bound_th = 2 (pixels). GT block cols 9..10, prediction shifted by 3: block cols 12..13.
    # (y, 12) is 2 px from (y, 10): matched; (y, 13) is 3 px away: not. P = R = 1/2, F = 1/2.
    gt = pixel(40, 40, 10, 10)
    pred = pixel(40, 40, 10, 13)
    assert float(boundary_f(gt, pred, bound_th=2)) == 0.5


def test_f_square_at_davis_resolution():
    # 480 x 854: tolerance 8 px. A 100 x 100 square at rows/cols 100..199 has the boundary
    # outline of rows/cols 99..199 (400 px). Shifted right by s the outline is at cols 99+s..199+s.
    gt = square(480, 854, 100, 100, 100)
    assert float(boundary_f(gt, square(480, 854, 100, 108, 100))) == 1.0  # s = 8: all within 8
    # s = 9, prediction outline: top and bottom rows cols 108..208: cols 108..207 match (at most
    # 8 px from the GT's rows, which end at col 199), col 208 does not -> 2 x 100. Left column
    # (col 108, rows 100..198): 9 px from the GT's left column, matched only within 8 rows of the
    # GT's top or bottom row: rows 100..107 and 191..198 -> 16. Right column (col 208): 9 px from
    # everything -> 0. P = 216 / 400 = 0.54, and R = 0.54 by symmetry, so F = 0.54.
    assert float(boundary_f(gt, square(480, 854, 100, 109, 100))) == pytest.approx(0.54)


def test_f_void_removes_boundaries():
    # 12 x 12: tolerance 1. GT square rows/cols 2..5 (outline 16 px); the prediction adds a 2 x 2
    # block at rows/cols 8..9 (outline rows/cols 7..9, 8 px, far from the GT).
    gt = square(12, 12, 2, 2, 4)
    extra = square(12, 12, 8, 8, 2)
    pred = gt | extra
    # P = 16 / 24 = 2/3, R = 1: F = 2 * 2/3 / (5/3) = 0.8
    assert float(boundary_f(gt, pred)) == pytest.approx(0.8)
    assert float(boundary_f(gt, pred, void=extra)) == 1.0


def _brute_force_f(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """F of two [H, W] masks straight from the definition, with Python loops."""
    h, w = gt.shape

    def boundary(m):
        out = set()
        for y in range(h):
            for x in range(w):
                if y == h - 1 and x == w - 1:
                    continue
                if y == h - 1:
                    neighbours = [(y, x + 1)]
                elif x == w - 1:
                    neighbours = [(y + 1, x)]
                else:
                    neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
                if any(m[y, x] != m[n] for n in neighbours):
                    out.add((y, x))
        return out

    def matched(a, b):  # pixels of a with a pixel of b at squared distance <= radius^2
        return sum(
            any((ya - yb) ** 2 + (xa - xb) ** 2 <= radius**2 for yb, xb in b) for ya, xa in a
        )

    bg, bp = boundary(gt), boundary(pred)
    p = 1.0 if not bp else matched(bp, bg) / len(bp)
    r = 1.0 if not bg else matched(bg, bp) / len(bg)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def test_f_equals_brute_force_definition():
    rng = np.random.default_rng(0)
    for trial in range(12):
        h, w = rng.integers(3, 14, size=2)
        gt = rng.random((h, w)) < rng.uniform(0.1, 0.6)
        pred = rng.random((h, w)) < rng.uniform(0.1, 0.6)
        radius = 1 + trial % 3
        got = float(boundary_f(gt, pred, bound_th=radius))
        assert got == pytest.approx(_brute_force_f(gt, pred, radius), abs=1e-12)


def test_pairwise_scores_equal_single_pair_functions():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 4, size=(3, 23, 31))
    pred = rng.integers(0, 6, size=(3, 23, 31))
    gt[:, :8, :8] = 2  # a large object next to the frame's corner
    void = rng.random(gt.shape) < 0.1
    for bound_th in (0.008, 2):
        j, f = pairwise_scores(gt, pred, 3, 5, void, bound_th)
        assert j.shape == f.shape == (5, 3, 3)
        for a in range(5):
            for b in range(3):
                g, p = gt == b + 1, pred == a + 1
                np.testing.assert_array_equal(j[a, b], region_iou(g, p, void))
                np.testing.assert_array_equal(f[a, b], boundary_f(g, p, void, bound_th))


# --------------------------------------------------------------------------------------------
# statistics


def test_decay_bin_edges_short_sequences():
    # round(linspace(1, n, 5) + 1e-10) - 1
    assert decay_bin_edges(1).tolist() == [0, 0, 0, 0, 0]
    # 1, 1.75, 2.5, 3.25, 4 -> 1, 2, 3 (2.5 rounds up), 3, 4 -> minus 1
    assert decay_bin_edges(4).tolist() == [0, 1, 2, 2, 3]
    assert decay_bin_edges(5).tolist() == [0, 1, 2, 3, 4]
    # 1, 3.25, 5.5, 7.75, 10 -> 1, 3, 6, 8, 10 -> minus 1
    assert decay_bin_edges(10).tolist() == [0, 2, 5, 7, 9]
    for n in (1, 4, 5, 10, 256):  # nothing to wrap below 257 frames
        assert decay_bin_edges(n, True).tolist() == decay_bin_edges(n).tolist()


def test_decay_short_sequences():
    # bins share their edge frame: first = frames e0..e1, last = frames e3..e4
    # 4 frames: first = v0, v1 (0.9); last = v2, v3 (0.5)
    assert statistics([1.0, 0.8, 0.6, 0.4]).decay == pytest.approx(0.4)
    # 5 frames: first = v0, v1 (0.95); last = v3, v4 (0.1)
    assert statistics([1.0, 0.9, 0.5, 0.2, 0.0]).decay == pytest.approx(0.85)
    # 10 frames: first = v0..v2 (1.0); last = v7..v9 (0.0)
    assert statistics([1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0, 0, 0]).decay == 1.0
    assert statistics([0.7]).decay == 0.0
    assert statistics([0.2, 0.4, 0.6, 0.8]).decay == pytest.approx(-0.4)  # improving: negative


def test_decay_long_sequence_official_overflow():
    # 300 frames: 1, 75.75, 150.5, 225.25, 300 -> edges 0, 75, 150, 224, 299; the official uint8
    # cast turns 299 into 43, so its last bin (frames 224..43) is empty and the decay NaN.
    assert decay_bin_edges(300).tolist() == [0, 75, 150, 224, 299]
    assert decay_bin_edges(300, official_decay_bins=True).tolist() == [0, 75, 150, 224, 43]
    values = np.where(np.arange(300) < 76, 1.0, 0.0)  # perfect on the first bin only
    assert statistics(values).decay == 1.0
    assert math.isnan(statistics(values, official_decay_bins=True).decay)
    # 1100 frames: edges 0, 275, 550, 824, 1099 -> official 0, 19, 38, 56, 75
    assert decay_bin_edges(1100, True).tolist() == [0, 19, 38, 56, 75]
    values = np.where(np.arange(1100) < 20, 1.0, 0.0)
    assert statistics(values).decay == pytest.approx(20 / 276)  # mean of frames 0..275
    assert statistics(values, official_decay_bins=True).decay == 1.0  # frames 0..19 vs 56..75
    # the official edges are exactly numpy's float -> uint8 cast of the same numbers
    for n in (257, 300, 1100, 5000):
        raw = np.round(np.linspace(1, n, 5) + 1e-10) - 1
        assert decay_bin_edges(n, True).tolist() == raw.astype(np.uint8).tolist()


def test_mean_and_recall():
    s = statistics([0.5, 0.51, 1.0, 0.0])
    assert s.mean == pytest.approx(2.01 / 4)
    assert s.recall == 0.5  # strictly above 0.5: 0.51 and 1.0
    s = statistics([1.0, np.nan, 0.0])
    assert s.mean == 0.5  # NaN ignored by the mean ...
    assert s.recall == pytest.approx(1 / 3)  # ... and not recalled
    with pytest.raises(ValueError):
        statistics([])


# --------------------------------------------------------------------------------------------
# protocols


def labels(t: int, h: int, w: int) -> np.ndarray:
    return np.zeros((t, h, w), dtype=np.uint8)


def test_mos_merges_all_ids():
    gt = labels(3, 40, 60)
    gt[:, 5:11, 5:11] = 1
    gt[:, 5:11, 30:36] = 2
    pred = labels(3, 40, 60)
    pred[gt > 0] = 7  # one predicted id over both objects
    s = evaluate_sequence(gt, pred, "mos", name="two")
    assert s.jf == 1.0 and s.j.mean == 1.0 and s.f.mean == 1.0
    assert len(s.objects) == 1
    assert s.objects[0].gt_ids == (1, 2) and s.objects[0].pred_ids == (7,)
    swapped = np.where(gt == 1, 4, np.where(gt == 2, 3, 0)).astype(np.uint8)
    assert evaluate_sequence(gt, swapped, "mos").jf == 1.0
    # every non-zero predicted value is foreground, 255 included
    assert evaluate_sequence(gt, np.where(gt > 0, 255, 0).astype(np.uint8), "mos").jf == 1.0


def test_mos_half_prediction():
    # two 6 x 6 squares (36 px, outline 24 px each) far apart; the prediction has only the
    # first: J = 36/72 = 0.5; P = 1, R = 24/48 = 0.5, F = 2 * 0.5 / 1.5 = 2/3
    gt = labels(2, 40, 60)
    gt[:, 5:11, 5:11] = 1
    gt[:, 5:11, 30:36] = 2
    pred = np.where(gt == 1, 1, 0).astype(np.uint8)
    s = evaluate_sequence(gt, pred, "mos")
    np.testing.assert_allclose(s.j_per_frame, [0.5, 0.5])
    np.testing.assert_allclose(s.f_per_frame, [2 / 3, 2 / 3])
    assert s.jf == pytest.approx((0.5 + 2 / 3) / 2)
    assert s.j.recall == 0.0 and s.f.recall == 1.0  # 0.5 is not above 0.5, 2/3 is


def test_void_modes():
    # object rows/cols 2..5 (16 px), void block rows/cols 8..9 (4 px) that the prediction covers
    gt = labels(1, 12, 12)
    gt[0, 2:6, 2:6] = 1
    gt[0, 8:10, 8:10] = VOID_LABEL
    pred = np.where(gt > 0, 1, 0).astype(np.uint8)
    excluded = evaluate_sequence(gt, pred, "mos")  # default: void excluded from both masks
    assert excluded.j.mean == 1.0 and excluded.f.mean == 1.0
    assert excluded.objects[0].gt_ids == (1,)
    background = evaluate_sequence(gt, pred, "mos", void="background")
    assert background.j.mean == pytest.approx(16 / 20)
    assert background.f.mean == pytest.approx(0.8)  # P = 16/24, R = 1 (see test_f_void...)
    fine = evaluate_sequence(gt, pred, "fine_grained")
    assert fine.jf == 1.0 and [o.gt_ids for o in fine.objects] == [(1,)]


def moving_squares(t: int = 4) -> np.ndarray:
    gt = labels(t, 48, 64)
    for k in range(t):
        gt[k, 4:14, 4 + k : 14 + k] = 1
        gt[k, 20:30, 30 - k : 40 - k] = 2
        gt[k, 34:44, 10:22] = 3
    return gt


def test_fine_grained_permuted_ids_score_one():
    gt = moving_squares()
    perm = np.array([0, 3, 1, 2], dtype=np.uint8)  # GT 1 -> pred 3, 2 -> 1, 3 -> 2
    s = evaluate_sequence(gt, perm[gt], "fine_grained", name="perm")
    assert s.jf == 1.0
    assert {o.gt_ids: o.pred_ids for o in s.objects} == {(1,): (3,), (2,): (1,), (3,): (2,)}
    # listed in the official order: by matched prediction
    assert [o.pred_ids for o in s.objects] == [(1,), (2,), (3,)]
    # MOS does not care about ids either
    assert evaluate_sequence(gt, perm[gt], "mos").jf == 1.0


def test_fine_grained_more_than_20_objects_is_an_error():
    gt = moving_squares()
    pred = gt.copy()
    pred[0, 0, 0] = 21  # ids count up to the largest one, as in the official code
    with pytest.raises(TooManyObjectsError, match="'crowd'.*21") as info:
        evaluate_sequence(gt, pred, "fine_grained", name="crowd")
    assert isinstance(info.value, ValueError)
    assert len(evaluate_sequence(gt, pred, "fine_grained", max_objects=21).objects) == 3
    pred[0, 0, 0] = 20
    evaluate_sequence(gt, pred, "fine_grained")  # 20 is allowed
    # MOS merges everything: no limit
    pred[0, 0, 0] = 200
    evaluate_sequence(gt, pred, "mos")


def test_fine_grained_missing_prediction_is_padded():
    gt = moving_squares()
    pred = np.where(gt == 1, 1, 0).astype(np.uint8)  # only GT object 1 predicted
    s = evaluate_sequence(gt, pred, "fine_grained")
    by_gt = {o.gt_ids: o for o in s.objects}
    assert set(by_gt) == {(1,), (2,), (3,)}
    assert by_gt[(1,)].pred_ids == (1,) and by_gt[(1,)].jf == 1.0
    for missing in ((2,), (3,)):  # matched to an empty padding mask: J = F = 0 every frame
        assert by_gt[missing].pred_ids == ()
        assert by_gt[missing].j.mean == 0.0 and by_gt[missing].f.mean == 0.0
    assert s.j.mean == pytest.approx(1 / 3) and s.f.mean == pytest.approx(1 / 3)
    # an empty prediction: all three padded
    s = evaluate_sequence(gt, labels(*gt.shape), "fine_grained")
    assert len(s.objects) == 3 and s.jf == 0.0


def test_gt_object_modes():
    gt = moving_squares()
    gt[0][gt[0] == 3] = 0  # object 3 appears from frame 1 on
    pred = gt.copy()
    present = evaluate_sequence(gt, pred, "fine_grained")
    assert [o.gt_ids for o in present.objects] == [(1,), (2,), (3,)]
    assert present.jf == 1.0
    # official: ids 1..max(first frame) = 1..2; object 3 is not scored
    official = evaluate_sequence(gt, pred, "fine_grained", gt_objects="first_frame_max")
    assert sorted(o.gt_ids for o in official.objects) == [(1,), (2,)]
    # a gap in the first frame's ids is an (empty) object of its own there
    gap = moving_squares()
    gap[gap == 2] = 0  # ids 1 and 3 in every frame
    assert [o.gt_ids for o in evaluate_sequence(gap, gap, "fine_grained").objects] == [(1,), (3,)]
    s = evaluate_sequence(gap, gap, "fine_grained", gt_objects="first_frame_max")
    assert sorted(o.gt_ids for o in s.objects) == [(1,), (2,), (3,)]


def test_no_ground_truth_object():
    gt = labels(3, 10, 10)
    pred = labels(3, 10, 10)
    pred[:, 2:4, 2:4] = 1
    s = evaluate_sequence(gt, pred, "fine_grained")
    assert s.objects == [] and math.isnan(s.jf)
    # MOS always has its one (here empty) foreground object
    mos = evaluate_sequence(gt, pred, "mos")
    assert mos.j.mean == 0.0 and mos.f.mean == 0.0
    assert evaluate_sequence(gt, gt, "mos").jf == 1.0  # both empty


@pytest.mark.parametrize("protocol", ["mos", "fine_grained"])
def test_shape_mismatch_is_an_error(protocol):
    gt = labels(5, 12, 16)
    for bad in (labels(4, 12, 16), labels(5, 12, 15)):
        with pytest.raises(ShapeMismatchError) as info:
            evaluate_sequence(gt, bad, protocol, name="bear")
        msg = str(info.value)
        assert "'bear'" in msg and str(bad.shape) in msg and str(gt.shape) in msg
        assert isinstance(info.value, ValueError)


def test_skip_first_last():
    gt = labels(5, 20, 20)
    gt[:, 5:10, 5:10] = 1
    pred = gt.copy()
    pred[0] = 0  # wrong on the first and last frames only
    pred[4] = 0
    all_frames = evaluate_sequence(gt, pred, "mos")
    assert all_frames.j.mean == pytest.approx(3 / 5)
    np.testing.assert_array_equal(all_frames.evaluated_frames, [True] * 5)
    inner = evaluate_sequence(gt, pred, "mos", skip_first_last=True)
    assert inner.j.mean == 1.0 and inner.f.mean == 1.0
    np.testing.assert_array_equal(inner.evaluated_frames, [False, True, True, True, False])
    assert np.isnan(inner.j_per_frame[[0, 4]]).all()
    np.testing.assert_array_equal(inner.j_per_frame[1:4], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="none to evaluate"):
        evaluate_sequence(gt[:2], pred[:2], "mos", skip_first_last=True)


def test_to_dict_is_json():
    gt = moving_squares()
    s = evaluate_sequence(gt, gt, "fine_grained", name="squares", skip_first_last=True)
    d = json.loads(json.dumps(s.to_dict(), allow_nan=False))  # NaN became null
    assert d["name"] == "squares" and d["J&F"] == 1.0
    assert d["J_per_frame"] == [None, 1.0, 1.0, None]
    assert d["protocol"]["name"] == "fine_grained" and d["protocol"]["skip_first_last"]
    assert len(d["objects"]) == 3 and d["objects"][0]["J"]["mean"] == 1.0
    assert "F_per_frame" not in s.to_dict(per_frame=False)


def test_aggregate_mos_is_mean_over_sequences():
    gt = labels(2, 40, 60)
    gt[:, 5:11, 5:11] = 1
    gt[:, 5:11, 30:36] = 2
    good = evaluate_sequence(gt, gt, "mos", name="a")  # J = 1, F = 1
    half = evaluate_sequence(gt, np.where(gt == 1, 1, 0).astype(np.uint8), "mos", name="b")
    agg = aggregate([good, half])  # J = 0.5, F = 2/3 (test_mos_half_prediction)
    assert agg["J-Mean"] == pytest.approx(0.75)
    assert agg["F-Mean"] == pytest.approx((1 + 2 / 3) / 2)
    assert agg["J&F-Mean"] == pytest.approx((0.75 + 5 / 6) / 2)
    assert agg["J-Recall"] == 0.5 and agg["F-Recall"] == 1.0
    assert agg["num_sequences"] == 2 and agg["num_objects"] == 2 and agg["protocol"] == "mos"


def test_aggregate_fine_grained_is_mean_over_objects():
    gt = moving_squares()
    one = np.where(gt == 1, 1, 0).astype(np.uint8)
    seq_a = evaluate_sequence(one, one, "fine_grained", name="a")  # 1 object, J = 1
    pred = np.where(gt == 1, 1, 0).astype(np.uint8)
    seq_b = evaluate_sequence(gt, pred, "fine_grained", name="b")  # J = 1, 0, 0
    # over objects: (1 + 1 + 0 + 0) / 4 = 0.5; a mean over sequences would give (1 + 1/3) / 2
    agg = aggregate([seq_a, seq_b])
    assert agg["J-Mean"] == 0.5 and agg["F-Mean"] == 0.5 and agg["J&F-Mean"] == 0.5
    assert agg["num_objects"] == 4
    with pytest.raises(ValueError, match="different protocols"):
        aggregate([seq_a, evaluate_sequence(one, one, "mos")])
    assert math.isnan(aggregate([])["J-Mean"])


def test_protocols_are_parameters():
    assert get_protocol("mos").merge_objects and not get_protocol("fine_grained").merge_objects
    p = get_protocol("fine_grained", skip_first_last=True, max_objects=None)
    assert p.skip_first_last and p.max_objects == 20
    custom = Protocol("mine", merge_objects=True, official_decay_bins=True)
    assert get_protocol(custom) is custom
    assert PROTOCOLS["davis2016_toolkit"].skip_first_last
    assert PROTOCOLS["davis2016_toolkit"].official_decay_bins
    official = PROTOCOLS["davis2017_unsupervised"]
    assert not official.skip_first_last and official.gt_objects == "first_frame_max"
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("davis2030")
    with pytest.raises(ValueError):
        Protocol("x", merge_objects=True, void="ignore")


def test_void_label_is_the_data_contract_one():
    from moseg.io.contract import MASK_VOID

    assert VOID_LABEL == MASK_VOID
