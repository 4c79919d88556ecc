"""MLflow tracking for every entry point.

One context manager, `tracked_run(cfg, stage)`, opens an MLflow run and records what makes a number
reproducible:

- the fully resolved config: flattened as params (logged once) and as `config.yaml` artifact;
- the code: git commit and a dirty flag (plus the diff of tracked files when dirty);
- the data: DVC hashes of the stage's inputs (from `dvc.lock`, the hashes DVC itself computed) and
  the fingerprint of the raw-data folder (`data.dvc`);
- the environment: Python and package versions (tags for the key ones, a JSON artifact for all);
- grouping: every run carries `rankvideo.pipeline`, a key derived from the commit and the resolved
  config of the whole pipeline, so the stage runs of one `dvc repro` are found together with the
  filter `tags.rankvideo.pipeline = '<key>'`. Runs of a sweep (a Hydra multirun, an Optuna study)
  are nested under one parent run: `run_context(parent_run_id=...)` around the stage code, and
  `open_parent_run` / `close_parent_run` for the parent itself.

The store is always set explicitly (`tracking.uri`, by default a sqlite file under
`experiments/`): MLflow 3 refuses the old folder store, and an implicit default silently changes
with the working directory.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib.metadata as md
import json
import logging
import os
import sys
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml
from omegaconf import DictConfig, OmegaConf

from ..utils.io import absolute_sqlite_url

log = logging.getLogger(__name__)

KEY_PACKAGES = (
    "torch", "torchvision", "transformers", "peft", "lightning", "hydra-core", "omegaconf", "mlflow",
    "dvc", "optuna", "ir-measures", "pytrec-eval-terrier", "bm25s", "av", "numpy",
)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become their JSON text."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def git_state() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    # Only tracked files count (DVC outputs and the MLflow store are untracked by design), and not
    # the records DVC rewrites while `dvc repro` runs: dvc.lock, and params.yaml, which is composed
    # from conf/ (an edit there shows up as conf/ being dirty).
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!params.yaml")
    return {
        "commit": commit.strip() if commit else "unknown",
        "dirty": bool(status.strip()) if status is not None else None,
    }


def package_versions() -> dict[str, str]:
    versions = {d.metadata["Name"].lower(): d.version for d in md.distributions() if d.metadata["Name"]}
    versions["python"] = platform.python_version()
    return dict(sorted(versions.items()))


def data_versions(inputs: list[str] | None = None, lock: str | Path = "dvc.lock", raw: str | Path = "data.dvc") -> dict[str, str]:
    """DVC hashes of `inputs` as `dvc.lock` records them (the upstream stage's outs), plus the
    fingerprint of the raw-data folder from `data.dvc`. Inputs DVC does not know yet (a CLI run on
    fresh outputs) get a sha256 of their content instead, marked as such."""
    out: dict[str, str] = {}
    lock_outs: dict[str, str] = {}
    if Path(lock).exists():
        doc = yaml.safe_load(Path(lock).read_text()) or {}
        for stage in (doc.get("stages") or {}).values():
            for o in stage.get("outs", []) or []:
                lock_outs[os.path.normpath(o["path"])] = o.get("md5") or o.get("hash", "")
    if Path(raw).exists():
        doc = yaml.safe_load(Path(raw).read_text()) or {}
        for o in doc.get("outs", []) or []:
            out[f"raw:{o['path']}"] = o.get("md5", "")
    for p in inputs or []:
        if not p:
            raise ValueError("data_versions: an empty input path (it would hash the working directory)")
        key = os.path.normpath(p)
        # An input inside a folder that a stage outputs (artifacts/retrieve/run.trec inside
        # artifacts/retrieve) is versioned by that folder's DVC hash.
        owner = next((o for o in sorted(lock_outs, key=len, reverse=True) if key == o or key.startswith(o + os.sep)), None)
        if owner is not None:
            out[owner] = lock_outs[owner]
        elif Path(p).exists():
            out[key] = "sha256:" + _content_hash(Path(p))
    return out


def _content_hash(p: Path) -> str:
    h = hashlib.sha256()
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:32]


def pipeline_key(cfg: DictConfig, commit: str) -> str:
    """Same commit + same resolved config => same key: the runs of one `dvc repro` share it."""
    blob = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True, default=str)
    return hashlib.sha256(f"{commit}\n{blob}".encode()).hexdigest()[:12]


# Set by a sweep around the code of one job: the parent run to nest under, extra tags.
_CONTEXT: contextvars.ContextVar[dict] = contextvars.ContextVar("rankvideo_run_context", default={})


@contextlib.contextmanager
def run_context(parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None,
                name_suffix: str | None = None) -> Iterator[None]:
    """Every `tracked_run` opened inside is nested under `parent_run_id` (MLflow's
    `mlflow.parentRunId` tag, which works across processes), carries `tags`, and is named
    `<stage> <name_suffix>` (a sweep job's overrides, say, so the UI's run list reads them)."""
    outer = _CONTEXT.get()
    merged = {"parent_run_id": parent_run_id or outer.get("parent_run_id"),
              "tags": {**outer.get("tags", {}), **dict(tags or {})},
              "name_suffix": name_suffix or outer.get("name_suffix")}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class TrackingError(RuntimeError):
    """The MLflow store cannot be used; the message names it and says how to run without it."""


# How long a stage waits for a store that another process holds (a UI, a parallel sweep job).
RETRY_SECONDS = 60.0


def _is_lock(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def _retrying(fn, what: str, uri: str, *, seconds: float | None = None):
    """`fn()`, retried with backoff while the store is locked by another process; a store that
    stays locked, or any other store failure, becomes a TrackingError naming the store."""
    import time

    deadline = time.monotonic() + (RETRY_SECONDS if seconds is None else seconds)
    delay = 0.2
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - MLflow and SQLAlchemy raise many kinds
            if _is_lock(exc) and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            cause = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            hint = ("another process holds it (an MLflow UI, a parallel job); close it or wait" if _is_lock(exc)
                    else "the store is unreadable or corrupt; move it aside to start a new one")
            raise TrackingError(f"MLflow store {uri}: {what} failed ({type(exc).__name__}: {cause}); {hint}, "
                                "or run without tracking: tracking.enabled=false") from exc


class StageRun:
    """What a stage sees of its MLflow run: metrics, artifacts, tags. A no-op when tracking is
    disabled, so stage code never branches on it. Logging waits for a locked store; if the store
    still fails, the failure is logged and the stage goes on: its outputs are on disk already, and
    a tracking problem must not turn finished work into a failed command."""

    def __init__(self, mlflow_mod=None, run_id: str | None = None, uri: str = ""):
        self._mlflow = mlflow_mod
        self.run_id = run_id
        self.uri = uri
        self.failures: list[str] = []

    def _log(self, what: str, fn) -> None:
        try:
            _retrying(fn, what, self.uri)
        except TrackingError as e:
            self.failures.append(str(e))
            log.warning("%s (the stage's outputs are written; rerun it to log them)", e)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._mlflow:
            clean = {_metric_key(k): float(v) for k, v in metrics.items() if v is not None}
            self._log("logging metrics", lambda: self._mlflow.log_metrics(clean, step=step))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._mlflow and Path(path).exists():
            if Path(path).is_dir():
                self._log("logging artifacts", lambda: self._mlflow.log_artifacts(str(path), artifact_path=artifact_path))
            else:
                self._log("logging an artifact", lambda: self._mlflow.log_artifact(str(path), artifact_path=artifact_path))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self._mlflow:
            self._log("setting tags", lambda: self._mlflow.set_tags({k: str(v) for k, v in tags.items()}))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_runs(client, exp_id: str) -> list[str]:
    """Runs left RUNNING by a process of this host that no longer exists (killed: SIGKILL, power
    loss) are marked KILLED; returns their ids. Runs without a process tag (sweep parents, which
    stay open across processes) are left alone."""
    host = platform.node()
    dead = []
    for run in client.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        pid = tags.get("rankvideo.pid")
        if pid and tags.get("rankvideo.host") == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            dead.append(run.info.run_id)
    if dead:
        log.warning("marked %d MLflow runs KILLED: their process on this host is gone (%s)", len(dead), ", ".join(dead))
    return dead


def _cpu_numerics() -> dict:
    """What decides CPU floating-point bytes besides the seed (see rankvideo.utils.numerics); empty
    for a stage that never imported torch (importing it only to tag would slow evaluation)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    return {"cpu.machine": platform.machine(), "cpu.threads": torch.get_num_threads(),
            "cpu.kernels": torch.backends.cpu.get_cpu_capability()}


def _global_rank() -> int:
    """This process's global rank: Lightning's, when Lightning is loaded (it may have set it),
    else read from the launcher's environment as Lightning reads it (the first of RANK, LOCAL_RANK,
    SLURM_PROCID, JSM_NAMESPACE_RANK); 0 in a single process. Stages that train nothing (evaluate)
    do not import Lightning for it."""
    loaded = sys.modules.get("lightning.fabric.utilities.rank_zero")
    if loaded is not None:
        return int(getattr(loaded.rank_zero_only, "rank", 0) or 0)
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def _metric_key(k: str) -> str:
    # MLflow metric names allow letters, digits, _ - . / and spaces; '@' is not allowed.
    return k.replace("@", "_at_")


def _experiment(tcfg) -> tuple[str, str, str]:
    """Point MLflow at the configured store; (uri, experiment name, experiment id), created with
    its artifact location on first use. A locked store is waited for; an unusable one is a
    TrackingError naming it."""
    import mlflow

    uri = absolute_sqlite_url(str(tcfg.uri))
    mlflow.set_tracking_uri(uri)
    name = str(tcfg.experiment)

    def get_or_create() -> str:
        exp = mlflow.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = Path(str(tcfg.artifact_location)).resolve()
        location.mkdir(parents=True, exist_ok=True)
        return mlflow.create_experiment(name, artifact_location=location.as_uri())

    return uri, name, _retrying(get_or_create, f"opening experiment {name!r}", uri)


def open_parent_run(cfg: DictConfig, name: str, *, tags: Mapping[str, Any] | None = None,
                    params: Mapping[str, Any] | None = None, run_id: str | None = None) -> str | None:
    """Open (or, with `run_id`, reopen) the parent run of a sweep; returns its id, None when
    tracking is off. The parent stays RUNNING while its children run, in this process or others;
    `close_parent_run` ends it. Uses the client API, so it never becomes the active run of this
    process (the children's runs are opened next to it, nested by tag)."""
    tcfg = cfg.get("tracking")
    if tcfg is None or not tcfg.get("enabled", True) or _global_rank() != 0:
        return None
    from mlflow import MlflowClient

    uri, _, exp_id = _experiment(tcfg)
    client = MlflowClient(uri)
    if run_id:
        client.update_run(run_id, status="RUNNING")
        return run_id
    git = git_state()
    all_tags = {"rankvideo.source": "sweep", "mlflow.source.git.commit": git["commit"], "git.dirty": git["dirty"],
                **dict(tags or {})}
    run = client.create_run(exp_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
    for k, v in (params or {}).items():
        client.log_param(run.info.run_id, k, str(v)[:6000])
    return run.info.run_id


def close_parent_run(cfg: DictConfig, run_id: str | None, *, status: str = "FINISHED",
                     metrics: Mapping[str, float] | None = None, tags: Mapping[str, Any] | None = None,
                     artifacts: Mapping[str, str | Path] | None = None) -> None:
    """Log the sweep's summary into its parent run and end it. `artifacts`: file -> folder in the run."""
    if not run_id:
        return
    from mlflow import MlflowClient

    uri, _, _ = _experiment(cfg.tracking)
    client = MlflowClient(uri)
    for k, v in (metrics or {}).items():
        if v is not None:
            client.log_metric(run_id, _metric_key(k), float(v))
    for k, v in (tags or {}).items():
        client.set_tag(run_id, k, str(v))
    for path, folder in (artifacts or {}).items():
        if Path(path).exists():
            client.log_artifact(run_id, str(path), artifact_path=str(folder) if folder else None)
    client.set_terminated(run_id, status=status)


@contextlib.contextmanager
def tracked_run(cfg: DictConfig, stage: str, *, inputs: list[str] | None = None, source: str = "cli",
                pipeline_cfg: DictConfig | None = None, resume_file: str | Path | None = None) -> Iterator[StageRun]:
    """Open an MLflow run for one stage; always closed, marked FAILED if the stage raises.

    With `resume_file` (a long stage's checkpoint folder keeps it): the run id is written there,
    and a later call that finds the file continues that run (a resumed training keeps one MLflow
    run) instead of opening a new one; its params are not logged again."""
    tcfg = cfg.get("tracking")
    if tcfg is None or not tcfg.get("enabled", True):
        log.info("tracking disabled: no MLflow run for stage %s", stage)
        yield StageRun()
        return
    if _global_rank() != 0:
        # Multi-process training (DDP/FSDP): one MLflow run per stage, opened by global rank 0.
        yield StageRun()
        return

    import mlflow

    uri, name, exp_id = _experiment(tcfg)
    git = git_state()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tags = {
        "rankvideo.stage": stage,
        "rankvideo.source": source,
        "rankvideo.pipeline": pipeline_key(pipeline_cfg if pipeline_cfg is not None else cfg, git["commit"]),
        "mlflow.source.git.commit": git["commit"],
        "git.dirty": git["dirty"],
        "python": platform.python_version(),
        "rankvideo.pid": os.getpid(),
        "rankvideo.host": platform.node(),
        **_cpu_numerics(),
    }
    versions = package_versions()
    for p in KEY_PACKAGES:
        if p in versions:
            tags[f"pkg.{p}"] = versions[p]
    dv = data_versions(inputs)
    for k, v in dv.items():
        tags[f"data.{k}"] = v
    for group in ("data", "synthesis", "retrieval", "rerank", "eval"):
        node = resolved.get(group) if isinstance(resolved, dict) else None
        if isinstance(node, dict) and "name" in node:
            tags[f"config.{group}"] = node["name"]
    context = _CONTEXT.get()
    tags.update(context.get("tags", {}))
    if context.get("parent_run_id"):
        tags["mlflow.parentRunId"] = context["parent_run_id"]

    from mlflow import MlflowClient

    _retrying(lambda: mark_dead_runs(MlflowClient(uri), exp_id), "checking for runs of killed processes", uri)
    resumed = None
    if resume_file is not None and Path(resume_file).exists():
        resumed = Path(resume_file).read_text().strip() or None
    if resumed:
        run = _retrying(lambda: mlflow.start_run(run_id=resumed), f"reopening run {resumed}", uri)
        _retrying(lambda: mlflow.set_tags({"rankvideo.resumed": "true", "rankvideo.pid": os.getpid(),
                                           "rankvideo.host": platform.node()}), "tagging the run", uri)
        log.info("continuing MLflow run %s (stage %s)", resumed, stage)
    else:
        suffix = context.get("name_suffix")
        run = _retrying(lambda: mlflow.start_run(experiment_id=exp_id, run_name=f"{stage} {suffix}" if suffix else stage,
                                                 tags={k: str(v) for k, v in tags.items()}), "starting a run", uri)
        if resume_file is not None:
            Path(resume_file).parent.mkdir(parents=True, exist_ok=True)
            Path(resume_file).write_text(run.info.run_id)
    status = "FAILED"
    stage_run = StageRun(mlflow, run.info.run_id, uri)
    try:
        if not resumed:
            params = {k: ("None" if v is None else v) for k, v in flatten(resolved).items()}
            # MLflow caps a param value at 6000 characters and a batch at 100 params.
            items = [(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                _retrying(lambda: mlflow.log_params(dict(items[i:i + 100])), "logging params", uri)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            (Path(tmp) / "packages.json").write_text(json.dumps(versions, indent=1))
            (Path(tmp) / "data_versions.json").write_text(json.dumps(dv, indent=1))
            if git["dirty"]:
                (Path(tmp) / "git_diff.patch").write_text(_git("diff", "HEAD") or "")
            stage_run.log_artifact(tmp, "run_info")
        log.info("MLflow run %s (stage %s) in experiment %r at %s", run.info.run_id, stage, name, uri)
        yield stage_run
        status = "FINISHED"
    finally:
        try:
            _retrying(lambda: mlflow.end_run(status=status), "closing the run", uri)
        except TrackingError as e:
            if status == "FINISHED":  # the stage's work is done and written: say so, do not fail it
                log.warning("%s; the run stays RUNNING until the next stage marks it", e)
            else:
                raise
