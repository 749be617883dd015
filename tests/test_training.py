"""Configs, the LightningModule, train.py end to end (fast_dev_run, resume, CPU DDP, W&B)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from moseg.config import CONF_DIR, compose, mixture_names
from moseg.training import TrackClassifierModule, load_classifier, track_loss, warmup_cosine
from moseg.training.run import run

ROOT = Path(__file__).resolve().parents[1]


def tiny_overrides(tmp: Path, data_root: Path) -> list[str]:
    g = "data.sources.synthetic.prepare"
    return [
        f"paths.output_dir={tmp}",
        f"{g}.root={data_root}",
        f"{g}.splits.train=4",
        f"{g}.splits.val=2",
        f"{g}.workers=1",
        f"{g}.generator.height=64",
        f"{g}.generator.width=80",
        f"{g}.generator.num_frames=8",
        f"{g}.generator.num_tracks=300",
        f"{g}.generator.query_stride=4",
        f"{g}.generator.feature_dim=16",
        "data.sources.synthetic.sampling.num_tracks=[32,64]",
        "data.module.num_workers=0",
        "data.module.batch_size=2",
        "data.module.samples_per_epoch=8",
        "model=tiny",
        "logger=none",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "callbacks.progress_log.every_s=0",
    ]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


# ----------------------------------------------------------------------------------------------
def config_options(group: str) -> list[str]:
    base = CONF_DIR / group
    return sorted(
        str(p.relative_to(base).with_suffix(""))
        for p in base.rglob("*.yaml")
        if not p.name.startswith("_")
    )


def test_mixtures_are_composed_on_demand_not_stored():
    """No file per combination: data/ holds the shared part and the synthetic default only."""
    assert sorted(p.name for p in (CONF_DIR / "data").glob("*.yaml")) == [
        "_loader.yaml",
        "synthetic.yaml",
    ]
    assert len(mixture_names()) == 30  # every non-empty subset of 5 sources but synthetic alone


@pytest.mark.slow
def test_mixture_in_any_order_and_bad_names(tmp_path):
    cfg = compose("train", ["data=hoi4d+kubric", f"paths.output_dir={tmp_path}"])
    assert list(cfg.data.sources) == ["hoi4d", "kubric"] and cfg.data.name == "hoi4d+kubric"
    for bad in ("kubric+nope", "kubric+kubric"):
        with pytest.raises(Exception, match=re.escape(f"data/{bad}")):
            compose("train", [f"data={bad}", f"paths.output_dir={tmp_path}"])


@pytest.mark.parametrize("data", [*mixture_names(), "synthetic"])
@pytest.mark.slow
def test_every_data_mixture_composes_and_instantiates(data, tmp_path):
    cfg = compose("train", [f"data={data}", f"paths.output_dir={tmp_path}"])
    dm = hydra.utils.instantiate(cfg.data.module)
    names = {s.name for s in dm.sources}
    assert names == set(data.split("+"))
    if len(names) == 3 and "kubric" in names and "hoi4d" in names and "dynamic_replica" in names:
        w = {s.name: s.weight for s in dm.sources}
        assert w == {"kubric": 0.35, "dynamic_replica": 0.35, "hoi4d": 0.30}


@pytest.mark.slow
def test_mixture_weight_override_and_zero_weight(tmp_path):
    cfg = compose(
        "train",
        ["data=kubric+hoi4d", "data.sources.hoi4d.weight=0", f"paths.output_dir={tmp_path}"],
    )
    dm = hydra.utils.instantiate(cfg.data.module)
    assert [s.name for s in dm.sources] == ["kubric"]


@pytest.mark.parametrize(
    "over",
    [[f"model={m}"] for m in config_options("model") if "/" not in m]
    + [[f"experiment={e}"] for e in config_options("experiment")]
    + [[f"trainer={t}"] for t in config_options("trainer")]
    + [[f"logger={lg}"] for lg in config_options("logger")]
    + [["model/optim=adamw_cosine"]],
)
@pytest.mark.slow
def test_every_config_composes_and_instantiates(over, tmp_path):
    cfg = compose("train", [*over, f"paths.output_dir={tmp_path}"])
    module = hydra.utils.instantiate(cfg.model.module, val_sources=["a"])
    assert isinstance(module, TrackClassifierModule)
    x = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert x["run_name"]
    for node in ("callbacks", "logger"):
        for c in (cfg.get(node) or {}).values():
            if "WandbLogger" in c._target_:
                continue  # instantiating it starts a wandb run (done in the end-to-end test)
            hydra.utils.instantiate(c)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        cfg.trainer.accelerator, cfg.trainer.precision = "cpu", "32-true"  # patched for CPU
    hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[])


@pytest.mark.slow
def test_experiments_override_the_run_name(tmp_path):
    cfg = compose("train", ["experiment=ablation/no_depth", f"paths.output_dir={tmp_path}"])
    assert cfg.run_name == "small-no_depth-synthetic" and cfg.model.net.use_depth is False


@pytest.mark.slow
def test_paper_model_from_config_has_the_published_size(tmp_path):
    cfg = compose("train", ["experiment=paper", f"paths.output_dir={tmp_path}"])
    module = hydra.utils.instantiate(cfg.model.module, val_sources=["kubric"])
    n = sum(p.numel() for p in module.net.parameters())
    assert abs(n - 3.44e6) / 3.44e6 < 0.05
    assert cfg.trainer.precision == "bf16-mixed" and cfg.data.module.batch_size == 1


# ----------------------------------------------------------------------------------------------
def test_weighted_bce_matches_the_paper():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5, 0.0]])
    label = torch.tensor([[1, 0, 0, 0, -1]])
    loss = track_loss(logits, label)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    per = bce(logits[0, :4], torch.tensor([1.0, 0, 0, 0]), reduction="none")
    expected = (3.0 * per[0] + per[1:].sum()) / 4  # positives weighted by 3 neg / 1 pos
    assert torch.allclose(loss, expected)
    focal = track_loss(logits, label, kind="focal")
    assert focal < loss
    with pytest.raises(ValueError):
        track_loss(logits, label, kind="nope")


def test_warmup_cosine_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1, abs=0.01) and max(lrs) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_fast_dev_run(tmp_path, data_root):
    cfg = compose(
        "train", [*tiny_overrides(tmp_path / "run", data_root), "+trainer.fast_dev_run=true"]
    )
    run(cfg)
    assert (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.slow
def test_train_then_resume_continues_the_step_count(tmp_path, data_root, capsys):
    first = tmp_path / "first"
    cfg = compose("train", tiny_overrides(first, data_root))
    metrics = run(cfg)
    assert 0.0 <= metrics["val/track_ap"] <= 1.0 and "val/synthetic/iou70" in metrics
    summary = json.loads((first / "summary.json").read_text())
    assert summary["finished"] and summary["global_step"] == 4
    last = first / "checkpoints" / "last.ckpt"
    assert last.exists() and (first / "checkpoints" / "best.ckpt").exists()
    ck = torch.load(last, map_location="cpu", weights_only=False)
    assert ck["global_step"] == 4

    # ckpt_path=: a new run (its own folder and config) from the first one's training state
    second = tmp_path / "second"
    cfg = compose(
        "train", [*tiny_overrides(second, data_root), "trainer.max_epochs=2", f"ckpt_path={last}"]
    )
    run(cfg)
    ck2 = torch.load(second / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck2["global_step"] == 8 and ck2["epoch"] == 1
    # the network alone loads without Lightning or Hydra
    net = load_classifier(str(second / "checkpoints" / "last.ckpt"))
    assert net.cfg.dim == 16

    # `moseg runs` compares the two runs from their folders: the differing choices and metrics
    from moseg.cli import main

    png = tmp_path / "runs.png"
    assert main(["runs", str(tmp_path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "trainer.max_epochs" in out and "ckpt_path" in out and "best val/track_ap" in out
    assert str(first) in out and str(second) in out
    assert png.stat().st_size > 1000
    assert main(["runs", str(tmp_path / "none")]) == 1


def test_missing_source_stops_at_once(tmp_path):
    cfg = compose(
        "train",
        [
            "data=kubric+hoi4d",
            f"paths.data_dir={tmp_path}/nothing",
            f"paths.output_dir={tmp_path}/run",
            "logger=none",
        ],
    )
    with pytest.raises(SystemExit) as e:
        run(cfg)
    msg = str(e.value)
    assert f"{tmp_path}/nothing/kubric/train" in msg and "python -m data_prep.kubric" in msg


def _train_py(args: list[str], tmp: Path, env_extra: dict | None = None, timeout=600):
    env = {**os.environ, "PYTHONHASHSEED": "0", **(env_extra or {})}
    proc = subprocess.run(
        [sys.executable, "train.py", *args, f"hydra.run.dir={tmp}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_cpu_ddp_two_processes_with_wandb_offline(tmp_path, data_root):
    over = [o for o in tiny_overrides(tmp_path, data_root) if not o.startswith("paths.output_dir")]
    over = [o.replace("logger=none", "logger=wandb") for o in over]
    proc = _train_py(
        [*over, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"],
        tmp_path,
        {"WANDB_SILENT": "true"},
    )
    log = proc.stdout + proc.stderr
    assert "world_size: 2" in log or "distributed_backend=gloo" in log, log[-2000:]
    ck = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == 2  # 8 samples / 2 ranks / batch 2
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["finished"]


@pytest.mark.slow
def test_missing_checkpoint_stops_before_any_work(tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}/run", f"ckpt_path={tmp_path}/nope.ckpt"])
    with pytest.raises(SystemExit, match="nope.ckpt: no such checkpoint file"):
        run(cfg)
    assert not (tmp_path / "run").exists()


def test_val_metrics_keep_thresholds_apart():
    """iou50 and iou70 must not share state even when the first batch cannot tell them apart."""
    from moseg.training.module import val_metrics

    m = val_metrics("val/x/")
    m.update(torch.tensor([0.9, 0.1, 0.2]), torch.tensor([1, 0, 0]))  # nothing in [0.5, 0.7)
    m.update(torch.tensor([0.6, 0.6, 0.9]), torch.tensor([1, 0, 1]))
    out = m.compute()
    # at 0.5: TP 3, FP 1, FN 0 -> 0.75; at 0.7: TP 2, FP 0, FN 1 -> 2/3
    assert out["val/x/iou50"] == pytest.approx(0.75)
    assert out["val/x/iou70"] == pytest.approx(2 / 3)
