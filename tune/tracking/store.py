"""Opening an MLflow store: probe a server, create an embedded store under a lock.

Also what a failure at the start of tracking means for the exit code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3

from trainables.cache import default_cache_dir
from trainables.files import replaced_atomically
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
        if not os.path.exists(path):
            place_blank_store(path)
        MlflowClient(tracking_uri).search_experiments(max_results=1)  # checks the schema


def place_blank_store(path: str) -> None:
    """Put a new, empty store at `path`: a copy of a blank store of this MLflow version, made
    once per machine in the cnn-tune cache. MLflow builds a new store by running every alembic
    migration since its first (1.1-1.7 s alone, 4-6 s beside Ray's start and a search's
    imports: the longest wait before a search against a running cluster's first trial); a copy
    takes milliseconds. The copy's Default experiment gets the artifact location MLflow would
    have given it here. Without a usable cache the store is left to MLflow to build."""
    template = blank_store_template()
    if template is None:
        return
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    default_location = append_to_uri_path(
        resolve_uri_if_local(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH), "0"
    )
    with replaced_atomically(path) as tmp:
        shutil.copyfile(template, tmp)
        with contextlib.closing(sqlite3.connect(tmp)) as db, db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (default_location,),
            )


def blank_store_template() -> str | None:
    """The blank store of this MLflow version in the cache, built there on first use (under a
    lock: two first searches at once build it once); None where the cache is not writable."""
    import mlflow
    from filelock import FileLock
    from mlflow import MlflowClient

    folder = os.path.join(default_cache_dir(), "mlflow-stores")
    template = os.path.join(folder, f"blank-{mlflow.__version__}.db")
    try:
        os.makedirs(folder, exist_ok=True)
        with FileLock(template + ".lock"):
            if not os.path.exists(template):
                with replaced_atomically(template) as tmp:
                    MlflowClient(f"sqlite:///{tmp}").search_experiments(max_results=1)
    except OSError:
        return None
    return template


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
