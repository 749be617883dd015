"""Kubric MOVi-F -> the HDF5 contract (``python -m data_prep.kubric dataset.raw=...``).

Two raw formats, chosen by ``dataset.format`` (``auto`` detects them):

- ``tfds``: the TFDS release, read with ``tfds.load("movi_f/<res>", data_dir=<raw>)``
  (``tensorflow-datasets`` is optional and imported only here). An example holds ``video``
  [T, H, W, 3] uint8, ``segmentations`` [T, H, W, 1] (0 background, object ``i`` -> ``i + 1``),
  ``depth`` [T, H, W, 1] uint16 spanning ``metadata.depth_range`` and ``instances`` with per-frame
  ``positions`` [K, T, 3] and ``quaternions`` [K, T, 4].
- ``export``: Kubric's own per-scene output, one folder per scene with ``rgba_00000.png ...``,
  ``segmentation_00000.png ...`` (palette PNG of instance ids), ``depth_00000.tiff ...`` (float32)
  and ``metadata.json`` (``metadata`` + ``instances``), optionally with point tracks in
  ``tracks.npz`` (``target_points`` [N, T, 2] px (x, y), ``occluded`` [N, T], optional
  ``query_frame`` [N] or TAP-Vid ``query_points`` [N, 3] (t, y, x)).

Labels: an object moves iff its own 3D motion over the kept frames reaches a threshold: its
position leaves its first-frame position by ``move_threshold`` world units, or its orientation
turns ``rotate_threshold_deg`` away from its first-frame orientation. A track is labelled by the
object under its query point (:func:`moseg.prep.labels.label_from_masks`). Tracks are the exported
ones when present, else the configured tracker's. Depth is the dataset's (distance to the camera
centre). See docs/datasets/kubric.md.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig

from moseg.config import to_plain
from moseg.datasets.common import (
    InputError,
    dataset_settings,
    main,
    select_found,
    sequence_jobs,
)
from moseg.datasets.raw import (
    float_settings,
    frame_tracks,
    grid_rows,
    read_id_map,
    sized,
    track_result,
)
from moseg.io.contract import MASK_VOID, Sequence
from moseg.prep.base import MissingBackendError, TrackResult
from moseg.prep.frames import (
    Frames,
    FrameSpec,
    build_frames,
    natural_key,
    read_image,
    resize_longest,
)
from moseg.prep.jobs import Job
from moseg.prep.pipeline import preprocess, resize_masks

log = logging.getLogger(__name__)

VERSION = 1
SOURCE = "kubric"
FN = "moseg.datasets.kubric:convert"
TFDS_INSTALL = "pip install tensorflow-datasets tensorflow"
FORMATS = ("auto", "tfds", "export")


# ----------------------------------------------------------------------------------------------
# Object motion and labels
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MotionRule:
    """An object moves iff it travels ``move_threshold`` world units from its first-frame
    position, or turns ``rotate_threshold_deg`` from its first-frame orientation."""

    move_threshold: float = 0.01
    rotate_threshold_deg: float = 2.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> MotionRule:
        rule = float_settings(cls, d, "Kubric label")
        if rule.move_threshold <= 0 or rule.rotate_threshold_deg <= 0:
            raise ValueError(f"label thresholds must be > 0, got {rule}")
        return rule


def object_motion(positions: np.ndarray, quaternions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per object: the largest distance from its first-frame position and the largest rotation
    angle (degrees) from its first-frame orientation. ``positions [K, T, 3]``, ``quaternions
    [K, T, 4]`` (any component order, as long as it is the same in every frame)."""
    p = np.asarray(positions, np.float64)
    q = np.asarray(quaternions, np.float64)
    K = p.shape[0]
    if K == 0:
        return np.zeros(0), np.zeros(0)
    dist = np.linalg.norm(p - p[:, :1], axis=2).max(axis=1)
    q = q / np.maximum(np.linalg.norm(q, axis=2, keepdims=True), 1e-12)
    dot = np.abs(np.sum(q * q[:, :1], axis=2))  # |cos(angle / 2)|; q and -q are one rotation
    angle = np.degrees(2.0 * np.arccos(np.clip(dot, 0.0, 1.0))).max(axis=1)
    return dist, angle


