"""Prompted segmentation with SAM2 (moseg.segmentation.sam2_prompted): the algorithm against a
deterministic fake predictor, and the real sam2 code path with random weights (CPU)."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from moseg.densify.sam2 import Sam2Params, Sam2Predictor
from moseg.segmentation.prompts import FramePrompt
from moseg.segmentation.sam2_prompted import IGNORED_KEYS, Sam2Follower, label_objects

CONF = Path(__file__).resolve().parents[1] / "moseg" / "conf"
T, H, W = 8, 48, 64
R = 4  # radius of the fake's discs (px)
V = (2, 1)  # the fake's motion (dx, dy) px per frame


def disc(x: float, y: float, r: float = R, size: tuple[int, int] = (H, W)) -> np.ndarray:
    yy, xx = np.mgrid[: size[0], : size[1]]
    return (xx - x) ** 2 + (yy - y) ** 2 <= r * r


def shift(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` moved by ``k`` frames of motion ``V`` (zero fill)."""
    dx, dy = V[0] * k, V[1] * k
    h, w = mask.shape
    out = np.zeros_like(mask)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def fake_mask(points, labels, box, base: np.ndarray | None = None) -> np.ndarray:
    """The fake's segmentation: ``base`` (or nothing), plus the filled box, plus discs at the
    positive clicks, minus discs at the negative ones (in click order)."""
    m = np.zeros((H, W), bool) if base is None else base.copy()
    if box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        m[y0 : y1 + 1, x0 : x1 + 1] = True
    for (x, y), lab in zip(
        [] if points is None else points, [] if labels is None else labels, strict=True
    ):
        m = m | disc(x, y) if lab == 1 else m & ~disc(x, y)
    return m


class FakePredictor:
    """A deterministic :class:`PromptablePredictor`: prompts give :func:`fake_mask`, mask prompts
    are kept as given; propagation moves the mask of the object's nearest conditioning frame
    (ties: the earlier) by ``V`` px per frame. ``refine`` on a tracked frame edits the tracked
    mask. Records every call in ``calls``."""

    model_name = "fake"

    def __init__(self, skip_frame: int | None = None, fail: bool = False) -> None:
        self.calls: list[tuple] = []
        self.cond: dict[int, dict[int, np.ndarray]] = {}
        self.tracked: dict[tuple[int, int], np.ndarray] = {}
        self.num_frames = 0
        self.skip_frame, self.fail = skip_frame, fail

    def load(self, frames: np.ndarray) -> None:
        assert frames.shape[1:] == (H, W, 3) and frames.dtype == np.uint8
        self.calls.append(("load", len(frames)))
        self.num_frames = len(frames)
        self.cond, self.tracked = {}, {}

    def reset(self) -> None:
        self.calls.append(("reset",))
        self.cond, self.tracked = {}, {}

    def prompt(self, frame, obj_id, points, labels, box, refine=False) -> np.ndarray:
        assert (points is None) == (labels is None)
        assert points is not None or box is not None
        self.calls.append(
            (
                "prompt",
                frame,
                obj_id,
                None if points is None else np.asarray(points).tolist(),
                None if labels is None else np.asarray(labels).tolist(),
                None if box is None else np.asarray(box).tolist(),
                refine,
            )
        )
        base = self.tracked.get((obj_id, frame)) if refine else None
        m = fake_mask(points, labels, box, base)
        self.cond.setdefault(obj_id, {})[frame] = m
        return m

    def add_mask(self, frame, obj_id, mask) -> np.ndarray:
        assert mask.shape == (H, W)
        self.calls.append(("add_mask", frame, obj_id))
        self.cond.setdefault(obj_id, {})[frame] = mask.astype(bool).copy()
        return mask.astype(bool)

    def propagate(self, start, reverse):
        self.calls.append(("propagate", start, reverse))
        if self.fail:
            raise RuntimeError("boom")
        order = range(start, -1, -1) if reverse else range(start, self.num_frames)
        for f in order:
            if f == self.skip_frame:
                continue
            out = {}
            for obj, conds in self.cond.items():
                c = min(conds, key=lambda c: (abs(f - c), c))
                out[obj] = self.tracked[(obj, f)] = shift(conds[c], f - c)
            yield f, out

    def release(self) -> None:
        self.calls.append(("release",))

    def kinds(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]


