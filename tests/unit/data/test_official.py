"""MultiVENT 2.0 files and the official RankVideo formats: the real MultiVENT 2.0 train queries and
judgments (shared/testdata), round trips, the shard layout, and errors that name file and line."""

from __future__ import annotations

import json

import pytest

from conftest import SHARED
from rankvideo.data.official import (
    TrainingRecord, find_video, read_judgments, read_qrels_any, read_queries_csv, read_queries_tsv,
    read_training_records, read_videos2queries, shard_path, videos2queries_from_run, write_judgments,
    write_queries_tsv, write_training_records, write_videos2queries,
)
from rankvideo.data.trec import FormatError, write_qrels

MV = SHARED / "testdata" / "multivent2_train"


@pytest.mark.skipif(not MV.is_dir(), reason=f"{MV} not found: the MultiVENT 2.0 test files live in ../shared/testdata, "
                    "beside the repository (CI has them; a plain clone does not)")
def test_real_multivent_train_queries_and_judgments(caplog):
    queries = read_queries_csv(MV / "multivent_2_q.csv")
    assert len(queries) == 1361
    assert queries["internvid_english_sports_pov_base_0"] == "1929 Henry Segrave setting speed records"
    # A quoted field with commas inside stays one query.
    assert queries["internvid_chinese_other_professional_ocr_2"] == "Hangzhou River Cleaners 1,500 compensation"
    qrels = read_judgments(MV / "multivent_2_j.jsonl")
    # 1,520 lines, two of them verbatim repeats (lines 1235 and 1240): 1,518 judgments, logged.
    assert sum(len(d) for d in qrels.values()) == 1518
    assert "2 judgment(s) repeated with the same label, counted once (lines 1235, 1240)" in caplog.text
    assert {r for d in qrels.values() for r in d.values()} == {1}  # binary for train
    assert qrels["internvid_english_sports_pov_base_0"] == {"PPQVve-Jeb4": 1}
    assert set(qrels) <= set(queries)


def test_graded_judgments_round_trip_and_match_trec(tmp_path):
    qrels = {"q1": {"10": 3, "11": 0}, "q2": {"205": 2}}
    write_judgments(tmp_path / "j.jsonl", qrels)
    assert read_judgments(tmp_path / "j.jsonl") == qrels
    write_qrels(tmp_path / "q.trec", qrels)
    assert read_qrels_any(tmp_path / "q.trec") == read_qrels_any(tmp_path / "j.jsonl") == qrels


@pytest.mark.parametrize("line, message", [
    ('{"query_id": "q", "doc_id": "d"}', "a judgment needs 'relevance'"),
    ('{"query_id": "q", "doc_id": "d", "relevance": "high"}', "relevance 'high' is not an integer"),
    ('{"query_id": "q", "doc_id": "d", "relevance": 1.5}', "relevance 1.5 is not an integer"),
    ('{"query_id": "q", "doc_id": "d", "relevance": 1', "not valid JSON"),
])
def test_bad_judgment_names_file_and_line(tmp_path, line, message):
    p = tmp_path / "j.jsonl"
    p.write_text('{"query_id": "q0", "doc_id": "d0", "relevance": 2}\n' + line + "\n")
    with pytest.raises(FormatError, match=message) as e:
        read_judgments(p)
    assert e.value.line == 2 and str(p) in str(e.value)


