"""Hydra entry point of the `build_model` stage: `python src/build_model.py [overrides]`.

Builds the tiny offline Qwen3-VL (model=tiny_qwen3_vl) into this run's Hydra folder; for hub
backbones it records the reference instead.
"""

import hydra
from omegaconf import DictConfig

from rankvideo.stages.cli import hydra_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_main(cfg, "build_model")


if __name__ == "__main__":
    main()
