"""Reranking bookkeeping without a model: the plan groups pairs by video, progress resumes,
unreadable videos are skipped and logged (never given a score), and the head/tail merge."""

from __future__ import annotations

import json
import logging

from rankvideo.data.trec import rank_order
from rankvideo.models.rerank import merge_head_and_tail, pair_key, rerank_plan, score_run
from rankvideo.utils.journal import append, open_journal

FIRST = {"q1": {"a": 5.0, "b": 4.0, "c": 3.0, "d": 2.0}, "q2": {"b": 9.0, "e": 8.0, "a": 1.0}, "q3": {"a": 1.0}}
QUERIES = {"q1": "one", "q2": "two"}


def test_plan_groups_pairs_by_video_within_depth():
    plan = rerank_plan(FIRST, QUERIES, depth=2)
    assert plan == {"a": ["q1"], "b": ["q1", "q2"], "e": ["q2"]}  # q3 is not a query to rerank


def test_score_run_skips_unreadable_videos_and_resumes(tmp_path, caplog):
    plan = rerank_plan(FIRST, QUERIES, depth=3)
    calls = []

    def score(doc, texts):
        calls.append(doc)
        return [float(len(t)) + (doc == "b") for t in texts]

    progress = tmp_path / "progress.jsonl"
    with caplog.at_level(logging.WARNING):
        scores, stats = score_run(plan, QUERIES, score, progress_file=progress, fingerprint="f1",
                                  skip=lambda d: "cannot decode" if d == "c" else None)
    assert "skipping video c (1 pairs): cannot decode" in caplog.text
    assert stats["videos_skipped"] == 1 and stats["skipped"] == {"c": "cannot decode"}
    assert "c" not in scores["q1"] and scores["q1"]["b"] == 4.0
    assert sorted(calls) == ["a", "b", "e"]
    # Interrupted after two videos: the third line is lost, and only that video is scored again.
    lines = progress.read_text().splitlines()
    progress.write_text("\n".join(lines[:3]) + "\n")
    calls.clear()
    again, stats2 = score_run(plan, QUERIES, score, progress_file=progress, fingerprint="f1")
    assert stats2["videos_resumed"] == 2 and len(calls) == 2  # the lost video and c (no skip rule now)
    assert stats2["pairs_resumed"] == 4 and stats2["pairs_rescored"] == 0  # a and b, two queries each
    # Another configuration never reuses the file.
    calls.clear()
    score_run(plan, QUERIES, score, progress_file=progress, fingerprint="other")
    assert sorted(calls) == ["a", "b", "c", "e"]
    assert json.loads(progress.read_text().splitlines()[0]) == {"fingerprint": "other"}


def _score_counting(calls):
    def score(doc, texts):
        calls.extend((doc, t) for t in texts)
        return [float(len(t)) + 0.5 * (doc == "b") for t in texts]
    return score


def test_a_record_cut_mid_line_is_removed_and_scored_again(tmp_path, caplog):
    """A crash while appending leaves half a JSON line: the resumed run reads up to the last complete
    record, removes the fragment before appending, and the next run finds every record intact."""
    plan = rerank_plan(FIRST, QUERIES, depth=3)
    progress = tmp_path / "progress.jsonl"
    clean, _ = score_run(plan, QUERIES, _score_counting([]), progress_file=progress, fingerprint="f")
    text = progress.read_text()
    progress.write_text(text[: len(text) - 20])  # the last record loses its end (and its newline)
    calls = []
    with caplog.at_level(logging.WARNING):
        resumed, stats = score_run(plan, QUERIES, _score_counting(calls), progress_file=progress, fingerprint="f")
    assert "cut by an interruption" in caplog.text
    assert resumed == clean and len(calls) == len(plan[sorted(plan)[-1]])  # only the cut video again
    assert all(json.loads(line) for line in progress.read_text().splitlines())  # no glued fragment
    calls.clear()
    again, stats = score_run(plan, QUERIES, _score_counting(calls), progress_file=progress, fingerprint="f")
    assert again == clean and calls == [] and stats["pairs_scored"] == 0


