"""Train the track classifier: ``python train.py [data=kubric+hoi4d] [model=paper] [...]``
(also ``python -m moseg.train`` and the ``moseg-train`` command, from any folder).

With no arguments it trains a small model on synthetic scenes (made on first use) in a few
minutes on a laptop CPU. ``resume=<run folder>`` goes on with a run, in its folder and with its
config. See docs/training.md for mixtures, DDP, resuming and experiments.
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from moseg.config import CONF_DIR  # (importing it registers the resolvers and mixtures)
from moseg.training.resume import ResumeError, resume_argv
from moseg.training.run import run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _train(cfg: DictConfig) -> None:
    run(cfg, overrides=list(HydraConfig.get().overrides.task))


def main() -> None:
    # a resumed run logs into its own folder: Hydra's run dir is set before Hydra starts
    try:
        sys.argv[1:] = resume_argv(sys.argv[1:])
    except ResumeError as e:
        raise SystemExit(f"error: {e}") from None
    _train()


if __name__ == "__main__":
    main()
