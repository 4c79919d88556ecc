"""Run and qrels readers/writers and the ranking convention."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from rankvideo.data.trec import (
    FormatError,
    rank_order,
    read_json_run,
    read_qrels,
    read_run,
    read_trec_run,
    strictly_ordered,
    write_json_run,
    write_qrels,
    write_trec_run,
)

TESTDATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "testdata"
TREC_EVAL = TESTDATA / "trec_eval"
needs_trec_eval = pytest.mark.skipif(
    not TREC_EVAL.is_dir(),
    reason=f"trec_eval regression files not found at {TREC_EVAL} (shared/testdata is absent)")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- ranking


def test_rank_order_score_then_tiebreak_then_docid_descending():
    scores = {"a": 1.0, "b": 2.0, "c": 1.0, "d": 1.0, "e": 1.0}
    # Without a tie-break run equal scores go by doc id descending (trec_eval).
    assert rank_order(scores) == ["b", "e", "d", "c", "a"]
    # The tie-break decides among equal scores; docs missing from it go after
    # those present (e, d), and among themselves by doc id descending.
    tiebreak = {"a": 0.9, "c": 0.5, "b": 0.0}
    assert rank_order(scores, tiebreak) == ["b", "a", "c", "e", "d"]


def test_rank_order_docid_is_string_comparison():
    # "10" < "9" as strings, so descending puts "9" first although 10 > 9.
    assert rank_order({"10": 0.0, "9": 0.0, "100": 0.0}) == ["9", "100", "10"]


def test_rank_order_rejects_nan():
    with pytest.raises(ValueError):
        rank_order({"a": float("nan"), "b": 1.0})


def test_strictly_ordered_keeps_order_with_strictly_decreasing_scores():
    run = {"q1": {"a": 0.5, "b": 0.5, "c": 0.7}, "q2": {"x": 3.0}}
    tiebreak = {"q1": {"a": 2.0, "b": 1.0}}
    out = strictly_ordered(run, tiebreak)
    assert out == {"q1": {"c": 3.0, "a": 2.0, "b": 1.0}, "q2": {"x": 1.0}}
    assert strictly_ordered(run)["q1"] == {"c": 3.0, "b": 2.0, "a": 1.0}


# --------------------------------------------------------------------------- TREC runs


def test_read_trec_run_ignores_rank_and_skips_blank_lines(tmp_path):
    p = _write(tmp_path, "r.trec",
               "q1 Q0 d1 1 0.5 tag\n\n   \nq1 Q0 d2 1 0.75 tag extra junk\nq2\tQ0\td1\t9\t-1e-3\ttag\n")
    assert read_trec_run(p) == {"q1": {"d1": 0.5, "d2": 0.75}, "q2": {"d1": -0.001}}


@pytest.mark.parametrize("line, problem", [
    ("q1 Q0 d2 2 0.4", "columns"),
    ("q1 Q0 d2 2 high tag", "not a number"),
    ("q1 Q0 d2 2 nan tag", "not finite"),
    ("q1 Q0 d2 2 -inf tag", "not finite"),
])
def test_read_trec_run_malformed_line_names_file_and_line(tmp_path, line, problem):
    p = _write(tmp_path, "bad_run.txt", f"q1 Q0 d1 1 0.5 tag\n\n{line}\n")
    with pytest.raises(FormatError) as info:
        read_trec_run(p)
    msg = str(info.value)
    assert "bad_run.txt" in msg and "line 3" in msg and problem in msg
    assert info.value.line == 3


def test_read_trec_run_duplicate_pair_names_both_lines(tmp_path):
    p = _write(tmp_path, "dup.run", "q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4 t\nq2 Q0 d1 1 0.3 t\n"
                                    "q1 Q0 d1 3 0.2 t\n")
    with pytest.raises(FormatError) as info:
        read_trec_run(p)
    msg = str(info.value)
    assert "dup.run" in msg and "lines 1 and 4" in msg and "'d1'" in msg


def test_trec_run_round_trip_preserves_order_and_scores(tmp_path):
    run = {
        "q1": {"d1": 0.1, "d2": 1 / 3, "d3": 1e-300, "d4": -2.5, "d5": 1 / 3, "d6": 7},
        "q2": {"x": 123456789.123456789},
    }
    p = tmp_path / "sub" / "dir" / "run.trec"  # parent folders are created
    write_trec_run(p, run, tag="sys1")
    lines = p.read_text().splitlines()
    # d5 and d2 tie at 1/3: doc id descending puts d5 first.
    assert [ln.split()[2] for ln in lines[:6]] == ["d6", "d5", "d2", "d1", "d3", "d4"]
    assert [ln.split()[3] for ln in lines[:6]] == ["1", "2", "3", "4", "5", "6"]
    assert all(ln.split()[1] == "Q0" and ln.split()[5] == "sys1" for ln in lines)
    back = read_trec_run(p)
    assert back == {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()}
    # Bit-exact, not approximately equal.
    assert back["q1"]["d2"].hex() == (1 / 3).hex()
    assert rank_order(back["q1"]) == rank_order(run["q1"])
    assert _no_temp_files(p.parent)


def test_write_trec_run_depth_and_tiebreak(tmp_path):
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.5}}
    first_stage = {"q": {"a": 0.9, "b": 0.1, "c": 0.5}}
    p = tmp_path / "run.trec"
    write_trec_run(p, run, depth=2, tiebreak=first_stage)
    assert [ln.split()[2] for ln in p.read_text().splitlines()] == ["a", "c"]
    # Default: original scores, so a reader that ignores ranks sees doc id order.
    assert rank_order(read_trec_run(p)["q"]) == ["c", "a"]
    # strict=True: strictly decreasing scores carry the tie-broken order itself.
    write_trec_run(p, run, depth=3, tiebreak=first_stage, strict=True)
    back = read_trec_run(p)
    assert rank_order(back["q"]) == ["a", "c", "b"]
    assert back["q"] == {"a": 3.0, "c": 2.0, "b": 1.0}


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "run.trec"
    write_trec_run(p, {"q": {"a": 1.0}})
    before = p.read_text()
    with pytest.raises(ValueError):
        write_trec_run(p, {"q": {"a": float("nan")}})
    with pytest.raises(ValueError):
        write_trec_run(p, {"q": {"a b": 1.0}})  # whitespace would shift columns
    assert p.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["run.trec"]


# --------------------------------------------------------------------------- qrels


def test_read_qrels_keeps_negative_labels_and_tolerates_extra_columns(tmp_path):
    p = _write(tmp_path, "q.qrels", "1 0 a 2\n1 0 b -1\n\n2 0 a 0 extra\n")
    assert read_qrels(p) == {"1": {"a": 2, "b": -1}, "2": {"a": 0}}


@pytest.mark.parametrize("line, problem", [
    ("1 0 c", "columns"),
    ("1 0 c 1.5", "not an integer"),
    ("1 0 c yes", "not an integer"),
    ("1 0 a 1", "judged twice"),
])
def test_read_qrels_malformed(tmp_path, line, problem):
    p = _write(tmp_path, "bad.qrels", f"1 0 a 1\n{line}\n")
    with pytest.raises(FormatError) as info:
        read_qrels(p)
    assert "bad.qrels" in str(info.value) and "line 2" in str(info.value)
    assert problem in str(info.value)


def test_qrels_round_trip(tmp_path):
    qrels = {"q1": {"a": 3, "b": 0, "c": -1}, "q2": {"x": 1}}
    p = tmp_path / "out" / "q.qrels"
    write_qrels(p, qrels)
    assert read_qrels(p) == qrels
    assert p.read_text().splitlines()[0] == "q1 0 a 3"
    assert _no_temp_files(p.parent)


# --------------------------------------------------------------------------- JSON runs


def test_json_run_round_trip(tmp_path):
    run = {"q1": {"vid_a": 0.1, "vid_b": 1 / 3}, "q2": {"vid_c": -4.0}}
    p = tmp_path / "first_stage.json"
    write_json_run(p, run)
    back = read_json_run(p)
    assert back == run and back["q1"]["vid_b"].hex() == (1 / 3).hex()
    assert read_run(p) == run  # dispatch by extension
    assert _no_temp_files(tmp_path)
    # Integers are valid scores in JSON and are read as floats.
    _write(tmp_path, "ints.json", '{"q": {"d": 3}}')
    assert read_json_run(tmp_path / "ints.json") == {"q": {"d": 3.0}}


@pytest.mark.parametrize("text, where", [
    ('{"q1": {"d1": "0.5"}}', '["q1", "d1"]'),
    ('{"q1": {"d1": true}}', '["q1", "d1"]'),
    ('{"q1": {"d1": NaN}}', '["q1", "d1"]'),
    ('{"q1": [1, 2]}', '["q1"]'),
    ('[1, 2]', "top level"),
    ('{"q1": {"d1": 0.5},\n "q2": }', "line 2"),
])
def test_json_run_validation_names_key(tmp_path, text, where):
    p = _write(tmp_path, "bad.json", text)
    with pytest.raises(FormatError) as info:
        read_json_run(p)
    assert "bad.json" in str(info.value) and where in str(info.value)


def test_read_run_dispatches_trec_for_other_extensions(tmp_path):
    p = _write(tmp_path, "run.txt", "q Q0 d 1 2.0 t\n")
    assert read_run(p) == {"q": {"d": 2.0}}


# --------------------------------------------------------------------------- real files


@needs_trec_eval
def test_reads_trec_eval_regression_files():
    run = read_trec_run(TREC_EVAL / "results.test")
    assert sorted(run) == ["301", "302", "303"]
    assert [len(v) for v in run.values()] == [500, 500, 500]
    # results.trunc carries junk trailing columns on some lines; 302 is absent.
    trunc = read_trec_run(TREC_EVAL / "results.trunc")
    assert sorted(trunc) == ["301", "303"]
    assert sum(len(v) for v in trunc.values()) == 584
    assert trunc["301"]["FBIS3-27619"] == 2.138276
    qrels = read_qrels(TREC_EVAL / "qrels.test")
    assert sum(len(v) for v in qrels.values()) == 3681
    assert sum(r > 0 for v in qrels.values() for r in v.values()) == 561
    graded = read_qrels(TREC_EVAL / "qrels.rel_level")
    assert {r for v in graded.values() for r in v.values()} == {-1, 0, 1, 2, 3, 4}


def test_format_error_is_value_error():
    err = FormatError("x.run", "bad", line=7)
    assert isinstance(err, ValueError) and str(err) == "x.run, line 7: bad"
    assert str(FormatError("x.json", "bad", key=json.dumps(["q"]))) == 'x.json, key ["q"]: bad'


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    """Spreadsheet tools and Windows editors start UTF-8 files with a BOM; it must not become part
    of the first query id (a phantom query) in runs, qrels, JSON runs or query TSVs."""
    from rankvideo.data.official import read_queries_tsv

    run = tmp_path / "run.trec"
    run.write_text("\ufeffq1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0 x\n", encoding="utf-8")
    assert set(read_trec_run(run)) == {"q1"}
    qrels = tmp_path / "qrels.trec"
    qrels.write_text("\ufeffq1 0 d1 1\n", encoding="utf-8")
    assert set(read_qrels(qrels)) == {"q1"}
    js = tmp_path / "run.json"
    js.write_text('\ufeff{"q1": {"d1": 1.0}}', encoding="utf-8")
    assert set(read_run(js)) == {"q1"}
    tsv = tmp_path / "queries.tsv"
    tsv.write_text("\ufeffq1\ta flood\n", encoding="utf-8")
    assert set(read_queries_tsv(tsv)) == {"q1"}


def test_bulk_reader_equals_the_line_reader(tmp_path):
    """Well-formed files go through the bulk reader; it must give what the careful reader gives
    (same values, same query and document order), blank lines and extra columns included."""
    import random

    from rankvideo.data import trec

    rng = random.Random(7)
    lines = []
    for q in range(30):
        for d in rng.sample(range(500), 40):
            lines.append(f"q{q} Q0 d{d} 1 {rng.choice([1, 2.5, -3e-4, 7])} tag extra\n")
        lines.append("\n")
    rng.shuffle(lines)
    path = tmp_path / "run.trec"
    path.write_text("".join(lines))
    slow = trec._read_pairs(path, "qid Q0 docid rank score tag", 4, lambda t, n: float(t), "appears")
    fast = trec.read_trec_run(path)
    assert fast == slow
    assert [list(d) for d in fast.values()] == [list(d) for d in slow.values()] and list(fast) == list(slow)


@pytest.mark.parametrize("bad, message", [
    ("q1 Q0 d1 1 nan t\n", "line 2: score 'nan' is not finite"),
    ("q1 Q0 d1 1 x t\n", "line 2: score 'x' is not a number"),
    ("q1 Q0 d0 1 2.0 t\n", "doc 'd0' appears twice (lines 1 and 2)"),
    ("q1 Q0 d1\n", "line 2: expected at least 6 columns"),
])
def test_bad_lines_still_name_the_line(tmp_path, bad, message):
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d0 1 1.0 t\n" + bad + "q2 Q0 d0 1 1.0 t\n")
    with pytest.raises(FormatError, match=re.escape(message)):
        read_trec_run(path)


def test_strictly_ordered_without_ties_keeps_the_score_order():
    from rankvideo.data.trec import rank_order, strictly_ordered

    run = {"a": {"d1": 0.5, "d2": 2.0, "d3": -1.0}, "b": {"d1": 1.0, "d2": 1.0, "d0": 3.0}}
    out = strictly_ordered(run, {"b": {"d1": 0.0, "d2": 5.0}})
    assert list(sorted(out["a"], key=out["a"].get, reverse=True)) == ["d2", "d1", "d3"] == rank_order(run["a"])
    assert list(sorted(out["b"], key=out["b"].get, reverse=True)) == ["d0", "d2", "d1"]
    assert sorted(out["a"].values()) == [1.0, 2.0, 3.0]


def test_format_error_crosses_a_process_boundary_whole():
    # The evaluate CLI evaluates in a forked process; its errors come back pickled.
    import pickle

    err = pickle.loads(pickle.dumps(FormatError("runs/r.trec", "expected 6 fields, got 5", line=12)))
    assert type(err) is FormatError
    assert (err.path, err.line, err.key, err.problem) == ("runs/r.trec", 12, None, "expected 6 fields, got 5")
    assert str(err) == "runs/r.trec, line 12: expected 6 fields, got 5"
