"""data_prep.release on a tiny tree written in the reference release's own file formats."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import imageio.v2 as iio
import numpy as np
import pytest
from PIL import Image

from moseg.config import compose
from moseg.datasets import release
from moseg.datasets.common import InputError
from moseg.io import load_sequence, validate
from moseg.prep.jobs import run_jobs

ROOT = Path(__file__).resolve().parents[1]
T, H, W, STEP = 7, 24, 32, 3  # query frames 0, 3, 6
FH, FW, C = 4, 5, 3  # DINO map size and width
NAMES = [f"{t:05d}" for t in range(T)]
SCENE = "blob"
# query points (x, y) on every query frame: integer grid points, corners included
POINTS = np.array(
    [[0, 0], [31, 23], [5, 7], [20, 3], [10, 15], [15, 20], [16, 10], [25, 12], [2, 22], [29, 1]],
    np.float32,
)
N = len(POINTS)
EMPTY_FRAME = 5  # every point occluded there


def to_uint16(disp: np.ndarray) -> np.ndarray:
    """What run_depth.py's to_uint16 does: min-max per frame to the 16-bit range, truncated."""
    lo, hi = disp.min(), disp.max()
    return (65535 * (disp - lo) / (hi - lo)).astype(np.uint16)


def query_tracks(q: int, rng: np.random.Generator) -> np.ndarray:
    """``[N, T, 4]`` (x, y, occlusion logit, expected distance) of the points queried on ``q``."""
    t = np.arange(T)[None, :, None]
    xy = POINTS[:, None, :] + (t - q) * np.array([0.5, 0.25], np.float32)  # (31, 23) leaves
    occ = rng.normal(0.0, 2.5, (N, T))
    dist = rng.normal(-1.0, 1.5, (N, T))
    occ[2], dist[2] = 5.0, -4.0  # occluded everywhere, its query frame too
    occ[3], dist[3] = -1.0, -1.0  # p = c = 0.731, p * c = 0.534: visible
    occ[4], dist[4] = -0.8, -0.8  # p = c = 0.690, p * c = 0.476: neither -> confidence 0
    occ[5], dist[5] = 4.0, -4.0  # surely occluded: invisible, confidence 0.982 kept
    occ[:, EMPTY_FRAME] = 6.0
    xy[:, q] = POINTS  # run_tapir.py writes the exact query points in their own frame
    return np.concatenate([xy, occ[..., None], dist[..., None]], axis=2).astype(np.float32)


def make_tree(
    root: Path, layout: str = "by_kind", dinos: str = "npy", masks: bool = True
) -> dict[str, Any]:
    """A release tree for one scene; returns what was written."""

    def folder(kind: str) -> Path:
        d = root / kind / SCENE if layout == "by_kind" else root / SCENE / kind
        d.mkdir(parents=True, exist_ok=True)
        return d

    rng = np.random.default_rng(0)
    for n in NAMES:
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder("images") / f"{n}.jpg")
    tracks = {}
    for q in range(0, T, STEP):
        tracks[q] = query_tracks(q, rng)
        for t, n in enumerate(NAMES):
            np.save(folder("bootstapir") / f"{NAMES[q]}_{n}.npy", tracks[q][:, t])
    codes = []
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    for t, n in enumerate(NAMES):
        disp = 1.0 + (t + 1) * (xx / W) ** 2 + 0.3 * np.sin(yy / 3.0)  # its own range per frame
        codes.append(to_uint16(disp))
        iio.imwrite(folder("depth_anything_v2") / f"{n}.png", codes[-1])
    feats = {}
    i, j = np.mgrid[0:FH, 0:FW]
    for q in range(0, T, STEP):  # dino_feat.py encodes the query frames only
        feats[q] = np.stack([i, j, 10 * i + j + q], axis=-1).astype(np.float16)
        if dinos == "npy":
            np.save(folder("dinos") / f"{NAMES[q]}.npy", feats[q])
        else:
            with h5py.File(folder("dinos") / f"{NAMES[q]}.h5", "w") as f:
                f["dinos"] = feats[q]
    if masks:
        gt = root / "gt" / SCENE
        gt.mkdir(parents=True)
        for n in NAMES:
            m = np.zeros((H, W), np.uint8)
            m[:, :16] = 255  # left half moves
            Image.fromarray(m).save(gt / f"{n}.png")
    return {"tracks": tracks, "codes": np.stack(codes), "feats": feats}


