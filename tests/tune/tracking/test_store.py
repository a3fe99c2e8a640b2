"""tune.tracking.store: a fresh embedded store made once under its lock, a server probed before
anything starts, and what a failure at the start means for the exit code."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, UNAUTHENTICATED

from tests.servers import free_port
from tune.errors import BadInput, ExitCode
from tune.tracking.store import TrackingUnreachable, prepare_store, probe_tracking, start_error


def test_a_fresh_sqlite_store_is_made_with_its_folder_and_made_again_harmlessly(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'folder' / 'mlruns.db'}"
    prepare_store(uri)
    assert (tmp_path / "new" / "folder" / "mlruns.db").is_file()
    prepare_store(uri)  # tables exist: a second start only opens them
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
