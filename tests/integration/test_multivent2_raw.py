"""MultiVENT 2.0 from the raw videos alone (issue 15's bar): the root pipeline's `proxies` stage makes
the text proxies when `data=multivent2 data.proxy_source=tools`, `synthesize` reads them from
`paths.proxies_dir` and (with `synthesis.queries=generator`) writes generated `s...` training queries,
and the teacher, the mining and both training stages run on them. With the default config the stage
is a no-op that writes one small file."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_scratch_project, sh, tiny_run_cfg
from rankvideo.data.benchmark import Benchmark
from rankvideo.stages import stage_fn
from test_multivent2 import miniature  # noqa: F401  (fixture: MultiVENT layout from the tiny embedded clips)
from test_proxies_stage import HAVE_ASR, HAVE_OCR, WORDS, _miniature

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "querygen"))
from querygen_tiny_lm import tiny_lm  # noqa: E402,F401  (fixture)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _write_jsonl(path: Path, rows: dict[str, str]) -> None:
    path.write_text("".join(json.dumps({"doc_id": d, "text": t}) + "\n" for d, t in rows.items()))


def test_root_proxies_stage_is_a_cheap_noop_unless_multivent2_reads_tool_proxies(tmp_path):
    for overrides in ([], ["data=multivent2", f"data.root={tmp_path / 'nowhere'}"]):  # default world; MV2 with given texts
        cfg = tiny_run_cfg(tmp_path / "run", *overrides)
        info = stage_fn("proxies")(cfg, source="dvc", pipeline_cfg=cfg)
        out = Path(cfg.paths.proxies_dir)
        assert info["ran"] is False and "proxy_source" in info["reason"]
        assert sorted(p.name for p in out.iterdir()) == ["proxies_info.json"]  # no video read, no model loaded
        before = (out / "proxies_info.json").read_bytes()
        stage_fn("proxies")(cfg, source="dvc", pipeline_cfg=cfg)
        assert (out / "proxies_info.json").read_bytes() == before  # same bytes: synthesize stays up to date
    # The Hydra entry (`python src/proxies.py`) always runs: here it fails on the missing folder.
    with pytest.raises(FileNotFoundError, match="nowhere"):
        stage_fn("proxies")(cfg, source="cli", pipeline_cfg=cfg)


def test_the_root_pipeline_runs_proxies_before_synthesize_with_declared_params():
    import dvc.api

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages["proxies"]["cmd"] == "python -m rankvideo.stages proxies"
    assert stages["proxies"]["outs"] == [{"${paths.proxies_dir}": {"persist": True}}]
    assert "${paths.proxies_dir}" in stages["synthesize"]["deps"] and "paths.proxies_dir" in stages["synthesize"]["params"]
    assert not (REPO / "pipelines" / "proxies" / "dvc.yaml").exists()  # one stage owns the folder
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        params = dvc.api.params_show(stages="proxies")
    finally:
        os.chdir(cwd)
    assert set(params) == {"data", "paths", "proxies", "trainer", "tracking"}
    assert params["paths"]["proxies_dir"] == "artifacts/proxies" and params["data"]["proxy_source"] == "templates"


def test_synthesize_reads_the_proxies_dir_with_proxy_source_tools(tmp_path):
    data = _miniature(tmp_path)
    cfg = tiny_run_cfg(tmp_path / "run", "data=multivent2", f"data.root={data}", "data.val_fraction=0.0",
                       "data.proxy_source=tools")
    folder = Path(cfg.paths.proxies_dir)
    with pytest.raises(FileNotFoundError, match="proxies_info.json"):  # the proxies stage has not run
        stage_fn("synthesize")(cfg, source="test", pipeline_cfg=cfg)
    folder.mkdir(parents=True)
    captions = {d: f"a video about {w.lower()}" for d, w in WORDS.items()}
    _write_jsonl(folder / "captions.jsonl", captions)
    _write_jsonl(folder / "asr.jsonl", {d: f"speech {d}" for d in WORDS})
    _write_jsonl(folder / "ocr.jsonl", {d: "STALE" for d in WORDS})  # left by an earlier run: not listed, not read
    (folder / "proxies_info.json").write_text(json.dumps({"files": ["captions.jsonl", "asr.jsonl"]}))
    stage_fn("synthesize")(cfg, source="test", pipeline_cfg=cfg)
    corpus = {d.doc_id: d for d in Benchmark(cfg.paths.benchmark).corpus()}
    assert {d: corpus[d].caption for d in WORDS} == captions
    assert {d: corpus[d].asr for d in WORDS} == {d: f"speech {d}" for d in WORDS}
    assert not any(corpus[d].ocr for d in WORDS)
    # Texts given by hand and tool-made ones are exclusive, said with the key.
    bad = tiny_run_cfg(tmp_path / "run", "data=multivent2", f"data.root={data}", "data.proxy_source=tools",
                       f"data.captions={folder / 'captions.jsonl'}")
    with pytest.raises(ValueError, match="data.captions"):
        stage_fn("synthesize")(bad, source="test", pipeline_cfg=bad)


@pytest.mark.slow  # 92 s on 2 busy cores (30 videos captioned, 96 generator jobs, three trainings)
def test_raw_multivent_videos_to_stage2(miniature, tiny_lm):
    """Videos, queries CSV and judgments only: proxies -> synthesize (generated queries) -> retrieve ->
    teacher (labels, mining) -> build_model -> stage 1 -> stage 2, as `dvc exp run` chains them."""
    root, data, ids, _ = miniature
    for given in ("captions.jsonl", "asr.jsonl"):  # the fixture brings texts: this corpus has none
        (data / given).unlink(missing_ok=True)
    cfg = tiny_run_cfg(
        root / "raw", "data=multivent2", f"data.root={data}", "data.val_fraction=0.25", "data.proxy_source=tools",
        "retrieval.fields=[caption,asr]",
        "proxies/captioner=tiny", "proxies.captioner.num_frames=4", "proxies.captioner.max_new_tokens=24",
        f"proxies/asr={'pocketsphinx' if HAVE_ASR else 'none'}",
        *(["proxies/ocr=tesseract", "proxies.ocr.fps=1.0"] if HAVE_OCR else ["proxies/ocr=none"]),
        "synthesis.queries=generator", "synthesis=all_only", "generator=hf", f"generator.model={tiny_lm}",
        "generator.dtype=float32", "generator.device_map=null", "generator.max_new_tokens=12", "generator.do_sample=true",
        "generator.batch_size=8", "generator.num_queries=96",
        # 96 jobs: the random tiny writer's words seldom retrieve their video, and the paper's filter drops a query
        # whose positive the first stage misses (3 generated queries survive here). The tiny captioner's texts are weak evidence: the paper's query filters would drop every query of
        # 30 videos, so this run keeps them and lets a query without a trusted negative use its hardest one.
        "teacher.mining.drop_misclassified_positives=false", "teacher.mining.max_neg_pos_ratio=null",
        "teacher.mining.fallback_trusted=true")
    for name in ("proxies", "synthesize", "retrieve", "teacher", "build_model", "stage1", "stage2"):
        stage_fn(name)(cfg, source="dvc", pipeline_cfg=cfg)  # `dvc` as in the root pipeline: the proxies gate is open

    out = Path(cfg.paths.proxies_dir)
    info = json.loads((out / "proxies_info.json").read_text())
    assert (info["num_written"], info["num_skipped"]) == (len(ids), 0)  # every video on disk
    captions = {r["doc_id"]: r["text"] for r in map(json.loads, (out / "captions.jsonl").read_text().splitlines())}
    assert set(captions) == set(ids.values()) and all(captions.values())
    if HAVE_OCR:
        assert (out / "ocr.jsonl").is_file() and "ocr.jsonl" in info["files"]

    bench = Benchmark(cfg.paths.benchmark)
    corpus = {d.doc_id: d for d in bench.corpus()}
    assert {d: corpus[d].caption for d in captions} == captions  # the benchmark carries the tool-made proxies
    generated = [q for q in bench.queries("train") if q.qid.startswith("s")]
    assert generated and all(q.qtype == "generated" for q in generated)

    labels = [json.loads(ln) for ln in Path(cfg.paths.teacher_labels).read_text().splitlines()]
    assert {r["query_id"] for r in labels} & {q.qid for q in generated}  # generated queries carry teacher labels
    assert all(0.0 <= r["teacher_p_yes"] <= 1.0 and r["role"] in {"positive", "trusted", "hard"} for r in labels)
    teacher = json.loads((Path(cfg.paths.teacher_dir) / "metrics.json").read_text())
    assert teacher["records"] == len(labels) and any(r["role"] != "positive" for r in labels)  # mined negatives

    stage2 = Path(cfg.paths.stage2_dir)
    assert any(stage2.rglob("*.safetensors")), sorted(p.name for p in stage2.iterdir())


@pytest.mark.slow  # 273 s on 2 busy cores: a scratch DVC project running the whole pipeline
@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for a DVC repo")
def test_the_documented_command_on_raw_multivent_videos(miniature, tiny_lm, tmp_path):
    """docs/benchmark.md's one command (`dvc exp run -S data=multivent2 -S data.proxy_source=tools
    -S synthesis.queries=generator ...`), with the tiny local writer in place of SmolLM2."""
    _, data, ids, _ = miniature
    scratch = make_scratch_project(tmp_path / "project")
    shutil.copytree(data, scratch / "data" / "multivent2", ignore=shutil.ignore_patterns("captions.jsonl", "asr.jsonl"))
    sh(scratch, "dvc", "commit", "-f", "data.dvc")
    sets = ["data=multivent2", "data.proxy_source=tools", "retrieval.fields=[caption,asr]", "synthesis.queries=generator",
            "data.val_fraction=0.25", "proxies.captioner.num_frames=4", "proxies.captioner.max_new_tokens=24",
            f"proxies/asr={'pocketsphinx' if HAVE_ASR else 'none'}", *([] if HAVE_OCR else ["proxies/ocr=none"]),
            "proxies.ocr.fps=1.0", "generator=hf", f"generator.model={tiny_lm}", "generator.dtype=float32",
            "generator.device_map=null", "generator.max_new_tokens=12", "generator.do_sample=true", "generator.num_queries=96",
            "teacher.mining.drop_misclassified_positives=false", "teacher.mining.max_neg_pos_ratio=null",
            "teacher.mining.fallback_trusted=true"]
    out = sh(scratch, "dvc", "exp", "run", "-n", "raw", *[a for s in sets for a in ("-S", s)], timeout=1500)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}
    assert {"proxies", "synthesize", "retrieve", "teacher", "stage1", "stage2", "rerank", "evaluate"} <= ran
    info = json.loads((scratch / "artifacts" / "proxies" / "proxies_info.json").read_text())
    assert info["num_written"] == len(ids) and "captions.jsonl" in info["files"]
    generated = [q for q in Benchmark(scratch / "artifacts" / "benchmark").queries("train") if q.qid.startswith("s")]
    labels = {json.loads(ln)["query_id"] for ln in (scratch / "artifacts" / "teacher" / "labels.jsonl").read_text().splitlines()}
    assert generated and labels & {q.qid for q in generated}
    metrics = json.loads((scratch / "artifacts" / "evaluate" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["rerank"]["nDCG@10"] <= 1.0
