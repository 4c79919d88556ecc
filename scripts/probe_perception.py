"""Does a backbone see the embedded benchmark? Stage-1 caption training with a perception readout.

Trains stage 1 (caption NLL, `PerceptionSFTModule`) from a freshly built tiny backbone on the
captions of every video but the last `--held-out`, and every `--every` epochs reports the
teacher-forced accuracy of the caption's content words on those held-out videos, by category
(colour, shape, size, motion, count, kind of event). Chance is the majority word of a category;
a model that writes captions without looking stays there while the template words ("First, a",
"appears and moves") are right almost always.

    python scripts/probe_perception.py                       # vision tower trained
    python scripts/probe_perception.py --freeze-vision       # vision tower fixed (the tiny default)

What it measured, with the settings of each run, is in docs/findings.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

CATEGORIES = {
    "colour": ("red", "green", "blue", "yellow", "white", "purple", "orange"),
    "shape": ("circle", "square", "triangle"),
    "size": ("large", "small"),
    "motion": ("upward", "downward", "left", "right", "still"),
    "count": ("one", "two", "three", "four"),
    "kind": ("storm", "flood", "parade", "marathon", "festival", "election", "strike", "eruption", "earthquake",
             "wildfire", "concert", "protest"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default="artifacts/benchmark")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--max-frames", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--held-out", type=int, default=80)
    ap.add_argument("--freeze-vision", action="store_true")
    ap.add_argument("--vision-hidden", type=int, default=32, help="width of the tiny vision tower")
    ap.add_argument("--hidden", type=int, default=64, help="width of the tiny language model")
    ap.add_argument("--init", type=float, default=0.02, help="initializer_range of the tiny backbone")
    ap.add_argument("--layers", type=int, default=2, help="language-model layers of the tiny backbone")
    ap.add_argument("--vision-lr-scale", type=float, default=1.0, help="vision tower lr = lr x this (when trained)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import lightning as L
    import torch

    from rankvideo.data.benchmark import Benchmark
    from rankvideo.data.clips import ClipStore
    from rankvideo.modules.datamodules import Stage1DataModule
    from rankvideo.models.scoring import encode_caption_examples
    from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone
    from rankvideo.modules import PerceptionSFTModule

    torch.set_num_threads(args.threads)
    bench = Benchmark(args.benchmark)
    docs = bench.corpus()
    train, held = docs[: -args.held_out], docs[-args.held_out:]
    work = Path(tempfile.mkdtemp())
    build_tiny_qwen3_vl(work / "base", corpus=[q.text for q in bench.queries()] + [d.caption for d in docs], seed=0,
                        vision_hidden=args.vision_hidden, hidden_size=args.hidden, initializer_range=args.init,
                        num_layers=args.layers)
    _, proc = load_backbone(work / "base")
    clips = ClipStore(bench, fps=2.0, max_frames=args.max_frames)
    category = {w: c for c, words in CATEGORIES.items() for w in words}
    t0 = time.perf_counter()

    def readout(model) -> dict[str, float]:
        model.eval()
        hits = collections.defaultdict(lambda: [0, 0])
        for i in range(0, len(held), 10):
            batch = held[i:i + 10]
            enc = encode_caption_examples(proc, [clips[d.doc_id] for d in batch], [d.caption for d in batch])
            with torch.no_grad():
                logits = model(**{k: v for k, v in enc.items() if torch.is_tensor(v) and k != "labels"}, use_cache=False).logits
            pred, gold = logits[:, :-1].argmax(-1), enc["labels"][:, 1:]
            keep = gold >= 0
            for p, g in zip(pred[keep].tolist(), gold[keep].tolist()):
                c = category.get(proc.tokenizer.decode([g]).strip().lower(), "template")
                hits[c][0] += p == g
                hits[c][1] += 1
        model.train()
        return {c: round(a / n, 3) for c, (a, n) in sorted(hits.items())}

    class Report(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            if (trainer.current_epoch + 1) % args.every == 0:
                print(json.dumps({"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                                  "seconds": round(time.perf_counter() - t0), **readout(module.model)}), flush=True)

    L.seed_everything(0)
    dm = Stage1DataModule([(d.doc_id, d.caption) for d in train], clips, proc, batch_size=8, seed=0)
    module = PerceptionSFTModule(model_path=str(work / "base"), lr=args.lr, freeze_vision=args.freeze_vision,
                                 vision_lr_scale=args.vision_lr_scale)
    L.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              num_sanity_val_steps=0, callbacks=[Report()]).fit(module, dm)


if __name__ == "__main__":
    main()
