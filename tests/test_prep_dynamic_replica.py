"""data_prep.dynamic_replica on tiny sequences built here in the dataset's raw layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from moseg.config import compose
from moseg.datasets import dynamic_replica as dr
from moseg.datasets.common import InputError, run_prepare
from moseg.io import load_sequence, validate
from moseg.prep.jobs import run_jobs
from tests.test_prep_kubric import snapshot, use_still_tracker

T, H, W = 10, 48, 64
SEQ = "0a1b2c-3_obj"
# object id -> (rectangle rows, cols, vertices, per-frame step (world units), dynamic share)
OBJECTS = {
    0: (slice(0, H), slice(0, W), 40, 0.0, 0.0),  # the room (background)
    1: (slice(4, 20), slice(4, 24), 24, 0.01, 1.0),  # a walking person
    2: (slice(4, 20), slice(36, 60), 20, 5e-5, 1.0),  # creeps below 1e-4 per frame
    3: (slice(28, 44), slice(4, 24), 20, 0.01, 0.6),  # 60 % of its vertices move: moving
    5: (slice(28, 44), slice(36, 60), 20, 0.01, 0.4),  # 40 % move: static
}
MOVING_DEFAULT = {0: 0, 1: 1, 2: 0, 3: 1, 5: 0}


def id_map() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    for k, (r, c, *_rest) in OBJECTS.items():
        if k:
            m[r, c] = k
    return m


def vertices(seed: int = 0) -> dict[str, np.ndarray]:
    """Per frame world positions [T, N, 3], pixels [T, N, 2], visibility [T, N], ids [N]."""
    rng = np.random.default_rng(seed)
    mask = id_map()
    x3, x2, ids = [], [], []
    for k, (r, c, n, step, share) in OBJECTS.items():
        ys, xs = np.nonzero(mask[r, c] == k)
        pick = rng.choice(len(xs), n, replace=False)
        px = np.stack([xs[pick] + c.start, ys[pick] + r.start], 1).astype(np.float32)
        base = rng.normal(size=(n, 3))
        moves = np.arange(n) < round(share * n)
        t = np.arange(T)[:, None, None]
        x3.append(base[None] + moves[None, :, None] * step * t * np.array([1.0, 0.0, 0.0]))
        x2.append(px[None] + 0.1 * t * moves[None, :, None])  # moving points drift a little
        ids.append(np.full(n, k))
    x3 = np.concatenate(x3, 1).astype(np.float32)
    x2 = np.concatenate(x2, 1).astype(np.float32)
    vis = rng.random(x2.shape[:2]) < 0.85
    return {"x3": x3, "x2": x2, "vis": vis, "ids": np.concatenate(ids)}


def depth_png(t: int) -> np.ndarray:
    d = (1.0 + 0.1 * t + np.linspace(0, 2, W)[None, :] + np.zeros((H, 1))).astype(np.float16)
    return d.view(np.uint16)


def make_dr(
    root: Path, split: str = "valid", seqs: tuple[str, ...] = (SEQ,), seed: int = 0
) -> Path:
    """``<root>/<split>/frame_annotations_<split>.jgz`` and the sequence folders it points to."""
    base = root / split
    entries: list[dict[str, Any]] = []
    for j, seq in enumerate(seqs):
        v = vertices(seed + j)
        d = f"{seq}_source_left"
        for sub in ("images", "depths", "instance_id_maps", "trajectories", "masks"):
            (base / d / sub).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed + j)
        for t in range(T):
            img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            cv2.imwrite(str(base / d / "images" / f"{d}-{t:04d}.png"), img)
            cv2.imwrite(str(base / d / "depths" / f"{d}_{t:04d}.geometric.png"), depth_png(t))
            cv2.imwrite(str(base / d / "instance_id_maps" / f"{d}_{t:04d}.png"), id_map())
            torch.save(
                {
                    "traj_3d_world": torch.from_numpy(v["x3"][t]),
                    "traj_2d": torch.from_numpy(
                        np.concatenate([v["x2"][t], np.ones((len(v["ids"]), 1), np.float32)], 1)
                    ),
                    "verts_inds_vis": torch.from_numpy(v["vis"][t]),
                    "instances": torch.from_numpy(v["ids"]),
                    "img": torch.from_numpy(img[..., ::-1].copy()),
                },
                base / d / "trajectories" / f"{t:06d}.pth",
            )
            for cam in ("left", "right"):
                c = f"{seq}_source_{cam}"
                entries.append(
                    {
                        "sequence_name": seq,
                        "frame_number": t,
                        "frame_timestamp": t / 15.0,
                        "camera_name": cam,
                        "image": {"path": f"{c}/images/{c}-{t:04d}.png", "size": [H, W]},
                        "depth": {
                            "path": f"{c}/depths/{c}_{t:04d}.geometric.png",
                            "scale_adjustment": 1.0,
                            "mask_path": None,
                        },
                        "mask": {"path": f"{c}/masks/{c}_{t:04d}.png", "mass": 1.0},
                        "trajectories": {"path": f"{c}/trajectories/{t:06d}.pth"},
                        "instance_id_map_path": f"{c}/instance_id_maps/{c}_{t:04d}.png",
                        "viewpoint": {"R": np.eye(3).tolist(), "T": [0, 0, 0]},
                        "meta": {},
                    }
                )
    ann = base / f"frame_annotations_{split}.jgz"
    with gzip.open(ann, "wt", encoding="utf8") as f:
        json.dump(entries, f)
    return ann


def cfg_for(raw: Path, out: Path, *overrides: str):
    return compose(
        "prepare",
        [
            "dataset=dynamic_replica",
            f"dataset.raw={raw}",
            f"dataset.out={out}",
            "features=none",
            "depth=none",
            "progress=false",
            *overrides,
        ],
    )


def expected(v: dict[str, np.ndarray], every: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and query frames when every visible vertex serves every grid query frame."""
    inside = (v["x2"][..., 0] <= W - 0.5) & (v["x2"][..., 1] <= H - 0.5)
    vis = (v["vis"] & inside).T
    rows = [np.flatnonzero(vis[:, q]) for q in range(0, T, every)]
    qs = [np.full(len(r), q) for q, r in zip(range(0, T, every), rows, strict=True)]
    return np.concatenate(rows), np.concatenate(qs)


