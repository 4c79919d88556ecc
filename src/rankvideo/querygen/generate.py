"""The (video, evidence variant) loop that writes generated training queries, and their merge into
a benchmark folder.

Jobs: a seeded plan of `count` (video, variant) pairs: videos in a seeded order (each video once
before any repeats), the variant drawn from the `synthesis.variants` mix. A job whose variant has
no evidence for its video is dropped as `no_evidence` without asking the model.

Resume: every answer is appended to `<work_dir>/answers.jsonl` (`rankvideo.utils.journal`) under a
key hashing the prompt, the seed and the generator's settings, in chunks of `batch_size` jobs, and
an answer already there is reused, so a killed run loses at most the chunk in flight. Parsing and
near-duplicate removal run over all answers in job order afterwards, so a resumed run keeps exactly
the queries of an uninterrupted one.

Output (`write_generated`): `queries.jsonl` (benchmark query records: qid `s00000`..., text, split
train, variant, qtype `generated`, source_doc), `queries_train.tsv` (`qid<TAB>text`, the official
queries format), `qrels_train.trec` (the source video as relevant) and `drops.json` (counts per
drop reason), each written atomically. `merge_into_benchmark` adds the same queries to a benchmark
folder, so the filters, the teacher and the mining read them as any training query.
"""

from __future__ import annotations

import hashlib
import os
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..data.trec import read_qrels, write_qrels
from ..utils.io import atomic_write_text, progress, write_json
from ..utils.journal import append, open_journal, read_journal
from .evidence import SOURCE_NAMES, VARIANTS, Proxies, evidence_text
from .parse import DROP_REASONS, ParseConfig, QueryFilter

log = logging.getLogger(__name__)

_PLAN_STREAM = 15  # the seeded plan's own random stream

DEFAULT_SYSTEM = "You write short search queries for a news video search engine."
DEFAULT_USER = ("Here is {source} of a news video:\n{evidence}\n\n"
                "Write one search query of 5 to 15 words that someone would type to find this video. "
                "Do not copy sentences from the text. Answer with the query only.")


@dataclass(frozen=True)
class Job:
    index: int
    doc_id: str
    variant: str


def plan_jobs(doc_ids: list[str], variants: Mapping[str, float], count: int, seed: int) -> list[Job]:
    """`count` (video, variant) jobs: videos in a seeded order, variants drawn by weight."""
    bad = set(variants) - set(VARIANTS)
    if bad:
        raise ValueError(f"synthesis.variants has unknown evidence variants {sorted(bad)}; choose from {list(VARIANTS)}")
    names = [v for v in VARIANTS if float(variants.get(v, 0)) > 0]
    if not names:
        raise ValueError("synthesis.variants: at least one evidence variant needs a positive weight")
    if not doc_ids:
        raise ValueError("no videos to write queries for")
    w = np.array([float(variants[v]) for v in names])
    rng = np.random.default_rng([int(seed), _PLAN_STREAM])
    order = [doc_ids[int(i)] for i in rng.permutation(len(doc_ids))]
    picks = rng.choice(len(names), size=int(count), p=w / w.sum())
    return [Job(i, order[i % len(order)], names[int(picks[i])]) for i in range(int(count))]


