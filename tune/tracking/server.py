"""The team's tracking server: MLflow's own `mlflow server`, started as a child process.

Checked before it starts: the backend store's scheme and driver, the database answering (exit 3
when it does not: a scheduled restart retries), and for logins MLflow's own variables (the Flask
secret, the admin password). Artifacts are always proxied (`--serve-artifacts`): drivers and
workers send them over HTTP and need neither a shared disk nor cloud credentials.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from tune.errors import BadInput, DriverError, ExitCode
from tune.logs import SUMMARY, get_logger
from tune.paths import redact_uri, sqlite_file
from tune.tracking.store import TrackingUnreachable, prepare_store

log = get_logger()

BACKENDS = ("sqlite", "postgresql")  # the schemes `--backend-store-uri` may use
DB_TIMEOUT_S = 5  # seconds the database has to answer before the server starts
HEALTH_POLL_S = 0.2  # how often the new server's /health is asked while it starts
SERVER_EXTRA = "pip install 'cnn-tune[server]'"  # psycopg 3 and mlflow[auth]
# MLflow's own variables for logins; never a flag, never logged.
SECRET_VAR = "MLFLOW_FLASK_SERVER_SECRET_KEY"
ADMIN_PASSWORD_VAR = "MLFLOW_AUTH_ADMIN_PASSWORD"
AUTH_CONFIG_VAR = "MLFLOW_AUTH_CONFIG_PATH"
AUTH_CONFIG = "basic_auth.ini"  # written beside the state when MLflow's variable names none
DEFAULT_PERMISSION = "READ"  # what a logged-in user may do to another's experiment (MLflow's)


@dataclass(frozen=True)
class ServerSettings:
    """What `cnn-tune server` starts: one MLflow tracking server."""

    backend_store_uri: str  # sqlite:///file.db (one user) or postgresql+psycopg://... (a team)
    artifacts_destination: str  # a folder or s3://bucket/prefix: where proxied artifacts land
    host: str = "127.0.0.1"
    port: int = 5000
    logins: bool = False  # MLflow's basic-auth app
    state_dir: str = "cnn-tune-server"  # the auth config cnn-tune writes, when it writes one
    workers: int | None = None  # the server's worker processes (None: MLflow's default, 4)
    ready_timeout_s: float = 120.0

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def check_server_settings(settings: ServerSettings) -> None:
    """Everything that can be known wrong before the server starts, as one line each: bad port,
    unknown scheme, a missing driver or extra, logins without MLflow's variables (exit 2), a
    database that does not answer (exit 3)."""
    if not 1 <= settings.port <= 65535:
        raise BadInput(f"--port {settings.port}: must be between 1 and 65535")
    if settings.workers is not None and settings.workers < 1:
        raise BadInput(f"--workers {settings.workers}: must be at least 1")
    uri = settings.backend_store_uri
    scheme = uri.split(":", 1)[0].split("+", 1)[0]
    if scheme not in BACKENDS or "://" not in uri:
        raise BadInput(
            f"--backend-store-uri {redact_uri(uri)}: unknown database; allowed: "
            "sqlite:///FILE (one user) or postgresql+psycopg://USER@HOST/DB (a team)"
        )
    if settings.logins:
        check_login_settings()
    if scheme == "postgresql":
        probe_database(uri)
    else:
        prepare_store(uri)  # a new SQLite store made once, as a search makes it


def check_login_settings() -> None:
    try:
        import flask_wtf  # noqa: F401  (mlflow[auth])
    except ImportError:
        raise BadInput(f"--logins needs MLflow's auth app: {SERVER_EXTRA}") from None
    if not os.environ.get(SECRET_VAR):
        raise BadInput(f"--logins needs {SECRET_VAR} set (a long random string), never a flag")
    if not os.environ.get(ADMIN_PASSWORD_VAR) and not os.environ.get(AUTH_CONFIG_VAR):
        raise BadInput(
            f"--logins needs the admin's password in {ADMIN_PASSWORD_VAR} (or an "
            f"admin_password in the file {AUTH_CONFIG_VAR} names), never a flag"
        )


def probe_database(uri: str) -> None:
    """Connect once (exit 3 when the database does not answer in `DB_TIMEOUT_S`)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise BadInput(f"a PostgreSQL backend needs psycopg 3: {SERVER_EXTRA}") from None
    import sqlalchemy

    try:  # an unknown driver (postgresql+nodriver://) fails here, before any connection
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": DB_TIMEOUT_S})
    except sqlalchemy.exc.ArgumentError as exc:
        raise BadInput(f"--backend-store-uri {redact_uri(uri)}: {exc}") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise TrackingUnreachable(
            f"cannot reach the database at {redact_uri(uri)}: {redact_uri(reason)}"
        ) from None
    finally:
        engine.dispose()


