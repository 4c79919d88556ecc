"""Tracking that survives contention: a locked store is waited for, an unusable one is named in a
one-line error, a logging failure after the work is done does not fail the stage, and a run left
RUNNING by a killed process is marked KILLED."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from omegaconf import OmegaConf

from rankvideo.tracking import TrackingError, tracked_run
from rankvideo.tracking import mlflow_run


def _cfg(tmp_path):
    return OmegaConf.create({"tracking": {"enabled": True, "uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "t",
                                          "artifact_location": str(tmp_path / "art")}, "x": 1})


def _runs(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["t"], output_format="list")


def test_a_store_locked_for_a_moment_is_waited_for(tmp_path):
    with tracked_run(_cfg(tmp_path), "first"):
        pass
    conn = sqlite3.connect(tmp_path / "mlflow.db", timeout=0.1, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.5, conn.rollback).start()
    with tracked_run(_cfg(tmp_path), "second") as tr:
        tr.log_metrics({"m": 1.0})
    conn.close()
    assert {r.info.run_name: r.info.status for r in _runs(tmp_path)} == {"first": "FINISHED", "second": "FINISHED"}


def test_a_store_locked_too_long_is_one_named_error(tmp_path, monkeypatch):
    monkeypatch.setattr(mlflow_run, "RETRY_SECONDS", 0.5)
    with tracked_run(_cfg(tmp_path), "first"):
        pass
    conn = sqlite3.connect(tmp_path / "mlflow.db")
    conn.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TrackingError, match=r"mlflow\.db.*another process holds it.*tracking\.enabled=false"):
            with tracked_run(_cfg(tmp_path), "second"):
                pass
    finally:
        conn.rollback()
        conn.close()


def test_a_corrupt_store_is_named(tmp_path):
    (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(TrackingError, match=r"mlflow\.db.*unreadable or corrupt.*tracking\.enabled=false"):
        with tracked_run(_cfg(tmp_path), "stage"):
            pass


def test_logging_that_fails_after_the_work_does_not_fail_the_stage(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(mlflow_run, "RETRY_SECONDS", 0.2)
    done = tmp_path / "result.txt"
    with caplog.at_level(logging.WARNING):
        with tracked_run(_cfg(tmp_path), "stage") as tr:
            done.write_text("the stage's output")
            conn = sqlite3.connect(tmp_path / "mlflow.db")
            conn.execute("BEGIN EXCLUSIVE")
            tr.log_metrics({"m": 1.0})  # waits, then gives up with a warning
            conn.rollback()
            conn.close()
    assert done.exists() and tr.failures and "mlflow.db" in tr.failures[0]
    assert "the stage's outputs are written" in caplog.text


def test_a_run_of_a_killed_process_is_marked_killed(tmp_path):
    script = (
        "import os, sys\n"
        "from omegaconf import OmegaConf\n"
        "from rankvideo.tracking import tracked_run\n"
        f"cfg = OmegaConf.create({OmegaConf.to_container(_cfg(tmp_path))!r})\n"
        "with tracked_run(cfg, 'victim'):\n"
        "    print('started', flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "started" in p.stdout and p.returncode == -9
    assert {r.info.run_name: r.info.status for r in _runs(tmp_path)} == {"victim": "RUNNING"}
    with tracked_run(_cfg(tmp_path), "next"):
        pass
    assert {r.info.run_name: r.info.status for r in _runs(tmp_path)} == {"victim": "KILLED", "next": "FINISHED"}
