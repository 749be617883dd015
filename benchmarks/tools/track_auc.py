"""Per-track ROC AUC of moving/static scores on the DAVIS *train* sequences (labels from the
masks at each track's query frame), for choosing classifier inputs without touching val.

Scores compared on the same cached tracks as evaluate.py (``bench=davis2016_train``):
  - ``model``: a classifier checkpoint's probability (``--ckpt``; optional);
  - ``ransac_gG``: the geometric classifier's score (OpenCV homography RANSAC between frames
    t and t+G, 75th percentile of the residual ratio over the track's life);
  - ``irls_gG`` and ``irls_ransac_gG``: the same statistic from the model's own camera fit
    (:func:`moseg.models.classifier.camera_residual`, affine IRLS over the whole sequence)
    started from all points or from 32 RANSAC hypotheses.

    python benchmarks/tools/track_auc.py --ckpt moseg/checkpoints/classifier.ckpt --gaps 1 4 8

Prints one row per sequence and the mean AUC per score, then one JSON line {score: mean AUC}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torchmetrics.functional.classification import binary_auroc

from moseg.config import compose
from moseg.evaluation.bench import BenchSpec
from moseg.evaluation.run import CLASSIFIER_FIELDS, preprocess_all
from moseg.inference.classify import GeometricClassifier, build_classifier
from moseg.io import LABEL_MOVING, load_sequence
from moseg.models.classifier import camera_residual

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def irls_score(seq, gap: int, ransac: int, floor_px: float = 0.3) -> np.ndarray:
    """75th percentile over each track's life of the camera fit's residual ratio (NaN for
    tracks never seen at both ends of a usable frame pair)."""
    pos = torch.from_numpy(seq.tracks.astype(np.float32))[None]
    vis = torch.from_numpy(seq.visibility)[None]
    _, log_ratio = camera_residual(pos, vis, gap=gap, ransac=ransac, floor=floor_px)
    r = log_ratio[0].numpy()
    both = np.zeros_like(seq.visibility)
    both[:, gap:] = seq.visibility[:, gap:] & seq.visibility[:, :-gap]
    ratio = np.where(both & (r > 0), np.expm1(r), np.nan)
    out = np.full(seq.num_tracks, np.nan, np.float32)
    seen = ~np.isnan(ratio).all(axis=1)
    out[seen] = np.nanpercentile(ratio[seen], 75, axis=1)
    return out


def auc(score: np.ndarray, label: np.ndarray) -> float:
    ok = (label >= 0) & ~np.isnan(score)
    y = label[ok] == LABEL_MOVING
    if y.all() or not y.any():
        return float("nan")
    return float(binary_auroc(torch.from_numpy(score[ok]), torch.from_numpy(y.astype(np.int64))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--bench", default="davis2016_train")
    ap.add_argument("--gaps", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--sequences", nargs="+", default=None, help="default: all of the bench")
    a = ap.parse_args()
    if a.bench != "davis2016_train":
        print("note: choosing inputs on validation sequences is not how the shipped model was made")
    over = [f"bench={a.bench}", f"paths.data_dir={a.data}", "wandb.enabled=false"]
    cfg = compose("evaluate", over + [f"ckpt={a.ckpt or 'null'}"])
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = "/tmp/moseg-track-auc"
    bench = BenchSpec.from_cfg(cfg.bench)
    bench.ensure()
    seqs = a.sequences or bench.list()
    files, _, failed = preprocess_all(cfg, bench, seqs)
    if failed:
        raise SystemExit(
            "preprocessing failed:\n" + "\n".join(f"{k}: {v}" for k, v in failed.items())
        )
    model = None
    if a.ckpt:
        opts = OmegaConf.to_container(cfg.classifier, resolve=True)
        model = build_classifier("model", a.ckpt, opts)
    table: dict[str, dict[str, float]] = {}
    for s in seqs:
        seq = load_sequence(files[s], fields=(*CLASSIFIER_FIELDS, "label"))
        if seq.label is None:
            raise SystemExit(f"{files[s]}: no track labels (the bench must have masks)")
        scores = {"model": model(seq)} if model is not None else {}
        for g in a.gaps:
            scores[f"ransac_g{g}"] = GeometricClassifier(gap=g).scores(seq)
            scores[f"irls_g{g}"] = irls_score(seq, g, ransac=0)
            scores[f"irls_ransac_g{g}"] = irls_score(seq, g, ransac=32)
        for k, v in scores.items():
            table.setdefault(k, {})[s] = auc(v, seq.label)
        moving = float(np.mean(seq.label == LABEL_MOVING))
        row = "  ".join(f"{k} {v[s]:.3f}" for k, v in table.items())
        print(f"{s:<16} tracks {seq.num_tracks:6d} moving {moving:.2f}  {row}", flush=True)
    summary = {k: round(float(np.nanmean(list(v.values()))), 4) for k, v in table.items()}
    for k, v in summary.items():
        print(f"{k:<18} mean AUC {v:.4f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
