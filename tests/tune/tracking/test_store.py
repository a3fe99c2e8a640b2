"""tune.tracking.store: a fresh embedded store made once under its lock, a server probed before
anything starts, and what a failure at the start means for the exit code."""

from __future__ import annotations

import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import mlflow.store.db.utils
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, UNAUTHENTICATED

from tests.servers import free_port
from tune.errors import BadInput, ExitCode
from tune.tracking.store import (
    TrackingUnreachable,
    blank_store_template,
    prepare_store,
    probe_tracking,
    start_error,
)


def test_a_fresh_sqlite_store_is_made_with_its_folder_and_made_again_harmlessly(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'folder' / 'mlruns.db'}"
    prepare_store(uri)
    assert (tmp_path / "new" / "folder" / "mlruns.db").is_file()
    prepare_store(uri)  # tables exist: a second start only opens them
    assert [e.name for e in MlflowClient(uri).search_experiments()] == ["Default"]


def schema_of(path) -> list:
    """Every table and index with its definition's clauses as a set (MLflow's migrations write a
    table's constraints in an order that changes from run to run: Python's string hashing),
    and the schema's alembic version."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    clauses = [
        (kind, name, sorted(part.strip().rstrip(",") for part in (sql or "").splitlines()))
        for kind, name, sql in rows
    ]
    return [clauses, version]


def test_a_new_store_is_the_cached_blank_one_as_mlflow_would_have_made_it_here(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    built = tmp_path / "by-mlflow.db"
    MlflowClient(f"sqlite:///{built}").search_experiments()  # MLflow's own, in the same folder

    template = blank_store_template()  # built on first use: MLflow's migrations run here
    assert template.startswith(str(tmp_path / "cache"))

    def no_migrations(engine):
        raise AssertionError("a new store ran MLflow's migrations: the template was not used")

    monkeypatch.setattr(mlflow.store.db.utils, "_initialize_tables", no_migrations)
    ours = tmp_path / "store" / "mlruns.db"
    prepare_store(f"sqlite:///{ours}")
    assert ours.is_file()
    assert schema_of(ours) == schema_of(built)
    [default] = MlflowClient(f"sqlite:///{ours}").search_experiments()
    [expected] = MlflowClient(f"sqlite:///{built}").search_experiments()
    assert (default.name, default.artifact_location) == (expected.name, expected.artifact_location)
    # the copy is the store's own: runs logged to it never reach the template
    client = MlflowClient(f"sqlite:///{ours}")
    client.create_run(client.create_experiment("mine"))
    assert [e.name for e in MlflowClient(f"sqlite:///{template}").search_experiments()] == [
        "Default"
    ]


def test_an_existing_store_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "cache"))
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    prepare_store(uri)
    MlflowClient(uri).create_experiment("kept")
    prepare_store(uri)
    assert {e.name for e in MlflowClient(uri).search_experiments()} == {"Default", "kept"}


def test_without_a_usable_cache_mlflow_builds_the_store_itself(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "a-file" / "cache"))  # cannot be made
    assert blank_store_template() is None
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    prepare_store(uri)
    assert [e.name for e in MlflowClient(uri).search_experiments()] == ["Default"]


def test_a_server_or_file_store_needs_no_preparing(tmp_path):
    prepare_store("http://127.0.0.1:1")  # nothing to create, nothing contacted
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_does_not_answer_is_exit_3_without_its_password():
    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"
    with pytest.raises(TrackingUnreachable) as err:
        probe_tracking(uri)
    assert err.value.exit_code == ExitCode.UNREACHABLE
    assert "s3cret" not in str(err.value) and "127.0.0.1" in str(err.value)


def test_a_server_that_answers_health_passes_the_probe():
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        probe_tracking(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
    probe_tracking("sqlite:///not/probed.db")  # only servers are probed


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (ConnectionRefusedError("refused"), TrackingUnreachable, "cannot reach"),
        (MlflowException("no", error_code=UNAUTHENTICATED), BadInput, "rejected the credentials"),
        (MlflowException("bad", error_code=INVALID_PARAMETER_VALUE), BadInput, "cannot use"),
    ],
)
def test_a_start_failure_is_exit_3_only_when_retrying_could_help(exc, kind, words):
    error = start_error(exc, "https://bob:pw@mlflow.example/")
    assert type(error) is kind and words in str(error)
    assert "pw@" not in str(error)
    assert error.exit_code == (ExitCode.UNREACHABLE if kind is TrackingUnreachable else 2)
