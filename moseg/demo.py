"""`python -m moseg.demo`: a look at the synthetic data, no download, no training.

Generates a small synthetic dataset, validates every file against the contract, prints what it
holds and draws one clip with its tracks, masks and depth to outputs/demo/preview.png.
(`make demo` runs the main job instead: `python train.py`.)
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from moseg.config import compose
from moseg.datasets.synthetic import prepare
from moseg.io import LABEL_MOVING, list_sequences, load_sequence, validate
from moseg.viz import save_png, sequence_sheet

log = logging.getLogger("moseg.demo")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path("outputs/demo")
    overrides = [
        f"dataset.root={out / 'data'}",
        "dataset.splits.train=16",
        "dataset.splits.val=4",
        *(argv if argv is not None else sys.argv[1:]),
    ]
    cfg = compose("prepare", overrides)
    t0 = time.perf_counter()
    stats = prepare(cfg.dataset)
    log.info("generated in %.1f s: %s", time.perf_counter() - t0, stats)
    files = list_sequences(cfg.dataset.root)
    bad = [p for f in files for p in validate(f)]
    for p in bad:
        log.error("%s", p)
    log.info("%d files, %d problems", len(files), len(bad))
    log.info("%-28s %6s %7s %8s %8s", "clip", "tracks", "moving", "visible", "objects")
    for f in files:
        s = load_sequence(f, fields=["object_moving"])
        log.info(
            "%-28s %6d %7d %7.0f%% %4d/%-3d",
            s.name,
            s.num_tracks,
            int((s.label == LABEL_MOVING).sum()),
            100 * s.visibility.mean(),
            int(s.object_moving[1:].sum()),
            len(s.object_moving) - 1,
        )
    val = [f for f in files if f.parent.name == "val"]
    preview = save_png(out / "preview.png", sequence_sheet(load_sequence(val[0])))
    log.info("preview (moving tracks red, static green; masks; disparity): %s", preview)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
