"""Stage `synthesize`: build the benchmark folder into `paths.benchmark`: the embedded benchmark
(data=synthetic), or MultiVENT 2.0 converted from its distributed files (data=multivent2)."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..data.multivent import PROXY_FILES
from ..data.synthetic.build import BenchmarkConfig, VideoSpec, build_benchmark
from ..data.synthetic.narration import NarrationSpec
from ..data.synthetic.proxies import ProxyConfig
from ..tracking import tracked_run

log = logging.getLogger(__name__)


def benchmark_config(cfg: DictConfig) -> BenchmarkConfig:
    """Typed builder input from the `data` and `synthesis` nodes; unknown keys fail loudly."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    syn = OmegaConf.to_container(cfg.synthesis, resolve=True)
    if data.get("name") != "synthetic":
        raise ValueError(f"the synthesize stage builds data=synthetic; data={data.get('name')!r} is read by its own stage")
    for node in (data, syn):
        node.pop("name", None)
    syn.pop("queries", None)  # who writes the extra training queries: decided in run()
    data.pop("source", None)
    data.pop("positive_min_grade", None)  # read by the training stages, not by the builder
    try:
        return BenchmarkConfig(
            seed=int(cfg.seed),
            video=VideoSpec(**data.pop("video")),
            proxies=ProxyConfig(**data.pop("proxies")),
            narration=NarrationSpec(**(data.pop("narration", None) or {})),
            **data,
            **syn,
        )
    except TypeError as e:  # an unexpected key in conf/data or conf/synthesis
        raise ValueError(f"invalid data/synthesis config: {e}") from None


def _queries_mode(cfg: DictConfig) -> str:
    mode = str(OmegaConf.select(cfg, "synthesis.queries", default="templates") or "templates")
    if mode not in ("templates", "generator"):
        raise ValueError(f"synthesis.queries={mode!r}: must be templates or generator")
    return mode


# The `data=multivent2` key of each proxy file, by corpus field.
DATA_KEYS = {"caption": "captions", "asr": "asr", "ocr": "ocr"}


def multivent_data(cfg: DictConfig) -> dict:
    """The `data` node for `build_multivent`. With `data.proxy_source=tools` the captions, ASR and
    OCR files are the ones the proxies stage wrote into `paths.proxies_dir` (those its
    `proxies_info.json` lists); `given` (the default) keeps `data.captions/asr/ocr` as set."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    mode = str(data.pop("proxy_source", None) or "given")
    if mode == "given":
        return data
    if mode != "tools":
        raise ValueError(f"data.proxy_source={mode!r}: must be given or tools for data=multivent2")
    given = [k for k in DATA_KEYS.values() if data.get(k)]
    if given:
        raise ValueError(f"data.proxy_source=tools takes data.{given[0]} from paths.proxies_dir; leave "
                         f"data.{', data.'.join(given)} null, or use data.proxy_source=given")
    folder = Path(str(cfg.paths.proxies_dir))
    info_path = folder / "proxies_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if not info.get("files"):
        raise FileNotFoundError(f"{info_path}: no proxies from the videos (run the proxies stage with data=multivent2 "
                                "data.proxy_source=tools, e.g. `dvc exp run`, or `python src/proxies.py data=multivent2`)")
    for field, name in PROXY_FILES.items():
        if name in info["files"]:
            data[DATA_KEYS[field]] = str(folder / name)
    log.info("text proxies from the proxies stage (%s): %s", folder, ", ".join(info["files"]))
    return data


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None, make_generator=None) -> dict:
    """Build the benchmark; with synthesis.queries=generator, a language model (conf/generator/)
    writes the extra training queries (`s...`) from the videos' text proxies instead of templates.
    `make_generator` (tests) replaces the configured model."""
    out = str(cfg.paths.benchmark)
    generated = _queries_mode(cfg) == "generator"
    if cfg.data.name == "multivent2":
        from ..data.multivent import build_multivent

        build = partial(build_multivent, multivent_data(cfg), out, seed=int(cfg.seed))
    else:
        bc = benchmark_config(cfg)
        if generated:  # the generator writes the synthetic training queries, not the templates
            bc.synthetic_train_queries = 0
        build = partial(build_benchmark, bc, out)
    with tracked_run(cfg, "synthesize", source=source, pipeline_cfg=pipeline_cfg) as tr:
        manifest = build()
        if generated:
            from .generate_queries import generate_into_benchmark

            build_seconds = manifest["build_seconds"]
            manifest = {**generate_into_benchmark(cfg, out, tr, make_generator), "build_seconds": build_seconds}
        tr.log_metrics({
            "num_videos": manifest["num_videos"],
            **{f"num_queries/{k}": v for k, v in manifest["num_queries"].items()},
            "build_seconds": manifest["build_seconds"],
        })
        tr.set_tags({"benchmark.sha256": manifest["sha256"]})
        for name in ("manifest.json", "queries.jsonl", "qrels.trec"):
            tr.log_artifact(f"{out}/{name}", "benchmark")
    return manifest
