"""The ``synthetic`` benchmark: generated clips written as a DAVIS-style folder tree, so the
pipeline and the scorer run on them exactly as on DAVIS, with no downloads (tests, demos)."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from moseg.datasets.common import InputError
from moseg.inference.masks import write_mask_png

log = logging.getLogger(__name__)

STAMP = "moseg_synthetic_bench.json"  # the settings the tree was generated with


def _settings(num_clips: int, seed: int, generator: dict[str, Any] | None) -> dict[str, Any]:
    return {"num_clips": int(num_clips), "seed": int(seed), "generator": dict(generator or {})}


def check_synthetic_bench(root: str | Path, generate: dict[str, Any]) -> None:
    """Refuse a generated tree made with other settings (its clips would differ silently)."""
    stamp = Path(root) / STAMP
    want = _settings(**{k: generate.get(k) for k in ("num_clips", "seed", "generator")})
    have = json.loads(stamp.read_text()) if stamp.is_file() else None
    if have != json.loads(json.dumps(want, sort_keys=True)):
        raise InputError(
            f"{root}: generated with other settings ({stamp.name}: {have}); delete the folder "
            f"to regenerate it with {want}, or set bench.root elsewhere"
        )


def moving_object_masks(ids: np.ndarray, object_moving: np.ndarray) -> np.ndarray:
    """``ids [T, H, W]`` instance ids -> ``[T, H, W] uint8`` with the objects that move in the
    world renumbered 1..K (by id order) and everything else 0."""
    moving_ids = [int(i) for i in np.flatnonzero(object_moving)]
    lut = np.zeros(256, np.uint8)
    for k, i in enumerate(moving_ids, 1):
        lut[i] = k
    return lut[ids]


def write_synthetic_bench(
    root: str | Path,
    num_clips: int = 4,
    seed: int = 0,
    generator: dict[str, Any] | None = None,
    split: str = "val",
    resolution: str = "480p",
) -> Path:
    """Generate ``num_clips`` clips into ``root`` (``JPEGImages/<res>/<clip>/00000.jpg``,
    ``Annotations/<res>/<clip>/00000.png`` palette PNGs, ``ImageSets/2017/<split>.txt``). The
    tree is built in a temporary folder and renamed into place, so ``root`` is complete or
    absent."""
    from moseg.datasets.synthetic import SynthConfig, clip_seed, generate_clip

    root = Path(root)
    cfg = SynthConfig.from_dict({**dict(generator or {}), "save_frames": True, "save_masks": True})
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".tmp-{root.name}-{uuid.uuid4().hex[:8]}"
    names = []
    try:
        for i in range(int(num_clips)):
            name = f"synth{i:03d}"
            seq = generate_clip(cfg, clip_seed(int(seed), "bench", i), name=name).sequence
            gt = moving_object_masks(seq.masks, seq.object_moving)
            fdir = tmp / "JPEGImages" / resolution / name
            mdir = tmp / "Annotations" / resolution / name
            fdir.mkdir(parents=True)
            mdir.mkdir(parents=True)
            for t in range(seq.num_frames):
                bgr = np.ascontiguousarray(seq.frames[t][..., ::-1])
                cv2.imwrite(str(fdir / f"{t:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
                write_mask_png(mdir / f"{t:05d}.png", gt[t])
            names.append(name)
        (tmp / STAMP).write_text(json.dumps(_settings(num_clips, seed, generator), sort_keys=True))
        lists = tmp / "ImageSets" / "2017"
        lists.mkdir(parents=True)
        (lists / f"{split}.txt").write_text("\n".join(names) + "\n")
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d synthetic benchmark clips to %s", len(names), root)
    return root
