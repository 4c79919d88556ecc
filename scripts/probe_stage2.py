"""Does stage 2 learn? A long curriculum run outside the pipeline, with a learning curve.

Builds a tiny backbone, trains stage 1 (caption SFT) and then stage 2 (the paper's loss over query
groups) on a benchmark folder and a first-stage run, and after stage 1 and after every stage-2
epoch prints one JSON line: the mean of each loss term and of the training margin (positive minus
negative score) over the epoch, and the val nDCG@10 of the first-stage top `--val-depth` reranked
by the model. The first line gives the first stage's own val nDCG@10 on that head. A loss stuck at
the constant optimum (pairwise ln 3 = 1.0986 with K = 2) with a margin near 0 is the plateau.

    python scripts/probe_stage2.py --stage2-epochs 30 --groups 8 --max-frames 8
    # more training queries: build a benchmark with data.synthetic_train_queries, rank it, then
    python src/synthesize.py data.synthetic_train_queries=2400 paths.benchmark=/tmp/b tracking.enabled=false
    python src/retrieve.py paths.benchmark=/tmp/b paths.retrieve_dir=/tmp/r tracking.enabled=false
    python scripts/probe_stage2.py --benchmark /tmp/b --run /tmp/r/run.trec --no-teacher --stage2-epochs 8 --groups 8

What it measured, with the settings of each run, is in docs/findings.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default="artifacts/benchmark")
    ap.add_argument("--run", default="artifacts/retrieve/run.trec", help="first-stage TREC run")
    ap.add_argument("--teacher-labels", default="artifacts/teacher/labels.jsonl")
    ap.add_argument("--no-teacher", action="store_true", help="no distillation targets and no mining")
    ap.add_argument("--stage1-epochs", type=int, default=10)
    ap.add_argument("--stage2-epochs", type=int, default=30)
    ap.add_argument("--groups", type=int, default=8, help="query groups per stage-2 step")
    ap.add_argument("--negatives", type=int, default=2)
    ap.add_argument("--pool-depth", type=int, default=100)
    ap.add_argument("--lr1", type=float, default=2e-3)
    ap.add_argument("--lr2", type=float, default=2e-3)
    ap.add_argument("--max-frames", type=int, default=8)
    ap.add_argument("--val-depth", type=int, default=20)
    ap.add_argument("--init", type=float, default=0.02, help="initializer_range of the tiny backbone")
    ap.add_argument("--layers", type=int, default=2, help="language-model layers of the tiny backbone")
    ap.add_argument("--hidden", type=int, default=64, help="language-model width of the tiny backbone")
    ap.add_argument("--train-vision", action="store_true", help="train the vision tower too (default: frozen)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import lightning as L
    import torch

    from rankvideo.data.benchmark import Benchmark
    from rankvideo.data.clips import ClipStore
    from rankvideo.modules.datamodules import Stage1DataModule, Stage2DataModule
    from rankvideo.data.samplers import GroupSampler, GroupSpec, caption_targets
    from rankvideo.data.trec import rank_order, read_trec_run
    from rankvideo.eval import evaluate
    from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone
    from rankvideo.modules import PerceptionSFTModule, RerankingModule

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    def emit(**row):
        print(json.dumps({**row, "seconds": round(time.perf_counter() - t0)}), flush=True)

    bench = Benchmark(args.benchmark)
    first = read_trec_run(args.run)
    captions = {d.doc_id: d.caption for d in bench.corpus()}
    train_q, val_q, qrels = bench.queries("train"), bench.queries("val"), bench.qrels()
    work = Path(tempfile.mkdtemp())
    build_tiny_qwen3_vl(work / "base", corpus=[q.text for q in bench.queries()] + list(captions.values()), seed=0,
                        initializer_range=args.init, num_layers=args.layers, hidden_size=args.hidden)
    _, proc = load_backbone(work / "base")
    clips = ClipStore(bench, fps=2.0, max_frames=args.max_frames)
    quiet = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                 num_sanity_val_steps=0, enable_model_summary=False)
    frozen = not args.train_vision
    L.seed_everything(0)

    s1 = PerceptionSFTModule(model_path=str(work / "base"), lr=args.lr1, freeze_vision=frozen)
    trainer = L.Trainer(max_epochs=args.stage1_epochs, **quiet)
    trainer.fit(s1, Stage1DataModule(caption_targets(train_q, qrels, captions), clips, proc, batch_size=8, seed=0))
    s1.export(work / "stage1", proc)

    teacher, allowed = {}, None
    if not args.no_teacher:
        allowed = {}
        with open(args.teacher_labels, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                teacher[(row["query_id"], row["doc_id"])] = float(row["teacher_p_yes"])
                allowed.setdefault(row["query_id"], set()).add(row["doc_id"])
    heads = {q.qid: rank_order(first.get(q.qid, {}))[: args.val_depth] for q in val_q}
    val_pairs = sorted(((q.qid, d, q.text) for q in val_q for d in heads[q.qid]), key=lambda p: (p[1], p[0]))
    val_qrels = bench.qrels("val")
    base = evaluate({q: {d: first[q][d] for d in h} for q, h in heads.items()}, val_qrels, measures=("nDCG@10",))
    sampler = GroupSampler(train_q, qrels, first, GroupSpec(num_negatives=args.negatives, pool_depth=args.pool_depth),
                           seed=0, teacher=teacher, allowed=allowed)
    dm = Stage2DataModule(sampler, clips, proc, batch_size=args.groups, val_pairs=val_pairs)
    s2 = RerankingModule(model_path=str(work / "stage1"), loss={}, val_qrels=val_qrels, lr=args.lr2, freeze_vision=frozen)
    emit(event="start", first_stage_val_ndcg10=round(base.mean["nDCG@10"], 4), train_groups=len(sampler),
         stage1_steps=trainer.global_step)

    class Curve(L.Callback):
        def __init__(self):
            self.sums: dict[str, list[float]] = {}

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            for k, v in trainer.callback_metrics.items():
                if k.startswith("train/"):
                    self.sums.setdefault(k[6:], []).append(float(v))

        def on_train_epoch_end(self, trainer, module):
            means = {k: round(sum(v) / len(v), 4) for k, v in self.sums.items()}
            self.sums = {}
            emit(event="epoch", epoch=trainer.current_epoch + 1, step=trainer.global_step,
                 val_ndcg10=round(float(trainer.callback_metrics.get("val/ndcg@10", float("nan"))), 4), **means)

    trainer2 = L.Trainer(max_epochs=args.stage2_epochs, reload_dataloaders_every_n_epochs=1, callbacks=[Curve()], **quiet)
    emit(event="stage1_only", val_ndcg10=round(float(trainer2.validate(s2, dm, verbose=False)[0]["val/ndcg@10"]), 4))
    trainer2.fit(s2, dm)


if __name__ == "__main__":
    main()
