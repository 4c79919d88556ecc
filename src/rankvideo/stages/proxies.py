"""Stage `proxies`: text proxies of every video from real tools (the paper's section 3.1, step 1),
into `paths.proxies_dir`: `captions.jsonl`, `asr.jsonl`, `ocr.jsonl` (`{doc_id, text}`, the files
`data=multivent2` reads as `data.captions`, `data.asr`, `data.ocr`), `proxies_info.json` (counts,
skips with their reasons) and the resume journal `progress.jsonl`.

Videos: `data=multivent2`: every video under `data.videos` (shard layout or one folder), before
any benchmark exists; `data=synthetic`: the corpus of the built benchmark (`paths.benchmark`).
Backends: `proxies/captioner`, `proxies/asr`, `proxies/ocr` (see `rankvideo.proxies`).

In the root DVC pipeline (`source="dvc"`, before `synthesize`) the stage reads the videos only
when `synthesize` will read what it writes: `data=multivent2` with `data.proxy_source=tools`.
Otherwise (the embedded world, or MultiVENT 2.0 with the captions and transcripts the user gave)
it is a no-op that writes only `proxies_info.json` saying so; the embedded world's tool-made
proxies read the built benchmark, so they come from `python src/proxies.py` (docs/proxies.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..tracking import tracked_run

log = logging.getLogger(__name__)


def list_videos(cfg: DictConfig) -> list[tuple[str, str]]:
    """(doc_id, path) of every video the stage reads, sorted by doc id, the first `proxies.limit`."""
    if cfg.data.name == "multivent2":
        from ..data.multivent import videos_on_disk

        root = Path(str(cfg.data.videos))
        if not root.is_dir():
            raise FileNotFoundError(f"data.videos={root}: no such folder (MultiVENT 2.0 videos, shard layout or one folder)")
        videos = sorted((d, str(p)) for d, p in videos_on_disk(root).items())
    else:
        from ..data.benchmark import Benchmark

        bench = Benchmark(cfg.paths.benchmark)
        videos = sorted((d.doc_id, str(bench.video_path(d))) for d in bench.corpus())
    limit = cfg.proxies.get("limit")
    return videos[: int(limit)] if limit is not None else videos


def pipeline_reads_proxies(cfg: DictConfig) -> bool:
    """Whether `synthesize` reads this stage's files: MultiVENT 2.0 with `data.proxy_source=tools`."""
    return cfg.data.name == "multivent2" and str(OmegaConf.select(cfg, "data.proxy_source", default="given")) == "tools"


def _noop(cfg: DictConfig) -> dict:
    from ..utils.io import write_json

    out = Path(str(cfg.paths.proxies_dir))
    out.mkdir(parents=True, exist_ok=True)
    info = {"ran": False,
            "reason": f"data={cfg.data.name} with data.proxy_source="
                      f"{OmegaConf.select(cfg, 'data.proxy_source', default='given')}: synthesize reads no tool-made proxies "
                      "(the DVC stage reads videos for data=multivent2 data.proxy_source=tools only)"}
    write_json(out / "proxies_info.json", info)  # deterministic: the no-op leaves synthesize up to date
    log.info("proxies: nothing to do (%s)", info["reason"])
    return info


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    from ..proxies.extract import extract_proxies

    if source == "dvc" and not pipeline_reads_proxies(cfg):
        return _noop(cfg)
    videos = list_videos(cfg)
    if not videos:
        raise ValueError("the proxies stage found no videos to read")
    out = Path(str(cfg.paths.proxies_dir))
    pcfg = OmegaConf.to_container(cfg.proxies, resolve=True)
    src = str(cfg.data.videos) if cfg.data.name == "multivent2" else str(cfg.paths.benchmark)
    with tracked_run(cfg, "proxies", source=source, pipeline_cfg=pipeline_cfg, inputs=[src]) as tr:
        info = extract_proxies(videos, out, pcfg, pretrained=str(cfg.paths.pretrained))
        tr.set_tags({f"proxies.{k}": v for k, v in info["backends"].items()})
        tr.log_metrics({k: info[k] for k in ("num_videos", "num_written", "num_skipped", "videos_resumed", "seconds")
                        if info.get(k) is not None})
        tr.log_metrics({f"empty/{k}": v for k, v in info["empty"].items()})
        tr.log_artifact(out / "proxies_info.json", "proxies")
    return info
