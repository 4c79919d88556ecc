"""Shared fixtures: composed configs for tiny runs, isolated MLflow stores, opt-in markers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def sh(cwd, *cmd, check=True, stdout_only=False, timeout=600):
    """Run a command (the venv's `dvc`, `git`, ...) in `cwd`; fail with its output when it fails."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout if stdout_only else p.stdout + p.stderr


def make_scratch_project(root: Path) -> Path:
    """The project's files as a fresh clone has them (outputs, the MLflow store and the DVC cache
    excluded), on the tiny debug config, committed in a new git repository at `root`."""
    for name in ("conf", "src", "pretrained", ".dvc", "dvc.yaml", "params.yaml", "data.dvc", ".dvcignore", ".gitignore",
                 "pyproject.toml"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, root / name)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "README.md").write_text("raw corpora go here\n")
    cfg = (root / "conf" / "config.yaml").read_text().replace("  - debug: null", "  - debug: tiny")
    (root / "conf" / "config.yaml").write_text(cfg)
    sh(root, "git", "init", "-q")
    sh(root, "git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    sh(root, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "scratch")
    return root
