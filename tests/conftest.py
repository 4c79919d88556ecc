"""Shared fixtures: composed configs for tiny runs, isolated MLflow stores, opt-in markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SHARED = REPO.parent / "shared"

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def pytest_collection_modifyitems(config, items):
    """`slow` and `gpu` tests are opt-in: they run only when `-m` names them."""
    selected = config.getoption("-m") or ""
    for item in items:
        for marker in ("slow", "gpu"):
            if marker in item.keywords and marker not in selected:
                item.add_marker(pytest.mark.skip(reason=f"{marker} test: opt in with `pytest -m {marker}`"))


def compose_cfg(overrides: list[str] | None = None) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])


def tiny_run_cfg(root: Path, *overrides: str) -> DictConfig:
    """The tiny debug config with every output and the MLflow store under `root`, resolved."""
    cfg = compose_cfg(["debug=tiny", f"paths.artifacts={root / 'artifacts'}", f"paths.experiments={root / 'experiments'}",
                       "data.num_workers=1", *overrides])
    OmegaConf.resolve(cfg)
    return cfg


@pytest.fixture
def tiny_cfg(tmp_path) -> DictConfig:
    """The tiny debug benchmark with every output and the MLflow store under tmp_path, reranked by
    the passthrough seam (no model to train: the fast path through the pipeline)."""
    cfg = compose_cfg(["debug=tiny", "rerank=passthrough", f"paths.artifacts={tmp_path / 'artifacts'}",
                       f"paths.experiments={tmp_path / 'experiments'}"])
    with open_dict(cfg):
        cfg.data.num_workers = 1
    return cfg
