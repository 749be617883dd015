"""data_prep.hoi4d on a tiny HOI4D tree built here: mp4 videos plus colour-coded motion masks."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from moseg.config import compose
from moseg.datasets import hoi4d
from moseg.datasets.common import InputError, run_prepare
from moseg.datasets.davis import voc_palette
from moseg.io import load_sequence, validate
from moseg.io.contract import MASK_VOID
from moseg.prep.frames import FrameError
from tests.test_prep_davis import expected_labels, snapshot

T, H, W = 10, 48, 64
IDS = ["ZY20210800001/H1/C1/N19/S100/s01/T1", "ZY20210800002/H2/C5/N3/S7/s02/T2"]
PAL = voc_palette()


def planted(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames and masks: object (id 1) and hand (id 2) moving over a static texture."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (5, 5), 0)
    frames, masks = [], []
    for t in range(T):
        f, m = bg.copy(), np.zeros((H, W), np.uint8)
        f[8:22, 6 + t : 20 + t], m[8:22, 6 + t : 20 + t] = (220, 40, 40), 1
        f[28:40, 40 - t : 52 - t], m[28:40, 40 - t : 52 - t] = (40, 200, 60), 2
        frames.append(f)
        masks.append(m)
    return np.stack(frames), np.stack(masks)


def write_video(path: Path, frames: np.ndarray, fps: int = 15) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())


def write_mask(path: Path, ids: np.ndarray, colours: dict[int, tuple] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = PAL[ids].copy()
    for k, c in (colours or {}).items():
        rgb[ids == k] = c
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def hoi4d_tree(tmp: Path, separate: bool = True) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """HOI4D_release (videos) and HOI4D_annotations (masks); the second sequence also has a
    shift_mask folder (preferred) whose masks differ from mask/."""
    rel = tmp / "HOI4D_release"
    ann = tmp / "HOI4D_annotations" if separate else rel
    gts = {}
    for k, sid in enumerate(IDS):
        frames, masks = planted(k)
        write_video(rel / sid / "align_rgb/image.mp4", frames)
        (rel / sid / "align_depth").mkdir(parents=True)
        for t in range(T):
            write_mask(ann / sid / f"2Dseg/mask/{t:05d}.png", masks[t])
        if k == 1:
            shifted = np.roll(masks, 2, axis=2)
            for t in range(T):
                write_mask(ann / sid / f"2Dseg/shift_mask/{t:05d}.png", shifted[t])
            masks = shifted
        gts[sid] = masks
    return rel, ann, gts


def prepare(raw: Path, out: Path, *overrides: str):
    cfg = compose(
        "prepare",
        [
            "dataset=hoi4d",
            f"dataset.raw={raw}",
            f"dataset.out={out}",
            "dataset.val_fraction=0",
            "tracker._target_=tests.test_prep_davis.FakeTracker",
            "tracker.query_every=1",
            "tracker.grid_px=5",
            "features=none",
            "depth=none",
            "progress=false",
            *overrides,
        ],
    )
    return run_prepare(cfg, hoi4d.make_jobs(cfg), desc="hoi4d")


@pytest.mark.slow
def test_convert_every_4th_frame_masks_labels_and_raw_untouched(tmp_path):
    rel, ann, gts = hoi4d_tree(tmp_path)
    out = tmp_path / "out"
    before = {p: snapshot(p) for p in (rel, ann)}
    assert hoi4d.find_sequences(rel) == IDS
    rep = prepare(rel, out, f"dataset.annotations={ann}")
    names = [hoi4d.sequence_name(i) for i in IDS]
    assert rep.ok and sorted(rep.written) == names, rep.summary()
    for sid, name in zip(IDS, names, strict=True):
        path = out / "train" / f"{name}.h5"
        assert validate(path) == []
        seq = load_sequence(path)
        assert (seq.name, seq.source, seq.split) == (name, "hoi4d", "train")
        fr = seq.provenance["frames"]
        assert fr["kept_indices"] == "0-8:4" and fr["total_frames"] == T
        assert any("interval=4" in n for n in fr["notes"])
        assert seq.fps == pytest.approx(15 / 4)
        np.testing.assert_array_equal(seq.masks, gts[sid][[0, 4, 8]])
        lab, inst = expected_labels(seq, gts[sid][[0, 4, 8]])
        np.testing.assert_array_equal(seq.label, lab)
        np.testing.assert_array_equal(seq.instance, inst)
        assert {0, 1, 2} <= set(seq.instance.tolist())
        gt = seq.provenance["dataset"]["ground_truth"]
        assert gt["colour_ids"] == {"#008000": 2, "#800000": 1} and gt["object_ids"] == [1, 2]
    prov = load_sequence(out / "train" / f"{names[1]}.h5").provenance["dataset"]
    assert prov["ground_truth"]["mask_dir"].endswith("2Dseg/shift_mask")
    # the listing, sizes and mtimes of both raw trees are unchanged
    assert {p: snapshot(p) for p in (rel, ann)} == before

    rep = prepare(rel, out, f"dataset.annotations={ann}")
    assert rep.written == [] and sorted(rep.skipped) == names


def test_masks_in_the_same_tree_and_val_split(tmp_path):
    rel, _, gts = hoi4d_tree(tmp_path, separate=False)
    out = tmp_path / "out"
    rep = prepare(rel, out, "dataset.val_fraction=0.5", "dataset.frames.max_frames=2")
    assert rep.ok, rep.summary()
    splits = hoi4d.assign_splits(IDS, 0.5)
    assert "val" in splits.values()
    for sid in IDS:
        path = out / splits[sid] / f"{hoi4d.sequence_name(sid)}.h5"
        seq = load_sequence(path)
        assert seq.split == splits[sid] and seq.num_frames == 2
        np.testing.assert_array_equal(seq.masks, gts[sid][[0, 4]])


def test_splits_are_stable():
    ids = [f"ZY1/H1/C1/N{i}/S1/s01/T1" for i in range(200)]
    a = hoi4d.assign_splits(ids, 0.1)
    b = hoi4d.assign_splits(ids[::-1][:150], 0.1)
    assert all(a[i] == b[i] for i in b)
    assert 5 < sum(v == "val" for v in a.values()) < 40
    assert set(hoi4d.assign_splits(ids[:2], 0.01).values()) == {"train", "val"}
    assert set(hoi4d.assign_splits(ids, 0.0).values()) == {"train"}


def test_colours_to_ids(tmp_path):
    ids = np.zeros((4, H, W), np.uint8)
    ids[:, 2:10, 2:10] = 1
    ids[:, 20:30, 2:10] = 2
    ids[1:, 20:30, 30:40] = 3  # painted in a colour outside the map
    ids[2:, 40:44, 50:60] = 4  # painted near the map's colour of 1
    for t in range(4):
        write_mask(tmp_path / f"{t:05d}.png", ids[t], {3: (10, 200, 250), 4: (130, 3, 0)})
    m, annotated, info = hoi4d.read_masks(tmp_path, np.array([0, 1, 2, 3]), (H, W))
    assert annotated.all()
    want = ids.copy()
    want[ids == 3], want[ids == 4] = 3, 1  # unknown: next id after 2; near: snaps to 1
    np.testing.assert_array_equal(m, want)
    assert info["unknown_colours"] == ["#0ac8fa"] and info["snapped_colours"] == {"#820300": 1}
    assert info["colour_ids"]["#0ac8fa"] == 3 and info["object_ids"] == [1, 2, 3]
    # the same colour gets the same id in every frame, even when it first shows later
    m2, _, _ = hoi4d.read_masks(tmp_path, np.array([3, 0]), (H, W), colour_tolerance=0)
    assert set(np.unique(m2[0]).tolist()) == {0, 1, 2, 3, 4}


@pytest.mark.slow
def test_bad_inputs_fail_only_their_sequence(tmp_path):
    rel, ann, _ = hoi4d_tree(tmp_path)
    out = tmp_path / "out"
    bad, good = IDS
    missing = ann / bad / "2Dseg/mask/00004.png"
    missing.unlink()
    rep = prepare(rel, out, f"dataset.annotations={ann}")
    assert rep.written == [hoi4d.sequence_name(good)]
    assert str(missing) in rep.failed[0].error

    rep = prepare(rel, out, f"dataset.annotations={ann}", "dataset.missing_masks=unannotated")
    assert rep.ok, rep.summary()
    seq = load_sequence(out / "train" / f"{hoi4d.sequence_name(bad)}.h5")
    assert (seq.masks[1] == MASK_VOID).all() and (seq.label[seq.query_frame == 1] == -1).all()
    assert (seq.label[seq.query_frame == 0] >= 0).all()

    big = ann / bad / "2Dseg/mask/00008.png"
    write_mask(big, np.zeros((H, W + 6), np.uint8))
    over = [f"dataset.annotations={ann}", "dataset.missing_masks=unannotated", "overwrite=true"]
    rep = prepare(rel, out, *over)
    assert str(big) in rep.failed[0].error and "64x48" in rep.failed[0].error

    video = rel / good / "align_rgb/image.mp4"
    video.write_bytes(b"not a video")
    rep = prepare(rel, out, f"dataset.annotations={ann}", "overwrite=true")
    assert {f.name for f in rep.failed} == {hoi4d.sequence_name(i) for i in IDS}
    assert any(str(video) in f.error for f in rep.failed)

    with pytest.raises(FrameError, match="no mask PNGs"):
        hoi4d.read_sequence(rel, good)  # masks live in the other tree


@pytest.mark.slow
def test_list_file_and_input_errors(tmp_path):
    rel, ann, _ = hoi4d_tree(tmp_path)
    out = tmp_path / "out"
    lst = tmp_path / "release.txt"
    lst.write_text(f"{IDS[0]}\nZY9/H1/C1/N1/S1/s01/T1\n")
    rep = prepare(rel, out, f"dataset.annotations={ann}", f"dataset.list_file={lst}")
    assert rep.written == [hoi4d.sequence_name(IDS[0])]
    assert str(rel / "ZY9/H1/C1/N1/S1/s01/T1/align_rgb/image.mp4") in rep.failed[0].error

    with pytest.raises(InputError, match="nowhere"):
        prepare(tmp_path / "nowhere", out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no HOI4D sequences"):
        prepare(tmp_path / "empty", out)
    with pytest.raises(InputError, match="ZY0"):
        prepare(rel, out, "dataset.sequences=[ZY0/H1/C1/N1/S1/s01/T1]")
    with pytest.raises(InputError, match="annotation folder"):
        prepare(rel, out, f"dataset.annotations={tmp_path / 'missing'}")