def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (T, H, W, 3), dtype=np.uint8)


def point(obj: int, frame: int, *xyl: tuple[float, float, int], box=None) -> FramePrompt:
    """``FramePrompt`` with clicks ``(x, y, label)``."""
    pts = np.array([[x, y] for x, y, _ in xyl], np.float32).reshape(-1, 2)
    labels = np.array([lab for _, _, lab in xyl], np.int32)
    return FramePrompt(obj, frame, pts, labels, None if box is None else np.array(box, np.float32))


def run(prompts, carried=None, fake=None):
    fake = fake or FakePredictor()
    res = Sam2Follower(predictor=fake)(frames(), None, prompts, carried)
    return fake, res


# --------------------------------------------------------------------------------------------
# the algorithm on the fake


def test_prompts_reach_frames_and_objects_with_sparse_ids():
    box = [30.0, 20.0, 40.0, 28.0]
    prompts = [
        point(3, 5, box=box),
        point(1, 2, (10, 10, 1)),
        point(3, 5, (35, 24, 1), (31, 21, 0)),  # merged with the box above
    ]
    fake, res = run(prompts)
    assert fake.calls[0] == ("load", T) and fake.calls[-1] == ("release",)
    assert fake.kinds("prompt") == [
        ("prompt", 2, 1, [[10.0, 10.0]], [1], None, False),
        ("prompt", 5, 3, [[35.0, 24.0], [31.0, 21.0]], [1, 0], box, False),
    ]
    assert fake.kinds("add_mask") == []
    assert fake.kinds("propagate") == [("propagate", 2, False), ("propagate", 2, True)]
    assert res.masks.shape == (T, H, W) and res.masks.dtype == np.uint8
    assert set(np.unique(res.masks)) == {0, 1, 3}
    np.testing.assert_array_equal(res.masks[2] == 1, disc(10, 10))
    np.testing.assert_array_equal(
        res.masks[5] == 3, fake_mask([[35, 24], [31, 21]], [1, 0], box) & (res.masks[5] != 1)
    )
    info = json.loads(json.dumps(res.info))  # JSON-able
    assert info["method"] == "sam2" and info["model"]["name"] == "fake"
    assert [o["id"] for o in info["objects"]] == [1, 3]
    p3 = info["objects"][1]["prompts"]
    assert len(p3) == 1 and p3[0]["frame"] == 5 and p3[0]["kind"] == "start"
    assert p3[0]["box"] == box and p3[0]["labels"] == [1, 0]
    assert info["frames_without_mask"] == [] and info["dropped"] == []


def test_every_frame_gets_masks_in_both_directions():
    fake, res = run([point(1, 4, (30, 20, 1))])
    assert fake.kinds("propagate") == [("propagate", 4, False), ("propagate", 4, True)]
    first = disc(30, 20)
    for f in range(T):
        np.testing.assert_array_equal(res.masks[f] == 1, shift(first, f - 4), err_msg=f"{f}")
        assert (res.masks[f] == 1).any()
    # two prompts of one object: one pass forward from the earliest, one back from it
    fake, res = run([point(1, 6, (40, 30, 1)), point(1, 2, (10, 10, 1))])
    assert [c[1] for c in fake.kinds("prompt")] == [2, 6]
    assert fake.kinds("propagate") == [("propagate", 2, False), ("propagate", 2, True)]
    np.testing.assert_array_equal(res.masks[6] == 1, disc(40, 30))  # the later prompt holds
    assert (res.masks == 1).reshape(T, -1).any(1).all()
    # prompted on frame 0: forward only
    fake, res = run([point(1, 0, (10, 10, 1)), point(2, 3, (40, 30, 1))])
    assert fake.kinds("propagate") == [("propagate", 0, False)]
    assert (res.masks == 2).reshape(T, -1).any(1).all()  # object 2 also before its prompt


