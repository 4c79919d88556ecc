"""Screenshot of the MLflow UI comparing the jobs of the latest sweep (the picture in docs/sweeps.md).

    python scripts/screenshot_compare.py [--out docs/mlflow_compare.png] [--chromium /usr/bin/chromium]

Starts `mlflow ui` on the project's store (127.0.0.1, a free port, the fast-start flags), finds the
newest parent run (a multirun or a study) and its stage-2 children, and has headless Chromium
render the compare view of those runs. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "mlflow_compare.png"))
    ap.add_argument("--store", default=str(ROOT / "experiments" / "mlflow.db"))
    ap.add_argument("--parent-stage", default="sweep", choices=["sweep", "study"], help="which kind of parent run to show")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    ap.add_argument("--size", default="1600,1000")
    args = ap.parse_args()

    from mlflow import MlflowClient

    uri = f"sqlite:///{Path(args.store).resolve()}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("rankvideo")
    if exp is None:
        sys.exit(f"{args.store}: no experiment 'rankvideo' (run a sweep first)")
    parents = client.search_runs([exp.experiment_id], f"tags.`rankvideo.stage` = '{args.parent_stage}'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        sys.exit(f"no {args.parent_stage} parent run in {args.store}")
    parent = parents[0]
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' "
                                  "and tags.`rankvideo.stage` = 'stage2'", max_results=50)
    ids = [r.info.run_id for r in children if "val/rerank/nDCG_at_10" in r.data.metrics]
    if len(ids) < 2:
        sys.exit(f"parent {parent.info.run_name!r} has fewer than two evaluated jobs")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("mlflow ui did not start")
                time.sleep(0.5)
        query = urllib.parse.urlencode({"runs": json.dumps(ids), "experiments": json.dumps([exp.experiment_id])})
        url = f"http://127.0.0.1:{port}/#/compare-runs?{query}"
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={args.size}", "--virtual-time-budget=20000", f"--screenshot={args.out}", url],
                       check=True, capture_output=True, timeout=180)
        print(f"{args.out}: compare view of {len(ids)} runs under {parent.info.run_name!r}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
