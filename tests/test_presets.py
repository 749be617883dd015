"""One switch per command for the paper's pipeline (docs/presets.md): ``preset=paper`` for
preprocessing, evaluate.py and ``moseg segment``, ``experiment=paper`` for training.

Each is composed and checked against the paper's settings (../shared/docs/reference-method.md),
then run end to end on tiny data with random-initialised back-ends at small sizes: TAPIR through
a fake ``tapnet`` with the real output dictionary (not on the package registry), Depth Anything
and DINOv2 from tiny configs (DINOv2 768 wide, so the paper model's features fit), SAM2 hiera
tiny with random weights, and a paper classifier trained here for a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from moseg.config import compose, to_plain
from moseg.data.samples import SamplingSpec
from moseg.inference import check_preset_checkpoint
from moseg.models.checkpoint import CheckpointError
from tests.fakes import install_fake_tapnet

TINY_DINO_768 = (
    "{hidden_size:768,num_hidden_layers:1,num_attention_heads:12,intermediate_size:64,"
    "image_size:56,patch_size:14}"
)
TINY_DEPTH = (
    "{backbone_config:{model_type:dinov2,hidden_size:32,num_hidden_layers:4,"
    "num_attention_heads:2,intermediate_size:64,image_size:56,patch_size:14,"
    "out_indices:[1,2,3,4],reshape_hidden_states:false},reassemble_hidden_size:32,"
    "neck_hidden_sizes:[8,16,16,32],fusion_hidden_size:16,head_hidden_size:8}"
)
# the paper's query grids (reference-method.md: "paper grids ... on query frames every `step`
# frames (8 in the paper's evaluation, 30 for FBMS)")
PAPER_GRIDS = {
    "davis": (10, 8),
    "segtrackv2": (5, 8),
    "fbms59": (7, 30),
    "kubric": (8, 8),
    "hoi4d": (15, 8),
    "dynamic_replica": (32, 8),
}


def small_backends(tapir_ckpt: Path) -> list[str]:
    """Overrides that keep preset=paper's choices but make the models tiny and random."""
    return [
        f"tracker.checkpoint={tapir_ckpt}",
        "tracker.resize=[32,32]",
        "tracker.device=cpu",
        f"depth.config={TINY_DEPTH}",
        "depth.input_size=56",
        "depth.device=cpu",
        f"features.config={TINY_DINO_768}",
        "features.device=cpu",
    ]


@pytest.fixture
def tapir_ckpt(tmp_path, monkeypatch) -> Path:
    install_fake_tapnet(monkeypatch)
    path = tmp_path / "bootstapir.pt"
    torch.save({}, path)
    return path


# ---------------------------------------------------------------------------- composition -----
@pytest.mark.parametrize("dataset", sorted(PAPER_GRIDS))
def test_preprocess_preset_paper_is_the_papers_preprocessing(dataset):
    cfg = compose("prepare", ["preset=paper", f"dataset={dataset}"])
    assert cfg.preset_name == "paper"
    assert cfg.tracker._target_.endswith("TapirTracker") and list(cfg.tracker.resize) == [256, 256]
    assert (cfg.tracker.grid_px, cfg.tracker.query_every) == PAPER_GRIDS[dataset]
    assert cfg.tracker.pyramid_level == 1 and cfg.tracker.extra_convs  # BootsTAPIR
    assert cfg.depth.checkpoint == "depth-anything/Depth-Anything-V2-Large-hf"
    f = cfg.features
    assert f._target_.endswith("DinoV2Features") and f.checkpoint == "facebook/dinov2-base"
    assert (f.facet, f.layer, f.stride, f.input_size) == ("key", -1, 7, None)


@pytest.mark.slow
def test_paper_dinov2_grid_is_69_by_121_on_davis_frames():
    pytest.importorskip("transformers")
    from hydra.utils import instantiate

    cfg = compose("prepare", ["preset=paper"]).features
    cfg.config = OmegaConf.create(TINY_DINO_768)
    cfg.device = "cpu"
    model = instantiate(cfg)
    assert model.input_shape(480, 854) == (490, 854) and model.grid_shape(480, 854) == (69, 121)
    assert model.dim == 768


@pytest.mark.slow
def test_preset_cpu_is_each_commands_default():
    for name in ("prepare", "evaluate", "segment"):
        a, b = compose(name, []), compose(name, ["preset=cpu"])
        plain = [OmegaConf.to_container(c, resolve=False) for c in (a, b)]
        assert plain[0] == plain[1], name
        assert a.tracker._target_.endswith("FlowTracker") and a.depth._target_ is None
        assert a.features._target_.endswith("AppearanceFeatures")