# ----------------------------------------------------------------------------------------------
def test_dataset_trajectories_are_carried_with_object_labels_and_depth(tmp_path):
    raw = tmp_path / "raw"
    make_dr(raw)
    cfg = cfg_for(raw, tmp_path / "out", "dataset.tracks.query_every=4")
    jobs = dr.make_jobs(cfg)
    assert [j.name for j in jobs] == [f"val/{SEQ}"]  # the right camera is not converted
    report = run_jobs(jobs, progress=False)
    assert report.ok, report.summary()
    path = tmp_path / "out" / "val" / f"{SEQ}.h5"
    assert validate(path) == []
    seq = load_sequence(path)
    v = vertices(0)
    rows, q = expected(v, 4)
    assert seq.source == "dynamic_replica" and seq.fps == pytest.approx(15.0)
    assert np.array_equal(seq.query_frame, q)
    assert np.array_equal(seq.tracks, v["x2"].transpose(1, 0, 2)[rows])  # exact
    assert np.array_equal(seq.instance, v["ids"][rows])
    assert np.array_equal(seq.label, [MOVING_DEFAULT[int(k)] for k in v["ids"][rows]])
    assert seq.visibility[np.arange(len(q)), q].all()
    assert seq.object_moving.tolist() == [False, True, False, True, False, False]
    assert np.array_equal(seq.masks[0], id_map())
    assert seq.depth_kind == "depth"
    assert seq.depth_raw_range == pytest.approx((1.0, 3.9), abs=5e-3)  # float16 depth, decoded
    ds = seq.provenance["dataset"]
    assert ds["sequence"] == SEQ and ds["camera"] == "left"
    assert ds["object_rule"]["step_threshold"] == 1e-4
    frac = {o["id"]: o["dynamic_fraction"] for o in ds["objects"]}
    assert frac[3] == pytest.approx(0.6) and frac[5] == pytest.approx(0.4)
    assert seq.provenance["labels"]["rule"].startswith("given")


