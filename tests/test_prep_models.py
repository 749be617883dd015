"""Weight-based preprocessing back-ends: Depth Anything V2 and DINOv2 run for real on tiny
random-initialised configs; TAPIR and CoTracker (packages not installed here) are checked through
fake modules put in ``sys.modules``, so their plumbing (queries, coordinates, visibility, chunks) is
tested exactly."""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from moseg.prep.base import (
    DepthModel,
    FeatureModel,
    MissingBackendError,
    Tracker,
    TrackResult,
    query_grid,
)
from tests.fakes import FAKE_SHIFT, FakeTAPIR, install_fake_tapnet

CONF = Path(__file__).resolve().parents[1] / "moseg" / "conf"

TINY_DINO = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    image_size=56,
    patch_size=14,
)
TINY_DEPTH = dict(
    backbone_config=dict(
        model_type="dinov2",
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=56,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    ),
    reassemble_hidden_size=32,
    neck_hidden_sizes=[8, 16, 16, 32],
    fusion_hidden_size=16,
    head_hidden_size=8,
)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """[T=6, H=40, W=64, 3] uint8 RGB noise."""
    return np.random.default_rng(0).integers(0, 256, (6, 40, 64, 3), dtype=np.uint8)


def _yaml_matches_signature(cfg, cls, extra: tuple[str, ...] = ()) -> None:
    """Every constructor argument is in the config file, and nothing else (but ``extra``)."""
    params = set(inspect.signature(cls).parameters)
    keys = set(cfg.keys()) - {"_target_"}
    assert keys == params | set(extra), keys ^ params


# --------------------------------------------------------------------------------- depth -------
@pytest.fixture(scope="module")
def depth_model():
    pytest.importorskip("transformers")
    from moseg.prep.depth import DepthAnythingV2

    return DepthAnythingV2(config=TINY_DEPTH, device="cpu", input_size=56, batch_size=4)


@pytest.mark.slow
def test_depth_anything_random_init(depth_model, clip):
    from moseg.prep.depth import DepthAnythingV2

    assert isinstance(depth_model, DepthModel)
    assert depth_model.kind == "disparity" and depth_model.name == "depth_anything_v2"
    # shorter side 40 -> 56, longer 64 * 1.4 = 89.6 -> 84 (multiple of 14)
    assert depth_model.input_shape(40, 64) == (56, 84)
    d = depth_model(clip)
    assert d.shape == (6, 56, 84) and d.dtype == np.float32 and np.isfinite(d).all()
    np.testing.assert_array_equal(d, depth_model(clip))  # deterministic
    # same seeded random weights, one frame per batch: same maps (batching changes nothing)
    one = DepthAnythingV2(config=TINY_DEPTH, device="cpu", input_size=56, batch_size=1)
    np.testing.assert_allclose(one(clip[:3]), d[:3], rtol=1e-4, atol=1e-5)
    prov = depth_model.provenance()
    assert prov["checkpoint"] == "random-init" and prov["kind"] == "disparity"
    assert prov["input_size"] == 56


def test_resize_shorter_side():
    from moseg.prep.depth import resize_shorter_side

    assert resize_shorter_side(480, 854, 518, 14) == (518, 924)
    assert resize_shorter_side(854, 480, 518, 14) == (924, 518)
    assert resize_shorter_side(518, 518, 518, 14) == (518, 518)


@pytest.mark.slow
def test_depth_missing_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    from moseg.prep.depth import DepthAnythingV2

    missing = str(tmp_path / "nowhere" / "depth-model")
    with pytest.raises(MissingBackendError, match=r"depth\.checkpoint=") as e:
        DepthAnythingV2(checkpoint=missing, device="cpu")
    assert missing in str(e.value)
    with pytest.raises(MissingBackendError, match="config.json"):  # a folder without the model
        DepthAnythingV2(checkpoint=str(tmp_path), device="cpu")


# -------------------------------------------------------------------------------- dinov2 -------
@pytest.fixture(scope="module")
def dino():
    pytest.importorskip("transformers")
    from moseg.prep.dinov2 import DinoV2Features

    return DinoV2Features(config=TINY_DINO, device="cpu", input_size=56, stride=7)