@pytest.mark.parametrize("name", ["evaluate", "segment"])
def test_evaluate_and_segment_preset_paper(name):
    cfg = compose(name, ["preset=paper"])
    assert cfg.tracker._target_.endswith("TapirTracker")
    assert (cfg.tracker.grid_px, cfg.tracker.query_every) == (10, 8)  # DAVIS / own videos
    assert cfg.densify._target_.endswith("Sam2Densifier") and cfg.densify.device == "auto"
    assert cfg.device == "auto" and cfg.classifier.kind == "auto"
    # the classifier's windows come from the checkpoint
    m = cfg.classifier.model
    assert m.window is None and m.frame_stride is None and m.tracks_per_pass is None
    # the SAM2 checkpoint is named the same way in every command
    assert "checkpoint" in cfg.densify
    # any choice of the preset can still be overridden
    cpu = compose(name, ["preset=paper", "tracker=opencv", "densify=weight_free"])
    assert cpu.tracker._target_.endswith("FlowTracker") and cpu.tracker.grid_px == 10
    assert cpu.densify._target_.endswith("WeightFreeDensifier")


@pytest.mark.parametrize("bench", ["fbms59", "segtrackv2", "davis2016_moving"])
def test_evaluate_preset_paper_takes_the_benchmarks_grid(bench):
    cfg = compose("evaluate", ["preset=paper", f"bench={bench}"])
    fmt = {"davis2016_moving": "davis"}.get(bench, bench)
    assert (cfg.tracker.grid_px, cfg.tracker.query_every) == PAPER_GRIDS[fmt]


@pytest.mark.slow
def test_preset_paper_needs_a_classifier_checkpoint():
    for ckpt in ("auto", None):
        cfg = compose("evaluate", ["preset=paper"])
        cfg.ckpt = ckpt
        with pytest.raises(CheckpointError, match="preset=paper needs ckpt=PATH"):
            check_preset_checkpoint(cfg)
    cfg.ckpt = "/some/model.ckpt"
    check_preset_checkpoint(cfg)
    check_preset_checkpoint(compose("evaluate", []))  # the CPU path keeps ckpt=auto


def test_train_experiment_paper_is_exactly_the_papers_recipe():
    cfg = compose("train", ["experiment=paper"])
    d = cfg.data
    assert sorted(d.sources) == ["dynamic_replica", "hoi4d", "kubric"]
    weights = {k: s.weight for k, s in d.sources.items()}
    assert weights == {"kubric": 0.35, "dynamic_replica": 0.35, "hoi4d": 0.30}
    ranges = {k: SamplingSpec.from_dict(to_plain(s.sampling)) for k, s in d.sources.items()}
    assert ranges["kubric"].num_tracks_range == (512, 5000)
    assert ranges["hoi4d"].num_tracks_range == (1024, 6000)
    assert ranges["dynamic_replica"].num_tracks_range == (256, 920)
    assert (ranges["hoi4d"].frame_stride, ranges["dynamic_replica"].frame_stride) == (4, 4)
    assert ranges["kubric"].num_frames == 24
    # no augmentation, no gradient clipping, no cap on the positives' weight
    aug = to_plain(d.module.augment)
    assert aug == {
        "hflip": 0.0,
        "time_reverse": 0.0,
        "scale": [1.0, 1.0],
        "jitter_px": 0.0,
        "drop_points": 0.0,
        "drop_depth": 0.0,
        "drop_features": 0.0,
    }
    assert cfg.trainer.gradient_clip_val is None
    assert cfg.model.loss.kind == "weighted_bce" and cfg.model.loss.max_pos_weight is None
    opt = cfg.model.optim
    assert opt.optimizer._target_ == "torch.optim.Adam" and opt.scheduler is None
    assert (opt.optimizer.lr, opt.optimizer.weight_decay) == (1e-4, 1e-4)
    assert d.module.batch_size == 1 and d.module.samples_per_epoch == 8000
    assert cfg.trainer.max_epochs == 5 and cfg.trainer.precision == "bf16-mixed"
    net = cfg.model.net
    assert net.semantic_mode == "ffn" and net.semantic_dim == 768 and net.use_depth
    # moseg's defaults, which the preset switches off, are still there as switches
    default = compose("train", [])
    assert default.trainer.gradient_clip_val == 1.0 and default.data.module.augment.hflip > 0


