"""Hydra entry point of the `proxies` stage: `python src/proxies.py [overrides]`.

Captions, speech transcripts and on-screen text of every video from real tools (docs/proxies.md),
into this run's Hydra folder unless `paths.proxies_dir` is given.
"""

import hydra
from omegaconf import DictConfig

from rankvideo.stages.cli import hydra_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_main(cfg, "proxies")


if __name__ == "__main__":
    main()