def test_carried_masks_become_mask_prompts():
    carried = {2: {f: shift(disc(12, 12), f) for f in range(3)}}
    fake, res = run([], carried)
    assert fake.kinds("add_mask") == [("add_mask", 0, 2), ("add_mask", 1, 2), ("add_mask", 2, 2)]
    assert fake.kinds("prompt") == []
    assert fake.kinds("propagate") == [("propagate", 0, False)]
    for f in range(T):
        np.testing.assert_array_equal(res.masks[f] == 2, shift(disc(12, 12), f))
    assert res.info["objects"][0]["carried_frames"] == [0, 1, 2]


def test_user_prompt_beats_carried_mask():
    a, b = disc(10, 10), disc(12, 11)
    carried = {1: {0: a, 1: b}, 2: {1: disc(50, 40)}}
    fake, res = run([point(1, 1, (30, 30, 1))], carried)
    # object 1's carried mask on frame 1 gives way; object 2's there does not
    assert fake.kinds("add_mask") == [("add_mask", 0, 1), ("add_mask", 1, 2)]
    assert fake.kinds("prompt") == [("prompt", 1, 1, [[30.0, 30.0]], [1], None, False)]
    np.testing.assert_array_equal(res.masks[1] == 1, disc(30, 30))
    np.testing.assert_array_equal(res.masks[0] == 1, a)
    ob1 = res.info["objects"][0]
    assert ob1["carried_frames"] == [0] and ob1["carried_overridden"] == [1]


def test_negative_clicks_alone_correct_the_tracked_mask():
    fake, res = run([point(1, 0, (20, 20, 1)), point(1, 3, (26 + 3, 23, 0))])
    # first the start prompt and a pass, then the correction on the tracked frame, another pass
    kinds = [c[0] for c in fake.calls]
    assert kinds == ["load", "prompt", "propagate", "prompt", "propagate", "release"]
    assert fake.kinds("prompt")[1] == ("prompt", 3, 1, [[29.0, 23.0]], [0], None, True)
    tracked = shift(disc(20, 20), 3)  # disc at (26, 23)
    expected = tracked & ~disc(29, 23)
    np.testing.assert_array_equal(res.masks[3] == 1, expected)
    assert 0 < expected.sum() < tracked.sum()
    np.testing.assert_array_equal(res.masks[4] == 1, shift(expected, 1))  # followed onwards
    assert [p["kind"] for p in res.info["objects"][0]["prompts"]] == ["start", "correct"]
    assert len(res.info["passes"]) == 2


def test_objects_without_anything_to_start_from_are_absent():
    prompts = [point(1, 2, (10, 10, 1)), point(5, 2, (40, 30, 0))]
    carried = {6: {0: np.zeros((H, W), bool), 1: np.zeros((H, W), bool)}}
    fake, res = run(prompts, carried)
    assert set(np.unique(res.masks)) == {0, 1}
    assert [d["id"] for d in res.info["dropped"]] == [5, 6]
    assert all(c[2] == 1 for c in fake.kinds("prompt") + fake.kinds("add_mask"))
    # an empty carried mask still goes in when the object has something else
    carried = {1: {0: np.zeros((H, W), bool), 1: disc(10, 10)}}
    fake, res = run([], carried)
    assert fake.kinds("add_mask") == [("add_mask", 0, 1), ("add_mask", 1, 1)]
    assert res.info["objects"][0]["frames_without_mask"] == [0]


def test_empty_prompts_give_empty_masks():
    for carried in (None, {}):
        fake, res = run([], carried)
        assert res.masks.shape == (T, H, W) and res.masks.dtype == np.uint8
        assert not res.masks.any() and res.num_objects == 0
        assert fake.calls == []  # SAM2 not even loaded
        assert res.info["objects"] == [] and res.info["frames_without_mask"] == list(range(T))