def test_track_counts_drawn_from_a_range():
    spec = SamplingSpec.from_dict({"num_tracks": [7], "num_tracks_range": [100, 120]})
    rng = np.random.default_rng(0)
    drawn = {spec.draw_num_tracks(rng) for _ in range(400)}
    assert drawn == set(range(100, 121)) and spec.max_tracks == 120
    assert spec.fixed(5).draw_num_tracks(rng) == 5
    with pytest.raises(ValueError, match="num_tracks_range"):
        SamplingSpec.from_dict({"num_tracks_range": [50, 10]})


# ------------------------------------------------------------------------------- end to end ----
def _write_sources(root: Path) -> None:
    """Tiny contract files for the paper's three sources, with 768-d features and depth."""
    from moseg.datasets.synthetic import generate_split
    from tests.conftest import tiny_config

    cfg = tiny_config(feature_dim=768, num_frames=12)
    for i, src in enumerate(("kubric", "dynamic_replica", "hoi4d")):
        generate_split(root / src, "train", 2, cfg, seed=i, workers=1, progress=False)
        generate_split(root / src, "val", 1, cfg, seed=10 + i, workers=1, progress=False)


@pytest.fixture(scope="module")
def paper_checkpoint(tmp_path_factory) -> Path:
    """``python train.py experiment=paper`` for two steps on CPU (tiny files)."""
    from moseg.training.run import run as train_run

    data, out = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("train")
    _write_sources(data)
    cfg = compose(
        "train",
        [
            "experiment=paper",
            f"paths.data_dir={data}",
            f"paths.output_dir={out}",
            "trainer=cpu",
            "trainer.max_epochs=1",
            "trainer.precision=32-true",
            "data.module.samples_per_epoch=2",
            "data.module.num_workers=0",
            "logger=none",
            "callbacks.progress_log.every_s=0",
        ],
    )
    metrics = train_run(cfg)
    assert "val/track_ap" in metrics
    return out / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_train_experiment_paper_runs_and_records_its_windows(paper_checkpoint):
    from moseg.inference.classify import ModelClassifier
    from moseg.models.checkpoint import load_classifier_checkpoint

    loaded = load_classifier_checkpoint(paper_checkpoint)
    assert loaded.net.cfg.semantic_dim == 768
    trained = loaded.meta["trained_on"]
    # the largest weight is shared by Kubric (stride 1) and Dynamic Replica (4): the smaller
    assert trained["window"] == 24 and trained["frame_stride"] == 1
    assert trained["max_tracks"] == 6000
    assert trained["sources"]["hoi4d"] == {
        "weight": 0.3,
        "num_frames": 24,
        "frame_stride": 4,
        "max_tracks": 6000,
    }
    clf = ModelClassifier(loaded)
    assert (clf.window, clf.frame_stride, clf.tracks_per_pass) == (24, 1, 6000)
    clf = ModelClassifier(loaded, window=8, frame_stride=2, tracks_per_pass=64)
    assert (clf.window, clf.frame_stride, clf.tracks_per_pass) == (8, 2, 64)