def _tracks_at(points: np.ndarray, query_frame: np.ndarray, T: int) -> np.ndarray:
    """Tracks that sit at ``points [N, 2]`` in their query frame and elsewhere far away."""
    tr = np.full((len(points), T, 2), -1e3, np.float32)
    tr[np.arange(len(points)), query_frame] = points
    return tr


def test_dinov2_shapes_and_determinism(dino, clip):
    assert isinstance(dino, FeatureModel) and dino.dim == 32
    # longer side 64 -> 56 = 14 + 6 * 7; shorter 40 * 56 / 64 = 35 = 14 + 3 * 7
    assert dino.input_shape(40, 64) == (35, 56)
    assert dino.grid_shape(40, 64) == (4, 7)
    rng = np.random.default_rng(1)
    N = 20
    qf = rng.integers(0, len(clip), N)
    tracks = rng.uniform([-0.5, -0.5], [63.5, 39.5], (N, len(clip), 2)).astype(np.float32)
    f = dino(clip, tracks, qf)
    assert f.shape == (N, 32) and f.dtype == np.float16 and np.isfinite(f).all()
    np.testing.assert_array_equal(f, dino(clip, tracks, qf))
    assert dino(clip, tracks[:0], qf[:0]).shape == (0, 32)
    prov = dino.provenance()
    assert prov["checkpoint"] == "random-init" and prov["facet"] == "key"
    assert prov["layer"] == 1 and prov["stride"] == 7 and prov["input_size"] == 56
    with pytest.raises(ValueError, match="tracks have shape"):
        dino(clip, tracks[:, :3], qf)


def test_dinov2_only_query_frames_computed(dino, clip, monkeypatch):
    seen = []
    original = dino._maps

    def spy(frames):
        seen.append(frames.copy())
        return original(frames)

    monkeypatch.setattr(dino, "_maps", spy)
    qf = np.array([4, 1, 4, 4, 1])
    pts = np.array([[10, 10], [20, 5], [30, 30], [0, 0], [63, 39]], np.float32)
    dino(clip, _tracks_at(pts, qf, len(clip)), qf)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], clip[[1, 4]])


def test_dinov2_coordinate_mapping(dino, clip, monkeypatch):
    """A map that stores each token's (column, row, frame) in its channels, sampled at frame
    pixels computed by hand from the documented mapping."""
    from moseg.prep.dinov2 import frame_to_grid

    h, w = dino.grid_shape(40, 64)

    def position_maps(frames):
        m = np.zeros((len(frames), h, w, dino.dim), np.float32)
        m[..., 0] = np.arange(w)[None, None, :]
        m[..., 1] = np.arange(h)[None, :, None]
        for k, f in enumerate(frames):  # which clip frame this is
            m[k, ..., 2] = np.flatnonzero((clip == f).all(axis=(1, 2, 3)))[0]
        return m

    monkeypatch.setattr(dino, "_maps", position_maps)
    # frames 64 x 40 -> resized 56 x 35 (scale 8/7 px per resized px on both axes).
    # Token (i=2, j=3) covers resized [21, 35) x [14, 28); its centre (28, 21) in edge
    # coordinates is frame pixel (28 * 8/7 - 0.5, 21 * 8/7 - 0.5) = (31.5, 23.5).
    pts = np.array(
        [
            [31.5, 23.5],  # centre of token (2, 3)
            [31.5 + 4.0, 23.5],  # half a token stride (3.5 resized px = 4 frame px) right
            [-0.5, -0.5],  # frame corner: before the first token centre, clamped
            [63.5, 39.5],  # opposite corner: after the last one, clamped
        ],
        np.float32,
    )
    qf = np.array([5, 5, 2, 2])
    f = dino(clip, _tracks_at(pts, qf, len(clip)), qf).astype(np.float32)
    np.testing.assert_allclose(f[:, :3], [[3, 2, 5], [3.5, 2, 5], [0, 0, 2], [6, 3, 2]])
    gx, gy = frame_to_grid(np.array([31.5]), np.array([23.5]), (40, 64), (35, 56), 14, 7)
    np.testing.assert_allclose([gx[0], gy[0]], [3.0, 2.0])
    # no resize, stride = patch: token j centred at pixel 14 j + 6.5
    gx, _ = frame_to_grid(np.array([6.5, 20.5]), np.array([0.0, 0.0]), (56, 56), (56, 56), 14, 14)
    np.testing.assert_allclose(gx, [0.0, 1.0])


