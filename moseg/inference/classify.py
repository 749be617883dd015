"""Moving/static decisions for every track of a sequence, at inference time.

Three classifiers share one interface, ``classifier(seq) -> prob [N]`` (moving probability):

- :class:`ModelClassifier`: a trained checkpoint (``ckpt=...``). Each query frame's tracks are
  classified together over a window of frames around that query frame, the way they were trained
  (``moseg/conf/source/*.yaml``: ``sampling.num_frames``); large sets are cut into seeded random
  chunks of at most ``tracks_per_pass`` tracks, since attention across tracks is quadratic.
- :class:`GeometricClassifier`: no weights. A homography between frames ``t`` and ``t + gap``
  (RANSAC) explains the background's image motion; a track whose transfer residual is many times
  the frame's median residual moves. This is the classic baseline of docs/benchmarks.md.
- :class:`OracleClassifier`: the file's own labels (ground truth at the query frame), for upper
  bounds of the densifiers (decided directly, without the threshold rule).

:func:`decide` turns probabilities into decisions with the reference's rule: the first threshold
of a descending list that gives at least ``min_moving`` moving tracks, else the ``fallback_top``
most probable tracks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence as Seq
from pathlib import Path

import cv2
import numpy as np
import torch

from moseg.densify.base import TrackSet
from moseg.io import Sequence
from moseg.io.contract import (
    LABEL_MOVING,
    MissingDepthError,
    missing_depth_message,
    model_depth,
    sequence_model_depth,
)
from moseg.models.checkpoint import CheckpointError, LoadedClassifier, load_classifier_checkpoint
from moseg.utils.device import resolve_device

log = logging.getLogger(__name__)

REFERENCE_THRESHOLDS = (0.95, 0.93, 0.9, 0.85, 0.8, 0.75, 0.7)

# the classifier checkpoint the project ships (``ckpt=auto``, the default of evaluate.py and
# ``moseg segment``); absent until one is committed
SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "classifier.ckpt"


def resolve_checkpoint(ckpt: str | Path | None) -> str | None:
    """``ckpt=auto`` -> the shipped checkpoint when it exists, else None (the geometric
    fallback); a path is returned as it is (a missing file fails when it is loaded)."""
    if ckpt is None or str(ckpt) in ("", "null", "None"):
        return None
    if str(ckpt) == "auto":
        return str(SHIPPED_CHECKPOINT) if SHIPPED_CHECKPOINT.is_file() else None
    return str(ckpt)


def decide(
    prob: np.ndarray,
    thresholds: Seq[float] = REFERENCE_THRESHOLDS,
    min_moving: int = 10,
    fallback_top: int = 3,
) -> tuple[np.ndarray, float]:
    """``moving [N] bool`` and the threshold used (``nan`` when the fallback chose).

    ``prob [N]`` may hold NaN for tracks that were not classified; they are never moving."""
    if list(thresholds) != sorted(thresholds, reverse=True):
        raise ValueError(f"thresholds must be in descending order, got {list(thresholds)}")
    p = np.nan_to_num(np.asarray(prob, np.float64), nan=-1.0)
    for th in thresholds:
        moving = p >= th
        if moving.sum() >= min_moving:
            return moving, float(th)
    moving = np.zeros(p.shape, bool)
    k = min(int(fallback_top), int((p >= 0).sum()))
    if k > 0:
        moving[np.argsort(-p, kind="stable")[:k]] = True
    return moving, float("nan")


def centred_window(T: int, q: int, length: int, stride: int = 1) -> np.ndarray:
    """Indices of up to ``length`` frames, every ``stride``-th (``q``'s grid), holding ``q`` as
    near the middle as the clip allows (stride 1: ``min(length, T)`` consecutive frames)."""
    s = max(1, int(stride))
    before, after = q // s, (T - 1 - q) // s  # frames of q's grid before and after it
    L = min(int(length), before + after + 1)
    j = int(np.clip(L // 2, L - 1 - after, before))  # q's position in the window
    return q + s * (np.arange(L) - j)


def _load(ckpt: str | Path | LoadedClassifier, device: torch.device) -> LoadedClassifier:
    """A loaded checkpoint (read here unless given), its network on ``device``; the format
    found is logged."""
    if isinstance(ckpt, LoadedClassifier):
        loaded = ckpt
    else:
        loaded = load_classifier_checkpoint(ckpt, map_location="cpu")
        loaded.meta["path"] = str(ckpt)
        log.info("loaded %s", loaded.describe(ckpt))
    loaded.net.to(device)
    return loaded


class ModelClassifier:
    """A trained :class:`~moseg.models.TrackClassifier` applied to whole sequences.

    ``window``, ``frame_stride``, ``tracks_per_pass``: frames per pass (every
    ``frame_stride``-th, around the query frame) and most tracks that attend to each other in
    one pass. None: what the checkpoint was trained on (its ``trained_on`` entry: the window,
    the stride of its main source and its largest track count, see
    :meth:`moseg.data.TrackDataModule.trained_on`); checkpoints without it: 24, 1 and 2048;
    ``max_tracks``: classify at most this many tracks in all, an equal share per query frame
    (the reference uses 5000; None: every track); ``seed``: chunking and sub-sampling, so the
    result is the same on every run. ``thresholds``: the reference's, unless the checkpoint
    carries its own (``python -m moseg.training.export --thresholds``); ``classifier.
    thresholds=[...]`` in the config overrides both."""

    name = "model"
    thresholds = REFERENCE_THRESHOLDS

    def __init__(
        self,
        ckpt: str | Path | LoadedClassifier,
        window: int | None = None,
        tracks_per_pass: int | None = None,
        max_tracks: int | None = None,
        device: str = "cpu",
        seed: int = 0,
        allow_missing_depth: bool = False,
        frame_stride: int | None = None,
    ):
        self.device = resolve_device(device)
        loaded = _load(ckpt, self.device)
        if loaded.architecture != "moseg":
            raise CheckpointError(
                f"{ckpt}: holds the release architecture; use ReleaseModelClassifier "
                "(build_classifier picks it)"
            )
        self.net = loaded.net
        # thresholds chosen for this checkpoint (export_classifier) replace the reference's
        chosen = loaded.decision.get("thresholds")
        if chosen:
            self.thresholds = tuple(float(t) for t in chosen)
        trained = loaded.meta.get("trained_on") or {}
        self.window = int(window or trained.get("window") or 24)
        self.frame_stride = int(frame_stride or trained.get("frame_stride") or 1)
        self.tracks_per_pass = int(tracks_per_pass or trained.get("max_tracks") or 2048)
        self.max_tracks = max_tracks
        self.seed = int(seed)
        self.path = Path(str(loaded.meta.get("path", ckpt)))
        self.allow_missing_depth = bool(allow_missing_depth)
        self.missing_inputs: list[str] = []  # of the last sequence classified
        self._depth: np.ndarray | None = None  # [N, T] of the sequence being classified

    def check_inputs(self, seq: Sequence) -> list[str]:
        """Inputs the model was built for that ``seq`` lacks. Depth: a
        :class:`~moseg.io.contract.MissingDepthError` naming the sequence and the fixes, unless
        ``allow_missing_depth`` (then a warning, and zeros). Features: a warning, and zeros (as
        in modality dropout, which is not what it was mostly trained on)."""
        cfg, missing = self.net.cfg, []
        if cfg.use_depth and seq.depth is None:
            msg = missing_depth_message(
                f"sequence {seq.name!r}",
                (seq.provenance.get("depth") or {}).get("name"),
                [
                    "preprocess it with depth=depth_anything_v2",
                    "use a checkpoint trained with model.net.use_depth=false",
                ],
            )
            if not self.allow_missing_depth:
                raise MissingDepthError(msg)
            log.warning("%s (allow_missing_depth=true: it sees zeros)", msg)
            missing.append("depth")
        feats = seq.features
        if cfg.semantics != "none" and feats is not None and feats.shape[-1] != cfg.semantic_dim:
            raise ValueError(
                f"sequence {seq.name!r}: features have {feats.shape[-1]} channels, the "
                f"classifier {self.path} expects {cfg.semantic_dim}: preprocess with the "
                "features it was trained on (features=appearance for 48, dinov2 for 768)"
            )
        if cfg.semantics != "none" and seq.features is None:
            missing.append("features")
            log.warning(
                "%s: the classifier uses features but the preprocessed file has none: it sees "
                "zeros (set features=... in evaluate.py to match the training data)",
                seq.name,
            )
        return missing

    def _pass(self, seq: Sequence, ids: np.ndarray, t: np.ndarray, qi: int) -> np.ndarray:
        cfg = self.net.cfg
        rows = np.ix_(ids, t)  # the chunk's tracks over the window, one copy each
        xy = seq.tracks[rows].astype(np.float32)
        tracks = torch.from_numpy(xy)[None]
        vis = torch.from_numpy(seq.visibility[rows])[None]
        conf = torch.from_numpy(seq.confidence[rows].astype(np.float32))[None]
        depth = None
        if cfg.use_depth and self._depth is not None:
            # the model convention (per-frame disparity), read as training reads it
            depth = torch.from_numpy(np.ascontiguousarray(self._depth[rows]))[None]
        feats = None
        if cfg.semantics != "none" and seq.features is not None:
            feats = torch.from_numpy(seq.features[ids].astype(np.float32))[None]
        size = torch.tensor([[seq.height, seq.width]])
        qf = torch.full((1, len(ids)), qi, dtype=torch.long)
        dev = self.device
        with torch.inference_mode():
            logits = self.net(
                tracks.to(dev),
                vis.to(dev),
                conf.to(dev),
                size.to(dev),
                depth=None if depth is None else depth.to(dev),
                features=None if feats is None else feats.to(dev),
                query_frame=qf.to(dev),
            )
        return torch.sigmoid(logits[0].float()).cpu().numpy()

    def __call__(self, seq: Sequence) -> np.ndarray:
        self.missing_inputs = self.check_inputs(seq)
        self._depth = sequence_model_depth(seq) if self.net.cfg.use_depth else None
        rng = np.random.default_rng(self.seed)
        prob = np.full(seq.num_tracks, np.nan, np.float32)
        queries = np.unique(seq.query_frame)
        share = None if self.max_tracks is None else max(1, int(self.max_tracks) // len(queries))
        for q in queries:
            ids = np.flatnonzero(seq.query_frame == q)
            if share is not None and ids.size > share:
                ids = np.sort(rng.choice(ids, size=share, replace=False))
            t = centred_window(seq.num_frames, int(q), self.window, self.frame_stride)
            qi = int(np.flatnonzero(t == q)[0])
            n_chunks = max(1, -(-ids.size // self.tracks_per_pass))
            order = rng.permutation(ids.size)
            for chunk in np.array_split(order, n_chunks):
                sel = np.sort(ids[chunk])
                prob[sel] = self._pass(seq, sel, t, qi)
        return prob


class ReleaseModelClassifier:
    """The release's classifier (``model=release``: a SegAnyMo ``moseg.pth`` or its import)
    applied the way the release's ``inference.py`` applies it, so its weights see what they
    were trained on:

    - every frame of the video in one pass;
    - an equal share of ``max_tracks`` (5000) tracks per query frame, drawn with ``seed`` (the
      release draws unseeded); tracks invisible at every frame are left out (NaN, never moving);
      in a frame where no drawn track is visible, the most confident point is made visible;
    - positions as ``x / W * 2 - 1`` clamped to [-1, 1]; depth as per-frame normalised
      disparity maps read at the nearest pixel (``depth_lookup``: 'release' reads where the
      weights were trained to read, at the [-1, 1] coordinates; 'fixed' at the true pixel);
      TAPIR's visibility probability (the file's ``visibility_prob``, else the boolean
      visibility) and confidence; the 768-d DINO feature of each track. A release network
      trained here (``train.py model=release``) is fed as it was trained: depth sampled
      bilinearly per point ('bilinear'), visibility as 0/1 (the checkpoint's ``inputs``).

    Its decision rule is the release's (the checkpoint's ``decision``): thresholds 0.95 ... 0.7,
    at least 10 moving tracks, else the top 3; videos over 300 frames use 0.99 ... 0.95.
    ``allow_missing_depth``: a file without depth gives zeros and a warning instead of an
    error."""

    name = "release"

    def __init__(
        self,
        ckpt: str | Path | LoadedClassifier,
        max_tracks: int | None = None,
        device: str = "cpu",
        seed: int = 0,
        depth_lookup: str | None = None,
        allow_missing_depth: bool = False,
        **ignored: object,
    ):
        self.device = resolve_device(device)
        loaded = _load(ckpt, self.device)
        if loaded.architecture != "release":
            raise CheckpointError(f"{ckpt}: not a release-architecture checkpoint")
        self.net = loaded.net
        self.cfg = loaded.net.cfg
        self.inputs = dict(loaded.inputs)
        d = loaded.decision
        self.thresholds = tuple(float(t) for t in d["thresholds"])
        self.long_frames = int(d.get("long_frames", 300))
        self.long_thresholds = tuple(float(t) for t in d.get("long_thresholds", ()))
        self.max_tracks = int(max_tracks or self.inputs.get("max_tracks", 5000))
        self.depth_lookup = str(depth_lookup or self.inputs.get("depth_lookup", "release"))
        if self.depth_lookup not in ("release", "fixed", "bilinear"):
            raise ValueError(
                f"depth_lookup must be release, fixed or bilinear, not {self.depth_lookup!r}"
            )
        # a release network trained here (train.py model=release) saw 0/1 visibility
        self.visibility_values = self.inputs.get("visib_value") != "visibility"
        self.allow_missing_depth = bool(allow_missing_depth)
        self.path = Path(str(loaded.meta.get("path", ckpt)))
        self.seed = int(seed)
        self.missing_inputs: list[str] = []
        unused = sorted(k for k, v in ignored.items() if v is not None)
        if unused:
            log.info("release classifier: options %s do not apply to it", unused)

    def thresholds_for(self, num_frames: int) -> tuple[float, ...]:
        """The release's threshold list for a video of ``num_frames`` frames."""
        if self.long_thresholds and num_frames > self.long_frames:
            return self.long_thresholds
        return self.thresholds

    def check_inputs(self, seq: Sequence) -> list[str]:
        """What the network needs that ``seq`` lacks: an error (or, for depth with
        ``allow_missing_depth``, a warning and zeros)."""
        cfg, missing = self.cfg, []
        if cfg.dino:
            if seq.features is None:
                raise ValueError(
                    f"sequence {seq.name!r}: the release classifier {self.path} needs DINOv2 "
                    "features and the preprocessed file has none: preprocess with features=dinov2"
                )
            if seq.features.shape[-1] != cfg.dino_dim:
                raise ValueError(
                    f"sequence {seq.name!r}: features have {seq.features.shape[-1]} channels, the "
                    f"release classifier {self.path} expects {cfg.dino_dim} (DINOv2 ViT-B/14 "
                    "keys): preprocess with features=dinov2"
                )
        if cfg.depth and seq.depth is None:
            msg = missing_depth_message(
                f"sequence {seq.name!r} (release classifier)",
                (seq.provenance.get("depth") or {}).get("name"),
                ["preprocess it with depth=depth_anything_v2"],
            )
            if not self.allow_missing_depth:
                raise MissingDepthError(msg)
            log.warning("%s (allow_missing_depth=true: it sees zeros)", msg)
            missing.append("depth")
        return missing

    def select(self, seq: Sequence, rng: np.random.Generator) -> np.ndarray:
        """The tracks classified: an equal share per query frame, at most ``max_tracks`` in
        all, none invisible at every frame (sorted indices)."""
        queries = np.unique(seq.query_frame)
        picked = []
        for q in queries:
            ids = np.flatnonzero(seq.query_frame == q)
            take = int(ids.size / len(queries))  # the release's share: its count x 1 / #queries
            picked.append(rng.permutation(ids)[:take])
        ids = np.concatenate(picked) if picked else np.zeros(0, np.int64)
        ids = rng.permutation(ids)[: self.max_tracks]
        ids = ids[seq.visibility[ids].any(axis=1)]
        return np.sort(ids)

    def batch(self, seq: Sequence, ids: np.ndarray) -> dict[str, torch.Tensor]:
        """The release network's input batch for tracks ``ids`` of ``seq``."""
        cfg = self.cfg
        H, W = seq.height, seq.width
        xy = seq.tracks[ids].astype(np.float32)  # [N, T, 2]
        vis = seq.visibility[ids].copy()
        conf = seq.confidence[ids].astype(np.float32)
        for t in np.flatnonzero(~vis.any(axis=0)):  # no visible point in frame t
            vis[int(np.argmax(conf[:, t])), t] = True
        unit = xy / np.array([W, H], np.float32)
        traj = np.clip(unit * 2.0 - 1.0, -1.0, 1.0)
        out = {
            "traj": torch.from_numpy(traj.transpose(2, 0, 1).copy())[None],
            "mask": torch.from_numpy((~vis).astype(np.float32))[None, None],
        }
        if self.depth_lookup == "fixed":
            out["depth_traj"] = torch.from_numpy(unit.transpose(2, 0, 1).copy())[None]
        if cfg.depth and self.depth_lookup == "bilinear":
            # per point, read exactly as training reads it (train.py model=release)
            d = sequence_model_depth(seq) if seq.depth is not None else None
            d = np.zeros(xy.shape[:2], np.float32) if d is None else d[ids]
            out["track_depth"] = torch.from_numpy(np.ascontiguousarray(d))[None, None]
        elif cfg.depth:
            if seq.depth is None:  # allowed by check_inputs: zeros
                maps = np.zeros((seq.num_frames, 1, 1), np.float32)
            else:
                maps = release_depth_maps(seq)
            hwt = np.ascontiguousarray(maps.transpose(1, 2, 0))
            out["depth"] = torch.from_numpy(hwt)[None, None]
        if cfg.extra_info:
            vp = getattr(seq, "visibility_prob", None) if self.visibility_values else None
            vv = vp[ids].astype(np.float32) if vp is not None else vis.astype(np.float32)
            out["visib_value"] = torch.from_numpy(vv)[None, None]
            out["confi_value"] = torch.from_numpy(conf)[None, None]
        if cfg.dino:
            f = seq.features[ids].astype(np.float32)  # [N, C]
            out["dino"] = torch.from_numpy(f.T.copy())[None, :, :, None]
        return out

    def __call__(self, seq: Sequence) -> np.ndarray:
        self.missing_inputs = self.check_inputs(seq)
        rng = np.random.default_rng(self.seed)
        prob = np.full(seq.num_tracks, np.nan, np.float32)
        ids = self.select(seq, rng)
        if ids.size == 0:
            return prob
        batch = {k: v.to(self.device) for k, v in self.batch(seq, ids).items()}
        with torch.inference_mode():
            out = self.net(batch)
        prob[ids] = out["prob"][0].float().cpu().numpy()
        return prob