def cfg_for(raw: Path, out: Path, *overrides: str):
    return compose(
        "prepare",
        [
            "dataset=release",
            f"dataset.raw={raw}",
            f"dataset.out={out}",
            f"dataset.step={STEP}",
            "progress=false",
            *overrides,
        ],
    )


def convert(raw: Path, *overrides: str):
    (job,) = release.make_jobs(cfg_for(raw, raw.parent / "out", *overrides))
    return release.convert(**job.kwargs)


def release_rule(occ: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, ...]:
    """parse_tapir_track_info written out: visible, clamped confidence, visibility probability."""
    p, c = 1.0 / (1.0 + np.exp(occ)), 1.0 / (1.0 + np.exp(dist))
    vis = p * c > 0.5
    return vis, c * (vis | ((1 - p) * c > 0.5)), p


def in_frame(xy: np.ndarray) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    return (x >= -0.5) & (x <= W - 0.5) & (y >= -0.5) & (y <= H - 0.5)


# ----------------------------------------------------------------------------------------------
def test_tracks_keep_the_release_conventions(tmp_path):
    raw = tmp_path / "raw"
    gt = make_tree(raw)
    jobs = release.make_jobs(cfg_for(raw, tmp_path / "out", f"dataset.folders.masks={raw / 'gt'}"))
    assert [j.name for j in jobs] == [f"val/{SCENE}"]
    report = run_jobs(jobs, progress=False)
    assert report.ok, report.summary()
    path = tmp_path / "out" / "val" / f"{SCENE}.h5"
    assert validate(path) == []
    seq = load_sequence(path)

    # query frames every STEP frames, every track of every file kept, in order
    qs = list(range(0, T, STEP))
    assert qs == [0, 3, 6]
    assert seq.query_frame.tolist() == [q for q in qs for _ in range(N)]
    arr = np.concatenate([gt["tracks"][q] for q in qs])
    assert np.array_equal(seq.tracks, arr[..., :2])  # frame pixels, unchanged

    # visibility, clamped confidence and the raw probability, as parse_tapir_track_info
    vis, conf, prob = release_rule(arr[..., 2].astype(np.float64), arr[..., 3].astype(np.float64))
    rows = np.arange(len(arr))
    want = vis.copy()
    want[rows, seq.query_frame] = True  # the contract: visible at its query frame
    want &= in_frame(arr[..., :2])  # ... and only inside the frame
    assert np.array_equal(seq.visibility, want)
    np.testing.assert_allclose(seq.confidence.astype(np.float32), conf, atol=1e-3)
    np.testing.assert_allclose(seq.visibility_prob.astype(np.float32), prob, atol=1e-3)
    vis3, conf3 = seq.visibility[N : 2 * N, 1], seq.confidence[N : 2 * N, 1]  # query frame 3
    assert vis3[3] and conf3[3] == pytest.approx(0.731, 1e-3)  # p * c = 0.534
    assert not vis3[4] and conf3[4] == 0  # p * c = 0.476, (1 - p) * c = 0.214: clamped
    assert not vis3[5] and conf3[5] == pytest.approx(0.982, 1e-3)  # surely occluded
    assert seq.visibility[N + 5, 3] and seq.visibility_prob[N + 5, 3] < 0.05  # forced at query

    ds = seq.provenance["dataset"]
    assert ds["query_frames"] == qs
    assert ds["forced_visible_at_query"] == int((~vis[rows, seq.query_frame]).sum()) >= 6
    assert ds["invisible_everywhere_in_release"] == int((~vis.any(axis=1)).sum()) >= 3
    assert ds["visible_outside_frame_set_invisible"] == int((vis & ~in_frame(arr[..., :2])).sum())
    assert ds["visible_outside_frame_set_invisible"] > 0
    assert ds["frames_without_visible_track"] == [EMPTY_FRAME]
    assert not seq.visibility[:, EMPTY_FRAME].any()  # not forced, unlike inference.py

    # labels: mask > 0 at the rounded query point
    qx = seq.tracks[rows, seq.query_frame, 0]
    assert np.array_equal(seq.label, (qx < 16).astype(np.int8))
    assert seq.masks.shape == (T, H, W) and seq.object_moving.tolist() == [False, True]


