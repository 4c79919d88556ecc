"""Sweeps on the tiny config: a Hydra multirun of `src/train.py` nested under one MLflow parent run,
stage 1 trained once per key and reused, an Optuna study that prunes, resumes, survives a failing
trial and names the command that reruns its best trial, and an `mlflow server` that lists the runs
over its REST API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import optuna
import pytest
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient

from conftest import CONF, REPO, tiny_run_cfg
from rankvideo.stages import stage_fn
from rankvideo.stages.curriculum import stage1_key
from rankvideo.stages.train import SelectionOnTestError, run as train_run
from rankvideo.tuning import run_study

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """What `dvc repro` leaves before training: benchmark, first-stage run, teacher labels, tiny model."""
    root = tmp_path_factory.mktemp("sweeps")
    cfg = tiny_run_cfg(root)
    for name in ("synthesize", "retrieve", "teacher", "build_model"):
        stage_fn(name)(cfg, source="test", pipeline_cfg=cfg)
    return root


def _base(root: Path) -> list[str]:
    return ["debug=tiny", f"paths.artifacts={root / 'artifacts'}", f"paths.experiments={root / 'experiments'}",
            "data.num_workers=1"]


def _client(root: Path) -> tuple[MlflowClient, str]:
    uri = f"sqlite:///{(root / 'experiments' / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    return client, client.get_experiment_by_name("rankvideo").experiment_id


def _children(client, exp_id, parent_id, stage="stage2"):
    return client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.`rankvideo.stage` = '{stage}'")


def _train_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "src" / "train.py"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def multirun(inputs):
    sweep_dir = inputs / "multirun"
    p = _train_cli(inputs, "-m", *_base(inputs), "loss.pairwise=0.1,0.5", f"hydra.sweep.dir={sweep_dir}")
    assert p.returncode == 0, p.stderr[-4000:]
    return inputs, sweep_dir


def test_multirun_two_jobs_under_one_parent(multirun):
    root, sweep_dir = multirun
    client, exp_id = _client(root)
    parents = client.search_runs([exp_id], filter_string="tags.`rankvideo.stage` = 'sweep'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "sweep train: loss.pairwise=0.1,0.5"
    assert json.loads((sweep_dir / "mlflow_parent_run.json").read_text()) == {"run_id": parent.info.run_id,
                                                                              "swept": ["loss.pairwise"]}
    jobs = _children(client, exp_id, parent.info.run_id)
    assert sorted(r.data.params["loss.pairwise"] for r in jobs) == ["0.1", "0.5"]
    assert sorted(r.info.run_name for r in jobs) == ["stage2 loss.pairwise=0.1", "stage2 loss.pairwise=0.5"]
    for run in jobs:
        job_dir = sweep_dir / run.data.tags["rankvideo.job"]
        # Each job in its own folder; its val metrics in MLflow are the ones written there.
        assert Path(run.data.params["paths.stage2_dir"]) == job_dir / "stage2"
        written = json.loads((job_dir / "evaluate" / "metrics.json").read_text())
        assert set(written) == {"val"}  # a sweep never evaluates test
        assert run.data.metrics["val/rerank/nDCG_at_10"] == pytest.approx(written["val"]["rerank"]["nDCG@10"])
        assert run.data.metrics["val/first_stage/nDCG_at_10"] == pytest.approx(written["val"]["first_stage"]["nDCG@10"])
        assert client.get_metric_history(run.info.run_id, "train/loss_pair")
    # Stage 1 trained once (by the first job), nested under the sweep, and reused by the second.
    stage1_runs = _children(client, exp_id, parent.info.run_id, stage="stage1")
    assert len(stage1_runs) == 1
    assert len({r.data.tags["rankvideo.stage1_dir"] for r in jobs}) == 1
    best = max(r.data.metrics["val/rerank/nDCG_at_10"] for r in jobs)
    assert parent.data.metrics["best/val/rerank/nDCG_at_10"] == pytest.approx(best)


def test_multirun_refuses_to_select_on_test(inputs, tmp_path):
    p = _train_cli(inputs, "-m", *_base(inputs), "sweep.eval_splits=[val,test]", "loss.pairwise=0.1,0.5",
                   f"hydra.sweep.dir={tmp_path / 'm'}")
    assert p.returncode != 0
    assert "selects on validation" in p.stderr and "sweep.eval_splits=[val,test]" in p.stderr


def test_stage1_key_follows_stage1_inputs_only(inputs):
    cfg = tiny_run_cfg(inputs)
    key = stage1_key(cfg)
    assert stage1_key(tiny_run_cfg(inputs, "loss.pairwise=0.3", "curriculum.stage2.lr=0.5")) == key
    assert stage1_key(tiny_run_cfg(inputs, "curriculum.stage1.lr=0.5")) != key
    assert stage1_key(tiny_run_cfg(inputs, "seed=7")) != key


def _tune_cfg(root: Path, *overrides: str):
    return compose(config_name="tune", overrides=[*_base(root), "curriculum.stage2.epochs=2", *overrides])


def test_study_prunes_resumes_and_nests_its_trials(multirun, tmp_path):
    root, _ = multirun
    base = [*_base(root), "curriculum.stage2.epochs=2"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = _tune_cfg(root, "tune.n_trials=3", "tune.study_name=t", "tune.pruner.n_startup_trials=1",
                        "tune.pruner.n_warmup_steps=0")
        first = run_study(cfg, base, tmp_path / "a")
        # Resumed in the same storage with 2 more trials; a pruner that prunes every trial at its
        # first epoch (threshold above any nDCG) makes the pruning visible.
        cfg = _tune_cfg(root, "tune.n_trials=2", "tune.study_name=t", "tune.pruner.type=threshold", "tune.pruner.lower=1.1",
                        "tune.pruner.n_warmup_steps=0")
        second = run_study(cfg, base, tmp_path / "b")
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{root / 'experiments' / 'optuna.db'}")
    assert len(study.trials) == 5
    assert sum(first["trials"].values()) == 3 and sum(second["trials"].values()) == 5
    # Trial 0 is the paper's point, enqueued; every trial reports val nDCG@10 per epoch.
    assert study.trials[0].params == {"loss.pairwise": 1.0, "loss.distill": 5.0, "loss.pointwise": 0.5}
    assert set(study.trials[0].intermediate_values) == {0, 1}
    late = study.trials[3:]
    assert [t.state for t in late] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(set(t.intermediate_values) == {0} for t in late)
    # Same TPE seed, same storage: the resumed trials continue the sequence, not repeat it.
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 5

    client, exp_id = _client(root)
    parents = client.search_runs([exp_id], filter_string="tags.`rankvideo.stage` = 'study' and tags.`optuna.study` = 't'")
    assert len(parents) == 1, "a resumed study keeps its parent run"
    parent = parents[0]
    trials = _children(client, exp_id, parent.info.run_id)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == [0, 1, 2, 3, 4]
    assert {r.data.tags["optuna.state"] for r in trials if int(r.data.tags["optuna.trial"]) >= 3} == {"PRUNED"}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value)
    assert second["best"]["number"] == best.number
    assert parent.data.metrics["best/val/rerank/nDCG_at_10"] == pytest.approx(best.value)
    assert parent.data.tags["rankvideo.best_command"] == second["best"]["command"]
    artifacts = {f.path for f in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/parallel_coordinate.png", "plots/param_importances.png"} <= artifacts
    assert (tmp_path / "b" / "best.json").exists()

    # The printed command reruns the best trial: same seed, same config, same data -> same value.
    cmd = second["best"]["command"].split()
    assert cmd[:2] == ["python", "src/train.py"] and "sweep.eval_splits" not in second["best"]["command"]
    assert second["best"]["test_command"] == second["best"]["command"] + " 'sweep.eval_splits=[val,test]'"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        job = compose(config_name="config", overrides=[*cmd[2:], f"paths.stage2_dir={tmp_path / 'rerun' / 's2'}",
                                                       f"paths.rerank_dir={tmp_path / 'rerun' / 'rr'}",
                                                       f"paths.eval_dir={tmp_path / 'rerun' / 'ev'}"])
    from omegaconf import OmegaConf

    OmegaConf.resolve(job)
    job.tracking.enabled = False
    again = train_run(job, source="test")
    assert again["eval"]["val"]["rerank"]["nDCG@10"] == pytest.approx(best.value, abs=1e-12)


def test_failing_trial_is_marked_and_the_study_goes_on(inputs, tmp_path):
    # Trial 0 gets an invalid learning rate (AdamW raises at fit): FAIL, and the next trial runs.
    base = [*_base(inputs), "curriculum.stage2.epochs=1"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="tune", overrides=[
            *base, "tune.study_name=failing", "tune.n_trials=2", "tune.pruner.type=none", "~tune.space.loss",
            "+tune.space.curriculum.stage2.lr={choices: [0.001, -1.0]}", "tune.enqueue=[{curriculum: {stage2: {lr: -1.0}}}]"])
        summary = run_study(cfg, base, tmp_path)
    study = optuna.load_study(study_name="failing", storage=f"sqlite:///{inputs / 'experiments' / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL and len(states) == 2
    assert summary["trials"]["fail"] >= 1
    client, exp_id = _client(inputs)
    failed = client.search_runs([exp_id], filter_string="tags.`optuna.study` = 'failing' and tags.`optuna.trial` = '0'")
    assert [r.info.status for r in failed] == ["FAILED"]


def test_study_refuses_other_base_overrides_and_test(inputs, tmp_path):
    base = [*_base(inputs), "curriculum.stage2.epochs=1"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="tune", overrides=[*base, "tune.study_name=guard", "tune.n_trials=0"])
        run_study(cfg, base, tmp_path / "a")
        with pytest.raises(ValueError, match="base overrides"):
            run_study(cfg, [*base, "seed=1"], tmp_path / "b")
        cfg = compose(config_name="tune", overrides=[*base, "tune.study_name=guard2", "sweep.eval_splits=[val,test]"])
        with pytest.raises(SelectionOnTestError):
            run_study(cfg, base, tmp_path / "c")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_server_lists_the_sweep_over_rest(multirun, tmp_path):
    root, _ = multirun
    port = _free_port()
    db = (root / "experiments" / "mlflow.db").resolve()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"mlflow server did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)

        def post(path, body):
            req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())

        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=rankvideo", timeout=30) as r:
            exp_id = json.loads(r.read())["experiment"]["experiment_id"]
        parents = post("runs/search", {"experiment_ids": [exp_id], "filter": "tags.`rankvideo.stage` = 'sweep'"})["runs"]
        assert len(parents) == 1
        parent_id = parents[0]["info"]["run_id"]
        jobs = post("runs/search", {"experiment_ids": [exp_id],
                                    "filter": f"tags.mlflow.parentRunId = '{parent_id}' and tags.`rankvideo.stage` = 'stage2'"})["runs"]
        params = sorted(next(p["value"] for p in r["data"]["params"] if p["key"] == "loss.pairwise") for r in jobs)
        assert params == ["0.1", "0.5"]
        assert all(any(m["key"] == "val/rerank/nDCG_at_10" for m in r["data"]["metrics"]) for r in jobs)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
