"""Hydra entry point of the `teacher` stage: `python src/teacher.py [overrides]`.

Labels training pairs with the text teacher (caption + ASR evidence), mines hard negatives and
reranks val/test with the teacher as a text-only reranker, into this run's Hydra folder.
"""

import hydra
from omegaconf import DictConfig

from rankvideo.stages.cli import hydra_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_main(cfg, "teacher")


if __name__ == "__main__":
    main()
