"""`python src/evaluate.py run=PATH qrels=PATH out=PATH.json` on third-party files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, SHARED

TREC = SHARED / "testdata" / "trec_eval"
needs_trec = pytest.mark.skipif(not TREC.exists(), reason=f"{TREC} not found (shared test data)")


def _cli(tmp_path, *args):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "src" / "evaluate.py"), *args,
         f"paths.experiments={tmp_path / 'experiments'}", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )


@needs_trec
def test_cli_matches_trec_eval_official_output(tmp_path):
    out = tmp_path / "eval.json"
    p = _cli(tmp_path, f"run={TREC / 'results.test'}", f"qrels={TREC / 'qrels.test'}", f"out={out}")
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    # trec_eval -m all_trec: ndcg_cut_10 all 0.3016, per query 301 0.1518, 302 0.7530, 303 0.0000
    assert res["nDCG@10"] == pytest.approx(0.3016, abs=5e-5)
    assert res["per_query"]["301"]["nDCG@10"] == pytest.approx(0.1518, abs=5e-5)
    assert res["per_query"]["302"]["nDCG@10"] == pytest.approx(0.7530, abs=5e-5)
    assert {"nDCG@5", "nDCG@100", "R@10", "R@100", "RR@10"} <= set(res)
    assert "nDCG@10" in p.stdout and "0.3016" in p.stdout  # the printed table


@needs_trec
def test_cli_counts_missing_query_as_zero(tmp_path):
    out = tmp_path / "eval.json"
    p = _cli(tmp_path, f"run={TREC / 'results.trunc'}", f"qrels={TREC / 'qrels.test'}", f"out={out}")
    assert p.returncode == 0, p.stderr
    # trec_eval -c: 302 absent from the run counts as 0; ndcg_cut_10 all 0.1717
    assert json.loads(out.read_text())["nDCG@10"] == pytest.approx(0.1717, abs=5e-5)


@needs_trec
def test_cli_compares_with_a_baseline(tmp_path):
    out = tmp_path / "eval.json"
    p = _cli(tmp_path, f"run={TREC / 'results.trunc'}", f"qrels={TREC / 'qrels.test'}", f"baseline={TREC / 'results.test'}", f"out={out}")
    assert p.returncode == 0, p.stderr
    c = json.loads(out.read_text())["compare"]["nDCG@10"]
    assert c["baseline"] == pytest.approx(0.3016, abs=5e-5)
    assert c["delta"] == pytest.approx(c["system"] - c["baseline"])
    assert 0 <= c["p_value"] <= 1 and c["n"] == 3


@needs_trec
def test_cli_malformed_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.run"
    bad.write_text("301 Q0 d1 1 2.5 tag\n301 Q0 d2 2 not-a-number tag\n")
    p = _cli(tmp_path, f"run={bad}", f"qrels={TREC / 'qrels.test'}", f"out={tmp_path / 'x.json'}")
    assert p.returncode != 0
    assert "bad.run" in p.stderr and "line 2" in p.stderr
    assert not (tmp_path / "x.json").exists()


@needs_trec
def test_cli_reads_multivent_judgments_and_official_json_run(tmp_path):
    """The same graded judgments as MultiVENT JSONL and the same run as the official JSON give
    trec_eval's numbers (out.test.aql: ndcg_cut_10 all 0.2656)."""
    from rankvideo.data.official import write_judgments
    from rankvideo.data.trec import read_qrels, read_trec_run, write_json_run

    write_judgments(tmp_path / "judgments.jsonl", read_qrels(TREC / "qrels.rel_level"))
    write_json_run(tmp_path / "run.json", read_trec_run(TREC / "results.test"))
    out = tmp_path / "eval.json"
    p = _cli(tmp_path, f"run={tmp_path / 'run.json'}", f"qrels={tmp_path / 'judgments.jsonl'}", f"out={out}")
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["nDCG@10"] == pytest.approx(0.2656, abs=5e-5)


@needs_trec
@pytest.mark.parametrize("run_text, message", [
    ("", "the run ranks no document"),
    ("zz1 Q0 d1 1 1.0 x\n", "share no query id"),
])
def test_cli_refuses_an_empty_or_unrelated_run_in_one_line(tmp_path, run_text, message):
    run = tmp_path / "run.trec"
    run.write_text(run_text)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    p = subprocess.run([sys.executable, str(REPO / "src" / "evaluate.py"), f"run={run}", f"qrels={TREC / 'qrels.test'}",
                        f"paths.experiments={tmp_path / 'experiments'}", f"hydra.run.dir={tmp_path / 'hydra'}"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and message in lines[0] and "run.trec" in lines[0] and "qrels.test" in lines[0]
    assert "Traceback" not in p.stderr
    ok = _cli(tmp_path, f"run={run}", f"qrels={TREC / 'qrels.test'}", "allow_empty=true")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "Is a directory"),
    (lambda p: (p.symlink_to(p.parent / "loop_b"), (p.parent / "loop_b").symlink_to(p)), "symbolic links"),
])
def test_cli_says_when_the_run_is_a_directory_or_a_symlink_loop(tmp_path, make, message):
    run = tmp_path / "run.trec"
    make(run)
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "RANKVIDEO_DEBUG")}
    p = subprocess.run([sys.executable, str(REPO / "src" / "evaluate.py"), f"run={run}", f"qrels={qrels}",
                        f"paths.experiments={tmp_path / 'experiments'}", f"hydra.run.dir={tmp_path / 'hydra'}"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and message in lines[0] and str(run) in lines[0], p.stderr
    assert "Traceback" not in p.stderr


@needs_trec
def test_cli_averages_over_ranked_queries_on_request(tmp_path):
    out = tmp_path / "eval.json"
    p = _cli(tmp_path, f"run={TREC / 'results.trunc'}", f"qrels={TREC / 'qrels.test'}", f"out={out}", "eval.average=ranked")
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    # 302 is absent from the run: left out of the mean instead of counted as 0, so the three-query
    # mean 0.1717 (trec_eval -c) becomes the mean of the two ranked queries, 0.1717 * 3 / 2.
    assert res["num_queries"] == 2 and set(res["per_query"]) == {"301", "303"}
    assert res["nDCG@10"] == pytest.approx(0.1717 * 3 / 2, abs=1e-4)
    assert "(average: ranked)" in p.stdout
