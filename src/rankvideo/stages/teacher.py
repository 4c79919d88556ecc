"""Stage `teacher`: text-teacher labels, mined negatives and filters for stage-2 training.

Paper section 3, items 3-5: a text reranker reads each pair's caption + ASR evidence and gives
p_yes = sigmoid(logit yes - logit no); its margins select trusted and hard negatives and filter
queries (see `rankvideo.teacher.mining` for the rules). Outputs, in `paths.teacher_dir`:

- `labels.jsonl`: one line per kept TRAIN pair in the official RankVideo training-record format
  (`query_id, query, doc_id, videos, true_label, teacher_p_yes, evidence, teacher_reasoning`)
  plus `teacher_margin` and `role` (positive | trusted | hard);
- `metrics.json`: mining counts (queries dropped per rule, pairs per role), the margin
  distribution, the teacher's accuracy and ROC AUC on VAL pairs (never used for fitting), and the
  nDCG@10 of the text-only reranker below next to the first stage's;
- `run_text.trec`: the teacher as a TEXT-ONLY reranker of the val and test queries' first-stage
  top `teacher.rerank_text_depth` (head by teacher margin, ties by first-stage score, then the
  untouched tail): the paper's ReasonRank comparison row;
- `calibration.json` (minilm): the calibration fitted on train pairs, reusable through
  `teacher.calibration.path`.

Pairs of a split: each query's positives (grade >= positive_min_grade) and its first-stage top
`pool_depth` candidates with grade <= negative_max_grade (unjudged counts as 0), as the stage-2
sampler draws them. Graded-but-partial candidates (1-2) are neither and are not labelled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..data.benchmark import Benchmark, VideoDoc
from ..data.trec import Qrels, Run, rank_order, read_trec_run, write_trec_run
from ..eval import evaluate
from ..eval.metrics import roc_auc
from ..models.rerank import merge_head_and_tail
from ..teacher import build_teacher, evidence_text, sigmoid
from ..teacher.mining import Candidate, MiningConfig, mine
from ..tracking import tracked_run
from ..utils.io import atomic_write_text, write_json
from ..utils.journal import open_journal, read_journal

log = logging.getLogger(__name__)

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def _pool(qrels_q: dict[str, int], ranking: list[str], depth: int, pos_min: int, neg_max: int) -> tuple[list[str], list[str]]:
    """(positives sorted by doc id, negatives in first-stage order) of one query."""
    positives = sorted(d for d, g in qrels_q.items() if g >= pos_min)
    negatives = [d for d in ranking[:depth] if qrels_q.get(d, 0) <= neg_max]
    return positives, negatives


# Teacher settings that do not change a pair's margin (they decide which pairs are judged and what
# is done with the margins): left out of the judged-pairs journal's fingerprint.
NOT_JUDGING = ("mining", "pool_depth", "rerank_text_depth", "rerank_text_splits", "positive_min_grade",
               "negative_max_grade", "calibration")


def judge_fingerprint(tc: DictConfig, calibration: Path | None = None) -> str:
    """What decides every pair's margin besides its query and evidence: the teacher's settings and,
    for a calibrated teacher, its calibration file's bytes."""
    settings = {k: v for k, v in OmegaConf.to_container(tc, resolve=True).items() if k not in NOT_JUDGING}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    if calibration is not None:
        h.update(Path(calibration).read_bytes())
    return h.hexdigest()[:16]


