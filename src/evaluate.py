"""Hydra entry point of the `evaluate` stage: `python src/evaluate.py [overrides]`.

Composes conf/ and calls `rankvideo.stages.evaluate.run(cfg)`; outputs go to this run's Hydra folder.
"""

import hydra
from omegaconf import DictConfig

from rankvideo.stages.cli import hydra_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_main(cfg, "evaluate")


if __name__ == "__main__":
    main()
