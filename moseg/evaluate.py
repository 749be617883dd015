"""Run a benchmark: ``python evaluate.py bench=davis2016_moving [ckpt=...] [densify=...]``
(also ``python -m moseg.evaluate`` and the ``moseg-evaluate`` command, from any folder).

Preprocesses (cached), classifies, densifies, writes indexed PNG masks and scores them (J, F,
J&F); ``masks_dir=DIR`` only scores existing masks. See docs/benchmarks.md.
"""

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from moseg.config import CONF_DIR  # (importing it registers the resolvers and mixtures)
from moseg.datasets.common import InputError
from moseg.evaluation.run import EvaluationError, PartialEvaluationError, run
from moseg.inference.masks import MaskError
from moseg.io.contract import MissingDepthError
from moseg.metrics import ShapeMismatchError, TooManyObjectsError
from moseg.models.checkpoint import CheckpointError
from moseg.prep.frames import FrameError


def run_folder_problem(argv: list[str]) -> str | None:
    """Why the run folder cannot be written (read-only file system, no permission), checked
    before Hydra creates it: the ``hydra.run.dir=`` given, else ``paths.log_dir``."""
    from moseg.utils.paths import check_out_folder

    given = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    if given:
        return check_out_folder(Path(given[-1]), "hydra.run.dir")
    try:
        from moseg.config import compose

        log_dir = compose("evaluate", [a for a in argv if not a.startswith("hydra.")]).paths.log_dir
    except Exception:  # a bad override: Hydra itself reports it, naming it
        return None
    return check_out_folder(Path(str(log_dir)), "paths.log_dir")


def main() -> None:
    why = run_folder_problem(sys.argv[1:])
    if why:
        print(f"error: {why}", file=sys.stderr)
        sys.exit(2)
    _main()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def _main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except PartialEvaluationError as e:  # metrics.json holds the sequences that were scored
        logging.getLogger("evaluate").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
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
    except OSError as e:  # an output that cannot be written (read-only file system, disk full)
        print(
            f"error: cannot write {e.filename or 'the run folder'}: {e.strerror or e}",
            file=sys.stderr,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