# ----------------------------------------------------------------------------------------------
# Raw scenes
# ----------------------------------------------------------------------------------------------
@dataclass
class RawScene:
    """One Kubric scene at the kept frames, before the pipeline."""

    frames: Frames  # kept frames, resized as the FrameSpec says
    segmentation: np.ndarray  # [T, H0, W0] instance ids at the original size
    positions: np.ndarray  # [K, T, 3] world positions at the kept frames
    quaternions: np.ndarray  # [K, T, 4]
    where: str  # the files, for error messages
    is_dynamic: np.ndarray | None = None  # [K] Kubric's "tossed" flag (provenance only)
    depth: np.ndarray | None = None  # [T, Hd, Wd] float32, distance to the camera centre
    tracks: TrackResult | None = None  # ground-truth tracks in the kept frames' pixels
    info: dict[str, Any] = field(default_factory=dict)


_FRAME_FILE = re.compile(r"^(?P<prefix>[a-z_]+?)_(?P<index>\d+)\.(?P<ext>[A-Za-z]+)$")


def frame_files(folder: Path, prefixes: tuple[str, ...], exts: tuple[str, ...]) -> list[Path]:
    """``<prefix>_<index>.<ext>`` files of ``folder`` ordered by index; a gap is an error."""
    found: dict[int, Path] = {}
    for p in folder.iterdir():
        m = _FRAME_FILE.match(p.name)
        if m and m["prefix"] in prefixes and m["ext"].lower() in exts:
            found[int(m["index"])] = p
    idx = sorted(found)
    for want, have in enumerate(idx):
        if want != have:
            raise FileNotFoundError(
                f"{folder / f'{prefixes[0]}_{want:05d}.{exts[0]}'}: missing "
                f"(found {len(idx)} {prefixes[0]} frames up to index {idx[-1]})"
            )
    return [found[i] for i in idx]


def read_json(path: Path) -> Any:
    """A JSON file; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: is not valid JSON ({e})") from e


def _counts_match(folder: Path, what: str, files: list[Path], rgb: list[Path]) -> None:
    if len(files) != len(rgb):
        extra = (
            f"{files[len(rgb)].name} has no RGB frame"
            if len(files) > len(rgb)
            else f"{rgb[len(files)].name} has no {what} frame"
        )
        raise ValueError(
            f"{folder}: {len(files)} {what} frames but {len(rgb)} RGB frames ({extra})"
        )


def read_float_map(path: Path) -> np.ndarray:
    """A single-channel float TIFF (Kubric's depth) as ``[H, W] float32``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: does not exist")
    try:
        import tifffile

        img = tifffile.imread(str(path))
    except ImportError:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except Exception as e:  # tifffile raises several types for broken files
        raise ValueError(f"{path}: cannot be read as a TIFF ({e})") from e
    if img is None:
        raise ValueError(f"{path}: cannot be read as a TIFF")
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"{path}: expected one channel, got shape {img.shape}")
    return img.astype(np.float32)


