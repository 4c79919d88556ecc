"""The (video, variant) plan, the resumable answer journal and the selection of queries, with a
scripted generator (the end-to-end runs with a real tiny causal LM are in test_generate_queries_stage)."""

import json

import pytest

from rankvideo.querygen.evidence import Proxies
from rankvideo.querygen.generate import Job, generate_answers, plan_jobs, select_queries, write_generated
from rankvideo.querygen.parse import ParseConfig

GC = {"name": "scripted", "max_new_tokens": 8}
PROXIES = {f"v{i}": Proxies(f"v{i}", caption=f"caption of video {i}", asr=f"speech of video {i}" if i % 2 else "")
           for i in range(6)}


class Scripted:
    """Answers from a script, in call order; records what it was asked."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def generate(self, messages, seeds):
        self.calls.append(list(seeds))
        return [self.answers.pop(0) for _ in messages]


def test_plan_is_seeded_visits_each_video_once_and_follows_the_mix():
    docs = [f"v{i}" for i in range(50)]
    jobs = plan_jobs(docs, {"caption": 3.0, "asr": 1.0, "ocr": 0.0}, 50, seed=7)
    assert jobs == plan_jobs(docs, {"caption": 3.0, "asr": 1.0, "ocr": 0.0}, 50, seed=7)
    assert sorted(j.doc_id for j in jobs) == sorted(docs)
    counts = {v: sum(j.variant == v for j in jobs) for v in ("caption", "asr", "ocr")}
    assert counts["ocr"] == 0 and counts["caption"] > counts["asr"] > 0
    assert [j.doc_id for j in plan_jobs(docs, {"all": 1}, 60, seed=7)][50:] == [j.doc_id for j in jobs][:10]
    with pytest.raises(ValueError, match="unknown evidence variants"):
        plan_jobs(docs, {"speech": 1.0}, 3, seed=0)
    with pytest.raises(ValueError, match="positive weight"):
        plan_jobs(docs, {"caption": 0.0}, 3, seed=0)


def test_answers_are_journaled_and_a_cut_journal_resumes(tmp_path):
    jobs = [Job(i, f"v{i}", "asr" if i in (0, 2) else "caption") for i in range(6)]  # v0, v2: no speech
    answers = [f"query number {i} about floods" for i in range(4)]
    gen = Scripted(answers)
    got, evidence, counts = generate_answers(jobs, PROXIES, lambda: gen, GC, tmp_path, seed=100, batch_size=3)
    assert sorted(got) == [1, 3, 4, 5] and gen.calls == [[101, 103, 104], [105]]  # seed + job index
    assert counts == {"answers_resumed": 0, "answers_generated_now": 4}
    assert evidence[1] == "caption of video 1"
    lines = (tmp_path / "answers.jsonl").read_text().splitlines()
    assert json.loads(lines[0]).keys() == {"fingerprint"} and len(lines) == 5
    # a kill while appending the last record: its line is cut; only that answer is asked again
    (tmp_path / "answers.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    again = Scripted(["query number 3 about floods"])
    got2, _, counts2 = generate_answers(jobs, PROXIES, lambda: again, GC, tmp_path, seed=100, batch_size=3)
    assert got2 == got and again.calls == [[105]]
    assert counts2 == {"answers_resumed": 3, "answers_generated_now": 1}
    # everything journaled: the generator is never built
    got3, _, _ = generate_answers(jobs, PROXIES, lambda: pytest.fail("built"), GC, tmp_path, seed=100)
    assert got3 == got
    # other decoding settings: nothing reused
    fresh = Scripted(answers)
    generate_answers(jobs, PROXIES, lambda: fresh, {**GC, "max_new_tokens": 9}, tmp_path, seed=100, batch_size=3)
    assert len(fresh.calls) == 2


def test_selection_numbers_kept_queries_and_counts_drops(tmp_path):
    jobs = [Job(i, f"v{i}", "caption") for i in range(6)]
    answers = {0: "Query: storm in Lagos with red car", 1: "I cannot do that", 2: "storm in Lagos with a red car",
               3: "caption of video 3", 5: "parade in Lima at dusk"}
    evidence = {i: f"caption of video {i}" for i in answers}
    rows, drops = select_queries(jobs, answers, evidence, ParseConfig(), existing=["Parade in Lima at dusk"])
    assert [(r["qid"], r["text"], r["source_doc"]) for r in rows] == [("s00000", "storm in Lagos with red car", "v0")]
    assert rows[0]["split"] == "train" and rows[0]["qtype"] == "generated" and rows[0]["variant"] == "caption"
    assert drops == {"no_evidence": 1, "empty": 0, "refusal": 1, "chatter": 0, "too_short": 0, "too_long": 0,
                     "repetition": 0, "copied": 1, "duplicate": 2}
    assert sum(drops.values()) + len(rows) == len(jobs)
    write_generated(tmp_path, rows, drops, 3, {"generator": "scripted"})
    assert (tmp_path / "queries_train.tsv").read_text() == "s00000\tstorm in Lagos with red car\n"
    assert (tmp_path / "qrels_train.trec").read_text().split() == ["s00000", "0", "v0", "3"]
    assert json.loads((tmp_path / "drops.json").read_text())["drops"] == drops


def test_merge_adds_train_queries_and_refuses_clashing_ids(tmp_path):
    from rankvideo.data.benchmark import Benchmark
    from rankvideo.querygen.generate import merge_into_benchmark

    (tmp_path / "corpus.jsonl").write_text('{"doc_id": "v0", "video": "v0.mp4"}\n{"doc_id": "v1", "video": "v1.mp4"}\n')
    (tmp_path / "queries.jsonl").write_text('{"qid": "q00000", "text": "flood in Lisbon", "split": "test"}\n')
    (tmp_path / "qrels.trec").write_text("q00000 0 v0 3\n")
    (tmp_path / "manifest.json").write_text('{"num_queries": {"train": 0, "val": 0, "test": 1}}')
    rows = [{"qid": "s00000", "text": "storm in Lagos with red car", "split": "train", "variant": "caption",
             "qtype": "generated", "source_doc": "v1", "job": 0}]
    manifest = merge_into_benchmark(tmp_path, rows, 1, {"drops": {"empty": 2}})
    bench = Benchmark(tmp_path)
    assert [(q.qid, q.split, q.qtype) for q in bench.queries()] == [("q00000", "test", None), ("s00000", "train", "generated")]
    assert bench.qrels("train") == {"s00000": {"v1": 1}} and bench.qrels() == {"q00000": {"v0": 3}, "s00000": {"v1": 1}}
    assert manifest["num_queries"] == {"train": 1, "val": 0, "test": 1} and manifest["generated_queries"]["count"] == 1
    assert len(manifest["sha256"]) == 64
    with pytest.raises(ValueError, match="generated query ids \\['s00000'\\] already exist"):
        merge_into_benchmark(tmp_path, rows, 1, {})
