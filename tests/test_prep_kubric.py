"""data_prep.kubric on tiny scenes built here in both raw layouts (Kubric's export and TFDS)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile
from omegaconf import OmegaConf, open_dict
from PIL import Image

from moseg.config import compose
from moseg.datasets import kubric
from moseg.datasets.common import InputError, run_prepare
from moseg.io import load_sequence, validate
from moseg.prep.base import TrackResult
from moseg.prep.jobs import run_jobs

ROOT = Path(__file__).resolve().parents[1]
T, H, W = 8, 48, 64
# instance id -> (rows, cols) of its rectangle in every frame
RECTS = {
    1: (slice(4, 16), slice(4, 22)),
    2: (slice(4, 16), slice(34, 56)),
    3: (slice(26, 42), slice(4, 22)),
    4: (slice(26, 42), slice(34, 56)),
}
# with the default rule: 1 static, 2 travels 0.35 m, 3 moves 4 mm and turns 0.5 deg (below both
# thresholds), 4 turns 10 deg in place
MOVING_DEFAULT = {0: 0, 1: 0, 2: 1, 3: 0, 4: 1}


def _quat_z(deg: float) -> list[float]:
    a = np.radians(deg) / 2
    return [float(np.cos(a)), 0.0, 0.0, float(np.sin(a))]  # (w, x, y, z), as Kubric writes


def instances(num_frames: int = T) -> list[dict[str, Any]]:
    s = np.linspace(0.0, 1.0, num_frames)
    motions = {
        1: (np.zeros(3), 0.0),
        2: (np.array([0.35, 0.0, 0.0]), 0.0),
        3: (np.array([0.0, 0.004, 0.0]), 0.5),
        4: (np.zeros(3), 10.0),
    }
    out = []
    for k, (travel, turn) in motions.items():
        base = np.array([k, 0.0, 0.5])
        out.append(
            {
                "positions": [(base + si * travel).tolist() for si in s],
                "quaternions": [_quat_z(si * turn) for si in s],
                "is_dynamic": k == 2,
                "asset_id": f"obj{k}",
            }
        )
    return out


def segmentation() -> np.ndarray:
    seg = np.zeros((H, W), np.uint8)
    for k, (r, c) in RECTS.items():
        seg[r, c] = k
    return seg


def planted_tracks(num_frames: int = T, query: bool = True) -> dict[str, np.ndarray]:
    """Points on every object and the background, query frames 0 and 4, drifting 0.25 px/frame."""
    rng = np.random.default_rng(3)
    starts, qf = [], []
    for q in (0, 4):
        for r, c in RECTS.values():
            for _ in range(3):
                starts.append(
                    (rng.uniform(c.start + 2, c.stop - 3), rng.uniform(r.start + 2, r.stop - 3))
                )
                qf.append(q)
        for x, y in ((28.0, 22.0), (60.0, 2.0), (2.0, 45.0)):  # background
            starts.append((x, y))
            qf.append(q)
    starts, qf = np.array(starts, np.float32), np.array(qf, np.int32)
    t = np.arange(num_frames, dtype=np.float32)
    pts = starts[:, None, :] + 0.25 * (t[None, :, None] - qf[:, None, None])
    occ = np.zeros(pts.shape[:2], bool)
    occ[::5, -1] = True  # some occlusion, never at a query frame
    out = {"target_points": pts.astype(np.float32), "occluded": occ}
    if query:
        out["query_frame"] = qf
    return out


def expected_labels(tr: dict[str, np.ndarray]) -> np.ndarray:
    seg = segmentation()
    pts, q = tr["target_points"], tr["query_frame"]
    xy = pts[np.arange(len(q)), q]
    ids = seg[np.rint(xy[:, 1]).astype(int), np.rint(xy[:, 0]).astype(int)]
    return np.array([MOVING_DEFAULT[int(i)] for i in ids], np.int8)


def make_scene(folder: Path, tracks: bool = True, query: bool = True, seed: int = 0) -> Path:
    """A scene folder as Kubric's writer leaves it."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    seg = segmentation()
    palette = [v for k in range(256) for v in ((37 * k) % 256, (91 * k) % 256, (53 * k) % 256)]
    texture = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 4), dtype=np.uint8), (3, 3), 0)
    for t in range(T):
        rgba = np.roll(texture, t, axis=1)  # the view pans one pixel per frame
        rgba[..., 3] = 255
        cv2.imwrite(str(folder / f"rgba_{t:05d}.png"), rgba)
        im = Image.fromarray(seg, mode="P")
        im.putpalette(palette)
        im.save(folder / f"segmentation_{t:05d}.png")
        depth = (5.0 + t + np.linspace(0, 1, W)[None, :] + np.zeros((H, 1))).astype(np.float32)
        tifffile.imwrite(folder / f"depth_{t:05d}.tiff", depth[..., None])
    meta = {
        "flags": {"frame_rate": 12},
        "metadata": {"num_frames": T, "resolution": [W, H], "frame_rate": 12, "num_instances": 4},
        "camera": {"positions": [[0, -10, 5]] * T},
        "instances": instances(),
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "data_ranges.json").write_text("{}")
    if tracks:
        np.savez(folder / "tracks.npz", **planted_tracks(query=query))
    return folder


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def prepare_cfg(raw: Path, out: Path, *overrides: str, features: str = "none"):
    return compose(
        "prepare",
        [
            "dataset=kubric",
            f"dataset.raw={raw}",
            f"dataset.out={out}",
            f"features={features}",
            "depth=none",
            "progress=false",
            *overrides,
        ],
    )