def test_dinov2_matches_hf_forward():
    """With stride = patch and the trained grid size, the hand-run network equals the model's own
    forward (key projection and block output)."""
    pytest.importorskip("transformers")
    from moseg.prep.depth import to_model_input
    from moseg.prep.dinov2 import DinoV2Features, _projection

    frames = np.random.default_rng(2).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    key = DinoV2Features(config=TINY_DINO, device="cpu", input_size=56, stride=14, layer=0)
    tok = DinoV2Features(config=TINY_DINO, device="cpu", input_size=56, stride=14, facet="token")
    x = to_model_input(frames, (56, 56), torch.device("cpu"), torch.float32)
    captured = []
    proj = _projection(key.model.encoder.layer[0].attention, "key")
    hook = proj.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.inference_mode():
        out = key.model(pixel_values=x, output_hidden_states=True)
    hook.remove()
    ref_key = captured[0][:, 1:].reshape(2, 4, 4, 32).numpy()
    np.testing.assert_allclose(key._maps(frames), ref_key, atol=1e-5)
    with torch.inference_mode():
        out = tok.model(pixel_values=x, output_hidden_states=True)
    ref_tok = out.hidden_states[-1][:, 1:].reshape(2, 4, 4, 32).numpy()
    np.testing.assert_allclose(tok._maps(frames), ref_tok, atol=1e-5)


def test_dinov2_facets_and_options(clip):
    pytest.importorskip("transformers")
    from moseg.prep.dinov2 import DinoV2Features

    rng = np.random.default_rng(3)
    qf = rng.integers(0, len(clip), 8)
    tracks = rng.uniform(0, 39, (8, len(clip), 2)).astype(np.float32)
    out = {}
    for facet in ("key", "query", "value", "token"):
        m = DinoV2Features(config=TINY_DINO, device="cpu", input_size=56, facet=facet)
        out[facet] = m(clip, tracks, qf).astype(np.float32)
        assert out[facet].shape == (8, 32)
    assert not np.allclose(out["key"], out["token"])
    assert not np.allclose(out["key"], out["query"])
    unit = DinoV2Features(config=TINY_DINO, device="cpu", input_size=56, normalize=True)
    f = unit(clip, tracks, qf).astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(
        f, out["key"] / np.linalg.norm(out["key"], axis=1, keepdims=True), atol=2e-3
    )
    with pytest.raises(ValueError, match="facet"):
        DinoV2Features(config=TINY_DINO, device="cpu", facet="attn")
    with pytest.raises(ValueError, match="layer"):
        DinoV2Features(config=TINY_DINO, device="cpu", layer=2)
    with pytest.raises(ValueError, match="stride"):
        DinoV2Features(config=TINY_DINO, device="cpu", stride=15)


def test_dinov2_feature_map_contract_convention(dino, clip):
    """feature_map cells are centred at (j + 0.5) * cell_px - 0.5: sampling a track there gives
    the cell's value."""
    fmap, cell = dino.feature_map(clip[3])
    assert cell == pytest.approx(8.0)  # stride 7 resized px * 8/7
    assert fmap.shape == (5, 8, 32) and fmap.dtype == np.float32
    ii, jj = np.meshgrid(np.arange(5), np.arange(8), indexing="ij")
    pts = np.stack([(jj + 0.5) * cell - 0.5, (ii + 0.5) * cell - 0.5], -1).reshape(-1, 2)
    qf = np.full(len(pts), 3)
    f = dino(clip, _tracks_at(pts.astype(np.float32), qf, len(clip)), qf).astype(np.float32)
    np.testing.assert_allclose(f, fmap.reshape(-1, 32), rtol=2e-3, atol=2e-3)


def test_dinov2_missing_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    from moseg.prep.dinov2 import DinoV2Features

    with pytest.raises(MissingBackendError, match=r"features\.checkpoint="):
        DinoV2Features(checkpoint=str(tmp_path / "nowhere" / "dino"), device="cpu")


# ------------------------------------------------------------------------ fake trackers --------
SHIFT = FAKE_SHIFT  # what the fakes add to every query, in the model's pixels