def release_depth_maps(seq: Sequence) -> np.ndarray:
    """``seq``'s depth maps in the release's model input: per-frame min-max normalised
    disparity ``[T, Hd, Wd]`` float32, whatever kind the file stores."""
    return model_depth(seq.depth, seq.depth_kind, seq.depth_raw_range)


class GeometricClassifier:
    """Weight-free baseline: homography-RANSAC residuals (see the module docstring).

    For each frame ``t``, a homography maps the tracks seen at ``t`` and ``t + gap`` (RANSAC,
    ``ransac_px``); each such track's transfer error is divided by the median error of that
    frame pair; a track's score is the ``percentile`` of its ratios over its life, and
    ``prob = s / (s + ratio)`` (0.5 exactly at ``ratio``), so ``decide(prob, [0.5])`` moves the
    tracks scoring above ``ratio``. Defaults chosen on the 8 DAVIS-2016 train sequences
    (pipeline J&F 44.8 at gap 1, ratio 20; docs/benchmarks.md)."""

    name = "geometric"
    thresholds = (0.5,)  # its probabilities are calibrated to the ratio, not to a model's

    def __init__(
        self,
        gap: int = 1,
        ratio: float = 20.0,
        percentile: float = 75.0,
        ransac_px: float = 3.0,
        min_points: int = 12,
        min_median_px: float = 0.3,
        seed: int = 0,
    ):
        self.gap, self.ratio, self.percentile = int(gap), float(ratio), float(percentile)
        self.ransac_px, self.min_points, self.seed = float(ransac_px), int(min_points), int(seed)
        self.min_median_px = float(min_median_px)

    def scores(self, seq: Sequence) -> np.ndarray:
        """``[N]`` residual ratio score (NaN for tracks never seen in a usable frame pair)."""
        cv2.setRNGSeed(self.seed)
        N, T = seq.num_tracks, seq.num_frames
        ratios = np.full((N, max(T - 1, 1)), np.nan, np.float32)
        for t in range(T - 1):
            u = min(t + self.gap, T - 1)
            both = np.flatnonzero(seq.visibility[:, t] & seq.visibility[:, u])
            if both.size < self.min_points:
                continue
            a = seq.tracks[both, t].astype(np.float32)
            b = seq.tracks[both, u].astype(np.float32)
            H, inl = cv2.findHomography(a, b, cv2.RANSAC, self.ransac_px)
            if H is None:
                continue
            pa = cv2.perspectiveTransform(a[:, None], H)[:, 0]
            err = np.linalg.norm(pa - b, axis=1)
            # the background's typical error: the median over RANSAC inliers (a large moving
            # object would inflate a median over all tracks), floored so that sub-pixel jitter
            # of a still camera does not turn into huge ratios
            inl = inl.ravel().astype(bool)
            med = float(np.median(err[inl])) if inl.any() else float(np.median(err))
            med = max(med, self.min_median_px)
            ratios[both, t] = err / med
        with np.errstate(all="ignore"):
            seen = ~np.isnan(ratios).all(axis=1)
            s = np.full(N, np.nan, np.float32)
            s[seen] = np.nanpercentile(ratios[seen], self.percentile, axis=1)
        return s

    def __call__(self, seq: Sequence) -> np.ndarray:
        """``[N]`` moving probability; NaN for tracks never seen in a usable frame pair (left
        out, not passed to the densifier as static evidence)."""
        s = self.scores(seq)
        return (s / (s + self.ratio)).astype(np.float32)


