"""The HDF5 data contract: the one format the converters write and the trainer and benchmarks read.

One file holds one sequence (a video clip). Datasets sit at the file's root, metadata in its root
attributes. Every field is declared once in :data:`FIELDS`; :func:`write_sequence`,
:func:`load_sequence`, :class:`SequenceFile` and :func:`validate` all work from that table, so the
schema cannot drift between writer and reader.

Conventions (also in docs/data-contract.md):

- Pixel coordinates are ``(x, y)`` with the centre of the top-left pixel at ``(0, 0)`` (OpenCV's
  convention); a frame covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
- ``N`` tracks, ``T`` frames, frames ``H x W``; depth maps ``Hd x Wd``; ``C`` feature channels.
- Labels: 1 moving, 0 static, -1 unknown (ignored by the loss). A track is moving iff its point
  at its query frame lies on an object that moves in the world during the clip.
- Depth is normalised per video (never per frame) to [0, 1]; the raw range is kept in attributes.
  The model reads it in one convention whatever the file stores (:func:`model_depth`):
  disparity, min-max normalised per frame.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from moseg.utils.atomic import atomic_path

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SUFFIX = ".h5"

LABEL_STATIC = 0
LABEL_MOVING = 1
LABEL_UNKNOWN = -1

MASK_VOID = 255  # instance-mask value for "do not evaluate" pixels, as in DAVIS


@dataclass(frozen=True)
class FieldSpec:
    """One dataset of the contract. ``shape`` uses symbolic dimension names."""

    name: str
    dtype: np.dtype
    shape: tuple[str, ...]
    required: bool
    unit: str
    doc: str

    @property
    def dtype_name(self) -> str:
        return np.dtype(self.dtype).name


def _f(name, dtype, shape, required, unit, doc) -> FieldSpec:
    return FieldSpec(name, np.dtype(dtype), tuple(shape), required, unit, doc)


FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in [
        _f(
            "tracks",
            np.float32,
            ("N", "T", "2"),
            True,
            "px",
            "(x, y) position of every track in every frame; finite everywhere, may leave the "
            "frame where not visible",
        ),
        _f(
            "visibility",
            np.bool_,
            ("N", "T"),
            True,
            "-",
            "true where the point is seen (not occluded, inside the frame)",
        ),
        _f(
            "confidence",
            np.float16,
            ("N", "T"),
            True,
            "[0, 1]",
            "tracker's confidence in the position",
        ),
        _f(
            "visibility_prob",
            np.float16,
            ("N", "T"),
            False,
            "[0, 1]",
            "TAPIR's visibility probability 1 - sigmoid(occlusion logit), before thresholding",
        ),
        _f(
            "query_frame",
            np.int32,
            ("N",),
            True,
            "frame",
            "frame where the track was started; the point is visible there",
        ),
        _f(
            "label",
            np.int8,
            ("N",),
            True,
            "-",
            "1 moving, 0 static, -1 unknown (ignored by the loss)",
        ),
        _f(
            "instance",
            np.int32,
            ("N",),
            False,
            "id",
            "object id under the point at its query frame (0 = background), as in `masks`",
        ),
        _f(
            "track_depth",
            np.float16,
            ("N", "T"),
            False,
            "[0, 1]",
            "`depth` sampled bilinearly at the track's position in each frame",
        ),
        _f(
            "features",
            np.float16,
            ("N", "C"),
            False,
            "-",
            "semantic feature of each track, sampled at its query-frame position",
        ),
        _f(
            "feature_maps",
            np.float16,
            ("Q", "h", "w", "C"),
            False,
            "-",
            "semantic feature maps at the frames `feature_map_frames`; cell size in attr `stride`",
        ),
        _f(
            "feature_map_frames",
            np.int32,
            ("Q",),
            False,
            "frame",
            "frame index of each feature map",
        ),
        _f(
            "depth",
            np.float16,
            ("T", "Hd", "Wd"),
            False,
            "[0, 1]",
            "per-frame depth (or disparity, attr `kind`), min-max normalised over the whole video",
        ),
        _f(
            "masks",
            np.uint8,
            ("T", "H", "W"),
            False,
            "id",
            "instance masks: 0 background, 1..254 objects, 255 void",
        ),
        _f(
            "object_moving",
            np.bool_,
            ("K",),
            False,
            "-",
            "indexed by instance id (K = largest id + 1): does that object move in the world",
        ),
        _f(
            "frames",
            np.uint8,
            ("T", "H", "W", "3"),
            False,
            "RGB",
            "the video itself (optional; synthetic and benchmark clips)",
        ),
    ]
}

# Root attributes: name -> (python types accepted, description)
ATTRS: dict[str, tuple[tuple[type, ...], str]] = {
    "schema_version": ((int, np.integer), f"contract version, currently {SCHEMA_VERSION}"),
    "name": ((str,), "sequence name"),
    "num_frames": ((int, np.integer), "T"),
    "height": ((int, np.integer), "H, frame height in px"),
    "width": ((int, np.integer), "W, frame width in px"),
    "fps": ((float, int, np.floating, np.integer), "frames per second of the stored frames"),
    "source": ((str,), "dataset or origin (synthetic, kubric, davis, video, ...)"),
    "split": ((str,), "train / val / test / ..."),
    "provenance": (
        (str,),
        "JSON: tracker, depth model, feature model and generator, with settings",
    ),
    "created": ((str,), "ISO-8601 UTC time of writing"),
}

DEPTH_KINDS = ("depth", "disparity")


@dataclass
class Sequence:
    """One clip in memory. Array shapes as in :data:`FIELDS`."""

    name: str
    tracks: np.ndarray  # [N, T, 2] float32 (x, y) px
    visibility: np.ndarray  # [N, T] bool
    confidence: np.ndarray  # [N, T] float16 in [0, 1]
    query_frame: np.ndarray  # [N] int32
    label: np.ndarray  # [N] int8: 1 moving, 0 static, -1 unknown
    height: int
    width: int
    fps: float = 24.0
    source: str = "unknown"
    split: str = "train"
    provenance: dict[str, Any] = field(default_factory=dict)
    instance: np.ndarray | None = None  # [N] int32
    track_depth: np.ndarray | None = None  # [N, T] float16
    features: np.ndarray | None = None  # [N, C] float16
    feature_maps: np.ndarray | None = None  # [Q, h, w, C] float16
    feature_map_frames: np.ndarray | None = None  # [Q] int32
    feature_map_stride: float | None = None  # px per feature-map cell
    depth: np.ndarray | None = None  # [T, Hd, Wd] float16 in [0, 1]
    depth_kind: str = "disparity"  # "depth" or "disparity"
    depth_raw_range: tuple[float, float] | None = None  # (min, max) before normalisation
    masks: np.ndarray | None = None  # [T, H, W] uint8
    object_moving: np.ndarray | None = None  # [K] bool
    frames: np.ndarray | None = None  # [T, H, W, 3] uint8 RGB
    visibility_prob: np.ndarray | None = None  # [N, T] float16 in [0, 1], before thresholding

    @property
    def num_tracks(self) -> int:
        return int(self.tracks.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.tracks.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        """The contract datasets this sequence holds, as given (the writer checks their dtypes)."""
        out = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = np.asarray(value)
        return out

    def attrs(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "num_frames": self.num_frames,
            "height": int(self.height),
            "width": int(self.width),
            "fps": float(self.fps),
            "source": self.source,
            "split": self.split,
            "provenance": json.dumps(self.provenance, sort_keys=True, default=str),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: which file, which field (dataset or attribute), what."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class ContractError(ValueError):
    """A file or an in-memory sequence breaks the contract. ``problems`` lists every issue."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# ----------------------------------------------------------------------------------------------