def _judge_pairs(teacher, pairs: list[tuple[str, str]], queries: dict[str, str], docs: dict[str, VideoDoc],
                 fields: tuple[str, ...], chunk: int = 4096, journal: Path | None = None, fingerprint: str = ""
                 ) -> tuple[dict[tuple[str, str], tuple[float, bool, str]], dict[str, int]]:
    """(qid, doc) -> (margin, says_yes, reasoning) for every distinct pair, judged in chunks so an
    LLM backend shows progress, and the counts of pairs judged and resumed. With a `journal`
    (`rankvideo.utils.journal`) each chunk's judgements are appended as they finish, and a pair
    already judged under the same fingerprint, query text and evidence text is reused, so a killed
    run loses at most the chunk in flight."""
    todo = sorted(set(pairs))
    texts = {pair: (queries[pair[0]], evidence_text(docs[pair[1]], fields)) for pair in todo}
    key = {pair: hashlib.sha256(json.dumps(texts[pair]).encode()).hexdigest()[:16] for pair in todo}
    stored: dict[str, tuple[float, bool, str]] = {}
    for lineno, row in (read_journal(journal, fingerprint) or ()) if journal is not None else ():
        try:
            stored[row["key"]] = (float(row["margin"]), bool(row["says_yes"]), str(row.get("reasoning", "")))
        except (KeyError, TypeError, ValueError):
            log.warning("%s line %d: not a judged pair; ignored", journal, lineno)
    out = {pair: stored[key[pair]] for pair in todo if key[pair] in stored}
    todo = [pair for pair in todo if pair not in out]
    counts = {"pairs_resumed": len(out), "pairs_judged_now": len(todo)}
    if out:
        log.info("teacher: %d pairs already judged (%s), %d to judge", len(out), journal, len(todo))
    fh = open_journal(journal, fingerprint) if journal is not None else None
    t0 = time.perf_counter()
    try:
        for i in range(0, len(todo), chunk):
            part = todo[i:i + chunk]
            res = teacher.judge([texts[p][0] for p in part], [texts[p][1] for p in part])
            for k, (pair, m) in enumerate(zip(part, res.margins)):
                out[pair] = (float(m), bool(res.says_yes[k]), res.reasonings[k])
                if fh is not None:
                    fh.write(json.dumps({"key": key[pair], "qid": pair[0], "doc_id": pair[1], "margin": out[pair][0],
                                         "says_yes": out[pair][1], "reasoning": out[pair][2]}, ensure_ascii=False) + "\n")
            if fh is not None:
                fh.flush()
                os.fsync(fh.fileno())
            log.info("teacher: judged %d of %d pairs (%.1f s)", min(i + chunk, len(todo)), len(todo), time.perf_counter() - t0)
    finally:
        if fh is not None:
            fh.close()
    return out, counts


def _distribution(x: np.ndarray) -> dict:
    if len(x) == 0:
        return {"n": 0}
    return {"n": int(len(x)), "mean": float(np.mean(x)), "min": float(np.min(x)), "max": float(np.max(x)),
            **{f"p{p}": float(v) for p, v in zip(PERCENTILES, np.percentile(x, PERCENTILES))}}


