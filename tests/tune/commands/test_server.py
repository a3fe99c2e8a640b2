"""`cnn-tune server`: bad flags are one line and exit 2; the real command starts MLflow's
server with proxied artifacts and logins, answers only the right password, and stops cleanly
on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.helpers import REPO
from tests.servers import free_port, wait_http
from tune.cli import main

ADMIN_PASSWORD = "adm1n-pa55-2026"
SECRET = "flask-s3cret-key-2026"


def test_a_bad_flag_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["server", "--port", "70000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "cnn-tune: error: --port 70000: must be between 1 and 65535"
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_the_server_proxies_artifacts_and_answers_only_the_right_password(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": SECRET,
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    env.pop("MLFLOW_AUTH_CONFIG_PATH", None)
    artifacts = tmp_path / "artifacts"
    server = subprocess.Popen(
        [sys.executable, "-m", "tune.cli", "server", "--port", str(port), "--logins",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'runs.db'}",
         "--artifacts-destination", str(artifacts), "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=120)
        uri = f"http://127.0.0.1:{port}"
        os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD="wrong")
        with pytest.raises(MlflowException, match="401"):
            MlflowClient(uri).search_experiments()
        os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN_PASSWORD
        client = MlflowClient(uri)
        run = client.create_run(client.create_experiment("team"))
        (tmp_path / "note.txt").write_text("logged over HTTP")
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
        run = client.get_run(run.info.run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied
        [landed] = artifacts.rglob("note.txt")  # ... into the destination the server owns
        assert landed.read_text() == "logged over HTTP"
    finally:
        for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(var, None)
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr[-3000:]
    assert f"MLflow server ready at http://127.0.0.1:{port} (logins on)" in stderr
    assert ADMIN_PASSWORD not in stderr + stdout and SECRET not in stderr + stdout