class OracleClassifier:
    """The file's labels as probabilities (1 moving, 0 static, NaN unknown: left out), for
    upper bounds. Its decisions are the labels themselves (``direct``): no threshold rule, no
    fallback."""

    name = "oracle"
    thresholds = (0.5,)
    direct = True

    def __call__(self, seq: Sequence) -> np.ndarray:
        if seq.label is None:
            raise ValueError(f"{seq.name}: the oracle classifier needs labels in the file")
        p = (seq.label == LABEL_MOVING).astype(np.float32)
        p[seq.label < 0] = np.nan
        return p


def load_model_classifier(ckpt: str | Path, options: dict | None = None) -> object:
    """The classifier of a checkpoint of either format (moseg or the SegAnyMo release, told
    apart by its contents and logged): :class:`ModelClassifier` for our architecture,
    :class:`ReleaseModelClassifier` for the release's. ``options``: ``classifier.model``."""
    opts = dict(options or {})
    loaded = load_classifier_checkpoint(ckpt, map_location="cpu")
    loaded.meta["path"] = str(ckpt)
    log.info("loaded %s", loaded.describe(ckpt))
    if loaded.architecture == "release":
        return ReleaseModelClassifier(loaded, **opts)
    opts.pop("depth_lookup", None)
    return ModelClassifier(loaded, **opts)