@pytest.mark.slow
def test_depth_is_the_16_bit_png_and_the_switch_reproduces_the_release(tmp_path):
    raw = tmp_path / "raw"
    gt = make_tree(raw, masks=False)
    seq = convert(raw)
    assert seq.depth_kind == "disparity"
    codes = gt["codes"].astype(np.float32)
    # run_depth.py spans 0..65535 per frame: code / 65535 is also each frame's min-max
    np.testing.assert_allclose(seq.depth.astype(np.float32), codes / 65535, atol=1e-3)
    lo, hi = codes.min(axis=(1, 2), keepdims=True), codes.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(seq.depth.astype(np.float32), (codes - lo) / (hi - lo), atol=1e-3)

    # a frame that does not span the range (not run_depth.py's): kept as it is, per video
    codes[2] = np.linspace(100, 40000, H * W).reshape(H, W).astype(np.uint16)
    iio.imwrite(raw / "depth_anything_v2" / SCENE / f"{NAMES[2]}.png", codes[2].astype(np.uint16))
    seq = convert(raw)
    np.testing.assert_allclose(seq.depth.astype(np.float32), codes / 65535, atol=1e-3)
    assert seq.depth_raw_range == pytest.approx((0.0, 1.0))
    # track_depth at an integer pixel is that pixel of the stored map
    rows = np.arange(seq.num_tracks)
    q = seq.query_frame
    x, y = seq.tracks[rows, q, 0].astype(int), seq.tracks[rows, q, 1].astype(int)
    np.testing.assert_allclose(seq.track_depth[rows, q], seq.depth[q, y, x], atol=1e-3)
    assert np.all(seq.label == -1) and seq.masks is None  # no masks: unknown

    old = convert(raw, "dataset.depth_decoding=release_8bit")
    for t, n in enumerate(NAMES):
        L = np.asarray(Image.open(raw / "depth_anything_v2" / SCENE / f"{n}.png").convert("L"))
        L = L.astype(np.float64)
        want = (L - L.min()) / (L.max() - L.min())  # inference.py
        np.testing.assert_allclose(old.depth[t].astype(np.float64), want, atol=1e-3)
    # saturation makes it nearly binary; the 16 bits are not
    binary = lambda d: np.isin(d, (0.0, 1.0)).mean()  # noqa: E731
    assert binary(old.depth) > 0.9 and binary(seq.depth) < 0.1
    assert old.provenance["depth"]["decoding"] == "release_8bit"


@pytest.mark.slow
def test_dino_features_come_from_the_nearest_cell(tmp_path):
    raw = tmp_path / "raw"
    gt = make_tree(raw, masks=False)
    seq = convert(raw)
    rows = np.arange(seq.num_tracks)
    q = seq.query_frame
    x, y = seq.tracks[rows, q, 0], seq.tracks[rows, q, 1]
    ix = [int(v * FW / W) for v in x]  # get_feat: int(coord * map size / image size)
    iy = [int(v * FH / H) for v in y]
    want = np.stack([gt["feats"][int(k)][b, a] for k, a, b in zip(q, ix, iy, strict=True)])
    assert np.array_equal(seq.features, want)
    assert seq.features[q == 0][1].tolist() == [3, 4, 34]  # (31, 23) -> last cell
    # clamped to the map for points beyond it
    cell = release.sample_cells(gt["feats"][0], np.array([[-3.0, 40.0], [99.0, -1.0]]), (H, W))
    assert cell.tolist() == [[3, 0, 30], [0, 4, 4]]

    # the same from .h5 maps in the scene-first layout
    other = tmp_path / "other"
    make_tree(other, layout="by_scene", dinos="h5", masks=False)
    seq2 = convert(other)
    assert np.array_equal(seq2.features, seq.features)
    assert np.array_equal(seq2.visibility, seq.visibility)


@pytest.mark.slow
def test_rerun_skips_and_subsampling_is_fixed(tmp_path):
    raw = tmp_path / "raw"
    make_tree(raw, masks=False)
    cfg = cfg_for(raw, tmp_path / "out", "dataset.tracks_per_query=4")
    first = run_jobs(release.make_jobs(cfg), progress=False)
    again = run_jobs(release.make_jobs(cfg), progress=False)
    assert first.written == [f"val/{SCENE}"] and again.skipped == [f"val/{SCENE}"]
    seq = load_sequence(tmp_path / "out" / "val" / f"{SCENE}.h5")
    assert seq.query_frame.tolist() == [0] * 4 + [3] * 4 + [6] * 4
    assert seq.provenance["dataset"]["tracks_per_query"]["00003"] == [N, 4]
    assert np.array_equal(convert(raw, "dataset.tracks_per_query=4").tracks, seq.tracks)