# Storage layout. Chosen by measurement (benchmarks/tools/h5_layout.py, docs/data-contract.md):
# per-track arrays are read whole for a training sample, so they get one chunk along time and
# blocks of tracks; image-like arrays get one chunk per frame so a sample reads only its frames.
# lzf compresses masks, visibility and depth well at a fraction of gzip's cost; fletcher32
# checksums make a corrupted chunk an error instead of silent garbage.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Storage:
    compression: str | None = "lzf"
    compression_opts: int | None = None
    track_chunk: int = 4096  # at most this many tracks per chunk for [N, ...] arrays ...
    chunk_bytes: int = 3 << 19  # ... and about 1.5 MiB per chunk (wide rows: features)
    checksum: bool = True

    def dataset_kwargs(self, name: str, shape: tuple[int, ...]) -> dict[str, Any]:
        if len(shape) == 0 or int(np.prod(shape)) == 0:
            return {}
        kw: dict[str, Any] = {"fletcher32": self.checksum}
        if self.compression:
            kw["compression"] = self.compression
            if self.compression_opts is not None:
                kw["compression_opts"] = self.compression_opts
        spec = FIELDS[name]
        if spec.shape[0] == "N":
            row = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(spec.dtype).itemsize
            rows = min(self.track_chunk, max(256, self.chunk_bytes // max(row, 1)))
            kw["chunks"] = (min(shape[0], rows), *shape[1:])
        elif spec.shape[0] in ("T", "Q") and len(shape) >= 3:
            kw["chunks"] = (1, *shape[1:])
        else:
            kw["chunks"] = shape
        # shuffle helps lzf/gzip on multi-byte numbers
        if np.dtype(spec.dtype).itemsize > 1 and self.compression:
            kw["shuffle"] = True
        return kw


DEFAULT_STORAGE = Storage()


# ----------------------------------------------------------------------------------------------
# Checks, shared by the writer (in memory) and validate (on disk)
# ----------------------------------------------------------------------------------------------
def _check(
    where: str,
    attrs: Mapping[str, Any],
    arrays: Mapping[str, Any],
    read_values: bool = True,
) -> list[Problem]:
    """Every contract violation in ``attrs`` + ``arrays`` (numpy arrays or h5py datasets)."""
    problems: list[Problem] = []

    def bad(fld: str, msg: str) -> None:
        problems.append(Problem(where, fld, msg))

    # attributes
    for name, (types, _) in ATTRS.items():
        if name not in attrs:
            bad(name, "missing attribute")
        elif not isinstance(attrs[name], types) or isinstance(attrs[name], bool):
            bad(name, f"attribute has type {type(attrs[name]).__name__}")
    version = attrs.get("schema_version")
    if isinstance(version, (int, np.integer)) and int(version) != SCHEMA_VERSION:
        bad("schema_version", f"is {version}, this moseg reads version {SCHEMA_VERSION}")
    if "provenance" in attrs and isinstance(attrs["provenance"], str):
        try:
            if not isinstance(json.loads(attrs["provenance"]), dict):
                bad("provenance", "must be a JSON object")
        except json.JSONDecodeError as e:
            bad("provenance", f"is not valid JSON ({e})")

    # presence
    for name, spec in FIELDS.items():
        if spec.required and name not in arrays:
            bad(name, "missing dataset")
    for name in arrays:
        if name not in FIELDS:
            bad(name, "unknown dataset (not part of the contract)")

    # dtypes and shapes against the symbolic dims
    dims: dict[str, int] = {"2": 2, "3": 3}

    def dim_from_attr(sym: str, attr: str) -> None:
        v = attrs.get(attr)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            dims[sym] = int(v)

    dim_from_attr("T", "num_frames")
    dim_from_attr("H", "height")
    dim_from_attr("W", "width")
    shape_ok: dict[str, bool] = {}
    for name, spec in FIELDS.items():
        if name not in arrays:
            continue
        arr = arrays[name]
        ok = True
        if np.dtype(arr.dtype) != spec.dtype:
            bad(name, f"dtype is {np.dtype(arr.dtype).name}, expected {spec.dtype_name}")
            ok = False
        shape = tuple(int(s) for s in arr.shape)
        if len(shape) != len(spec.shape):
            bad(name, f"has shape {shape}, expected {len(spec.shape)} dims {spec.shape}")
            shape_ok[name] = False
            continue
        for sym, size in zip(spec.shape, shape, strict=True):
            if sym not in dims:
                dims[sym] = size
            elif dims[sym] != size:
                bad(name, f"has shape {shape}, expected {_fmt_shape(spec.shape, dims)}")
                ok = False
                break
        shape_ok[name] = ok

    if "feature_maps" in arrays and "feature_map_frames" not in arrays:
        bad("feature_map_frames", "missing dataset (required with feature_maps)")
    if "feature_map_frames" in arrays and "feature_maps" not in arrays:
        bad("feature_maps", "missing dataset (required with feature_map_frames)")
    if "feature_maps" in arrays and "stride" not in _ds_attrs(arrays["feature_maps"]):
        bad("feature_maps", "missing attribute 'stride' (px per cell)")
    if "depth" in arrays:
        da = _ds_attrs(arrays["depth"])
        if da.get("kind") not in DEPTH_KINDS:
            bad("depth", f"attribute 'kind' must be one of {DEPTH_KINDS}, got {da.get('kind')!r}")
        if "raw_min" not in da or "raw_max" not in da:
            bad("depth", "missing attributes 'raw_min'/'raw_max' (range before normalisation)")

    if not read_values:
        return problems

    def values(name: str) -> np.ndarray | None:
        if name in arrays and shape_ok.get(name, False):
            try:
                return np.asarray(arrays[name][()])
            except OSError as e:  # checksum failure, truncated chunk
                bad(name, f"cannot be read ({e})")
        return None

    T = dims.get("T")
    W, H = dims.get("W"), dims.get("H")
    tracks = values("tracks")
    vis = values("visibility")
    if tracks is not None:
        nonfinite = ~np.isfinite(tracks)
        if nonfinite.any():
            n_bad = int(nonfinite.any(axis=2).sum())
            bad("tracks", f"{n_bad} points have NaN or infinite coordinates")
        elif vis is not None and W is not None and H is not None:
            x, y = tracks[..., 0][vis], tracks[..., 1][vis]
            tol = 1.0
            out = (x < -0.5 - tol) | (x > W - 0.5 + tol) | (y < -0.5 - tol) | (y > H - 0.5 + tol)
            if out.any():
                bad("tracks", f"{int(out.sum())} visible points lie outside the {W}x{H} frame")
    for name in ("confidence", "visibility_prob"):  # probabilities
        raw = values(name)
        if raw is None:
            continue
        c = raw.astype(np.float32)
        if not np.isfinite(c).all():
            bad(name, "contains NaN or infinite values")
        elif c.size and (c.min() < 0 or c.max() > 1):
            bad(name, f"values must lie in [0, 1], found [{c.min():g}, {c.max():g}]")
    q = values("query_frame")
    if q is not None and T is not None:
        if q.size and (q.min() < 0 or q.max() >= T):
            bad("query_frame", f"values must lie in [0, {T - 1}], found [{q.min()}, {q.max()}]")
        elif vis is not None and q.size:
            at_query = vis[np.arange(len(q)), q]
            if not at_query.all():
                bad(
                    "visibility",
                    f"{int((~at_query).sum())} tracks are not visible at their query frame",
                )
    lab = values("label")
    if lab is not None:
        wrong = ~np.isin(lab, (LABEL_MOVING, LABEL_STATIC, LABEL_UNKNOWN))
        if wrong.any():
            bad("label", f"{int(wrong.sum())} labels are not in {{1, 0, -1}}")
    for name in ("track_depth", "depth", "features", "feature_maps"):
        v = values(name)
        if v is None:
            continue
        vf = v.astype(np.float32)
        if not np.isfinite(vf).all():
            bad(name, "contains NaN or infinite values")
        elif name in ("track_depth", "depth") and vf.size and (vf.min() < 0 or vf.max() > 1):
            bad(name, f"must be normalised to [0, 1], found [{vf.min():g}, {vf.max():g}]")
    fmf = values("feature_map_frames")
    if fmf is not None and T is not None and fmf.size and (fmf.min() < 0 or fmf.max() >= T):
        bad("feature_map_frames", f"values must lie in [0, {T - 1}]")
    inst = values("instance")
    om = values("object_moving")
    if inst is not None and om is not None and inst.size and inst.max() >= len(om):
        bad("object_moving", f"has {len(om)} entries but instance ids reach {inst.max()}")
    masks = values("masks")
    if masks is not None and om is not None:
        ids = np.unique(masks)
        ids = ids[ids != MASK_VOID]
        if ids.size and ids.max() >= len(om):
            bad("object_moving", f"has {len(om)} entries but masks hold ids up to {ids.max()}")
    values("frames")  # read to verify checksums
    return problems


def _fmt_shape(sym: tuple[str, ...], dims: Mapping[str, int]) -> str:
    return "(" + ", ".join(str(dims.get(s, s)) for s in sym) + ")"


def _ds_attrs(arr: Any) -> Mapping[str, Any]:
    return getattr(arr, "attrs", {}) or {}


class _Arr:
    """A numpy array plus dataset attributes, so in-memory checks see what disk checks see."""

    def __init__(self, a: np.ndarray, attrs: Mapping[str, Any]):
        self.a, self.attrs = a, dict(attrs)
        self.shape, self.dtype = a.shape, a.dtype

    def __getitem__(self, key):
        return self.a[key]


def _dataset_attrs(seq: Sequence) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if seq.depth is not None:
        lo, hi = seq.depth_raw_range if seq.depth_raw_range is not None else (0.0, 1.0)
        out["depth"] = {
            "kind": seq.depth_kind,
            "raw_min": float(lo),
            "raw_max": float(hi),
            "normalisation": "minmax_per_video",
        }
    if seq.feature_maps is not None:
        out["feature_maps"] = {"stride": float(seq.feature_map_stride or 0.0)}
    if seq.features is not None:
        out["features"] = {"sampled_at": "query_frame"}
    return out


def check_sequence(seq: Sequence, where: str = "<memory>") -> list[Problem]:
    """Contract violations of an in-memory sequence (the writer refuses to write any)."""
    ds_attrs = _dataset_attrs(seq)
    arrays = {k: _Arr(v, ds_attrs.get(k, {})) for k, v in seq.arrays().items()}
    return _check(f"{where} ({seq.name})", seq.attrs(), arrays)


# ----------------------------------------------------------------------------------------------
# Write
# ----------------------------------------------------------------------------------------------
def write_sequence(path: str | Path, seq: Sequence, storage: Storage = DEFAULT_STORAGE) -> Path:
    """Check ``seq`` and write it to ``path`` atomically (temp file + rename).

    Raises :class:`ContractError` (naming ``path``) and writes nothing if ``seq`` is invalid.
    """
    path = Path(path)
    problems = check_sequence(seq, where=str(path))
    if problems:
        raise ContractError(problems)
    ds_attrs = _dataset_attrs(seq)
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=("v110", "latest")) as f:
        for name, arr in seq.arrays().items():
            ds = f.create_dataset(name, data=arr, **storage.dataset_kwargs(name, arr.shape))
            for k, v in ds_attrs.get(name, {}).items():
                ds.attrs[k] = v
        for k, v in seq.attrs().items():
            f.attrs[k] = v
    return path


# ----------------------------------------------------------------------------------------------
# Read
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SequenceMeta:
    path: Path
    name: str
    num_frames: int
    height: int
    width: int
    fps: float
    source: str
    split: str
    provenance: dict[str, Any]
    num_tracks: int
    fields: tuple[str, ...]


class SequenceFile:
    """Lazy, read-only access to one contract file; reads only the slices asked for.

    >>> with SequenceFile(path) as f:
    ...     xy = f.read("tracks", np.s_[:, 4:12])   # [N, 8, 2]
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._cache: dict[str, np.ndarray] = {}
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such contract file")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise ContractError([Problem(str(self.path), "<file>", f"cannot open: {e}")]) from e
        attrs = dict(self._f.attrs)
        version = attrs.get("schema_version")
        if version is None:
            self.close()
            raise ContractError(
                [Problem(str(self.path), "schema_version", "missing attribute (not a moseg file?)")]
            )
        if int(version) != SCHEMA_VERSION:
            self.close()
            raise ContractError(
                [
                    Problem(
                        str(self.path),
                        "schema_version",
                        f"is {version}, this moseg reads {SCHEMA_VERSION}",
                    )
                ]
            )
        try:
            self.meta = SequenceMeta(
                path=self.path,
                name=str(attrs["name"]),
                num_frames=int(attrs["num_frames"]),
                height=int(attrs["height"]),
                width=int(attrs["width"]),
                fps=float(attrs["fps"]),
                source=str(attrs["source"]),
                split=str(attrs["split"]),
                provenance=json.loads(attrs["provenance"]),
                num_tracks=int(self._f["tracks"].shape[0]),
                fields=tuple(k for k in self._f if k in FIELDS),
            )
        except (KeyError, ValueError) as e:
            self.close()
            raise ContractError(
                [
                    Problem(
                        str(self.path), "<file>", f"incomplete metadata ({e}); run `moseg validate`"
                    )
                ]
            ) from e

    def has(self, name: str) -> bool:
        return name in self._f

    def read(self, name: str, index: Any = ()) -> np.ndarray:
        """Read dataset ``name`` (optionally a slice of it)."""
        if name not in FIELDS:
            raise KeyError(f"{name!r} is not a contract field")
        if name not in self._f:
            raise KeyError(f"{self.path}: has no dataset {name!r}")
        return self._f[name][index]

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of dataset ``name`` without reading it."""
        return tuple(self._f[name].shape)

    def cached(self, name: str) -> np.ndarray:
        """Read a (small) dataset once and keep it, e.g. ``query_frame`` for a sampler."""
        if name not in self._cache:
            self._cache[name] = self.read(name)
        return self._cache[name]

    def dataset_attrs(self, name: str) -> dict[str, Any]:
        return dict(self._f[name].attrs)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SequenceFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_sequence(
    path: str | Path, fields: Iterable[str] | None = None, validate: bool = True
) -> Sequence:
    """Read a whole sequence (or only ``fields`` plus the required ones) into memory.

    ``validate`` (default): what was read is checked against the contract as ``moseg
    validate`` checks it (shapes, dtypes, NaN, ranges, query frames; in memory, so cheap next to
    reading) and a :class:`ContractError` lists every problem; ``False`` skips the check (a file
    known to be good, read in a tight loop)."""
    with SequenceFile(path) as f:
        wanted = set(f.meta.fields if fields is None else fields)
        wanted |= {n for n, s in FIELDS.items() if s.required}
        data = {n: f.read(n) for n in wanted if f.has(n)}
        if validate:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f._f.attrs.items()}
            arrays = {n: _Arr(v, f.dataset_attrs(n)) for n, v in data.items()}
            problems = _check(str(f.path), attrs, arrays)
            if problems:
                raise ContractError(problems)
        m = f.meta
        seq = Sequence(
            name=m.name,
            height=m.height,
            width=m.width,
            fps=m.fps,
            source=m.source,
            split=m.split,
            provenance=m.provenance,
            **data,
        )
        if "depth" in data:
            a = f.dataset_attrs("depth")
            seq.depth_kind = str(a.get("kind"))
            seq.depth_raw_range = (float(a["raw_min"]), float(a["raw_max"]))
        if "feature_maps" in data:
            seq.feature_map_stride = float(f.dataset_attrs("feature_maps")["stride"])
    return seq


