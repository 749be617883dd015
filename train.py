"""Train the track classifier: ``python train.py [data=kubric+hoi4d] [model=paper] [...]``.

With no arguments it trains a small model on synthetic scenes (made on first use) in a few
minutes on a laptop CPU. See the README for mixtures, DDP, resuming and experiments.
"""

import hydra
from omegaconf import DictConfig

import moseg.config  # noqa: F401  (registers the config resolvers)
from moseg.training.run import run


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
