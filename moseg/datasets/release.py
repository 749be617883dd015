"""The reference release's preprocessed data -> the HDF5 contract (``python -m data_prep.release``).

For a tree made by the release's preprocessing (``core/utils/run_inference.py --depths --tracks
--dinos``). Per scene, in the README's layout ``<raw>/<folder>/<scene>/`` (or
``<raw>/<scene>/<folder>/``, as the release lays out Dynamic Replica and Waymo):

- ``images/``: the frames; their file names, sorted, are the frame names;
- ``bootstapir/<q>_<t>.npy``: ``[N, 4]`` (x, y, occlusion logit, expected distance) in frame ``t``
  of the points queried on frame ``q``, in frame pixels (``preproc/run_tapir.py``), for the query
  frames ``0, step, 2 step, ...``;
- ``depth_anything_v2/<t>.png``: 16-bit disparity, min-max scaled per frame (``run_depth.py``);
- ``dinos/<q>.npy`` ``[h, w, C]`` (or ``<q>.h5`` with dataset ``dinos``): DINOv2 maps of the
  query frames (``core/utils/dino_feat.py``);
- optional ground-truth masks (``dataset.folders.masks``): a track is moving iff the mask is > 0
  under its query point; without masks every label is -1.

Every track of every query frame is kept. Each convention, the release file it comes from, and
where we deliberately differ: docs/datasets/release.md.

    python -m data_prep.release dataset.raw=/data/davis_eval dataset.folders.images=480p
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
from omegaconf import DictConfig
from PIL import Image

from moseg.config import to_plain
from moseg.datasets.common import InputError, main, select_found, sequence_jobs
from moseg.datasets.raw import inside, sequence_rng
from moseg.io.contract import LABEL_UNKNOWN, Sequence, normalise_depth, sample_depth
from moseg.prep.frames import IMAGE_EXTS, read_image
from moseg.prep.jobs import Job
from moseg.prep.pipeline import resize_depth

log = logging.getLogger(__name__)

VERSION = 1
FN = "moseg.datasets.release:convert"
LAYOUTS = ("auto", "by_kind", "by_scene")
DEPTH_DECODINGS = ("uint16", "release_8bit")
FOLDER_KEYS = ("images", "tracks", "depth", "dinos", "masks")
UINT16_MAX = 65535


@dataclass(frozen=True)
class ReleaseOptions:
    """How to read a release tree; the keys of moseg/conf/dataset/release.yaml."""

    layout: str = "auto"
    folders: dict[str, str | None] = field(
        default_factory=lambda: {
            "images": "images",
            "tracks": "bootstapir",
            "depth": "depth_anything_v2",
            "dinos": "dinos",
            "masks": None,
        }
    )
    step: int = 10
    threshold: float = 0.5
    depth_decoding: str = "uint16"
    tracks_per_query: int | None = None
    seed: int = 0
    fps: float = 24.0

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.depth_decoding not in DEPTH_DECODINGS:
            raise ValueError(
                f"depth_decoding must be one of {DEPTH_DECODINGS}, got {self.depth_decoding!r}"
            )
        unknown = set(self.folders) - set(FOLDER_KEYS)
        if unknown:
            raise ValueError(f"unknown folders {sorted(unknown)}; known: {FOLDER_KEYS}")
        for key in ("images", "tracks"):
            if not self.folders.get(key):
                raise ValueError(f"folders.{key} must name a folder")
        if self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold}")
        if self.tracks_per_query is not None and self.tracks_per_query < 1:
            raise ValueError(f"tracks_per_query must be >= 1 or null, got {self.tracks_per_query}")

    @classmethod
    def from_dict(cls, d: Any) -> ReleaseOptions:
        """Options from a mapping (e.g. the ``dataset`` config); other keys are ignored."""
        d = dict(to_plain(d) or {})
        default = cls()
        folders = {**default.folders, **(d.get("folders") or {})}
        tpq = d.get("tracks_per_query")
        return cls(
            layout=str(d.get("layout", default.layout)),
            folders={k: (str(v) if v else None) for k, v in folders.items()},
            step=int(d.get("step", default.step)),
            threshold=float(d.get("threshold", default.threshold)),
            depth_decoding=str(d.get("depth_decoding", default.depth_decoding)),
            tracks_per_query=None if tpq is None else int(tpq),
            seed=int(d.get("seed", default.seed)),
            fps=float(d.get("fps", default.fps)),
        )


# ----------------------------------------------------------------------------------------------
# Where things are
# ----------------------------------------------------------------------------------------------
def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise InputError(f"{path}: {what} folder not found")


def detect_layout(raw: Path, images: str) -> str:
    """``by_kind`` if ``<raw>/<images>/`` exists, else ``by_scene`` if some ``<raw>/*/<images>/``
    does; :class:`InputError` otherwise."""
    if (raw / images).is_dir():
        return "by_kind"
    if any((p / images).is_dir() for p in raw.iterdir() if p.is_dir()):
        return "by_scene"
    raise InputError(
        f"{raw}: holds neither {images}/<scene>/ nor <scene>/{images}/; point dataset.raw at the "
        "folder holding the release's images/, bootstapir/, dinos/, depth_anything_v2/ (or set "
        "dataset.folders.images)"
    )


def list_scenes(raw: Path, layout: str, images: str) -> list[str]:
    """Scene names, sorted: sub-folders of ``<raw>/<images>`` (by_kind) or folders of ``raw``
    holding ``<images>/`` (by_scene)."""
    base = raw / images if layout == "by_kind" else raw
    _require_dir(base, "frame")
    subs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if layout == "by_scene":
        subs = [p for p in subs if (p / images).is_dir()]
    return [p.name for p in subs]


def scene_dirs(
    raw: Path, layout: str, folders: dict[str, str | None], scene: str
) -> dict[str, str | None]:
    """The folder of each kind for ``scene`` (None where the kind is switched off). An absolute
    folder setting is the parent of the scene folders in either layout."""
    out: dict[str, str | None] = {}
    for key in FOLDER_KEYS:
        name = folders.get(key)
        if not name:
            out[key] = None
        elif Path(name).is_absolute() or layout == "by_kind":
            out[key] = str(raw / name / scene)
        else:
            out[key] = str(raw / scene / name)
    return out


def image_files(folder: Path, what: str = "frame") -> list[Path]:
    """Image files of ``folder`` in the release's (lexical) order."""
    _require_dir(folder, what)
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS),
        key=lambda p: p.name,
    )
    if not files:
        raise InputError(f"{folder}: holds no {what} images")
    return files


def frame_size(files: list[Path]) -> tuple[int, int]:
    """(H, W) shared by every image; :class:`InputError` naming the first that differs."""
    size = None
    for p in files:
        try:
            with Image.open(p) as im:
                hw = (int(im.size[1]), int(im.size[0]))
        except OSError as e:
            raise InputError(f"{p}: cannot be read as an image ({e})") from e
        if size is None:
            size = hw
        elif hw != size:
            raise InputError(
                f"{p}: is {hw[1]}x{hw[0]}, the first frame {files[0].name} is {size[1]}x{size[0]}"
            )
    assert size is not None
    return size


# ----------------------------------------------------------------------------------------------
# Tracks
# ----------------------------------------------------------------------------------------------
def tapir_visibility(
    occlusion: np.ndarray, expected_dist: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The release's reading of TAPIR's outputs (``parse_tapir_track_info``), any shape.

    ``p = 1 - sigmoid(occlusion)``, ``c = 1 - sigmoid(expected_dist)``; visible iff
    ``p * c > threshold``; ``c`` is zeroed where neither ``p * c`` nor ``(1 - p) * c`` exceeds
    ``threshold``. Returns ``(visible bool, clamped confidence, p)``, float32.
    """
    p = (1.0 - _sigmoid(occlusion)).astype(np.float32)
    c = (1.0 - _sigmoid(expected_dist)).astype(np.float32)
    visible = p * c > threshold
    sure = visible | ((1.0 - p) * c > threshold)
    return visible, np.where(sure, c, np.float32(0)), p


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def track_file(tracks_dir: Path, q_name: str, t_name: str) -> Path:
    """The release's file of query frame ``q_name`` in target frame ``t_name``."""
    return tracks_dir / f"{q_name}_{t_name}.npy"


def load_query_tracks(tracks_dir: Path, names: list[str], q: int) -> np.ndarray:
    """``[N, T, 4]`` float32 (x, y, occlusion logit, expected distance) of the points queried on
    frame ``q``, from one file per target frame (``load_target_tracks``)."""
    q_name = names[q]
    rows, n = [], None
    for t_name in names:
        path = track_file(tracks_dir, q_name, t_name)
        if not path.is_file():
            have = query_frames_in(tracks_dir, names)
            raise InputError(
                f"{path}: missing; query frame {q} ({q_name}) needs one file for each of the "
                f"{len(names)} frames. Tracks into frame {names[0]} exist for query frames "
                f"{have[:8]}{' ...' if len(have) > 8 else ''}: were they made with another step "
                "(dataset.step) or from another frame folder?"
            )
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: cannot be read as a .npy array ({e})") from e
        if a.ndim != 2 or a.shape[1] != 4:
            raise InputError(
                f"{path}: has shape {a.shape}, expected [N, 4] (x, y, occlusion logit, "
                "expected distance)"
            )
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise InputError(
                f"{path}: has {a.shape[0]} points, {track_file(tracks_dir, q_name, names[0]).name}"
                f" has {n}; the files of one query frame must hold the same points"
            )
        if not np.isfinite(a).all():
            raise InputError(f"{path}: holds NaN or infinite values")
        rows.append(a.astype(np.float32))
    return np.stack(rows, axis=1)


def query_frames_in(tracks_dir: Path, names: list[str]) -> list[str]:
    """Names of the frames the folder holds tracks from (those with a file into frame 0)."""
    tail = f"_{names[0]}"
    return sorted(p.stem[: -len(tail)] for p in tracks_dir.glob(f"*{tail}.npy"))


def check_target_frames(tracks_dir: Path, names: list[str], images_dir: Path) -> None:
    """:class:`InputError` if the tracks of query frame 0 name a frame the images lack."""
    prefix = f"{names[0]}_"
    known = set(names)
    extra = sorted(
        p.stem[len(prefix) :]
        for p in tracks_dir.glob("*.npy")
        if p.stem.startswith(prefix) and p.stem[len(prefix) :] not in known
    )
    if extra:
        raise InputError(
            f"{tracks_dir}: holds tracks of query frame {names[0]} in frames {extra[:5]}, which "
            f"{images_dir} ({len(names)} frames) lacks; the tracks were made from other frames"
        )


# ----------------------------------------------------------------------------------------------
# Depth
# ----------------------------------------------------------------------------------------------
def depth_files(depth_dir: Path, names: list[str]) -> list[Path]:
    """``<depth_dir>/<name>.png`` for every frame name; a count or name mismatch is an error."""
    _require_dir(depth_dir, "depth")
    pngs = sorted(p for p in depth_dir.glob("*.png") if not p.name.startswith("."))
    stems = {p.stem for p in pngs}
    missing = [n for n in names if n not in stems]
    if missing or len(pngs) != len(names):
        raise InputError(
            f"{depth_dir}: holds {len(pngs)} depth PNGs for {len(names)} frames"
            + (f"; none for frame {missing[0]}" if missing else "")
        )
    return [depth_dir / f"{n}.png" for n in names]


def read_depth_png(path: Path, decoding: str, size: tuple[int, int]) -> np.ndarray:
    """One depth PNG as ``[H, W]`` float32 disparity.

    ``uint16``: the 16-bit code / 65535. ``release_8bit``: as the release's ``inference.py``
    reads it, PIL ``convert("L")`` (saturating at 255), then min-max over this frame (a constant
    frame gives 0, where the release divides by zero)."""
    if decoding == "release_8bit":
        try:
            with Image.open(path) as im:
                d = np.asarray(im.convert("L"), np.float32)
        except OSError as e:
            raise InputError(f"{path}: cannot be read as a PNG ({e})") from e
        lo, hi = float(d.min()), float(d.max())
        d = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise InputError(f"{path}: cannot be read as a PNG")
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise InputError(
                f"{path}: is {raw.dtype} with shape {raw.shape}, expected a one-channel 16-bit "
                "PNG (as run_depth.py writes)"
            )
        d = raw.astype(np.float32) / UINT16_MAX
    if d.shape != tuple(size):
        raise InputError(
            f"{path}: is {d.shape[1]}x{d.shape[0]}, the frames are {size[1]}x{size[0]}"
        )
    return d


# ----------------------------------------------------------------------------------------------
# DINO features
# ----------------------------------------------------------------------------------------------
def load_dino(dinos_dir: Path, names: list[str], q: int) -> tuple[np.ndarray, Path]:
    """The feature map ``[h, w, C]`` of frame ``q``: ``<name>.npy`` when the folder holds .npy
    files, else ``<name>.h5`` (dataset ``dinos``), else the ``q``-th of the sorted .h5 files when
    there is one per frame (as ``inference.py`` picks them)."""
    _require_dir(dinos_dir, "DINO feature")
    if any(dinos_dir.glob("*.npy")):
        path = dinos_dir / f"{names[q]}.npy"
        if not path.is_file():
            raise InputError(f"{path}: missing; query frame {q} needs its DINO feature map")
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: cannot be read as a .npy array ({e})") from e
    else:
        path = dinos_dir / f"{names[q]}.h5"
        if not path.is_file():
            h5s = sorted(dinos_dir.glob("*.h5"))
            if len(h5s) != len(names):
                raise InputError(
                    f"{path}: missing, and {dinos_dir} holds {len(h5s)} .h5 files for "
                    f"{len(names)} frames (no .npy); query frame {q} needs its DINO feature map"
                )
            path = h5s[q]
        try:
            with h5py.File(path, "r") as f:
                a = np.asarray(f["dinos"][()])
        except (OSError, KeyError) as e:
            raise InputError(f"{path}: has no readable dataset 'dinos' ({e})") from e
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or min(a.shape) < 1:
        raise InputError(f"{path}: has shape {a.shape}, expected [h, w, C]")
    if not np.isfinite(a.astype(np.float32)).all():
        raise InputError(f"{path}: holds NaN or infinite values")
    return a, path


def sample_cells(feat: np.ndarray, xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``feat [h, w, C]`` at points ``xy [N, 2]`` (x, y) of an ``size`` (H, W) frame, nearest cell
    as the release's ``get_feat``: ``int(x * w / W)`` (truncated, float32), clamped to the map."""
    h, w = feat.shape[:2]
    H, W = size
    ix = (xy[:, 0].astype(np.float32) * np.float32(w / W)).astype(np.int64)
    iy = (xy[:, 1].astype(np.float32) * np.float32(h / H)).astype(np.int64)
    return feat[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------
def read_masks(mask_dir: Path, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """``[T, H, W]`` bool: mask > 0 after PIL ``convert("L")``, as ``inference.py`` reads
    ``gt_dir``; masks pair with frames in sorted order, so the counts must agree."""
    files = image_files(mask_dir, "mask")
    if len(files) != num_frames:
        raise InputError(
            f"{mask_dir}: holds {len(files)} masks for {num_frames} frames; masks are paired with "
            "frames in sorted order, so the counts must agree"
        )
    out = np.zeros((num_frames, *size), bool)
    for t, p in enumerate(files):
        try:
            with Image.open(p) as im:
                m = np.asarray(im.convert("L")) > 0
        except OSError as e:
            raise InputError(f"{p}: cannot be read as a mask image ({e})") from e
        if m.shape != tuple(size):
            raise InputError(
                f"{p}: is {m.shape[1]}x{m.shape[0]}, the frames are {size[1]}x{size[0]}"
            )
        out[t] = m
    return out


# ----------------------------------------------------------------------------------------------
# One scene
# ----------------------------------------------------------------------------------------------
def convert(
    *,
    name: str,
    split: str,
    dirs: dict[str, str | None],
    options: dict[str, Any],
    prep: dict[str, Any] | None = None,
    source: str = "release",
) -> Sequence:
    """One scene of a release tree -> one contract :class:`Sequence` (runs in a job)."""
    opts = ReleaseOptions.from_dict(options)
    prep = dict(prep or {})
    images_dir, tracks_dir = Path(str(dirs["images"])), Path(str(dirs["tracks"]))
    files = image_files(images_dir)
    names = [p.stem for p in files]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{images_dir}: two frames are named {dup} (different extensions)")
    T = len(names)
    H, W = frame_size(files)
    _require_dir(tracks_dir, "track")
    check_target_frames(tracks_dir, names, images_dir)

    # tracks of every query frame, in query-frame order (the contract groups them so)
    q_ts = list(range(0, T, opts.step))
    rng = sequence_rng(opts.seed, name)
    parts, qf, per_query = [], [], {}
    for q in q_ts:
        a = load_query_tracks(tracks_dir, names, q)
        if not inside(a[:, q, :2], (H, W)).all():
            raise InputError(
                f"{track_file(tracks_dir, names[q], names[q])}: query points lie outside the "
                f"{W}x{H} frame; were the tracks made at another resolution?"
            )
        n_file = len(a)
        if opts.tracks_per_query is not None and n_file > opts.tracks_per_query:
            a = a[np.sort(rng.choice(n_file, opts.tracks_per_query, replace=False))]
        per_query[names[q]] = [n_file, len(a)]
        parts.append(a)
        qf.append(np.full(len(a), q, np.int32))
    unused = sorted(set(query_frames_in(tracks_dir, names)) - {names[q] for q in q_ts})
    if unused:
        log.warning(
            "%s: tracks of query frames %s are not used with step %d", tracks_dir, unused, opts.step
        )
    arr = np.concatenate(parts)
    query_frame = np.concatenate(qf)
    N = len(arr)
    if N == 0:
        raise InputError(f"{tracks_dir}: the query frames {q_ts} hold no points")
    xy = arr[..., :2]
    visible, confidence, vis_prob = tapir_visibility(arr[..., 2], arr[..., 3], opts.threshold)

    # contract: visible at the query frame, visible only inside the frame
    rows = np.arange(N)
    never = ~visible.any(axis=1)
    forced = ~visible[rows, query_frame]
    visible[rows, query_frame] = True
    outside = visible & ~inside(xy, (H, W))
    visible &= ~outside
    empty = [int(t) for t in np.flatnonzero(~visible.any(axis=0))]
    if forced.any():
        log.info("%s: %d tracks made visible at their query frame", name, int(forced.sum()))

    depth_n = track_depth = raw_range = None
    depth_info: dict[str, Any] = {"name": "none"}
    if dirs.get("depth"):
        depth_dir = Path(str(dirs["depth"]))
        maps = [
            read_depth_png(p, opts.depth_decoding, (H, W)) for p in depth_files(depth_dir, names)
        ]
        side = prep.get("depth_max_side", 256)
        depth_n, raw_range = normalise_depth(resize_depth(np.stack(maps), side))
        track_depth = sample_depth(depth_n, xy, (H, W)).astype(np.float16)
        depth_info = {
            "name": "depth_anything_v2 (release PNGs)",
            "dir": str(depth_dir),
            "decoding": opts.depth_decoding,
            "normalisation": "per frame min-max, then per video"
            if opts.depth_decoding == "release_8bit"
            else "code / 65535, then per-video min-max",
            "depth_max_side": side,
        }

    features = None
    feat_info: dict[str, Any] = {"name": "none"}
    if dirs.get("dinos"):
        dinos_dir = Path(str(dirs["dinos"]))
        features, shapes, used = None, set(), []
        for q in q_ts:
            sel = query_frame == q
            fmap, path = load_dino(dinos_dir, names, q)
            if features is None:
                features = np.zeros((N, fmap.shape[2]), np.float16)
            elif fmap.shape[2] != features.shape[1]:
                raise InputError(
                    f"{path}: has {fmap.shape[2]} channels, other query frames {features.shape[1]}"
                )
            features[sel] = sample_cells(fmap, xy[sel, q], (H, W))
            shapes.add(tuple(int(s) for s in fmap.shape[:2]))
            used.append(path.name)
        assert features is not None
        feat_info = {
            "name": "dinov2 (release dinos)",
            "dir": str(dinos_dir),
            "files": used,
            "map_sizes": sorted(shapes),
            "dim": int(features.shape[1]),
            "sampling": "nearest cell int(x * w / W), int(y * h / H), clamped (get_feat)",
        }

    label = np.full(N, LABEL_UNKNOWN, np.int8)
    instance = masks = object_moving = None
    label_info: dict[str, Any] = {"rule": "unknown: no masks"}
    if dirs.get("masks"):
        mask_dir = Path(str(dirs["masks"]))
        m = read_masks(mask_dir, T, (H, W))
        qxy = xy[rows, query_frame]
        x = np.clip(np.round(qxy[:, 0]).astype(np.int64), 0, W - 1)
        y = np.clip(np.round(qxy[:, 1]).astype(np.int64), 0, H - 1)
        instance = m[query_frame, y, x].astype(np.int32)
        label = instance.astype(np.int8)
        if prep.get("save_masks", True):
            masks, object_moving = m.astype(np.uint8), np.array([False, True])
        label_info = {
            "rule": "moving iff the mask is > 0 at the rounded query point (find_traj_label)",
            "mask_dir": str(mask_dir),
        }

    frames = None
    if prep.get("save_frames", False):
        frames = np.stack([read_image(p) for p in files])

    provenance = {
        "tracker": {
            "name": "bootstapir (release files)",
            "dir": str(tracks_dir),
            "step": opts.step,
            "threshold": opts.threshold,
            "visibility": "p * c > threshold, p = 1 - sigmoid(occ), c = 1 - sigmoid(dist)",
            "confidence": "c, zeroed where neither p * c nor (1 - p) * c > threshold",
        },
        "depth": depth_info,
        "features": feat_info,
        "labels": label_info,
        "dataset": {
            "converter": FN,
            "version": VERSION,
            "images": str(images_dir),
            "frame_names": [names[0], names[-1]],
            "query_frames": q_ts,
            "unused_query_frames": unused,  # in the files, but not on the step's grid
            "tracks_per_query": per_query,  # frame name -> [in the files, kept]
            "tracks_per_query_setting": opts.tracks_per_query,
            "seed": opts.seed,
            "forced_visible_at_query": int(forced.sum()),
            "invisible_everywhere_in_release": int(never.sum()),
            "visible_outside_frame_set_invisible": int(outside.sum()),
            "frames_without_visible_track": empty,
        },
    }
    return Sequence(
        name=name,
        tracks=xy.astype(np.float32),
        visibility=visible,
        confidence=confidence.astype(np.float16),
        query_frame=query_frame,
        label=label,
        height=H,
        width=W,
        fps=opts.fps,
        source=source,
        split=split,
        provenance=provenance,
        instance=instance,
        track_depth=track_depth,
        features=features,
        depth=depth_n,
        depth_kind="disparity",
        depth_raw_range=raw_range,
        masks=masks,
        object_moving=object_moving,
        frames=frames,
        visibility_prob=vis_prob.astype(np.float16),
    )


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------
def make_jobs(cfg: DictConfig) -> list[Job]:
    """One job per scene of the release tree at ``dataset.raw`` (discovery only)."""
    d = to_plain(cfg.dataset)
    if not d.get("raw"):
        raise InputError("dataset.raw is not set: give the folder of the release's data")
    raw = Path(str(d["raw"]))
    if not raw.is_dir():
        raise InputError(
            f"{raw}: release data folder not found; point dataset.raw at the folder holding "
            "images/, bootstapir/, dinos/, depth_anything_v2/"
        )
    try:
        opts = ReleaseOptions.from_dict(d)
    except (TypeError, ValueError) as e:
        raise InputError(f"dataset settings: {e}") from e
    images = str(opts.folders["images"])
    layout = detect_layout(raw, images) if opts.layout == "auto" else opts.layout
    scenes = list_scenes(raw, layout, images)
    if not scenes:
        where = raw / images if layout == "by_kind" else raw / f"*/{images}"
        raise InputError(f"{where}: no scene folders")
    split = str(d.get("split") or "")
    found = [(split, s, {"dirs": scene_dirs(raw, layout, opts.folders, s)}) for s in scenes]
    found = select_found(found, d.get("sequences"), str(raw))
    common = {
        "options": asdict(opts),
        "prep": to_plain(cfg.get("prep")) or {},
        "source": str(d.get("source") or "release"),
    }
    return sequence_jobs(found, d["out"], FN, common, VERSION, qualified=bool(split))


if __name__ == "__main__":
    main("release", make_jobs)