def test_duplicate_judgment_and_bad_csv_header(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text('{"query_id": "q", "doc_id": "d", "relevance": 1}\n{"query_id": "q", "doc_id": "d", "relevance": 2}\n')
    with pytest.raises(FormatError, match="judges doc 'd' twice, 1 and 2"):
        read_judgments(p)
    c = tmp_path / "q.csv"
    c.write_text("id,text\nq1,hello\n")
    with pytest.raises(FormatError, match="expected the header 'Query_id,query'"):
        read_queries_csv(c)
    c.write_text("Query_id,query\nq1,hello\nq1,again\n")
    with pytest.raises(FormatError, match="query id 'q1' repeats") as e:
        read_queries_csv(c)
    assert e.value.line == 3


def test_queries_tsv_round_trip(tmp_path):
    queries = {"q1": "floods in Valencia", "2545": "Покушение"}
    write_queries_tsv(tmp_path / "q.tsv", queries)
    assert read_queries_tsv(tmp_path / "q.tsv") == queries
    with pytest.raises(ValueError, match="tab or newline"):
        write_queries_tsv(tmp_path / "bad.tsv", {"q": "a\tb"})


def test_videos2queries_from_a_run_and_round_trip(tmp_path):
    run = {"q2": {"a": 1.0, "b": 3.0, "c": 2.0}, "q1": {"a": 5.0, "d": 0.5}}
    v2q = videos2queries_from_run(run, depth=3)
    assert videos2queries_from_run(run, depth=1) == {"a": ["q1"], "b": ["q2"]}
    assert v2q == {"a": ["q1", "q2"], "b": ["q2"], "c": ["q2"], "d": ["q1"]}
    write_videos2queries(tmp_path / "v2q.json", v2q)
    assert read_videos2queries(tmp_path / "v2q.json") == v2q
    (tmp_path / "bad.json").write_text('{"a": "q1"}')
    with pytest.raises(FormatError, match='key \\["a"\\]'):
        read_videos2queries(tmp_path / "bad.json")


def test_training_records_round_trip_and_validation(tmp_path):
    records = [TrainingRecord("q1", "floods", "17", ["/v/000001/17.mp4"], 1, 0.93, {"caption": "water", "asr": "rain"}, "yes"),
               TrainingRecord("q1", "floods", "240", ["/v/000003/240.mp4"], 0)]
    write_training_records(tmp_path / "t.jsonl", records)
    assert read_training_records(tmp_path / "t.jsonl") == records
    (tmp_path / "bad.jsonl").write_text(json.dumps({"query_id": "q", "query": "x", "doc_id": "d", "true_label": 1,
                                                    "teacher_p_yes": 1.7}) + "\n")
    with pytest.raises(FormatError, match="teacher_p_yes must be in \\[0, 1\\]") as e:
        read_training_records(tmp_path / "bad.jsonl")
    assert e.value.line == 1


def test_shard_layout_and_flat_folder(tmp_path):
    assert shard_path(tmp_path, "0") == tmp_path / "000001" / "0.mp4"
    assert shard_path(tmp_path, "99") == tmp_path / "000001" / "99.mp4"
    assert shard_path(tmp_path, "100") == tmp_path / "000002" / "100.mp4"
    assert shard_path(tmp_path, "123456") == tmp_path / "001235" / "123456.mp4"
    with pytest.raises(ValueError, match="not numeric"):
        shard_path(tmp_path, "PPQVve-Jeb4")
    (tmp_path / "000002").mkdir()
    (tmp_path / "000002" / "150.mp4").write_bytes(b"x")
    (tmp_path / "PPQVve-Jeb4.mp4").write_bytes(b"x")
    assert find_video(tmp_path, "150") == tmp_path / "000002" / "150.mp4"
    assert find_video(tmp_path, "PPQVve-Jeb4") == tmp_path / "PPQVve-Jeb4.mp4"
    assert find_video(tmp_path, "151") is None  # missing from disk
    assert find_video(tmp_path, "150", layout="flat") is None


def test_export_submission_trec_and_json(tmp_path):
    from rankvideo.data.official import export_submission
    from rankvideo.data.trec import read_json_run, read_trec_run

    run = {"q1": {"d1": 0.5, "d2": 0.5, "d3": 2.0, "d4": -1.0}, "q2": {"d9": 1.0}}
    first = {"q1": {"d1": 1.0, "d2": 3.0, "d3": 0.0, "d4": 0.0}}  # d2 before d1 on the tie
    out = tmp_path / "sub.trec"
    summary = export_submission(run, ["q1", "q2"], out, depth=3, tag="team-run1", tiebreak=first)
    assert summary == {"path": str(out), "format": "trec", "queries": 2, "missing": 0, "lines": 4,
                       "depth": 3, "tag": "team-run1"}
    assert out.read_text().splitlines() == [
        "q1 Q0 d3 1 3.0 team-run1", "q1 Q0 d2 2 2.0 team-run1", "q1 Q0 d1 3 1.0 team-run1",
        "q2 Q0 d9 1 1.0 team-run1"]
    assert read_trec_run(out)["q1"] == {"d3": 3.0, "d2": 2.0, "d1": 1.0}
    export_submission(run, ["q1", "q2"], tmp_path / "sub.json", fmt="json", depth=2, tiebreak=first)
    assert read_json_run(tmp_path / "sub.json") == {"q1": {"d3": 2.0, "d2": 1.0}, "q2": {"d9": 1.0}}


def test_export_submission_checks_the_query_set(tmp_path, caplog):
    from rankvideo.data.official import export_submission

    run = {"q1": {"d1": 1.0}}
    with pytest.raises(ValueError, match="1 of 2 queries have no ranking.*q2"):
        export_submission(run, ["q1", "q2"], tmp_path / "a.trec")
    assert not (tmp_path / "a.trec").exists()
    summary = export_submission(run, ["q1", "q2"], tmp_path / "a.trec", allow_missing=True)
    assert summary["missing"] == 1 and "no ranking" in caplog.text
    with pytest.raises(ValueError, match="not in the query list.*q1"):
        export_submission(run, ["q7"], tmp_path / "b.trec")
    with pytest.raises(ValueError, match="unknown submission format"):
        export_submission(run, ["q1"], tmp_path / "c.txt", fmt="csv")


def test_export_run_cli(tmp_path):
    import subprocess
    import sys

    (tmp_path / "queries.csv").write_text('Query_id,query\n101,"flood, Valencia"\n102,fire\n')
    (tmp_path / "run.json").write_text(json.dumps({"101": {"7": 0.1, "8": 0.9}, "102": {"7": 1.0}}))
    from pathlib import Path
    script = Path(__file__).resolve().parents[3] / "src" / "export_run.py"
    ok = subprocess.run([sys.executable, str(script), str(tmp_path / "run.json"), "--queries",
                         str(tmp_path / "queries.csv"), "--out", str(tmp_path / "sub.trec")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["lines"] == 3
    assert (tmp_path / "sub.trec").read_text().splitlines()[0] == "101 Q0 8 1 2.0 rankvideo"
    (tmp_path / "queries.csv").write_text("Query_id,query\n101,x\n102,y\n103,z\n")
    bad = subprocess.run([sys.executable, str(script), str(tmp_path / "run.json"), "--queries",
                          str(tmp_path / "queries.csv"), "--out", str(tmp_path / "sub2.trec")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "103" in bad.stderr and "Traceback" not in bad.stderr