@pytest.mark.slow
def test_thresholds_change_the_labels(tmp_path):
    raw = tmp_path / "raw"
    make_dr(raw)
    v = vertices(0)

    def run(*overrides: str):
        (job,) = dr.make_jobs(cfg_for(raw, tmp_path / "out", *overrides))
        return dr.convert(**job.kwargs)

    seq = run("dataset.labels.step_threshold=1e-5")  # object 2's creep now counts
    assert seq.object_moving.tolist() == [False, True, True, True, False, False]
    assert np.all(seq.label[seq.instance == 2] == 1)
    seq = run("dataset.labels.object_dynamic_fraction=0.7")  # 60 % no longer enough
    assert seq.object_moving.tolist() == [False, True, False, False, False, False]
    assert np.all(seq.label[seq.instance == 3] == 0)
    seq = run("dataset.tracks.query_every=100", "dataset.tracks.tracks_per_query=7")
    assert seq.num_tracks == 7 and set(seq.query_frame.tolist()) == {0}
    assert len(v["ids"]) > 7


@pytest.mark.slow
def test_tracker_path_labels_through_instance_maps(tmp_path):
    raw = tmp_path / "raw"
    make_dr(raw)
    cfg = cfg_for(raw, tmp_path / "out", "dataset.tracks.use_dataset_tracks=false")
    use_still_tracker(cfg)
    (job,) = dr.make_jobs(cfg)
    seq = dr.convert(**job.kwargs)
    assert validate_seq(seq)
    xy = seq.tracks[:, 0]
    ids = id_map()[xy[:, 1].astype(int), xy[:, 0].astype(int)]
    assert np.array_equal(seq.instance, ids)
    assert np.array_equal(seq.label, [MOVING_DEFAULT[int(k)] for k in ids])
    assert seq.provenance["tracker"]["name"] == "still"


def validate_seq(seq) -> bool:
    from moseg.io import check_sequence

    problems = check_sequence(seq)
    assert problems == [], problems
    return True


def test_frame_subsampling_resize_large_and_negative_ids(tmp_path):
    raw = tmp_path / "raw"
    make_dr(raw)
    # relabel object 5 as id 1000 in the trajectories and the maps: ids are compacted to 8 bits
    base = raw / "valid" / f"{SEQ}_source_left"
    for t in range(T):
        p = base / "trajectories" / f"{t:06d}.pth"
        d = torch.load(p, weights_only=True)
        d["instances"] = torch.where(d["instances"] == 5, 1000, d["instances"])
        d["instances"][:5] = -1  # vertices of no object: their tracks are unknown
        torch.save(d, p)
        m = id_map().astype(np.uint16)
        m[m == 5] = 1000
        cv2.imwrite(str(base / "instance_id_maps" / f"{SEQ}_source_left_{t:04d}.png"), m)
    cfg = cfg_for(
        raw,
        tmp_path / "out",
        "dataset.frames.interval=3",
        "dataset.frames.longest_side=32",
        "dataset.tracks.query_every=2",
    )
    (job,) = dr.make_jobs(cfg)
    seq = dr.convert(**job.kwargs)
    assert validate_seq(seq)
    assert seq.num_frames == 4 and (seq.height, seq.width) == (24, 32)
    assert sorted(set(seq.query_frame.tolist())) == [0, 2]
    by_id = {o["id"]: o for o in seq.provenance["dataset"]["objects"]}
    assert by_id[4]["raw_id"] == 1000 and by_id[4]["moving"] is False
    assert seq.masks.max() == 4 and len(seq.object_moving) == 5
    assert np.all(seq.label[seq.instance == -1] == -1) and (seq.instance == -1).any()
    assert set(seq.label[seq.instance >= 0].tolist()) == {0, 1}
    v = vertices(0)
    src = (v["x2"][::3] + 0.5) / 2 - 0.5  # kept frames 0, 3, 6, 9, rescaled
    for row in seq.tracks:
        assert np.abs(src.transpose(1, 0, 2) - row[None]).max(axis=(1, 2)).min() < 1e-5