def _instances_arrays(
    instances: list[Mapping[str, Any]], total: int, kept: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``positions [K, T, 3]``, ``quaternions [K, T, 4]`` at the kept frames, ``is_dynamic [K]``."""
    pos, rot, dyn = [], [], []
    for k, inst in enumerate(instances):
        try:
            p = np.asarray(inst["positions"], np.float64)
            q = np.asarray(inst["quaternions"], np.float64)
        except KeyError as e:
            raise ValueError(f"{where}: instance {k} has no {e} (per-frame motion)") from e
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: instance {k} has malformed positions ({e})") from e
        if p.shape != (total, 3) or q.shape != (total, 4):
            raise ValueError(
                f"{where}: instance {k} has positions {p.shape} and quaternions {q.shape}, "
                f"expected ({total}, 3) and ({total}, 4) for {total} frames"
            )
        if not (np.isfinite(p).all() and np.isfinite(q).all()):
            raise ValueError(f"{where}: instance {k} has non-finite positions or quaternions")
        pos.append(p[kept])
        rot.append(q[kept])
        dyn.append(bool(inst.get("is_dynamic", False)))
    T = len(kept)
    return (
        np.stack(pos) if pos else np.zeros((0, T, 3)),
        np.stack(rot) if rot else np.zeros((0, T, 4)),
        np.asarray(dyn, bool),
    )


def read_export_scene(
    scene_dir: Path,
    spec: FrameSpec,
    fps: float,
    use_depth: bool,
    depth_max_side: int | None,
    tracks: Mapping[str, Any],
    name: str,
) -> RawScene:
    """One scene folder as Kubric's writer leaves it (see the module docstring)."""
    if not scene_dir.is_dir():
        raise FileNotFoundError(f"{scene_dir}: scene folder does not exist")
    meta_path = scene_dir / "metadata.json"
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not isinstance(meta.get("instances", []), list):
        raise ValueError(f"{meta_path}: expected an object with 'metadata' and 'instances'")
    scene_meta = meta.get("metadata") or {}
    rgb = frame_files(scene_dir, ("rgba", "rgb"), ("png",))
    if not rgb:
        raise FileNotFoundError(f"{scene_dir}: no rgba_00000.png ... frames")
    seg = frame_files(scene_dir, ("segmentation",), ("png",))
    _counts_match(scene_dir, "segmentation", seg, rgb)
    total = len(rgb)
    declared = scene_meta.get("num_frames")
    if declared is not None and int(declared) != total:
        raise ValueError(f"{meta_path}: says num_frames={declared}, but {scene_dir} has {total}")
    fps = float(scene_meta.get("frame_rate") or fps)
    frames = build_frames(
        lambda i: read_image(rgb[i]), [str(p) for p in rgb], spec, fps, str(scene_dir)
    )
    kept = frames.indices
    H0, W0 = frames.original_size
    _check_resolution(scene_meta, (H0, W0), meta_path)

    segmentation = np.stack([sized(read_id_map(seg[i]), (H0, W0), seg[i]) for i in kept])
    positions, quaternions, is_dynamic = _instances_arrays(
        meta.get("instances", []), total, kept, str(meta_path)
    )
    depth = None
    if use_depth:
        dfiles = frame_files(scene_dir, ("depth",), ("tiff", "tif"))
        _counts_match(scene_dir, "depth", dfiles, rgb)
        depth = np.stack(
            [
                resize_longest(
                    sized(read_float_map(dfiles[i]), (H0, W0), dfiles[i]), depth_max_side
                )
                for i in kept
            ]
        )
    gt = None
    tracks_path = scene_dir / str(tracks.get("file", "tracks.npz"))
    if tracks.get("use_dataset_tracks", True) and tracks_path.exists():
        gt = read_npz_tracks(tracks_path, total, frames, tracks, name)
    return RawScene(
        frames=frames,
        segmentation=segmentation,
        positions=positions,
        quaternions=quaternions,
        where=str(scene_dir),
        is_dynamic=is_dynamic,
        depth=depth,
        tracks=gt,
        info={
            "format": "export",
            "scene_dir": str(scene_dir),
            "tracks_file": str(tracks_path) if gt is not None else None,
        },
    )


def _check_resolution(scene_meta: Mapping[str, Any], size: tuple[int, int], where: Path) -> None:
    """``metadata.resolution`` ((W, H) in Kubric, but MOVi is square: compared as a set) or
    ``width``/``height`` must match the frames."""
    H, W = size
    if "width" in scene_meta and "height" in scene_meta:
        if (int(scene_meta["height"]), int(scene_meta["width"])) != (H, W):
            raise ValueError(
                f"{where}: says {scene_meta['width']}x{scene_meta['height']}, frames are {W}x{H}"
            )
    elif scene_meta.get("resolution") is not None:
        res = sorted(int(v) for v in scene_meta["resolution"])
        if res != sorted((H, W)):
            raise ValueError(
                f"{where}: says resolution {scene_meta['resolution']}, frames are {W}x{H}"
            )


def read_npz_tracks(
    path: Path, total: int, frames: Frames, opts: Mapping[str, Any], name: str
) -> TrackResult:
    """Exported point tracks at the kept frames, in the kept frames' pixels.

    ``target_points [N, T, 2]`` (x, y) px, ``occluded [N, T]``; with ``query_frame [N]`` or TAP-Vid
    ``query_points [N, 3]`` (t, y, x) the tracks are carried as they are (a track whose query frame
    is not kept is dropped), without them query frames are drawn on a grid
    (:func:`moseg.datasets.raw.grid_queries`).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"{path}: cannot be read as .npz point tracks ({e})") from e
    if "target_points" not in data or "occluded" not in data:
        raise ValueError(f"{path}: needs 'target_points' and 'occluded', has {sorted(data)}")
    pts = data["target_points"].astype(np.float32)
    occ = data["occluded"].astype(bool)
    if pts.ndim != 3 or pts.shape[1:] != (total, 2) or occ.shape != pts.shape[:2]:
        raise ValueError(
            f"{path}: target_points {pts.shape} / occluded {occ.shape} do not fit {total} frames "
            "(expected [N, T, 2] and [N, T])"
        )
    query = None
    if "query_frame" in data:
        query = data["query_frame"].astype(np.int64).reshape(-1)
    elif "query_points" in data:
        query = np.rint(data["query_points"][:, 0]).astype(np.int64)
    if query is not None and (
        query.shape != (len(pts),) or query.min(initial=0) < 0 or (query.max(initial=0) >= total)
    ):
        raise ValueError(f"{path}: query frames must be {len(pts)} values in [0, {total - 1}]")

    kept = frames.indices
    size = frames.size
    xy = pts[:, kept]
    if opts.get("origin", "center") == "corner":
        xy = xy - 0.5  # pixel corners at integers -> centres at integers
    xy, vis = frame_tracks(xy, ~occ[:, kept], frames.original_size, size)
    info: dict[str, Any] = {"source": "dataset", "file": str(path), "tracks_in_file": len(pts)}
    if query is not None:
        pos = np.full(total, -1, np.int64)
        pos[kept] = np.arange(len(kept))
        q = pos[query]
        keep = q >= 0
        if (~keep).any():
            info["dropped_query_not_kept"] = int((~keep).sum())
        rows = np.flatnonzero(keep)
        q = q[keep].astype(np.int32)
        hidden = ~vis[rows, q]
        if hidden.any():
            raise ValueError(
                f"{path}: {int(hidden.sum())} tracks are occluded or outside the frame at their "
                f"query frame (first: track {int(rows[np.flatnonzero(hidden)[0]])})"
            )
        info["queries"] = "given"
    else:
        rows, q, info["queries"] = grid_rows(vis, opts, name, 8, 5000)
    if len(rows) == 0:
        raise ValueError(f"{path}: no track is visible at a query frame of the kept frames")
    return track_result(xy, vis, rows, q, size, info)


def import_tfds() -> Any:
    """``tensorflow_datasets``, or an error that says how to install it."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise MissingBackendError(
            f"reading Kubric's TFDS release needs tensorflow-datasets ({e}). Install it with: "
            f"{TFDS_INSTALL}; or convert Kubric's per-scene export (dataset.format=export)"
        ) from e
    return tfds


