"""The GPU check (issue 18): one short run on one GPU, one JSON line of figures.

Run it through ``benchmarks/gpu/check.sh``, which installs the carried wheels when the imports
are missing and puts this tree on the import path (README.md beside this file says what to carry
and how). Three parts, each in its own process under a time cap (all of them within
``--budget`` seconds, 440 by default, so that the whole run stays under 8 minutes on an H200):

- ``train``: the paper classifier (``model=paper``: 3.44 M parameters, 768-d features) trained
  by the real ``TrackClassifierModule`` under a Lightning ``Trainer`` with
  ``precision=bf16-mixed`` (forward and loss under bf16 autocast, backward, gradient clipping,
  Adam step) on one clip of 5000 tracks x 24 frames per step, cut from a synthetic scene.
  Figures: seconds per step (median after warm-up), clips per second and peak GPU memory.
- ``evaluate``: ``evaluate.py preset=paper`` on 2 DAVIS 2016 sequences with random weights at
  the real sizes (Depth Anything V2 Large, DINOv2 ViT-B/14, SAM2.1 hiera tiny at 1024 px, a
  paper classifier this script writes), ``tracker=opencv`` since TAPIR cannot be installed on
  the GPU machine. Figures: seconds per frame of each stage (tracks, depth, features,
  classifier, densify), as the run recorded them: the preprocessing stages in each cached
  HDF5's provenance (``timing``), the others in ``metrics.json`` (``pipeline.<seq>.seconds``).
- ``ddp``: ``train.py trainer=ddp`` (2 processes) for a few steps where 2 GPUs are present.

Each part is ``{"status": "ok" | "skipped" | "failed" | "timeout", ...}``; a part that is not
``ok`` says why in ``reason``, and a figure left null names its reason in ``null_reasons``. What
needs CUDA is skipped without it. ``--smoke`` (or ``MOSEG_GPU_CHECK_SMOKE=1``) runs tiny sizes,
on the CPU where there is no GPU, to check the script itself (tests/test_gpu_check.py).
The last stdout line is the JSON object; the exit code is 1 when a part failed or ran out of
time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SEQUENCES = ("blackswan", "car-shadow")  # 90 frames of 854x480 in all (DAVIS16-Moving)
FEATURE_DIM = 768  # DINOv2 ViT-B/14 keys, the paper's semantic features
PAPER_TRACKS = 5000  # tracks per clip (the reference's most)
PAPER_FRAMES = 24
# part -> seconds it may run at most; what a part leaves unused goes to the parts after it
CAPS = {"train": 90, "evaluate": 300, "ddp": 120}
BUDGET_S = 440  # all parts together (check.sh's wheel install and start-up come on top)
# how the evaluation selects the paper's pipeline (moseg/conf/preset/paper.yaml)
PRESET = ("preset=paper",)

# Depth-Anything-V2-Large's config.json (335 M parameters) and DINOv2 ViT-B/14 (86.6 M), as
# `config=` dicts: random weights, real sizes and so real timings
DEPTH_LARGE = {
    "backbone_config": {
        "model_type": "dinov2",
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "mlp_ratio": 4,
        "image_size": 518,
        "patch_size": 14,
        "out_indices": [5, 12, 18, 24],
        "reshape_hidden_states": False,
    },
    "reassemble_hidden_size": 1024,
    "neck_hidden_sizes": [256, 512, 1024, 1024],
    "fusion_hidden_size": 256,
    "head_hidden_size": 32,
}
DINO_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "mlp_ratio": 4,
    "image_size": 518,
    "patch_size": 14,
}
# --smoke: the same code paths at sizes a 2-core CPU runs in seconds
DEPTH_TINY = {
    "backbone_config": {
        "model_type": "dinov2",
        "hidden_size": 32,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "image_size": 56,
        "patch_size": 14,
        "out_indices": [1, 2, 3, 4],
        "reshape_hidden_states": False,
    },
    "reassemble_hidden_size": 32,
    "neck_hidden_sizes": [8, 16, 16, 32],
    "fusion_hidden_size": 16,
    "head_hidden_size": 8,
}
DINO_TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 56,
    "patch_size": 14,
}


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def hydra_value(x: Any) -> str:
    """A Python value in Hydra's override grammar: ``{a:1,b:[2,3]}``, ``true``, ``null``."""
    if isinstance(x, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in x.items()) + "}"
    if isinstance(x, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in x) + "]"
    if isinstance(x, bool):
        return "true" if x else "false"
    if x is None:
        return "null"
    return str(x)