def messages_for(variant: str, evidence: str, prompt: Mapping | None = None) -> list[dict]:
    prompt = prompt or {}
    system = str(prompt.get("system") or DEFAULT_SYSTEM)
    user = str(prompt.get("user") or DEFAULT_USER).format(source=SOURCE_NAMES[variant], evidence=evidence, variant=variant)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def settings_fingerprint(gc: Mapping) -> str:
    """What decides an answer besides the prompt and the seed: the generator's model and decoding."""
    keys = ("name", "model", "file", "sha256", "max_new_tokens", "do_sample", "temperature", "top_p", "dtype")
    return hashlib.sha256(json.dumps({k: gc.get(k) for k in keys}, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _answer_key(msgs: list[dict], seed: int) -> str:
    return hashlib.sha256(json.dumps([msgs, seed], ensure_ascii=False).encode()).hexdigest()[:20]


def generate_answers(jobs: list[Job], proxies: Mapping[str, Proxies], make_generator: Callable[[], object], gc: Mapping,
                     work_dir: str | Path, *, seed: int, batch_size: int = 8) -> tuple[dict[int, str], dict[int, str], dict]:
    """(job index -> raw answer, job index -> evidence, counts) for every job with evidence; the
    generator is built (by `make_generator`) only when some answer is not in the journal."""
    journal = Path(work_dir) / "answers.jsonl"
    fp = settings_fingerprint(gc)
    prompt = gc.get("prompt") or {}
    todo, evidence, msgs, keys = [], {}, {}, {}
    for job in jobs:
        ev = evidence_text(proxies[job.doc_id], job.variant)
        if not ev:
            continue
        evidence[job.index] = ev
        msgs[job.index] = messages_for(job.variant, ev, prompt)
        keys[job.index] = _answer_key(msgs[job.index], seed + job.index)
        todo.append(job)
    stored: dict[str, str] = {}
    for lineno, row in read_journal(journal, fp) or ():
        if isinstance(row.get("key"), str) and isinstance(row.get("answer"), str):
            stored[row["key"]] = row["answer"]
        else:
            log.warning("%s line %d: not a generated answer; ignored", journal, lineno)
    answers = {j.index: stored[keys[j.index]] for j in todo if keys[j.index] in stored}
    todo = [j for j in todo if j.index not in answers]
    counts = {"answers_resumed": len(answers), "answers_generated_now": len(todo)}
    if answers:
        log.info("generate_queries: %d answers already in %s, %d to generate", len(answers), journal, len(todo))
    if todo:
        gen = make_generator()
        bar = progress(len(todo), "generate queries", "query")
        with open_journal(journal, fp) as fh:
            for i in range(0, len(todo), batch_size):
                part = todo[i:i + batch_size]
                outs = gen.generate([msgs[j.index] for j in part], [seed + j.index for j in part])
                for j, text in zip(part, outs):
                    answers[j.index] = str(text)
                    append(fh, {"key": keys[j.index], "job": j.index, "doc_id": j.doc_id, "variant": j.variant,
                                "answer": answers[j.index]}, sync=False)
                os.fsync(fh.fileno())
                bar.update(len(part))
        bar.close()
    return answers, evidence, counts


def select_queries(jobs: list[Job], answers: Mapping[int, str], evidence: Mapping[int, str], parse_cfg: ParseConfig,
                   *, existing: list[str] = (), prefix: str = "s") -> tuple[list[dict], dict[str, int]]:
    """Query records of the accepted answers (in job order, ids `<prefix>00000`...) and the drop
    counts per reason. `existing` texts (the benchmark's own queries) count as kept already, so a
    near-copy of one of them is a duplicate."""
    filt = QueryFilter(parse_cfg)
    for text in existing:
        filt.remember(text)
    rows = []
    for job in jobs:
        if job.index not in answers:
            filt.drop("no_evidence")
            continue
        query, _ = filt(answers[job.index], evidence[job.index])
        if query is None:
            continue
        rows.append({"qid": f"{prefix}{len(rows):05d}", "text": query, "split": "train", "variant": job.variant,
                     "qtype": "generated", "source_doc": job.doc_id, "job": job.index})
    drops = {r: filt.drops.get(r, 0) for r in DROP_REASONS}
    return rows, drops


def write_generated(out_dir: str | Path, rows: list[dict], drops: Mapping[str, int], grade: int, summary: Mapping) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "queries.jsonl", lambda fh: fh.writelines(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                                                                      for r in rows))
    atomic_write_text(out / "queries_train.tsv", lambda fh: fh.writelines(f"{r['qid']}\t{r['text']}\n" for r in rows))
    write_qrels(out / "qrels_train.trec", {r["qid"]: {r["source_doc"]: grade} for r in rows})
    write_json(out / "drops.json", {"drops": dict(drops), **summary})


def merge_into_benchmark(bench_dir: str | Path, rows: list[dict], grade: int, summary: Mapping) -> dict:
    """Add generated train queries to a benchmark folder (queries.jsonl, queries_train.tsv,
    qrels_train.trec, qrels.trec, manifest.json; each rewritten atomically). Returns the manifest."""
    from ..data.synthetic.build import _digest

    root = Path(bench_dir)
    qpath = root / "queries.jsonl"
    lines = qpath.read_text(encoding="utf-8").splitlines() if qpath.exists() else []
    taken = {json.loads(ln)["qid"] for ln in lines if ln.strip()}
    clash = sorted(taken & {r["qid"] for r in rows})
    if clash:
        raise ValueError(f"{qpath}: generated query ids {clash[:3]} already exist (e.g. templated synthetic_train_queries); "
                         "generated queries replace them: set synthesis.queries=generator on a fresh build")
    new = [json.dumps({k: v for k, v in r.items() if k != "job"}, ensure_ascii=False, sort_keys=True) for r in rows]
    atomic_write_text(qpath, lambda fh: fh.writelines(ln + "\n" for ln in [*lines, *new]))
    tsv = root / "queries_train.tsv"
    old = tsv.read_text(encoding="utf-8") if tsv.exists() else ""
    atomic_write_text(tsv, lambda fh: fh.write(old + "".join(f"{r['qid']}\t{r['text']}\n" for r in rows)))
    gen_qrels = {r["qid"]: {r["source_doc"]: grade} for r in rows}
    for name in ("qrels_train.trec", "qrels.trec"):
        qrels = read_qrels(root / name) if (root / name).exists() else {}
        write_qrels(root / name, {**qrels, **gen_qrels})
    mpath = root / "manifest.json"
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {}
    counts = dict(manifest.get("num_queries", {}))
    counts["train"] = int(counts.get("train", 0)) + len(rows)
    manifest.update({"num_queries": counts, "generated_queries": {"count": len(rows), **summary}})
    manifest["sha256"] = _digest(root)
    write_json(mpath, manifest)
    return manifest


def run_generation(corpus: list, gc: Mapping, variants: Mapping[str, float], *, count: int, seed: int, work_dir: str | Path,
                   existing: list[str] = (), make_generator: Callable[[], object] | None = None) -> tuple[list[dict], dict, dict]:
    """Plan, generate (resumable) and select: (query rows, drop counts, generation counts)."""
    from .evidence import load_proxies
    from .generators import build_generator

    proxies = load_proxies(corpus, gc.get("proxies_dir"))
    jobs = plan_jobs(sorted(proxies), variants, count, seed)
    answers, evidence, counts = generate_answers(jobs, proxies, make_generator or (lambda: build_generator(gc)), gc, work_dir,
                                                 seed=seed, batch_size=int(gc.get("batch_size", 8)))
    rows, drops = select_queries(jobs, answers, evidence, ParseConfig.from_mapping(gc.get("parse")), existing=existing)
    log.info("generate_queries: %d of %d jobs kept; dropped %s", len(rows), len(jobs), {k: v for k, v in drops.items() if v})
    return rows, drops, {"jobs": len(jobs), "kept": len(rows), **counts}
