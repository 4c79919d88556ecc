"""Evaluation speed at MultiVENT 2.0 test scale: the evaluate CLI against plain ir-measures on the
same files, side by side in one run (wall time and peak memory of each as its own process).

    python scripts/bench_eval.py [--queries 2545] [--depth 1000] [--repeat 1] [--workdir DIR]

The run and qrels are generated (seeded; scores with two decimals, so ties occur as in real runs)
into --workdir (a temporary folder by default); the CLI's MLflow store is created there by a warm-up
run first. Both sides compute the CLI's default measures and
their means are compared (RR@10 may differ where ties are ordered differently: ir-measures' RR
backend orders ties by doc id ascending, trec_eval and this project descending).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PLAIN = """
import json, sys
import ir_measures
from rankvideo.eval.metrics import DEFAULT_MEASURES
run, qrels, out = sys.argv[1:4]
measures = [ir_measures.parse_measure(m) for m in DEFAULT_MEASURES]
agg = ir_measures.calc_aggregate(measures, ir_measures.read_trec_qrels(qrels), ir_measures.read_trec_run(run))
json.dump({str(m): v for m, v in agg.items()}, open(out, "w"))
"""


def generate(folder: Path, queries: int, depth: int, seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    run, qrels = folder / "run.trec", folder / "qrels.txt"
    with open(run, "w") as f, open(qrels, "w") as g:
        for q in range(queries):
            docs = list(dict.fromkeys(f"v{rng.randrange(10**8)}" for _ in range(depth)))
            scores = sorted((round(rng.uniform(0, 10), 2) for _ in docs), reverse=True)
            f.writelines(f"q{q} Q0 {d} {i + 1} {s} bench\n" for i, (d, s) in enumerate(zip(docs, scores)))
            top = docs[: max(depth // 4, 1)]
            head = rng.sample(top, min(8, len(top)))
            rest = [d for d in docs if d not in head]
            judged = head + rng.sample(rest, min(4, len(rest))) + [f"unretrieved{q}_{k}" for k in range(4)]
            g.writelines(f"q{q} 0 {d} {rng.randrange(4)}\n" for d in judged)
    return run, qrels


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one child process; an error ends the benchmark."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def compare(queries: int, depth: int, repeat: int, folder: Path) -> dict[str, tuple[float, float]]:
    """Time each side on generated files in ``folder``; prints the table and returns
    {side: (best seconds, peak MiB)}."""
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run, qrels = generate(folder, queries, depth)
    print(f"generated {queries} queries x {depth} documents in {folder} ({time.perf_counter() - t0:.1f} s)")

    cli = [sys.executable, str(REPO / "src" / "evaluate.py"), f"run={run}", f"qrels={qrels}", f"out={folder / 'cli.json'}",
           f"paths.experiments={folder / 'experiments'}", f"hydra.run.dir={folder / 'hydra'}"]
    sides = {
        "evaluate CLI (MLflow on)": cli,
        "evaluate CLI (tracking.enabled=false)": [*cli, "tracking.enabled=false"],
        "plain ir-measures": [sys.executable, "-c", PLAIN, str(run), str(qrels), str(folder / "plain.json")],
    }
    # The MLflow store is created once beforehand (a first use creates its tables: a one-time cost).
    (folder / "warmup").mkdir(exist_ok=True)
    tiny_run, tiny_qrels = generate(folder / "warmup", 2, 8)
    timed([*cli[:2], f"run={tiny_run}", f"qrels={tiny_qrels}", *cli[5:]], folder)
    rows = {name: [timed(cmd, folder) for _ in range(repeat)] for name, cmd in sides.items()}
    best = {name: (min(s for s, _ in results), max(m for _, m in results)) for name, results in rows.items()}
    base = best["plain ir-measures"][0]
    print(f"\n{'':40s} {'seconds':>8s} {'x plain':>8s} {'peak MiB':>9s}")
    for name, (seconds, mib) in best.items():
        print(f"{name:40s} {seconds:8.1f} {seconds / base:8.2f} {mib:9.0f}")
    ours = json.loads((folder / "cli.json").read_text())
    ours = ours.get("mean", ours)
    plain = json.loads((folder / "plain.json").read_text())
    diffs = {m: (ours[m], v) for m, v in plain.items() if m in ours and abs(ours[m] - v) > 1e-9}
    print(f"\nmeans equal on {len(plain) - len(diffs)} of {len(plain)} measures" +
          (f"; differ (ties): {diffs}" if diffs else ""))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2545)
    ap.add_argument("--depth", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    compare(args.queries, args.depth, args.repeat, args.workdir or Path(tempfile.mkdtemp(prefix="bench_eval_")))


if __name__ == "__main__":
    main()