class StillTracker:
    """A test tracker: a grid of points on frame 0 that never move."""

    name = "still"

    def __init__(self, step: int = 8):
        self.step = step

    def __call__(self, frames: np.ndarray) -> TrackResult:
        t, h, w = frames.shape[:3]
        gx, gy = np.meshgrid(np.arange(2, w, self.step), np.arange(2, h, self.step))
        xy = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
        n = len(xy)
        return TrackResult(
            tracks=np.repeat(xy[:, None], t, axis=1),
            visibility=np.ones((n, t), bool),
            confidence=np.ones((n, t), np.float32),
            query_frame=np.zeros(n, np.int32),
            info={"grid": self.step},
        )

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name, "step": self.step}


def use_still_tracker(cfg) -> None:
    with open_dict(cfg):
        cfg.tracker = OmegaConf.create({"_target_": f"{__name__}.StillTracker", "step": 8})


# ----------------------------------------------------------------------------------------------
def test_export_carries_tracks_labels_objects_and_depth(tmp_path):
    raw = tmp_path / "raw"
    make_scene(raw / "train" / "scene_a")
    cfg = prepare_cfg(raw, tmp_path / "out")
    jobs = kubric.make_jobs(cfg)
    assert [j.name for j in jobs] == ["train/scene_a"]
    report = run_jobs(jobs, progress=False)
    assert report.ok, report.summary()
    path = tmp_path / "out/train/scene_a.h5"
    assert validate(path) == []
    seq = load_sequence(path)
    tr = planted_tracks()
    assert seq.source == "kubric" and seq.split == "train" and seq.fps == 12.0
    assert np.array_equal(seq.tracks, tr["target_points"])  # carried exactly (already in order)
    assert np.array_equal(seq.query_frame, tr["query_frame"])
    assert np.array_equal(seq.visibility, ~tr["occluded"])
    assert np.all(seq.confidence == 1)
    assert np.array_equal(seq.label, expected_labels(tr))
    assert seq.object_moving.tolist() == [False, False, True, False, True]
    assert seq.masks.shape == (T, H, W) and np.array_equal(seq.masks[3], segmentation())
    assert seq.depth_kind == "depth" and seq.depth_raw_range == pytest.approx((5.0, 13.0))
    assert seq.track_depth is not None
    ds = seq.provenance["dataset"]
    assert ds["format"] == "export" and ds["tracks_file"].endswith("tracks.npz")
    assert ds["object_rule"]["move_threshold"] == 0.01
    by_id = {o["id"]: o for o in ds["objects"]}
    assert by_id[2]["max_displacement"] == pytest.approx(0.35, abs=1e-5)
    assert by_id[4]["max_rotation_deg"] == pytest.approx(10.0, abs=1e-3)
    assert seq.provenance["tracker"] == {"name": "dataset"}