def shorten(override: str) -> str:
    """An override as the report shows it: a model config dict by its name."""
    key, _, value = override.partition("=")
    named = {
        hydra_value(DEPTH_LARGE): "Depth Anything V2 Large",
        hydra_value(DINO_BASE): "DINOv2 ViT-B/14",
        hydra_value(DEPTH_TINY): "tiny",
        hydra_value(DINO_TINY): "tiny",
    }
    return f"{key}=<{named[value]} config>" if value in named else override


def last_json(text: str) -> dict[str, Any] | None:
    """The last stdout line that is a JSON object, or None."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def tail(text: str, lines: int = 6) -> str:
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:] if ln.strip())


def run_capped(
    cmd: list[str], cap_s: float, log: Path, env: dict[str, str] | None = None
) -> tuple[int | None, str, float]:
    """Run ``cmd`` in ``ROOT`` for at most ``cap_s`` seconds; ``(exit code or None when it ran
    out of time, its stdout, seconds)``. Everything it printed goes to ``log``. The command
    gets a process group of its own (in this session), so that its children (DDP ranks) end
    with it."""
    t0 = time.perf_counter()
    with log.open("w") as err:
        err.write(f"$ {shlex.join(cmd)}\n")
        err.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
            process_group=0,
        )
        try:
            out, _ = proc.communicate(timeout=max(1.0, cap_s))
            rc: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            rc = None
        err.write(out)
    return rc, out, time.perf_counter() - t0


def part_result(rc: int | None, out: str, secs: float, cap_s: float, log: Path) -> dict:
    """A part's own JSON line, or a failed / timeout record with the end of its log."""
    if rc is None:
        return {"status": "timeout", "reason": f"ran past its cap of {cap_s:.0f} s"}
    res = last_json(out)
    if rc != 0 or res is None:
        text = log.read_text(errors="replace")
        return {"status": "failed", "reason": f"exit code {rc}: {tail(text)}"}
    res.setdefault("status", "ok")
    res["wall_s"] = round(secs, 1)
    return res


def cuda_info() -> dict[str, Any]:
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {
        "cuda": n > 0,
        "gpus": n,
        "gpu": torch.cuda.get_device_name(0) if n else None,
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda,
    }


# ----------------------------------------------------------------------------------------------
# train: bf16 training speed and memory of the paper model (runs in its own process)
# ----------------------------------------------------------------------------------------------
def paper_batch(folder: Path, tracks: int) -> dict[str, Any]:
    """One collated clip of ``tracks`` tracks x 24 frames with depth and 768-d features, read
    from a synthetic scene by the training reader (realistic visibility, not noise)."""
    import numpy as np

    from moseg.data import SamplingSpec, collate, read_sample
    from moseg.datasets.synthetic import SynthConfig, generate_split
    from moseg.io import SequenceFile, list_sequences

    # query frames 0, 8, 16 and a sample takes one of them: enough tracks start at each
    cfg = SynthConfig(num_frames=PAPER_FRAMES, num_tracks=3 * tracks + 600, feature_dim=FEATURE_DIM)
    generate_split(folder, "train", 1, cfg, seed=7, workers=1, progress=False)
    (path,) = list_sequences(folder / "train")
    with SequenceFile(path) as f:
        spec = SamplingSpec(num_tracks=(tracks,), num_frames=PAPER_FRAMES)
        sample = read_sample(f, spec, np.random.default_rng(0), 0)
    batch = collate([sample], feature_dim=FEATURE_DIM)
    assert batch["tracks"].shape[1:3] == (tracks, PAPER_FRAMES), batch["tracks"].shape
    return batch