def build_classifier(kind: str, ckpt: str | None, options: dict) -> object:
    """``kind``: model | geometric | oracle | auto (model when ``ckpt`` is set, else geometric,
    with a warning)."""
    opts = dict(options or {})
    if kind == "auto":
        kind = "model" if ckpt else "geometric"
        if kind == "geometric":
            log.warning(
                "no classifier checkpoint given (ckpt=null): using the weight-free geometric "
                "classifier; pass ckpt=PATH for a trained model"
            )
    if kind == "model":
        if not ckpt:
            raise ValueError("classifier.kind=model needs ckpt=PATH")
        return load_model_classifier(ckpt, opts.get("model", {}))
    if kind == "geometric":
        return GeometricClassifier(**opts.get("geometric", {}))
    if kind == "oracle":
        return OracleClassifier()
    raise ValueError(f"classifier.kind must be auto, model, geometric or oracle, not {kind!r}")


def classify_tracks(
    classifier: object, seq: Sequence, decide_kw: dict
) -> tuple[TrackSet, np.ndarray, np.ndarray, float]:
    """Run ``classifier`` on ``seq`` and decide: ``(tracks, moving [N], keep [N], threshold)``
    where ``tracks`` holds the classified tracks (``keep``: those with a score; unscored ones
    are left out rather than passed on as static). A ``direct`` classifier's labels are taken
    as they are (threshold NaN)."""
    prob = classifier(seq)
    if getattr(classifier, "direct", False):  # labels, not scores: no threshold rule
        moving, threshold = np.nan_to_num(prob, nan=0.0) >= 0.5, float("nan")
    else:
        own = getattr(classifier, "thresholds_for", None)
        if own is not None and tuple(decide_kw["thresholds"]) == tuple(classifier.thresholds):
            # the classifier's own rule (not overridden): it may depend on the video's length
            decide_kw = {**decide_kw, "thresholds": list(own(seq.num_frames))}
        moving, threshold = decide(prob, **decide_kw)
    tracks, keep = scored_tracks(seq, prob, moving)
    return tracks, moving, keep, threshold


def scored_tracks(
    seq: Sequence, prob: np.ndarray, moving: np.ndarray
) -> tuple[TrackSet, np.ndarray]:
    """The tracks of ``seq`` that have a score (``keep = ~isnan(prob)``) with their
    probabilities and decisions, as the densifiers take them; and ``keep``."""
    keep = ~np.isnan(prob)
    tracks = TrackSet(
        seq.tracks[keep],
        seq.visibility[keep],
        seq.query_frame[keep],
        prob[keep].astype(np.float32),
        moving[keep],
    )
    return tracks, keep