class FakePredictor(torch.nn.Module):
    """Stands in for ``cotracker.predictor.CoTrackerPredictor``: tracks are the queries moved by
    SHIFT; visible from the query frame on (bool, or probabilities 0.8 / 0.2 if ``soft``)."""

    soft = False
    instances: list[FakePredictor] = []

    def __init__(self, checkpoint=None, offline=True, v2=False, window_len=60):
        super().__init__()
        self.kwargs = dict(checkpoint=checkpoint, offline=offline, v2=v2, window_len=window_len)
        self.calls: list[tuple[tuple[int, ...], torch.Tensor, bool, float]] = []
        FakePredictor.instances.append(self)

    def forward(self, video, queries=None, backward_tracking=False):
        self.calls.append(
            (tuple(video.shape), queries.clone(), backward_tracking, float(video.max()))
        )
        B, T = video.shape[:2]
        t, x, y = queries.unbind(-1)
        xy = torch.stack([x + SHIFT[0], y + SHIFT[1]], -1)  # [B, N, 2]
        tracks = xy[:, None].expand(B, T, xy.shape[1], 2).clone()
        vis = torch.arange(T)[None, :, None] >= t[:, None, :]
        if self.soft:
            vis = torch.where(vis, 0.8, 0.2)
        return tracks, vis


@pytest.fixture
def fake_tapnet(monkeypatch):
    return install_fake_tapnet(monkeypatch)


@pytest.fixture
def fake_cotracker(monkeypatch):
    FakePredictor.instances.clear()
    monkeypatch.setattr(FakePredictor, "soft", False)
    mods = {n: types.ModuleType(n) for n in ("cotracker", "cotracker.predictor")}
    mods["cotracker.predictor"].CoTrackerPredictor = FakePredictor
    mods["cotracker"].predictor = mods["cotracker.predictor"]
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    return mods


@pytest.fixture
def ckpt(tmp_path) -> str:
    path = tmp_path / "weights.pt"
    torch.save({}, path)
    return str(path)


@pytest.fixture(scope="module")
def video() -> np.ndarray:
    """[T=10, H=40, W=64, 3] uint8."""
    return np.random.default_rng(4).integers(0, 256, (10, 40, 64, 3), dtype=np.uint8)


def _expected_grid(T, H, W, every, grid_px):
    pts, qf = query_grid(T, H, W, every=every, grid_px=grid_px)
    return pts, qf, np.arange(T)[None, :] >= qf[:, None]


def test_tapir_missing_package(monkeypatch, ckpt):
    from moseg.prep.trackers.tapir import TapirTracker

    monkeypatch.setitem(sys.modules, "tapnet", None)  # import fails even where it is installed
    with pytest.raises(MissingBackendError, match=r"pip install 'tapnet @ git\+https://github"):
        TapirTracker(checkpoint=ckpt)


def test_tapir_missing_checkpoint(fake_tapnet, tmp_path):
    from moseg.prep.trackers.tapir import TapirTracker

    with pytest.raises(MissingBackendError, match="tracker.checkpoint=PATH") as e:
        TapirTracker(checkpoint=str(tmp_path / "bootstapir_checkpoint_v2.pt"))
    assert "storage.googleapis.com/dm-tapnet/bootstap/bootstapir_checkpoint_v2.pt" in str(e.value)


