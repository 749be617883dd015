"""Train the track classifier: ``python train.py [data=kubric+hoi4d] [model=paper] [...]``
(also ``python -m moseg.train`` and the ``moseg-train`` command, from any folder).

With no arguments it trains a small model on synthetic scenes (made on first use) in a few
minutes on a laptop CPU. See docs/training.md for mixtures, DDP, resuming and experiments.
"""

import hydra
from omegaconf import DictConfig

from moseg.config import CONF_DIR  # (importing it registers the resolvers and mixtures)
from moseg.training.run import run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