def _text(v: Any) -> str:
    v = np.asarray(v).item() if isinstance(v, np.ndarray) else v
    return v.decode() if isinstance(v, bytes) else str(v)


def read_tfds_example(
    data_dir: str,
    tfds_name: str,
    raw_split: str,
    index: int,
    spec: FrameSpec,
    fps: float,
    use_depth: bool,
    depth_max_side: int | None,
) -> RawScene:
    """Example ``index`` of split ``raw_split`` of the TFDS release."""
    tfds = import_tfds()
    where = f"{data_dir}/{tfds_name} {raw_split}[{index}]"
    ds = tfds.load(
        tfds_name,
        data_dir=data_dir,
        split=f"{raw_split}[{index}:{index + 1}]",
        shuffle_files=False,
        download=False,
    )
    examples = list(tfds.as_numpy(ds))
    if len(examples) != 1:
        raise ValueError(f"{where}: expected one example, got {len(examples)}")
    ex = examples[0]
    try:
        video = np.asarray(ex["video"])
        seg = np.asarray(ex["segmentations"])
        inst = ex["instances"]
        meta = ex["metadata"]
        positions = np.asarray(inst["positions"], np.float64)
        quaternions = np.asarray(inst["quaternions"], np.float64)
    except KeyError as e:
        raise ValueError(f"{where}: example has no {e}") from e
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"{where}: video has shape {video.shape}, expected [T, H, W, 3]")
    total, H0, W0 = video.shape[:3]
    seg = seg[..., 0] if seg.ndim == 4 else seg
    if seg.shape != (total, H0, W0):
        raise ValueError(f"{where}: segmentations {seg.shape} do not match video {video.shape}")
    K = positions.shape[0] if positions.ndim == 3 else 0
    if positions.shape != (K, total, 3) or quaternions.shape != (K, total, 4):
        raise ValueError(
            f"{where}: instances positions {positions.shape} / quaternions {quaternions.shape} "
            f"do not fit {total} frames"
        )
    frames = build_frames(
        lambda i: np.ascontiguousarray(video[i], dtype=np.uint8),
        [f"{where} frame {i}" for i in range(total)],
        spec,
        fps,
        where,
    )
    kept = frames.indices
    depth = None
    if use_depth:
        try:
            d = np.asarray(ex["depth"])
            lo, hi = (float(v) for v in np.asarray(meta["depth_range"]).reshape(-1)[:2])
        except KeyError as e:
            raise ValueError(f"{where}: example has no {e} (needed for depth)") from e
        d = d[..., 0] if d.ndim == 4 else d
        if d.shape != (total, H0, W0):
            raise ValueError(f"{where}: depth {d.shape} does not match video {video.shape}")
        depth = np.stack(
            [
                resize_longest(lo + d[i].astype(np.float32) / 65535.0 * (hi - lo), depth_max_side)
                for i in kept
            ]
        )
    is_dyn = inst.get("is_dynamic") if hasattr(inst, "get") else None
    return RawScene(
        frames=frames,
        segmentation=seg[kept].astype(np.int64),
        positions=positions[:, kept],
        quaternions=quaternions[:, kept],
        where=where,
        is_dynamic=None if is_dyn is None else np.asarray(is_dyn, bool).reshape(-1),
        depth=depth,
        info={
            "format": "tfds",
            "tfds_name": tfds_name,
            "data_dir": data_dir,
            "split": raw_split,
            "index": int(index),
            "video_name": _text(meta["video_name"]) if "video_name" in meta else None,
        },
    )


