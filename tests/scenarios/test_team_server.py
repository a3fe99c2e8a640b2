"""The team's tracking server on a real PostgreSQL (`cnn-tune server --logins`): a search logs
through it with proxied artifacts, a wrong password is a failed start, a user without
permission cannot read the search, and a database that is down is exit 3 before it starts.
(The server killed and started again mid-search: tests/scenarios/test_reliability.py's outage.)
"""

from __future__ import annotations

import json
import os

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.helpers import DEMO, NAME, cnn_tune_here, grid_args
from tests.servers import TeamServer, free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ADMIN_PASSWORD = "adm1n-pa55-2026"
SECRETS = {
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-s3cret-2026",
    "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
}


def as_user(user: str, password: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


def test_a_search_logs_through_the_team_server_and_only_its_users_see_it(
    tmp_path, ray_address, postgres, monkeypatch
):
    monkeypatch.delenv("MLFLOW_AUTH_CONFIG_PATH", raising=False)
    server = TeamServer(tmp_path, postgres.create("team_logins"), "--logins", env=SECRETS)
    artifacts = tmp_path / "server-artifacts"
    args = [*grid_args("[relu, tanh]", epochs=2, images=300),
            "--set", f"mlflow.tracking_uri={server.uri}"]  # fmt: skip
    with server:
        # A wrong password: one line, no password shown, nothing left behind.
        refused = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path,
                                env=as_user("admin", "not-it"), address=ray_address)  # fmt: skip
        assert refused.returncode == 2, refused.stderr[-3000:]
        errors = [line for line in refused.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "rejected the credentials" in errors[0], refused.stderr
        assert "not-it" not in refused.stderr + refused.stdout
        assert not (tmp_path / "ray_results" / NAME).exists()

        out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path,
                            env=as_user("admin", ADMIN_PASSWORD), address=ray_address)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        summary = json.loads(out.stdout)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        admin = MlflowClient(server.uri)
        experiment = summary["mlflow"]["experiment_id"]
        runs = admin.search_runs([experiment])
        parents = [r for r in runs if r.data.tags.get("cnn_tune.role") == "search"]
        children = [r for r in runs if r.data.tags.get("cnn_tune.role") == "trial"]
        assert len(parents) == 1 and len(children) == 2
        assert {r.info.status for r in runs} == {"FINISHED"}
        # Artifacts went over HTTP to the folder only the server knows: the runs name the
        # proxy, and nothing the driver gave Ray (config, tags, params) names the folder.
        assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in runs)
        assert list(artifacts.rglob("MLmodel")), (
            "the best model did not land in the server's folder"
        )
        saved = (tmp_path / "ray_results" / NAME / "cnn_tune_config.yaml").read_text()
        assert str(artifacts) not in saved + json.dumps([r.data.to_dictionary() for r in runs])

        # A user denied the experiment cannot read it (the default is READ). MLflow 3.17 calls
        # the old NO_PERMISSIONS a resource grant of DENY.
        from mlflow.server import get_app_client

        auth = get_app_client("basic-auth", tracking_uri=server.uri)
        auth.create_user("guest", "gue5t-pa55-2026")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "guest")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "gue5t-pa55-2026")
        assert MlflowClient(server.uri).get_experiment(experiment).name == "cnn-tune"  # READ
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        auth.grant_user_permission("guest", "experiment", experiment, "DENY")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "guest")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "gue5t-pa55-2026")
        with pytest.raises(MlflowException, match="403|PERMISSION_DENIED"):
            MlflowClient(server.uri).get_experiment(experiment)


def test_a_database_that_is_down_is_exit_3_before_the_server_starts(tmp_path, postgres):
    uri = postgres.create("team_down")
    postgres.stop()
    try:
        port = free_port()
        out = cnn_tune_here("server", "--backend-store-uri", uri, "--port", str(port),
                            cwd=tmp_path)  # fmt: skip
    finally:
        postgres.start()
    assert out.returncode == 3, out.stderr
    [line] = [line for line in out.stderr.splitlines() if line.strip()]
    assert line.startswith("cnn-tune: error: cannot reach the database at postgresql+psycopg://")
    assert "pg-pa55" not in line and os.listdir(tmp_path) == []
