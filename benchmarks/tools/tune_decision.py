"""Tune the moving/static decision and the densifier after a trained classifier, on the DAVIS
*train* sequences (``bench=davis2016_train``; never on val).

The classifier runs once per sequence (its probabilities are kept in memory); then every
``--decide`` setting (threshold lists of the reference's rule) and every ``--densify`` setting
is densified and scored with the official J and F (MOS protocol). Tracks come from
evaluate.py's cache (the same settings, so the same digest); a missing cache is made first.

    python benchmarks/tools/tune_decision.py --ckpt moseg/checkpoints/classifier.ckpt \
        --decide ref:0.95,0.93,0.9,0.85,0.8,0.75,0.7 --decide t5:0.5 \
        --densify gc: --densify splat:method=splat

Prints a table (J&F per sequence per setting) and, last, one JSON line {setting: J&F}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from moseg.config import compose
from moseg.evaluation.bench import BenchSpec, scored_frames
from moseg.evaluation.run import CLASSIFIER_FIELDS, preprocess_all, read_bench_frames
from moseg.inference.classify import build_classifier, decide, scored_tracks
from moseg.io import load_sequence
from moseg.metrics import evaluate_sequence

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def parse_setting(text: str) -> tuple[str, str]:
    name, _, rest = text.partition(":")
    if not name:
        raise SystemExit(f"a setting is NAME:VALUES, got {text!r}")
    return name, rest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--bench", default="davis2016_train")
    ap.add_argument("--decide", action="append", default=[], help="NAME:t1,t2,... (descending)")
    ap.add_argument("--sequences", nargs="+", default=None, help="default: all of the bench")
    ap.add_argument("--min-moving", type=int, default=10)
    ap.add_argument("--densify", action="append", default=[], help="NAME:knob=v,knob=v")
    a = ap.parse_args()
    if a.bench.startswith("davis2016") and a.bench != "davis2016_train":
        print("note: tuning on validation sequences is not how the shipped settings were chosen")
    decides = [parse_setting(d) for d in (a.decide or ["ref:0.95,0.93,0.9,0.85,0.8,0.75,0.7"])]
    densifies = [parse_setting(d) for d in (a.densify or ["default:"])]
    cfg = compose(
        "evaluate",
        [f"bench={a.bench}", f"paths.data_dir={a.data}", f"ckpt={a.ckpt}", "wandb.enabled=false"],
    )
    OmegaConf.set_struct(cfg, False)
    bench = BenchSpec.from_cfg(cfg.bench)
    bench.ensure()
    seqs = a.sequences or bench.list()
    cfg.paths.output_dir = "/tmp/moseg-tune-decision"
    files, _, failed = preprocess_all(cfg, bench, seqs)
    if failed:
        raise SystemExit(
            "preprocessing failed:\n" + "\n".join(f"{k}: {v}" for k, v in failed.items())
        )
    # every setting parsed and every densifier built once (knob values typed as YAML reads them)
    decisions = [(n, [float(v) for v in vals.split(",") if v]) for n, vals in decides]
    densifiers = [
        (n, instantiate(OmegaConf.merge(cfg.densify, OmegaConf.from_dotlist(knobs))))
        for n, knobs in ((n, [k for k in kv.split(",") if k]) for n, kv in densifies)
    ]
    clf_opts = OmegaConf.to_container(cfg.classifier, resolve=True)
    classifier = build_classifier("model", a.ckpt, clf_opts)
    results: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for s in seqs:
        seq = load_sequence(files[s], fields=CLASSIFIER_FIELDS)
        prob = classifier(seq)
        frames = read_bench_frames(bench, s)
        gt = bench.ground_truth(s)
        keep_f = scored_frames(gt, bench.skip_first_last)
        for dname, ths in decisions:
            moving, _ = decide(prob, ths, min_moving=a.min_moving)
            tracks, _ = scored_tracks(seq, prob, moving)
            for nname, densifier in densifiers:
                masks = densifier(frames.frames, tracks).masks
                sc = evaluate_sequence(gt.masks[keep_f], masks[keep_f], bench.protocol, name=s)
                results.setdefault(f"{dname}/{nname}", {})[s] = sc.jf
        row = "  ".join(f"{k} {v[s]:.3f}" for k, v in results.items())
        print(f"{s:<16} {row}", flush=True)
    summary = {k: round(float(np.mean(list(v.values()))), 4) for k, v in results.items()}
    for k, v in summary.items():
        print(f"{k:<24} J&F {v:.4f}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
