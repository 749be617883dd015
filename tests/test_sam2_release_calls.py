"""The SAM2 densifier against the release, call by call.

A deterministic fake SAM2 records every call the densifier makes on a small scripted video, and
the tests compare the record with the calls that the release's ``sam2/run_sam2.py``
(``../shared/reference/segany_release/sam2/run_sam2.py``) makes on the same tracks. The expected
calls are worked out by hand from that file, step by step in the comments (``L<a>-<b>`` are its
line numbers); they are not a recording of our own output.

The scene (``T = 20`` frames of ``48 x 128``). What a click "hits" and what SAM2 "answers":

==========  ==========================================  ===========================================
region      hit box (rows, cols), a click there selects  answer: the mask returned for it
==========  ==========================================  ===========================================
1 (A left)  10-21, 10-29; on frame 16: 10-21, 10-49      its hit box
2 (A right) 10-21, 30-69; on frame 16: 10-21, 50-69      its hit box
3 (B)       30-41, 20-59                                 its hit box
4 (C)       14-17, 80-115                                a strip 19-20, 80-115 (no track on it)
5           frame 0 only: 14-17, 10-13 (over region 1)   frame 0 only: a strip 19-20, 10-13
==========  ==========================================  ===========================================

A and B are the moving objects of the ground truth; on frame 16 SAM2 "splits" A differently
(region 1 grows), which is what makes an object's first click there too small. C is a textureless
patch whose click returns a mask beside the tracks. Moving tracks, all at integer pixels, in
track order (three static tracks are interleaved and must be ignored):

- L: y = 16, x = 10, 12, 14, 16, 18, 20, 22, 26 (on region 1), visible on frames 4-19
- B: y = 36, x = 24, 28, ..., 56 (9 tracks, on region 3), visible on frames 0-3
- R: y = 16, x = 32, 36, 40, 44, 52, 60, 68 (on region 2), visible on frames 4-19
- C: y = 16, x = 82, 86, ..., 110 (8 tracks, on region 4), visible on frames 4-19

All points of a click round lie on one row, so the medoid (``find_dense_pts``, L59-68: the point
with the least summed distance) is the median, and every set clicked has an odd size: no ties.
"""

from __future__ import annotations

import numpy as np
import pytest

from moseg.densify.base import TrackSet
from moseg.densify.sam2 import Sam2Densifier

T, H, W = 20, 48, 128

# region -> {frame: (row0, row1, col0, col1)} inclusive, for the hit boxes and the answers
ALL = range(T)
HIT = {
    1: {f: (10, 21, 10, 49) if f == 16 else (10, 21, 10, 29) for f in ALL},
    2: {f: (10, 21, 50, 69) if f == 16 else (10, 21, 30, 69) for f in ALL},
    3: {f: (30, 41, 20, 59) for f in ALL},
    4: {f: (14, 17, 80, 115) for f in ALL},
    5: {0: (14, 17, 10, 13)},
}
ANSWER = {**HIT, 4: {f: (19, 20, 80, 115) for f in ALL}, 5: {0: (19, 20, 10, 13)}}


def box_mask(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r0 : r1 + 1, c0 : c1 + 1] = True
    return m


