"""``python -m moseg.training.export SRC DST``: a slim inference checkpoint from a training one.

Keeps the network's weights (float16 unless ``--fp32``) and config, drops the optimizer state,
and can store the decision thresholds chosen for the model (``--thresholds 0.8,0.7,0.6,0.5``),
which ``evaluate.py`` and ``moseg segment`` then use instead of the reference's. This is how
``moseg/checkpoints/classifier.ckpt`` is made (docs/real-video.md).
"""

from __future__ import annotations

import argparse
import os

from moseg.training.module import export_classifier


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="a checkpoint written by train.py")
    ap.add_argument("dst", help="where to write the inference checkpoint")
    ap.add_argument("--fp32", action="store_true", help="keep float32 weights")
    ap.add_argument("--thresholds", default=None, help="descending, comma-separated")
    ap.add_argument("--note", default=None, help="free text stored with the checkpoint")
    a = ap.parse_args(argv)
    if not os.path.isfile(a.src):
        raise SystemExit(f"{a.src}: checkpoint not found")
    th = None if a.thresholds is None else [float(t) for t in a.thresholds.split(",") if t]
    try:
        meta = export_classifier(a.src, a.dst, half=not a.fp32, thresholds=th, note=a.note)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    size = os.path.getsize(a.dst) / 1e6
    print(
        f"{a.dst}: {size:.2f} MB, step {meta['exported_from']['global_step']}, "
        f"decision {meta.get('decision', 'reference thresholds')}"
    )


if __name__ == "__main__":
    main()
