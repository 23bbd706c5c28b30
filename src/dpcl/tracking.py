"""MLflow on the project's embedded store (sqlite), safe when Snakemake trains in parallel.

Why a lock: MLflow creates and migrates a sqlite store on first use, and two processes doing
so at once crash (DESIGN.md section 7); concurrent writers can also meet "database is
locked". Every call that touches a sqlite store therefore holds an exclusive file lock
beside the database. Calls are few (one per epoch), so the lock costs nothing measurable.
A server URI (http://...) needs no lock. Model code never imports this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator, Mapping

from dpcl.config import TrackingConfig
from dpcl.errors import DpclError

log = logging.getLogger(__name__)
LOCK_TIMEOUT_S = 120.0


class TrackingError(DpclError):
    """The tracking store cannot be reached or stays locked."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative to the working directory), else None."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def check_store_writable(db: Path) -> None:
    """Stop with one line naming the file when a sqlite store cannot be written.

    Why before MLflow opens it: a read-only mlflow.db otherwise surfaces as ~30 lines of
    SQLAlchemy and sqlite errors from deep inside MLflow, none of which names the file. sqlite
    also writes a journal beside the database, so its folder must be writable too.
    """
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrackingError(f"cannot create the MLflow store's folder {db.parent}: {error.strerror}") from None
    if db.exists() and not os.access(db, os.W_OK):
        raise TrackingError(f"the MLflow store {db} is read-only: make it writable (chmod u+w {db}) "
                            "or point tracking.uri at another store")
    if not os.access(db.parent, os.W_OK | os.X_OK):
        raise TrackingError(f"the MLflow store {db} sits in a read-only folder ({db.parent}), where sqlite "
                            "cannot write its journal: make the folder writable or point tracking.uri elsewhere")


@contextlib.contextmanager
def store_lock(uri: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive lock on a sqlite store (no-op for servers); a stuck lock is a clear error."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    import time

    check_store_writable(db)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(f"the MLflow store {db} stayed locked for {timeout_s:.0f} s "
                                        f"(lock file {db.name}.lock): is another process stuck?") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_commit(cwd: Path | None = None) -> str:
    """HEAD's commit, marked `-dirty` when tracked files differ; `unknown` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def data_version(folder: Path, names: tuple[str, ...] = ("stats.json", "summary.json")) -> str:
    """Short content hash of a data folder's small description files (a feature folder's
    statistics and summary by default; a corpus's summary and manifest): changes with the data."""
    digest = hashlib.md5()
    for name in names:
        path = folder / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# What the MLflow UI needs to show our runs: MLflow 3 opens an experiment without a kind on its
# GenAI pages (traces, an assistant) and hides training runs behind a switch; the note is the
# description a new user reads on the experiment's page.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": (
        "dpcl: two-speaker separation by Deep Clustering against neuron-model baselines. One run per "
        "training (DPCL, each baseline: transfer function x fixed/PIT objective) with its params, "
        "per-epoch losses, validation SDRi (DPCL) and model file; the `scores-<method>` runs hold the "
        "test split's scores. Sort by `val_sdri` (DPCL) or by the scores' `sdri_mean` to compare; "
        "select runs and press Compare for their curves side by side."),
}


def experiment_tags() -> dict[str, str]:
    """Tags naming the DVC experiment a run belongs to, when `dvc exp run` started it.

    DVC tells its stages the experiment's name and baseline commit in DVC_EXP_NAME and
    DVC_EXP_BASELINE_REV; tagged with them, a sweep's runs can be filtered in the MLflow UI by
    the same names `dvc exp show` lists (`tags.dvc_experiment = 'lr-3e-3'`).
    """
    names = {"DVC_EXP_NAME": "dvc_experiment", "DVC_EXP_BASELINE_REV": "dvc_baseline_rev"}
    return {tag: os.environ[var] for var, tag in names.items() if os.environ.get(var)}


class Run:
    """One MLflow run, resumable by id (an interrupted training continues its own run)."""

    def __init__(self, cfg: TrackingConfig, run_name: str, run_id: str | None = None) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.cfg = cfg
        self._mlflow = mlflow
        with store_lock(cfg.uri, cfg.lock_timeout_s):
            self.client = MlflowClient(tracking_uri=cfg.uri)
            experiment = self.client.get_experiment_by_name(cfg.experiment)
            if experiment is None:
                # Artifacts beside the sqlite store (not ./mlruns, which MLflow 3 reads as a legacy store).
                location = Path(cfg.artifact_location).resolve().as_uri() if sqlite_path(cfg.uri) else None
                experiment_id = self.client.create_experiment(cfg.experiment, artifact_location=location)
            else:
                experiment_id = experiment.experiment_id
            present = experiment.tags if experiment is not None else {}
            for key, value in EXPERIMENT_TAGS.items():  # never overwrite a note a user has edited
                if key not in present:
                    self.client.set_experiment_tag(experiment_id, key, value)
            if run_id is not None:
                try:
                    self.run_id = self.client.get_run(run_id).info.run_id
                    self.client.update_run(self.run_id, status="RUNNING")
                except Exception:  # the store was reset since the checkpoint: start a new run
                    run_id = None
            if run_id is None:
                self.run_id = self.client.create_run(experiment_id, run_name=run_name,
                                                     tags=experiment_tags()).info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, str(v)[:6000]) for k, v in flatten(params).items() if k not in existing]
        with store_lock(self.cfg.uri, self.cfg.lock_timeout_s):
            for start in range(0, len(new), 100):
                self.client.log_batch(self.run_id, params=new[start:start + 100])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        with store_lock(self.cfg.uri, self.cfg.lock_timeout_s):
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with store_lock(self.cfg.uri, self.cfg.lock_timeout_s):
            self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        with store_lock(self.cfg.uri, self.cfg.lock_timeout_s):
            self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, status: str = "FINISHED") -> None:
        with store_lock(self.cfg.uri, self.cfg.lock_timeout_s):
            self.client.set_terminated(self.run_id, status=status)
