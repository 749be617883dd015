"""SAM2 densification: the algorithm against a deterministic fake predictor (with the release's
rules, the defaults, and with the alternatives we had before), the real sam2 code path with
random weights on a tiny clip (CPU), and ``evaluate.py densify=sam2`` end to end.
tests/test_sam2_release_calls.py checks the algorithm call by call against the release."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from moseg.densify.base import TrackSet
from moseg.densify.sam2 import (
    Sam2Densifier,
    Sam2Params,
    canonical_frame,
    centroid_extremes,
    label_map,
    medoid,
    merge_objects,
    points_inside,
    prompt_frames,
    resolve_model_config,
    spread_points,
)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "moseg" / "conf"
T, H, W = 12, 48, 64


# --------------------------------------------------------------------------------------------
# a synthetic scene: object A (16x12, 2 px/frame right), object B (10x10, 1 px/frame down)


def scene() -> tuple[np.ndarray, np.ndarray, TrackSet]:
    """``gt [T, H, W]`` (0 bg, 1 = A, 2 = B), frames and tracks (A 48, B 25 moving; static
    background tracks, hidden while an object covers them)."""
    gt = np.zeros((T, H, W), np.int64)
    for t in range(T):
        gt[t, 6:18, 4 + 2 * t : 20 + 2 * t] = 1
        gt[t, 20 + t : 30 + t, 46:56] = 2
    frames = np.zeros((T, H, W, 3), np.uint8)
    frames[gt == 1] = (200, 30, 30)
    frames[gt == 2] = (30, 200, 30)
    tr, vis, mov = [], [], []
    ts = np.arange(T)
    for y in range(6, 18, 2):
        for x in range(4, 20, 2):
            tr.append(np.stack([x + 2.0 * ts, np.full(T, y, float)], 1))
            mov.append(True)
    for y in range(20, 30, 2):
        for x in range(46, 56, 2):
            tr.append(np.stack([np.full(T, x, float), y + 1.0 * ts], 1))
            mov.append(True)
    moving_vis = [np.ones(T, bool)] * len(tr)
    vis += moving_vis
    for y in range(2, H, 8):
        for x in range(2, W, 8):
            if (gt[:, y, x] != 0).all():
                continue
            tr.append(np.tile([float(x), float(y)], (T, 1)))
            vis.append(gt[:, y, x] == 0)
            mov.append(False)
    n = len(tr)
    tracks = TrackSet(
        np.asarray(tr, np.float32),
        np.asarray(vis, bool),
        np.zeros(n, np.int64),
        np.asarray(mov, np.float32),
        np.asarray(mov, bool),
    )
    return gt, frames, tracks


class FakePredictor:
    """Segments by ground truth: a click selects the GT object under it (``mode="exact"``), only
    the part left of the click for single clicks (``"half"``), or nothing (``"empty"``);
    propagation copies the GT of every object clicked so far."""

    def __init__(self, gt: np.ndarray, mode: str = "exact") -> None:
        self.gt, self.mode = gt, mode
        self.loads = 0
        self.clicks: list[tuple[int, int]] = []  # (frame, number of points)
        self.refined = 0  # clicks seeded with the frame's previous mask
        self.propagations: list[tuple[int, bool]] = []
        self.prompts: dict[int, dict[int, set[int]]] = {}
        self.loaded = False

    def load(self, frames: np.ndarray) -> None:
        assert frames.shape[:3] == self.gt.shape
        self.loads += 1
        self.loaded = True

    def reset(self) -> None:
        self.prompts = {}

    def click(self, frame, obj_id, points, labels, refine=False) -> np.ndarray:
        assert self.loaded and points.shape == (len(labels), 2)
        self.clicks.append((frame, len(points)))
        self.refined += bool(refine)
        g = self.gt[frame]
        ids = {int(g[int(round(y)), int(round(x))]) for x, y in points[labels > 0]} - {0}
        self.prompts.setdefault(obj_id, {})[frame] = ids
        mask = np.isin(g, list(ids))
        if self.mode == "empty":
            return np.zeros_like(mask)
        if self.mode == "half" and len(points) == 1:
            mask &= np.arange(g.shape[1])[None] <= points[0, 0]
        return mask

    def propagate(self, start: int, reverse: bool):
        self.propagations.append((start, reverse))
        order = range(start, -1, -1) if reverse else range(start, self.gt.shape[0])
        for f in order:
            out = {}
            for obj, per_frame in self.prompts.items():
                ids = set().union(*per_frame.values())
                mask = np.isin(self.gt[f], list(ids))
                out[obj] = np.zeros_like(mask) if self.mode == "empty" else mask
            yield f, out

    def release(self) -> None:
        self.loaded = False


def run(mode: str = "exact", **knobs):
    gt, frames, tracks = scene()
    fake = FakePredictor(gt, mode)
    result = Sam2Densifier(predictor=fake, **knobs)(frames, tracks)
    return gt, fake, result


# the rules we used before the release's became the defaults (docs/densify-sam2.md)
OLD = dict(
    canonical_rule="ceil_earliest",
    pixel_lookup="nearest_on_frame",
    require_prompt_track=False,
    take_all=False,
    object_tracks="dilated_mask",
    drop_clicked_track=True,
    min_rounds=10,
    prompt_frames="around_canonical",
    prompt_min_tracks=3,
    reprompt_coverage_on="dilated_mask",
    reprompt_pick="farthest_point",
    reprompt_mode="replace",
    merge_over="union",
    merge_groups="transitive",
    overlap="smaller_wins",
    order="size",
)


# --------------------------------------------------------------------------------------------
# the algorithm (tests/test_sam2_release_calls.py checks it call by call against the release)


def test_helpers():
    counts = np.array([0, 5, 9, 9, 1, 9, 0, 0, 0, 0])
    # the release: int(0.2 * 10) = 2 frames, ties to the later ones: {3, 5} -> 5
    assert canonical_frame(counts, 0.2) == 5
    assert canonical_frame(counts, 0.3) == 3  # {2, 3, 5}
    assert canonical_frame(counts, 0.01) == 5  # int(0.1) = 0 frames: all of them
    assert canonical_frame(counts, 0.2, "ceil_earliest") == 3  # {2, 3}
    assert canonical_frame(counts, 0.3, "ceil_earliest") == 3  # {2, 3, 5}
    assert canonical_frame(counts, 0.01, "ceil_earliest") == 2  # at least one frame
    pts = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [100, 0]], np.float32)
    assert medoid(pts) == 2
    five = np.array([[0, 0], [1, 0], [-10, 0], [10, 0], [0.5, 3]], float)
    sel = spread_points(five, 3)
    assert sel[0] == 0 and set(sel[1:]) == {2, 3}  # nearest the centroid, then the far ends
    # the release: nearest the centroid (0.3, 0.6), then the two farthest, the nearer first
    # (10, 0) is 9.7 away, (-10, 0) 10.3
    assert centroid_extremes(five).tolist() == [0, 3, 2]
    line = np.array([[0, 0], [1, 0], [2, 0], [9, 0]], float)  # centroid 3
    assert centroid_extremes(line).tolist() == [2, 0, 3]  # 0 is 3 away, 9 is 6
    assert spread_points(line, 3).tolist() == [2, 3, 0]
    assert centroid_extremes(line[:1]).tolist() == [0, 0]  # one point: taken twice
    assert centroid_extremes(line[[0, 3]]).tolist() == [0, 1]
    assert prompt_frames(5, 4, 12) == [5, 0, 4, 8]
    assert prompt_frames(0, 16, 40) == [0, 16, 32]
    assert prompt_frames(20, 16, 40) == [20, 0, 16, 32]
    assert prompt_frames(5, 4, 12, "around_canonical") == [5, 9, 1]
    assert prompt_frames(0, 16, 40, "around_canonical") == [0, 16, 32]
    assert [Sam2Params().rounds(t) for t in (1, 50, 81, 160, 400)] == [5, 5, 6, 10, 10]
    assert Sam2Params(min_rounds=10).rounds(50) == 10


def test_pixel_lookup():
    mask = np.zeros((4, 6), bool)
    mask[1, 2] = mask[0, 0] = True
    pts = np.array([[2.9, 1.9], [2.4, 1.4], [-3.0, -1.0], [1.6, 0.6]], np.float32)
    # the release: int() truncates, then clips into the frame (the point at (-3, -1) reads (0, 0))
    assert points_inside(mask, pts).tolist() == [True, True, True, False]
    assert points_inside(mask, pts, "nearest_on_frame").tolist() == [False, True, False, True]


def test_two_objects_exact_masks():
    gt, fake, res = run()
    assert res.masks.shape == (T, H, W) and res.masks.dtype == np.uint8
    assert res.num_objects == 2
    # A (192 px per frame) is found first and so is 1, B (100 px) is 2
    np.testing.assert_array_equal(res.masks, gt.astype(np.uint8))
    assert len(res.info["rounds"]) == 2 and all(r["accepted"] for r in res.info["rounds"])
    assert [o["parts"][0]["tracks"] for o in res.info["objects"]] == [48, 25]
    assert fake.loads == 1 and not fake.loaded  # released
    assert all(n == 1 for _, n in fake.clicks)  # full coverage: no re-prompt
    _, _, old = run(**OLD)
    np.testing.assert_array_equal(old.masks, gt.astype(np.uint8))


def test_prompt_schedule_and_backward_propagation():
    # all tracks visible everywhere. The release: canonical = middle of the top int(0.2 * 12) =
    # 2 frames, ties to the later ones: {10, 11} -> 11; prompts 11, then 0, 4, 8; frame 0 was
    # prompted: forward only
    gt, fake, res = run(prompt_every=4)
    part = res.info["objects"][0]["parts"][0]
    assert part["canonical_frame"] == 11 and part["prompt_frames"] == [11, 0, 4, 8]
    assert fake.propagations[-1:] == [(0, False)]
    np.testing.assert_array_equal(res.masks, gt.astype(np.uint8))
    # before: middle of the top ceil(0.2 * 12) = 3 frames {0, 1, 2} -> 1; prompts at 1, 5, 9;
    # frame 0 not prompted -> forward and backward from 1
    knobs = dict(canonical_rule="ceil_earliest", prompt_frames="around_canonical")
    gt, fake, res = run(prompt_every=4, **knobs)
    part = res.info["objects"][0]["parts"][0]
    assert part["canonical_frame"] == 1 and part["prompt_frames"] == [1, 5, 9]
    assert fake.propagations[-2:] == [(1, False), (1, True)]
    np.testing.assert_array_equal(res.masks, gt.astype(np.uint8))
    # prompted on frame 0: no backward pass
    _, fake, _ = run(prompt_every=1, **knobs)
    assert all(not rev for _, rev in fake.propagations)


def test_prompt_min_tracks():
    gt, frames, tracks = scene()
    tracks.visibility[:25, 4] = False  # A: 23 of its 48 tracks left on frame 4
    tracks.visibility[:46, 8] = False  # A: 2 left on frame 8
    fake = FakePredictor(gt)
    res = Sam2Densifier(predictor=fake, prompt_every=4)(frames, tracks)
    assert res.info["objects"][0]["parts"][0]["prompt_frames"] == [11, 0, 4, 8]
    fake = FakePredictor(gt)
    res = Sam2Densifier(predictor=fake, prompt_every=4, prompt_min_tracks=3)(frames, tracks)
    assert res.info["objects"][0]["parts"][0]["prompt_frames"] == [11, 0, 4]


def test_reprompt_when_coverage_low():
    for knobs in ({}, OLD):
        gt, fake, res = run("half", dilate_kernel=0, **knobs)
        three = [c for c in fake.clicks if c[1] == 3]
        assert three, "half masks cover about half the tracks: expected 3-point re-prompts"
        parts = [p for o in res.info["objects"] for p in o["parts"]]
        assert any(p["reprompted"] for p in parts)
        for p in parts:
            for cov in p["coverage"].values():
                assert len(cov) == 1 or cov[1] >= cov[0]
        # the release seeds the re-prompt with the first click's mask; before, it replaced it
        assert fake.refined == (len(three) if not knobs else 0)
        # re-prompting off: single clicks only
        _, fake, _ = run("half", dilate_kernel=0, reprompt_coverage=0.0, **knobs)
        assert all(n == 1 for _, n in fake.clicks)


def test_duplicates_are_merged():
    # half masks split object A into two groups (rounds 1 and 4 of 5; B gives one group and
    # two rejected rounds), and each of A's groups propagates to all of A
    gt, _, merged = run("half", dilate_kernel=0)
    _, _, unmerged = run("half", dilate_kernel=0, merge_min_frames=1.5)
    assert [r["accepted"] for r in merged.info["rounds"]] == [True, True, False, True, False]
    assert merged.info["groups"] == unmerged.info["groups"] == 3
    assert merged.info["merge_groups"] == [[0, 2], [1]]
    assert all(len(g) == 1 for g in unmerged.info["merge_groups"])
    assert merged.num_objects == 2
    np.testing.assert_array_equal(merged.masks, gt.astype(np.uint8))
    # the rules we had: the dilated mask's tracks make an object, so A splits in two
    gt, _, merged = run("half", dilate_kernel=0, **OLD)
    _, _, unmerged = run("half", dilate_kernel=0, **{**OLD, "merge_min_frames": 1.5})
    assert merged.info["groups"] == unmerged.info["groups"] == 3
    assert sorted(o["merged_from"] for o in merged.info["objects"]) == [[0, 2], [1]]
    assert all(len(o["merged_from"]) == 1 for o in unmerged.info["objects"])
    np.testing.assert_array_equal(merged.masks, gt.astype(np.uint8))
    # near-duplicates (1 px apart) stay two objects unless merged
    a = np.asarray(gt == 1)
    b = np.roll(a, 1, axis=2)
    labels, _ = label_map([a, b], a.shape)
    assert labels.max() == 2
    assert merge_objects([a, b], Sam2Params()) == [[0, 1]]


def test_empty_masks_terminate():
    # the release: an empty mask covers nothing, so the same click comes back every round,
    # until the round limit: clamp(ceil(12 / 16), 5, 10) = 5
    _, fake, res = run("empty")
    assert len(res.info["rounds"]) == 5 and len(set(fake.clicks)) == 1
    assert res.num_objects == 0 and not res.masks.any()
    # drop_clicked_track: every round drops exactly the clicked track: 73 moving tracks -> 68
    # rounds until < 6 left
    _, fake, res = run("empty", drop_clicked_track=True, max_rounds=254, min_rounds=254)
    assert len(res.info["rounds"]) == 73 - 6 + 1
    assert res.num_objects == 0 and not res.masks.any()
    _, fake, res = run("empty", drop_clicked_track=True, min_rounds=10)
    assert len(res.info["rounds"]) == 10  # max_rounds


def test_no_moving_tracks():
    gt, frames, tracks = scene()
    tracks.moving[:] = False
    fake = FakePredictor(gt)
    res = Sam2Densifier(predictor=fake)(frames, tracks)
    assert res.masks.shape == (T, H, W) and res.masks.dtype == np.uint8 and not res.masks.any()
    assert fake.loads == 0 and res.num_objects == 0


def test_min_tracks_rejects_small_objects():
    gt, _, res = run(min_tracks=30)  # B has 25 tracks: rejected, A kept
    assert res.num_objects == 1
    np.testing.assert_array_equal(res.masks == 1, gt == 1)


def test_merge_thresholds():
    shape = (10, 10, 30)
    a = np.zeros(shape, bool)
    b = np.zeros(shape, bool)
    a[:, :, 0:20] = True
    b[:, :, 2:22] = True  # IoU 18/22 = 0.82, cover 18/20 = 0.9: merged (cover >= 0.9)
    assert len(merge_objects([a, b], Sam2Params())) == 1
    assert len(merge_objects([a, b], Sam2Params(merge_cover=0.95))) == 2
    assert len(merge_objects([a, b], Sam2Params(merge_cover=0.95, merge_iou=0.8))) == 1
    c = a.copy()
    c[2:] = False
    c[2:, :, 25:28] = True  # agrees with a on 2 of 10 frames
    assert len(merge_objects([a, c], Sam2Params())) == 2
    assert len(merge_objects([a, c], Sam2Params(merge_min_frames=0.2))) == 1
    # share of all frames (the release) or of the frames where either is present
    d = np.zeros(shape, bool)
    d[:4] = a[:4]  # identical to a on 4 of 10 frames, absent elsewhere
    assert len(merge_objects([a, d], Sam2Params(merge_min_frames=0.5))) == 2  # 4 / 10
    e = a.copy()
    e[4:] = False
    assert len(merge_objects([e, d], Sam2Params(merge_min_frames=0.5))) == 2  # 4 / 10
    assert len(merge_objects([e, d], Sam2Params(merge_min_frames=0.5, merge_over="union"))) == 1


def test_merge_groups():
    """Four objects where 0~1, 1~2 and 2~3 agree (each next one shifted by 2 px) and 0, 2 do
    not. The release groups an object with its partners and theirs, once: {0, 1, 2}, then {3}
    alone (2 was used up). Transitive grouping closes the chain."""
    m = np.zeros((4, 3, 8, 40), bool)
    for k in range(4):
        m[k, :, :, 2 * k : 2 * k + 20] = True  # neighbours: cover 18/20 = 0.9
    masks = list(m)
    assert merge_objects(masks, Sam2Params()) == [[0, 1, 2], [3]]
    assert merge_objects(masks, Sam2Params(merge_groups="transitive")) == [[0, 1, 2, 3]]
    # a partner of two objects met in that order joins both groups: 0~2 and 1~2 only
    m = np.zeros((3, 2, 8, 40), bool)
    m[0, :, :, 0:10] = True
    m[1, :, :, 30:40] = True
    m[2, :, :, 0:40] = True
    m[2, :, :, 10:30] = False  # 2 is 0 and 1 together: covers each of them
    assert merge_objects(list(m), Sam2Params()) == [[0, 2], [1, 2]]
    assert merge_objects(list(m), Sam2Params(merge_groups="transitive")) == [[0, 1, 2]]
    # both groups are then object 2's mask: the first wins it all and the second is dropped
    labels, kept = label_map([m[0] | m[2], m[1] | m[2]], m.shape[1:])
    assert kept == [0] and (labels == np.where(m[2], 1, 0)).all()


def test_label_map_overlap_and_order():
    big = np.zeros((3, 8, 8), bool)
    small = np.zeros((3, 8, 8), bool)
    big[:, 1:7, 1:7] = True
    small[1:, 3:5, 3:5] = True
    # the release: the first object wins the overlap, ids in the given order
    labels, kept = label_map([big, small], (3, 8, 8))
    assert kept == [0] and labels.max() == 1  # small is covered everywhere: dropped
    labels, kept = label_map([small, big], (3, 8, 8))
    assert kept == [0, 1] and (labels[1:, 3:5, 3:5] == 1).all()
    # smaller_wins: the smaller object is painted on top
    labels, kept = label_map([small, big], (3, 8, 8), "smaller_wins", "size")
    assert kept == [1, 0]  # big is id 1
    assert (labels[1:, 3:5, 3:5] == 2).all()  # the smaller object wins the overlap
    assert (labels[0, 1:7, 1:7] == 1).all()
    labels, kept = label_map([small, big], (3, 8, 8), "smaller_wins", "appearance")
    assert kept == [1, 0]  # big appears on frame 0
    labels, kept = label_map([big, small, np.zeros_like(big)], (3, 8, 8), "smaller_wins")
    assert len(kept) == 2 and labels.max() == 2  # the empty mask is dropped


def test_bad_knobs():
    with pytest.raises(ValueError, match="merge_over"):
        Sam2Params(merge_over="some")
    with pytest.raises(ValueError, match="canonical_top_fraction"):
        Sam2Params(canonical_top_fraction=0)
    for knob in ("canonical_rule", "pixel_lookup", "object_tracks", "prompt_frames"):
        with pytest.raises(ValueError, match=knob):
            Sam2Params(**{knob: "nope"})
    with pytest.raises(ValueError, match="reprompt_pick"):
        Sam2Densifier(predictor=object(), reprompt_pick="nope")


# --------------------------------------------------------------------------------------------
# configuration and errors (no model built)


def test_config_lists_every_knob():
    cfg = OmegaConf.load(CONF / "densify" / "sam2.yaml")
    assert cfg._target_ == "moseg.densify.sam2.Sam2Densifier"
    signature = inspect.signature(Sam2Densifier.__init__).parameters
    args = set(signature) - {"self", "predictor"}
    assert set(cfg.keys()) - {"_target_"} == args
    # the yaml, the constructor and Sam2Params agree on every algorithm default (the release's)
    for f in dataclasses.fields(Sam2Params):
        assert cfg[f.name] == signature[f.name].default == f.default, f.name
    knobs = {k: v for k, v in OmegaConf.to_container(cfg).items() if k in signature}
    assert Sam2Densifier(predictor=object(), **knobs).params == Sam2Params()


def test_model_names():
    pytest.importorskip("sam2")
    assert resolve_model_config("sam2.1_hiera_l").name == "sam2.1_hiera_l.yaml"
    assert resolve_model_config("sam2_hiera_tiny").name == "sam2_hiera_t.yaml"
    assert resolve_model_config("sam2.1_hiera_base_plus").name == "sam2.1_hiera_b+.yaml"
    with pytest.raises(ValueError, match="unknown SAM2 model"):
        resolve_model_config("sam3_hiera_l")


def test_missing_checkpoint_and_package(tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "sam2.1_hiera_large.pt"
    with pytest.raises(FileNotFoundError, match=str(missing)) as err:
        Sam2Densifier(checkpoint=str(missing), model="sam2_hiera_s")
    assert "072824/sam2_hiera_small.pt" in str(err.value)
    with pytest.raises(ValueError, match="multiple of 32"):
        Sam2Densifier(checkpoint=None, image_size=112)
    monkeypatch.setitem(sys.modules, "sam2", None)
    monkeypatch.setitem(sys.modules, "sam2.sam2_video_predictor", None)
    with pytest.raises(ImportError, match="pip install"):
        Sam2Densifier(checkpoint=None)


@pytest.mark.slow
def test_import_leaves_hydra_state_alone():
    """``import sam2`` initialises Hydra's global state; ours must not, or a later @hydra.main
    in the same process fails."""
    pytest.importorskip("sam2")
    code = (
        "from hydra.core.global_hydra import GlobalHydra\n"
        "from moseg.densify.sam2 import import_sam2\n"
        "import_sam2()\n"
        "assert not GlobalHydra.instance().is_initialized()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# --------------------------------------------------------------------------------------------
# the real sam2 code path: random weights, smallest model, 128 px, 3 frames of 64x96 (CPU)


@pytest.mark.slow
def test_real_sam2_random_weights_inside_hydra(tmp_path):
    pytest.importorskip("sam2")
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from hydra.utils import instantiate

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 64, 96, 3), dtype=np.uint8)
    frames[:, 20:40, 30:60] = (220, 40, 40)
    n = 12
    xy = np.stack([rng.uniform(32, 56, n), rng.uniform(22, 38, n)], 1)
    tracks = TrackSet(
        np.repeat(xy[:, None], 3, 1).astype(np.float32),
        np.ones((n, 3), bool),
        np.zeros(n, np.int64),
        np.ones(n, np.float32),
        np.ones(n, bool),
    )
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        # as inside @hydra.main: Hydra's global state belongs to the application
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            loader = GlobalHydra.instance().config_loader()
            cfg = OmegaConf.load(CONF / "densify" / "sam2.yaml")
            cfg.merge_with(
                {
                    "model": "sam2.1_hiera_t",
                    "checkpoint": None,
                    "image_size": 128,
                    "device": "cpu",
                    "tmp_dir": str(tmp_path),
                    "min_tracks": 1,
                    "max_rounds": 1,
                }
            )
            dens = instantiate(cfg)
            assert GlobalHydra.instance().config_loader() is loader
    finally:
        restore_gh_from_backup(backup)

    pred = dens.predictor
    assert pred.model.image_size == 128
    pred.load(frames)
    assert list(tmp_path.iterdir()) == [], "the temporary JPEG folder must be removed"
    pred.reset()
    mask = pred.click(1, 1, np.array([[45.0, 30.0]], np.float32), np.ones(1, np.int32))
    assert mask.shape == (64, 96) and mask.dtype == bool
    # a second click on the frame: refine keeps the first output (SAM2 feeds its mask logits
    # back in, as the release's re-prompt does); without it the frame is cleared first
    cleared = []
    clear = pred.model.clear_all_prompts_in_frame
    pred.model.clear_all_prompts_in_frame = lambda *a, **k: cleared.append(a[1]) or clear(*a, **k)
    two = np.array([[45.0, 30.0], [35.0, 25.0]], np.float32)
    assert pred.click(1, 1, two, np.ones(2, np.int32), refine=True).shape == (64, 96)
    assert cleared == []
    assert pred.click(1, 1, two[:1], np.ones(1, np.int32)).shape == (64, 96)
    assert cleared == [1]
    del pred.model.clear_all_prompts_in_frame
    fwd = list(pred.propagate(1, reverse=False))  # float32 on CPU
    bwd = list(pred.propagate(1, reverse=True))
    assert [f for f, _ in fwd] == [1, 2] and [f for f, _ in bwd] == [1, 0]
    assert all(out[1].shape == (64, 96) and out[1].dtype == bool for _, out in fwd + bwd)
    pred.release()

    res = dens(frames, tracks)
    assert res.masks.shape == (3, 64, 96) and res.masks.dtype == np.uint8
    assert len(res.info["rounds"]) == 1 and res.info["model"]["checkpoint"] is None
    # seed 0's random weights give a large mask on the click: the per-object path ran too;
    # int(0.2 * 3) = 0 top frames means all three, whose middle is 1: prompts on 1, then 0
    assert res.info["groups"] == 1, res.info["rounds"]
    assert res.info["objects"][0]["parts"][0]["prompt_frames"] == [1, 0]
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# evaluate.py end to end: random-weight tiny SAM2 on a one-clip synthetic benchmark (CPU)


@pytest.mark.slow
def test_evaluate_with_densify_sam2_end_to_end(tmp_path):
    """``python evaluate.py densify=sam2`` runs the whole pipeline (preprocessing, the oracle
    classifier, SAM2 with random weights inside ``@hydra.main``, mask files, scores). The masks
    mean nothing without trained weights: only the path, the settings and the outputs are
    checked."""
    pytest.importorskip("sam2")
    run_dir = tmp_path / "run"
    args = [
        "bench=synthetic",
        f"paths.data_dir={tmp_path / 'data'}",
        f"cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run_dir}",
        "wandb.enabled=false",
        "output.overlays=0",
        "classifier.kind=oracle",
        "bench.generate.num_clips=1",
        "bench.generate.generator.num_frames=6",
        "+bench.generate.generator.num_moving=[2,2]",
        "densify=sam2",
        "densify.checkpoint=null",
        "densify.model=sam2.1_hiera_t",
        "densify.image_size=64",
        "densify.device=cpu",
        f"densify.tmp_dir={tmp_path / 'frames'}",
    ]
    (tmp_path / "frames").mkdir()
    r = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert "RANDOM WEIGHTS" in r.stderr + r.stdout
    rec = json.loads((run_dir / "sequences" / "synth000.json").read_text())
    assert rec["densifier"] == "sam2" and rec["frames"] == 6
    assert rec["moving"] >= 6, "the clip must give the densifier something to click"
    info = rec["densify_info"]
    assert info["params"] == dataclasses.asdict(Sam2Params())  # the yaml's: the release's
    assert info["model"] == {
        "name": "sam2.1_hiera_t",
        "checkpoint": None,
        "image_size": 64,
        "device": "cpu",
        "dtype": "float32",
    }
    assert 1 <= len(info["rounds"]) <= Sam2Params().rounds(6)
    assert rec["objects"] == len(info["objects"])
    pngs = sorted((run_dir / "masks" / "synth000").glob("*.png"))
    assert [p.stem for p in pngs] == [f"{t:05d}" for t in range(6)]
    ids = set(np.unique(np.stack([np.asarray(Image.open(p)) for p in pngs])).tolist())
    assert ids <= set(range(len(info["objects"]) + 1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["overall"]["num_sequences"] == 1 and 0 <= metrics["overall"]["JF"] <= 1
    assert list((tmp_path / "frames").iterdir()) == []  # SAM2's JPEG folder is gone