def train_figures(smoke: bool) -> dict[str, Any]:
    import lightning as L
    import torch
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    from moseg.config import compose
    from moseg.models import count_parameters

    cuda = torch.cuda.is_available()
    tracks = 64 if smoke else PAPER_TRACKS
    warmup, steps = (1, 1) if smoke else (5, 40)
    cfg = compose("train", ["model=paper", f"data.feature_dim={FEATURE_DIM}"])
    module = instantiate(cfg.model.module)

    times: list[float] = []

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    class StepTimer(L.Callback):
        """Seconds from a batch's start to its end (forward, loss, backward, clip, step)."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            sync()
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            sync()
            times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory(prefix="moseg-gpu-train-") as tmp:
        batch = paper_batch(Path(tmp) / "scene", tracks)
        trainer = L.Trainer(
            accelerator="gpu" if cuda else "cpu",
            devices=1,
            precision="bf16-mixed",
            max_steps=warmup + steps,
            max_epochs=1,
            gradient_clip_val=float(cfg.trainer.gradient_clip_val),
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[StepTimer()],
            default_root_dir=tmp,
        )
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        # the same clip every step: the loader's own speed is benchmarks/perf/train_speed.py's
        loader = DataLoader([batch] * (warmup + steps), batch_size=None)
        trainer.fit(module, train_dataloaders=loader)
    step = statistics.median(times[warmup:])
    out: dict[str, Any] = {
        "status": "ok",
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "model": "paper",
        "params": count_parameters(module.net),
        "tracks": tracks,
        "frames": PAPER_FRAMES,
        "feature_dim": FEATURE_DIM,
        "clips_per_step": 1,
        "precision": "bf16-mixed",
        "optimizer": type(trainer.optimizers[0]).__name__,
        "gradient_clip_val": float(cfg.trainer.gradient_clip_val),
        "steps_timed": len(times) - warmup,
        "step_s": round(step, 4),
        "step_s_min": round(min(times[warmup:]), 4),
        "clips_per_s": round(1 / step, 2),
        "peak_gpu_mem_gb": None,
        "reserved_gpu_mem_gb": None,
    }
    if cuda:
        out["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        out["reserved_gpu_mem_gb"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
    else:
        why = "no CUDA device: trained on the CPU (smoke sizes)"
        out["null_reasons"] = {"peak_gpu_mem_gb": why, "reserved_gpu_mem_gb": why}
    return out


# ----------------------------------------------------------------------------------------------
# evaluate: evaluate.py preset=paper on DAVIS, seconds per frame per stage (own process)
# ----------------------------------------------------------------------------------------------
def preset_file() -> Path:
    import moseg

    return Path(moseg.__file__).resolve().parent / "conf" / "preset" / "paper.yaml"


def write_paper_checkpoint(path: Path, feature_dim: int = FEATURE_DIM) -> Path:
    """A random-initialised ``model=paper`` classifier for ``feature_dim``-d features, saved as
    training saves one (the module's own ``on_save_checkpoint`` adds the config the evaluation
    rebuilds it from)."""
    import torch
    from hydra.utils import instantiate

    from moseg.config import compose

    cfg = compose("train", ["model=paper", f"data.feature_dim={feature_dim}"])
    torch.manual_seed(0)
    module = instantiate(cfg.model.module)
    ckpt: dict[str, Any] = {"state_dict": module.state_dict(), "global_step": 0}
    module.on_save_checkpoint(ckpt)
    ckpt["moseg"]["note"] = "random weights (benchmarks/gpu/check.py): timings only"
    torch.save(ckpt, path)
    return path


def evaluate_overrides(
    davis: Path, sequences: list[str], ckpt: Path, work: Path, smoke: bool
) -> list[str]:
    """The command line of the evaluation: the paper preset with random weights at the real
    sizes, the OpenCV tracker in place of TAPIR, this run's own cache and run folders."""
    over = [
        *PRESET,
        f"ckpt={ckpt}",
        "tracker=opencv",  # TAPIR (tapnet) cannot be installed on the GPU machine
        "densify.checkpoint=null",
        "densify.model=sam2.1_hiera_t",
        f"densify.image_size={64 if smoke else 1024}",
        f"depth.config={hydra_value(DEPTH_TINY if smoke else DEPTH_LARGE)}",
        f"features.config={hydra_value(DINO_TINY if smoke else DINO_BASE)}",
        "bench=davis2016",
        f"bench.root={davis}",
        f"bench.sequences={hydra_value(list(sequences))}",
        f"cache_dir={work / 'cache'}",
        f"hydra.run.dir={work / 'evaluate'}",
        "wandb.enabled=false",
        "output.overlays=0",
        "progress=false",
    ]
    if smoke:
        over += [
            "bench.frames.max_frames=4",
            "bench.frames.longest_side=160",
            "depth.input_size=56",
            "features.input_size=56",
            "densify.max_rounds=1",
        ]
    return over


