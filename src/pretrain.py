"""Hydra entry point of the `pretrain` stage: `python src/pretrain.py [overrides]`.

Pre-trains the tiny backbone on the synthetic world's pre-training corpus and writes it into this
run's Hydra folder (the shipped weights under `pretrained/` are only rewritten by
`dvc repro -f -s pretrain`).
"""

import hydra
from omegaconf import DictConfig

from rankvideo.stages.cli import hydra_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_main(cfg, "pretrain")


if __name__ == "__main__":
    main()
