"""Dynamic Replica -> the HDF5 contract (``python -m data_prep.dynamic_replica dataset.raw=...``).

Raw layout (as facebookresearch/dynamic_stereo publishes it): ``<raw>/<split>/
frame_annotations_<split>.jgz``, a gzipped JSON list with one entry per frame and camera
(``sequence_name``, ``frame_number``, ``frame_timestamp``, ``camera_name`` left/right, ``image``
{path, size (H, W)}, ``depth`` {path, scale_adjustment}, ``trajectories`` {path},
``instance_id_map_path``, ...). Paths are relative to ``<raw>/<split>``. Per frame:

- ``depths/*.geometric.png``: 16-bit PNG whose bits are float16 depth;
- ``instance_id_maps/*.png``: object ids per pixel;
- ``trajectories/<frame>.pth``: a torch dict of one entry per tracked mesh vertex, the same
  vertices in every frame: ``traj_3d_world`` [N, 3], ``traj_2d`` [N, 2 or 3] px (x, y, ...),
  ``verts_inds_vis`` [N] visibility, ``instances`` [N] object id (0 = the static room).

Labels (configurable): a vertex is dynamic if its largest 3D step between consecutive kept frames
is >= ``step_threshold`` world units; an object moves if more than ``object_dynamic_fraction`` of
its vertices are dynamic. Tracks are the dataset's 2D trajectories (query frames on a grid, each
track visible at its query frame, labelled by its own vertex's object) or, without them, the
configured tracker labelled through the instance maps. Depth is the dataset's. See
docs/datasets/dynamic_replica.md for what could not be confirmed.
"""

from __future__ import annotations

import gzip
import json
import logging
import pickle
import re
import zlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
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
from moseg.io.contract import LABEL_UNKNOWN, MASK_VOID, Sequence
from moseg.prep.frames import FrameSpec, build_frames, natural_key, read_image, resize_longest
from moseg.prep.jobs import Job
from moseg.prep.pipeline import preprocess, resize_masks

log = logging.getLogger(__name__)

VERSION = 1
SOURCE = "dynamic_replica"
FN = "moseg.datasets.dynamic_replica:convert"


@dataclass(frozen=True)
class DynamicRule:
    """A vertex is dynamic if its largest step between consecutive kept frames is at least
    ``step_threshold`` world units; an object moves if more than ``object_dynamic_fraction`` of
    its (vertex, frame) entries are dynamic."""

    step_threshold: float = 1e-4
    object_dynamic_fraction: float = 0.5

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DynamicRule:
        rule = float_settings(cls, d, "Dynamic Replica label")
        if rule.step_threshold <= 0 or not 0 <= rule.object_dynamic_fraction < 1:
            raise ValueError(f"need step_threshold > 0 and 0 <= fraction < 1, got {rule}")
        return rule


