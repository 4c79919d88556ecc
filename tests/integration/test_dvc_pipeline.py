"""`dvc repro` end to end in a scratch clone of the project, on the tiny config: the first run builds
everything, the second is a no-op, a config edit reruns exactly the stages that read the value, and
`dvc exp run -S` reaches the code."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from conftest import make_scratch_project
from conftest import sh as _sh

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for a DVC repo")


def _ran(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return make_scratch_project(tmp_path_factory.mktemp("clone"))


def test_repro_noop_and_targeted_rerun(scratch):
    first = _sh(scratch, "dvc", "repro")
    # `pretrain` is frozen: the weights the repository ships are used, not rebuilt. `proxies` is a
    # no-op on the embedded world (no MLflow run, one small info file).
    assert _ran(first) == {"compose", "proxies", "synthesize", "retrieve", "teacher", "build_model", "stage1", "stage2", "rerank",
                           "rerank_stage1", "rerank_zeroshot", "evaluate"}
    params = yaml.safe_load((scratch / "params.yaml").read_text())
    assert params["data"]["num_events"] == 6, "compose did not pick up the conf/ edit"
    metrics = json.loads((scratch / "artifacts/evaluate/metrics.json").read_text())
    assert set(metrics) == {"test"}
    assert (scratch / "artifacts/rerank_stage1/run.trec").exists()
    assert "rankvideo_stage1" in json.dumps(metrics), "the stage-1-only row is missing from the metrics"
    assert "rankvideo_zeroshot" in json.dumps(metrics), "the zero-shot row is missing from the metrics"
    # The four stage runs of this repro are logged to the project's store and share one key.
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{scratch / 'experiments/mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["rankvideo"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["build_model", "evaluate", "rerank", "rerank_stage1", "rerank_zeroshot",
                                                      "retrieve", "stage1", "stage2", "synthesize", "teacher"]
    assert {r.data.tags["rankvideo.source"] for r in runs} == {"dvc"}
    assert len({r.data.tags["rankvideo.pipeline"] for r in runs}) == 1
    ev = next(r for r in runs if r.info.run_name == "evaluate")
    lock = yaml.safe_load((scratch / "dvc.lock").read_text())
    bench_md5 = next(o["md5"] for o in lock["stages"]["synthesize"]["outs"] if o["path"] == "artifacts/benchmark")
    assert ev.data.tags["data.artifacts/benchmark"] == bench_md5  # the DVC hash of the input data
    assert ev.data.tags["git.dirty"] == "False"

    second = _sh(scratch, "dvc", "repro")
    assert _ran(second) == set()
    assert "Data and pipelines are up to date" in second

    # A value only the first stage reads: compose, retrieve and what depends on its output rerun;
    # the benchmark, the model and stage 1 are not rebuilt.
    bm25 = scratch / "conf/retrieval/bm25.yaml"
    bm25.write_text(bm25.read_text().replace("k1: 1.5", "k1: 1.2"))
    third = _sh(scratch, "dvc", "repro")
    assert not {"synthesize", "build_model", "stage1"} & _ran(third)
    assert {"compose", "retrieve"} <= _ran(third)
    # An eval-only value reruns only evaluate (after compose).
    ev = scratch / "conf/eval/default.yaml"
    ev.write_text(ev.read_text().replace("relevance_level: 1", "relevance_level: 2"))
    fourth = _sh(scratch, "dvc", "repro")
    assert _ran(fourth) == {"compose", "evaluate"}


def test_exp_run_set_param_reaches_the_code(scratch):
    _sh(scratch, "dvc", "repro")
    _sh(scratch, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "baseline")
    out = _sh(scratch, "dvc", "exp", "run", "-S", "retrieval.depth=7")
    assert "Running stage 'retrieve'" in out and "Running stage 'synthesize'" not in out
    assert "Running stage 'stage1'" not in out
    run = (scratch / "artifacts/retrieve/run.trec").read_text().splitlines()
    per_query: dict[str, int] = {}
    for line in run:
        per_query[line.split()[0]] = per_query.get(line.split()[0], 0) + 1
    assert max(per_query.values()) == 7
    assert yaml.safe_load((scratch / "params.yaml").read_text())["retrieval"]["depth"] == 7


@pytest.mark.slow  # about 85 s; test_exp_run_set_param_reaches_the_code covers `dvc exp run -S` by default
def test_exp_run_loss_weight_and_compare(scratch):
    """`dvc exp run -S loss.pairwise=0.3` retrains stage 2 (not stage 1) with that weight, and
    `dvc exp show` / `dvc metrics diff` compare it with the committed baseline."""
    _sh(scratch, "dvc", "repro")
    _sh(scratch, "git", "add", "-A")  # the metrics and plots files are in git, next to dvc.lock
    _sh(scratch, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "baseline", check=False)
    out = _sh(scratch, "dvc", "exp", "run", "-n", "pairwise-0.3", "-S", "loss.pairwise=0.3")
    assert {"stage2", "rerank", "evaluate"} <= _ran(out)
    assert not {"synthesize", "build_model", "stage1"} & _ran(out)
    assert yaml.safe_load((scratch / "params.yaml").read_text())["loss"]["pairwise"] == 0.3
    shown = json.loads(_sh(scratch, "dvc", "exp", "show", "--json", stdout_only=True))
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    names = {e.get("name") for e in exps}
    assert "pairwise-0.3" in names
    exp = next(e for e in exps if e.get("name") == "pairwise-0.3")
    params = exp["revs"][0]["data"]["params"]["params.yaml"]["data"]
    assert params["loss"]["pairwise"] == 0.3
    metrics = exp["revs"][0]["data"]["metrics"]["artifacts/evaluate/metrics.json"]["data"]
    assert 0.0 <= metrics["test"]["rerank"]["nDCG@10"] <= 1.0
    diff = _sh(scratch, "dvc", "metrics", "diff", "--all")
    assert "test.rerank.nDCG@10" in diff and "HEAD" in diff
