"""Tune the weight-free densifier on the 8 DAVIS-2016 *train* sequences.

For every sequence, label setting and configuration it runs
:class:`moseg.densify.weight_free.WeightFreeDensifier` and scores the masks under the MOS
protocol (all objects merged into one foreground) with J (IoU) and F (boundary F-measure, DAVIS
tolerance of ceil(0.008 * diagonal) px). ``moseg.metrics`` is used when it exists, else the plain
versions below.

Labels:
  oracle     moving = file label == 1 (ground truth at the query frame)
  noisy      oracle with a seeded 10 % of static tracks flipped to moving and 15 % of moving to
             static, spatially uncorrelated
  clustered  the same fractions, flipped in spatial blobs (radius 40 px at the query frame)

Usage:
  python benchmarks/tools/tune_weight_free.py --labels oracle noisy \\
      --config base: --config sp:method=superpixel,sp_blend=0.8 --config gc:method=grabcut

Never point --root at validation data for tuning; --root data/davis/val is for a final report.
The last line printed is a JSON dict {config: {labels: {J, F, JF, s_per_frame}}}.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np

from moseg.densify.base import TrackSet
from moseg.densify.weight_free import WeightFreeDensifier
from moseg.io import load_sequence

ROOT = Path(__file__).resolve().parents[2]

TRAIN = ["boat", "bus", "car-turn", "dog-agility", "drift-turn", "motorbike", "rollerblade", "surf"]


# ---------------------------------------------------------------------------------------------
# scoring (fallback when moseg.metrics is absent)
def _boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(bool)
    b = np.zeros_like(m)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]
    b[:-1, :] |= m[:-1, :] != m[1:, :]
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]
    return b


def j_plain(pred: np.ndarray, gt: np.ndarray, void: np.ndarray) -> float:
    p, g = pred & ~void, gt & ~void
    union = (p | g).sum()
    return 1.0 if union == 0 else float((p & g).sum() / union)


def f_plain(pred: np.ndarray, gt: np.ndarray, void: np.ndarray) -> float:
    H, W = gt.shape
    r = math.ceil(0.008 * math.hypot(H, W))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    bp, bg = _boundary(pred & ~void), _boundary(gt & ~void)
    np_, ng = bp.sum(), bg.sum()
    if np_ == 0 and ng == 0:
        return 1.0
    if np_ == 0 or ng == 0:
        return 0.0
    bg_d = cv2.dilate(bg.astype(np.uint8), disk).astype(bool)
    bp_d = cv2.dilate(bp.astype(np.uint8), disk).astype(bool)
    prec = (bp & bg_d).sum() / np_
    rec = (bg & bp_d).sum() / ng
    return 0.0 if prec + rec == 0 else float(2 * prec * rec / (prec + rec))


def score_sequence(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """pred, gt [T, H, W] (gt 255 = void); MOS: any object = foreground. Mean J, mean F."""
    try:  # the project's DAVIS-exact metrics, once they exist
        from moseg.metrics import evaluate_sequence  # type: ignore

        res = evaluate_sequence(pred > 0, gt)
        return float(res["J"]), float(res["F"])
    except Exception:
        pass
    js, fs = [], []
    for p, g in zip(pred, gt, strict=True):
        void = g == 255
        js.append(j_plain(p > 0, (g > 0) & ~void, void))
        fs.append(f_plain(p > 0, (g > 0) & ~void, void))
    return float(np.mean(js)), float(np.mean(fs))


# ---------------------------------------------------------------------------------------------
# labels
def make_labels(label: np.ndarray, tracks, query, kind: str, seed: int, p_sm: float, p_ms: float):
    moving = label == 1
    static = label == 0
    if kind == "oracle":
        return moving
    rng = np.random.default_rng(seed)
    out = moving.copy()
    if kind == "noisy":
        out[static & (rng.random(label.size) < p_sm)] = True
        out[moving & (rng.random(label.size) < p_ms)] = False
        return out
    if kind == "clustered":
        pos = tracks[np.arange(label.size), query]  # [N, 2] at the query frame
        for src, frac, value in ((static, p_sm, True), (moving, p_ms, False)):
            idx = np.flatnonzero(src)
            goal = int(round(frac * idx.size))
            flipped = np.zeros(label.size, dtype=bool)
            order = rng.permutation(idx)
            for seed_i in order:
                if flipped.sum() >= goal:
                    break
                same = src & (query == query[seed_i])
                near = same & (np.linalg.norm(pos - pos[seed_i], axis=1) <= 40.0)
                flipped |= near
            out[flipped] = value
        return out
    raise ValueError(kind)


def read_frames(root: Path, seq: str, T: int) -> np.ndarray:
    files = sorted((root / seq).glob("*.jpg"))[:T]
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def parse_config(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    kw = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        try:
            kw[k] = json.loads(v)
        except json.JSONDecodeError:
            kw[k] = v
    return name, kw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", default=str(ROOT / "data/davis/train"))
    ap.add_argument("--frames", default="/work/shared/data/DAVIS2016_train/JPEGImages/480p")
    ap.add_argument("--seqs", nargs="*", default=TRAIN)
    ap.add_argument("--labels", nargs="*", default=["oracle", "noisy"])
    ap.add_argument("--config", action="append", default=None, help="name:key=val,key=val")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--p-static-to-moving", type=float, default=0.10)
    ap.add_argument("--p-moving-to-static", type=float, default=0.15)
    args = ap.parse_args()
    configs = [parse_config(c) for c in (args.config or ["default:"])]

    results: dict = {}  # config -> labels -> seq -> (J, F, seconds, frames)
    for seq in args.seqs:
        data = load_sequence(
            Path(args.root) / f"{seq}.h5",
            fields=["tracks", "visibility", "query_frame", "label", "masks"],
        )
        T = data.tracks.shape[1]
        frames = read_frames(Path(args.frames), seq, T)
        for kind in args.labels:
            mov = make_labels(
                data.label,
                data.tracks,
                data.query_frame,
                kind,
                args.seed,
                args.p_static_to_moving,
                args.p_moving_to_static,
            )
            ts = TrackSet(
                data.tracks.astype(np.float32),
                data.visibility.astype(bool),
                data.query_frame.astype(np.int64),
                mov.astype(np.float32),
                mov,
            )
            for name, kw in configs:
                dens = WeightFreeDensifier(**kw)
                t0 = time.perf_counter()
                res = dens(frames, ts)
                sec = time.perf_counter() - t0
                J, F = score_sequence(res.masks, data.masks)
                results.setdefault(name, {}).setdefault(kind, {})[seq] = (J, F, sec, T)
                print(
                    f"{name:>14s} {kind:>9s} {seq:>12s}  J {J:.3f}  F {F:.3f}  "
                    f"JF {(J + F) / 2:.3f}  obj {res.info['num_objects']}  "
                    f"{sec / T:.3f} s/frame",
                    flush=True,
                )

    summary: dict = {}
    print()
    print(f"{'config':>14s} {'labels':>9s}  {'J':>6s} {'F':>6s} {'J&F':>6s} {'s/frame':>8s}")
    for name, per_kind in results.items():
        for kind, per_seq in per_kind.items():
            v = np.array([r[:2] for r in per_seq.values()])
            sec = sum(r[2] for r in per_seq.values()) / sum(r[3] for r in per_seq.values())
            J, F = v.mean(0)
            summary.setdefault(name, {})[kind] = {
                "J": round(float(J), 4),
                "F": round(float(F), 4),
                "JF": round(float((J + F) / 2), 4),
                "s_per_frame": round(float(sec), 4),
            }
            print(f"{name:>14s} {kind:>9s}  {J:6.3f} {F:6.3f} {(J + F) / 2:6.3f} {sec:8.3f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