@pytest.mark.slow
def test_thresholds_change_the_labels(tmp_path):
    raw = tmp_path / "raw"
    make_scene(raw / "train" / "s")
    tr = planted_tracks()
    seg = segmentation()
    xy = tr["target_points"][np.arange(len(tr["query_frame"])), tr["query_frame"]]
    ids = seg[np.rint(xy[:, 1]).astype(int), np.rint(xy[:, 0]).astype(int)]

    def labels(*overrides: str) -> tuple[np.ndarray, list[bool]]:
        (job,) = kubric.make_jobs(prepare_cfg(raw, tmp_path / "out", *overrides))
        seq = kubric.convert(**job.kwargs)
        return seq.label, seq.object_moving.tolist()

    lab, om = labels()
    assert om == [False, False, True, False, True]
    lab, om = labels("dataset.labels.move_threshold=0.001")  # object 3's 4 mm now counts
    assert om == [False, False, True, True, True]
    assert np.all(lab[ids == 3] == 1)
    lab, om = labels("dataset.labels.rotate_threshold_deg=20")  # object 4's 10 deg does not
    assert om == [False, False, True, False, False]
    assert np.all(lab[ids == 4] == 0) and np.all(lab[ids == 2] == 1)


def test_grid_queries_and_frame_subsampling(tmp_path):
    raw = tmp_path / "raw"
    make_scene(raw / "validation" / "s", query=False)
    cfg = prepare_cfg(
        raw,
        tmp_path / "out",
        "dataset.frames.interval=2",
        "dataset.tracks.query_every=2",
        "dataset.tracks.tracks_per_query=10",
        "dataset.frames.longest_side=32",
    )
    (job,) = kubric.make_jobs(cfg)
    assert job.out == tmp_path / "out/val/s.h5"
    seq = kubric.convert(**job.kwargs)
    assert seq.num_frames == T // 2 and (seq.height, seq.width) == (24, 32)
    assert sorted(set(seq.query_frame.tolist())) == [0, 2]
    assert np.bincount(seq.query_frame).max() <= 10
    assert seq.visibility[np.arange(seq.num_tracks), seq.query_frame].all()
    # rescaled points: x' = (x + 0.5) / 2 - 0.5 on the kept frames 0, 2, 4, 6
    src = (planted_tracks()["target_points"][:, ::2] + 0.5) / 2 - 0.5
    for row in seq.tracks:
        assert np.abs(src - row[None]).max(axis=(1, 2)).min() < 1e-5
    assert seq.provenance["frames"]["kept_frames"] == T // 2
    assert "interval=2" in " ".join(seq.provenance["frames"]["notes"])
    # the motion rule sees only the kept frames: object 2 still moves 0.3 m (frame 6 of 0..7)
    by_id = {o["id"]: o for o in seq.provenance["dataset"]["objects"]}
    assert by_id[2]["max_displacement"] == pytest.approx(0.3, abs=1e-5)