# ----------------------------------------------------------------------------------------------
# Validate
# ----------------------------------------------------------------------------------------------
def validate(path: str | Path) -> list[Problem]:
    """Every problem with the file at ``path``; empty when it satisfies the contract.

    Reads every dataset in full, so checksums of every chunk are verified.
    """
    where = str(path)
    path = Path(path)
    if not path.exists():
        return [Problem(where, "<file>", "does not exist")]
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        return [Problem(where, "<file>", f"cannot be opened as HDF5 (truncated or not HDF5): {e}")]
    with f:
        arrays = {}
        problems = []
        for k in f:
            if isinstance(f[k], h5py.Dataset):
                arrays[k] = f[k]
            else:
                problems.append(Problem(where, k, "is a group; the contract has only datasets"))
        try:
            attrs = dict(f.attrs)
        except OSError as e:
            return [Problem(where, "<attributes>", f"cannot be read: {e}")]
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        return problems + _check(where, attrs, arrays)


# ----------------------------------------------------------------------------------------------
# Helpers every converter needs
# ----------------------------------------------------------------------------------------------
def normalise_depth(depth: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Min-max normalise ``depth [T, H, W]`` over the whole video (not per frame).

    Returns float16 values in [0, 1] and the raw (min, max). Non-finite pixels become 0.
    """
    d = np.asarray(depth, dtype=np.float32)
    finite = np.isfinite(d)
    if not finite.any():
        raise ValueError("depth has no finite value")
    lo, hi = float(d[finite].min()), float(d[finite].max())
    scale = 1.0 / (hi - lo) if hi > lo else 0.0
    out = np.where(finite, (d - lo) * scale, 0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float16), (lo, hi)


def bilinear(
    grid: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    lead: tuple = (),
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Bilinear interpolation of ``grid [*L, h, w, *C]`` at grid coordinates ``gx, gy`` (cell
    centres at integers; clamped to the border). ``lead`` indexes the ``L`` axes (arrays that
    broadcast with ``gx``). Returns ``[*gx.shape, *C]`` float32.

    ``transform`` maps the gathered corner values (float32, ``[*gx.shape, *C]``) before they
    are blended: interpolating ``transform(grid)`` without converting the whole grid."""
    nl = len(lead)
    h, w = grid.shape[nl], grid.shape[nl + 1]
    gx = np.clip(np.nan_to_num(gx), 0, w - 1)
    gy = np.clip(np.nan_to_num(gy), 0, h - 1)
    x0 = np.minimum(np.floor(gx).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(gy).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    extra = (None,) * (grid.ndim - nl - 2)  # weights broadcast over trailing channel axes
    wx, wy = (gx - x0)[(..., *extra)], (gy - y0)[(..., *extra)]
    # gather through flat indices: several times faster than indexing with nl + 2 arrays
    flat = grid.reshape(-1, *grid.shape[nl + 2 :])
    base = np.zeros((), np.int64)
    for k, idx in enumerate(lead):
        base = base * grid.shape[k] + np.asarray(idx, np.int64)
    base = base * (h * w)

    def at(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        v = flat.take(base + yi * w + xi, axis=0).astype(np.float32, copy=False)
        return v if transform is None else transform(v)

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def sample_depth(depth: np.ndarray, tracks: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Bilinearly sample ``depth [T, Hd, Wd]`` at ``tracks [N, T, 2]`` (x, y) frame pixels.

    ``frame_size`` is (H, W) of the frames the tracks live in; the depth maps may be smaller.
    Pixel centres align as in :func:`cv2.resize`: x_d = (x + 0.5) * Wd / W - 0.5. Positions
    outside the map take the border value. Returns ``[N, T]`` float32.
    """
    T, Hd, Wd = depth.shape
    H, W = frame_size
    if tracks.shape[1] != T:
        raise ValueError(f"tracks have {tracks.shape[1]} frames, depth has {T}")
    x, y = _map_coords(tracks, (Hd, Wd), frame_size)
    t = np.broadcast_to(np.arange(T)[None, :], x.shape)
    return bilinear(depth, x, y, lead=(t,))


def _map_coords(
    tracks: np.ndarray, map_size: tuple[int, int], frame_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Frame pixels ``tracks [..., 2]`` -> map cell coordinates (centres aligned as in
    :func:`cv2.resize`)."""
    (Hd, Wd), (H, W) = map_size, frame_size
    x = (tracks[..., 0].astype(np.float32) + 0.5) * (Wd / W) - 0.5
    y = (tracks[..., 1].astype(np.float32) + 0.5) * (Hd / H) - 0.5
    return x, y


# ----------------------------------------------------------------------------------------------
# The model's depth channel: one convention whatever a file stores (docs/data-contract.md,
# "Depth convention"). Files keep what their writer stored (distance or disparity, normalised
# over the video); readers convert when reading, so stored files never need migrating.
# ----------------------------------------------------------------------------------------------
MODEL_DEPTH_CONVENTION = "disparity (near = large), min-max normalised per frame to [0, 1]"
_RANGE_BLOCK = 32  # frames converted at a time by depth_frame_range (bounds its memory)


class MissingDepthError(ValueError):
    """A model that uses depth was given data that has none; the message names the data and
    the fixes (see :func:`missing_depth_message`)."""


def to_disparity(
    values: np.ndarray, kind: str, raw_range: tuple[float, float] | None
) -> np.ndarray:
    """Stored depth values (the ``depth`` dataset or ``track_depth``: normalised over the video,
    any shape) -> float32 disparity, exact up to one positive scale and offset per video; NaN
    where it is undefined (non-finite values; for ``kind="depth"`` a distance <= 0).

    ``kind`` and ``raw_range`` are the ``depth`` dataset's attributes ``kind`` and
    (``raw_min``, ``raw_max``); None stands for (0, 1), as the writer records it."""
    v = np.asarray(values, dtype=np.float32)
    if kind == "disparity":
        # the stored value is an increasing affine map of the raw disparity, and a per-frame
        # min-max normalisation does not see such a map
        return np.where(np.isfinite(v), v, np.float32(np.nan))
    if kind == "depth":
        lo, hi = (0.0, 1.0) if raw_range is None else (float(raw_range[0]), float(raw_range[1]))
        raw = np.float32(lo) + v * np.float32(hi - lo)  # undo the per-video normalisation
        ok = np.isfinite(raw) & (raw > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ok, np.float32(1.0) / raw, np.float32(np.nan)).astype(np.float32)
    raise ValueError(f"depth kind must be one of {DEPTH_KINDS}, got {kind!r}")


def _range_of(disp: np.ndarray) -> np.ndarray:
    """Per-frame (min, max) over every axis but the first of ``disp`` (NaN ignored); a frame
    without any value gets (0, 0)."""
    flat = disp.reshape(len(disp), -1)
    bad = np.isnan(flat)
    lo = np.where(bad, np.inf, flat).min(axis=1, initial=np.inf)
    hi = np.where(bad, -np.inf, flat).max(axis=1, initial=-np.inf)
    empty = ~(lo <= hi)
    lo[empty], hi[empty] = 0.0, 0.0
    return np.stack([lo, hi], axis=1).astype(np.float32)


def depth_frame_range(depth: Any, kind: str, raw_range: tuple[float, float] | None) -> np.ndarray:
    """``[T, 2]`` float32: per frame, the (min, max) disparity (:func:`to_disparity` units) of
    the stored maps ``depth [T, Hd, Wd]`` (a numpy array or an h5py dataset, converted a block
    of frames at a time). This is what normalises each frame, for maps and ``track_depth``."""
    T = int(depth.shape[0])
    out = [
        _range_of(to_disparity(depth[a : a + _RANGE_BLOCK], kind, raw_range))
        for a in range(0, T, _RANGE_BLOCK)
    ]
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


def _per_frame(disp: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(disp - lo) / (hi - lo)`` clipped to [0, 1]; 0 where the frame is constant (hi == lo)
    and where ``disp`` is NaN."""
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(span > 0, np.float32(1.0) / span, np.float32(0.0))
        out = (disp - lo) * scale
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32)


def model_depth(depth: np.ndarray, kind: str, raw_range: tuple[float, float] | None) -> np.ndarray:
    """Stored depth maps ``depth [T, Hd, Wd]`` (normalised over the video, of ``kind`` "depth"
    or "disparity", raw range ``raw_range``) -> ``[T, Hd, Wd]`` float32 in the model's
    convention: disparity (near = large), min-max normalised per frame to [0, 1].

    For "depth": undo the video normalisation, invert (non-positive and non-finite distances
    become 0), then normalise each frame; for "disparity": normalise each frame. A constant
    frame maps to 0."""
    disp = to_disparity(depth, kind, raw_range)
    r = _range_of(disp)
    return _per_frame(disp, r[:, 0, None, None], r[:, 1, None, None])


def model_track_depth(
    track_depth: np.ndarray,
    kind: str,
    raw_range: tuple[float, float] | None,
    frame_range: np.ndarray,
) -> np.ndarray:
    """Stored ``track_depth [N, T]`` -> ``[N, T]`` float32 in the model's convention, with the
    per-frame range of the maps it was sampled from (``frame_range [T, 2]`` from
    :func:`depth_frame_range`, for the same frames); ``kind`` and ``raw_range`` are those of the
    file's ``depth`` dataset (``track_depth`` has no meaning without them).

    Only for ``kind="disparity"``, where it equals :func:`sample_model_depth` (the stored value
    is affine in the disparity, so sampling and converting commute). For ``kind="depth"`` the
    stored value blends distances across an object's edge (halfway between a pixel at 6 m and
    one at 35 m it reads 20.5 m, whose inverse is half the blended disparity): sample the maps
    instead."""
    if kind != "disparity":
        raise ValueError(
            f"track_depth of kind {kind!r} blends distances, not disparities: convert the "
            "depth maps with sample_model_depth instead"
        )
    fr = np.asarray(frame_range, np.float32)
    if fr.shape != (track_depth.shape[1], 2):
        raise ValueError(
            f"frame_range has shape {fr.shape}, expected ({track_depth.shape[1]}, 2) for "
            f"track_depth of shape {track_depth.shape}"
        )
    return _per_frame(to_disparity(track_depth, kind, raw_range), fr[None, :, 0], fr[None, :, 1])


def sample_model_depth(
    depth: np.ndarray,
    tracks: np.ndarray,
    frame_size: tuple[int, int],
    kind: str,
    raw_range: tuple[float, float] | None,
    frame_range: np.ndarray | None = None,
) -> np.ndarray:
    """``[N, T]`` float32: ``model_depth(depth, kind, raw_range)`` sampled bilinearly at
    ``tracks [N, T, 2]`` (as :func:`sample_depth`), converting only the pixels it reads.
    ``frame_range [T, 2]``: the per-frame range of these maps (:func:`depth_frame_range`, e.g.
    cached per file); None computes it from ``depth``."""
    T, Hd, Wd = depth.shape
    if tracks.shape[1] != T:
        raise ValueError(f"tracks have {tracks.shape[1]} frames, depth has {T}")
    fr = depth_frame_range(depth, kind, raw_range) if frame_range is None else frame_range
    fr = np.asarray(fr, np.float32)
    lo, hi = fr[None, :, 0], fr[None, :, 1]
    x, y = _map_coords(tracks, (Hd, Wd), frame_size)
    t = np.broadcast_to(np.arange(T)[None, :], x.shape)
    return bilinear(
        depth,
        x,
        y,
        lead=(t,),
        transform=lambda v: _per_frame(to_disparity(v, kind, raw_range), lo, hi),
    )


def sequence_model_depth(seq: Sequence) -> np.ndarray | None:
    """``[N, T]`` float32 depth of every track of ``seq`` in the model's convention, or None
    when ``seq`` has no depth maps (``track_depth`` alone has no kind or range: it counts as no
    depth). Reads it as training does (:func:`moseg.data.samples.read_depth`): from
    ``track_depth`` for disparity, else from the maps."""
    if seq.depth is None:
        return None
    kind, raw = seq.depth_kind, seq.depth_raw_range
    frame_range = depth_frame_range(seq.depth, kind, raw)
    if seq.track_depth is not None and kind == "disparity":
        return model_track_depth(seq.track_depth, kind, raw, frame_range)
    size = (seq.height, seq.width)
    return sample_model_depth(seq.depth, seq.tracks, size, kind, raw, frame_range)


def missing_depth_message(subject: str, made_with: str | None, fixes: Iterable[str]) -> str:
    """The one message for "a model that uses depth got data without it", for training and
    inference alike: ``subject`` (e.g. "data source 'hoi4d'"), what the data was made with
    (the provenance's depth name, e.g. "none"), and the fixes, to which setting
    ``allow_missing_depth=true`` is added. Raise it as :class:`MissingDepthError`, or log and
    record it as a warning where ``allow_missing_depth`` is true."""
    how = f" (converted with depth={made_with})" if made_with else ""
    options = [*fixes, "set allow_missing_depth=true to go on with zeros in place of its depth"]
    return f"{subject} has no depth{how}: " + ", or ".join(options)


def list_sequences(root: str | Path) -> list[Path]:
    """Contract files under ``root`` (recursively), sorted; temporary files are never listed."""
    root = Path(root)
    return sorted(p for p in root.rglob(f"*{SUFFIX}") if not p.name.startswith("."))


def describe_fields() -> str:
    """A markdown table of the contract (used to keep the docs in sync with the code)."""
    rows = ["| field | dtype | shape | unit | required | meaning |", "|---|---|---|---|---|---|"]
    for s in FIELDS.values():
        rows.append(
            f"| `{s.name}` | {s.dtype_name} | [{', '.join(s.shape)}] | {s.unit} | "
            f"{'yes' if s.required else 'no'} | {s.doc} |"
        )
    return "\n".join(rows)
