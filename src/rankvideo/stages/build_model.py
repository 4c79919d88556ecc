"""Stage `build_model`: the backbone that stage 1 starts from, in `paths.model_dir`.

- `model=tiny_qwen3_vl` (default): the pre-trained tiny Qwen3-VL shipped in `model.pretrained.path`
  (written by the frozen `pretrain` stage), checked file by file against `model.pretrained.sha256`
  and against `model.arch`, then copied.
- `model=tiny_qwen3_vl_scratch`: the same architecture at random initialisation, its tokenizer
  trained on the benchmark's training text (the design before pre-training existed).
- Hub backbones (`model.build: false`) are not built: the stage records the reference it will load.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..data.benchmark import Benchmark
from ..models.tiny import build_tiny_qwen3_vl
from ..tracking import tracked_run
from ..utils.io import atomic_dir, write_json
from ..utils.io import file_sha256

log = logging.getLogger(__name__)


class PretrainedWeightsError(RuntimeError):
    """The shipped pre-trained backbone is missing, altered, or does not fit the config."""


def tokenizer_corpus(bench: Benchmark) -> list[str]:
    """Text the from-scratch tokenizer is trained on: training queries and every video's proxies.
    Val and test queries are left out (their words all occur in training text: same templates,
    same world)."""
    texts = [q.text for q in bench.queries("train")]
    for d in bench.corpus():
        texts += [d.caption, d.title, d.description, d.asr, d.ocr]
    return [t for t in texts if t]


REBUILD = "rebuild it with `dvc repro -f -s pretrain` (after removing `frozen: true` from its stage in dvc.yaml)"


def verify_pretrained(folder: str | os.PathLike, sha256: dict, arch: dict | None = None) -> dict:
    """Check a shipped pre-trained backbone: every file named in `sha256` exists and has that
    sha256, and (with `arch`) the architecture it was built with is `arch`. Raises
    PretrainedWeightsError naming the file; returns its build_info."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PretrainedWeightsError(f"{folder}: the pre-trained backbone is not there (model.pretrained.path); restore it "
                                     f"from git (`git checkout -- {folder}`) or {REBUILD}")
    if not sha256:
        raise PretrainedWeightsError("model.pretrained.sha256 is empty: list the sha256 of the backbone's files (its SHA256SUMS)")
    for name, expected in sorted(sha256.items()):
        path = folder / name
        if not path.is_file():
            raise PretrainedWeightsError(f"{path}: missing from the pre-trained backbone; restore it from git or {REBUILD}")
        got = file_sha256(path)
        if got != str(expected):
            raise PretrainedWeightsError(
                f"{path}: sha256 {got} does not match model.pretrained.sha256 ({expected}); the file was changed or "
                f"replaced. Restore it (`git checkout -- {path}`), or after a deliberate rebuild copy the new values "
                f"from {folder / 'SHA256SUMS'} into conf/model/")
    info_path = folder / "build_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if arch is not None:
        built = info.get("args", {})
        diff = {k: (built.get(k), v) for k, v in arch.items() if built.get(k) != v}
        if diff:
            pairs = ", ".join(f"{k}: {b} shipped vs {v} configured" for k, (b, v) in sorted(diff.items()))
            raise PretrainedWeightsError(
                f"{info_path}: model.arch differs from the shipped pre-trained backbone ({pairs}); {REBUILD}, or use "
                "model=tiny_qwen3_vl_scratch for a randomly initialised backbone of any size")
    return info


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    out = Path(cfg.paths.model_dir)
    pretrained = cfg.model.get("pretrained") if cfg.model.build else None
    inputs = [str(cfg.paths.benchmark)] + ([str(pretrained.path)] if pretrained else [])
    with tracked_run(cfg, "build_model", source=source, pipeline_cfg=pipeline_cfg, inputs=inputs) as tr:
        if not cfg.model.build:
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            write_json(out / "reference.json", {"model": cfg.model.name, "path": str(cfg.model.path)})
            log.info("model=%s is loaded from %s: nothing to build", cfg.model.name, cfg.model.path)
            return {"built": False}
        arch = dict(OmegaConf.to_container(cfg.model.arch, resolve=True))
        if pretrained:
            info = verify_pretrained(pretrained.path, OmegaConf.to_container(pretrained.sha256, resolve=True),
                                     {k: v for k, v in arch.items()})
            with atomic_dir(out) as tmp:
                shutil.copytree(Path(str(pretrained.path)), tmp)
            log.info("model=%s: the pre-trained backbone %s (sha256 checked) -> %s", cfg.model.name, pretrained.path, out)
            tr.set_tags({"model.pretrained": str(pretrained.path),
                         "model.state_dict_sha256": info.get("state_dict_sha256", "")})
            tr.log_metrics({"num_parameters": info.get("param_count", 0)})
            return {"built": True, "pretrained": str(pretrained.path), "param_count": info.get("param_count", 0)}
        bench = Benchmark(cfg.paths.benchmark)
        seed = int(arch.pop("seed", 0))
        build_tiny_qwen3_vl(out, corpus=tokenizer_corpus(bench), seed=seed, overwrite=True, **arch)
        info_path = out / "build_info.json"
        tr.log_artifact(info_path, "model")
        info = json.loads(info_path.read_text())
        tr.log_metrics({"num_parameters": info.get("param_count", 0)})
        tr.set_tags({"model.state_dict_sha256": info.get("state_dict_sha256", "")})
        return {"built": True, "param_count": info.get("param_count", 0)}