def test_changed_query_text_or_new_candidates_are_scored_again(tmp_path):
    plan = rerank_plan(FIRST, QUERIES, depth=2)
    progress = tmp_path / "progress.jsonl"
    score_run(plan, QUERIES, _score_counting([]), progress_file=progress, fingerprint="f")
    # The query text of q2 changed: its pairs are rescored, q1's reused.
    changed = {**QUERIES, "q2": "two, reworded"}
    calls = []
    scores, stats = score_run(plan, changed, _score_counting(calls), progress_file=progress, fingerprint="f")
    assert sorted(calls) == [("b", "two, reworded"), ("e", "two, reworded")]
    assert stats["pairs_rescored"] == 2 and stats["pairs_resumed"] == 2
    assert scores["q2"] == {"b": len("two, reworded") + 0.5, "e": float(len("two, reworded"))}
    # A deeper head (or a changed first stage) brings new pairs: only those are scored.
    deeper = rerank_plan(FIRST, changed, depth=3)
    calls.clear()
    scores, stats = score_run(deeper, changed, _score_counting(calls), progress_file=progress, fingerprint="f")
    assert sorted(calls) == [("a", "two, reworded"), ("c", "one")]
    assert set(scores["q1"]) == {"a", "b", "c"} and set(scores["q2"]) == {"a", "b", "e"}


def test_merge_keeps_the_tail_and_never_invents_scores():
    reranked = {"q1": {"c": 0.9, "a": 0.1}}  # b (in the head) could not be scored
    out = merge_head_and_tail({"q1": FIRST["q1"]}, reranked, depth=3)
    assert rank_order(out["q1"]) == ["c", "a", "b", "d"]
    assert list(out["q1"].values()) == sorted(out["q1"].values(), reverse=True)
    assert len(set(out["q1"].values())) == 4  # strictly decreasing: no tie left to an evaluator


def test_a_finished_journal_is_the_fresh_run_s_whatever_came_before(tmp_path):
    """The journal a run leaves holds exactly its plan's pairs, as a fresh one-process run writes
    them: the scores of a deeper earlier run and of an earlier query text go, other ranks' files
    are merged in and removed, so the folder (and DVC's hash of it) does not depend on its history."""
    plan = rerank_plan(FIRST, QUERIES, depth=2)
    fresh = tmp_path / "fresh" / "progress.jsonl"
    score_run(plan, QUERIES, _score_counting([]), progress_file=fresh, fingerprint="f")

    used = tmp_path / "used" / "progress.jsonl"
    old = {**QUERIES, "q2": "old"}
    score_run(rerank_plan(FIRST, old, depth=3), old, _score_counting([]), progress_file=used, fingerprint="f")
    with open_journal(used.with_name("progress.rank1.jsonl"), "f") as fh:  # a rank's file of a sharded run
        append(fh, {"doc_id": "e", "scores": {"q2": 3.0}, "keys": {"q2": pair_key("two")}})
    calls = []
    scores, _ = score_run(plan, QUERIES, _score_counting(calls), progress_file=used, fingerprint="f")
    assert calls == [("b", "two")]  # e's pair under the new text came from the rank's file
    assert scores == {"q1": {"a": 3.0, "b": 3.5}, "q2": {"b": 3.5, "e": 3.0}}
    assert sorted(p.name for p in used.parent.iterdir()) == ["progress.jsonl"]
    rows = [json.loads(line) for line in used.read_text().splitlines()]
    assert rows == [{"fingerprint": "f"},
                    {"doc_id": "a", "scores": {"q1": 3.0}, "keys": {"q1": pair_key("one")}},
                    {"doc_id": "b", "scores": {"q1": 3.5, "q2": 3.5}, "keys": {"q1": pair_key("one"), "q2": pair_key("two")}},
                    {"doc_id": "e", "scores": {"q2": 3.0}, "keys": {"q2": pair_key("two")}}]
    assert used.read_bytes() == fresh.read_bytes()
    # Read back, it resumes every pair and stays as it is.
    score_run(plan, QUERIES, _score_counting(calls), progress_file=used, fingerprint="f")
    assert calls == [("b", "two")] and used.read_bytes() == fresh.read_bytes()