# ----------------------------------------------------------------------------------------------
# One sequence
# ----------------------------------------------------------------------------------------------
def scene_to_sequence(
    scene: RawScene,
    rule: MotionRule,
    prep: Mapping[str, Any],
    name: str,
    split: str,
) -> Sequence:
    """Object labels from the motion rule, then the shared pipeline."""
    dist, angle = object_motion(scene.positions, scene.quaternions)
    moving = (dist >= rule.move_threshold) | (angle >= rule.rotate_threshold_deg)
    K = len(moving)
    seg = scene.segmentation
    top = int(seg.max(initial=0))
    if seg.min(initial=0) < 0 or top > K:
        raise ValueError(
            f"{scene.where}: segmentation holds ids up to {top}, but the metadata lists {K} "
            "instances (ids 1..K, 0 = background)"
        )
    if K >= MASK_VOID:
        raise ValueError(f"{scene.where}: {K} instances do not fit 8-bit masks (at most 254)")
    object_moving = np.concatenate([[False], moving]).astype(bool)  # id 0: the static dome
    masks = resize_masks(seg.astype(np.uint8), scene.frames.size)
    objects = [
        {
            "id": k + 1,
            "max_displacement": round(float(dist[k]), 6),
            "max_rotation_deg": round(float(angle[k]), 4),
            "moving": bool(moving[k]),
            **(
                {"is_dynamic": bool(scene.is_dynamic[k])}
                if scene.is_dynamic is not None and k < len(scene.is_dynamic)
                else {}
            ),
        }
        for k in range(K)
    ]
    extra = {
        "dataset": {
            "name": "kubric_movi_f",
            "converter": FN,
            "converter_version": VERSION,
            **scene.info,
            "object_rule": {
                "rule": "moving iff max |p_t - p_0| >= move_threshold or max rotation angle from "
                "the first kept frame >= rotate_threshold_deg (over the kept frames); id 0 "
                "(background) static",
                "move_threshold": rule.move_threshold,
                "rotate_threshold_deg": rule.rotate_threshold_deg,
            },
            "objects": objects,
        }
    }
    return preprocess(
        scene.frames,
        prep,
        name=name,
        source=SOURCE,
        split=split,
        masks=masks,
        object_moving=object_moving,
        tracks=scene.tracks,
        depth=scene.depth,
        depth_kind="depth",
        extra_provenance=extra,
    )