def test_strided_inference_windows():
    from moseg.inference.classify import centred_window

    for T, q, L in [(30, 0, 24), (30, 29, 24), (30, 13, 8), (5, 2, 24)]:  # stride 1: as before
        lo = int(np.clip(q - min(L, T) // 2, 0, T - min(L, T)))
        np.testing.assert_array_equal(centred_window(T, q, L), np.arange(lo, lo + min(L, T)))
    np.testing.assert_array_equal(centred_window(100, 40, 6, 4), [28, 32, 36, 40, 44, 48])
    np.testing.assert_array_equal(centred_window(100, 2, 4, 4), [2, 6, 10, 14])
    np.testing.assert_array_equal(centred_window(10, 9, 24, 4), [1, 5, 9])


@pytest.mark.slow
def test_preprocess_preset_paper_runs(tapir_ckpt, tmp_path):
    """``moseg preprocess VIDEO --out DIR preset=paper`` (tiny random back-ends)."""
    pytest.importorskip("transformers")
    from moseg.cli import main as cli
    from tests.test_segment import make_clip, write_folder

    frames, _ = make_clip(T=10, H=60, W=80)
    folder = write_folder(tmp_path / "clip", frames)
    out = tmp_path / "out"
    args = ["preprocess", str(folder), "--out", str(out), "preset=paper"]
    assert cli([*args, *small_backends(tapir_ckpt)]) == 0
    with h5py.File(next(out.glob("*.h5")), "r") as f:
        prov = json.loads(f.attrs["provenance"])
        qf = f["query_frame"][:]
        assert f["features"].shape[1] == 768 and "depth" in f
    assert prov["tracker"]["name"] == "tapir" and prov["depth"]["name"] == "depth_anything_v2"
    assert prov["features"]["name"] == "dinov2" and prov["features"]["input_size"] is None
    # the paper's DAVIS grid: 10 px, query frames every 8 -> 0 and 8, 6 x 8 points each
    assert sorted(set(qf.tolist())) == [0, 8] and (qf == 0).sum() == 6 * 8


@pytest.mark.slow
def test_evaluate_preset_paper_runs(paper_checkpoint, tapir_ckpt, tmp_path):
    """``evaluate.py preset=paper ckpt=... densify.checkpoint=...`` on one generated clip."""
    pytest.importorskip("transformers")
    pytest.importorskip("sam2")
    from moseg.evaluation.run import run
    from tests.test_evaluation import _cfg

    cfg = _cfg(
        tmp_path / "data",
        tmp_path / "run",
        "preset=paper",
        f"ckpt={paper_checkpoint}",
        *small_backends(tapir_ckpt),
        "densify.checkpoint=null",
        "densify.model=sam2.1_hiera_t",
        "densify.image_size=128",
        "bench.generate.num_clips=1",
        "bench.generate.generator.num_frames=8",
    )
    res = run(cfg)
    assert len(res["sequences"]) == 1 and 0.0 <= res["overall"]["JF"] <= 1.0
    rec = json.loads(next((tmp_path / "run" / "sequences").glob("*.json")).read_text())
    assert rec["classifier"] == "model" and rec["densifier"] == "sam2"


@pytest.mark.slow
def test_segment_preset_paper_runs(paper_checkpoint, tapir_ckpt, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("sam2")
    from moseg.cli import main as cli
    from tests.test_segment import make_clip, write_folder

    frames, _ = make_clip(T=8, H=60, W=80)
    folder = write_folder(tmp_path / "clip", frames)
    out = tmp_path / "seg"
    args = ["segment", str(folder), "--out", str(out), "preset=paper", f"ckpt={paper_checkpoint}"]
    args += [*small_backends(tapir_ckpt), "densify.checkpoint=null"]
    args += ["densify.model=sam2.1_hiera_t", "densify.image_size=128"]
    assert cli(args) == 0
    info = json.loads((out / "objects.json").read_text())
    assert info["method"] == "sam2" and info["mode"] == "automatic"
    assert len(list((out / "masks").glob("*.png"))) == 8


@pytest.mark.slow
def test_segment_and_evaluate_refuse_preset_paper_without_a_checkpoint(tmp_path, capsys):
    from moseg.cli import main as cli
    from moseg.evaluation.run import run
    from tests.test_evaluation import _cfg
    from tests.test_segment import make_clip, write_folder

    frames, _ = make_clip(T=4, H=48, W=64)
    folder = write_folder(tmp_path / "clip", frames)
    args = ["segment", str(folder), "--out", str(tmp_path / "o"), "preset=paper"]
    assert cli([*args, "densify.checkpoint=null"]) != 0
    assert "preset=paper needs ckpt=PATH" in capsys.readouterr().err
    assert not (tmp_path / "o" / "masks").exists()
    with pytest.raises(CheckpointError, match="preset=paper needs ckpt=PATH"):
        run(_cfg(tmp_path / "data", tmp_path / "run", "preset=paper"))
    assert not (tmp_path / "data").exists()  # nothing made before the check


@pytest.mark.slow
def test_weight_files_are_found_the_same_way_from_any_folder(tmp_path, monkeypatch):
    """SAM2's, TAPIR's and CoTracker's weight files resolve to one absolute folder, whatever
    the folder a command runs from (the classifier's is the package's); MOSEG_WEIGHTS moves it."""
    from moseg.config import weights_dir

    monkeypatch.delenv("MOSEG_ROOT", raising=False)
    monkeypatch.delenv("MOSEG_WEIGHTS", raising=False)
    seen = []
    for where in (tmp_path, Path(__file__).parent):
        monkeypatch.chdir(where)
        cfg = compose("evaluate", ["densify=sam2", "tracker=tapir"])
        seen.append((cfg.densify.checkpoint, cfg.tracker.checkpoint))
    assert seen[0] == seen[1]
    assert seen[0][0] == str(weights_dir() / "sam2.1_hiera_large.pt")
    assert Path(seen[0][0]).is_absolute()
    paper = compose("evaluate", ["preset=paper"]).densify
    assert (paper.model, Path(paper.checkpoint).name) == ("sam2_hiera_l", "sam2_hiera_large.pt")
    monkeypatch.setenv("MOSEG_WEIGHTS", str(tmp_path / "w"))
    cfg = compose("segment", ["densify=sam2"])
    assert cfg.densify.checkpoint == str(tmp_path / "w" / "sam2.1_hiera_large.pt")
