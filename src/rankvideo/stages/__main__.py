"""DVC stage commands: `python -m rankvideo.stages NAME`.

Each stage reads only the params it declares in dvc.yaml (`dvc.api.params_show(stages=NAME)`),
so a value it uses but does not declare fails loudly here instead of going stale in DVC's cache,
and `dvc exp run -S key=value` (which rewrites params.yaml) reaches the code. The Hydra entry
scripts in src/ call the same `run(cfg)` functions.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from omegaconf import OmegaConf

from . import STAGES, stage_fn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rankvideo.stages", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=[s for s in STAGES if s != "train"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    import dvc.api

    params = dvc.api.params_show(stages=args.stage)
    cfg = OmegaConf.create(params)
    OmegaConf.set_struct(cfg, True)  # reading an undeclared key raises instead of returning None
    # The stage sees only its declared params; the grouping key of the MLflow runs of one
    # `dvc repro` is computed from the whole params.yaml so that every stage gets the same one.
    from .cli import one_line_errors

    with one_line_errors(args.stage):
        stage_fn(args.stage)(cfg, source="dvc", pipeline_cfg=OmegaConf.load("params.yaml"))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
