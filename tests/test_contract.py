from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from moseg import cli
from moseg.io import (
    FIELDS,
    ContractError,
    SequenceFile,
    list_sequences,
    load_sequence,
    normalise_depth,
    sample_depth,
    validate,
    write_sequence,
)
from moseg.utils.atomic import remove_stale_temps


def test_round_trip_keeps_every_field(tmp_path, tiny_seq):
    path = write_sequence(tmp_path / "a.h5", tiny_seq)
    back = load_sequence(path)
    for name in FIELDS:
        a, b = getattr(tiny_seq, name), getattr(back, name)
        assert a is not None, f"fixture lacks {name}"
        assert b.dtype == FIELDS[name].dtype, name
        np.testing.assert_array_equal(np.asarray(a), b, err_msg=name)
    for attr in (
        "name",
        "height",
        "width",
        "fps",
        "source",
        "split",
        "provenance",
        "depth_kind",
        "feature_map_stride",
    ):
        assert getattr(back, attr) == getattr(tiny_seq, attr), attr
    assert back.depth_raw_range == pytest.approx(tiny_seq.depth_raw_range)
    assert validate(path) == []


def test_lazy_reader_reads_slices(tmp_path, tiny_seq):
    path = write_sequence(tmp_path / "a.h5", tiny_seq)
    with SequenceFile(path) as f:
        assert f.meta.num_tracks == tiny_seq.num_tracks
        assert f.meta.num_frames == tiny_seq.num_frames
        np.testing.assert_array_equal(f.read("tracks", np.s_[:, 2:5]), tiny_seq.tracks[:, 2:5])
        with pytest.raises(KeyError, match="not a contract field"):
            f.read("bogus")


def _write(tmp_path, seq, name="f.h5") -> Path:
    return write_sequence(tmp_path / name, seq)


def _fields_of(problems):
    return {p.field for p in problems}