def test_overlaps_go_to_the_smaller_object():
    box = [5.0, 5.0, 40.0, 30.0]
    fake, res = run([point(1, 0, box=box), point(3, 0, (20, 15, 1))])
    for f in range(T):
        small, big = shift(disc(20, 15), f), shift(fake_mask(None, None, box), f)
        np.testing.assert_array_equal(res.masks[f] == 3, small)
        np.testing.assert_array_equal(res.masks[f] == 1, big & ~small)
    # per frame: the object smaller on that frame wins; equal areas: the lower id
    a = np.zeros((2, 4, 4), bool)
    b = np.zeros((2, 4, 4), bool)
    a[0, :2, :2] = True  # 4 px on frame 0, 16 on frame 1
    a[1] = True
    b[0] = True  # 16 px on frame 0, 4 on frame 1
    b[1, :2, :2] = True
    labels = label_objects({7: a, 2: b}, (2, 4, 4))
    assert (labels[0, :2, :2] == 7).all() and (labels[1, :2, :2] == 2).all()
    labels = label_objects({7: a, 2: a.copy()}, (2, 4, 4))
    np.testing.assert_array_equal(labels, np.where(a, 2, 0))


def test_bad_inputs():
    with pytest.raises(ValueError, match="object id"):
        run([point(0, 1, (1, 1, 1))])
    with pytest.raises(ValueError, match="object id"):
        run([point(255, 1, (1, 1, 1))])
    with pytest.raises(ValueError, match="frame 8"):
        run([point(1, T, (1, 1, 1))])
    with pytest.raises(ValueError, match="label"):
        run([FramePrompt(1, 0, np.zeros((2, 2), np.float32), np.ones(1, np.int32))])
    with pytest.raises(ValueError, match="no click and no box"):
        run([FramePrompt(1, 0)])
    with pytest.raises(ValueError, match="shape"):
        run([], {1: {0: np.ones((H, W + 1), bool)}})
    with pytest.raises(ValueError, match="uint8"):
        Sam2Follower(predictor=FakePredictor())(frames().astype(np.float32), None, [])


def test_predictor_released_and_checked():
    fake = FakePredictor(fail=True)
    with pytest.raises(RuntimeError, match="boom"):
        run([point(1, 0, (5, 5, 1))], fake=fake)
    assert fake.calls[-1] == ("release",)
    with pytest.raises(RuntimeError, match=r"skipped frames \[3\]"):
        run([point(1, 0, (5, 5, 1))], fake=FakePredictor(skip_frame=3))


ALGO_KEYS = {f.name for f in dataclasses.fields(Sam2Params)}


def test_settings_from_the_densify_config():
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "densify" / "sam2.yaml"), resolve=True)
    model_keys = set(inspect.signature(Sam2Predictor.__init__).parameters) - {"self"}
    assert set(IGNORED_KEYS) == ALGO_KEYS | {"_target_"}
    assert set(cfg) == model_keys | set(IGNORED_KEYS)
    follower = Sam2Follower(predictor=FakePredictor(), **cfg)  # the whole config is accepted
    assert follower.name == "sam2" and follower.ignored == sorted(IGNORED_KEYS)
    with pytest.raises(TypeError, match="bogus"):
        Sam2Follower(predictor=FakePredictor(), bogus=1)


# --------------------------------------------------------------------------------------------
# the real sam2 code path: random weights, smallest model, 128 px, 4 frames of 64x96 (CPU)

RH, RW, RT = 64, 96, 4


def real_frames() -> np.ndarray:
    rng = np.random.default_rng(1)
    out = rng.integers(0, 255, (RT, RH, RW, 3), dtype=np.uint8)
    for t in range(RT):
        out[t, 20:40, 20 + 3 * t : 50 + 3 * t] = (220, 40, 40)
    return out


def real_follower(tmp_path: Path) -> Sam2Follower:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "densify" / "sam2.yaml"), resolve=True)
    # the keys the follower knows (all of them once IGNORED_KEYS is current, see above)
    model_keys = set(inspect.signature(Sam2Predictor.__init__).parameters)
    cfg = {k: v for k, v in cfg.items() if k in model_keys | set(IGNORED_KEYS)}
    cfg.update(
        model="sam2.1_hiera_t",
        checkpoint=None,
        image_size=128,
        device="cpu",
        tmp_dir=str(tmp_path),
        seed=0,
    )
    return Sam2Follower(**cfg)


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Sam2Follower:
    pytest.importorskip("sam2")
    return real_follower(tmp_path_factory.mktemp("sam2"))


