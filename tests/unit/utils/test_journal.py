"""Append-only journals: complete records survive, a cut tail is removed, another config starts over."""

from __future__ import annotations

import json
import logging

from rankvideo.utils.journal import append, open_journal, read_journal, rewrite


def _rows(path, fp):
    records = read_journal(path, fp)
    return None if records is None else [r for _, r in records]


def test_round_trip_and_other_fingerprint(tmp_path):
    path = tmp_path / "j.jsonl"
    assert _rows(path, "a") is None
    with open_journal(path, "a") as fh:
        append(fh, {"x": 1})
        append(fh, {"x": 2}, sync=True)
    assert _rows(path, "a") == [{"x": 1}, {"x": 2}]
    assert _rows(path, "b") is None
    with open_journal(path, "b") as fh:  # another configuration: started over
        append(fh, {"x": 3})
    assert path.read_text().splitlines() == [json.dumps({"fingerprint": "b"}), json.dumps({"x": 3})]


def test_cut_tail_and_damaged_line_are_left_out_then_removed(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    path.write_text('{"fingerprint": "a"}\n{"x": 1}\nnot json\n{"x": 2}\n{"x": 3, "y"')
    with caplog.at_level(logging.WARNING):
        assert _rows(path, "a") == [{"x": 1}, {"x": 2}]
    assert "cut by an interruption" in caplog.text and "line 3" in caplog.text
    with open_journal(path, "a") as fh:
        append(fh, {"x": 4})
    assert path.read_text().endswith('{"x": 2}\n{"x": 4}\n')  # the fragment is gone, the new record on its own line
    assert _rows(path, "a") == [{"x": 1}, {"x": 2}, {"x": 4}]


def test_header_only_cut_starts_over(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"fingerpr')
    assert _rows(path, "a") is None
    with open_journal(path, "a") as fh:
        append(fh, {"x": 1})
    assert _rows(path, "a") == [{"x": 1}]


def test_resumable_checkpoint_skips_a_damaged_last_ckpt(tmp_path, caplog):
    import torch

    from rankvideo.utils.io import resumable_checkpoint

    assert resumable_checkpoint(tmp_path / "none") is None
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.save({"epoch": 3}, ckpts / "epoch=3-step=30.ckpt")
    torch.save({"epoch": 4}, ckpts / "last.ckpt")
    assert resumable_checkpoint(ckpts) == str(ckpts / "last.ckpt")
    data = (ckpts / "last.ckpt").read_bytes()
    (ckpts / "last.ckpt").write_bytes(data[: len(data) // 2])  # cut
    with caplog.at_level(logging.WARNING):
        assert resumable_checkpoint(ckpts) == str(ckpts / "epoch=3-step=30.ckpt")
    assert "damaged" in caplog.text and (ckpts / "last.ckpt.damaged").exists() and not (ckpts / "last.ckpt").exists()
    assert torch.load(resumable_checkpoint(ckpts))["epoch"] == 3


def test_rewrite_gives_the_bytes_of_a_fresh_journal_and_replaces_the_old_one(tmp_path):
    records = [{"doc_id": "a", "scores": {"q1": 1.5}}, {"doc_id": "é", "skipped": "cannot decode"}]
    fresh = tmp_path / "fresh.jsonl"
    with open_journal(fresh, "f") as fh:
        for r in records:
            append(fh, r)
    old = tmp_path / "old.jsonl"
    with open_journal(old, "other") as fh:
        append(fh, {"doc_id": "z", "scores": {"q9": 0.0}})
    rewrite(old, "f", iter(records))
    assert old.read_bytes() == fresh.read_bytes()
    assert [row for _, row in read_journal(old, "f")] == records
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.jsonl", "old.jsonl"]  # no temp file left
