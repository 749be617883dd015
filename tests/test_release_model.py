"""The release's classifier (``model=release``): parity with the release's own outputs, loading
either checkpoint format, ``moseg import-release``, and the errors a bad checkpoint gets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from moseg.cli import main as cli_main
from moseg.inference.classify import (
    ModelClassifier,
    ReleaseModelClassifier,
    build_classifier,
    classify_tracks,
)
from moseg.models.checkpoint import (
    RELEASE_DECISION,
    CheckpointError,
    import_release,
    load_classifier_checkpoint,
)
from moseg.models.parity import fixture_parity
from moseg.models.release import (
    ReleaseClassifier,
    ReleaseConfig,
    nearest_lookup,
    release_encoding,
    release_key,
    release_state_dict,
    rename_release_key,
)
from tests.conftest import SHARED

FIXTURE = SHARED.parent / "fixtures" / "segany_release"
needs_fixture = pytest.mark.skipif(
    not (FIXTURE / "release_random_init.pth").is_file(),
    reason=f"the release fixture is not at {FIXTURE} (../shared is absent)",
)
RELEASE_PTH = FIXTURE / "release_random_init.pth"


# ------------------------------------------------------------------------------ parity -------
@needs_fixture
@pytest.mark.slow
def test_release_forward_matches_the_release_on_every_fixture_case():
    res = fixture_parity(FIXTURE)
    assert res["cases"] == 3
    for row in res["by_case"]:
        assert set(row) >= {"prob", "logit", "motion_feat"}
    assert res["release_forward_max_abs_diff"] <= 1e-5, res


@needs_fixture
@pytest.mark.slow
def test_parity_fails_when_the_weights_are_wrong(tmp_path):
    """The check can fail: one perturbed weight breaks it."""
    ck = torch.load(RELEASE_PTH, weights_only=True)
    ck["model_state_dict"]["decoder.output_layer.bias"] += 0.01
    torch.save(ck, tmp_path / "moved.pth")
    for case in FIXTURE.glob("case*.npz"):
        (tmp_path / case.name).write_bytes(case.read_bytes())
    assert fixture_parity(tmp_path)["release_forward_max_abs_diff"] > 1e-3


# ---------------------------------------------------------------------- building blocks -------
def test_nearest_lookup_uses_the_release_flat_index():
    H, W, T = 4, 5, 2
    maps = torch.arange(H * W * T, dtype=torch.float32).reshape(T, H, W).permute(1, 2, 0)
    # x=0.5, y=0.3 -> row int(1.2)=1, col int(2.5)=2; x=-0.5, y=-0.3 -> int(-1.2)=-1 ... -> 0
    traj = torch.tensor([[[0.5, 0.5], [-0.5, 0.99]], [[0.3, 0.3], [-0.3, 0.99]]])  # [2, N=2, T]
    got = nearest_lookup(maps, traj)
    want0 = [maps[1, 2, 0], maps[1, 2, 1]]
    assert got[0].tolist() == [float(v) for v in want0]
    assert got[1, 0] == maps[0, 0, 0]  # negative index clamped to pixel (0, 0)
    assert got[1, 1] == maps[3, 4, 1]  # int(3.96)=3, int(4.95)=4


def test_release_encoding_order_and_no_pi():
    v = torch.tensor([[0.25, -0.5]])
    e = release_encoding(v, 2)
    assert e.shape == (1, 10)
    want = [0.25, -0.5, *np.sin([0.25, -0.5]), *np.cos([0.25, -0.5])]
    want += [*np.sin([0.5, -1.0]), *np.cos([0.5, -1.0])]
    assert np.allclose(e[0].numpy(), want, atol=1e-7)


def _batch(N=12, T=6, H=10, W=14, seed=0, dino=768):
    g = torch.Generator().manual_seed(seed)
    return {
        "traj": torch.rand(1, 2, N, T, generator=g) * 2 - 1,
        "mask": (torch.rand(1, 1, N, T, generator=g) < 0.3).float(),
        "depth": torch.rand(1, 1, H, W, T, generator=g),
        "visib_value": torch.rand(1, 1, N, T, generator=g),
        "confi_value": torch.rand(1, 1, N, T, generator=g),
        "dino": torch.randn(1, dino, N, 1, generator=g),
    }


def test_release_quirks_are_kept():
    torch.manual_seed(0)
    net = ReleaseClassifier().eval()
    assert net.cfg.point_channels() == 88  # 42 + 42 + depth 2 + visibility, confidence
    b = _batch()
    b["mask"][0, 0, 3] = 1.0  # track 3 never seen: its first step becomes a key
    with torch.inference_mode():
        out = net(b)
        assert torch.isfinite(out["prob"]).all()
        # an invisible point's position still reaches the model (the release feeds it)
        inv = (b["mask"][0, 0] > 0).nonzero()[0]
        b2 = {k: v.clone() for k, v in b.items()}
        b2["traj"][0, :, inv[0], inv[1]] += 0.3
        assert not torch.allclose(net(b2)["prob"], out["prob"])
        # batches of two clips are run clip by clip
        both = {k: torch.cat([b[k], b[k]]) for k in b}
        assert torch.allclose(net(both)["prob"][1], out["prob"][0])


def test_release_state_dict_names_map_one_to_one():
    torch.manual_seed(0)
    ours = set(ReleaseClassifier().state_dict())
    assert rename_release_key("joint_encoder.input_fc1.weight") == "motion.conv1.weight"
    assert (
        rename_release_key("joint_encoder.transformer_model.decoder.layers.1.norm4.bias")
        == "motion.decoder.1.norm_tracks.bias"
    )
    assert rename_release_key("decoder.decoders.3.ffn.2.weight") == "head.decoder.3.fc2.weight"
    assert rename_release_key("something.else") is None
    assert "motion.decoder.1.norm_tracks.bias" in ours
    # the inverse gives back every name, and a round trip loads the same weights
    assert all(rename_release_key(release_key(k)) == k for k in ours)
    net = ReleaseClassifier().eval()
    back = ReleaseClassifier()
    from moseg.models.release import load_release_state

    load_release_state(back, release_state_dict(net))
    b = _batch()
    with torch.inference_mode():
        assert torch.equal(net(b)["prob"], back.eval()(b)["prob"])


def test_oanet_and_unknown_flags_are_refused():
    with pytest.raises(ValueError, match="OANet"):
        ReleaseConfig(oanet=True)
    with pytest.raises(ValueError, match="unknown release-model options"):
        ReleaseConfig.from_dict({"dino_latr": True})


def test_dino_width_is_checked():
    net = ReleaseClassifier().eval()
    with pytest.raises(ValueError, match="48 channels.*768"):
        net(_batch(dino=48))


# ---------------------------------------------------------------------- checkpoint files -------
@needs_fixture
@pytest.mark.slow
def test_both_formats_load_and_are_told_apart(tmp_path):
    direct = load_classifier_checkpoint(RELEASE_PTH)
    assert (direct.source_format, direct.architecture) == ("release", "release")
    assert "SegAnyMo release checkpoint" in direct.describe(RELEASE_PTH)
    dst = tmp_path / "imported.ckpt"
    meta = import_release(RELEASE_PTH, dst)
    assert meta["architecture"] == "release" and meta["release"]["time_att"] is True
    assert meta["decision"]["thresholds"] == RELEASE_DECISION["thresholds"]
    assert meta["inputs"]["depth_lookup"] == "release" and meta["imported_from"]["epoch"] == 5
    imported = load_classifier_checkpoint(dst)
    assert (imported.source_format, imported.architecture) == ("moseg", "release")
    b = _batch()
    with torch.inference_mode():
        assert torch.equal(direct.net(b)["prob"], imported.net(b)["prob"])
    # a bare release state dict is a release checkpoint too
    sd = torch.load(RELEASE_PTH, weights_only=True)["model_state_dict"]
    torch.save(sd, tmp_path / "bare.pth")
    assert load_classifier_checkpoint(tmp_path / "bare.pth").architecture == "release"


@needs_fixture
@pytest.mark.slow
def test_import_release_command(tmp_path, capsys):
    dst = tmp_path / "out.ckpt"
    assert cli_main(["import-release", str(RELEASE_PTH), str(dst), "--thresholds", "0.9,0.8"]) == 0
    out = capsys.readouterr().out
    assert "release architecture" in out and "[0.9, 0.8]" in out
    assert load_classifier_checkpoint(dst).decision["thresholds"] == [0.9, 0.8]
    # already ours: nothing to import
    assert cli_main(["import-release", str(dst), str(tmp_path / "again.ckpt")]) == 2
    assert "already a moseg checkpoint" in capsys.readouterr().err
    # wrong flags for these weights: one clear sentence
    assert (
        cli_main(["import-release", str(RELEASE_PTH), str(tmp_path / "x"), "--flag", "depth=false"])
        == 2
    )
    err = capsys.readouterr().err
    assert "88 input channels" in err and "86" in err
    assert not (tmp_path / "x").exists()


def test_bad_checkpoint_files_get_one_line_naming_the_file(tmp_path):
    cases = {
        "random.pth": np.random.default_rng(0).bytes(3000),
        "text.pth": b"hello, not a checkpoint\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"a": torch.zeros(2)}, "other": 1}, good)
    (tmp_path / "truncated.pth").write_bytes(good.read_bytes()[:200])
    import functools

    torch.save(
        {"moseg": {}, "state_dict": {}, "fn": functools.partial(print)}, tmp_path / "code.pth"
    )
    expect = {
        "random.pth": "not a readable PyTorch checkpoint",
        "text.pth": "not a readable PyTorch checkpoint",
        "truncated.pth": "not a readable PyTorch checkpoint",
        "good.pth": "neither a moseg checkpoint",
        "code.pth": "functools.partial",
        "missing.pth": "not found",
    }
    for name, words in expect.items():
        with pytest.raises(CheckpointError) as e:
            load_classifier_checkpoint(tmp_path / name)
        msg = str(e.value)
        assert str(tmp_path / name) in msg and words in msg and "\n" not in msg, msg


@needs_fixture
def test_missing_and_extra_keys_are_listed(tmp_path):
    ck = torch.load(RELEASE_PTH, weights_only=True)
    sd = ck["model_state_dict"]
    del sd["decoder.output_layer.bias"]
    sd["decoder.extra.weight"] = torch.zeros(1)
    torch.save(ck, tmp_path / "keys.pth")
    with pytest.raises(CheckpointError) as e:
        load_classifier_checkpoint(tmp_path / "keys.pth")
    msg = str(e.value)
    assert "decoder.output_layer.bias" in msg and "decoder.extra.weight" in msg
    assert "missing" in msg and "unexpected" in msg


# ------------------------------------------------------------------- inference protocol -------
def _release_seq(N=120, T=10, H=48, W=64, C=768, depth=True):
    from moseg.io import Sequence

    rng = np.random.default_rng(0)
    tracks = rng.uniform([0, 0], [W, H], (N, T, 2)).astype(np.float32)
    vis = rng.random((N, T)) > 0.2
    vis[0] = False  # never seen: not classified
    vis[1:, 4] = False
    vis[5, 4] = True  # frame 4: one visible track
    seq = Sequence(
        name="r",
        tracks=tracks,
        visibility=vis,
        confidence=rng.random((N, T)).astype(np.float16),
        query_frame=np.repeat([0, 5], N // 2).astype(np.int32),
        label=np.zeros(N, np.int8),
        height=H,
        width=W,
        features=rng.normal(size=(N, C)).astype(np.float16),
    )
    if depth:
        seq.depth = rng.random((T, 12, 16)).astype(np.float16)
        seq.depth_kind = "disparity"
        seq.depth_raw_range = (0.0, 1.0)
    return seq


@needs_fixture
def test_release_classifier_follows_the_release_inference():
    clf = build_classifier("model", str(RELEASE_PTH), {"model": {"seed": 1, "window": 8}})
    assert isinstance(clf, ReleaseModelClassifier) and clf.max_tracks == 5000
    seq = _release_seq()
    p = clf(seq)
    assert np.isnan(p[0])  # invisible everywhere: left out, as the release drops it
    # the release's share: each query frame gives int(its tracks / #query frames) tracks
    ids = clf.select(seq, np.random.default_rng(1))
    assert len(ids) in (59, 60) and 0 not in ids
    assert np.isfinite(p[ids]).all() and np.isfinite(p).sum() == len(ids)
    for q in (0, 5):
        assert (seq.query_frame[ids] == q).sum() >= 29
    assert np.array_equal(p, clf(seq), equal_nan=True)  # seeded
    clf.max_tracks = 20
    assert np.isfinite(clf(seq)).sum() <= 20
    clf.max_tracks = 5000
    # the batch: [-1, 1] positions, the empty frame gets its most confident point back
    b = clf.batch(seq, np.arange(1, 40))
    assert b["traj"].min() >= -1 and b["traj"].max() <= 1
    assert (b["mask"][0, 0, :, 4] == 0).sum() >= 1
    # the release's decision rule, long videos included
    assert clf.thresholds_for(10) == tuple(RELEASE_DECISION["thresholds"])
    assert clf.thresholds_for(301) == tuple(RELEASE_DECISION["long_thresholds"])
    ts, moving, keep, th = classify_tracks(
        clf, seq, {"thresholds": list(clf.thresholds), "min_moving": 10, "fallback_top": 3}
    )
    assert keep.sum() == np.isfinite(p).sum() and moving.sum() >= 3


@needs_fixture
@pytest.mark.slow
def test_release_classifier_input_errors():
    clf = build_classifier("model", str(RELEASE_PTH), {})
    with pytest.raises(ValueError, match="48 channels.*768.*features=dinov2"):
        clf(_release_seq(C=48))
    with pytest.raises(ValueError, match="has no depth.*depth_anything_v2.*allow_missing_depth"):
        clf(_release_seq(depth=False))
    lenient = build_classifier("model", str(RELEASE_PTH), {"model": {"allow_missing_depth": True}})
    assert np.isfinite(lenient(_release_seq(depth=False))).sum() > 0
    assert lenient.missing_inputs == ["depth"]
    with pytest.raises(CheckpointError, match="release architecture"):
        ModelClassifier(str(RELEASE_PTH))


@needs_fixture
@pytest.mark.slow
def test_evaluate_runs_end_to_end_with_the_release_checkpoint(tmp_path):
    """evaluate.py with ckpt=<release .pth>: DINOv2 (768-d) and Depth Anything random-initialised
    at tiny sizes; the masks mean nothing, but every stage runs."""
    pytest.importorskip("transformers")
    from moseg.evaluation.run import run
    from tests.test_evaluation import _cfg

    dino = TINY_DINO_768
    depth = (
        "{backbone_config:{model_type:dinov2,hidden_size:32,num_hidden_layers:4,"
        "num_attention_heads:2,intermediate_size:64,image_size:56,patch_size:14,"
        "out_indices:[1,2,3,4],reshape_hidden_states:false},reassemble_hidden_size:32,"
        "neck_hidden_sizes:[8,16,16,32],fusion_hidden_size:16,head_hidden_size:8}"
    )
    cfg = _cfg(
        tmp_path / "data",
        tmp_path / "run",
        f"ckpt={RELEASE_PTH}",
        "features=dinov2",
        f"features.config={dino}",
        "features.input_size=56",
        "features.device=cpu",
        "depth=depth_anything_v2",
        f"depth.config={depth}",
        "depth.input_size=56",
        "depth.device=cpu",
        "bench.generate.num_clips=1",
    )
    res = run(cfg)
    assert len(res["sequences"]) == 1 and 0.0 <= res["overall"]["JF"] <= 1.0
    rec = json.loads(next((tmp_path / "run" / "sequences").glob("*.json")).read_text())
    assert rec["classifier"] == "release"


# ------------------------------------------------------------------ train.py model=release -------
@pytest.mark.slow
def test_train_py_model_release_trains_and_its_checkpoint_classifies(tmp_path):
    from moseg.config import compose
    from moseg.datasets.synthetic import generate_clip
    from moseg.training.run import run as train_run
    from tests.conftest import tiny_config
    from tests.test_training import tiny_overrides

    over = [o for o in tiny_overrides(tmp_path / "run", tmp_path / "data") if o != "model=tiny"]
    cfg = compose("train", [*over, "model=release"])
    assert cfg.model.module.architecture == "release"
    metrics = train_run(cfg)
    assert 0.0 <= metrics["val/track_ap"] <= 1.0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    loaded = load_classifier_checkpoint(last)  # weights_only: a training checkpoint loads safely
    assert loaded.architecture == "release" and loaded.inputs["depth_lookup"] == "bilinear"
    clf = build_classifier("model", str(last), {"model": {"seed": 0}})
    assert isinstance(clf, ReleaseModelClassifier) and not clf.visibility_values
    seq = generate_clip(tiny_config(), [1, 2], name="t").sequence
    p = clf(seq)
    assert np.isfinite(p).sum() > 0 and np.nanmax(p) <= 1.0


TINY_DINO_768 = (
    "{hidden_size:768,num_hidden_layers:1,num_attention_heads:12,intermediate_size:64,"
    "image_size:56,patch_size:14}"
)


@needs_fixture
@pytest.mark.slow
def test_moseg_segment_takes_the_release_checkpoint(tmp_path, capsys, caplog):
    pytest.importorskip("transformers")
    import logging

    from tests.test_segment import make_clip, write_folder

    frames, _ = make_clip()
    folder = write_folder(tmp_path / "frames", frames[:8])
    out = tmp_path / "seg"
    args = ["segment", str(folder), "--out", str(out), "--ckpt", str(RELEASE_PTH)]
    args += ["features=dinov2", f"features.config={TINY_DINO_768}", "features.input_size=56"]
    args += ["features.device=cpu", "allow_missing_depth=true"]
    with caplog.at_level(logging.INFO):
        assert cli_main(args) == 0
    assert "SegAnyMo release checkpoint" in caplog.text
    info = json.loads((out / "objects.json").read_text())
    assert info["classifier"] == "release"
    # without depth and without the switch: one clear error, nothing written
    out2 = tmp_path / "seg2"
    bad = [a if a != "allow_missing_depth=true" else "allow_missing_depth=false" for a in args]
    bad[bad.index(str(out))] = str(out2)
    assert cli_main(bad) == 2
    assert "has no depth" in capsys.readouterr().err


def test_readme_lists_every_difference_from_the_release():
    from moseg.models.release import DIFFERENCES

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert "## Using the released checkpoint" in readme
    assert "docs/release-checkpoint.md" in readme
    doc = (root / "docs" / "release-checkpoint.md").read_text()
    for what, theirs, ours in DIFFERENCES:
        assert f"| {what} | {theirs} | {ours} |" in doc, what


def test_our_classifier_names_the_sequence_and_checkpoint_on_a_feature_width_mismatch():
    from moseg.inference.classify import SHIPPED_CHECKPOINT

    clf = build_classifier("model", str(SHIPPED_CHECKPOINT), {})
    assert isinstance(clf, ModelClassifier)
    with pytest.raises(ValueError) as e:
        clf(_release_seq(C=768, depth=False))
    msg = str(e.value)
    assert "'r'" in msg and "768 channels" in msg and "classifier.ckpt" in msg and "48" in msg
