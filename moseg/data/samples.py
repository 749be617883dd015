"""One training sample from one contract file: a query frame, a window of frames, some tracks.

Everything random comes from the ``np.random.Generator`` passed in, so a sample is a pure
function of (file, seed): runs are reproducible whatever the number of loader workers.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from moseg.io import SequenceFile, depth_frame_range, model_track_depth, sample_model_depth
from moseg.io.contract import bilinear


@dataclass
class Sample:
    """A clip's worth of tracks, ready for the classifier (numpy, float32 unless noted)."""

    tracks: np.ndarray  # [N, T, 2] (x, y) px
    visibility: np.ndarray  # [N, T] bool
    confidence: np.ndarray  # [N, T]
    depth: np.ndarray | None  # [N, T] model depth (moseg.io.model_depth: disparity normalised
    # per frame to [0, 1]), None when the file has none (or it was dropped)
    features: np.ndarray | None  # [N, C] float16, None when the file has none (or dropped)
    label: np.ndarray  # [N] int64: 1 moving, 0 static, -1 ignore
    image_size: tuple[int, int]  # (H, W)
    name: str
    source: str
    query_index: int  # the query frame's position in the window


@dataclass(frozen=True)
class SamplingSpec:
    """How to cut a sample out of a file (one per data source; see ``moseg/conf/source/*.yaml``)."""

    num_tracks: tuple[int, ...] = (1024,)  # one drawn uniformly per sample; capped at what exists
    num_frames: int = 24  # window length (fewer if the clip is shorter)
    frame_stride: int = 1  # take every k-th frame
    use_depth: bool = True
    use_features: bool = True
    # (low, high): the track count is drawn uniformly from low..high (inclusive) instead of
    # from ``num_tracks`` (the paper's ranges, experiment=paper)
    num_tracks_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        r = self.num_tracks_range
        if r is not None and not (len(r) == 2 and 1 <= r[0] <= r[1]):
            raise ValueError(
                f"sampling.num_tracks_range must be [low, high], 1 <= low <= high: {r!r}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingSpec:
        d = dict(d)
        nt = d.get("num_tracks", cls.num_tracks)
        d["num_tracks"] = tuple(int(x) for x in (nt if isinstance(nt, list | tuple) else [nt]))
        if d.get("num_tracks_range") is not None:
            d["num_tracks_range"] = tuple(int(x) for x in d["num_tracks_range"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def max_tracks(self) -> int:
        """The largest track count a sample can have (validation takes it)."""
        r = self.num_tracks_range
        return int(r[1]) if r is not None else max(self.num_tracks)

    def draw_num_tracks(self, rng: np.random.Generator) -> int:
        r = self.num_tracks_range
        if r is not None:
            return int(rng.integers(r[0], r[1] + 1))
        return int(rng.choice(self.num_tracks))

    def fixed(self, n: int) -> SamplingSpec:
        """This spec with the track count fixed to ``n``."""
        return replace(self, num_tracks=(int(n),), num_tracks_range=None)


@dataclass(frozen=True)
class Augment:
    """Augmentations that keep every label true (all off by default)."""

    hflip: float = 0.0  # probability of a horizontal flip
    time_reverse: float = 0.0  # probability of playing the window backwards
    scale: tuple[float, float] = (1.0, 1.0)  # zoom about a random centre; points leaving the
    # frame become invisible, tracks whose query point leaves are dropped
    jitter_px: float = 0.0  # Gaussian noise on positions (std, px)
    drop_points: float = 0.0  # fraction of (track, frame) points made invisible (not the query)
    drop_depth: float = 0.0  # probability of hiding depth from a sample
    drop_features: float = 0.0  # probability of hiding semantic features from a sample

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Augment:
        d = dict(d or {})
        if "scale" in d:
            d["scale"] = tuple(float(x) for x in d["scale"])
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown augmentation options {sorted(unknown)}; known {known}")
        return cls(**d)


class FileCache:
    """Keeps up to ``size`` contract files open (per process: each loader worker has its own)."""

    def __init__(self, size: int = 32):
        self.size = size
        self._open: OrderedDict[Path, SequenceFile] = OrderedDict()
        self._pid = os.getpid()

    def get(self, path: Path) -> SequenceFile:
        if os.getpid() != self._pid:  # a forked worker never shares its parent's HDF5 handles
            self._open = OrderedDict()
            self._pid = os.getpid()
        f = self._open.pop(path, None)
        if f is None:
            f = SequenceFile(path)
            while len(self._open) >= self.size:
                self._open.popitem(last=False)[1].close()
        self._open[path] = f
        return f

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def __getstate__(self):  # spawned workers start with no open handles
        return {"size": self.size, "_open": OrderedDict(), "_pid": -1}


def _window(T: int, q: int, spec: SamplingSpec, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of a window of ``spec.num_frames`` frames, every ``frame_stride``-th,
    containing ``q``; shorter when the clip is."""
    s = max(1, spec.frame_stride)
    before = q // s  # frames available before q on its stride grid
    after = (T - 1 - q) // s
    L = min(spec.num_frames, before + after + 1)
    lo = max(0, L - 1 - after)  # q's position in the window: at least lo, at most min(before, L-1)
    hi = min(before, L - 1)
    j = int(rng.integers(lo, hi + 1))
    return q + s * (np.arange(L) - j)


class _DepthInfo:
    """What converting a file's depth into the model's convention needs: the ``depth``
    dataset's kind and raw range, and the per-frame range of its maps (read once per open file,
    a block of frames at a time)."""

    def __init__(self, f: SequenceFile):
        a = f.dataset_attrs("depth")
        self.kind = str(a.get("kind"))
        self.raw = (float(a.get("raw_min", 0.0)), float(a.get("raw_max", 1.0)))
        T, block = f.meta.num_frames, 64
        self.frame_range = np.concatenate(
            [
                depth_frame_range(f.read("depth", np.s_[a : a + block]), self.kind, self.raw)
                for a in range(0, T, block)
            ]
        )


# per open file (and so per loader worker): forgotten when the file is closed and dropped
_DEPTH_INFO: weakref.WeakKeyDictionary[SequenceFile, _DepthInfo] = weakref.WeakKeyDictionary()


def _depth_info(f: SequenceFile) -> _DepthInfo:
    info = _DEPTH_INFO.get(f)
    if info is None:
        info = _DEPTH_INFO[f] = _DepthInfo(f)
    return info


def read_depth(
    f: SequenceFile, block: slice, rows: np.ndarray, frames: slice, tracks: np.ndarray
) -> np.ndarray | None:
    """``[n, t]`` float32: the model's depth (:func:`moseg.io.model_depth`: disparity, min-max
    normalised per frame) of the tracks ``block`` of the file (rows ``rows`` of that block,
    whose positions are ``tracks [n, t, 2]``) over the file's frames ``frames``; None when the
    file has no depth maps (``track_depth`` alone has no kind or range).

    Disparity files are read through ``track_depth`` when they have it (exact and cheap);
    distance files (and files without ``track_depth``) through the window's maps, since a
    stored ``track_depth`` of distances blends them across edges
    (:func:`moseg.io.model_track_depth`)."""
    if not f.has("depth"):
        return None
    info = _depth_info(f)
    fr = info.frame_range[frames]
    if info.kind == "disparity" and f.has("track_depth"):
        td = f.read("track_depth", block)[rows, frames]
        return model_track_depth(td, info.kind, info.raw, fr)
    maps = f.read("depth", frames)
    m = f.meta
    return sample_model_depth(maps, tracks, (m.height, m.width), info.kind, info.raw, fr)


def read_sample(
    f: SequenceFile,
    spec: SamplingSpec,
    rng: np.random.Generator,
    query_frame: int | None = None,
) -> Sample:
    """Cut one sample out of an open contract file (no augmentation).

    Reads only the window's frames and, when depth must come from maps, only those maps.
    Depth comes in the model's convention whatever the file stores (:func:`read_depth`)."""
    m = f.meta
    has = set(m.fields).__contains__
    qf = f.cached("query_frame")
    frames = np.unique(qf)
    q = int(rng.choice(frames)) if query_frame is None else int(query_frame)
    ids = np.flatnonzero(qf == q)  # sorted
    if ids.size == 0:
        raise ValueError(f"{m.path}: no track starts at frame {q}")
    n = spec.draw_num_tracks(rng)
    if ids.size > n:
        ids = np.sort(rng.choice(ids, size=n, replace=False))
    t = _window(m.num_frames, q, spec, rng)
    qi = int(np.flatnonzero(t == q)[0])  # the query frame's position in the window
    # Read one contiguous block: the rows from the first to the last chosen track (files group
    # tracks by query frame, so this is about one query frame's tracks) and the window's frames.
    # h5py's fancy indexing is several times slower than a block read plus numpy selection.
    lo, hi = int(ids[0]), int(ids[-1]) + 1
    rows = ids - lo
    step = int(t[1] - t[0]) if t.size > 1 else 1
    # chunks hold every frame of their tracks, so reading whole rows costs the same
    # decompression as a frame range and avoids h5py's slower 2-D selections
    sl = np.s_[lo:hi]
    tsel = np.s_[int(t[0]) : int(t[-1]) + 1 : step]
    tracks = f.read("tracks", sl)[rows, tsel].astype(np.float32)
    vis = f.read("visibility", sl)[rows, tsel]
    conf = f.read("confidence", sl)[rows, tsel].astype(np.float32)
    depth = read_depth(f, sl, rows, tsel, tracks) if spec.use_depth else None
    feats = None
    if spec.use_features:
        if has("features"):
            feats = f.read("features", np.s_[lo:hi])[rows]  # float16: half the bytes to move
        elif has("feature_maps"):
            fmf = f.read("feature_map_frames")
            k = np.flatnonzero(fmf == q)
            if k.size:
                fmap = f.read("feature_maps", int(k[0]))  # [h, w, C]
                stride = float(f.dataset_attrs("feature_maps")["stride"])
                feats = _sample_map(fmap, tracks[:, qi], stride).astype(np.float16)
    label = f.read("label", sl)[rows].astype(np.int64)
    return Sample(
        tracks=tracks,
        visibility=vis,
        confidence=conf,
        depth=depth,
        features=feats,
        label=label,
        image_size=(m.height, m.width),
        name=m.name,
        source=m.source,
        query_index=qi,
    )


def _sample_map(fmap: np.ndarray, xy: np.ndarray, stride: float) -> np.ndarray:
    """Bilinear sample of ``fmap [h, w, C]`` (cell centres at ``(i + 0.5) * stride - 0.5`` px) at
    ``xy [N, 2]`` px -> ``[N, C]``."""
    return bilinear(fmap, (xy[:, 0] + 0.5) / stride - 0.5, (xy[:, 1] + 0.5) / stride - 0.5)


def augment(s: Sample, aug: Augment, rng: np.random.Generator) -> Sample:
    """Apply ``aug`` to ``s`` in place and return it. Labels stay true under every step."""
    H, W = s.image_size
    if rng.random() < aug.hflip:
        s.tracks[..., 0] = (W - 1) - s.tracks[..., 0]
    if rng.random() < aug.time_reverse:
        # views: collate makes the one contiguous copy
        s.tracks = s.tracks[:, ::-1]
        s.visibility = s.visibility[:, ::-1]
        s.confidence = s.confidence[:, ::-1]
        if s.depth is not None:
            s.depth = s.depth[:, ::-1]
        s.query_index = s.tracks.shape[1] - 1 - s.query_index
    lo, hi = aug.scale
    if hi > lo or lo != 1.0:
        z = float(rng.uniform(lo, hi))
        c = np.array([rng.uniform(0, W - 1), rng.uniform(0, H - 1)], dtype=np.float32)
        s.tracks = (c + np.float32(z) * (s.tracks - c)).astype(np.float32, copy=False)
        inside = (
            (s.tracks[..., 0] >= -0.5)
            & (s.tracks[..., 0] <= W - 0.5)
            & (s.tracks[..., 1] >= -0.5)
            & (s.tracks[..., 1] <= H - 0.5)
        )
        s.visibility = s.visibility & inside
        keep = s.visibility[:, s.query_index]
        if not keep.all():
            _select(s, keep)
    if aug.jitter_px > 0:
        s.tracks += aug.jitter_px * rng.standard_normal(s.tracks.shape, dtype=np.float32)
    if aug.drop_points > 0:
        drop = rng.random(s.visibility.shape, dtype=np.float32) < aug.drop_points
        drop[:, s.query_index] = False
        s.visibility = s.visibility & ~drop
    if s.depth is not None and rng.random() < aug.drop_depth:
        s.depth = None
    if s.features is not None and rng.random() < aug.drop_features:
        s.features = None
    return s


def _select(s: Sample, keep: np.ndarray) -> None:
    s.tracks, s.visibility, s.confidence = s.tracks[keep], s.visibility[keep], s.confidence[keep]
    s.label = s.label[keep]
    if s.depth is not None:
        s.depth = s.depth[keep]
    if s.features is not None:
        s.features = s.features[keep]