@pytest.mark.slow
def test_hydra_entry_rerun_skips_corrupt_is_redone_raw_untouched(tmp_path):
    raw = tmp_path / "raw"
    make_scene(raw / "train" / "a", seed=1)
    make_scene(raw / "train" / "b", seed=2)
    make_scene(raw / "validation" / "c", seed=3)
    before = snapshot(raw)
    out = tmp_path / "out"
    cfg = prepare_cfg(raw, out)
    report = run_prepare(cfg, kubric.make_jobs(cfg), desc="kubric")
    assert report.ok and sorted(report.written) == ["train/a", "train/b", "val/c"]
    assert (out / "prepare_report.json").is_file()
    again = run_prepare(cfg, kubric.make_jobs(cfg), desc="kubric")
    assert sorted(again.skipped) == ["train/a", "train/b", "val/c"] and not again.written
    (out / "train/b.h5").write_bytes(b"not an hdf5 file")
    third = run_prepare(cfg, kubric.make_jobs(cfg), desc="kubric")
    assert third.redone == ["train/b"] and third.written == ["train/b"]
    assert validate(out / "train/b.h5") == []
    other = prepare_cfg(raw, out, "dataset.labels.move_threshold=0.5")  # other settings: redone
    fourth = run_prepare(other, kubric.make_jobs(other), desc="kubric")
    assert sorted(fourth.redone) == ["train/a", "train/b", "val/c"]
    only = prepare_cfg(raw, out, "dataset.sequences=[c]")
    assert [j.name for j in kubric.make_jobs(only)] == ["val/c"]
    assert snapshot(raw) == before


def test_tracker_path_labels_from_masks(tmp_path):
    raw = tmp_path / "raw"
    make_scene(raw / "train" / "s", tracks=False)
    cfg = prepare_cfg(raw, tmp_path / "out")
    use_still_tracker(cfg)
    (job,) = kubric.make_jobs(cfg)
    seq = kubric.convert(**job.kwargs)
    assert seq.provenance["tracker"]["name"] == "still"
    xy = seq.tracks[:, 0]
    ids = segmentation()[xy[:, 1].astype(int), xy[:, 0].astype(int)]
    assert np.array_equal(seq.instance, ids)
    assert np.array_equal(seq.label, [MOVING_DEFAULT[int(i)] for i in ids])
    assert {0, 1, 2, 3, 4} <= set(ids.tolist())


@pytest.mark.slow
def test_broken_scenes_fail_alone_naming_the_file(tmp_path):
    raw = tmp_path / "raw"
    split = raw / "train"
    make_scene(split / "good")
    (make_scene(split / "no_frame") / "rgba_00003.png").unlink()
    (make_scene(split / "short_masks") / "segmentation_00007.png").unlink()
    big = np.zeros((H + 8, W, 4), np.uint8)
    cv2.imwrite(str(make_scene(split / "odd_size") / "rgba_00002.png"), big)
    (make_scene(split / "bad_seg") / "segmentation_00001.png").write_bytes(b"garbage")
    (make_scene(split / "bad_meta") / "metadata.json").write_text("{not json")
    (split / "no_meta").mkdir()
    before = snapshot(raw)
    report = run_jobs(kubric.make_jobs(prepare_cfg(raw, tmp_path / "out")), progress=False)
    assert report.written == ["train/good"]
    errors = {f.name.split("/")[1]: f.error for f in report.failed}
    assert set(errors) == {"no_frame", "short_masks", "odd_size", "bad_seg", "bad_meta", "no_meta"}
    assert "rgba_00003.png" in errors["no_frame"]
    assert (
        "segmentation_00007" in errors["short_masks"] or "7 segmentation" in errors["short_masks"]
    )
    assert "short_masks" in errors["short_masks"]
    assert "odd_size/rgba_00002.png" in errors["odd_size"] and "64x56" in errors["odd_size"]
    assert "bad_seg/segmentation_00001.png" in errors["bad_seg"]
    assert "bad_meta/metadata.json" in errors["bad_meta"]
    assert "no_meta/metadata.json" in errors["no_meta"]
    assert snapshot(raw) == before


