"""Track metrics of a trained classifier on held-out synthetic scenes.

    python benchmarks/tools/track_ap.py CKPT [--split test] [--clips 20] [override ...]

Makes the split (synthetic clips with seeds that training and validation never saw) if it is
absent, composes the training config with the given Hydra overrides (the model comes from the
checkpoint, so only data settings matter), and prints one JSON line with
``track_ap``, ``roc_auc``, ``f1``, ``iou50``, ``iou70`` and the sample count.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import hydra
import lightning as L

from moseg.config import compose
from moseg.models import ClassifierConfig
from moseg.models.checkpoint import read_checkpoint_file
from moseg.training import TrackClassifierModule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--split", default="test")
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    ckpt = read_checkpoint_file(args.ckpt)  # weights_only: a checkpoint runs no code
    net = ClassifierConfig.from_dict(ckpt["moseg"]["classifier"]).to_dict()
    src = "data.sources.synthetic"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(
            "train",
            [
                f"paths.output_dir={tmp}",
                "logger=none",
                f"{src}.val_split={args.split}",
                f"++{src}.prepare.splits.{args.split}={args.clips}",
                *args.overrides,
            ],
        )
        # make only the held-out split
        cfg.data.sources.synthetic.prepare.splits = {args.split: args.clips}
        dm = hydra.utils.instantiate(cfg.data.module, num_workers=0)
        dm.prepare_data()
        module = TrackClassifierModule(net=net, val_sources=["synthetic"])
        module.load_state_dict(ckpt["state_dict"], strict=False)
        trainer = L.Trainer(
            accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
        )
        dm.setup("validate")
        res = trainer.validate(module, datamodule=dm, verbose=False)[0]
    out = {k.split("/")[-1]: round(float(v), 4) for k, v in res.items() if k.startswith("val/syn")}
    out["split"] = args.split
    out["samples"] = len(dm.val_sets["synthetic"].files) * int(cfg.data.module.val_repeats)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
