"""Run a benchmark: ``python evaluate.py bench=davis2016_moving [ckpt=...] [densify=...]``
(also ``python -m moseg.evaluate`` and the ``moseg-evaluate`` command, from any folder).

Preprocesses (cached), classifies, densifies, writes indexed PNG masks and scores them (J, F,
J&F); ``masks_dir=DIR`` only scores existing masks. See docs/benchmarks.md.
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from moseg.config import CONF_DIR  # (importing it registers the resolvers and mixtures)
from moseg.datasets.common import InputError
from moseg.evaluation.run import EvaluationError, run
from moseg.inference.masks import MaskError
from moseg.io.contract import MissingDepthError
from moseg.metrics import ShapeMismatchError, TooManyObjectsError
from moseg.models.checkpoint import CheckpointError
from moseg.prep.frames import FrameError


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (
        EvaluationError,
        InputError,
        FrameError,
        MaskError,
        ShapeMismatchError,
        TooManyObjectsError,
        FileNotFoundError,
        CheckpointError,
        MissingDepthError,
    ) as e:
        logging.getLogger("evaluate").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
