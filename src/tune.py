"""Hydra entry point of the Optuna study: `python src/tune.py [tune.n_trials=N] [overrides]`.

Composes conf/tune.yaml (the training config plus conf/tune/); overrides other than `tune.*` are
the base of every trial. Trials write into this run's Hydra folder; see rankvideo.tuning.study.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="../conf", config_name="tune", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from rankvideo.tuning import run_study

    hc = HydraConfig.get()
    base = [o for o in hc.overrides.task if not o.lstrip("+~").split("=", 1)[0].split(".")[0] == "tune"]
    run_study(cfg, base, hc.runtime.output_dir)


if __name__ == "__main__":
    main()