def test_tapir_plumbing(fake_tapnet, ckpt, video):
    from moseg.prep.trackers.tapir import TapirTracker

    T, H, W = video.shape[:3]
    tracker = TapirTracker(
        checkpoint=ckpt, resize=(24, 32), query_every=4, grid_px=16, chunk_size=7, device="cpu"
    )
    assert isinstance(tracker, Tracker)
    model = FakeTAPIR.instances[-1]
    assert model.kwargs == {"pyramid_level": 1, "extra_convs": True, "num_pips_iter": 4}
    res = tracker(video)
    assert isinstance(res, TrackResult)
    pts, qf, vis = _expected_grid(T, H, W, 4, 16)
    N = len(qf)
    assert res.tracks.shape == (N, T, 2) and res.tracks.dtype == np.float32
    np.testing.assert_array_equal(res.query_frame, qf)
    # queries: (t, y, x) in resized raster coordinates (pixel corners at integers), in chunks of 7
    assert [c[1].shape[1] for c in model.calls] == [7] * (N // 7) + ([N % 7] if N % 7 else [])
    q = torch.cat([c[1][0] for c in model.calls]).numpy()
    np.testing.assert_allclose(q[:, 0], qf)
    np.testing.assert_allclose(q[:, 1], (pts[:, 1] + 0.5) * 24 / H, rtol=1e-6)
    np.testing.assert_allclose(q[:, 2], (pts[:, 0] + 0.5) * 32 / W, rtol=1e-6)
    shape, _, lo, hi = model.calls[0]
    assert shape == (1, T, 24, 32, 3) and lo >= -1.0 and hi <= 1.0 and hi - lo > 1.0
    # outputs back in frame pixels: the shift scales by W / 32 and H / 24
    expected = np.repeat(pts[:, None], T, 1) + np.array([SHIFT[0] * W / 32, SHIFT[1] * H / 24])
    expected[np.arange(N), qf] = pts  # the query point itself, exactly
    np.testing.assert_allclose(res.tracks, expected, atol=1e-4)
    np.testing.assert_array_equal(res.visibility, vis)
    assert res.visibility[np.arange(N), qf].all()
    np.testing.assert_allclose(res.confidence, vis.astype(np.float32), atol=1e-6)
    assert res.info["num_queries"] == N and res.info["query_frames"] == 3
    # chunking changes nothing
    whole = TapirTracker(checkpoint=ckpt, resize=(24, 32), query_every=4, grid_px=16, device="cpu")(
        video
    )
    np.testing.assert_array_equal(whole.tracks, res.tracks)
    np.testing.assert_array_equal(whole.visibility, res.visibility)
    prov = tracker.provenance()
    assert prov["name"] == "tapir" and prov["resize"] == [24, 32] and prov["query_every"] == 4


def test_tapir_identity_size(fake_tapnet, ckpt, video):
    """With no resize the model's raster coordinates are the frame's shifted by half a pixel."""
    from moseg.prep.trackers.tapir import TapirTracker

    res = TapirTracker(checkpoint=ckpt, resize=None, grid_px=16, device="cpu")(video)
    q = FakeTAPIR.instances[-1].calls[0][1][0].numpy()
    pts, qf, _ = _expected_grid(10, 40, 64, 8, 16)
    np.testing.assert_allclose(q[:, 1:], pts[:, ::-1] + 0.5)
    other = np.ones(res.tracks.shape[:2], bool)
    other[np.arange(len(qf)), qf] = False
    np.testing.assert_allclose((res.tracks - pts[:, None])[other], np.tile(SHIFT, (other.sum(), 1)))
    with pytest.raises(ValueError, match="multiples of 8"):
        TapirTracker(checkpoint=ckpt, resize=(20, 32))


def test_cotracker_missing_package(monkeypatch, ckpt):
    from moseg.prep.trackers.cotracker import CoTrackerTracker

    monkeypatch.setitem(sys.modules, "cotracker", None)
    with pytest.raises(MissingBackendError, match=r"pip install 'cotracker @ git\+https://github"):
        CoTrackerTracker(checkpoint=ckpt)


def test_cotracker_missing_checkpoint(fake_cotracker, tmp_path):
    from moseg.prep.trackers.cotracker import CoTrackerTracker

    with pytest.raises(MissingBackendError, match="tracker.checkpoint=PATH") as e:
        CoTrackerTracker(checkpoint=str(tmp_path / "scaled_offline.pth"))
    assert "facebook/cotracker3" in str(e.value)


@pytest.mark.parametrize("soft", [False, True])
def test_cotracker_plumbing(fake_cotracker, ckpt, video, soft, monkeypatch):
    from moseg.prep.trackers.cotracker import CoTrackerTracker

    monkeypatch.setattr(FakePredictor, "soft", soft)
    T, H, W = video.shape[:3]
    tracker = CoTrackerTracker(
        checkpoint=ckpt, query_every=4, grid_px=16, chunk_size=5, device="cpu"
    )
    assert isinstance(tracker, Tracker)
    model = FakePredictor.instances[-1]
    assert model.kwargs == {"checkpoint": ckpt, "offline": True, "v2": False, "window_len": 60}
    res = tracker(video)
    pts, qf, vis = _expected_grid(T, H, W, 4, 16)
    N = len(qf)
    assert [c[1].shape[1] for c in model.calls] == [5] * (N // 5) + ([N % 5] if N % 5 else [])
    shape, _, backward, vmax = model.calls[0]
    assert shape == (1, T, 3, H, W) and backward is True and vmax > 1.0  # 0..255, full size
    q = torch.cat([c[1][0] for c in model.calls]).numpy()  # (t, x, y) in frame pixels
    np.testing.assert_allclose(q, np.concatenate([qf[:, None], pts], 1))
    expected = np.repeat(pts[:, None], T, 1) + np.array(SHIFT)
    expected[np.arange(N), qf] = pts
    np.testing.assert_allclose(res.tracks, expected, atol=1e-5)
    np.testing.assert_array_equal(res.visibility, vis)
    np.testing.assert_array_equal(res.query_frame, qf)
    want_conf = np.where(vis, 0.8, 0.2) if soft else vis.astype(np.float32)
    want_conf[np.arange(N), qf] = 1.0
    np.testing.assert_allclose(res.confidence, want_conf, atol=1e-6)
    assert tracker.provenance()["name"] == "cotracker"


# ------------------------------------------------------------------------ config files --------
def test_yaml_depth(clip):
    pytest.importorskip("transformers")
    from moseg.prep.depth import DepthAnythingV2

    cfg = OmegaConf.load(CONF / "depth" / "depth_anything_v2.yaml")
    _yaml_matches_signature(cfg, DepthAnythingV2)
    assert cfg.checkpoint == "depth-anything/Depth-Anything-V2-Small-hf" and cfg.config is None
    cfg.config, cfg.device, cfg.input_size = TINY_DEPTH, "cpu", 56
    model = instantiate(cfg)  # nested config arrives as a DictConfig
    assert isinstance(model, DepthAnythingV2)
    assert model(clip[:2]).shape == (2, 56, 84)
    plain = instantiate(OmegaConf.to_container(cfg), _convert_="all")  # as the pipeline builds it
    assert isinstance(plain, DepthAnythingV2)
    assert OmegaConf.load(CONF / "depth" / "none.yaml")._target_ is None


def test_yaml_features(clip):
    pytest.importorskip("transformers")
    from moseg.prep.dinov2 import DinoV2Features

    cfg = OmegaConf.load(CONF / "features" / "dinov2.yaml")
    _yaml_matches_signature(cfg, DinoV2Features)
    assert cfg.facet == "key" and cfg.stride == 7 and cfg.layer == -1
    cfg.config, cfg.device, cfg.input_size = TINY_DINO, "cpu", 56
    model = instantiate(cfg)
    assert isinstance(model, DinoV2Features) and model.dim == 32
    qf = np.array([0, 3])
    assert model(clip, np.zeros((2, len(clip), 2), np.float32), qf).shape == (2, 32)


def test_yaml_trackers(fake_tapnet, fake_cotracker, ckpt, monkeypatch, tmp_path):
    from moseg.prep.trackers.cotracker import CoTrackerTracker
    from moseg.prep.trackers.tapir import TapirTracker

    monkeypatch.setenv("MOSEG_ROOT", str(tmp_path / "root"))
    for name, cls, ckpt_name in [
        ("tapir", TapirTracker, "bootstapir_checkpoint_v2.pt"),
        ("cotracker", CoTrackerTracker, "scaled_offline.pth"),
    ]:
        cfg = OmegaConf.load(CONF / "tracker" / f"{name}.yaml")
        _yaml_matches_signature(cfg, cls)
        assert cfg.query_every == 8 and cfg.grid_px == 8
        assert cfg.checkpoint == str(tmp_path / "root" / "checkpoints" / ckpt_name)
        with pytest.raises(Exception, match="tracker.checkpoint=PATH") as e:
            instantiate(cfg)  # hydra wraps the error in an InstantiationException
        assert isinstance(e.value, MissingBackendError) or isinstance(
            e.value.__cause__, MissingBackendError
        )
        cfg.checkpoint = ckpt
        assert isinstance(instantiate(cfg), cls)