# ----------------------------------------------------------------------------------------------
# Annotations
# ----------------------------------------------------------------------------------------------
def read_annotations(path: Path) -> list[dict[str, Any]]:
    """The frame annotations of one split (a gzipped JSON list); errors name the file."""
    try:
        with gzip.open(path, "rt", encoding="utf8") as f:
            data = json.load(f)
    except (OSError, EOFError, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot be read as gzipped JSON frame annotations ({e})") from e
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a list of frame annotations, got {type(data).__name__}")
    return data


def _path(entry: Mapping[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` present as a path string or as ``{"path": ...}``."""
    for key in keys:
        v = entry.get(key)
        if isinstance(v, str) and v:
            return v
        if isinstance(v, Mapping) and isinstance(v.get("path"), str) and v["path"]:
            return v["path"]
    return None


def compact_frame(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What the converter needs of one frame annotation (plain JSON, part of the job digest)."""
    image = entry.get("image") if isinstance(entry.get("image"), Mapping) else {}
    depth = entry.get("depth") if isinstance(entry.get("depth"), Mapping) else {}
    size = image.get("size")
    return {
        "frame": int(entry["frame_number"]),
        "t": entry.get("frame_timestamp"),
        "image": _path(entry, "image"),
        "size": [int(v) for v in size]
        if isinstance(size, list | tuple) and len(size) == 2
        else None,
        "depth": _path(entry, "depth"),
        "depth_scale": float(depth.get("scale_adjustment") or 1.0),
        "traj": _path(entry, "trajectories"),
        "ids": _path(entry, "instance_id_map_path", "instance_id_map", "instance_id_maps"),
    }


# ----------------------------------------------------------------------------------------------
# Per-frame files
# ----------------------------------------------------------------------------------------------
def read_geometric_depth(path: Path) -> np.ndarray:
    """A ``*.geometric.png``: 16-bit PNG whose bits are float16 depth -> ``[H, W] float32``,
    NaN where the depth is not positive or not finite."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: does not exist")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"{path}: cannot be read as a PNG")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path}: expected a one-channel 16-bit PNG, got {raw.shape} {raw.dtype}")
    d = np.ascontiguousarray(raw).view(np.float16).astype(np.float32)
    with np.errstate(invalid="ignore"):
        d[~(np.isfinite(d) & (d > 0))] = np.nan
    return d


def _array(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


TRAJ_KEYS = ("traj_3d_world", "traj_2d", "verts_inds_vis", "instances")


def _short(e: Exception) -> str:
    """torch's load errors run to many lines; keep what says what failed."""
    text = str(e)
    m = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if m:
        return f"it holds {m.group(1)}, which loading with weights_only=True refuses"
    m = re.search(r"Unsupported operand \d+", text)
    if m:
        return f"not a torch file: {m.group(0)}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]


def load_trajectories(path: Path, trusted: bool) -> dict[str, np.ndarray]:
    """One ``trajectories/*.pth`` file as numpy arrays (see the module docstring)."""
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"{path}: does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as e:
        hint = ""
        if not trusted and "Unsupported global" in str(e):
            hint = (
                "; if it is a trusted Dynamic Replica file holding more than tensors, set "
                "dataset.trusted_pickles=true"
            )
        raise ValueError(f"{path}: cannot be read as a torch file ({_short(e)}){hint}") from e
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: cannot be read as a torch file ({_short(e)})") from e
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a dict, got {type(data).__name__}")
    missing = [k for k in TRAJ_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: has no {missing} (has {sorted(data)})")
    out = {k: _array(data[k]) for k in TRAJ_KEYS}
    n = len(out["verts_inds_vis"].reshape(-1))
    x3, x2 = out["traj_3d_world"], out["traj_2d"]
    if x3.shape != (n, 3) or x2.ndim != 2 or x2.shape[0] != n or x2.shape[1] < 2:
        raise ValueError(
            f"{path}: traj_3d_world {x3.shape} / traj_2d {x2.shape} / verts_inds_vis ({n},) "
            "do not describe the same points"
        )
    if out["instances"].reshape(-1).shape != (n,):
        raise ValueError(f"{path}: instances has shape {out['instances'].shape}, expected ({n},)")
    return {
        "x3": x3.astype(np.float32),
        "x2": x2[:, :2].astype(np.float32),
        "vis": out["verts_inds_vis"].reshape(-1).astype(bool),
        "ids": out["instances"].reshape(-1).astype(np.int64),
    }


def dynamic_objects(
    x3: np.ndarray, ids: np.ndarray, rule: DynamicRule, num_ids: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x3 [T, N, 3]`` world positions and ``ids [T, N]`` -> per id: moving flag, dynamic
    fraction and entry count (``num_ids`` long); the vertex rule is in :class:`DynamicRule`."""
    if x3.shape[0] > 1:
        step = np.linalg.norm(np.diff(x3, axis=0), axis=2)
        step = np.where(np.isfinite(step), step, 0.0)
        dyn = step.max(axis=0) >= rule.step_threshold  # [N]
    else:
        dyn = np.zeros(x3.shape[1], bool)
    known = ids >= 0  # negative ids: vertices of no known object, left out
    total = np.bincount(ids[known], minlength=num_ids)[:num_ids]
    moved = np.bincount(ids[known & dyn[None, :]], minlength=num_ids)[:num_ids]
    frac = np.where(total > 0, moved / np.maximum(total, 1), 0.0)
    moving = (total > 0) & (moved > rule.object_dynamic_fraction * total)
    return moving, frac, total


def compact_ids(values: list[np.ndarray], where: str) -> tuple[np.ndarray | None, dict[int, int]]:
    """When some object id does not fit 8-bit masks: a lookup table mapping ids to 1..254 (0 stays
    0) and the new -> original id map; else ``(None, {})``."""
    ids = np.unique(np.concatenate([np.unique(v) for v in values]))
    ids = ids[ids >= 0]
    if ids.size == 0 or ids.max() < MASK_VOID:
        return None, {}
    nonzero = ids[ids != 0]
    if len(nonzero) >= MASK_VOID:
        raise ValueError(f"{where}: {len(nonzero)} objects do not fit 8-bit masks (at most 254)")
    lut = np.zeros(int(ids.max()) + 1, np.int64)
    lut[nonzero] = np.arange(1, len(nonzero) + 1)
    return lut, {k + 1: int(v) for k, v in enumerate(nonzero)}


# ----------------------------------------------------------------------------------------------
# One sequence
# ----------------------------------------------------------------------------------------------
def convert(
    *,
    name: str,
    split: str,
    sequence: str,
    base: str,
    annotations: str,
    frames_info: list[dict[str, Any]],
    prep: Mapping[str, Any],
    camera: str = "left",
    frames: Mapping[str, Any] | None = None,
    fps: float = 30.0,
    labels: Mapping[str, Any] | None = None,
    tracks: Mapping[str, Any] | None = None,
    use_dataset_depth: bool = True,
    trusted_pickles: bool = False,
) -> Sequence:
    """Read one Dynamic Replica sequence (one camera) and run it through the pipeline."""
    rule = DynamicRule.from_dict(labels)
    spec = FrameSpec.from_dict(frames)
    opts = dict(tracks or {})
    root = Path(base)
    where = f"{annotations} ({sequence}, {camera})"
    info = sorted(frames_info, key=lambda f: f["frame"])
    nums = [f["frame"] for f in info]
    if len(set(nums)) != len(nums):
        dup = next(n for n in nums if nums.count(n) > 1)
        raise ValueError(f"{where}: frame {dup} is listed twice")

    def file_of(f: Mapping[str, Any], key: str, what: str) -> Path:
        rel = f.get(key)
        if not rel:
            raise ValueError(f"{where}: frame {f['frame']} has no {what} path")
        return root / rel

    images = [file_of(f, "image", "image") for f in info]

    def read_rgb(i: int) -> np.ndarray:
        if not images[i].is_file():
            raise FileNotFoundError(f"{images[i]}: does not exist (listed in {annotations})")
        img = read_image(images[i])
        size = info[i].get("size")
        if size is not None and tuple(size) != img.shape[:2]:
            raise ValueError(
                f"{images[i]}: is {img.shape[1]}x{img.shape[0]}, the annotations say "
                f"{size[1]}x{size[0]} (H, W = {size})"
            )
        return img

    stamps = [f.get("t") for f in info]
    if all(isinstance(s, int | float) for s in stamps) and len(stamps) > 1:
        dt = float(np.median(np.diff(np.asarray(stamps, np.float64))))
        fps = round(1.0 / dt, 6) if dt > 0 else fps
    video = build_frames(
        read_rgb, [str(p) for p in images], spec, fps, str(images[0].parent.parent)
    )
    kept = video.indices
    size0, size = video.original_size, video.size

    # trajectories: labels need them, tracks may come from them
    trajs = [
        load_trajectories(file_of(info[i], "traj", "trajectories"), trusted_pickles) for i in kept
    ]
    n = len(trajs[0]["vis"])
    for i, tr in zip(kept, trajs, strict=True):
        if len(tr["vis"]) != n:
            raise ValueError(
                f"{file_of(info[i], 'traj', 'trajectories')}: has {len(tr['vis'])} points, the "
                f"first kept frame has {n}; the same vertices must be tracked in every frame"
            )
    x3 = np.stack([t["x3"] for t in trajs])  # [T, N, 3]
    ids = np.stack([t["ids"] for t in trajs])  # [T, N]

    masks = None
    if all(info[i].get("ids") for i in kept):
        maps = []
        for i in kept:
            p = file_of(info[i], "ids", "instance_id_map")
            maps.append(sized(read_id_map(p), size0, p))
        masks = np.stack(maps)
    lut, raw_ids = compact_ids([ids] + ([masks] if masks is not None else []), where)
    if lut is not None:
        ids = np.where(ids >= 0, lut[np.maximum(ids, 0)], -1)
        masks = lut[masks] if masks is not None else None
    num_ids = int(max(ids.max(initial=0), 0)) + 1
    moving, frac, count = dynamic_objects(x3, ids, rule, num_ids)
    object_moving = moving.astype(bool)
    no_points: list[int] = []
    if masks is not None:
        in_masks = np.unique(masks)
        no_points = [int(k) for k in in_masks if k >= num_ids or count[k] == 0]
        if no_points:  # objects the trajectories say nothing about: unknown, never guessed
            masks = np.where(np.isin(masks, no_points), MASK_VOID, masks)
        masks = resize_masks(masks.astype(np.uint8), size)

    depth = None
    if use_dataset_depth:
        dmaps = []
        side = (prep.get("prep") or {}).get("depth_max_side", 256)
        for i in kept:
            if not info[i].get("depth"):
                raise ValueError(
                    f"{where}: frame {info[i]['frame']} has no depth path; set "
                    "dataset.use_dataset_depth=false to convert without the dataset's depth"
                )
            p = file_of(info[i], "depth", "depth")
            d = sized(read_geometric_depth(p), size0, p)
            dmaps.append(resize_longest(d * float(info[i].get("depth_scale") or 1.0), side))
        depth = np.stack(dmaps)

    objects = [
        {
            "id": k,
            **({"raw_id": raw_ids.get(k, 0)} if raw_ids else {}),
            "entries": int(count[k]),
            "dynamic_fraction": round(float(frac[k]), 4),
            "moving": bool(moving[k]),
        }
        for k in range(num_ids)
        if count[k] > 0
    ]
    dataset_info: dict[str, Any] = {
        "name": "dynamic_replica",
        "converter": FN,
        "converter_version": VERSION,
        "annotations": annotations,
        "sequence": sequence,
        "camera": camera,
        "object_rule": {
            "rule": "vertex dynamic iff its largest 3D step between consecutive kept frames >= "
            "step_threshold; object moving iff more than object_dynamic_fraction of its "
            "(vertex, frame) entries are dynamic",
            "step_threshold": rule.step_threshold,
            "object_dynamic_fraction": rule.object_dynamic_fraction,
        },
        "objects": objects,
        "ids_without_points_set_void": no_points,
        "instance_maps": masks is not None,
    }
    extra: dict[str, Any] = {"dataset": dataset_info}

    given: dict[str, Any] = {}  # the dataset's own tracks, labels and instances
    if opts.get("use_dataset_tracks", True):
        given = dataset_tracks(trajs, ids, object_moving, size0, size, opts, name, where)
        extra["labels"] = {
            "rule": "given: object_moving of the object the track's own vertex belongs to",
            "ignore_boundary_px": 0,
        }
    elif masks is None:
        raise ValueError(
            f"{where}: has no instance_id_map paths, which the tracker path needs to label its "
            "tracks; use the dataset's trajectories (dataset.tracks.use_dataset_tracks=true)"
        )
    return preprocess(
        video,
        prep,
        name=name,
        source=SOURCE,
        split=split,
        masks=masks,
        object_moving=object_moving,
        **given,
        depth=depth,
        depth_kind="depth",
        extra_provenance=extra,
    )


def dataset_tracks(
    trajs: list[dict[str, np.ndarray]],
    ids: np.ndarray,
    object_moving: np.ndarray,
    size0: tuple[int, int],
    size: tuple[int, int],
    opts: Mapping[str, Any],
    name: str,
    where: str,
) -> dict[str, Any]:
    """The dataset's 2D trajectories of the kept frames (``trajs``, ``ids [T, N]``) as the
    pipeline's ``tracks``, ``label`` and ``instance``: query frames on a grid, each track
    visible there and labelled by the object its own vertex belongs to."""
    xy, vis = frame_tracks(
        np.stack([t["x2"] for t in trajs], axis=1),  # [N, T, 2]
        np.stack([t["vis"] for t in trajs], axis=1),
        size0,
        size,
    )
    rows, q, queries = grid_rows(vis, opts, name, 32, 1000)
    if len(rows) == 0:
        raise ValueError(f"{where}: no trajectory point is visible at a query frame")
    inst = ids.T[rows, q]
    label = np.where(inst >= 0, object_moving[np.maximum(inst, 0)], LABEL_UNKNOWN).astype(
        np.int8
    )  # a vertex without an object (negative id) is unknown
    info = {
        "source": "dataset trajectories",
        "points_in_file": len(trajs[0]["vis"]),
        "queries": queries,
    }
    gt = track_result(xy, vis, rows, q, size, info)
    return {"tracks": gt, "label": label, "instance": inst.astype(np.int32)}


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------
def make_jobs(cfg: DictConfig) -> list[Job]:
    """One job per sequence (of the configured camera) in every configured split."""
    d = to_plain(cfg.dataset)
    root = Path(str(d["raw"]))
    if not root.is_dir():
        raise InputError(
            f"{root}: Dynamic Replica raw folder does not exist; point dataset.raw at the folder "
            "holding <split>/frame_annotations_<split>.jgz"
        )
    camera = str(d.get("camera", "left"))
    found: list[tuple[str, str, dict[str, Any]]] = []
    looked = []
    for raw_split, out_split in (d.get("splits") or {}).items():
        ann = root / str(raw_split) / f"frame_annotations_{raw_split}.jgz"
        looked.append(str(ann))
        if not ann.is_file():
            continue
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for i, e in enumerate(read_annotations(ann)):
            if not isinstance(e, Mapping) or "sequence_name" not in e or "frame_number" not in e:
                raise InputError(f"{ann}: entry {i} has no sequence_name / frame_number")
            if (e.get("camera_name") or "left") != camera:
                continue
            try:
                groups[str(e["sequence_name"])].append(compact_frame(e))
            except (TypeError, ValueError) as err:
                raise InputError(f"{ann}: entry {i} is malformed ({err})") from err
        for seq in sorted(groups, key=natural_key):
            name = seq if camera == "left" else f"{seq}_{camera}"
            found.append(
                (
                    str(out_split),
                    name,
                    {
                        "sequence": seq,
                        "base": str(ann.parent),
                        "annotations": str(ann),
                        "frames_info": sorted(groups[seq], key=lambda f: f["frame"]),
                    },
                )
            )
    if not found:
        raise InputError(
            f"{root}: no Dynamic Replica sequences for camera {camera!r}; looked for "
            + ", ".join(looked)
        )
    found = select_found(found, d.get("sequences"), str(root), d.get("max_per_split"))
    common = {
        "camera": camera,
        "trusted_pickles": bool(d.get("trusted_pickles", False)),
        **dataset_settings(cfg, d, fps=30.0),
    }
    return sequence_jobs(found, d["out"], FN, common, VERSION)


if __name__ == "__main__":
    main("dynamic_replica", make_jobs)
