"""Faults a real user hits (issue 21), each one line and an exit code, never a traceback, and
nothing lost: the rows of docs/bad-input.md that are not tested next to their feature."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from moseg.cli import _join_negative_values, check_out_folder
from moseg.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


def _read_only(monkeypatch):
    """Make every folder refuse new files as a read-only mount does (works as root too)."""

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)


# ------------------------------------------------------------------------------- moseg info --
@pytest.mark.parametrize(
    "content, says",
    [(b"\x89HDF\r\n garbage", "not a readable contract file"), (b"", "not a readable")],
)
def test_info_on_a_bad_file_is_one_line(tmp_path, capsys, content, says):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(content)
    assert cli(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert says in err and str(bad) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_info_on_a_file_missing_a_field(tmp_path, capsys, tiny_seq):
    import h5py

    from moseg.io import write_sequence

    path = write_sequence(tmp_path / "a.h5", tiny_seq)
    with h5py.File(path, "r+") as f:
        del f["label"]
    assert cli(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "label" in err and "moseg validate" in err


# ---------------------------------------------------------------------------- prompts -------
def test_a_point_left_of_the_frame_is_read_as_a_point():
    argv = ["segment", "v.mp4", "--out", "o", "--point", "-5,100", "--box", "-3,-4,10,20@2"]
    assert _join_negative_values(argv) == [
        "segment",
        "v.mp4",
        "--out",
        "o",
        "--point=-5,100",
        "--box=-3,-4,10,20@2",
    ]
    assert _join_negative_values(["--point", "--out"]) == ["--point", "--out"]


def test_segment_says_a_negative_point_is_outside_the_frame(tmp_path, capsys):
    from tests.test_segment import make_clip, write_folder

    frames, _ = make_clip(T=3, H=48, W=64)
    folder = write_folder(tmp_path / "clip", frames)
    rc = cli(["segment", str(folder), "--out", str(tmp_path / "o"), "--point", "-5,10"])
    err = capsys.readouterr().err
    assert rc == 2 and "-5" in err and "outside" in err and "Traceback" not in err


# ------------------------------------------------------------------------------ --out -------
def test_out_folder_problems_are_found_before_anything_slow(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    assert "is not a folder" in check_out_folder(f)
    assert check_out_folder(tmp_path / "new" / "deeper") is None
    _read_only(monkeypatch)
    why = check_out_folder(tmp_path / "new")
    assert why == f"--out {tmp_path / 'new'}: cannot write into {tmp_path} (read-only file system)"


def test_segment_checks_out_before_importing_the_pipeline(tmp_path):
    """A non-empty folder that is not moseg's is refused before torch is even imported."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    code = (
        "import sys; from moseg.cli import main; rc = main(sys.argv[1:]); "
        "print('torch' in sys.modules); sys.exit(rc)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "segment", "missing.mp4", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and "holds no moseg segmentation" in r.stderr
    assert r.stdout.strip() == "False"  # nothing slow was imported
    assert (out / "notes.txt").read_text() == "keep"


def test_segment_and_preprocess_on_a_read_only_folder(tmp_path, monkeypatch, capsys):
    _read_only(monkeypatch)
    assert cli(["segment", "v.mp4", "--out", str(tmp_path / "o")]) == 2
    assert "read-only file system" in capsys.readouterr().err
    assert cli(["preprocess", str(tmp_path), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "read-only file system" in err and "Traceback" not in err


def test_evaluate_segment_state_name_matches_the_pipeline():
    from moseg.cli import SEGMENT_STATE
    from moseg.segmentation.run import STATE_DIR

    assert Path(STATE_DIR) / "state.json" == SEGMENT_STATE


# ------------------------------------------------------------------------- preprocess -------
def test_preprocess_into_a_folder_another_run_holds(tmp_path, capsys):
    from moseg.utils.atomic import LOCK_NAME, owner_tag
    from tests.test_segment import make_clip, write_folder

    frames, _ = make_clip(T=3, H=48, W=64)
    folder = write_folder(tmp_path / "clip", frames)
    out = tmp_path / "out"
    out.mkdir()
    host = owner_tag().rsplit("-", 1)[0]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(json.dumps({"host": host, "pid": live.pid}))
        assert cli(["preprocess", str(folder), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"pid {live.pid}" in err and "another moseg run" in err
        assert not list(out.glob("*.h5"))
    finally:
        live.kill()
        live.wait()


def test_prepare_report_merges_runs(tmp_path):
    from moseg.datasets.common import write_report
    from moseg.prep.jobs import Failure, Report

    path = tmp_path / "prepare_report.json"
    write_report(path, Report(written=["a", "b"], stats={"a": {"tracks": 3}}))
    second = Report(skipped=["a"], failed=[Failure("c", "ValueError: bad", "")])
    merged = write_report(path, second)
    assert json.loads(path.read_text()) == merged
    seqs = merged["sequences"]
    assert seqs["a"]["outcome"] == "written" and seqs["a"]["stats"] == {"tracks": 3}
    assert seqs["b"]["outcome"] == "written" and seqs["c"]["outcome"] == "failed"
    assert [r["written"] for r in merged["runs"]] == [2, 0]
    assert [f["name"] for f in merged["failed"]] == ["c"]  # this run's


# ----------------------------------------------------------------------------- evaluate -----
def _evil(path: Path) -> Path:
    import os

    import torch

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"state_dict": RunsCode()}, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random", "code"])
def test_evaluate_refuses_a_bad_checkpoint_before_any_work(tmp_path, kind):
    """Random bytes or a pickle that would run code: one line naming the file, exit 2, and
    nothing generated or preprocessed first."""
    ckpt = tmp_path / "model.ckpt"
    if kind == "random":
        ckpt.write_bytes(bytes(range(256)) * 8)
    else:
        _evil(ckpt)
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluate.py"),
            "bench=synthetic",
            f"ckpt={ckpt}",
            f"paths.data_dir={tmp_path / 'data'}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "wandb.enabled=false",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(ckpt) in r.stderr
    if kind == "code":
        assert "posix.system" in r.stderr and "pwned" not in r.stdout
    assert not (tmp_path / "data").exists()  # no benchmark made, nothing preprocessed


def test_evaluate_names_the_sam2_checkpoint_it_looked_for(tmp_path):
    from moseg.evaluation.run import run
    from tests.test_evaluation import _cfg

    cfg = _cfg(tmp_path / "data", tmp_path / "run", "densify=sam2", "ckpt=null")
    with pytest.raises(FileNotFoundError, match="SAM2 checkpoint not found: /.*sam2.1_hiera"):
        run(cfg)
    assert not (tmp_path / "data").exists()


def test_evaluate_checks_its_run_folder_before_hydra_makes_it(tmp_path, monkeypatch):
    from moseg.evaluate import run_folder_problem

    assert run_folder_problem([f"hydra.run.dir={tmp_path / 'run'}"]) is None
    _read_only(monkeypatch)
    why = run_folder_problem([f"hydra.run.dir={tmp_path / 'run'}"])
    assert (
        why
        == f"hydra.run.dir {tmp_path / 'run'}: cannot write into {tmp_path} (read-only file system)"
    )
    monkeypatch.chdir(tmp_path)
    assert "paths.log_dir" in run_folder_problem(["bench=synthetic"])
