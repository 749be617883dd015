"""The commands the README promises: the demo and the benchmarks run and say what they should."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from moseg import demo
from moseg.config import compose
from moseg.io import list_sequences, validate

ROOT = Path(__file__).resolve().parents[1]


def test_demo_generates_validates_and_draws(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        demo.main(
            [
                "dataset.splits.train=2",
                "dataset.splits.val=1",
                "dataset.workers=1",
                "dataset.generator.num_tracks=300",
            ]
        )
        == 0
    )
    files = list_sequences(tmp_path / "outputs/demo/data")
    assert len(files) == 3 and all(validate(f) == [] for f in files)
    assert (tmp_path / "outputs/demo/preview.png").stat().st_size > 10_000


@pytest.mark.slow
def test_bench_script_prints_its_figure_as_json():
    proc = subprocess.run(
        [sys.executable, "benchmarks/perf/synthetic_speed.py", "--clips", "4", "--workers", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["synthetic_clips_per_s"] > 0


def test_prepare_config_composes():
    cfg = compose("prepare", ["dataset.splits.train=1"])
    assert cfg.dataset.name == "synthetic" and cfg.dataset.splits.train == 1
    assert cfg.dataset.root.endswith("/synthetic")


@pytest.mark.slow
def test_train_bench_script_prints_its_figures_as_json():
    proc = subprocess.run(
        [sys.executable, "benchmarks/perf/train_speed.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("train_step_s_paper_cpu", "train_clips_per_s_b8_cpu", "loader_samples_per_s"):
        assert figures[key] > 0
    assert "train_clips_per_s_gpu_bf16" in figures and "train_peak_gpu_mem_gb" in figures
    assert abs(figures["paper_params"] - 3.44e6) / 3.44e6 < 0.05
