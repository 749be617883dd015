"""benchmarks/gpu/check.sh (the GPU check) runs here too: in its smoke mode (tiny sizes, on the
CPU), it prints one JSON line whose CUDA parts are skipped with a reason and whose CPU-runnable
parts (training, the evaluation) give numbers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "benchmarks" / "gpu"
STATUSES = {"ok", "skipped", "failed", "timeout"}


def load_check():
    spec = importlib.util.spec_from_file_location("moseg_gpu_check", GPU / "check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[dict, subprocess.CompletedProcess, Path]:
    """One run of ``check.sh`` in smoke mode (set through its environment variable)."""
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PYTHON": sys.executable, "MOSEG_GPU_CHECK_SMOKE": "1"}
    cmd = ["bash", str(GPU / "check.sh"), "--davis", str(SHARED / "DAVIS2016"), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1]), proc, out


def test_hydra_values_parse_back_to_the_model_configs():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    check = load_check()
    parser = OverridesParser.create()
    for cfg in (check.DEPTH_LARGE, check.DINO_BASE, ["blackswan", "car-shadow"]):
        (over,) = parser.parse_overrides([f"x={check.hydra_value(cfg)}"])
        assert over.value() == cfg


def test_without_cuda_and_without_smoke_the_cuda_parts_are_skipped(tmp_path):
    check = load_check()
    args = check.argparse.Namespace(
        smoke=False, sequences=["blackswan"], ddp_cpu=False, parts=list(check.CAPS)
    )
    why = check.reasons_to_skip(args, {"cuda": False, "gpus": 0}, tmp_path)
    assert all("CUDA" in why[p] for p in ("train", "evaluate", "ddp")), why


@pytest.mark.slow
def test_smoke_run_prints_one_json_line_with_every_part(smoke):
    res, proc, out = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert res["gpu_check"] == 1 and res["smoke"] is True
    assert set(res["parts"]) == {"train", "evaluate", "ddp"}
    for name, part in res["parts"].items():
        assert part["status"] in STATUSES, (name, part)
        if part["status"] != "ok":
            assert part.get("reason"), (name, part)
    assert any("tracker=opencv" in n and "TAPIR" in n for n in res["notes"])
    assert json.loads((out / "check.json").read_text()) == res
    assert (out / "train.log").is_file()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallbacks")
def test_cuda_parts_are_skipped_with_a_reason_and_training_ran_on_the_cpu(smoke):
    res, _, _ = smoke
    assert res["cuda"] is False and res["gpus"] == 0
    ddp = res["parts"]["ddp"]
    assert ddp["status"] == "skipped" and "CUDA" in ddp["reason"]
    train = res["parts"]["train"]
    assert train["status"] == "ok" and train["device"] == "cpu"
    assert train["params"] > 3_000_000 and train["feature_dim"] == 768
    assert train["step_s"] > 0 and train["clips_per_s"] > 0
    assert train["precision"] == "bf16-mixed" and train["optimizer"] == "Adam"
    assert train["peak_gpu_mem_gb"] is None and "CUDA" in train["null_reasons"]["peak_gpu_mem_gb"]


@pytest.mark.slow
def test_evaluation_gives_seconds_per_frame_of_every_stage(smoke):
    res, _, out = smoke
    ev = res["parts"]["evaluate"]
    check = load_check()
    if ev["status"] == "skipped" and "preset=paper" in ev["reason"]:
        pytest.skip(f"the evaluation part needs preset=paper: {ev['reason']}")
    if ev["status"] == "skipped" and "DAVIS" in ev["reason"]:
        pytest.skip(f"real DAVIS 2016 not found under {SHARED}: {ev['reason']}")
    assert ev["status"] == "ok", ev
    assert ev["sequences"] == list(check.SEQUENCES) and ev["frames"] == 8  # 4 frames each
    assert (
        ev["command"].startswith("evaluate.py preset=paper ") and "tracker=opencv" in ev["command"]
    )
    for key in ("s_per_frame", "s_per_frame_warm"):
        stages = ev[key]
        assert set(stages) == set(check.STAGES), stages
        assert all(isinstance(v, float) and v >= 0 for v in stages.values()), stages
    assert ev["missing"] and (out / "evaluate_py.log").is_file()
