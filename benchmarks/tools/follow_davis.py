"""The weight-free prompted follower on real DAVIS 2016 with one simulated click per sequence.

For every sequence: the click is the most interior pixel of the ground-truth mask on frame 0
(:func:`moseg.segmentation.prompts.interior_point`, what a user would click), the tracks are the
cached ones of our default OpenCV tracker (computed with :class:`FlowTracker` when the cache has
none), :class:`moseg.segmentation.follow.TrackFollower` follows the object through the whole
sequence, and the masks are scored under the MOS protocol (J, F and J&F as in
:func:`moseg.metrics.evaluate_sequence`).

Usage:
  python benchmarks/tools/follow_davis.py --bench DAVIS2016_train
  python benchmarks/tools/follow_davis.py --bench DAVIS2016_train --set motion_ratio=4 \\
      --set densifier.gc_iters=5
  python benchmarks/tools/follow_davis.py --bench DAVIS2016 --overlays /tmp/follow_val

Tune on DAVIS2016_train only; DAVIS2016 (val) is for the final report. The last line printed is
a JSON dict {"sequences": {seq: {J, F, JF, s_per_frame}}, "mean": {...}}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from moseg.densify.base import TrackSet
from moseg.inference.masks import read_mask_png
from moseg.io import load_sequence
from moseg.metrics import evaluate_sequence
from moseg.segmentation.follow import TrackFollower
from moseg.segmentation.prompts import FramePrompt, interior_point

ROOT = Path(__file__).resolve().parents[2]


def sequences(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "JPEGImages/480p").iterdir() if p.is_dir())


def read_frames(root: Path, seq: str) -> np.ndarray:
    files = sorted((root / "JPEGImages/480p" / seq).glob("*.jpg"))
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def read_gt(root: Path, seq: str) -> np.ndarray:
    files = sorted((root / "Annotations/480p" / seq).glob("*.png"))
    return np.stack([read_mask_png(f) for f in files])


def load_tracks(cache: Path, bench: str, seq: str, frames: np.ndarray) -> tuple[TrackSet, str]:
    """The cached tracks of ``seq`` (any split folder), else freshly computed ones."""
    found = sorted((cache / f"davis-{bench}").glob(f"*/*/{seq}.h5"))
    if found:
        s = load_sequence(found[0], fields=["tracks", "visibility", "query_frame"])
        tr, vis, q, where = s.tracks, s.visibility, s.query_frame, str(found[0])
        if (s.height, s.width) != frames.shape[1:3]:
            raise ValueError(f"{found[0]}: tracks at {s.height}x{s.width}, frames differ")
    else:
        from moseg.prep.trackers.flow import FlowTracker

        res = FlowTracker()(frames)
        tr, vis, q, where = res.tracks, res.visibility, res.query_frame, "computed"
    n = len(q)
    # no classifier here: the follower must not depend on its probability
    ts = TrackSet(
        np.asarray(tr, np.float32),
        np.asarray(vis, bool),
        np.asarray(q),
        np.full(n, 0.5, np.float32),
        np.zeros(n, bool),
    )
    return ts, where


def parse_sets(items: list[str]) -> dict:
    """``key=value`` (JSON values, else strings); ``densifier.key=value`` goes to the
    densifier's kwargs."""
    kw: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        try:
            v = json.loads(value)
        except json.JSONDecodeError:
            v = value
        if key.startswith("densifier."):
            kw.setdefault("densifier", {})[key.split(".", 1)[1]] = v
        else:
            kw[key] = v
    return kw


def save_overlays(out: Path, seq: str, frames: np.ndarray, pred: np.ndarray, gt: np.ndarray):
    from moseg.viz import overlay_masks, save_png

    out.mkdir(parents=True, exist_ok=True)
    T = len(frames)
    for t in sorted({0, T // 3, 2 * T // 3, T - 1}):
        a = overlay_masks(frames[t], pred[t])
        b = overlay_masks(frames[t], gt[t])
        save_png(out / f"{seq}_{t:03d}.png", np.concatenate([a, b], axis=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data"))
    ap.add_argument("--bench", default="DAVIS2016_train", choices=["DAVIS2016_train", "DAVIS2016"])
    ap.add_argument("--cache", default=str(ROOT / "data/cache"))
    ap.add_argument("--seqs", nargs="*", default=None, help="default: every sequence")
    ap.add_argument("--set", action="append", default=[], help="knob=value (repeatable)")
    ap.add_argument("--overlays", default=None, help="folder for prediction|truth PNGs")
    args = ap.parse_args()

    root = Path(args.data) / args.bench
    follower = TrackFollower(**parse_sets(args.set))
    rows: dict[str, dict] = {}
    total_s, total_t = 0.0, 0
    print(f"{'sequence':20s} {'J':>6s} {'F':>6s} {'J&F':>6s} {'s/frame':>8s} {'select':>7s}")
    for seq in args.seqs or sequences(root):
        frames = read_frames(root, seq)
        gt = read_gt(root, seq)
        tracks, _ = load_tracks(Path(args.cache), args.bench, seq, frames)
        x, y = interior_point(gt[0] > 0)
        prompt = FramePrompt(1, 0, np.array([[x, y]], np.float32), np.array([1], np.int32))
        t0 = time.perf_counter()
        res = follower(frames, tracks, [prompt])
        dt = time.perf_counter() - t0
        score = evaluate_sequence(gt, res.masks, "mos", name=seq)
        T = len(frames)
        rows[seq] = {
            "J": float(score.j.mean),
            "F": float(score.f.mean),
            "JF": float(score.jf),
            "s_per_frame": dt / T,
            "select_s_per_frame": res.info["timings"]["select"] / T,
        }
        total_s, total_t = total_s + dt, total_t + T
        r = rows[seq]
        print(
            f"{seq:20s} {100 * r['J']:6.1f} {100 * r['F']:6.1f} {100 * r['JF']:6.1f} "
            f"{r['s_per_frame']:8.3f} {r['select_s_per_frame']:7.3f}",
            flush=True,
        )
        if args.overlays:
            save_overlays(Path(args.overlays), seq, frames, res.masks, gt)
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in ("J", "F", "JF")}
    mean["s_per_frame"] = total_s / max(total_t, 1)
    mean["select_s_per_frame"] = float(np.mean([r["select_s_per_frame"] for r in rows.values()]))
    print(
        f"{'mean':20s} {100 * mean['J']:6.1f} {100 * mean['F']:6.1f} {100 * mean['JF']:6.1f} "
        f"{mean['s_per_frame']:8.3f}"
    )
    print(json.dumps({"sequences": rows, "mean": mean, "knobs": follower.knobs()}))


if __name__ == "__main__":
    main()
