"""Training speed of the track classifier and of the data loader (issue 3 figures).

Prints one JSON line:
- ``train_step_s_paper_cpu``: forward + backward + Adam step of the paper config (3.44 M
  parameters) on one clip of 1024 tracks x 24 frames with 768-d semantic features, fp32, median
  of several steps after warm-up. ``..._bf16`` is the same under CPU bf16 autocast. The public
  release takes 11.4 s for exactly this on the 2-core machine (``release_step_s``).
- ``train_clips_per_s_b8_cpu``: the same at batch 8 (clips per second).
- ``loader_samples_per_s``: samples of 4096 tracks x 24 frames with depth and 768-d features read
  from contract files by the training DataLoader with 2 workers.
- ``train_clips_per_s_gpu_bf16``, ``train_peak_gpu_mem_gb``: bf16 training at 4096 tracks x 24
  frames, batch 16, on a CUDA GPU (null, with the reason, when there is none).

The inputs are real samples cut from synthetic scenes (realistic visibility), not random noise.

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/train_speed.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from moseg.data import SamplingSpec, TrackDataModule, collate, read_sample
from moseg.datasets.synthetic import SynthConfig, generate_split
from moseg.io import SequenceFile, list_sequences
from moseg.models import ClassifierConfig, TrackClassifier, count_parameters

RELEASE_STEP_S = 11.4  # ../shared/docs/reference-method.md, measured on the 2-core machine
RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def make_files(root: Path, clips: int, tracks_per_query: int, feature_dim: int) -> list[Path]:
    cfg = SynthConfig(
        height=256,
        width=256,
        num_frames=24,
        num_tracks=3 * tracks_per_query + 600,  # query frames 0, 8, 16: enough at each
        query_stride=8,
        feature_dim=feature_dim,
    )
    generate_split(root, "train", clips, cfg, seed=7, workers=None, progress=False)
    return list_sequences(root / "train")


def batch_of(files: list[Path], n_tracks: int, batch: int) -> dict:
    samples = []
    for i in range(batch):
        with SequenceFile(files[i % len(files)]) as f:
            rng = np.random.default_rng(i)
            samples.append(read_sample(f, SamplingSpec(num_tracks=(n_tracks,)), rng, 0))
    assert all(s.tracks.shape[:2] == (n_tracks, 24) for s in samples)
    return collate(samples, feature_dim=samples[0].features.shape[1])


def step_time(model, batch, device, steps: int, autocast: torch.dtype | None) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
    label = b["label"].clamp_min(0).float()
    times = []
    for i in range(steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=bool(autocast)):
            logits = model(
                b["tracks"],
                b["visibility"],
                b["confidence"],
                b["image_size"],
                depth=b["depth"],
                features=b["features"],
                track_mask=b["track_mask"],
            )
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def loader_rate(root: Path, samples: int, workers: int, tracks: int = 4096):
    dm = TrackDataModule(
        {
            "bench": {
                "root": str(root),
                "val_split": None,
                "sampling": {"num_tracks": [tracks], "num_frames": 24},
            }
        },
        feature_dim=768,
        batch_size=1,
        num_workers=workers,
        samples_per_epoch=samples + 8,
        augment={"hflip": 0.5, "time_reverse": 0.5, "scale": [0.8, 1.2], "jitter_px": 0.5},
    )
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    for _ in range(8):  # worker start-up and first file opens
        b = next(it)
    t0 = time.perf_counter()
    n, tracks = 0, 0
    for b in it:
        # zoom-in augmentation drops tracks whose query point leaves the frame: count them
        assert b["tracks"].shape[2] == 24 and b["features"].shape[-1] == 768
        assert b["depth_valid"].all() and b["features_valid"].all()
        n, tracks = n + 1, tracks + int(b["track_mask"].sum())
    return n / (time.perf_counter() - t0), tracks / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--loader-samples", type=int, default=120)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    args = ap.parse_args()
    per_query, n_tracks, n_loader = 4096, 1024, 4096
    if args.smoke:
        per_query, n_tracks, n_loader = 128, 64, 128
        args.steps, args.loader_samples = 1, 4
    torch.manual_seed(0)
    out: dict = {"train_bench_smoke": True} if args.smoke else {}
    with tempfile.TemporaryDirectory(prefix="moseg-train-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        files = make_files(tmp / "d", clips=8, tracks_per_query=per_query, feature_dim=768)
        print(f"made {len(files)} bench clips in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

        cpu = torch.device("cpu")
        model = TrackClassifier(ClassifierConfig(semantic_dim=768))
        out["paper_params"] = count_parameters(model)
        one = batch_of(files, n_tracks, 1)
        out["train_step_s_paper_cpu"] = round(step_time(model, one, cpu, args.steps, None), 3)
        out["train_step_s_paper_cpu_bf16"] = round(
            step_time(model, one, cpu, args.steps, torch.bfloat16), 3
        )
        out["release_step_s"] = RELEASE_STEP_S
        out["train_step_speedup_vs_release"] = round(
            RELEASE_STEP_S / out["train_step_s_paper_cpu"], 1
        )
        eight = batch_of(files, n_tracks, 8)
        s8 = step_time(model, eight, cpu, max(2, args.steps // 2), None)
        out["train_clips_per_s_b8_cpu"] = round(8 / s8, 2)
        print(f"cpu steps done: {out}", file=sys.stderr)

        rate, mean_tracks = loader_rate(tmp / "d", args.loader_samples, 2, n_loader)
        out["loader_samples_per_s"] = round(rate, 1)
        out["loader_mean_tracks"] = round(mean_tracks)
        out["loader_workers"] = 2

        if torch.cuda.is_available():
            dev = torch.device("cuda")
            gm = TrackClassifier(ClassifierConfig(semantic_dim=768)).to(dev)
            b16 = batch_of(files, n_loader, 16)
            torch.cuda.reset_peak_memory_stats()
            s = step_time(gm, b16, dev, args.steps, torch.bfloat16)
            out["train_clips_per_s_gpu_bf16"] = round(16 / s, 2)
            out["train_peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            out["gpu"] = torch.cuda.get_device_name()
        else:
            out["train_clips_per_s_gpu_bf16"] = None
            out["train_peak_gpu_mem_gb"] = None
            out["gpu"] = "skipped: no CUDA GPU on this machine"
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
