"""data_prep.davis on tiny trees built here: DAVIS 2016 (binary), DAVIS 2017 (palette, void),
FBMS-59 (sparse ground truth) and SegTrackv2 (one and several objects), plus real DAVIS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from moseg.config import compose
from moseg.datasets import davis
from moseg.datasets.common import InputError, run_prepare
from moseg.io import load_sequence, validate
from moseg.io.contract import MASK_VOID
from moseg.prep.base import TrackResult, query_grid
from moseg.prep.frames import FrameSpec
from tests.conftest import SHARED, needs_davis

T, H, W = 6, 48, 64


# ----------------------------------------------------------------------------------------------
# A tracker for tests, and fixture trees
# ----------------------------------------------------------------------------------------------
class FakeTracker:
    """Points on a grid on query frames 0, ``query_every``, ... that never move."""

    name = "fake"

    def __init__(self, grid_px: float = 6, query_every: int = 2, **_: Any):
        self.grid_px, self.query_every = float(grid_px), int(query_every)

    def __call__(self, frames: np.ndarray) -> TrackResult:
        t, h, w = frames.shape[:3]
        pts, q = query_grid(t, h, w, self.query_every, self.grid_px)
        n = len(pts)
        return TrackResult(
            tracks=np.repeat(pts[:, None], t, axis=1).astype(np.float32),
            visibility=np.ones((n, t), bool),
            confidence=np.ones((n, t), np.float32),
            query_frame=q.astype(np.int32),
        )

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name}


def planted(t_count: int = T, n_obj: int = 1, void: bool = False, seed: int = 0):
    """Frames [T, H, W, 3] (static texture, moving squares) and their instance masks [T, H, W]."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (3, 3), 0)
    frames, masks = [], []
    for t in range(t_count):
        f, m = bg.copy(), np.zeros((H, W), np.uint8)
        for k in range(1, n_obj + 1):
            y0, x0 = 6 + 20 * (k - 1), 4 + 2 * t + 10 * (k - 1)
            f[y0 : y0 + 14, x0 : x0 + 14] = (60 * k, 255 - 70 * k, 40)
            m[y0 : y0 + 14, x0 : x0 + 14] = k
        if void:
            m[:, W - 4 :] = MASK_VOID
        frames.append(f)
        masks.append(m)
    return np.stack(frames), np.stack(masks)


def write_rgb(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(
        str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98]
    )


def palette_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    im.putpalette(davis.voc_palette().ravel().tolist())
    im.save(path)


def grey_png(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a.astype(np.uint8), mode="L").save(path)


def davis_seq(root: Path, seq: str, *, n_obj=1, void=False, kind="binary", t_count=T, seed=0):
    frames, masks = planted(t_count, n_obj, void, seed)
    for t in range(t_count):
        write_rgb(root / "JPEGImages/480p" / seq / f"{t:05d}.jpg", frames[t])
        p = root / "Annotations/480p" / seq / f"{t:05d}.png"
        if kind == "binary":
            grey_png(p, np.where(masks[t] > 0, 255, 0))
        else:
            palette_png(p, masks[t])
    return frames, masks