def test_query_frames_off_the_step_grid_are_reported(tmp_path):
    raw = tmp_path / "raw"
    make_tree(raw, masks=False)
    seq = convert(raw, "dataset.step=6")  # a coarser grid than the tracks were made on
    assert seq.query_frame.tolist() == [0] * N + [6] * N
    assert seq.provenance["dataset"]["unused_query_frames"] == ["00003"]
    assert convert(raw).provenance["dataset"]["unused_query_frames"] == []


def _break(raw: Path, how: str) -> None:
    b, d = raw / "bootstapir" / SCENE, raw / "depth_anything_v2" / SCENE
    if how == "no_tracks":
        shutil.rmtree(b)
    elif how == "shape":
        np.save(b / "00003_00004.npy", np.zeros((N, 3), np.float32))
    elif how == "nan":
        a = np.load(b / "00000_00002.npy")
        a[1, 0] = np.nan
        np.save(b / "00000_00002.npy", a)
    elif how == "depth_count":
        (d / "00004.png").unlink()
    elif how == "depth_8bit":
        iio.imwrite(d / "00004.png", np.zeros((H, W), np.uint8))
    elif how == "extra_image":
        shutil.copy(raw / "images" / SCENE / "00006.jpg", raw / "images" / SCENE / "00007.jpg")
    elif how == "fewer_images":
        (raw / "images" / SCENE / "00006.jpg").unlink()
    elif how == "no_dino":
        (raw / "dinos" / SCENE / "00003.npy").unlink()


@pytest.mark.parametrize(
    "how, step, message",
    [
        ("no_tracks", STEP, r"bootstapir/blob: track folder not found"),
        ("shape", STEP, r"00003_00004\.npy: has shape \(10, 3\), expected \[N, 4\]"),
        ("nan", STEP, r"00000_00002\.npy: holds NaN"),
        ("depth_count", STEP, r"depth_anything_v2/blob: holds 6 depth PNGs for 7 frames"),
        ("depth_8bit", STEP, r"00004\.png: is uint8 .* expected a one-channel 16-bit PNG"),
        ("extra_image", STEP, r"00000_00007\.npy: missing"),
        ("fewer_images", STEP, r"in frames \['00006'\], which .*images/blob \(6 frames\) lacks"),
        ("no_dino", STEP, r"dinos/blob/00003\.npy: missing; query frame 3"),
        (None, 2, r"00002_00000\.npy: missing.* query frames \['00000', '00003', '00006'\].*step"),
    ],
)
@pytest.mark.slow
def test_bad_input_names_the_file(tmp_path, how, step, message):
    raw = tmp_path / "raw"
    make_tree(raw, masks=False)
    _break(raw, how)
    with pytest.raises(InputError, match=message):
        convert(raw, f"dataset.step={step}")


@pytest.mark.slow
def test_bad_trees_and_settings_stop_discovery(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="release data folder not found"):
        release.make_jobs(cfg_for(tmp_path / "missing", out))
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    with pytest.raises(InputError, match="holds neither images/<scene>/ nor <scene>/images/"):
        release.make_jobs(cfg_for(tmp_path / "empty", out))
    raw = tmp_path / "raw"
    make_tree(raw, masks=False)
    with pytest.raises(InputError, match="depth_decoding must be one of"):
        release.make_jobs(cfg_for(raw, out, "dataset.depth_decoding=8bit"))
    with pytest.raises(InputError, match="no sequence"):
        release.make_jobs(cfg_for(raw, out, "dataset.sequences=[nope]"))
    (raw / "gt" / SCENE).mkdir(parents=True)
    Image.fromarray(np.zeros((H, W), np.uint8)).save(raw / "gt" / SCENE / "00000.png")
    with pytest.raises(InputError, match="holds 1 masks for 7 frames"):
        convert(raw, "dataset.folders.masks=gt")


@pytest.mark.slow
def test_command_exits_2_on_a_missing_tree(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_prep.release",
            f"dataset.raw={tmp_path / 'missing'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "missing: release data folder not found" in proc.stderr
