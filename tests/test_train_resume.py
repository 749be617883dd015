"""Resuming a run (in its folder, with its config) and training on the files its config names."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from moseg.config import compose
from moseg.data import MissingSourceError, Source
from moseg.training.resume import resume_config
from moseg.training.run import run
from tests.test_training import ROOT, tiny_overrides


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root) -> Path:
    """A finished run of one epoch (4 steps); tests that change it train their own."""
    out = tmp_path_factory.mktemp("trained") / "run"
    run(compose("train", tiny_overrides(out, data_root)))
    return out


def start(overrides: list[str]) -> dict[str, float]:
    """``run`` as ``train.py`` calls it: composed overrides, also passed on for resuming."""
    return run(compose("train", overrides), overrides=overrides)


@pytest.mark.slow
def test_resume_goes_on_with_the_run_in_its_folder_with_its_config(tmp_path, data_root):
    first = tmp_path / "run"
    run(compose("train", tiny_overrides(first, data_root)))
    config = yaml.safe_load((first / "config.yaml").read_text())
    manifest = (first / "data_manifest.json").read_text()

    # the documented command: the run folder and a larger max_epochs, nothing else
    proc = subprocess.run(
        [sys.executable, "train.py", f"resume={first}", "trainer.max_epochs=2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ck = torch.load(first / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ck["global_step"] == 8 and ck["epoch"] == 1
    summary = json.loads((first / "summary.json").read_text())
    assert [h["step"] for h in summary["history"]] == [4, 8] and summary["finished"]
    # the run's config, with the override on top; Hydra logged into the run folder
    config["trainer"]["max_epochs"] = 2
    assert yaml.safe_load((first / "config.yaml").read_text()) == config
    assert (first / "train.log").exists() and not (first / ".hydra").exists()
    assert (first / "data_manifest.json").read_text() == manifest


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_stops_in_one_sentence_before_any_data(tmp_path, trained):
    last = trained / "checkpoints" / "last.ckpt"
    # resuming with an override that changes the architecture
    with pytest.raises(SystemExit) as e:
        start([f"resume={trained}", "model=small"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"error: {last}: its model (tiny) does not fit")
    assert "differ in shape" in msg and "model=small" in msg
    # a new run from another architecture's checkpoint: stopped before any data is made
    nodata = tmp_path / "nodata"
    over = [*tiny_overrides(tmp_path / "new", nodata), "model=small", f"ckpt_path={last}"]
    with pytest.raises(SystemExit) as e:
        start(over)
    msg = str(e.value)
    assert "\n" not in msg and "differ in shape" in msg and f"resume={trained}" in msg
    assert not nodata.exists() and not (tmp_path / "new").exists()
    # what resume= accepts
    with pytest.raises(SystemExit, match="no such run folder or checkpoint"):
        start([f"resume={tmp_path}/nope"])
    with pytest.raises(SystemExit, match="cannot be applied to a run"):
        start([f"resume={last}", "experiment=paper"])


@pytest.mark.slow
def test_overrides_on_resume_reach_the_values_derived_from_them(trained):
    over = [f"resume={trained}", "data.sources.synthetic.weight=0.5", "trainer.max_epochs=3"]
    cfg, ckpt, given = resume_config(compose("train", over), over)
    assert ckpt == trained / "checkpoints" / "last.ckpt" and given == over[1:]
    assert cfg.data.module.sources.synthetic.weight == 0.5  # a copy of data.sources
    assert cfg.trainer.max_epochs == 3 and cfg.model.name == "tiny"
    assert cfg.paths.output_dir == str(trained)
    saved = OmegaConf.load(trained / "config.yaml")
    assert cfg.data.module.batch_size == saved.data.module.batch_size == 2


def test_a_generated_source_reads_only_the_clips_its_config_names(tmp_path):
    """Clips another config added to the folder are not trained on (issue 21)."""
    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(6):
        (folder / f"synth_train_{i:06d}.h5").touch()
    src = Source.from_cfg("synthetic", {"root": tmp_path, "prepare": {"splits": {"train": 4}}})
    assert [p.name for p in src.files("train")] == [f"synth_train_{i:06d}.h5" for i in range(4)]
    (folder / "synth_train_000002.h5").unlink()
    with pytest.raises(MissingSourceError, match="1 of the 4 clips .* synth_train_000002.h5"):
        src.files("train")


@pytest.mark.slow
def test_a_run_that_finds_other_files_than_it_recorded_stops(tmp_path, trained, data_root):
    """A converted source (all *.h5 of its split folders): the run records them in
    data_manifest.json; a later start in that folder that finds others stops, naming them."""
    conv = tmp_path / "converted"
    for split in ("train", "val"):
        shutil.copytree(data_root / split, conv / split, ignore=shutil.ignore_patterns("*.json"))
    out = tmp_path / "run"
    over = [
        *tiny_overrides(out, data_root),
        "data.sources.synthetic.prepare=null",
        f"data.sources.synthetic.root={conv}",
        "data.sources.synthetic.feature_dim=16",
        "+trainer.fast_dev_run=true",
    ]
    start(over)
    recorded = json.loads((out / "data_manifest.json").read_text())
    files = recorded["sources"]["synthetic"]["splits"]["train"]
    assert [f["name"] for f in files] == [f"synth_train_{i:06d}.h5" for i in range(4)]

    shutil.copy(conv / "train" / "synth_train_000000.h5", conv / "train" / "extra.h5")
    with pytest.raises(SystemExit) as e:
        start(over)
    msg = str(e.value)
    assert "\n" not in msg and str(out / "data_manifest.json") in msg
    assert f"synthetic/train in {conv}: 1 added (extra.h5)" in msg
    (conv / "train" / "extra.h5").unlink()
    os.utime(conv / "val" / "synth_val_000001.h5", ns=(0, 0))
    with pytest.raises(SystemExit, match=r"synthetic/val in .*: 1 changed \(synth_val_000001.h5\)"):
        start(over)
