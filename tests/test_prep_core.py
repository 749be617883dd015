"""Frame reading, the opencv tracker, appearance features, labels, the job runner and
``moseg preprocess``: the shared machinery every converter uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from moseg.cli import main as moseg_main
from moseg.datasets.synthetic import generate_clip, ground_truth_tracks
from moseg.io import SequenceFile, validate
from moseg.io.contract import LABEL_MOVING, LABEL_STATIC, LABEL_UNKNOWN, MASK_VOID, Sequence
from moseg.prep.appearance import AppearanceFeatures
from moseg.prep.base import query_grid
from moseg.prep.frames import FrameError, FrameSpec, natural_key, read_frames
from moseg.prep.jobs import job_state, make_job, run_jobs, shard
from moseg.prep.labels import label_from_masks
from moseg.prep.pipeline import preprocess
from moseg.prep.trackers.flow import FlowTracker
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def write_folder(folder: Path, frames: np.ndarray, names=None, ext=".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(frames):
        p = folder / (names[i] if names else f"{i:05d}{ext}")
        assert cv2.imwrite(str(p), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        out.append(p)
    return out


def write_mp4(path: Path, frames: np.ndarray, fps: int = 12) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "10"}
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


@pytest.fixture(scope="module")
def clip():
    return generate_clip(tiny_config(height=96, width=128, num_frames=12), [7, 1], name="c")


# ---------------------------------------------------------------------------------- frames
def test_natural_sort_any_naming_and_formats(tmp_path, clip):
    frames = clip.render.frames[:4]
    names = ["f10.jpg", "f2.png", "f1.bmp", "f3.png"]  # natural order: f1, f2, f3, f10
    write_folder(tmp_path / "v", frames, names)
    (tmp_path / "v" / "notes.txt").write_text("not a frame")
    fr = read_frames(tmp_path / "v")
    assert fr.names == ["f1", "f2", "f3", "f10"]
    assert fr.num_frames == 4 and fr.frames.dtype == np.uint8
    np.testing.assert_array_equal(fr.frames[0], frames[2])  # f1.bmp is lossless
    assert any("notes.txt" in n for n in fr.notes)
    assert sorted(["a10", "a9", "a100"], key=natural_key) == ["a9", "a10", "a100"]


def test_frame_selection_is_recorded(tmp_path, clip):
    write_folder(tmp_path / "v", clip.render.frames)
    fr = read_frames(
        tmp_path / "v", FrameSpec(start=1, interval=2, max_frames=3, longest_side=64), fps=30
    )
    assert list(fr.indices) == [1, 3, 5]
    assert fr.size == (48, 64) and fr.original_size == (96, 128)
    assert fr.fps == 15
    prov = fr.provenance()
    assert prov["kept_indices"] == "1-5:2" and prov["total_frames"] == 12
    text = " ".join(prov["notes"])
    assert "start=1" in text and "interval=2" in text and "max_frames=3" in text
    assert "longest_side=64" in text


def test_video_file(tmp_path, clip):
    write_mp4(tmp_path / "clip.mp4", clip.render.frames)
    fr = read_frames(tmp_path / "clip.mp4", FrameSpec(interval=3))
    assert fr.total_frames == 12 and list(fr.indices) == [0, 3, 6, 9]
    assert fr.fps == pytest.approx(4.0)
    err = np.abs(fr.frames.astype(int) - clip.render.frames[::3].astype(int)).mean()
    assert err < 6, err  # h264 at crf 10


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.mkdir(), "no image files"),
        (lambda p: p.with_suffix(".mp4").write_text("hello"), "cannot be opened as a video"),
        (lambda p: None, "does not exist"),
    ],
)
def test_bad_inputs_name_the_file(tmp_path, make, match):
    target = tmp_path / "in"
    make(target)
    path = target.with_suffix(".mp4") if "video" in match else target
    with pytest.raises(FrameError, match=match) as e:
        read_frames(path)
    assert str(path) in str(e.value)


def test_frame_of_another_size_and_corrupt_frame(tmp_path, clip):
    files = write_folder(tmp_path / "v", clip.render.frames[:3])
    cv2.imwrite(str(files[1]), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(FrameError, match="one size") as e:
        read_frames(tmp_path / "v")
    assert "00001.png" in str(e.value)
    files[1].write_bytes(b"garbage")
    with pytest.raises(FrameError, match="cannot be read") as e:
        read_frames(tmp_path / "v")
    assert "00001.png" in str(e.value)


# --------------------------------------------------------------------------------- tracker
def test_query_grid_alternates_offsets():
    pts, fr = query_grid(10, 32, 40, every=4, grid_px=8)
    assert set(fr) == {0, 4, 8}
    a, b = pts[fr == 0], pts[fr == 4]
    assert a[:, 0].min() == 0 and b[:, 0].min() == 4
    assert (pts >= 0).all() and (pts[:, 0] <= 39).all() and (pts[:, 1] <= 31).all()


def test_tracker_follows_a_known_translation():
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (200, 240, 3), dtype=np.uint8), (5, 5), 1.5)
    shifts = np.array([[1.5 * t, 0.75 * t] for t in range(8)])
    frames = np.stack(
        [
            tex[int(20 + dy) : int(20 + dy) + 96, int(20 + dx) : int(20 + dx) + 128]
            for dx, dy in np.floor(shifts).astype(int)
        ]
    )
    shifts = np.floor(shifts)  # integer crops: exact motion
    res = FlowTracker(query_every=4, grid_px=16, progress=False)(frames)
    q = res.query_frame
    expected = res.tracks[np.arange(len(q)), q][:, None] - (shifts[None] - shifts[q][:, None])
    err = np.linalg.norm(res.tracks - expected, axis=2)
    assert np.median(err[res.visibility]) < 0.3
    assert res.visibility[np.arange(len(q)), q].all()
    assert np.isfinite(res.tracks).all() and (np.diff(q) >= 0).all()
    # a point leaving the frame is invisible from then on
    assert not res.visibility[res.tracks[..., 0] < -0.5].any()


def test_tracker_on_synthetic_scene_against_ground_truth(clip):
    res = FlowTracker(progress=False)(clip.render.frames)
    n = np.arange(res.num_tracks)
    gt = ground_truth_tracks(clip.render, res.tracks[n, res.query_frame], res.query_frame)
    err = np.linalg.norm(res.tracks - gt.xy, axis=2)
    both = gt.visible & res.visibility
    assert np.median(err[both]) < 1.5
    assert (gt.visible == res.visibility).mean() > 0.85
    assert ((res.confidence >= 0) & (res.confidence <= 1)).all()


def test_reseeding_fills_only_uncovered_cells():
    frames = np.repeat(
        cv2.GaussianBlur(
            np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8), (5, 5), 1
        )[None],
        9,
        axis=0,
    )
    res = FlowTracker(query_every=4, grid_px=8, progress=False)(frames)
    # a static scene: every track survives, so later query frames add nothing
    assert set(res.query_frame) == {0}
    res = FlowTracker(query_every=4, grid_px=8, reseed=False, progress=False)(frames)
    assert set(res.query_frame) == {0, 4, 8}


# -------------------------------------------------------------------------------- features
def test_appearance_features_separate_colours_and_map_coordinates():
    img = np.zeros((1, 60, 120, 3), np.uint8)
    img[0, :, :60] = (200, 30, 30)
    img[0, :, 60:] = (30, 30, 200)
    fm = AppearanceFeatures(scales=(5, 9), work_side=60)  # features computed at half size
    tracks = np.array([[[10.0, 30.0]], [[36.0, 10.0]], [[110.0, 30.0]]], np.float32)
    f = fm(img, tracks, np.zeros(3, np.int32)).astype(np.float32)
    assert f.shape == (3, fm.dim) == (3, 3 + 2 * 15)
    assert np.linalg.norm(f[0] - f[1]) < 1e-2 < np.linalg.norm(f[0] - f[2])
    assert f[0, 1] > 0.3 and f[2, 2] < -0.3  # Lab a (red) and b (blue) of the pixel itself


# ---------------------------------------------------------------------------------- labels
def test_labels_from_masks():
    masks = np.zeros((3, 20, 20), np.uint8)
    masks[:, 5:15, 5:15] = 1
    masks[:, 0:2, 0:2] = MASK_VOID
    tracks = np.zeros((5, 3, 2), np.float32)
    tracks[:, :, :] = [[10, 10]]  # inside the object
    tracks[1, :] = [18, 18]  # background
    tracks[2, :] = [0.6, 0.4]  # void
    tracks[3, :] = [5, 10]  # on the object, at its edge
    q = np.array([0, 1, 2, 0, 1], np.int32)
    lab, inst = label_from_masks(tracks, q, masks)
    assert list(lab) == [LABEL_MOVING, LABEL_STATIC, LABEL_UNKNOWN, LABEL_MOVING, LABEL_MOVING]
    assert list(inst) == [1, 0, MASK_VOID, 1, 1]
    lab, _ = label_from_masks(tracks, q, masks, object_moving=np.array([False, False]))
    assert lab[0] == LABEL_STATIC
    lab, _ = label_from_masks(tracks, q, masks, ignore_boundary_px=1)
    assert lab[3] == LABEL_UNKNOWN and lab[0] == LABEL_MOVING
    lab, _ = label_from_masks(tracks, q, masks, annotated=np.array([True, False, True]))
    assert lab[1] == LABEL_UNKNOWN and lab[4] == LABEL_UNKNOWN and lab[0] == LABEL_MOVING


def test_pipeline_labels_tracks_from_masks(clip):
    from moseg.prep.frames import Frames

    fr = Frames(
        clip.render.frames, 24.0, "mem", np.arange(12), [str(i) for i in range(12)], 12, (96, 128)
    )
    prep = {
        "tracker": {"_target_": "moseg.prep.trackers.flow.FlowTracker", "progress": False},
        "features": {"_target_": "moseg.prep.appearance.AppearanceFeatures", "work_side": 64},
        "depth": {"_target_": None},
        "prep": {"save_masks": True},
    }
    moving = clip.scene.object_moving
    seq = preprocess(
        fr,
        prep,
        name="c",
        source="synthetic",
        split="train",
        masks=clip.render.ids,
        object_moving=moving,
    )
    n = np.arange(seq.num_tracks)
    truth = moving[
        clip.render.ids[
            seq.query_frame, *np.rint(seq.tracks[n, seq.query_frame]).astype(int)[:, ::-1].T
        ]
    ]
    np.testing.assert_array_equal(seq.label == LABEL_MOVING, truth)
    assert seq.features.shape == (seq.num_tracks, 48) and seq.masks is not None
    assert seq.provenance["tracker"]["name"] == "opencv"
    unlabeled = preprocess(fr, prep, name="c", source="video", split="test")
    assert (unlabeled.label == LABEL_UNKNOWN).all() and unlabeled.masks is None


# ------------------------------------------------------------------------------------ jobs
def make_seq(name: str, fail: bool = False, n: int = 4) -> Sequence:
    """A job function for the runner tests."""
    if fail:
        raise ValueError(f"{name}: broken input file /raw/{name}/00003.png")
    return Sequence(
        name=name,
        tracks=np.zeros((n, 2, 2), np.float32),
        visibility=np.ones((n, 2), bool),
        confidence=np.ones((n, 2), np.float16),
        query_frame=np.zeros(n, np.int32),
        label=np.zeros(n, np.int8),
        height=8,
        width=8,
    )


def jobs_for(out: Path, names, fail=(), n=4):
    return [
        make_job(
            s,
            out / f"{s}.h5",
            "tests.test_prep_core:make_seq",
            {"name": s, "fail": s in fail, "n": n},
        )
        for s in names
    ]


def test_runner_skips_valid_redoes_broken_and_isolates_failures(tmp_path):
    names = ["a", "b", "c"]
    rep = run_jobs(jobs_for(tmp_path, names, fail={"b"}), progress=False)
    assert rep.written == ["a", "c"] and [f.name for f in rep.failed] == ["b"]
    assert "00003.png" in rep.failed[0].error and "FAILED b" in rep.summary()
    assert not (tmp_path / "b.h5").exists()
    # rerun: done ones skipped (by validation), the failed one retried and now fine
    rep = run_jobs(jobs_for(tmp_path, names), progress=False)
    assert rep.skipped == ["a", "c"] and rep.written == ["b"] and rep.ok
    # a truncated file is redone; so is one made with other settings
    data = (tmp_path / "a.h5").read_bytes()
    (tmp_path / "a.h5").write_bytes(data[: len(data) // 2])
    jobs = jobs_for(tmp_path, names)
    assert job_state(jobs[0]) == "invalid"
    assert job_state(jobs_for(tmp_path, ["c"], n=5)[0]) == "outdated"
    rep = run_jobs(jobs, progress=False)
    assert rep.written == ["a"] and rep.redone == ["a"] and validate(tmp_path / "a.h5") == []
    with SequenceFile(tmp_path / "a.h5") as f:
        assert f.meta.provenance["job"]["digest"] == jobs[0].digest


@pytest.mark.slow
def test_runner_parallel_and_shards(tmp_path):
    jobs = jobs_for(tmp_path, list("abcde"), fail={"d"})
    assert [j.name for j in shard(jobs, 1, 2)] == ["b", "d"]
    rep = run_jobs(jobs, workers=2, progress=False)
    assert sorted(rep.written) == list("abce") and [f.name for f in rep.failed] == ["d"]
    with pytest.raises(ValueError, match="duplicate"):
        run_jobs(jobs + jobs[:1], progress=False)


# ------------------------------------------------------------------------ moseg preprocess
@pytest.mark.slow
def test_moseg_preprocess_video_and_folder(tmp_path, clip, capsys):
    write_mp4(tmp_path / "clip.mp4", clip.render.frames)
    write_folder(tmp_path / "frames dir", clip.render.frames[:6], ext=".jpg")
    out = tmp_path / "out"
    args = [
        "preprocess",
        str(tmp_path / "clip.mp4"),
        str(tmp_path / "frames dir"),
        "--out",
        str(out),
        "tracker.grid_px=16",
        "dataset.frames.interval=2",
    ]
    assert moseg_main(args) == 0
    for name, T in (("clip", 6), ("frames dir", 3)):
        path = out / f"{name}.h5"
        assert validate(path) == []
        with SequenceFile(path) as f:
            assert f.meta.num_frames == T and f.meta.source == "video"
            assert f.meta.provenance["tracker"]["grid_px"] == 16
            assert "interval=2" in " ".join(f.meta.provenance["frames"]["notes"])
            assert (f.read("label") == LABEL_UNKNOWN).all() and f.has("features")
    capsys.readouterr()
    assert moseg_main(args) == 0
    assert "2 already done" in capsys.readouterr().out


@pytest.mark.slow
def test_moseg_preprocess_bad_inputs(tmp_path, clip, capsys):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert moseg_main(["preprocess", str(tmp_path / "notes.txt"), "--out", str(out)]) == 2
    assert "notes.txt: not a video" in capsys.readouterr().err
    assert moseg_main(["preprocess", str(tmp_path / "nope.mp4"), "--out", str(out)]) == 2
    assert "nope.mp4: does not exist" in capsys.readouterr().err
    # an empty folder and a folder with a frame of another size: those fail, the good one is kept
    files = write_folder(tmp_path / "bad", clip.render.frames[:3])
    cv2.imwrite(str(files[2]), np.zeros((10, 10, 3), np.uint8))
    write_folder(tmp_path / "good", clip.render.frames[:3])
    rc = moseg_main(
        [
            "preprocess",
            str(tmp_path / "empty"),
            str(tmp_path / "bad"),
            str(tmp_path / "good"),
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 1 and "FAILED empty" in text and "no image files" in text
    assert "FAILED bad" in text and "00002.png" in text
    assert validate(out / "good.h5") == [] and not (out / "bad.h5").exists()
    report = json.loads((out / "prepare_report.json").read_text())
    assert [f["name"] for f in report["failed"]] == ["empty", "bad"]
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


@pytest.mark.slow
def test_data_prep_video_hydra_entry_point(tmp_path, clip):
    write_folder(tmp_path / "in" / "seq1", clip.render.frames[:4])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_prep.video",
            f"dataset.raw={tmp_path / 'in'}",
            f"dataset.out={tmp_path / 'out'}",
            "dataset.split=test",
            f"paths.log_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert validate(tmp_path / "out" / "test" / "seq1.h5") == []


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from moseg.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "prepare",
            ["hydra/launcher=slurm", "dataset=video", "shard_count=4", "shard_index=3"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.shard_count == 4 and cfg.hydra.launcher.array_parallelism == 64


def test_missing_backend_message_reaches_the_user(tmp_path, clip, capsys):
    write_folder(tmp_path / "v", clip.render.frames[:3])
    rc = moseg_main(
        [
            "preprocess",
            str(tmp_path / "v"),
            "--out",
            str(tmp_path / "o"),
            "tracker=tapir",
            f"tracker.checkpoint={tmp_path / 'none.pt'}",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 1 and "FAILED v: MissingBackendError" in text
    assert "tapnet" in text or "checkpoint" in text


def test_flow_sampling_many_points_matches_bilinear():
    from moseg.io.contract import bilinear
    from moseg.prep.trackers.flow import _sample

    rng = np.random.default_rng(3)
    field = rng.normal(size=(30, 40, 2)).astype(np.float32)
    p = rng.uniform(0, 38, size=(40_000, 2)).astype(np.float32)  # > 32767: cv2.remap's limit
    p[:, 1] *= 28 / 38
    np.testing.assert_allclose(_sample(field, p), bilinear(field, p[:, 0], p[:, 1]), atol=1e-5)


def test_tracker_is_deterministic(clip):
    a = FlowTracker(progress=False)(clip.render.frames)
    b = FlowTracker(progress=False)(clip.render.frames)
    np.testing.assert_array_equal(a.tracks, b.tracks)
    np.testing.assert_array_equal(a.visibility, b.visibility)


def test_points_outside_the_frame_become_invisible_but_query_points_stay():
    from moseg.prep.base import TrackResult

    tracks = np.array([[[5.0, 5.0], [12.0, 5.0], [3.0, -4.0]], [[-3.0, 2.0], [1.0, 2.0], [2, 2]]])
    vis = np.ones((2, 3), bool)
    res = TrackResult(
        tracks.astype(np.float32), vis, np.ones((2, 3), np.float32), np.array([0, 0], np.int32)
    ).inside_frame(height=8, width=10)
    # track 0 leaves at frames 1 (x 12 > 9.5) and 2 (y -4): hidden there; track 1 starts
    # outside at its query frame: clipped to the border, still visible
    np.testing.assert_array_equal(res.visibility, [[True, False, False], [True, True, True]])
    np.testing.assert_allclose(res.tracks[1, 0], [-0.5, 2.0])
    np.testing.assert_allclose(res.tracks[0, 1], [12.0, 5.0])  # hidden points keep positions
    assert res.info["outside_frame_hidden"] == 2
    assert res.info["outside_frame_clipped_at_query"] == 1


def test_two_runs_on_one_folder_never_meet(tmp_path):
    """A live run's lock stops a second run on the same output folder (naming the owner) before
    it removes or writes anything; a dead run's lock is taken over; the lock goes when done."""
    import json
    import subprocess
    import sys

    from moseg.utils.atomic import LOCK_NAME, FolderLockedError, owner_tag

    host = owner_tag().rsplit("-", 1)[0]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tmp_path.mkdir(exist_ok=True)
        lock = tmp_path / LOCK_NAME
        lock.write_text(json.dumps({"host": host, "pid": live.pid, "since": "then"}))
        # the live run's temporary file
        temp = tmp_path / f".a.h5.{host}-{live.pid}.abcd.tmp"
        temp.write_bytes(b"")
        with pytest.raises(FolderLockedError, match=f"pid {live.pid}"):
            run_jobs(jobs_for(tmp_path, ["a"]), progress=False)
        assert temp.exists() and not (tmp_path / "a.h5").exists()
    finally:
        live.kill()
        live.wait()
    # its owner is gone now: the lock is stale, taken over, and released at the end
    rep = run_jobs(jobs_for(tmp_path, ["a"]), progress=False)
    assert rep.written == ["a"] and not lock.exists() and not temp.exists()