def davis2016(root: Path, train=("cat", "dog"), val=("bird",), absent=("ghost",)) -> dict:
    gts = {}
    for seq in (*train, *val):
        gts[seq] = davis_seq(root, seq, seed=len(gts))[1]
    lists = root / "ImageSets/480p"
    lists.mkdir(parents=True)
    for split, seqs in (("train", train), ("val", (*val, *absent))):
        lines = [
            f"/JPEGImages/480p/{s}/{t:05d}.jpg /Annotations/480p/{s}/{t:05d}.png"
            for s in seqs
            for t in range(T)
        ]
        (lists / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return gts


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def prepare(raw: Path, out: Path, *overrides: str, dataset: str = "davis", fake: bool = True):
    """Convert through the Hydra config and moseg.datasets.common.run_prepare, as the command
    does."""
    tracker = ["tracker._target_=tests.test_prep_davis.FakeTracker"] if fake else []
    cfg = compose(
        "prepare",
        [
            f"dataset={dataset}",
            f"dataset.raw={raw}",
            f"dataset.out={out}",
            *tracker,
            "tracker.query_every=2",
            "tracker.grid_px=6",
            "features=none",
            "depth=none",
            "progress=false",
            *overrides,
        ],
    )
    return run_prepare(cfg, davis.make_jobs(cfg), desc=dataset)


def expected_labels(seq, masks: np.ndarray, annotated: np.ndarray | None = None):
    """Labels and ids from the planted masks, at each track's query point."""
    h, w = masks.shape[1:]
    xy = seq.tracks[np.arange(seq.num_tracks), seq.query_frame]
    xi = np.clip(np.rint(xy[:, 0]), 0, w - 1).astype(int)
    yi = np.clip(np.rint(xy[:, 1]), 0, h - 1).astype(int)
    inst = masks[seq.query_frame, yi, xi].astype(np.int32)
    lab = np.where((inst > 0) & (inst != MASK_VOID), 1, 0)
    lab[inst == MASK_VOID] = -1
    if annotated is not None:
        lab[~annotated[seq.query_frame]] = -1
    return lab, inst


def errors(report) -> dict[str, str]:
    return {f.name: f.error for f in report.failed}


# ----------------------------------------------------------------------------------------------
# DAVIS
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_davis2016_splits_labels_rerun_and_redo(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    gts = davis2016(raw)
    before = snapshot(raw)
    rep = prepare(raw, out)
    assert rep.ok and sorted(rep.written) == ["train/cat", "train/dog", "val/bird"]
    assert sorted(p.name for p in (out / "train").glob("*.h5")) == ["cat.h5", "dog.h5"]
    assert [p.name for p in (out / "val").glob("*.h5")] == ["bird.h5"]  # "ghost" has no frames
    assert (out / "prepare_report.json").is_file()
    for split, name in (("train", "cat"), ("train", "dog"), ("val", "bird")):
        path = out / split / f"{name}.h5"
        assert validate(path) == []
        seq = load_sequence(path)
        assert (seq.source, seq.split, seq.name, seq.num_frames) == ("davis", split, name, T)
        np.testing.assert_array_equal(seq.masks, gts[name])  # 0/255 -> one object, id 1
        lab, inst = expected_labels(seq, gts[name])
        np.testing.assert_array_equal(seq.label, lab)
        np.testing.assert_array_equal(seq.instance, inst)
        assert 0 < (seq.label == 1).sum() < seq.num_tracks
        gt = seq.provenance["dataset"]["ground_truth"]
        assert gt["format"] == "binary" and gt["object_ids"] == [1]
    assert snapshot(raw) == before  # the raw tree is only read

    rep = prepare(raw, out)
    assert rep.ok and rep.written == [] and len(rep.skipped) == 3
    bad = out / "train/dog.h5"
    bad.write_bytes(bad.read_bytes()[:1000])  # truncated
    rep = prepare(raw, out)
    assert rep.written == ["train/dog"] and rep.redone == ["train/dog"]
    assert validate(bad) == []
    assert snapshot(raw) == before


def test_davis2017_palette_objects_and_void(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    _, m1 = davis_seq(raw, "pair", n_obj=2, void=True, kind="palette")
    _, m2 = davis_seq(raw, "solo", n_obj=1, kind="palette", seed=3)
    (raw / "ImageSets/2017").mkdir(parents=True)
    (raw / "ImageSets/2017/train.txt").write_text("pair\n")
    (raw / "ImageSets/2017/val.txt").write_text("solo\n")
    gt = davis.read_masks("davis", raw, "pair")
    assert gt.info["format"] == "indexed" and gt.info["object_ids"] == [1, 2]
    np.testing.assert_array_equal(gt.masks, m1)
    assert gt.annotated.all()

    rep = prepare(raw, out)
    assert rep.ok, rep.summary()
    seq = load_sequence(out / "train/pair.h5")
    assert validate(out / "train/pair.h5") == []
    np.testing.assert_array_equal(seq.masks, m1)
    lab, inst = expected_labels(seq, m1)
    np.testing.assert_array_equal(seq.label, lab)
    np.testing.assert_array_equal(seq.instance, inst)
    assert {1, 2, MASK_VOID} <= set(seq.instance.tolist())
    assert (seq.label[seq.instance == MASK_VOID] == -1).all()
    assert (seq.label[np.isin(seq.instance, [1, 2])] == 1).all()
    np.testing.assert_array_equal(load_sequence(out / "val/solo.h5").masks, m2)


def test_read_sequence_resizes_masks_with_frames(tmp_path):
    raw = tmp_path / "raw"
    _, masks = davis_seq(raw, "pair", n_obj=2, kind="palette")
    frames, m, annotated, info = davis.read_sequence(
        "davis", raw, "pair", FrameSpec(start=1, interval=2, longest_side=32)
    )
    assert frames.frames.shape == (3, 24, 32, 3) and m.shape == (3, 24, 32)
    assert list(frames.indices) == [1, 3, 5] and annotated.all()
    want = np.stack(
        [cv2.resize(masks[i], (32, 24), interpolation=cv2.INTER_NEAREST) for i in (1, 3, 5)]
    )
    np.testing.assert_array_equal(m, want)
    assert info["layout"] == "davis" and info["sequence"] == "pair"
    assert davis.list_sequences("davis", raw) == ["pair"]


@pytest.mark.slow
def test_davis_bad_inputs_fail_only_their_sequence(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    names = ["good", "nomask", "extra", "bigframe", "bigmask", "badmask", "badframe", "empty"]
    for i, s in enumerate(names):
        davis_seq(raw, s, seed=i)
    ann, img = raw / "Annotations/480p", raw / "JPEGImages/480p"
    (ann / "nomask/00002.png").unlink()
    grey_png(ann / "extra/00099.png", np.zeros((H, W)))
    write_rgb(img / "bigframe/00003.jpg", np.zeros((H + 2, W, 3), np.uint8))
    grey_png(ann / "bigmask/00001.png", np.zeros((H, W + 4)))
    (ann / "badmask/00004.png").write_bytes(b"not a png at all")
    (img / "badframe/00000.jpg").write_bytes(b"\xff\xd8 broken")
    for p in (img / "empty").iterdir():
        p.unlink()
    (raw / "ImageSets/480p").mkdir(parents=True)
    (raw / "ImageSets/480p/train.txt").write_text("\n".join(names) + "\n")
    before = snapshot(raw)
    rep = prepare(raw, out, "dataset.splits=[train]")
    assert rep.written == ["train/good"]
    err = errors(rep)
    assert set(err) == {f"train/{s}" for s in names[1:]}
    assert str(ann / "nomask/00002.png") in err["train/nomask"]
    assert str(ann / "extra") in err["train/extra"] and "7 masks for 6 frames" in err["train/extra"]
    assert str(img / "bigframe/00003.jpg") in err["train/bigframe"]
    assert str(ann / "bigmask/00001.png") in err["train/bigmask"]
    assert str(ann / "badmask/00004.png") in err["train/badmask"]
    assert str(img / "badframe/00000.jpg") in err["train/badframe"]
    assert str(img / "empty") in err["train/empty"] and "no image files" in err["train/empty"]
    assert snapshot(raw) == before

    # a missing mask may instead mark its frame as not annotated
    rep = prepare(raw, out, "dataset.splits=[train]", "dataset.sequences=[nomask]",
                  "dataset.missing_masks=unannotated")  # fmt: skip
    assert rep.ok, rep.summary()
    seq = load_sequence(out / "train/nomask.h5")
    assert (seq.masks[2] == MASK_VOID).all() and (seq.masks[[0, 1, 3]] != MASK_VOID).all()
    assert (seq.label[seq.query_frame == 2] == -1).all()
    assert (seq.label[seq.query_frame == 0] >= 0).all()


@pytest.mark.slow
def test_davis_input_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "nope"))):
        prepare(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="JPEGImages/480p"):
        prepare(tmp_path / "empty", tmp_path / "out")
    raw = tmp_path / "raw"
    davis_seq(raw, "cat")
    (raw / "ImageSets/480p").mkdir(parents=True)
    (raw / "ImageSets/480p/train.txt").write_text("cat\n")
    with pytest.raises(InputError, match=r"ImageSets/480p/val\.txt"):
        prepare(raw, tmp_path / "out")
    with pytest.raises(InputError, match="dog"):
        prepare(raw, tmp_path / "out", "dataset.splits=[train]", "dataset.sequences=[dog]")
    (raw / "ImageSets/480p/train.txt").write_text("\n\n")
    with pytest.raises(InputError, match="lists no sequence"):
        prepare(raw, tmp_path / "out", "dataset.splits=[train]")


def test_split_list_formats(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png\n"
                 "/JPEGImages/480p/bear/00001.jpg /Annotations/480p/bear/00001.png\n"
                 "\nboat\n*frog\n")  # fmt: skip
    assert davis.parse_split_list(p) == ["bear", "boat", "frog"]


# ----------------------------------------------------------------------------------------------
# FBMS-59
# ----------------------------------------------------------------------------------------------
RED, GREEN, WHITE = (255, 0, 0), (0, 255, 0), (255, 255, 255)


def fbms_def(regions: list[int], labeled: list[tuple[int, str]], frames: int) -> str:
    lines = ["Ground truth definition file; do not change!", "", "Total number of regions:"]
    lines.append(str(len(regions)))
    for r in regions:
        lines += ["", str(r)]
    lines += ["", "Confusion penality matrix"]
    lines += [" ".join("0" if i == j else "1" for j in regions) for i in regions]
    lines += ["", "Total number of frames in this shot:", str(frames)]
    lines += ["Total number of labeled frames for this shot:", str(len(labeled))]
    for n, name in labeled:
        lines += ["Frame number:", str(n), "File name:", name, "Input file name:", "x.ppm"]
    return "\n".join(lines) + "\n"


def fbms_tree(raw: Path, t_count: int = 8) -> dict[str, np.ndarray]:
    """Trainingset/cars1: colour GT on frames 0 and 4 (+ Def.dat); Testset/dogs: grey GT, no
    Def.dat, on frames 1 and 6."""
    out = {}
    seq = raw / "Trainingset/cars1"
    frames, masks = planted(t_count, n_obj=2)
    for t in range(t_count):
        write_rgb(seq / f"cars1_{t + 1:02d}.jpg", frames[t])
    (seq / "cars1.bmf").write_text("not an image\n")
    gt = seq / "GroundTruth"
    gt.mkdir()
    for t in (0, 4):
        rgb = np.full((H, W, 3), WHITE, np.uint8)
        rgb[masks[t] == 1], rgb[masks[t] == 2] = RED, GREEN
        cv2.imwrite(str(gt / f"cars1_{t + 1:02d}_gt.ppm"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    regions = [0xFFFFFF, 0xFF0000, 0x00FF00]
    (gt / "cars1Def.dat").write_text(
        fbms_def(regions, [(0, "cars1_01_gt.ppm"), (4, "cars1_05_gt.ppm")], t_count)
    )
    exp = np.full_like(masks, MASK_VOID)
    exp[[0, 4]] = masks[[0, 4]]
    out["cars1"] = exp

    seq = raw / "Testset/dogs"
    frames, masks = planted(t_count, n_obj=1, seed=5)
    for t in range(t_count):
        write_rgb(seq / f"dogs_{t + 1:03d}.jpg", frames[t])
    (seq / "GroundTruth").mkdir()
    for t in (1, 6):
        cv2.imwrite(
            str(seq / f"GroundTruth/dogs_{t + 1:03d}_gt.pgm"),
            np.where(masks[t] > 0, 200, 0).astype(np.uint8),
        )
        cv2.imwrite(
            str(seq / f"GroundTruth/dogs_{t + 1:03d}_PROB_gt.pgm"), np.full((H, W), 9, np.uint8)
        )
    exp = np.full_like(masks, MASK_VOID)
    exp[[1, 6]] = masks[[1, 6]]
    out["dogs"] = exp
    return out


def test_fbms_sparse_ground_truth(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    exp = fbms_tree(raw)
    before = snapshot(raw)
    assert davis.list_sequences("fbms59", raw, "train") == ["cars1"]
    gt = davis.read_masks("fbms59", raw, "cars1")
    np.testing.assert_array_equal(gt.masks, exp["cars1"])
    assert gt.annotated.tolist() == [True, False, False, False, True, False, False, False]
    assert (
        gt.info["object_values"] == [0xFF0000, 0x00FF00] and gt.info["background_value"] == 0xFFFFFF
    )

    rep = prepare(raw, out, dataset="fbms59")
    assert rep.ok and sorted(rep.written) == ["test/dogs", "train/cars1"], rep.summary()
    for split, name in (("train", "cars1"), ("test", "dogs")):
        path = out / split / f"{name}.h5"
        assert validate(path) == []
        seq = load_sequence(path)
        assert seq.source == "fbms59" and seq.split == split
        np.testing.assert_array_equal(seq.masks, exp[name])
        annotated = (exp[name] != MASK_VOID).any(axis=(1, 2))
        lab, inst = expected_labels(seq, exp[name], annotated)
        np.testing.assert_array_equal(seq.label, lab)
        assert (seq.label[~annotated[seq.query_frame]] == -1).all()
        assert (seq.label == 1).any() and (seq.label == 0).any()
    assert snapshot(raw) == before


@pytest.mark.slow
def test_fbms_bad_ground_truth_fails_its_sequence(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    fbms_tree(raw)
    gt = raw / "Trainingset/cars1/GroundTruth"
    (gt / "cars1Def.dat").write_text("Ground truth definition file; do not change!\nnonsense\n")
    rep = prepare(raw, out, dataset="fbms59")
    assert rep.written == ["test/dogs"]
    assert str(gt / "cars1Def.dat") in errors(rep)["train/cars1"]
    regions = [0xFFFFFF, 0xFF0000]
    (gt / "cars1Def.dat").write_text(
        fbms_def(regions, [(0, "cars1_01_gt.ppm"), (9, "gone_gt.ppm")], 8)
    )
    rep = prepare(raw, out, dataset="fbms59")
    assert str(gt / "gone_gt.ppm") in errors(rep)["train/cars1"]
    # an undefined colour (green here) becomes void
    (gt / "cars1Def.dat").write_text(fbms_def(regions, [(0, "cars1_01_gt.ppm")], 8))
    g = davis.read_masks("fbms59", raw, "cars1", split="train")
    assert set(np.unique(g.masks[0]).tolist()) == {0, 1, MASK_VOID} and g.annotated.sum() == 1


# ----------------------------------------------------------------------------------------------
# SegTrackv2
# ----------------------------------------------------------------------------------------------
def segtrack_tree(raw: Path) -> dict[str, np.ndarray]:
    out = {}
    frames, masks = planted(T, n_obj=1)
    for t in range(T):
        write_rgb(raw / f"JPEGImages/frog/frog_{t:05d}.png", frames[t])
        grey_png(raw / f"GroundTruth/frog/{t:05d}.png", np.where(masks[t] > 0, 255, 0))
    out["frog"] = masks
    frames, masks = planted(T, n_obj=2, seed=2)
    for t in range(T):
        write_rgb(raw / f"JPEGImages/monkeydog/{t + 1:03d}.bmp", frames[t])
        for k in (1, 2):
            a = np.where(masks[t] == k, 1, 0)  # 0/1 masks, other names
            grey_png(raw / f"GroundTruth/monkeydog/{k}/m_{t:02d}.png", a)
    out["monkeydog"] = masks
    (raw / "ImageSets").mkdir()
    (raw / "ImageSets/all.txt").write_text("*frog\n*monkeydog\n")
    return out


@pytest.mark.slow
def test_segtrackv2_single_and_multi_object(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    exp = segtrack_tree(raw)
    before = snapshot(raw)
    assert davis.list_sequences("segtrackv2", raw) == ["frog", "monkeydog"]
    gt = davis.read_masks("segtrackv2", raw, "monkeydog", FrameSpec(interval=2))
    np.testing.assert_array_equal(gt.masks, exp["monkeydog"][::2])
    assert gt.info["objects"] == ["1", "2"] and gt.annotated.all()

    rep = prepare(raw, out, dataset="segtrackv2")
    assert rep.ok and sorted(rep.written) == ["test/frog", "test/monkeydog"], rep.summary()
    for name in ("frog", "monkeydog"):
        path = out / "test" / f"{name}.h5"
        assert validate(path) == []
        seq = load_sequence(path)
        np.testing.assert_array_equal(seq.masks, exp[name])
        lab, inst = expected_labels(seq, exp[name])
        np.testing.assert_array_equal(seq.label, lab)
        np.testing.assert_array_equal(seq.instance, inst)
    assert snapshot(raw) == before

    (raw / "GroundTruth/monkeydog/2/m_05.png").unlink()
    rep = prepare(raw, out, "overwrite=true", dataset="segtrackv2")
    assert rep.written == ["test/frog"]
    err = errors(rep)["test/monkeydog"]
    assert str(raw / "GroundTruth/monkeydog/2") in err and "5 masks for 6 frames" in err


# ----------------------------------------------------------------------------------------------
# The real default tracker, and real DAVIS data
# ----------------------------------------------------------------------------------------------
def test_default_opencv_tracker_end_to_end(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    davis2016(raw, train=("cat",), val=(), absent=())
    cfg = compose(
        "prepare",
        ["dataset=davis", f"dataset.raw={raw}", f"dataset.out={out}", "dataset.splits=[train]",
         "features=none", "progress=false", "tracker.query_every=4", "tracker.grid_px=6"],
    )  # fmt: skip
    assert cfg.tracker._target_ == "moseg.prep.trackers.flow.FlowTracker"
    rep = run_prepare(cfg, davis.make_jobs(cfg), desc="davis")
    assert rep.ok, rep.summary()
    path = out / "train/cat.h5"
    assert validate(path) == []
    seq = load_sequence(path)
    assert seq.provenance["tracker"]["name"] == "opencv"
    assert (seq.label == 1).sum() > 0 and (seq.label == 0).sum() > 0


@pytest.mark.real_data
@needs_davis
@pytest.mark.slow
def test_real_davis2016_short_sequence(tmp_path):
    root = SHARED / "DAVIS2016"
    assert len(davis.list_sequences("davis", root, "val")) == 20
    assert davis.list_sequences("davis", root, "train") == []  # listed, not in this copy
    if (SHARED / "DAVIS2016_train/ImageSets/480p/train.txt").is_file():
        assert len(davis.list_sequences("davis", SHARED / "DAVIS2016_train", "train")) == 8
    spec = FrameSpec(max_frames=8, longest_side=160)
    frames, masks, annotated, info = davis.read_sequence("davis", root, "blackswan", spec)
    assert frames.frames.shape == (8, 90, 160, 3) and annotated.all()
    assert info["format"] == "binary" and info["object_ids"] == [1]
    ref = np.array(Image.open(root / "Annotations/480p/blackswan/00003.png"))
    ref = cv2.resize((ref > 127).astype(np.uint8), (160, 90), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(masks[3], ref)

    out = tmp_path / "out"
    over = ["dataset.sequences=[blackswan]", "dataset.frames.max_frames=8",
            "dataset.frames.longest_side=160", "tracker.query_every=4"]  # fmt: skip
    rep = prepare(root, out, *over, fake=False)  # the real default tracker
    assert rep.ok and rep.written == ["val/blackswan"], rep.summary()
    assert validate(out / "val/blackswan.h5") == []
    seq = load_sequence(out / "val/blackswan.h5")
    assert seq.provenance["frames"]["original_size"] == [480, 854]
    assert 0 < (seq.label == 1).mean() < 0.5


def test_fbms_background_without_white_is_black(tmp_path):
    seq = tmp_path / "Testset/bw"
    frames, masks = planted(4, n_obj=1)
    for t in range(4):
        write_rgb(seq / f"bw_{t + 1:02d}.jpg", frames[t])
    (seq / "GroundTruth").mkdir()
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[masks[2] == 1] = RED
    cv2.imwrite(str(seq / "GroundTruth/bw_03_gt.ppm"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    gt = davis.read_masks("fbms59", tmp_path, "bw")
    assert gt.info["background_value"] == 0 and gt.annotated.tolist() == [0, 0, 1, 0]
    np.testing.assert_array_equal(gt.masks[2], masks[2])
    gt = davis.read_masks("fbms59", tmp_path, "bw", options={"background": "white"})
    assert set(np.unique(gt.masks[2]).tolist()) == {1, 2}  # black is now an object
