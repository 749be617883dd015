"""Synthetic videos for the real tracker: procedural scenes rendered to a DAVIS-layout folder.

The scenes of :mod:`moseg.datasets.synthetic` (textured planes, a camera that pans, tilts, rolls,
zooms and travels, static objects that move in the image by parallax alone, independently moving
objects) are rendered at video size and written as frames plus masks of the moving objects:

    <raw>/JPEGImages/480p/<name>/00000.jpg ...
    <raw>/Annotations/480p/<name>/00000.png ...   palette PNG: 0 background, k = moving object k
    <raw>/ImageSets/2017/<split>.txt

``python -m data_prep.davis dataset.raw=<raw> ...`` then runs them through the same preprocessing
as every real video (opencv tracker, weight-free appearance features), and labels the tracks
from the masks at their query frame. The classifier so trains on the tracker's real errors (drift,
identity swaps, lost tracks) rather than on exact tracks, with labels from the renderer.

Static objects are left out of the masks: the masks show what moves, as DAVIS's do. Each clip
is written to a temporary folder and renamed into place, so an interrupted run leaves no
half-written sequence, and a rerun adds only the clips that are missing.

Run ``python -m data_prep.synthetic_video`` (Hydra; settings in
moseg/conf/dataset/synthetic_video.yaml).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from moseg.datasets.davislike import Extras, TexturePool, add_extras
from moseg.datasets.synthetic import SynthConfig, build_scene, render
from moseg.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

VERSION = 1
EXTRAS_KEY = 101  # third word of the extras' seed sequence (seed, index, EXTRAS_KEY)
# settings of the scene generator that matter here (tracks, depth and features come from the
# preprocessing, not from the generator)
SCENE_KEYS = (
    "height",
    "width",
    "num_frames",
    "num_static",
    "num_moving",
    "fov_deg",
    "camera_travel",
    "camera_static_prob",
    "max_pan_deg",
    "max_tilt_deg",
    "max_roll_deg",
    "zoom",
    "background_depth",
    "background_tilt_deg",
    "object_px",
    "object_speed_px",
    "cross_prob",
    "late_start_prob",
    "max_spin_deg",
    "scale_change",
)


def _palette() -> list[int]:
    """A fixed 256-colour palette (index 0 black) for the annotation PNGs."""
    rng = np.random.default_rng(7)
    pal = rng.integers(64, 256, size=(256, 3))
    pal[0] = 0
    return pal.astype(np.uint8).ravel().tolist()


PALETTE = _palette()


def clip_name(index: int, split: str = "train") -> str:
    return f"synthvid_{index:05d}" if split == "train" else f"synthvid_{split}_{index:05d}"


def moving_masks(ids: np.ndarray, object_moving: np.ndarray) -> np.ndarray:
    """``[T, H, W]`` uint8: the layer id where a moving layer is visible, else 0."""
    keep = np.zeros(256, np.uint8)
    n = len(object_moving)
    keep[:n] = np.where(object_moving, np.arange(n), 0)
    return keep[ids]


def write_clip(raw: Path, name: str, frames: np.ndarray, masks: np.ndarray, quality: int) -> None:
    """Frames (RGB) and masks of one clip, into place at once (temporary folders, then rename)."""
    dirs = {
        "JPEGImages": raw / "JPEGImages" / "480p" / name,
        "Annotations": raw / "Annotations" / "480p" / name,
    }
    tmp = {k: d.with_name(f".{name}.tmp") for k, d in dirs.items()}
    for d in tmp.values():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for t, (img, m) in enumerate(zip(frames, masks, strict=True)):
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(
            str(tmp["JPEGImages"] / f"{t:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]
        ):
            raise OSError(f"{tmp['JPEGImages']}: cannot write frame {t}")
        png = Image.fromarray(m, mode="P")
        png.putpalette(PALETTE)
        png.save(tmp["Annotations"] / f"{t:05d}.png")
    # the annotations go last: a clip counts as written once both folders are in place
    for k in ("JPEGImages", "Annotations"):
        shutil.rmtree(dirs[k], ignore_errors=True)
        tmp[k].rename(dirs[k])


def is_written(raw: Path, name: str, num_frames: int) -> bool:
    a = raw / "Annotations" / "480p" / name
    j = raw / "JPEGImages" / "480p" / name
    return (
        a.is_dir()
        and j.is_dir()
        and len(list(a.glob("*.png"))) == num_frames
        and len(list(j.glob("*.jpg"))) == num_frames
    )


def make_clip(
    cfg: SynthConfig,
    seed: int,
    index: int,
    extras: Extras | None = None,
    pool: TexturePool | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(frames [T, H, W, 3] RGB, masks [T, H, W], info)`` of clip ``index``.

    ``extras`` (:mod:`moseg.datasets.davislike`) draw from their own generator, so the base scene
    of a clip is the same with and without them."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    scene = build_scene(rng, cfg)
    info: dict[str, Any] = {}
    if extras is not None:
        xrng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), EXTRAS_KEY]))
        info.update(add_extras(scene, xrng, extras, (cfg.height, cfg.width), pool))
    r = render(scene, cfg.height, cfg.width)
    masks = moving_masks(r.ids, scene.object_moving)
    info.update(
        {
            "moving_objects": int(scene.object_moving.sum()),
            "static_objects": int((~scene.object_moving[1:]).sum()),
            "moving_fraction": round(float((masks > 0).mean()), 4),
        }
    )
    return r.frames, masks, info


def generate(
    raw: str | Path,
    count: int,
    generator: dict[str, Any],
    seed: int = 0,
    quality: int = 90,
    split: str = "train",
    progress: bool = True,
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write clips ``0 .. count-1`` under ``raw`` (missing ones only) and the split list.

    ``extras``: the DAVIS-like additions of :class:`moseg.datasets.davislike.Extras` (none when
    empty).
    A folder made with other settings is refused rather than mixed."""
    raw = Path(raw)
    unknown = set(generator) - set(SCENE_KEYS)
    if unknown:
        raise ValueError(f"unknown synthetic_video generator settings: {sorted(unknown)}")
    cfg = SynthConfig.from_dict({**generator, "num_tracks": 1, "feature_dim": 0})
    settings = {
        "version": VERSION,
        "seed": int(seed),
        "quality": int(quality),
        "generator": {k: getattr(cfg, k) for k in SCENE_KEYS},
    }
    ex = Extras.from_dict(extras) if extras else None
    pool = None
    if ex is not None:
        settings["extras"] = ex.to_dict()  # only when given: older folders keep their stamp
        if ex.texture_root and (ex.real_background_prob > 0 or ex.real_object_prob > 0):
            pool = TexturePool(ex.texture_root)
    settings = json.loads(json.dumps(settings))
    raw.mkdir(parents=True, exist_ok=True)
    stamp = raw / "synthetic_video.json"
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if old.get("settings") != settings:
            raise ValueError(
                f"{stamp}: this folder was made with other settings; give another "
                "dataset.raw or remove the folder"
            )
    atomic_write_text(stamp, json.dumps({"settings": settings}, indent=1))
    names, made, stats = [], 0, []
    for i in tqdm(range(count), desc="synthetic videos", disable=not progress):
        name = clip_name(i, split)
        names.append(name)
        if is_written(raw, name, cfg.num_frames):
            continue
        frames, masks, info = make_clip(cfg, seed, i, ex, pool)
        write_clip(raw, name, frames, masks, quality)
        stats.append({"name": name, **info})
        made += 1
    lists = raw / "ImageSets" / "2017"
    lists.mkdir(parents=True, exist_ok=True)
    atomic_write_text(lists / f"{split}.txt", "".join(n + "\n" for n in names))
    log.info("%s: %d clips (%d written now)", raw, count, made)
    return {"clips": count, "written": made, "stats": stats}


def main() -> None:
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from moseg.config import CONF_DIR  # (importing it registers the resolvers)

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prepare")
    def _run(cfg: DictConfig) -> None:
        d = OmegaConf.to_container(cfg.dataset, resolve=True)
        if d.get("name") not in ("synthetic_video", "synthetic_davislike"):
            raise SystemExit("run with dataset=synthetic_video or dataset=synthetic_davislike")
        res = generate(
            d["raw"],
            int(d["clips"]),
            d["generator"],
            seed=int(d["seed"]),
            quality=int(d["jpeg_quality"]),
            split=str(d.get("split", "train")),
            progress=bool(cfg.progress),
            extras=d.get("extras") or None,
        )
        print(f"{d['raw']}: {res['clips']} clips, {res['written']} written now")

    if not any(a.startswith("dataset=") for a in sys.argv[1:]):
        sys.argv = [sys.argv[0], "dataset=synthetic_video", *sys.argv[1:]]
    _run()


if __name__ == "__main__":
    main()