STAGES = {  # stage -> where the run recorded its seconds
    "tracks": ("provenance", "track_s"),
    "depth": ("provenance", "depth_s"),
    "features": ("provenance", "features_s"),
    "classifier": ("metrics", "classify"),
    "densify": ("metrics", "densify"),
}


def stage_seconds(metrics: dict[str, Any], cache: Path) -> dict[str, dict[str, Any]]:
    """Per sequence: frames, tracks and the seconds of each stage of :data:`STAGES` (plus the
    rest: preprocessing beyond the three models, reading frames, writing masks)."""
    from moseg.io import SequenceFile

    timing = {}
    for h5 in sorted(cache.rglob("*.h5")):
        with SequenceFile(h5) as f:
            prov = f.meta.provenance
        timing[prov.get("job", {}).get("name", f.meta.name)] = prov.get("timing") or {}
    out = {}
    for seq, rec in (metrics.get("pipeline") or {}).items():
        prep = timing.get(seq, {})
        secs = {}
        for stage, (where, key) in STAGES.items():
            value = prep.get(key) if where == "provenance" else rec["seconds"].get(key)
            secs[stage] = None if value is None else float(value)
        models = sum(prep.get(k) or 0.0 for k in ("track_s", "depth_s", "features_s"))
        other = {
            "preprocess_rest": (rec.get("preprocess_s") or 0.0) - models,
            "read_frames": rec["seconds"].get("read_frames"),
            "write": rec["seconds"].get("write"),
        }
        out[seq] = {"frames": rec["frames"], "tracks": rec["tracks"], "s": secs, "other": other}
    return out


def per_frame(per_seq: dict[str, dict[str, Any]], key: str) -> dict[str, float | None] | None:
    """Sum of each stage's seconds over the sequences / their frames (None: no sequence)."""
    if not per_seq:
        return None
    frames = sum(r["frames"] for r in per_seq.values())
    names = next(iter(per_seq.values()))[key]
    out: dict[str, float | None] = {}
    for name in names:
        values = [r[key][name] for r in per_seq.values()]
        out[name] = None if None in values else round(sum(values) / frames, 4)
    return out


