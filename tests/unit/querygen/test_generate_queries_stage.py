"""The generate_queries stage end to end with a real tiny causal LM built here (generator=hf):
standalone on a miniature benchmark folder; inside synthesize (synthesis.queries=generator),
feeding the first stage and the teacher unchanged (slow); killed (SIGKILL) mid-run and resumed to
the same output (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import REPO, tiny_run_cfg
from rankvideo.data.benchmark import Benchmark
from rankvideo.querygen.parse import DROP_REASONS
from rankvideo.stages import stage_fn
from querygen_tiny_lm import tiny_lm  # noqa: F401  (fixture)


def _overrides(tiny_lm: Path) -> list[str]:
    return ["generator=hf", f"generator.model={tiny_lm}", "generator.dtype=float32", "generator.device_map=null",
            "generator.max_new_tokens=12", "generator.do_sample=true", "generator.batch_size=2"]


def _mini_benchmark(root: Path) -> Path:
    """A benchmark folder in the real layout, just big enough for a few jobs (no videos are read)."""
    root.mkdir(parents=True)
    docs = [{"doc_id": f"v{i}", "video": f"videos/v{i}.mp4", "title": f"Flood in Lisbon {i}", "description": "Video filmed in Lisbon.",
             "caption": f"A red circle moves left. Then {i} boats appear.", "asr": "We are live in Lisbon." if i % 2 else "",
             "ocr": "EVACUATE" if i < 2 else ""} for i in range(4)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(json.dumps({"qid": "q00000", "text": "flood in Lisbon", "split": "test"}) + "\n")
    return root


def test_generate_queries_stage_with_a_real_tiny_lm(tmp_path, tiny_lm):
    bench = _mini_benchmark(tmp_path / "bench")
    cfg = tiny_run_cfg(tmp_path, "tracking.enabled=false", "generator.num_queries=6", f"paths.benchmark={bench}",
                       "synthesis=all_only", *_overrides(tiny_lm))
    out = stage_fn("generate_queries")(cfg)
    assert out["jobs"] == 6 and out["answers_generated_now"] == 6 and out["generator"] == "hf"
    assert out["kept"] + sum(out["drops"].values()) == 6 and out["kept"] > 0
    folder = Path(cfg.generator.out_dir)
    rows = [json.loads(ln) for ln in (folder / "queries.jsonl").read_text().splitlines()]
    assert [r["qid"] for r in rows] == [f"s{i:05d}" for i in range(out["kept"])]
    assert all(r["variant"] == "all" and r["split"] == "train" and r["source_doc"] in {"v0", "v1", "v2", "v3"} for r in rows)
    assert json.loads((folder / "drops.json").read_text())["drops"] == out["drops"]
    again = stage_fn("generate_queries")(cfg)  # every answer is journaled: nothing is generated twice
    assert again["answers_resumed"] == 6 and again["answers_generated_now"] == 0 and again["kept"] == out["kept"]


@pytest.mark.slow
def test_synthesize_with_generator_feeds_retrieve_and_teacher(tmp_path, tiny_lm):
    cfg = tiny_run_cfg(tmp_path, "synthesis.queries=generator", "data.synthetic_train_queries=16", *_overrides(tiny_lm))
    manifest = stage_fn("synthesize")(cfg)
    gen = manifest["generated_queries"]
    assert gen["jobs"] == 16 and gen["generator"] == "hf" and set(gen["drops"]) == set(DROP_REASONS)
    assert gen["count"] + sum(gen["drops"].values()) == 16 and gen["count"] > 0
    bench = Benchmark(cfg.paths.benchmark)
    train = bench.queries("train")
    generated = [q for q in train if q.qid.startswith("s")]
    assert [q.qid for q in generated] == [f"s{i:05d}" for i in range(gen["count"])]
    assert all(q.qtype == "generated" for q in generated) and manifest["num_queries"]["train"] == len(train)
    rows = {r["qid"]: r for r in map(json.loads, open(Path(cfg.paths.benchmark) / "queries.jsonl"))}
    qrels = bench.qrels("train")
    assert all(qrels[q.qid] == {rows[q.qid]["source_doc"]: 3} for q in generated)
    tsv = (Path(cfg.paths.benchmark) / "queries_train.tsv").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in tsv if ln.startswith("s")] == [q.qid for q in generated]
    # MLflow: the synthesize run carries the generation's counts, drop reasons as metrics
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path(cfg.paths.experiments).resolve()}/mlflow.db")
    run = next(r for r in mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list")
               if r.info.run_name.startswith("synthesize"))
    assert run.data.metrics["generated/kept"] == gen["count"] and run.data.tags["config.generator"] == "hf"
    assert {k: int(v) for k, v in run.data.metrics.items() if k.startswith("dropped/")} == {
        f"dropped/{k}": v for k, v in gen["drops"].items()}
    # the first stage and the teacher's filters and mining read them like any training query
    stage_fn("retrieve")(cfg)
    metrics = stage_fn("teacher")(cfg)
    assert metrics["mining"]["queries_in"] == len(train)


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from omegaconf import OmegaConf
    from rankvideo.querygen.generators import build_generator
    from rankvideo.stages import stage_fn

    cfg = OmegaConf.load(sys.argv[1])

    class KilledAfterTwoBatches:
        def __init__(self):
            self.inner, self.batches = build_generator(OmegaConf.to_container(cfg.generator)), 0
        def generate(self, messages, seeds):
            if self.batches == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            self.batches += 1
            return self.inner.generate(messages, seeds)

    stage_fn("generate_queries")(cfg, make_generator=KilledAfterTwoBatches)
""")


@pytest.mark.slow
def test_generate_queries_resumes_after_kill(tmp_path, tiny_lm):
    cfg = tiny_run_cfg(tmp_path, "tracking.enabled=false", "generator.num_queries=10", *_overrides(tiny_lm))
    stage_fn("synthesize")(cfg)
    cfg_file = tmp_path / "cfg.yaml"
    OmegaConf.save(cfg, cfg_file)
    script = tmp_path / "killed.py"
    script.write_text(_KILLER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, str(script), str(cfg_file)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr[-2000:]
    journal = Path(cfg.generator.work_dir) / "answers.jsonl"
    assert len(journal.read_text().splitlines()) == 1 + 4  # header + two batches of two
    out = Path(cfg.generator.out_dir)
    assert not (out / "queries.jsonl").exists()  # nothing half-written

    resumed = stage_fn("generate_queries")(cfg)
    assert resumed["answers_resumed"] == 4 and resumed["answers_generated_now"] == resumed["jobs"] - 4 - resumed["drops"]["no_evidence"]
    fresh_cfg = tiny_run_cfg(tmp_path / "fresh", "tracking.enabled=false", "generator.num_queries=10",
                             f"paths.benchmark={cfg.paths.benchmark}", *_overrides(tiny_lm))
    fresh = stage_fn("generate_queries")(fresh_cfg)
    assert fresh["answers_resumed"] == 0
    for name in ("queries.jsonl", "queries_train.tsv", "qrels_train.trec", "drops.json"):
        assert (out / name).read_bytes() == (Path(fresh_cfg.generator.out_dir) / name).read_bytes(), name
    assert resumed["kept"] + sum(resumed["drops"].values()) == 10