def test_validate_rejects_truncated_file(tmp_path, tiny_seq):
    path = _write(tmp_path, tiny_seq)
    data = path.read_bytes()
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(data[: len(data) // 2])
    problems = validate(bad)
    assert problems and all(p.file == str(bad) for p in problems)
    assert "truncated" in problems[0].message or "cannot" in problems[0].message


def test_validate_rejects_missing_field(tmp_path, tiny_seq):
    path = _write(tmp_path, tiny_seq)
    with h5py.File(path, "a") as f:
        del f["visibility"]
        del f.attrs["fps"]
    problems = validate(path)
    assert {"visibility", "fps"} <= _fields_of(problems)
    msg = {p.field: p.message for p in problems}
    assert "missing" in msg["visibility"] and "missing" in msg["fps"]


def test_validate_rejects_wrong_shape_and_dtype(tmp_path, tiny_seq):
    path = _write(tmp_path, tiny_seq)
    n, t = tiny_seq.visibility.shape
    with h5py.File(path, "a") as f:
        del f["confidence"]
        f["confidence"] = np.ones((n, t + 1), np.float16)
        del f["tracks"]
        f["tracks"] = tiny_seq.tracks.astype(np.float64)
        del f["label"]
        f["label"] = np.zeros(n - 1, np.int8)
    problems = validate(path)
    msg = {p.field: p.message for p in problems}
    assert "shape" in msg["confidence"] and str(t + 1) in msg["confidence"]
    assert "dtype is float64" in msg["tracks"]
    assert "shape" in msg["label"]


def test_validate_rejects_nan_coordinates(tmp_path, tiny_seq):
    path = _write(tmp_path, tiny_seq)
    with h5py.File(path, "a") as f:
        tr = f["tracks"][()]
        tr[3, 1, 0] = np.nan
        tr[5, 2, 1] = np.inf
        f["tracks"][...] = tr
    problems = validate(path)
    assert [p.field for p in problems] == ["tracks"]
    assert "2 points have NaN" in problems[0].message


def test_validate_reports_every_problem_and_value_errors(tmp_path, tiny_seq):
    path = _write(tmp_path, tiny_seq)
    with h5py.File(path, "a") as f:
        lab = f["label"][()]
        lab[0] = 7
        f["label"][...] = lab
        q = f["query_frame"][()]
        q[0] = 99
        f["query_frame"][...] = q
        c = f["confidence"][()]
        c[0, 0] = 1.5
        f["confidence"][...] = c
        f.attrs["schema_version"] = 42
        f["extra"] = np.zeros(3)
    fields = _fields_of(validate(path))
    assert {"label", "query_frame", "confidence", "schema_version", "extra"} <= fields


def test_validate_detects_corrupted_chunk(tmp_path, tiny_seq):
    path = _write(tmp_path, tiny_seq)
    with h5py.File(path, "r") as f:
        info = f["tracks"].id.get_chunk_info(0)
    raw = bytearray(path.read_bytes())
    for k in range(16):
        raw[info.byte_offset + info.size // 2 + k] ^= 0xFF
    path.write_bytes(bytes(raw))
    problems = validate(path)
    assert any(p.field == "tracks" and "cannot be read" in p.message for p in problems)


def test_writer_refuses_invalid_sequence(tmp_path, tiny_seq):
    tiny_seq.tracks[0, 0, 0] = np.nan
    tiny_seq.label = tiny_seq.label.astype(np.int64)
    with pytest.raises(ContractError) as e:
        write_sequence(tmp_path / "x.h5", tiny_seq)
    assert {"tracks", "label"} <= {p.field for p in e.value.problems}
    assert str(tmp_path / "x.h5") in str(e.value)
    assert list(tmp_path.iterdir()) == []


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time, h5py
    from pathlib import Path
    from tests.conftest import tiny_config
    from moseg.datasets.synthetic import generate_clip
    from moseg.io import write_sequence

    out, marker = Path(sys.argv[1]), Path(sys.argv[2])
    seq = generate_clip(tiny_config(save_frames=True), [3], name="k").sequence
    real = h5py.Group.create_dataset
    def slow(self, *a, **k):
        ds = real(self, *a, **k)
        marker.write_text("writing")
        time.sleep(60)
        return ds
    h5py.Group.create_dataset = slow
    write_sequence(out / "clip.h5", seq)
    """
)


@pytest.mark.slow
def test_killed_writer_leaves_no_complete_looking_file(tmp_path):
    marker = tmp_path / "marker"
    out = tmp_path / "out"
    out.mkdir()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out), str(marker)], cwd=root)
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert proc.poll() is None, "writer exited before it was killed"
            assert time.time() < deadline, "writer never started writing"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "clip.h5").exists()
    assert list_sequences(out) == []
    temps = [p for p in out.iterdir() if p.name.startswith(".clip.h5.")]
    assert len(temps) == 1
    assert validate(temps[0]), "a half-written temp file must not validate"
    assert remove_stale_temps(out) == temps
    assert list(out.iterdir()) == []


def test_cli_validate_exit_codes(tmp_path, tiny_seq, capsys):
    good = _write(tmp_path, tiny_seq, "good.h5")
    bad = _write(tmp_path, tiny_seq, "bad.h5")
    with h5py.File(bad, "a") as f:
        del f["query_frame"]
    assert cli.main(["validate", str(good)]) == 0
    assert cli.main(["validate", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: query_frame: missing dataset" in err
    assert "1 of 2 files valid" in err
    # a folder expands to its files; an empty folder is a failure, not a silent pass
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["validate", str(empty)]) == 1
    assert cli.main(["validate", str(tmp_path / "missing.h5")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_runs(tmp_path, tiny_seq):
    good = _write(tmp_path, tiny_seq, "good.h5")
    exe = shutil.which("moseg", path=str(Path(sys.executable).parent))
    assert exe, "the moseg console script is not installed next to this python"
    ok = subprocess.run([exe, "validate", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    bad = subprocess.run(
        [exe, "validate", str(tmp_path / "junk.h5")], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "junk.h5" in bad.stderr
    info = subprocess.run([exe, "info", "--compact", str(good)], capture_output=True, text=True)
    assert info.returncode == 0 and '"tracks": 300' in info.stdout


def test_sample_depth_is_bilinear_at_the_right_pixel():
    # depth map at half resolution of a 40x60 frame holding a linear ramp in frame coordinates;
    # with cv2.resize's pixel-centre alignment the sampled value must reproduce the ramp.
    H, W, Hd, Wd = 40, 60, 20, 30
    yd, xd = np.mgrid[0:Hd, 0:Wd].astype(np.float32)
    fx, fy = (xd + 0.5) * (W / Wd) - 0.5, (yd + 0.5) * (H / Hd) - 0.5  # frame coords of cells
    ramp = lambda x, y: 0.01 * x + 0.002 * y  # noqa: E731
    depth = np.stack([ramp(fx, fy), 2 * ramp(fx, fy)])
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(1, W - 2, 50), rng.uniform(1, H - 2, 50)], axis=1)
    tracks = np.repeat(pts[:, None], 2, axis=1).astype(np.float32)
    got = sample_depth(depth, tracks, (H, W))
    np.testing.assert_allclose(got[:, 0], ramp(pts[:, 0], pts[:, 1]), atol=1e-5)
    np.testing.assert_allclose(got[:, 1], 2 * ramp(pts[:, 0], pts[:, 1]), atol=1e-5)
    # far outside the frame: the border value, never pixel (0, 0) for everything
    far = np.array([[[1e4, 1e4], [1e4, -1e4]]], np.float32)
    np.testing.assert_allclose(
        sample_depth(depth, far, (H, W))[0], [depth[0, -1, -1], 2 * depth[0, 0, -1]], atol=1e-6
    )


def test_normalise_depth_is_per_video_not_per_frame():
    d = np.stack([np.full((4, 4), 2.0), np.full((4, 4), 4.0)])
    d[0, 0, 0] = 1.0
    n, (lo, hi) = normalise_depth(d)
    assert (lo, hi) == (1.0, 4.0)
    assert n.dtype == np.float16
    assert float(n[0, 1, 1]) == pytest.approx(1 / 3, abs=1e-3)  # not stretched to 1 per frame
    assert float(n[1].min()) == 1.0 and float(n[0, 0, 0]) == 0.0


def test_docs_field_table_matches_the_code():
    from moseg.io.contract import describe_fields

    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text()
    assert describe_fields() in doc, "regenerate the table in docs/data-contract.md"


def test_a_live_writers_temporary_file_is_never_removed(tmp_path):
    """Two runs on one folder: the second's clean-up keeps the first's in-progress file (its
    owner runs), another host's, and names without an owner; it removes a dead writer's."""
    from moseg.utils.atomic import atomic_path, owner_tag

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = owner_tag().rsplit("-", 1)[0]
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        names = {
            "live": f".a.h5.{host}-{live.pid}.x1y2.tmp",
            "dead": f".b.h5.{host}-{dead}.x1y2.tmp",
            "other_host": f".c.h5.elsewhere-{dead}.x1y2.tmp",
            "no_owner": ".d.h5.x1y2.tmp",
        }
        for n in names.values():
            (tmp_path / n).write_bytes(b"")
        with atomic_path(tmp_path / "mine.h5") as tmp:  # this process's own: kept while open
            assert remove_stale_temps(tmp_path) == [tmp_path / names["dead"]]
            assert tmp.exists()
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {names["live"], names["other_host"], names["no_owner"], "mine.h5"}
    finally:
        live.kill()
        live.wait()


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    from moseg.utils.atomic import atomic_write_text

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
        mode = (tmp_path / "new.txt").stat().st_mode & 0o777
        assert mode == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o640
        os.chmod(tmp_path / "new.txt", 0o604)  # a replaced file keeps its mode
        atomic_write_text(tmp_path / "new.txt", "y")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o604
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda f: f["tracks"].__setitem__((0, 0, 0), np.nan), "tracks"),
        (lambda f: f["query_frame"].__setitem__(0, 10_000), "query_frame"),
    ],
)
def test_load_sequence_validates_what_it_reads(tmp_path, tiny_seq, damage, says):
    """Files `moseg validate` rejects are not loaded silently; validate=False skips the check."""
    from moseg.io import ContractError

    path = write_sequence(tmp_path / "a.h5", tiny_seq)
    with h5py.File(path, "r+") as f:
        damage(f)
    assert validate(path)
    with pytest.raises(ContractError, match=says) as e:
        load_sequence(path)
    assert str(path) in str(e.value)
    load_sequence(path, validate=False)  # the documented way around it


def test_load_sequence_refuses_a_field_of_the_wrong_dtype(tmp_path, tiny_seq):
    from moseg.io import ContractError

    path = write_sequence(tmp_path / "a.h5", tiny_seq)
    with h5py.File(path, "r+") as f:
        vis = f["visibility"][()]
        del f["visibility"]
        f["visibility"] = vis.astype(np.float64)
    with pytest.raises(ContractError, match="visibility"):
        load_sequence(path)