def evaluate_figures(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.cap - 10  # leaves time to read the results
    dim = DINO_TINY["hidden_size"] if args.smoke else FEATURE_DIM  # what the features give
    ckpt = write_paper_checkpoint(work / "paper-random.ckpt", dim)
    over = evaluate_overrides(Path(args.davis), args.sequences, ckpt, work, args.smoke)
    cmd = [sys.executable, "evaluate.py", *over]
    log = Path(args.logs) / "evaluate_py.log"
    rc, out, secs = run_capped(cmd, deadline - time.perf_counter(), log, {"HYDRA_FULL_ERROR": "1"})
    if rc is None:
        return {"status": "timeout", "reason": f"evaluate.py ran out of its time (log {log})"}
    if rc != 0:
        text = log.read_text(errors="replace")
        return {"status": "failed", "reason": f"evaluate.py exit code {rc}: {tail(text)}"}
    metrics = json.loads((work / "evaluate" / "metrics.json").read_text())
    per_seq = stage_seconds(metrics, work / "cache")
    seqs = list(per_seq)
    warm = {s: per_seq[s] for s in seqs[1:]}
    first = seqs[0] if seqs else None
    cfg = metrics.get("config") or {}
    dens = cfg.get("densify") or {}
    return {
        "status": "ok",
        "command": "evaluate.py " + " ".join(shorten(o) for o in over),
        "sequences": seqs,
        "frames": sum(r["frames"] for r in per_seq.values()),
        "tracks": {s: r["tracks"] for s, r in per_seq.items()},
        "s_per_frame": per_frame(per_seq, "s"),
        # the models are built inside the first sequence's timed stages (see "missing")
        "s_per_frame_warm": per_frame(warm, "s"),
        "other_s_per_frame": per_frame(per_seq, "other"),
        "evaluate_wall_s": round(secs, 1),
        "JF_random_weights": (metrics.get("overall") or {}).get("JF"),
        "models": {  # all with random weights
            "tracker": (cfg.get("tracker") or {}).get("_target_"),
            "depth": "tiny Depth Anything" if args.smoke else "Depth Anything V2 Large",
            "features": "tiny DINOv2" if args.smoke else "DINOv2 ViT-B/14",
            "densify": f"SAM2 {dens.get('model')} at {dens.get('image_size')} px",
            "classifier": f"model=paper ({dim}-d features)",
            "device": f"{cfg.get('device')} ({'cuda' if torch.cuda.is_available() else 'cpu'})",
        },
        "recorded_in": {
            "tracks, depth, features": "provenance.timing of each cached HDF5 "
            "(moseg/prep/pipeline.py)",
            "classifier, densify": "metrics.json pipeline.<sequence>.seconds "
            "(moseg/evaluation/run.py)",
        },
        "missing": [
            f"the prep models are built inside the timed stages of the first sequence "
            f"({first}): its tracks/depth/features seconds include construction and "
            "first-call warm-up; s_per_frame_warm leaves that sequence out",
            "the build times of the classifier and of SAM2 (before the first sequence) "
            "are not recorded",
            "no GPU memory is recorded per stage",
            "tracks are OpenCV optical flow on the CPU, not TAPIR",
        ],
    }


# ----------------------------------------------------------------------------------------------
# ddp: two processes of train.py trainer=ddp (run from the orchestrator)
# ----------------------------------------------------------------------------------------------
def ddp_overrides(work: Path, smoke: bool, cpu: bool) -> list[str]:
    g = "data.sources.synthetic.prepare"
    tracks = 64 if smoke else PAPER_TRACKS
    return [
        "model=paper",
        "trainer=ddp",
        "trainer.devices=2",
        *(["trainer.accelerator=cpu", "trainer.precision=32-true"] if cpu else []),
        *(["trainer.accelerator=gpu", "trainer.precision=bf16-mixed"] if not cpu else []),
        "trainer.max_epochs=1",
        f"trainer.max_steps={3 if smoke else 20}",
        "+trainer.limit_val_batches=0",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        f"{g}.root={work / 'synthetic'}",
        f"{g}.splits.train=4",
        f"{g}.splits.val=2",
        f"{g}.generator.feature_dim={FEATURE_DIM}",
        f"{g}.generator.num_tracks={3 * tracks + 600}",
        f"data.sources.synthetic.sampling.num_tracks=[{tracks}]",
        "data.module.batch_size=1",
        "data.module.num_workers=1",
        "data.module.samples_per_epoch=48",
        "logger=csv",
        "~callbacks",
        "validate_best=false",
        f"hydra.run.dir={work / 'ddp'}",
    ]


def ddp_steps(run_dir: Path) -> int | None:
    """The last step rank 0's CSV logger wrote (None when there is none)."""
    import csv

    steps = []
    for path in run_dir.glob("csv/version_*/metrics.csv"):
        with path.open() as f:
            steps += [int(r["step"]) for r in csv.DictReader(f) if r.get("step")]
    return max(steps) + 1 if steps else None


# ----------------------------------------------------------------------------------------------
# The orchestrator
# ----------------------------------------------------------------------------------------------
def skipped(reason: str) -> dict[str, str]:
    return {"status": "skipped", "reason": reason}


def default_davis() -> Path:
    """``MOSEG_DAVIS_ROOT``, else ../shared/data/DAVIS2016 beside the project, else the carried
    copy in benchmarks/gpu/carry/DAVIS2016 (README.md)."""
    env = os.environ.get("MOSEG_DAVIS_ROOT")
    if env:
        return Path(env)
    shared = ROOT.parent / "shared" / "data" / "DAVIS2016"
    return shared if shared.is_dir() else HERE / "carry" / "DAVIS2016"


def missing_sequences(davis: Path, sequences: list[str]) -> list[str]:
    return [
        s
        for s in sequences
        if not (davis / "JPEGImages" / "480p" / s).is_dir()
        or not (davis / "Annotations" / "480p" / s).is_dir()
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--smoke",
        action="store_true",
        default=os.environ.get("MOSEG_GPU_CHECK_SMOKE", "") not in ("", "0"),
        help="tiny sizes (CPU where there is no GPU): checks the script (MOSEG_GPU_CHECK_SMOKE=1)",
    )
    ap.add_argument("--davis", type=Path, default=None, help="DAVIS 2016 root (MOSEG_DAVIS_ROOT)")
    ap.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all parts")
    ap.add_argument("--out", type=Path, default=None, help="also write check.json and logs here")
    ap.add_argument("--parts", nargs="+", default=list(CAPS), choices=list(CAPS))
    ap.add_argument(
        "--ddp-cpu",
        action="store_true",
        help="run the ddp part on the CPU (2 gloo processes) without GPUs: tests the command",
    )
    # internal: run one part in this process (the orchestrator starts these)
    ap.add_argument("--part", choices=["train", "evaluate"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--logs", help=argparse.SUPPRESS)
    ap.add_argument("--cap", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.part == "train":
        print(json.dumps(train_figures(args.smoke)))
        return 0
    if args.part == "evaluate":
        print(json.dumps(evaluate_figures(args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="moseg-gpu-check-") as tmp:
        try:
            result = run_parts(args, Path(tmp))
        except Exception as e:  # still one JSON line, saying what broke
            reason = f"{type(e).__name__}: {e}"
            result = {"gpu_check": 1, "smoke": bool(args.smoke), "error": reason, "parts": {}}
    line = json.dumps(result)
    if args.out:
        (args.out / "check.json").write_text(line + "\n")
    print(line)
    bad = [p for p, r in result["parts"].items() if r["status"] in ("failed", "timeout")]
    return 1 if bad or "error" in result else 0


def reasons_to_skip(args: argparse.Namespace, info: dict[str, Any], davis: Path) -> dict:
    """``{part: why it cannot run, or None}``, decided up front so the others get its time."""
    why: dict[str, str | None] = {p: None for p in CAPS}
    if not info["cuda"] and not args.smoke:
        for p in ("train", "evaluate"):
            why[p] = "no CUDA device (--smoke runs tiny sizes on the CPU)"
    if why["evaluate"] is None:
        gone = missing_sequences(davis, args.sequences)
        if gone:
            why["evaluate"] = (
                f"DAVIS sequences {gone} not found under {davis} (--davis or MOSEG_DAVIS_ROOT; "
                "benchmarks/gpu/README.md says how to carry them)"
            )
        elif not preset_file().is_file():
            why["evaluate"] = (
                f"preset=paper is not in this tree ({preset_file().relative_to(ROOT)} missing)"
            )
    if info["gpus"] < 2 and not args.ddp_cpu:
        why["ddp"] = f"{info['gpus']} CUDA device(s): a 2-process DDP step needs 2 GPUs"
    for p in CAPS:
        if p not in args.parts:
            why[p] = "not asked for (--parts)"
    return why


def run_parts(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    deadline = started + args.budget
    info = cuda_info()
    davis = (args.davis or default_davis()).resolve()
    result: dict[str, Any] = {
        "gpu_check": 1,
        "smoke": bool(args.smoke),
        "python": platform.python_version(),
        **info,
        "davis_root": str(davis),
        "notes": [
            "evaluate: tracker=opencv (CPU optical flow) in place of the paper preset's tapir, "
            "since TAPIR (tapnet) cannot be installed on the GPU machine",
            "every model has random weights: the timings are real, the scores are not",
        ],
        "parts": {},
    }
    if args.smoke:
        result["notes"].append("smoke: tiny sizes, the figures check the script only")
    why = reasons_to_skip(args, info, davis)
    logs = args.out or work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    smoke = ["--smoke"] if args.smoke else []
    env = {"PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled"}
    me = [sys.executable, str(HERE / "check.py")]
    order = list(CAPS)
    for i, part in enumerate(order):
        if why[part]:
            result["parts"][part] = skipped(why[part])
            continue
        later = sum(CAPS[p] for p in order[i + 1 :] if not why[p])
        cap = min(CAPS[part], deadline - time.perf_counter() - later)
        if cap < 20:
            result["parts"][part] = skipped(f"time budget spent ({cap:.0f} s left for it)")
            continue
        log = logs / f"{part}.log"
        if part == "train":
            res = part_result(
                *run_capped([*me, "--part", "train", *smoke], cap, log, env), cap, log
            )
        elif part == "evaluate":
            cmd = [*me, "--part", "evaluate", *smoke, "--work", str(work / "evaluate")]
            cmd += ["--logs", str(logs), "--davis", str(davis), "--cap", str(cap)]
            cmd += ["--sequences", *args.sequences]
            # the part stops evaluate.py 10 s before its cap itself; this is the backstop
            res = part_result(*run_capped(cmd, cap + 10, log, env), cap, log)
        else:
            res = ddp_part(args, work, cap, log, env)
        res["cap_s"] = round(cap)
        result["parts"][part] = res
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def ddp_part(
    args: argparse.Namespace, work: Path, cap: float, log: Path, env: dict[str, str]
) -> dict[str, Any]:
    over = ddp_overrides(work, args.smoke, args.ddp_cpu)
    rc, _, secs = run_capped([sys.executable, "train.py", *over], cap, log, env)
    if rc is None:
        return {"status": "timeout", "reason": f"ran past its cap of {cap:.0f} s"}
    if rc != 0:
        return {"status": "failed", "reason": f"exit code {rc}: {tail(log.read_text())}"}
    return {
        "status": "ok",
        "processes": 2,
        "backend": "gloo (CPU)" if args.ddp_cpu else "nccl",
        "steps_logged": ddp_steps(work / "ddp"),
        "wall_s": round(secs, 1),
        "note": "wall time of train.py: start-up, data generation, the second rank's launch "
        "and the steps",
    }


if __name__ == "__main__":
    sys.exit(main())
