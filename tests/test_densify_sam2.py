"""SAM2 densification: the algorithm against a deterministic fake predictor, and the real sam2
code path with random weights on a tiny clip (CPU)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from moseg.densify.base import TrackSet
from moseg.densify.sam2 import (
    Sam2Densifier,
    Sam2Params,
    canonical_frame,
    label_map,
    medoid,
    merge_objects,
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
        self.propagations: list[tuple[int, bool]] = []
        self.prompts: dict[int, dict[int, set[int]]] = {}
        self.loaded = False

    def load(self, frames: np.ndarray) -> None:
        assert frames.shape[:3] == self.gt.shape
        self.loads += 1
        self.loaded = True

    def reset(self) -> None:
        self.prompts = {}

    def click(self, frame: int, obj_id: int, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        assert self.loaded and points.shape == (len(labels), 2)
        self.clicks.append((frame, len(points)))
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


# --------------------------------------------------------------------------------------------
# the algorithm


def test_helpers():
    counts = np.array([0, 5, 9, 9, 1, 9, 0, 0, 0, 0])
    assert canonical_frame(counts, 0.2) == 3  # top 2 frames {2, 3}
    assert canonical_frame(counts, 0.3) == 3  # top 3 frames {2, 3, 5}
    assert canonical_frame(counts, 0.01) == 2  # at least one frame
    pts = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [100, 0]], np.float32)
    assert medoid(pts) == 2
    sel = spread_points(np.array([[0, 0], [1, 0], [-10, 0], [10, 0], [0.5, 3]], float), 3)
    assert sel[0] == 0 and set(sel[1:]) == {2, 3}  # nearest the centroid, then the far ends
    assert prompt_frames(5, 4, 12) == [5, 9, 1]
    assert prompt_frames(0, 16, 40) == [0, 16, 32]


def test_two_objects_exact_masks():
    gt, fake, res = run()
    assert res.masks.shape == (T, H, W) and res.masks.dtype == np.uint8
    assert res.num_objects == 2
    # ids by decreasing size: A (192 px per frame) is 1, B (100 px) is 2
    np.testing.assert_array_equal(res.masks, gt.astype(np.uint8))
    assert len(res.info["rounds"]) == 2 and all(r["accepted"] for r in res.info["rounds"])
    assert [o["parts"][0]["tracks"] for o in res.info["objects"]] == [48, 25]
    assert fake.loads == 1 and not fake.loaded  # released
    assert all(n == 1 for _, n in fake.clicks)  # full coverage: no re-prompt


def test_prompt_schedule_and_backward_propagation():
    gt, fake, res = run(prompt_every=4)
    # all tracks visible everywhere: canonical = middle of the top ceil(0.2 * 12) = 3 frames
    # {0, 1, 2} -> 1; prompts at 1, 5, 9; frame 0 not prompted -> forward and backward from 1
    part = res.info["objects"][0]["parts"][0]
    assert part["canonical_frame"] == 1 and part["prompt_frames"] == [1, 5, 9]
    assert fake.propagations[-2:] == [(1, False), (1, True)]
    np.testing.assert_array_equal(res.masks, gt.astype(np.uint8))
    # prompted on frame 0: no backward pass
    _, fake, _ = run(prompt_every=1)
    assert all(not rev for _, rev in fake.propagations)


def test_reprompt_when_coverage_low():
    gt, fake, res = run("half", dilate_kernel=0)
    three = [c for c in fake.clicks if c[1] == 3]
    assert three, "half masks cover about half the tracks: expected 3-point re-prompts"
    parts = [p for o in res.info["objects"] for p in o["parts"]]
    assert any(p["reprompted"] for p in parts)
    for p in parts:
        for cov in p["coverage"].values():
            assert len(cov) == 1 or cov[1] >= cov[0]
    # re-prompting off: single clicks only
    _, fake, _ = run("half", dilate_kernel=0, reprompt_coverage=0.0)
    assert all(n == 1 for _, n in fake.clicks)


def test_duplicates_are_merged():
    # half masks split object A into two groups that both propagate to all of A
    gt, _, merged = run("half", dilate_kernel=0)
    _, _, unmerged = run("half", dilate_kernel=0, merge_min_frames=1.5)
    assert merged.info["groups"] == unmerged.info["groups"] == 3
    assert sorted(o["merged_from"] for o in merged.info["objects"]) == [[0, 2], [1]]
    assert all(len(o["merged_from"]) == 1 for o in unmerged.info["objects"])
    assert merged.num_objects == 2
    np.testing.assert_array_equal(merged.masks, gt.astype(np.uint8))
    # near-duplicates (1 px apart) stay two objects unless merged
    a = np.asarray(gt == 1)
    b = np.roll(a, 1, axis=2)
    labels, _ = label_map([a, b], "size", a.shape)
    assert labels.max() == 2
    groups = merge_objects([a, b], Sam2Params())
    assert groups == [[0, 1]]


def test_empty_masks_terminate():
    _, fake, res = run("empty", max_rounds=254)
    # every round drops exactly the clicked track: 73 moving tracks -> 68 rounds until < 6 left
    assert len(res.info["rounds"]) == 73 - 6 + 1
    assert res.num_objects == 0 and not res.masks.any()
    _, fake, res = run("empty")
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
    b[:, :, 2:22] = True  # IoU 18/22 = 0.82, cover 18/20 = 0.9 (not > 0.9)
    assert len(merge_objects([a, b], Sam2Params())) == 2
    assert len(merge_objects([a, b], Sam2Params(merge_iou=0.8))) == 1
    c = a.copy()
    c[2:] = False
    c[2:, :, 25:28] = True  # agrees with a on 2 of 10 frames
    assert len(merge_objects([a, c], Sam2Params())) == 2
    assert len(merge_objects([a, c], Sam2Params(merge_min_frames=0.2))) == 1
    # share of all frames instead of frames where either is present
    d = np.zeros(shape, bool)
    d[:4] = a[:4]  # identical to a on 4 of 10 frames, absent elsewhere
    assert len(merge_objects([a, d], Sam2Params(merge_min_frames=0.5))) == 2  # 4 / 10
    e = a.copy()
    e[4:] = False
    assert len(merge_objects([e, d], Sam2Params(merge_min_frames=0.5))) == 1  # 4 / 4
    assert len(merge_objects([e, d], Sam2Params(merge_min_frames=0.5, merge_over="all"))) == 2


def test_label_map_overlap_and_order():
    big = np.zeros((3, 8, 8), bool)
    small = np.zeros((3, 8, 8), bool)
    big[:, 1:7, 1:7] = True
    small[1:, 3:5, 3:5] = True
    labels, kept = label_map([small, big], "size", (3, 8, 8))
    assert kept == [1, 0]  # big is id 1
    assert (labels[1:, 3:5, 3:5] == 2).all()  # the smaller object wins the overlap
    assert (labels[0, 1:7, 1:7] == 1).all()
    labels, kept = label_map([small, big], "appearance", (3, 8, 8))
    assert kept == [1, 0]  # big appears on frame 0
    hidden = small.copy()
    labels, kept = label_map([big, hidden, np.zeros_like(big)], "size", (3, 8, 8))
    assert len(kept) == 2 and labels.max() == 2  # the empty mask is dropped


def test_bad_knobs():
    with pytest.raises(ValueError, match="merge_over"):
        Sam2Params(merge_over="some")
    with pytest.raises(ValueError, match="canonical_top_fraction"):
        Sam2Params(canonical_top_fraction=0)


# --------------------------------------------------------------------------------------------
# configuration and errors (no model built)


def test_config_lists_every_knob():
    cfg = OmegaConf.load(CONF / "densify" / "sam2.yaml")
    assert cfg._target_ == "moseg.densify.sam2.Sam2Densifier"
    args = set(inspect.signature(Sam2Densifier.__init__).parameters) - {"self", "predictor"}
    assert set(cfg.keys()) - {"_target_"} == args


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
    fwd = list(pred.propagate(1, reverse=False))  # float32 on CPU
    bwd = list(pred.propagate(1, reverse=True))
    assert [f for f, _ in fwd] == [1, 2] and [f for f, _ in bwd] == [1, 0]
    assert all(out[1].shape == (64, 96) and out[1].dtype == bool for _, out in fwd + bwd)
    pred.release()

    res = dens(frames, tracks)
    assert res.masks.shape == (3, 64, 96) and res.masks.dtype == np.uint8
    assert len(res.info["rounds"]) == 1 and res.info["model"]["checkpoint"] is None
    # seed 0's random weights give a large mask on the click: the per-object path ran too
    assert res.info["groups"] == 1, res.info["rounds"]
    assert res.info["objects"][0]["parts"][0]["prompt_frames"] == [0]
    assert list(tmp_path.iterdir()) == []
