"""``moseg preprocess`` tells inputs from Hydra overrides by an explicit rule: an input exists as
a path, an override is what Hydra's override parser reads, ``--input PATH`` is always an input,
and an argument that is both or neither is an error naming it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from moseg.cli import ArgumentRuleError, split_inputs_and_overrides
from moseg.cli import main as moseg_main
from moseg.io import validate


def write_frames(folder: Path, n: int = 4, size: int = 48) -> Path:
    """``n`` frames of a textured square moving right over noise, as PNGs in ``folder``."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 255, (size, size + n * 2, 3), dtype=np.uint8)
    square = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
    for t in range(n):
        img = bg[:, t : t + size].copy()
        img[18:30, 8 + 3 * t : 20 + 3 * t] = square
        cv2.imwrite(str(folder / f"{t:05d}.png"), img)
    return folder


@pytest.fixture
def captured(monkeypatch):
    """Runs ``moseg preprocess`` up to the job runner: the config and jobs it would run."""
    import moseg.datasets.common as common

    seen: dict = {}

    def run_prepare(cfg, jobs, desc):
        seen["cfg"], seen["jobs"] = cfg, jobs
        return common.Report()

    monkeypatch.setattr(common, "run_prepare", run_prepare)
    return seen


def test_existing_paths_are_inputs_and_parsed_overrides_are_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "frames dir").mkdir()
    items = ["clip.mp4", "tracker=opencv", "frames dir", "+x.y=1", "~depth", "workers=1"]
    inputs, overrides = split_inputs_and_overrides(items)
    assert inputs == ["clip.mp4", "frames dir"]
    assert overrides == ["tracker=opencv", "+x.y=1", "~depth", "workers=1"]
    # '=' in a path that no override can be (absolute, or starting with ./) is fine
    (tmp_path / "a=b.mp4").write_bytes(b"")
    assert split_inputs_and_overrides([str(tmp_path / "a=b.mp4"), "./a=b.mp4"]) == (
        [str(tmp_path / "a=b.mp4"), "./a=b.mp4"],
        [],
    )


def test_an_argument_that_is_both_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tracker=opencv").mkdir()
    with pytest.raises(ArgumentRuleError, match=r"tracker=opencv: is both .* --input"):
        split_inputs_and_overrides(["tracker=opencv"])


@pytest.mark.parametrize(
    ("arg", "says"),
    [
        ("nope.mp4", "nope.mp4: does not exist, and is not a Hydra override"),
        ("--bogus", "--bogus: unrecognized option"),
        ("a b=c", "a b=c: does not exist"),
    ],
)
def test_an_argument_that_is_neither_is_an_error_naming_it(tmp_path, monkeypatch, arg, says):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArgumentRuleError, match=says):
        split_inputs_and_overrides([arg])


def test_preprocess_places_inputs_overrides_and_input_options(tmp_path, monkeypatch, captured):
    monkeypatch.chdir(tmp_path)
    write_frames(tmp_path / "frames")
    write_frames(tmp_path / "clip=2")  # also reads as an override: only --input takes it
    argv = ["preprocess", "frames", "--out", "out", "tracker=opencv", "workers=1"]
    assert moseg_main([*argv, "--input", "clip=2", "tracker.grid_px=12"]) == 0
    cfg = captured["cfg"]
    assert list(cfg.dataset.inputs) == ["frames", "clip=2"]
    assert cfg.tracker.grid_px == 12 and cfg.workers == 1
    assert sorted(job.name for job in captured["jobs"]) == ["clip=2", "frames"]


def test_preprocess_reports_a_misplaced_argument_by_name(tmp_path, monkeypatch, capsys, captured):
    monkeypatch.chdir(tmp_path)
    write_frames(tmp_path / "frames")
    (tmp_path / "workers=1").mkdir()
    assert moseg_main(["preprocess", "frames", "--out", "o", "workers=1"]) == 2
    assert "workers=1: is both an existing path and a Hydra override" in capsys.readouterr().err
    assert moseg_main(["preprocess", "frames", "--out", "o", "trackr"]) == 2
    assert "trackr: does not exist" in capsys.readouterr().err
    assert moseg_main(["preprocess", "--out", "o", "tracker=opencv"]) == 2
    assert "no input" in capsys.readouterr().err
    assert "cfg" not in captured  # nothing ran


def test_preprocess_video_out_then_overrides_runs(tmp_path):
    """``moseg preprocess VIDEO... --out DIR group=option ...``, the spelling the docs use."""
    a, b = write_frames(tmp_path / "a"), write_frames(tmp_path / "b")
    args = [str(a), str(b), "--out", str(tmp_path / "out"), "tracker=opencv", "workers=1"]
    assert moseg_main(["preprocess", *args, "tracker.grid_px=8", "features=none"]) == 0
    assert all(validate(tmp_path / "out" / f"{n}.h5") == [] for n in "ab")


def test_a_long_override_is_not_taken_for_a_path():
    from moseg.cli import split_inputs_and_overrides

    long = "features.config={" + ",".join(f"k{i}:{i}" for i in range(60)) + "}"
    assert split_inputs_and_overrides([long]) == ([], [long])
