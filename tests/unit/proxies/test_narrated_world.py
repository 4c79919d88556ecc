"""The embedded world's switches: narration (off by default, leaving the benchmark's config record
as it was) and the source of its text proxies (templates or the proxies stage's files)."""

from __future__ import annotations

import json
import logging
import shutil

import av
import pytest

from conftest import compose_cfg
from rankvideo.data.synthetic.build import _apply_tool_proxies, _cfg_dict, _render_one, _sample_corpus
from rankvideo.data.synthetic.narration import NarrationSpec
from rankvideo.stages.synthesize import benchmark_config


def test_defaults_leave_the_manifest_config_as_before():
    cfg = benchmark_config(compose_cfg(["debug=tiny"]))
    assert cfg.narration == NarrationSpec() and not cfg.narration.enabled and cfg.proxy_source == "templates"
    d = _cfg_dict(cfg)
    assert not {"narration", "proxy_source", "tool_proxies"} & set(d)  # the default hash is unchanged
    on = benchmark_config(compose_cfg(["debug=tiny", "data.narration.enabled=true"]))
    assert _cfg_dict(on)["narration"] == {"enabled": True, "engine": "flite", "voice": "en-us", "words_per_minute": 150}


@pytest.mark.parametrize("overrides, message", [
    (["data.proxy_source=tools"], "needs data.tool_proxies"),
    (["data.proxy_source=asr"], "choose templates or tools"),
    (["data.narration.engine=say"], "choose from"),
])
def test_bad_switches_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        benchmark_config(compose_cfg(["debug=tiny", *overrides])).validate()


def test_tool_proxies_replace_the_templates(tmp_path, caplog):
    records, _ = _sample_corpus(benchmark_config(compose_cfg(["debug=tiny"])))
    first, second = records[0]["doc_id"], records[1]["doc_id"]
    (tmp_path / "captions.jsonl").write_text(json.dumps({"doc_id": first, "text": "a tool caption"}) + "\n")
    (tmp_path / "asr.jsonl").write_text("".join(json.dumps({"doc_id": r["doc_id"], "text": f"heard {i}"}) + "\n"
                                                for i, r in enumerate(records)))
    templated_ocr = [r["ocr"] for r in records]
    with caplog.at_level(logging.WARNING):
        covered = _apply_tool_proxies(records, str(tmp_path))
    assert covered == {"caption": 1, "asr": len(records)}
    assert records[0]["caption"] == "a tool caption" and records[1]["caption"] == ""  # not named by the file: empty
    assert [r["asr"] for r in records[:2]] == ["heard 0", "heard 1"]
    assert [r["ocr"] for r in records] == templated_ocr  # no ocr.jsonl: the templates stay (logged)
    assert "ocr.jsonl: absent" in caplog.text and f"first: {second}" in caplog.text
    with pytest.raises(FileNotFoundError, match="run the proxies stage"):
        _apply_tool_proxies(records, str(tmp_path / "nowhere"))


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (apt-get install flite)")
def test_a_narrated_clip_has_a_sound_track(tmp_path):
    records, _ = _sample_corpus(benchmark_config(compose_cfg(["debug=tiny"])))
    r = records[0]
    path = _render_one((str(tmp_path / "v.mp4"), r["truth"]["scene"], (r["asr"], NarrationSpec(enabled=True))))
    with av.open(path) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
    plain = _render_one((str(tmp_path / "p.mp4"), r["truth"]["scene"]))
    with av.open(plain) as c:
        assert [s.type for s in c.streams] == ["video"]