def server_command(settings: ServerSettings) -> list[str]:
    """`python -m mlflow server ...` for these settings (no secret in it: those stay in the
    environment)."""
    command = [sys.executable, "-m", "mlflow", "server"]
    command += ["--backend-store-uri", settings.backend_store_uri]
    command += ["--serve-artifacts", "--artifacts-destination", settings.artifacts_destination]
    command += ["--host", settings.host, "--port", str(settings.port)]
    if settings.workers is not None:
        command += ["--workers", str(settings.workers)]
    if settings.logins:
        command += ["--app-name", "basic-auth"]
    return command


def server_environment(settings: ServerSettings) -> dict[str, str]:
    """The server's environment: this one's, plus, for logins with no auth config of the
    user's, one written by cnn-tune (owner-only: for PostgreSQL it names the database, whose
    URI may hold its password) that keeps the users in the same database as the runs, or in a
    SQLite file beside a SQLite store."""
    env = dict(os.environ)
    if settings.logins and not env.get(AUTH_CONFIG_VAR):
        env[AUTH_CONFIG_VAR] = write_auth_config(settings)
    return env


def auth_database_uri(backend_store_uri: str) -> str:
    db = sqlite_file(backend_store_uri)
    if db is None:  # PostgreSQL: MLflow's auth tables have their own alembic version table
        return backend_store_uri
    return f"sqlite:///{os.path.join(os.path.dirname(os.path.abspath(db)), 'basic_auth.db')}"


def write_auth_config(settings: ServerSettings) -> str:
    from trainables.files import atomic_write

    os.makedirs(settings.state_dir, exist_ok=True)
    path = os.path.abspath(os.path.join(settings.state_dir, AUTH_CONFIG))
    with atomic_write(path, mode=0o600) as f:
        f.write(
            "[mlflow]\n"
            f"default_permission = {DEFAULT_PERMISSION}\n"
            f"database_uri = {auth_database_uri(settings.backend_store_uri)}\n"
            "admin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
    return path


def wait_until_ready(process: subprocess.Popen, url: str, timeout_s: float) -> None:
    """Return once `url`/health answers 200; the server's own exit or the timeout is an error."""
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DriverError(f"the MLflow server exited with code {process.returncode}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(HEALTH_POLL_S)
    process.terminate()
    raise DriverError(f"the MLflow server did not answer {url}/health in {timeout_s:.0f} s")


def serve(settings: ServerSettings) -> int:
    """Check, start the server, say when it is ready, and run until it ends or this process is
    asked to stop (SIGINT or SIGTERM, passed on to the server). Returns the exit code."""
    check_server_settings(settings)
    process = subprocess.Popen(server_command(settings), env=server_environment(settings))

    def pass_on(signum: int, frame: object) -> None:
        process.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, pass_on) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        wait_until_ready(process, settings.url, settings.ready_timeout_s)
        logins = "logins on" if settings.logins else "no logins"
        log.log(
            SUMMARY,
            f"MLflow server ready at {settings.url} ({logins}); runs in "
            f"{redact_uri(settings.backend_store_uri)}, artifacts proxied to "
            f"{settings.artifacts_destination}",
        )
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process.poll() is None:
            process.terminate()
            process.wait()
    # A server stopped by our own SIGTERM ends as asked: that is a clean stop.
    return ExitCode.OK if code in (0, -signal.SIGTERM) else code
