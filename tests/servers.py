"""Real services for tests, on 127.0.0.1 only: free ports, HTTP readiness, an MLflow server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


class MlflowServer:
    """A real `mlflow server` process (SQLite store, served artifacts) that tests can kill and
    start again on the same port and store."""

    def __init__(self, folder: Path, backend: str):
        """`backend`: the store's URI; the `mlflow_server` fixture gives a copy of the session's
        blank store, so the start runs no migrations."""
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", backend,
            "--artifacts-destination", str(folder / "server-artifacts"),
            # One worker, not MLflow's four: on 2 cores four took 13 s to start (7 s for one)
            # and competed with the trials; no test here needs parallel requests.
            "--workers", "1",
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] | None = None  # this process's

    def start(self) -> MlflowServer:
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            start_new_session=True,  # its own group: stop() ends its gunicorn/uvicorn workers too
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"{self.uri}/health")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP the server and its workers: connections are accepted (the kernel's backlog)
        and never answered, like an overloaded server or a stuck proxy."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TeamServer(MlflowServer):
    """`cnn-tune server` (MLflow's server under cnn-tune's checks) on a real PostgreSQL database,
    artifacts proxied to a folder, one worker; killed and started again like `MlflowServer`."""

    def __init__(self, folder: Path, backend: str, *extra: str, env: dict | None = None):
        super().__init__(folder, backend)
        self.command = [
            sys.executable, "-m", "tune.cli", "server", "--port", str(self.port),
            "--backend-store-uri", backend,
            "--artifacts-destination", str(folder / "server-artifacts"),
            "--state-dir", str(folder / "server-state"), "--workers", "1", *extra,
        ]  # fmt: skip
        self.env = {**os.environ, **(env or {})}