@pytest.mark.slow
def test_real_predictor_prompt_and_add_mask(real):
    pred = real.predictor
    assert isinstance(pred, Sam2Predictor) and pred.model.image_size == 128
    pred.load(real_frames())
    try:
        pts = np.array([[35.0, 30.0], [10.0, 5.0]], np.float32)
        labels = np.array([1, 0], np.int32)
        box = np.array([20.0, 20.0, 49.0, 39.0], np.float32)
        for p, lab, b in ((pts, labels, None), (None, None, box), (pts, labels, box)):
            m = pred.prompt(1, 1, p, lab, b)
            assert m.shape == (RH, RW) and m.dtype == bool
        m = pred.prompt(2, 1, pts[:1], labels[:1], box)  # a second prompt frame
        assert m.shape == (RH, RW) and m.dtype == bool
        given = np.zeros((RH, RW), bool)
        given[16:48, 24:72] = True
        m = pred.add_mask(0, 7, given)
        assert m.dtype == bool and (m & given).sum() / (m | given).sum() > 0.8  # the mask back
        assert not pred.add_mask(3, 7, np.zeros((RH, RW), bool)).any()
        with pytest.raises(ValueError, match="points"):
            pred.prompt(1, 1, None, None, None)
        with pytest.raises(ValueError, match="shape"):
            pred.add_mask(0, 7, given[:-1])
        fwd = list(pred.propagate(0, reverse=False))
        assert [f for f, _ in fwd] == [0, 1, 2, 3]
        assert all(set(out) == {1, 7} for _, out in fwd)
        assert all(m.shape == (RH, RW) and m.dtype == bool for _, o in fwd for m in o.values())
        # a correction on a tracked frame becomes a conditioning frame; the flag is restored
        m = pred.prompt(3, 1, np.array([[30.0, 30.0]]), np.array([0]), None, refine=True)
        assert m.shape == (RH, RW)
        assert pred.model.add_all_frames_to_correct_as_cond is False
        bwd = list(pred.propagate(2, reverse=True))
        assert [f for f, _ in bwd] == [2, 1, 0]
        idx = pred._state["obj_id_to_idx"][1]
        assert 3 in pred._state["output_dict_per_obj"][idx]["cond_frame_outputs"]
    finally:
        pred.release()


@pytest.mark.slow
def test_real_follower_end_to_end_deterministic(real, tmp_path):
    frames_ = real_frames()
    carried_mask = np.zeros((RH, RW), bool)
    carried_mask[20:40, 20:50] = True
    prompts = [
        point(1, 1, (35, 30, 1), (5, 5, 0)),
        point(3, 2, (40, 30, 1), box=[25, 18, 58, 42]),
        point(3, 3, (45, 30, 0)),  # a correction
    ]
    carried = {1: {0: carried_mask}, 3: {0: np.zeros((RH, RW), bool)}}
    res = real(frames_, None, prompts, carried)
    assert res.masks.shape == (RT, RH, RW) and res.masks.dtype == np.uint8
    assert set(np.unique(res.masks)) <= {0, 1, 3}
    info = json.loads(json.dumps(res.info))
    assert info["method"] == "sam2" and info["model"]["checkpoint"] == "random weights"
    assert info["model"]["name"] == "sam2.1_hiera_t"
    assert [o["id"] for o in info["objects"]] == [1, 3] and len(info["passes"]) == 2
    assert [p["kind"] for p in info["objects"][1]["prompts"]] == ["start", "correct"]
    assert info["objects"][0]["carried_frames"] == [0]
    # the same seed gives the same weights and so the same masks on a freshly built model
    fresh = real_follower(tmp_path)(frames_, None, prompts, carried)
    np.testing.assert_array_equal(res.masks, fresh.masks)
    assert list(tmp_path.iterdir()) == []  # the temporary JPEG folder is gone
