"""SAM2 densification speed on a GPU: seconds per frame and per object.

A synthetic clip (default 24 frames of 480x854, two moving objects with their tracks on a static
textured background) goes through moseg.densify.sam2 with SAM2 at 1024 px (sam2.1_hiera_l, random
weights: the cost does not depend on the weights). So that the algorithm takes the path a trained
model would (two click rounds, two objects, no re-prompts), the real predictor runs every call
but its masks are replaced by the ground truth of the clip ("guided"): all SAM2 compute is real.

- ``sam2_s_per_frame_gpu``: the whole densification (frame loading, grouping, two objects,
  merging) divided by the number of frames; ``sam2_s_per_object_gpu``: prompting and propagating
  one object through the clip (the reference reports about 2 s per object for 50 frames);
  ``sam2_*_s``: the stages; ``sam2_peak_gpu_mem_gb``.

Without CUDA it prints a skip line and null values (exit 0). A quick check on the CPU (about a
minute on 2 cores; the model then defaults to sam2.1_hiera_t and the clip to 4 frames):

    python benchmarks/sam2/sam2_speed.py --device cpu --image-size 256

Keys then end in ``_cpu``. Other options: --model, --frames, --height, --width, --dtype,
--prompt-every, --offload. Last line: one JSON object.

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/sam2_speed.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import runpy
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from moseg.densify.base import TrackSet
from moseg.densify.sam2 import Sam2Params, Sam2Predictor, densify_with_predictor

RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def synthetic_clip(
    T: int, H: int, W: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, TrackSet]:
    """``frames [T, H, W, 3]`` uint8, ``gt [T, H, W]`` (0 bg, 1, 2) and tracks on a 16 px grid
    (moving on the objects, static elsewhere)."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    frames = np.repeat(bg[None], T, 0)
    gt = np.zeros((T, H, W), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    objects = [  # centre at t=0, velocity px/frame, half-axes, colour
        ((0.3 * W, 0.4 * H), (4.0, 1.0), (0.12 * W, 0.15 * H), (220, 60, 40)),
        ((0.7 * W, 0.6 * H), (-3.0, -1.5), (0.08 * W, 0.2 * H), (40, 80, 220)),
    ]
    for t in range(T):
        for k, ((cx, cy), (vx, vy), (ax, ay), colour) in enumerate(objects, start=1):
            inside = ((xx - cx - vx * t) / ax) ** 2 + ((yy - cy - vy * t) / ay) ** 2 <= 1
            gt[t][inside] = k
            frames[t][inside] = colour
    gx, gy = np.meshgrid(np.arange(8, W, 16.0), np.arange(8, H, 16.0))
    start = np.stack([gx.ravel(), gy.ravel()], 1)
    label = gt[0][start[:, 1].astype(int), start[:, 0].astype(int)]
    ts = np.arange(T)[None, :, None]
    vel = np.zeros((len(start), 1, 2))
    for k, (_, v, _, _) in enumerate(objects, start=1):
        vel[label == k, 0] = v
    tracks = (start[:, None] + vel * ts).astype(np.float32)  # [N, T, 2]
    xi = np.clip(np.rint(tracks[..., 0]).astype(int), 0, W - 1)
    yi = np.clip(np.rint(tracks[..., 1]).astype(int), 0, H - 1)
    visible = gt[np.arange(T)[None], yi, xi] == label[:, None]  # hidden when covered
    moving = label > 0
    n = len(start)
    ts_ = TrackSet(tracks, visible, np.zeros(n, np.int64), moving.astype(np.float32), moving)
    return frames, gt, ts_


class GuidedPredictor:
    """Runs every call on the real predictor, answers with the clip's ground truth."""

    def __init__(self, real: Sam2Predictor, gt: np.ndarray) -> None:
        self.real, self.gt = real, gt
        self.prompted: dict[int, set[int]] = {}

    def load(self, frames: np.ndarray) -> None:
        self.real.load(frames)

    def reset(self) -> None:
        self.real.reset()
        self.prompted = {}

    def click(
        self,
        frame: int,
        obj_id: int,
        points: np.ndarray,
        labels: np.ndarray,
        refine: bool = False,
    ) -> np.ndarray:
        self.real.click(frame, obj_id, points, labels, refine=refine)
        g = self.gt[frame]
        ids = {int(g[int(round(y)), int(round(x))]) for x, y in points} - {0}
        self.prompted.setdefault(obj_id, set()).update(ids)
        return np.isin(g, list(ids))

    def propagate(self, start: int, reverse: bool) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        for f, out in self.real.propagate(start, reverse):
            yield f, {i: np.isin(self.gt[f], list(self.prompted.get(i, ()))) for i in out}

    def release(self) -> None:
        self.real.release()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (cuda, else skip) | cuda | cpu")
    ap.add_argument("--model", default=None, help="sam2.1_hiera_l (GPU) / sam2.1_hiera_t (CPU)")
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--frames", type=int, default=None, help="24 (GPU) / 4 (CPU)")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--prompt-every", type=int, default=16)
    ap.add_argument("--offload", action="store_true", help="offload video and state to the CPU")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "none"
    kind = "cpu" if device == "cpu" else "gpu"
    keys = (f"sam2_s_per_frame_{kind}", f"sam2_s_per_object_{kind}")
    if device == "none" or (device.startswith("cuda") and not torch.cuda.is_available()):
        print("skipped: no CUDA device (use --device cpu --image-size 256 for a CPU check)")
        print(json.dumps({keys[0]: None, keys[1]: None, "gpu": None}))
        return

    on_cpu = device == "cpu"
    args.model = args.model or ("sam2.1_hiera_t" if on_cpu else "sam2.1_hiera_l")
    args.frames = args.frames or (4 if on_cpu else 24)
    frames, gt, tracks = synthetic_clip(args.frames, args.height, args.width)
    real = Sam2Predictor(
        model=args.model,
        checkpoint=None,
        image_size=args.image_size,
        device=device,
        dtype=args.dtype,
        offload_video_to_cpu=args.offload,
        offload_state_to_cpu=args.offload,
        progress=False,
    )
    guided = GuidedPredictor(real, gt)
    params = Sam2Params(prompt_every=args.prompt_every)
    cuda = real.device.type == "cuda"
    # warm-up (kernels, allocator) on a short piece of the clip
    warm = min(3, args.frames)
    warm_tracks = TrackSet(
        tracks.tracks[:, :warm],
        tracks.visibility[:, :warm],
        tracks.query_frame,
        tracks.prob,
        tracks.moving,
    )
    densify_with_predictor(GuidedPredictor(real, gt[:warm]), frames[:warm], warm_tracks, params)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = densify_with_predictor(guided, frames, tracks, params)
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    timing = res.info["timing"]
    groups = res.info["groups"]
    T = args.frames
    figures = {
        keys[0]: round(total / T, 4),
        keys[1]: round(timing["track"] / groups, 4) if groups else None,
        "gpu": torch.cuda.get_device_name(real.device) if cuda else None,
        "sam2_model": args.model,
        "sam2_image_size": args.image_size,
        "sam2_dtype": real.dtype,
        "sam2_clip": f"{T}x{args.height}x{args.width}",
        "sam2_objects": res.num_objects,
        "sam2_load_s": timing.get("load"),
        "sam2_group_s": timing.get("group"),
        "sam2_track_s": timing.get("track"),
        "sam2_total_s": round(total, 3),
    }
    if cuda:
        figures["sam2_peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    for k, v in figures.items():
        print(f"{k:28s} {v}")
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:], figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
