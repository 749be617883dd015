"""`make bench` runs every script of ``benchmarks/run_all.py``'s list without arguments: each must
parse an empty command line (no required argument), answer ``--help`` with exit code 0 (so its
imports work from the installed package) and leave ``sys.path`` alone. Nothing heavy is run:
``--help`` exits inside argparse, before a script's work starts."""

from __future__ import annotations

import argparse
import importlib.util
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def bench_scripts() -> list[Path]:
    """``benchmarks/run_all.py``'s own discovery (the list `make bench` runs)."""
    spec = importlib.util.spec_from_file_location("moseg_bench_run_all", BENCH / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    return run_all.scripts()


SCRIPTS = bench_scripts()


def test_run_all_finds_the_figure_scripts_and_no_tool():
    names = [p.relative_to(BENCH).as_posix() for p in SCRIPTS]
    assert "davis2016/davis_moving.py" in names and "release/parity.py" in names
    assert not [n for n in names if n.startswith(("tools/", "gpu/")) or "/" not in n]
    tools = {p.name for p in (BENCH / "tools").glob("*.py")}
    assert {"tune_decision.py", "worst_overlays.py", "track_ap.py"} <= tools


def test_no_benchmark_script_edits_sys_path():
    offenders = [str(p) for p in sorted(BENCH.rglob("*.py")) if "sys.path" in p.read_text()]
    assert not offenders, f"import the installed moseg instead: {offenders}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(BENCH).as_posix())
def test_bench_script_needs_no_argument_and_answers_help(script, monkeypatch, capsys):
    # a script that never parses its command line would run the whole benchmark on --help
    assert "parse_args(" in script.read_text(), f"{script}: take options with argparse"
    required: list[str] = []
    parse = argparse.ArgumentParser.parse_known_args

    def parse_known_args(self, args=None, namespace=None):
        # argparse marks a ``nargs="*"`` positional required, yet zero values satisfy it
        free = ("*", "?", argparse.REMAINDER)
        required.extend(a.dest for a in self._actions if a.required and a.nargs not in free)
        return parse(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_args)
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    # in this process, as `python SCRIPT --help` would run it (the imports are shared with the
    # other tests, so this costs next to nothing)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_.value.code in (0, None), f"{script} --help exited {exit_.value.code}"
    assert capsys.readouterr().out.startswith("usage:")
    assert not required, f"{script} requires {required}: `make bench` passes no argument"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(BENCH).as_posix())
def test_bench_script_stores_its_figures_through_record(script):
    # run without arguments, a figure script keeps its figures in docs/figures/<stem>.json
    # through benchmarks/record.py's store(), which also re-renders the docs that show them
    assert '["store"](__file__' in script.read_text(), f"{script}: call record.py's store()"


@pytest.mark.slow
def test_davis_click_redoes_a_sequence_run_with_other_settings(tmp_path, monkeypatch, capsys):
    """A rerun after a settings change redoes the benchmark's own outputs instead of stopping
    on moseg segment's guard; a folder that is not a moseg segmentation is still refused."""
    import cv2

    from moseg.segmentation.run import SegmentError

    seq = tmp_path / "data" / "TINY"
    frames, masks = seq / "JPEGImages" / "480p" / "sq", seq / "Annotations" / "480p" / "sq"
    frames.mkdir(parents=True)
    masks.mkdir(parents=True)
    rng = np.random.default_rng(0)
    bg = rng.integers(60, 200, size=(48, 64, 3)).astype(np.uint8)
    for t in range(4):
        img, m = bg.copy(), np.zeros((48, 64), np.uint8)
        img[14:30, 10 + 3 * t : 26 + 3 * t] = (220, 40, 40)
        m[14:30, 10 + 3 * t : 26 + 3 * t] = 255
        cv2.imwrite(str(frames / f"{t:05d}.jpg"), img)
        cv2.imwrite(str(masks / f"{t:05d}.png"), m)
    script = BENCH / "segment" / "davis_click.py"
    base = [str(script), "--data", str(tmp_path / "data"), "--bench", "TINY"]
    base += ["--out", str(tmp_path / "out")]

    def run(*extra: str) -> str:
        monkeypatch.setattr(sys, "argv", [*base, *extra])
        with pytest.raises(SystemExit) as e:
            runpy.run_path(str(script), run_name="__main__")
        assert e.value.code == 0
        return capsys.readouterr().out

    assert "redoing" not in run()
    assert "redoing" not in run()  # same settings: resumed
    assert "holds a run with other settings; redoing it" in run("--set", "densify.st_bins=16")
    (tmp_path / "out2" / "sq").mkdir(parents=True)
    (tmp_path / "out2" / "sq" / "mine.txt").write_text("not moseg's")
    base[-1] = str(tmp_path / "out2")
    with pytest.raises(SegmentError, match="holds no moseg segmentation"):
        run()
    assert (tmp_path / "out2" / "sq" / "mine.txt").read_text() == "not moseg's"
