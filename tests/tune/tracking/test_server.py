"""tune.tracking.server: what `cnn-tune server` checks before it starts, the command and
environment it starts MLflow's server with, and its wait for /health."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
import sys

import pytest

from tests.servers import free_port
from tune.errors import BadInput, DriverError, ExitCode
from tune.tracking.server import (
    AUTH_CONFIG_VAR,
    ServerSettings,
    check_server_settings,
    server_command,
    server_environment,
    wait_until_ready,
)
from tune.tracking.store import TrackingUnreachable

SECRETS = {
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-s3cret-key",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "adm1n-pa55",
}


def settings(tmp_path, **changes) -> ServerSettings:
    base = {
        "backend_store_uri": f"sqlite:///{tmp_path / 'runs.db'}",
        "artifacts_destination": str(tmp_path / "artifacts"),
        "state_dir": str(tmp_path / "state"),
    }
    return ServerSettings(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"port": 0}, "--port 0: must be between 1 and 65535"),
        ({"port": 70000}, "--port 70000: must be between 1 and 65535"),
        ({"workers": 0}, "--workers 0: must be at least 1"),
        ({"backend_store_uri": "mysql://u:pw@h/db"}, "mysql://u:***@h/db: unknown database"),
        ({"backend_store_uri": "runs.db"}, "runs.db: unknown database"),
        (
            {"backend_store_uri": "postgresql+nodriver://u:pw@127.0.0.1:1/db"},
            "postgresql+nodriver://u:***@127.0.0.1:1/db: Can't load plugin",
        ),
        ({"logins": True}, "--logins needs MLFLOW_FLASK_SERVER_SECRET_KEY set"),
    ],
)
def test_bad_settings_are_one_line_before_anything_starts(tmp_path, monkeypatch, changes, words):
    for var in SECRETS:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(BadInput) as err:
        check_server_settings(settings(tmp_path, **changes))
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs.db").exists()  # nothing made for a start that failed


def test_logins_need_the_admin_password_from_mlflows_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", SECRETS["MLFLOW_FLASK_SERVER_SECRET_KEY"])
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv(AUTH_CONFIG_VAR, raising=False)
    with pytest.raises(BadInput, match="MLFLOW_AUTH_ADMIN_PASSWORD"):
        check_server_settings(settings(tmp_path, logins=True))


def test_a_database_that_does_not_answer_is_exit_3_without_its_password(tmp_path):
    uri = f"postgresql+psycopg://team:s3cret@127.0.0.1:{free_port()}/mlflow"
    with pytest.raises(TrackingUnreachable) as err:
        check_server_settings(settings(tmp_path, backend_store_uri=uri))
    assert err.value.exit_code == ExitCode.UNREACHABLE
    assert "cannot reach the database at postgresql+psycopg://team:***@127.0.0.1" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_a_sqlite_store_is_made_before_the_server_starts(tmp_path):
    check_server_settings(settings(tmp_path))
    assert (tmp_path / "runs.db").is_file()


def test_the_command_proxies_artifacts_and_holds_no_secret(tmp_path, monkeypatch):
    for var, value in SECRETS.items():
        monkeypatch.setenv(var, value)
    plain = server_command(settings(tmp_path, host="0.0.0.0", port=5123))
    assert plain[1:4] == ["-m", "mlflow", "server"]
    assert "--serve-artifacts" in plain and "--app-name" not in plain and "--workers" not in plain
    assert server_command(settings(tmp_path, workers=1))[-2:] == ["--workers", "1"]
    assert plain[plain.index("--artifacts-destination") + 1] == str(tmp_path / "artifacts")
    assert plain[plain.index("--host") + 1 :][:3] == ["0.0.0.0", "--port", "5123"]
    with_logins = server_command(settings(tmp_path, logins=True))
    assert with_logins[-2:] == ["--app-name", "basic-auth"]
    assert not any(secret in " ".join(with_logins) for secret in SECRETS.values())


def test_logins_keep_users_beside_the_runs_in_an_owner_only_config(tmp_path, monkeypatch):
    monkeypatch.delenv(AUTH_CONFIG_VAR, raising=False)
    env = server_environment(settings(tmp_path, logins=True))
    path = env[AUTH_CONFIG_VAR]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    config = configparser.ConfigParser()
    config.read(path)
    assert config["mlflow"]["database_uri"] == f"sqlite:///{tmp_path / 'basic_auth.db'}"
    assert config["mlflow"]["default_permission"] == "READ"
    assert "admin_password" not in config["mlflow"]  # the password stays in the environment

    team = "postgresql+psycopg://team@db.internal:5432/mlflow"
    env = server_environment(settings(tmp_path, logins=True, backend_store_uri=team))
    config.read(env[AUTH_CONFIG_VAR])
    assert config["mlflow"]["database_uri"] == team  # the users live in the runs' database


def test_a_config_of_the_users_own_is_used_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv(AUTH_CONFIG_VAR, "/etc/mlflow/auth.ini")
    env = server_environment(settings(tmp_path, logins=True))
    assert env[AUTH_CONFIG_VAR] == "/etc/mlflow/auth.ini"
    assert not (tmp_path / "state").exists()


def test_a_server_that_exits_while_starting_is_an_error_not_a_wait(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    with pytest.raises(DriverError, match="exited with code 4"):
        wait_until_ready(dead, f"http://127.0.0.1:{free_port()}", timeout_s=30)