@pytest.mark.slow
def test_bad_tracks_file_and_segmentation_ids(tmp_path):
    raw = tmp_path / "raw"
    scene = make_scene(raw / "train" / "s")
    tr = planted_tracks()
    tr["occluded"][0, tr["query_frame"][0]] = True
    np.savez(scene / "tracks.npz", **tr)
    (job,) = kubric.make_jobs(prepare_cfg(raw, tmp_path / "out"))
    with pytest.raises(ValueError, match=r"tracks\.npz: 1 tracks are occluded"):
        kubric.convert(**job.kwargs)
    (scene / "tracks.npz").unlink()
    meta = json.loads((scene / "metadata.json").read_text())
    meta["instances"] = meta["instances"][:2]  # segmentation still shows ids 3 and 4
    (scene / "metadata.json").write_text(json.dumps(meta))
    cfg = prepare_cfg(raw, tmp_path / "out")
    use_still_tracker(cfg)
    (job,) = kubric.make_jobs(cfg)
    with pytest.raises(ValueError, match="ids up to 4, but the metadata lists 2"):
        kubric.convert(**job.kwargs)


@pytest.mark.slow
def test_raw_root_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        kubric.make_jobs(prepare_cfg(tmp_path / "nope", tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        kubric.make_jobs(prepare_cfg(tmp_path / "empty", tmp_path / "out"))
    (tmp_path / "junk" / "x").mkdir(parents=True)
    with pytest.raises(InputError, match="neither a TFDS data_dir"):
        kubric.make_jobs(prepare_cfg(tmp_path / "junk", tmp_path / "out"))
    make_scene(tmp_path / "flat" / "scene0")
    with pytest.raises(InputError, match="flat_split"):
        kubric.make_jobs(prepare_cfg(tmp_path / "flat", tmp_path / "out"))
    jobs = kubric.make_jobs(
        prepare_cfg(tmp_path / "flat", tmp_path / "o", "dataset.flat_split=train")
    )
    assert [j.name for j in jobs] == ["train/scene0"]
    with pytest.raises(InputError, match="no sequence"):
        kubric.make_jobs(
            prepare_cfg(
                tmp_path / "flat",
                tmp_path / "o",
                "dataset.flat_split=train",
                "dataset.sequences=[missing]",
            )
        )


@pytest.mark.slow
def test_cli_reports_a_missing_raw_root(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_prep.kubric",
            f"dataset.raw={tmp_path / 'missing'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "missing: Kubric raw folder does not exist" in proc.stderr


# ----------------------------------------------------------------------------------------------
# TFDS, through a stand-in for tensorflow_datasets
# ----------------------------------------------------------------------------------------------
def tfds_example(index: int) -> dict[str, Any]:
    rng = np.random.default_rng(index)
    seg = np.repeat(segmentation()[None, :, :, None], T, axis=0)
    lo, hi = 2.0, 12.0
    depth = np.repeat(np.linspace(0, 65535, W, dtype=np.uint16)[None, None, :, None], H, axis=1)
    depth = np.repeat(depth, T, axis=0)
    inst = instances()
    return {
        "video": rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        "segmentations": seg,
        "depth": depth,
        "metadata": {
            "video_name": f"{index}".encode(),
            "num_frames": T,
            "height": H,
            "width": W,
            "depth_range": np.array([lo, hi], np.float32),
        },
        "instances": {
            "positions": np.array([i["positions"] for i in inst], np.float32),
            "quaternions": np.array([i["quaternions"] for i in inst], np.float32),
            "is_dynamic": np.array([i["is_dynamic"] for i in inst]),
        },
    }


class FakeTFDS:
    """What the converter uses of tensorflow_datasets: builder().info.splits, load, as_numpy."""

    def __init__(self, splits: dict[str, int]):
        self.splits = splits
        self.loads: list[tuple[str, str, str]] = []

    def builder(self, name: str, data_dir: str | None = None) -> Any:
        info = {s: SimpleNamespace(num_examples=n) for s, n in self.splits.items()}
        return SimpleNamespace(info=SimpleNamespace(splits=info))

    def load(self, name: str, data_dir: str | None = None, split: str = "", **kw: Any) -> list:
        self.loads.append((name, str(data_dir), split))
        assert kw.get("download") is False
        base, _, rest = split.partition("[")
        lo, hi = (int(v) for v in rest.rstrip("]").split(":"))
        assert 0 <= lo < hi <= self.splits[base]
        return [tfds_example(i) for i in range(lo, hi)]

    def as_numpy(self, ds: list) -> Any:
        return iter(ds)


@pytest.mark.slow
def test_tfds_release_through_a_stand_in_module(tmp_path, monkeypatch):
    fake = FakeTFDS({"train": 2, "validation": 1})
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    raw = tmp_path / "tfds"
    (raw / "movi_f" / "256x256" / "1.0.0").mkdir(parents=True)
    cfg = prepare_cfg(raw, tmp_path / "out")
    use_still_tracker(cfg)
    jobs = kubric.make_jobs(cfg)
    assert [j.name for j in jobs] == [
        "train/train_000000",
        "train/train_000001",
        "val/validation_000000",
    ]
    report = run_jobs(jobs, progress=False)
    assert report.ok, report.summary()
    assert ("movi_f/256x256", str(raw), "train[1:2]") in fake.loads
    seq = load_sequence(tmp_path / "out/val/validation_000000.h5")
    assert validate(tmp_path / "out/val/validation_000000.h5") == []
    assert seq.fps == 12.0 and seq.provenance["dataset"]["video_name"] == "0"
    assert seq.object_moving.tolist() == [False, False, True, False, True]
    ids = segmentation()[seq.tracks[:, 0, 1].astype(int), seq.tracks[:, 0, 0].astype(int)]
    assert np.array_equal(seq.label, [MOVING_DEFAULT[int(i)] for i in ids])
    assert seq.depth_raw_range == pytest.approx((2.0, 12.0), abs=1e-4)
    assert seq.provenance["dataset"]["objects"][1]["is_dynamic"] is True


def test_tfds_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    raw = tmp_path / "tfds"
    (raw / "movi_f").mkdir(parents=True)
    with pytest.raises(InputError, match="pip install tensorflow-datasets tensorflow"):
        kubric.make_jobs(prepare_cfg(raw, tmp_path / "out"))


def test_object_motion_rule_is_order_free_and_sign_free():
    pos = np.zeros((2, 3, 3))
    pos[1, 2] = [0.0, 0.03, 0.04]
    q = np.tile(np.array([1.0, 0, 0, 0]), (2, 3, 1))
    q[0, 1] = -q[0, 1]  # the same rotation
    q[0, 2] = _quat_z(90)
    dist, angle = kubric.object_motion(pos, q)
    assert dist == pytest.approx([0.0, 0.05]) and angle == pytest.approx([90.0, 0.0], abs=1e-6)


@pytest.mark.skipif(
    importlib.util.find_spec("moseg.prep.trackers.flow") is None,
    reason="the default OpenCV tracker (moseg.prep.trackers.flow) is not there yet",
)
@pytest.mark.slow
def test_default_opencv_tracker_on_a_tiny_scene(tmp_path):
    raw = tmp_path / "raw"
    make_scene(raw / "train" / "s", tracks=False)
    cfg = prepare_cfg(raw, tmp_path / "out", "tracker=opencv", features="appearance")
    report = run_jobs(kubric.make_jobs(cfg), progress=False)
    assert report.ok, report.summary()
    seq = load_sequence(tmp_path / "out/train/s.h5")
    assert validate(tmp_path / "out/train/s.h5") == []
    assert seq.num_tracks > 0 and seq.provenance["tracker"]["name"] != "dataset"
    assert seq.features is not None and len(seq.features) == seq.num_tracks
    ids = seq.instance
    assert (ids == 2).any() and (ids == 1).any()
    assert np.array_equal(seq.label[ids == 2], np.ones((ids == 2).sum(), np.int8))
    assert np.all(seq.label[(ids == 1) | (ids == 0)] == 0)
