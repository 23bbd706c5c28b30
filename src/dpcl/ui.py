"""`dpcl ui`: the MLflow UI on the project's own store, started by one command.

Why a module and not a line in the README: the server has to be pointed at exactly the store
the trainings write (`tracking.uri`, a sqlite file relative to the project root) and at the
artifact folder they log to (`tracking.artifact_location`), or it shows an empty, freshly
created store instead. The command is built from `TrackingConfig`, so it cannot drift from
what `dpcl.tracking.Run` writes, and the same function starts the server for the tests that
check the UI in a real browser.

Why these server options:

- `--workers 1`: one uvicorn worker is plenty for one person browsing; more cost a process
  each on the 2-core machines the project runs on.
- `MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false` (unless set by the caller): MLflow 3 otherwise
  starts a job runner with seven huey consumer processes for its GenAI jobs (judges, prompt
  optimisation), which comparing trainings never uses, and which double the start-up time.
- host 127.0.0.1: the UI can delete runs and has no login; a team shares a store through its
  own server (`tracking.uri: http://host:5000`), not through this command.
- The server runs in its own process group, so stopping it also stops uvicorn, which MLflow
  starts as a child (a plain terminate of the parent leaves that child serving).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from dpcl.config import TrackingConfig
from dpcl.errors import DpclError
from dpcl.tracking import sqlite_path, store_lock

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
# The server imports all of MLflow first: about 8 s on an idle 2-core machine, 20-30 s beside a training.
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0


class UiError(DpclError):
    """The MLflow server cannot be started on the configured store, or does not come up."""


def backend_store_uri(cfg: TrackingConfig, root: Path) -> str:
    """The store as the server must see it: a sqlite path made absolute against the project root.

    A relative `sqlite:///mlflow.db` means "beside params.yaml" for every stage (they run in the
    project root); the server gets the absolute form so that it opens that file wherever it runs.
    Other database URIs are already absolute and pass unchanged. A tracking server needs no UI
    started: it is one.
    """
    if cfg.uri.split(":", 1)[0] in ("http", "https", "databricks"):
        raise UiError(f"tracking.uri is a server already ({cfg.uri}): open it in a browser instead")
    db = sqlite_path(cfg.uri)
    if db is None:
        return cfg.uri
    return f"sqlite:///{(Path(root) / db).resolve()}"


def artifact_root_uri(cfg: TrackingConfig, root: Path) -> str:
    """`tracking.artifact_location` as a file URI against the project root (a URI passes as is).

    `dpcl.tracking.Run` creates the experiment with this same location, so artifacts of new
    experiments made in the UI and of the trainings' experiment land in one folder.
    """
    if "://" in cfg.artifact_location:
        return cfg.artifact_location
    return (Path(root) / cfg.artifact_location).resolve().as_uri()


def server_command(cfg: TrackingConfig, port: int, root: Path = Path(".")) -> list[str]:
    """The `mlflow server` command line for the project's store, run with this interpreter.

    `python -m mlflow` with this interpreter rather than `mlflow` from PATH: the server must be
    the pinned MLflow of the venv that writes the store (another version may refuse its schema).
    """
    artifacts = artifact_root_uri(cfg, root)
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", backend_store_uri(cfg, root),
            "--default-artifact-root", artifacts, "--artifacts-destination", artifacts,
            "--host", HOST, "--port", str(port), "--workers", "1"]


def server_env() -> dict[str, str]:
    """The environment of the server: the caller's, without MLflow's GenAI job runner by default."""
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


@dataclasses.dataclass
class UiServer:
    """A started MLflow server: its URL, its process (leader of its own group) and its log."""

    url: str
    process: subprocess.Popen
    log_path: Path | None = None

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Terminate the whole process group; kill it if it has not exited after `grace_s`.

        Also when the parent has exited already: its uvicorn child may still be serving.
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):  # stragglers, e.g. a uvicorn draining
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output (when it was sent to a file), for error messages."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def wait_until_up(server: UiServer, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll `/health` until it answers 200; a server that exits or stays silent is a clear error."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise UiError(f"the MLflow server exited with code {server.process.returncode} before answering "
                          f"{server.url}\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise UiError(f"the MLflow server did not answer {server.url}/health within {timeout_s:.0f} s\n"
                          f"{server.log_tail()}")
        time.sleep(0.25)


def check_port_free(port: int) -> None:
    """Refuse a taken or impossible port up front: another server's /health would otherwise pass for ours."""
    if not 1 <= port <= 65535:
        raise UiError(f"port {port} is not a TCP port: choose one in 1-65535 with --port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise UiError(f"port {port} on {HOST} is in use ({error.strerror}): choose another with --port") from None


def start_server(cfg: TrackingConfig, port: int = DEFAULT_PORT, root: Path = Path("."),
                 log_path: Path | None = None, timeout_s: float = START_TIMEOUT_S) -> UiServer:
    """Start the MLflow server on the project's store and return once it answers HTTP.

    The store's file lock (`dpcl.tracking.store_lock`) is held until the server answers:
    the server creates and migrates a missing sqlite store while it starts, and a training
    doing the same at that moment would crash (the race tracking.py guards against). A
    training that logs meanwhile waits for the lock, seconds at most.

    Output goes to `log_path` when given (the tests read it on failure), else to this terminal.
    """
    check_port_free(port)
    cmd = server_command(cfg, port, root)
    output = open(log_path, "w") if log_path is not None else None  # noqa: SIM115 (closed once passed on)
    with store_lock(backend_store_uri(cfg, root)):
        try:
            process = subprocess.Popen(cmd, env=server_env(), stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT if output else None, start_new_session=True)
        finally:
            if output is not None:
                output.close()  # the child has its own copy of the descriptor
        server = UiServer(url=f"http://{HOST}:{port}", process=process, log_path=log_path)
        try:
            wait_until_up(server, timeout_s)
        except BaseException:
            server.stop()
            raise
    return server


@contextlib.contextmanager
def running_server(cfg: TrackingConfig, port: int = DEFAULT_PORT, root: Path = Path("."),
                   log_path: Path | None = None, timeout_s: float = START_TIMEOUT_S) -> Iterator[UiServer]:
    """`start_server` as a context: the server is stopped however the block ends."""
    server = start_server(cfg, port, root, log_path, timeout_s)
    try:
        yield server
    finally:
        server.stop()


def runs_page(cfg: TrackingConfig, root: Path, server_url: str) -> str:
    """The URL of the experiment's runs table, or the server's root while no run has been logged."""
    from mlflow.tracking import MlflowClient

    try:
        experiment = MlflowClient(tracking_uri=backend_store_uri(cfg, root)).get_experiment_by_name(cfg.experiment)
    except Exception:  # an empty or foreign store: the root page still works
        experiment = None
    if experiment is None:
        return server_url
    # workflowType: MLflow 3.17 otherwise keeps its GenAI sidebar (traces, judges) around our runs.
    return f"{server_url}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"


def serve(cfg: TrackingConfig, port: int = DEFAULT_PORT, root: Path = Path(".")) -> None:
    """`dpcl ui`: start the server, print the runs page's URL, serve until Ctrl-C (or SIGTERM), then stop it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server's group
    with running_server(cfg, port, root) as server:
        print(f"MLflow UI on {backend_store_uri(cfg, root)}: {runs_page(cfg, root, server.url)} (Ctrl-C stops it)",
              flush=True)
        try:
            code = server.process.wait()
        except KeyboardInterrupt:
            return
    # It never stops by itself: even with code 0 (uvicorn failing to bind exits 0) it is an error.
    raise UiError(f"the MLflow server stopped by itself (code {code}); its output above says why")