@pytest.mark.slow
def test_hydra_entry_rerun_skips_corrupt_is_redone_raw_untouched(tmp_path):
    raw = tmp_path / "raw"
    make_dr(raw, "valid", ("seq_b", "seq_a"))
    make_dr(raw, "train", ("seq_c",), seed=5)
    before = snapshot(raw)
    out = tmp_path / "out"
    cfg = cfg_for(raw, out)
    report = run_prepare(cfg, dr.make_jobs(cfg), desc="dynamic_replica")
    assert report.ok, report.summary()
    assert report.written == ["train/seq_c", "val/seq_a", "val/seq_b"]
    again = run_prepare(cfg, dr.make_jobs(cfg), desc="dynamic_replica")
    assert len(again.skipped) == 3 and not again.written
    with open(out / "val" / "seq_a.h5", "r+b") as f:  # truncate: a half-written file
        f.truncate(2000)
    third = run_prepare(cfg, dr.make_jobs(cfg), desc="dynamic_replica")
    assert third.redone == ["val/seq_a"] and third.written == ["val/seq_a"]
    assert validate(out / "val" / "seq_a.h5") == []
    only = cfg_for(raw, out, "dataset.sequences=[val/seq_b]", "dataset.max_per_split=1")
    assert [j.name for j in dr.make_jobs(only)] == ["val/seq_b"]
    assert [j.name for j in dr.make_jobs(cfg_for(raw, out, "dataset.max_per_split=1"))] == [
        "train/seq_c",
        "val/seq_a",
    ]
    assert snapshot(raw) == before


