"""Opening an MLflow store: probe a server, create an embedded store under a lock.

Also what a failure at the start of tracking means for the exit code.
"""

from __future__ import annotations

import os

from tune.errors import BadInput, DriverError, Unreachable
from tune.paths import is_server_uri, redact_uri, sqlite_file
from tune.tracking._store_errors import CREDENTIALS, UNREACHABLE, classify, describe

PROBE_TIMEOUT_S = 5.0  # seconds a tracking server has to answer /health at the start


class TrackingUnreachable(Unreachable):
    """The tracking store cannot be reached (exit code 3: retry later)."""


def start_error(exc: BaseException, tracking_uri: str) -> DriverError:
    """What a failure at the start of tracking means for the exit code: an unreachable store
    is exit 3 (a scheduled job retries); rejected credentials and local faults are exit 2,
    with their real message, since retrying would not help."""
    where = redact_uri(tracking_uri)
    kind = classify(exc)
    if kind == UNREACHABLE:
        return TrackingUnreachable(f"cannot reach the MLflow store at {where}: {describe(exc)}")
    if kind == CREDENTIALS:
        return BadInput(
            f"the MLflow store at {where} rejected the credentials: {describe(exc)}; "
            "check MLFLOW_TRACKING_USERNAME/PASSWORD or TOKEN"
        )
    return BadInput(f"cannot use the MLflow store at {where}: {describe(exc)}")


def prepare_store(tracking_uri: str) -> None:
    """Create (or upgrade) an embedded SQLite store under a file lock beside its database.

    MLflow builds a new store's tables with alembic migrations that two processes must not run
    at once (two searches started together on a fresh `mlruns.db` fail inside them); once the
    tables exist, concurrent writers are fine.
    """
    db = sqlite_file(tracking_uri)
    if db is None:
        return
    from filelock import FileLock
    from mlflow import MlflowClient

    path = os.path.abspath(db)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with FileLock(path + ".lock"):
        MlflowClient(tracking_uri).search_experiments(max_results=1)


def probe_tracking(tracking_uri: str) -> None:
    """Fail fast when an http(s) tracking server does not answer.

    MLflow's client would retry an unreachable server for minutes before failing.
    """
    if not is_server_uri(tracking_uri):
        return
    import requests

    try:
        requests.get(tracking_uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S)
    except requests.RequestException as exc:
        raise TrackingUnreachable(
            f"cannot reach the MLflow tracking server at {redact_uri(tracking_uri)}: "
            f"{type(exc).__name__}"
        ) from None
