"""The teacher stage's journal of judged pairs: a killed run resumes, changed inputs are judged again."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from rankvideo.data.benchmark import VideoDoc
from rankvideo.stages.teacher import _judge_pairs, judge_fingerprint
from rankvideo.teacher.base import TeacherOutput, evidence_text


class CountingTeacher:
    """Margin = length of the evidence minus length of the query; counts the pairs it judges."""

    def __init__(self, fail_after: int | None = None):
        self.judged, self.fail_after = 0, fail_after

    def judge(self, queries, evidences):
        if self.fail_after is not None and self.judged >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.judged += len(queries)
        m = np.array([len(e) - len(q) for q, e in zip(queries, evidences)], float)
        return TeacherOutput(margins=m, says_yes=m > 0, reasonings=[f"r{len(q)}" for q in queries])


DOCS = {f"d{i}": VideoDoc(doc_id=f"d{i}", video=f"v{i}.mp4", caption="a red ball " * (i + 1), asr="") for i in range(5)}
QUERIES = {"q1": "red ball", "q2": "a blue cube on a table"}
PAIRS = [(q, d) for q in QUERIES for d in DOCS]


def test_a_killed_run_resumes_with_the_same_judgements(tmp_path):
    journal = tmp_path / "judged.jsonl"
    full, counts = _judge_pairs(CountingTeacher(), PAIRS, QUERIES, DOCS, ("caption",))
    assert counts == {"pairs_resumed": 0, "pairs_judged_now": 10}
    with pytest.raises(KeyboardInterrupt):
        _judge_pairs(CountingTeacher(fail_after=4), PAIRS, QUERIES, DOCS, ("caption",), chunk=4,
                     journal=journal, fingerprint="f")
    with open(journal, "a") as fh:
        fh.write('{"key": "cut')  # a record cut by the kill
    teacher = CountingTeacher()
    resumed, counts = _judge_pairs(teacher, PAIRS, QUERIES, DOCS, ("caption",), chunk=4, journal=journal, fingerprint="f")
    assert counts == {"pairs_resumed": 4, "pairs_judged_now": 6} and teacher.judged == 6
    assert resumed == full
    again, counts = _judge_pairs(CountingTeacher(), PAIRS, QUERIES, DOCS, ("caption",), journal=journal, fingerprint="f")
    assert counts == {"pairs_resumed": 10, "pairs_judged_now": 0} and again == full


def test_changed_query_evidence_or_teacher_is_judged_again(tmp_path):
    journal = tmp_path / "judged.jsonl"
    _judge_pairs(CountingTeacher(), PAIRS, QUERIES, DOCS, ("caption",), journal=journal, fingerprint="f")
    queries = {**QUERIES, "q2": "a green cube"}
    docs = {**DOCS, "d0": VideoDoc(doc_id="d0", video="v0.mp4", caption="something else", asr="")}
    out, counts = _judge_pairs(CountingTeacher(), PAIRS, queries, docs, ("caption",), journal=journal, fingerprint="f")
    assert counts == {"pairs_resumed": 4, "pairs_judged_now": 6}  # q1 x d1..d4 kept; q2 x 5 and q1 x d0 judged
    assert out[("q2", "d3")][0] == len(evidence_text(docs["d3"], ("caption",))) - len("a green cube")
    _, counts = _judge_pairs(CountingTeacher(), PAIRS, queries, docs, ("caption",), journal=journal, fingerprint="g")
    assert counts["pairs_resumed"] == 0


def test_fingerprint_ignores_mining_but_not_the_model(tmp_path):
    tc = OmegaConf.create({"name": "minilm", "batch_size": 64, "model_path": None, "pool_depth": 100,
                           "mining": {"trusted_max": -2.0}, "calibration": {"path": None}})
    base = judge_fingerprint(tc)
    assert judge_fingerprint(OmegaConf.merge(tc, {"mining": {"trusted_max": -3.0}, "pool_depth": 50})) == base
    assert judge_fingerprint(OmegaConf.merge(tc, {"model_path": "/elsewhere"})) != base
    cal = tmp_path / "calibration.json"
    cal.write_text('{"w": [1]}')
    one = judge_fingerprint(tc, cal)
    cal.write_text('{"w": [2]}')
    assert one != base and judge_fingerprint(tc, cal) != one
