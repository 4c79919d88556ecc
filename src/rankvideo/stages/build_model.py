"""Stage `build_model`: the tiny Qwen3-VL backbone, built offline from a config (random weights, a
tokenizer trained on the benchmark's training text), saved with `save_pretrained`. Hub backbones
(`model.build: false`) are not built: the stage records the reference it will load instead."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from ..data.benchmark import Benchmark
from ..models.tiny import build_tiny_qwen3_vl
from ..tracking import tracked_run
from ..utils.io import write_json

log = logging.getLogger(__name__)


def tokenizer_corpus(bench: Benchmark) -> list[str]:
    """Text the tokenizer is trained on: training queries and every video's proxies. Val and test
    queries are left out (their words all occur in training text: same templates, same world)."""
    texts = [q.text for q in bench.queries("train")]
    for d in bench.corpus():
        texts += [d.caption, d.title, d.description, d.asr, d.ocr]
    return [t for t in texts if t]


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    out = Path(cfg.paths.model_dir)
    with tracked_run(cfg, "build_model", source=source, pipeline_cfg=pipeline_cfg, inputs=[str(cfg.paths.benchmark)]) as tr:
        if not cfg.model.build:
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            write_json(out / "reference.json", {"model": cfg.model.name, "path": str(cfg.model.path)})
            log.info("model=%s is loaded from %s: nothing to build", cfg.model.name, cfg.model.path)
            return {"built": False}
        bench = Benchmark(cfg.paths.benchmark)
        arch = dict(cfg.model.arch)
        seed = int(arch.pop("seed", 0))
        build_tiny_qwen3_vl(out, corpus=tokenizer_corpus(bench), seed=seed, overwrite=True, **arch)
        info_path = out / "build_info.json"
        tr.log_artifact(info_path, "model")
        info = json.loads(info_path.read_text())
        tr.log_metrics({"num_parameters": info.get("num_parameters", 0)})
        tr.set_tags({"model.state_dict_sha256": info.get("state_dict_sha256", "")})
        return {"built": True, **{k: info[k] for k in ("num_parameters",) if k in info}}
