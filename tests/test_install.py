"""The package works when installed (not editable) and run from another folder: configs and the
shipped classifier travel inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_runs_from_another_folder(tmp_path):
    wheels, target, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    # build from a copy, so that setuptools' build/ folder never lands in the repository
    src = tmp_path / "src"
    top = {".venv", ".git", "data", "outputs", "build", "moseg.egg-info"}

    def skip(folder: str, names: list[str]) -> list[str]:
        here = Path(folder) == ROOT
        return [n for n in names if (here and n in top) or n == "__pycache__"]

    shutil.copytree(ROOT, src, ignore=skip)
    pip = [sys.executable, "-m", "pip", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("moseg-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "moseg" / "conf" / "evaluate.yaml").is_file()
    assert (target / "moseg" / "checkpoints" / "classifier.ckpt").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("MOSEG_ROOT", None)

    def py(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )

    where = py("-c", "import moseg; print(moseg.__file__)")
    assert where.stdout.strip().startswith(str(target)), where.stdout  # the wheel, not the repo
    cfg = py("-m", "moseg.train", "data=kubric+hoi4d", "--cfg", "job")
    assert cfg.returncode == 0 and "name: kubric+hoi4d" in cfg.stdout, cfg.stderr
    run = py(
        "-m",
        "moseg.evaluate",
        "bench=synthetic",
        "bench.generate.num_clips=1",
        "wandb.enabled=false",
        "output.overlays=0",
        "hydra.run.dir=run",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / "run" / "metrics.json").is_file()
    # ckpt=auto found the classifier shipped inside the installed package
    assert str(target / "moseg" / "checkpoints" / "classifier.ckpt") in run.stdout + run.stderr