def answer(labels: set[int], f: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    for lab in labels:
        if f in ANSWER[lab]:
            m |= box_mask(*ANSWER[lab][f])
    return m


class ScriptedSam2:
    """A deterministic :class:`moseg.densify.sam2.VideoPredictor` that segments by the table
    above and records every call in ``calls``.

    A click selects the regions hit by its positive points (later regions lie on top); with
    ``refine`` the regions of the frame's previous click are kept too, as SAM2's
    ``add_new_points_or_box`` feeds the previous mask of a frame back in. Propagation gives each
    object the answers of every region it was prompted with, on every frame it passes. It also
    checks what real SAM2 would refuse or do: ``propagate`` starts at the earliest prompted frame
    (``propagate_in_video`` with no start, sam2_video_predictor.py: "start from the earliest
    frame with input points"), and ``refine`` only on a frame clicked before."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.prompts: dict[int, dict[int, set[int]]] = {}  # obj -> frame -> regions

    def hit(self, x: float, y: float, f: int) -> int:
        for lab in sorted(HIT, reverse=True):
            if f in HIT[lab]:
                r0, r1, c0, c1 = HIT[lab][f]
                if r0 <= y <= r1 and c0 <= x <= c1:
                    return lab
        return 0

    def load(self, frames: np.ndarray) -> None:
        assert frames.shape == (T, H, W, 3) and frames.dtype == np.uint8
        self.calls.append(("load", len(frames)))

    def reset(self) -> None:
        self.calls.append(("reset",))
        self.prompts = {}

    def click(self, frame, obj_id, points, labels, refine=False) -> np.ndarray:
        self.calls.append(
            (
                "click",
                frame,
                obj_id,
                np.asarray(points).tolist(),
                np.asarray(labels).tolist(),
                refine,
            )
        )
        hits = {self.hit(x, y, frame) for (x, y), lab in zip(points, labels, strict=True) if lab}
        hits -= {0}
        per_frame = self.prompts.setdefault(obj_id, {})
        if refine:
            assert frame in per_frame, "refine on a frame not clicked before"
            hits |= per_frame[frame]
        per_frame[frame] = hits
        return answer(hits, frame)

    def propagate(self, start, reverse):
        self.calls.append(("propagate", start, reverse))
        assert start == min(f for per in self.prompts.values() for f in per)
        for f in range(start, -1, -1) if reverse else range(start, T):
            yield f, {o: answer(set().union(*per.values()), f) for o, per in self.prompts.items()}

    def release(self) -> None:
        self.calls.append(("release",))


def track_set(rows: list[tuple[float, float, list[int], bool]]) -> TrackSet:
    """``rows``: (x, y, visible frames, moving) per track; tracks do not move."""
    n = len(rows)
    xy = np.array([[(x, y)] * T for x, y, _, _ in rows], np.float32)
    vis = np.zeros((n, T), bool)
    for i, (_, _, frames, _) in enumerate(rows):
        vis[i, frames] = True
    moving = np.array([m for *_, m in rows], bool)
    return TrackSet(xy, vis, np.zeros(n, np.int64), moving.astype(np.float32), moving)


TRACK_FIELDS = ("tracks", "visibility", "query_frame", "prob", "moving")
LATE, EARLY = list(range(4, T)), list(range(0, 4))
L = [10, 12, 14, 16, 18, 20, 22, 26]
B = [24, 28, 32, 36, 40, 44, 48, 52, 56]
R = [32, 36, 40, 44, 52, 60, 68]
C = [82, 86, 90, 94, 98, 102, 106, 110]


def scene() -> tuple[np.ndarray, TrackSet]:
    rows = [(5.0, 40.0, list(ALL), False)]
    rows += [(float(x), 16.0, LATE, True) for x in L]
    rows += [(float(x), 36.0, EARLY, True) for x in B]
    rows += [(120.0, 5.0, list(ALL), False)]
    rows += [(float(x), 16.0, LATE, True) for x in R]
    rows += [(float(x), 16.0, LATE, True) for x in C]
    rows += [(64.0, 44.0, list(ALL), False)]
    frames = np.zeros((T, H, W, 3), np.uint8)
    return frames, track_set(rows)


def run(tracks_frames=None, **knobs):
    frames, tracks = tracks_frames or scene()
    fake = ScriptedSam2()
    res = Sam2Densifier(predictor=fake, **knobs)(frames, tracks)
    return fake, res


def click(frame, obj, *xy, refine=False):
    return ("click", frame, obj, [[float(x), float(y)] for x, y in xy], [1] * len(xy), refine)


# The release on the scene, derived by hand.
#
# main() L620-631: N = 32 moving tracks ("dynamic" tracks), T = 20. max_iterations =
# min(max(len(range(0, 20, 16)), 5), 10) = min(max(2, 5), 10) = 5 click rounds at most;
# dilation_size = 6 (cv2.dilate, 6x6 ones, iterations=3, dilate_mask L161-170: a mask grows 6 px
# up/left and 9 px down/right). process_invisible_traj L21-57: take_all = (N <= 5) = False.
#
# Round 1 (L30-37): visible per frame: 9 (B) on frames 0-3, 23 (L + R + C) on 4-19;
# top_k = int(20 * 0.2) = 4; np.argsort ascending puts the 23s last in frame order, so the top
# four are 16-19 and the middle one (index 4 // 2 = 2) is frame 18. process_points_with_memory
# L70-140: the median of the 23 points on row 16 (L 8, R 7, C 8) is the 12th, R's x = 44:
# reset_state, click (18, obj 1, [44, 16]) -> region 2 (cols 30-69). Tracks in the mask
# (prompt_mask, L112-115, find_pts_in_mask L435-457): R's 7; in the dilated mask (cols 24-78):
# R's 7 + L's x = 26 = 8. judge L142-159: 8 >= 6; prompt_mask.sum() = 7 > 0 (L124): object 1,
# time 18, tracks = the prompt-mask set R (L126-132). The dilated set (R and L26) leaves (L136).
#
# Round 2: left L' (L without 26, 7), C 8, B 9. Counts 9 on 0-3, 15 on 4-19 -> frame 18.
# Median of the 15 points (L' 7, C 8): the 8th, C's x = 82: reset, click (18, 1, [82, 16]) ->
# region 4, whose answer is the strip rows 19-20: no track in it (prompt_mask.sum() = 0); the
# dilated strip (rows 13-29, cols 74-124) holds C's 8, so judge() says yes, but L124 needs a
# track in the mask too: rejected. C leaves (L136).
#
# Round 3: left L' 7, B 9: counts 9 on 0-3, 7 on 4-19; the top four are 0-3 -> frame 2. Median
# of B on row 36: x = 40: reset, click (2, 1, [40, 36]) -> region 3: all 9 in the mask and in
# the dilated mask: object 2, time 2, tracks B.
#
# Round 4: left L' 7 (>= 6, L54): counts 0 on 0-3, 7 on 4-19 -> frame 18; median x = 16:
# reset, click (18, 1, [16, 16]) -> region 1: 7 in the mask, 7 in the dilated one (>= 6):
# object 3, time 18, tracks L'. Nothing is left: 0 < 6 ends the loop (L54-55).
GROUPING = [
    ("reset",),
    click(18, 1, (44, 16)),
    ("reset",),
    click(18, 1, (82, 16)),
    ("reset",),
    click(2, 1, (40, 36)),
    ("reset",),
    click(18, 1, (16, 16)),
]
# Per object, main() L641-718: reset_state; prompt frames q_ts = range(0, 20, 16) = [0, 16],
# the object's time taken out and put first (L642-647); a frame where none of the object's
# tracks is visible is skipped (L659-661); the click is the medoid (L666) with the object's own
# id (L670-676); when fewer than 70 % of the visible tracks fall in the (undilated) mask
# (L681-682), a second click on the same frame with the point nearest the centroid and the two
# farthest from it (find_centroid_and_nearest_farthest L459-492: np.argsort(distances)[-2:],
# in increasing distance). SAM2's add_new_points_or_box replaces the frame's points but feeds
# the frame's previous mask logits back in: refine. Then propagate_in_video forward from the
# earliest prompted frame and, unless frame 0 was prompted (require_reverse, L652, L662-663),
# backward from it (L699-718).
#
# Object 1 (R, time 18): frames [18, 0, 16]. 18: median 44 -> region 2, all 7 in it. 0: R not
# visible. 16: median 44 hits region 1 there (cols 10-49): 32, 36, 40, 44 in it, 4 < 0.7 * 7 =
# 4.9 -> re-prompt. Centroid x = 332 / 7 = 47.43: nearest 44; distances 15.4 (32), 11.4 (36),
# 7.4 (40), 3.4 (44), 4.6 (52), 12.6 (60), 20.6 (68): the two farthest in increasing order are
# 32 then 68. SAM2 now has regions {1} (refined) + {1, 2} = A. Forward from 16, then backward.
OBJECT_1 = [
    ("reset",),
    click(18, 1, (44, 16)),
    click(16, 1, (44, 16)),
    click(16, 1, (44, 16), (32, 16), (68, 16), refine=True),
    ("propagate", 16, False),
    ("propagate", 16, True),
]
# Object 2 (B, time 2): frames [2, 0, 16]. 2 and 0: median 40 -> region 3, all in it. 16: B not
# visible. Frame 0 was prompted: forward from 0 only.
OBJECT_2 = [
    ("reset",),
    click(2, 2, (40, 36)),
    click(0, 2, (40, 36)),
    ("propagate", 0, False),
]
# Object 3 (L', time 18): frames [18, 0, 16]. 18: median 16 -> region 1, all 7. 0: not visible.
# 16: median 16 -> region 1 (cols 10-49), all 7. Forward from 16, then backward.
OBJECT_3 = [
    ("reset",),
    click(18, 3, (16, 16)),
    click(16, 3, (16, 16)),
    ("propagate", 16, False),
    ("propagate", 16, True),
]
# Merging, analyze_frame_merges(iou_threshold=0.9) L513-561 over all 20 frames: object 1's
# mask is A (regions 1 + 2, rows 10-21, cols 10-69), object 3's region 1 lies inside it
# (is_subset(mask3, mask1) L494-501: coverage 1 >= 0.9) on all 20 frames, 20 / 20 >= 0.3:
# final_merges {1: [3]}, groups [[1, 3]], then the unmerged {1, 2, 3} - {1, 3} = {2}: new ids
# {1: [1, 3], 2: [2]} (L558). merge_masks OR-s them (L563-593); put_per_obj_mask L199-207
# paints ids from the highest down: A is 1, B is 2.


def test_calls_and_masks_are_the_releases():
    fake, res = run()
    expected = [("load", T), *GROUPING, *OBJECT_1, *OBJECT_2, *OBJECT_3, ("release",)]
    assert fake.calls == expected
    info = res.info
    assert [r["accepted"] for r in info["rounds"]] == [True, False, True, True]
    assert [(r["inside"], r["covered"]) for r in info["rounds"]] == [(7, 8), (0, 8), (9, 9), (7, 7)]
    assert info["merge_groups"] == [[0, 2], [1]]  # objects 1 + 3, object 2 (0-based)
    parts = [p for o in info["objects"] for p in o["parts"]]
    assert [p["tracks"] for p in parts] == [7, 7, 9]  # R, L', B
    assert parts[0]["reprompted"] == [16] and parts[0]["prompt_frames"] == [18, 16]
    a = box_mask(10, 21, 10, 69)
    b = box_mask(30, 41, 20, 59)
    expected_masks = np.where(a, 1, np.where(b, 2, 0)).astype(np.uint8)
    np.testing.assert_array_equal(res.masks, np.broadcast_to(expected_masks, (T, H, W)))


# take_all: three moving tracks at x = 12, 16, 20 on row 16; 12 is the only one visible on
# frame 0, where it hits region 5, whose answer misses it.
#
# process_invisible_traj L24-26: N = 3 <= 5, take_all. Round 1: visible 1 on frame 0, 3 on 1-19:
# frame 18 (as above); median 16 -> region 1; 3 tracks in the mask and in the dilated mask, so
# judge() says no (3 < 6), but take_all accepts (L124): object 1, time 18, all three tracks.
# 0 left < 6: stop (L54). Object 1: frames [18, 0, 16]. 18: click 16 -> region 1, 3 of 3. 0: only
# x = 12 is visible: click 12 -> region 5, answered by the strip rows 19-20, which misses it:
# 0 < 0.7 -> re-prompt; with one point find_centroid_and_nearest_farthest takes it as the
# nearest and as the farthest (L482-484): [12, 12]. 16: click 16 -> region 1 (cols 10-49), 3 of
# 3. Frame 0 was prompted: forward from 0 only. The object's regions {1, 5}: region 1 on every
# frame (region 5's strip lies inside it on frame 0).
def take_all_scene() -> tuple[np.ndarray, TrackSet]:
    rows = [(12.0, 16.0, list(ALL), True), (16.0, 16.0, list(range(1, T)), True)]
    rows += [(20.0, 16.0, list(range(1, T)), True), (100.0, 40.0, list(ALL), False)]
    return np.zeros((T, H, W, 3), np.uint8), track_set(rows)


def test_take_all_and_a_one_point_reprompt_are_the_releases():
    fake, res = run(take_all_scene())
    assert fake.calls == [
        ("load", T),
        ("reset",),
        click(18, 1, (16, 16)),
        ("reset",),
        click(18, 1, (16, 16)),
        click(0, 1, (12, 16)),
        click(0, 1, (12, 16), (12, 16), refine=True),
        click(16, 1, (16, 16)),
        ("propagate", 0, False),
        ("release",),
    ]
    assert res.info["rounds"][0]["covered"] == 3 and res.info["rounds"][0]["accepted"]
    for f in range(T):
        np.testing.assert_array_equal(res.masks[f], box_mask(*HIT[1][f]).astype(np.uint8))
    # without take_all three tracks are too few: nothing is clicked
    fake, res = run(take_all_scene(), take_all=False)
    assert fake.calls == [] and not res.masks.any() and res.info["rounds"] == []


# --------------------------------------------------------------------------------------------
# each named alternative changes what it names (worked out from the table as above)


def calls_of(fake: ScriptedSam2, kind: str) -> list[tuple]:
    return [c for c in fake.calls if c[0] == kind]


def test_reprompt_coverage_on_the_dilated_mask():
    # object 1 on frame 16: region 1 (cols 10-49) dilated reaches col 58: 32 ... 52 = 5 of 7
    # >= 4.9, so no re-prompt; the masks do not change (the first click already hit region 1)
    fake, res = run(reprompt_coverage_on="dilated_mask")
    assert not any(c[-1] for c in calls_of(fake, "click"))
    assert fake.calls == [c for c in run()[0].calls if not (c[0] == "click" and c[-1])]
    np.testing.assert_array_equal(res.masks, run()[1].masks)


def test_reprompt_pick_farthest_point():
    # farthest-point sampling from 44: 68 (24 px away), then 32 (12 px from both chosen)
    fake, _ = run(reprompt_pick="farthest_point")
    reprompts = [c for c in calls_of(fake, "click") if len(c[3]) > 1]
    assert reprompts == [click(16, 1, (44, 16), (68, 16), (32, 16), refine=True)]


def test_reprompt_mode_replace():
    fake, res = run(reprompt_mode="replace")
    reprompts = [c for c in calls_of(fake, "click") if len(c[3]) > 1]
    assert reprompts == [click(16, 1, (44, 16), (32, 16), (68, 16), refine=False)]
    np.testing.assert_array_equal(res.masks, run()[1].masks)


def test_object_tracks_from_the_dilated_mask():
    # object 1 takes L26 too (8 tracks); the other objects do not change
    _, res = run(object_tracks="dilated_mask")
    assert [p["tracks"] for o in res.info["objects"] for p in o["parts"]] == [8, 7, 9]


def test_prompt_frames_around_canonical():
    # canonical +- 16: objects 1 and 3 (frame 18) get [18, 2], object 2 (frame 2) [2, 18]; none
    # of them is visible on its second frame. Object 1 never clicks frame 16, so it stays
    # region 2 and nothing merges: three objects, each propagated both ways from its one frame
    fake, res = run(prompt_frames="around_canonical")
    assert calls_of(fake, "propagate") == [
        ("propagate", f, rev) for f in (18, 2, 18) for rev in (False, True)
    ]
    assert res.num_objects == 3 and res.info["merge_groups"] == [[0], [1], [2]]


def test_acceptance_without_a_track_in_the_mask():
    # round 2 (C: 8 tracks in the dilated strip, none in the strip) becomes object 2 with no
    # tracks: a session with nothing to prompt; B and L' become objects 3 and 4
    fake, res = run(require_prompt_track=False)
    assert [r["accepted"] for r in res.info["rounds"]] == [True] * 4
    sessions = [i for i, c in enumerate(fake.calls) if c == ("reset",)][4:]
    assert fake.calls[sessions[1] : sessions[2]] == [("reset",)]
    assert [c[2] for c in calls_of(fake, "click")][4:] == [1, 1, 1, 3, 3, 4, 4]
    assert res.info["merge_groups"] == [[0, 3], [1], [2]] and res.num_objects == 2


def test_canonical_rule_ceil_earliest():
    # ceil(0.2 * 20) = 4 top frames, ties to the earlier ones: 4-7 -> 6 (rounds 1, 2 and 4),
    # 0-3 -> 2 (round 3)
    fake, _ = run(canonical_rule="ceil_earliest")
    assert [c[1] for c in calls_of(fake, "click")][:4] == [6, 6, 2, 6]


def test_pixel_lookup_and_tracks_never_seen():
    # three more moving tracks that are never visible: the release counts them (N = 6, no
    # take_all), so the one round (3 tracks in the dilated mask) is rejected and 3 are left;
    # nearest_on_frame leaves them out (N = 3, take_all) and finds the object
    frames, tracks = take_all_scene()
    extra = track_set([(30.0, 30.0, [], True)] * 3)
    tracks = TrackSet(
        *(np.concatenate([getattr(tracks, k), getattr(extra, k)]) for k in TRACK_FIELDS)
    )
    fake, res = run((frames, tracks))
    assert fake.calls == [("load", T), ("reset",), click(18, 1, (16, 16)), ("release",)]
    assert res.info["moving_tracks"] == 6 and res.num_objects == 0
    fake, res = run((frames, tracks), pixel_lookup="nearest_on_frame")
    assert res.info["moving_tracks"] == 3 and res.num_objects == 1


@pytest.mark.parametrize(
    "knob",
    [
        dict(drop_clicked_track=True),
        dict(pixel_lookup="nearest_on_frame"),
        dict(merge_over="union", merge_groups="transitive", overlap="smaller_wins", order="size"),
    ],
)
def test_alternatives_that_do_not_matter_here(knob):
    """All points sit at integer pixels on the frame, every click covers its own track, every
    object is present on every frame, merges do not chain and nothing overlaps: the same calls
    and masks."""
    fake, res = run(**knob)
    assert fake.calls == run()[0].calls
    np.testing.assert_array_equal(res.masks, run()[1].masks)