@pytest.mark.slow
def test_broken_sequences_fail_alone_naming_the_file(tmp_path):
    raw = tmp_path / "raw"
    names = ("good", "no_image", "odd_size", "short_traj", "bad_depth", "odd_map", "bad_pth")
    make_dr(raw, "valid", names)
    base = raw / "valid"

    def folder(s: str) -> Path:
        return base / f"{s}_source_left"

    (folder("no_image") / "images" / "no_image_source_left-0004.png").unlink()
    cv2.imwrite(
        str(folder("odd_size") / "images" / "odd_size_source_left-0002.png"),
        np.zeros((H, W + 8, 3), np.uint8),
    )
    p = folder("short_traj") / "trajectories" / "000005.pth"
    d = torch.load(p, weights_only=True)
    torch.save({k: v[:-3] if v.ndim and k != "img" else v for k, v in d.items()}, p)
    (folder("bad_depth") / "depths" / "bad_depth_source_left_0001.geometric.png").write_bytes(b"x")
    cv2.imwrite(
        str(folder("odd_map") / "instance_id_maps" / "odd_map_source_left_0003.png"),
        np.zeros((H // 2, W // 2), np.uint8),
    )
    (folder("bad_pth") / "trajectories" / "000000.pth").write_bytes(b"garbage")
    before = snapshot(raw)
    report = run_jobs(dr.make_jobs(cfg_for(raw, tmp_path / "out")), progress=False)
    assert report.written == ["val/good"]
    errors = {f.name.split("/")[1]: f.error for f in report.failed}
    assert set(errors) == set(names) - {"good"}
    assert "images/no_image_source_left-0004.png: does not exist" in errors["no_image"]
    assert "odd_size_source_left-0002.png: is 72x48" in errors["odd_size"]
    assert "trajectories/000005.pth: has 121 points" in errors["short_traj"]
    assert "bad_depth_source_left_0001.geometric.png: cannot be read" in errors["bad_depth"]
    assert "odd_map_source_left_0003.png: is 32x24" in errors["odd_map"]
    assert "bad_pth_source_left/trajectories/000000.pth: cannot be read" in errors["bad_pth"]
    assert all("\n" not in e for e in errors.values())
    assert snapshot(raw) == before


@pytest.mark.slow
def test_untrusted_pickles_are_refused_until_allowed(tmp_path):
    raw = tmp_path / "raw"
    make_dr(raw)
    p = raw / "valid" / f"{SEQ}_source_left" / "trajectories" / "000000.pth"
    d = torch.load(p, weights_only=True)
    torch.save({k: v.numpy() for k, v in d.items()}, p)  # numpy arrays need full unpickling
    (job,) = dr.make_jobs(cfg_for(raw, tmp_path / "out"))
    with pytest.raises(ValueError, match="000000.pth: .*trusted_pickles=true"):
        dr.convert(**job.kwargs)
    (job,) = dr.make_jobs(cfg_for(raw, tmp_path / "out", "dataset.trusted_pickles=true"))
    assert validate_seq(dr.convert(**job.kwargs))


@pytest.mark.slow
def test_depth_is_optional_and_missing_depth_is_named(tmp_path):
    raw = tmp_path / "raw"
    ann = make_dr(raw)
    with gzip.open(ann, "rt") as f:
        entries = json.load(f)
    for e in entries:
        if e["frame_number"] == 2:
            del e["depth"]
            del e["instance_id_map_path"]
    with gzip.open(ann, "wt") as f:
        json.dump(entries, f)
    (job,) = dr.make_jobs(cfg_for(raw, tmp_path / "out"))
    with pytest.raises(
        ValueError, match=r"frame 2 has no depth path; set dataset.use_dataset_depth"
    ):
        dr.convert(**job.kwargs)
    (job,) = dr.make_jobs(cfg_for(raw, tmp_path / "out", "dataset.use_dataset_depth=false"))
    seq = dr.convert(**job.kwargs)  # no depth, and no masks (a frame lacks its map)
    assert seq.depth is None and seq.masks is None and validate_seq(seq)
    assert seq.provenance["dataset"]["instance_maps"] is False


@pytest.mark.slow
def test_raw_root_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        dr.make_jobs(cfg_for(tmp_path / "nope", tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="frame_annotations_valid.jgz"):
        dr.make_jobs(cfg_for(tmp_path / "empty", tmp_path / "out"))
    (tmp_path / "bad" / "valid").mkdir(parents=True)
    (tmp_path / "bad" / "valid" / "frame_annotations_valid.jgz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match="frame_annotations_valid.jgz: cannot be read"):
        dr.make_jobs(cfg_for(tmp_path / "bad", tmp_path / "out"))
    with gzip.open(tmp_path / "bad" / "valid" / "frame_annotations_valid.jgz", "wt") as f:
        json.dump([{"frame_number": 0}], f)
    with pytest.raises(InputError, match="entry 0 has no sequence_name"):
        dr.make_jobs(cfg_for(tmp_path / "bad", tmp_path / "out"))
    make_dr(tmp_path / "ok")
    with pytest.raises(InputError, match="no sequence"):
        dr.make_jobs(cfg_for(tmp_path / "ok", tmp_path / "out", "dataset.sequences=[nope]"))
    with pytest.raises(InputError, match="camera 'middle'"):
        dr.make_jobs(cfg_for(tmp_path / "ok", tmp_path / "out", "dataset.camera=middle"))