def _flatten(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    t_start = time.perf_counter()
    tc = cfg.teacher
    bench = Benchmark(cfg.paths.benchmark)
    first: Run = read_trec_run(cfg.paths.first_stage_run)
    out_dir = Path(cfg.paths.teacher_dir)
    docs = {d.doc_id: d for d in bench.corpus()}
    fields = tuple(tc.get("evidence_fields", ("caption", "asr")))
    if tc.get("conventions", "project") == "official" and fields != ("caption",):
        # The official teacher reads captions only (its ASR budget defaults to 0 tokens).
        log.info("teacher.conventions=official: evidence is the caption only (evidence_fields %s not used)", list(fields))
        fields = ("caption",)
    pool_depth = int(tc.pool_depth)
    pos_min, neg_max = int(tc.get("positive_min_grade", 3)), int(tc.get("negative_max_grade", 0))
    mining_cfg = MiningConfig.from_cfg(OmegaConf.to_container(tc.mining, resolve=True))
    rerank_depth = int(tc.rerank_text_depth)
    rerank_splits = list(tc.get("rerank_text_splits", ("val", "test")))

    queries_by_split = {s: bench.queries(s) for s in ("train", "val", *rerank_splits)}
    qtext = {q.qid: q.text for qs in queries_by_split.values() for q in qs}
    qrels: dict[str, Qrels] = {s: bench.qrels(s) for s in {"train", "val", *rerank_splits}}
    order = {qid: rank_order(first.get(qid, {})) for qid in qtext}

    def split_pairs(split: str) -> dict[str, tuple[list[str], list[str]]]:
        return {q.qid: _pool(qrels[split].get(q.qid, {}), order[q.qid], pool_depth, pos_min, neg_max)
                for q in queries_by_split[split]}

    train_pool, val_pool = split_pairs("train"), split_pairs("val")
    missing = {d for pools in (train_pool, val_pool) for p, n in pools.values() for d in p + n if d not in docs}
    if missing:
        raise ValueError(f"{len(missing)} judged or retrieved videos are not in {cfg.paths.benchmark}/corpus.jsonl, "
                         f"e.g. {sorted(missing)[:5]}")

    inputs = [str(cfg.paths.benchmark), str(cfg.paths.first_stage_run)]
    with tracked_run(cfg, "teacher", source=source, pipeline_cfg=pipeline_cfg, inputs=inputs) as tr:
        tr.set_tags({"config.teacher": tc.name})
        teacher = build_teacher(tc)

        # -- calibration (minilm): TRAIN pairs only, so val/test numbers stay honest ------------
        if tc.name == "minilm":
            cal = tc.calibration
            cal_path = out_dir / "calibration.json"
            if cal.get("path"):
                teacher.load_calibration(cal.path)
                log.info("minilm teacher: calibration loaded from %s", cal.path)
            else:
                qs, evs, ys = [], [], []
                for qid, (pos, neg) in sorted(train_pool.items()):
                    for d, y in [(d, 1) for d in pos] + [(d, 0) for d in neg]:
                        qs.append(qtext[qid])
                        evs.append(evidence_text(docs[d], fields))
                        ys.append(y)
                teacher.fit(qs, evs, ys, l2=float(cal.l2), balanced=bool(cal.balanced), max_iter=int(cal.max_iter))
            teacher.save(cal_path)
            tr.log_artifact(cal_path, "teacher")

        # -- judge every pair once: train pool, val pool, text-rerank heads ---------------------
        heads = {q.qid: order[q.qid][:rerank_depth] for s in rerank_splits for q in queries_by_split[s]}
        pairs = [(qid, d) for pools in (train_pool, val_pool) for qid, (p, n) in pools.items() for d in p + n]
        pairs += [(qid, d) for qid, head in heads.items() for d in head if d in docs]
        t0 = time.perf_counter()
        cal_file = out_dir / "calibration.json" if tc.name == "minilm" else None
        judged, judge_counts = _judge_pairs(teacher, pairs, qtext, docs, fields, journal=out_dir / "judged.jsonl",
                                            fingerprint=judge_fingerprint(tc, cal_file))
        judge_seconds = time.perf_counter() - t0

        # -- mining on train --------------------------------------------------------------------
        candidates = {}
        for qid, (pos, neg) in train_pool.items():
            full = first.get(qid, {})
            rank = {d: i + 1 for i, d in enumerate(order[qid])}
            candidates[qid] = [
                Candidate(doc_id=d, label=y, margin=judged[(qid, d)][0], says_yes=judged[(qid, d)][1],
                          first_stage_rank=rank.get(d), first_stage_score=full.get(d))
                for d, y in [(d, 1) for d in pos] + [(d, 0) for d in neg]
            ]
        mined, counts = mine(candidates, mining_cfg)

        records = []
        for q in queries_by_split["train"]:
            m = mined[q.qid]
            if not m.kept:
                continue
            pos, neg = train_pool[q.qid]
            for d in pos + neg:  # positives first, then negatives in first-stage order
                role = m.roles.get(d)
                if role is None:
                    continue
                margin, _, reasoning = judged[(q.qid, d)]
                doc = docs[d]
                records.append({
                    "query_id": q.qid,
                    "query": q.text,
                    "doc_id": d,
                    "videos": [str(bench.video_path(doc))],
                    "true_label": 1 if role == "positive" else 0,
                    "teacher_p_yes": float(sigmoid(margin)),
                    "teacher_margin": margin,
                    "role": role,
                    "evidence": {f: getattr(doc, f) for f in dict.fromkeys(("caption", "asr", *fields))},
                    "teacher_reasoning": reasoning,
                })
        labels_path = out_dir / "labels.jsonl"
        atomic_write_text(labels_path, lambda fh: fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records))

        # -- teacher quality on VAL pairs -------------------------------------------------------
        vy, vd, vs = [], [], []
        for qid, (pos, neg) in val_pool.items():
            for d, y in [(d, 1) for d in pos] + [(d, 0) for d in neg]:
                vy.append(y)
                vd.append(judged[(qid, d)][0])
                vs.append(judged[(qid, d)][1])
        vy, vd, vs = np.asarray(vy, bool), np.asarray(vd, float), np.asarray(vs, bool)
        val = {"pairs": int(len(vy)), "positives": int(vy.sum()),
               "accuracy": float(np.mean(vs == vy)) if len(vy) else None,
               "balanced_accuracy": float((np.mean(vs[vy]) + np.mean(~vs[~vy])) / 2) if vy.any() and (~vy).any() else None,
               "auc": roc_auc(vd, vy)}

        ty, td = [], []
        for qid, (pos, neg) in train_pool.items():
            for d, y in [(d, 1) for d in pos] + [(d, 0) for d in neg]:
                ty.append(y)
                td.append(judged[(qid, d)][0])
        ty, td = np.asarray(ty, bool), np.asarray(td, float)
        margins = {"train_positive": _distribution(td[ty]), "train_negative": _distribution(td[~ty]),
                   "val_positive": _distribution(vd[vy]), "val_negative": _distribution(vd[~vy])}

        # -- the teacher as a text-only reranker (paper: ReasonRank on captions + ASR) ----------
        text_scores = {qid: {d: judged[(qid, d)][0] for d in head if (qid, d) in judged} for qid, head in heads.items()}
        text_run = merge_head_and_tail({qid: first.get(qid, {}) for qid in heads}, text_scores, rerank_depth)
        run_path = out_dir / "run_text.trec"
        write_trec_run(run_path, text_run, tag=f"teacher_text_{tc.name}")
        rerank = {"depth": rerank_depth}
        for s in rerank_splits:
            split_qids = {q.qid for q in queries_by_split[s]}
            qr = qrels[s]
            if not any(qr.values()):
                continue
            teach = evaluate({q: text_run[q] for q in split_qids if q in text_run}, qr, measures=("nDCG@10",))
            base = evaluate({q: first[q] for q in split_qids if q in first}, qr, measures=("nDCG@10",))
            rerank[s] = {"nDCG@10": teach.mean["nDCG@10"], "first_stage_nDCG@10": base.mean["nDCG@10"],
                         "queries": teach.num_queries}

        metrics = {
            "teacher": str(tc.name),
            "evidence_fields": list(fields),
            "pool_depth": pool_depth,
            "thresholds": {"trusted_max": mining_cfg.trusted_max, "suspect_min": mining_cfg.suspect_min,
                           "first_stage_depth": mining_cfg.first_stage_depth, "max_neg_pos_ratio": mining_cfg.max_neg_pos_ratio,
                           "fallback_trusted": mining_cfg.fallback_trusted},
            "mining": counts,
            "records": len(records),
            "val": val,
            "margins": margins,
            "rerank_text": rerank,
            "pairs_judged": len(judged),
        }
        metrics_path = out_dir / "metrics.json"
        # Timings go to MLflow only: the output folder must be a function of its inputs, or DVC
        # would see a new teacher after every identical rerun.
        write_json(metrics_path, metrics)
        metrics = {**metrics, **judge_counts, "judge_seconds": round(judge_seconds, 2),
                   "seconds": round(time.perf_counter() - t_start, 2)}

        flat = _flatten({k: metrics[k] for k in ("mining", "val", "rerank_text", "records", "pairs_judged", "seconds",
                                                 "judge_seconds", "pairs_resumed", "pairs_judged_now")})
        tr.log_metrics(flat)
        for p in (labels_path, metrics_path, run_path):
            tr.log_artifact(p, "teacher")
        ndcg = {s: round(v["nDCG@10"], 4) for s, v in rerank.items() if isinstance(v, dict)}
        log.info("teacher %s: %d of %d train queries kept, %d records (%s); val accuracy %.3f, AUC %s; "
                 "text rerank nDCG@10 %s (%.1f s)", tc.name, counts["queries_kept"], counts["queries_in"], len(records),
                 counts["pairs"], val["accuracy"] or 0.0, val["auc"], ndcg, metrics["seconds"])
    return metrics