def convert(
    *,
    name: str,
    split: str,
    format: str,
    prep: Mapping[str, Any],
    frames: Mapping[str, Any] | None = None,
    fps: float = 12.0,
    labels: Mapping[str, Any] | None = None,
    tracks: Mapping[str, Any] | None = None,
    use_dataset_depth: bool = True,
    scene_dir: str | None = None,
    data_dir: str | None = None,
    tfds_name: str | None = None,
    raw_split: str | None = None,
    index: int | None = None,
) -> Sequence:
    """Read one raw Kubric scene (``format`` export: ``scene_dir``; tfds: ``data_dir``,
    ``tfds_name``, ``raw_split``, ``index``) and run it through the pipeline."""
    spec = FrameSpec.from_dict(frames)
    rule = MotionRule.from_dict(labels)
    track_opts = dict(tracks or {})
    depth_side = (prep.get("prep") or {}).get("depth_max_side", 256)
    if format == "export":
        if scene_dir is None:
            raise ValueError("export format needs scene_dir")
        scene = read_export_scene(
            Path(scene_dir), spec, fps, use_dataset_depth, depth_side, track_opts, name
        )
    elif format == "tfds":
        if data_dir is None or tfds_name is None or raw_split is None or index is None:
            raise ValueError("tfds format needs data_dir, tfds_name, raw_split and index")
        scene = read_tfds_example(
            data_dir, tfds_name, raw_split, int(index), spec, fps, use_dataset_depth, depth_side
        )
    else:
        raise ValueError(f"unknown Kubric format {format!r}; one of {FORMATS[1:]}")
    return scene_to_sequence(scene, rule, prep, name, split)


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------
def detect_format(raw: str, fmt: str, tfds_name: str) -> str:
    """``tfds`` or ``export`` for the raw root (``fmt`` auto: by what the folder holds)."""
    if fmt not in FORMATS:
        raise InputError(f"dataset.format must be one of {FORMATS}, got {fmt!r}")
    remote = "://" in raw
    if not remote:
        root = Path(raw)
        if not root.is_dir():
            raise InputError(
                f"{raw}: Kubric raw folder does not exist; point dataset.raw at a TFDS data_dir "
                "(holding movi_f/) or at Kubric scene folders (<split>/<scene>/metadata.json)"
            )
        if not any(p for p in root.iterdir() if not p.name.startswith(".")):
            raise InputError(f"{raw}: Kubric raw folder is empty")
    if fmt != "auto":
        return fmt
    if remote or (Path(raw) / tfds_name.split("/")[0]).is_dir():
        return "tfds"
    root = Path(raw)
    if any(root.glob("*/metadata.json")) or any(root.glob("*/*/metadata.json")):
        return "export"
    raise InputError(
        f"{raw}: neither a TFDS data_dir (no {tfds_name.split('/')[0]}/ folder) nor Kubric scene "
        "folders (<split>/<scene>/metadata.json); set dataset.format or fix dataset.raw"
    )


def _export_found(root: Path, d: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found: list[tuple[str, str, dict[str, Any]]] = []
    for raw_split, out_split in (d.get("splits") or {}).items():
        folder = root / str(raw_split)
        if not folder.is_dir():
            continue
        scenes = sorted(
            (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: natural_key(p.name),
        )
        found += [(str(out_split), p.name, {"scene_dir": str(p)}) for p in scenes]
    flat = sorted(
        (p for p in root.iterdir() if (p / "metadata.json").is_file()),
        key=lambda p: natural_key(p.name),
    )
    if flat:
        if d.get("flat_split") is None:
            raise InputError(
                f"{root}: holds scene folders directly ({flat[0].name}, ...); put them under a "
                "split folder or set dataset.flat_split"
            )
        found += [(str(d["flat_split"]), p.name, {"scene_dir": str(p)}) for p in flat]
    if not found:
        raise InputError(
            f"{root}: no Kubric scenes; expected <split>/<scene>/ folders for the splits "
            f"{list((d.get('splits') or {}).keys())}"
        )
    return found


def _tfds_found(raw: str, d: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    try:
        tfds = import_tfds()
    except MissingBackendError as e:
        raise InputError(str(e)) from e
    name = str(d.get("tfds_name", "movi_f/256x256"))
    try:
        splits_info = tfds.builder(name, data_dir=raw).info.splits
    except Exception as e:  # TFDS raises many types for a missing or broken dataset
        raise InputError(f"{raw}: cannot open the TFDS dataset {name!r} there ({e})") from e
    found: list[tuple[str, str, dict[str, Any]]] = []
    for raw_split, out_split in (d.get("splits") or {}).items():
        if raw_split not in splits_info:
            log.warning("%s: TFDS dataset %s has no split %r", raw, name, raw_split)
            continue
        n = int(splits_info[raw_split].num_examples)
        found += [
            (
                str(out_split),
                f"{raw_split}_{i:06d}",
                {"data_dir": raw, "tfds_name": name, "raw_split": str(raw_split), "index": i},
            )
            for i in range(n)
        ]
    if not found:
        raise InputError(
            f"{raw}: TFDS dataset {name!r} has none of the splits {list(d.get('splits') or {})}"
        )
    return found


def make_jobs(cfg: DictConfig) -> list[Job]:
    """One job per Kubric scene under ``cfg.dataset.raw``."""
    d = to_plain(cfg.dataset)
    raw = str(d["raw"])
    fmt = detect_format(raw, str(d.get("format", "auto")), str(d.get("tfds_name", "movi_f")))
    found = _tfds_found(raw, d) if fmt == "tfds" else _export_found(Path(raw), d)
    found = select_found(found, d.get("sequences"), raw, d.get("max_per_split"))
    common = {"format": fmt, **dataset_settings(cfg, d, fps=12.0)}
    return sequence_jobs(found, d["out"], FN, common, VERSION)


if __name__ == "__main__":
    main("kubric", make_jobs)
