"""Safe defaults: credentials never leak into MLflow, Ray's experiment folder or the output,
and what cnn-tune starts itself listens on 127.0.0.1."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.helpers import DEMO, cnn_tune
from tune.cli import build_parser

SECRETS = {
    "MLFLOW_TRACKING_USERNAME": "user-SECRET-4f1d",
    "MLFLOW_TRACKING_PASSWORD": "pw-SECRET-9a2c",
    "MLFLOW_TRACKING_TOKEN": "token-SECRET-77e0",
    "AWS_SECRET_ACCESS_KEY": "aws-SECRET-31b8",
}
URI_PASSWORD = "uripw-SECRET-5c6e"


def files_containing(root: Path, needles: list[str], skip: set[str] = frozenset()) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path.name not in skip:
            data = path.read_bytes()
            hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    return hits


@pytest.mark.ray
@pytest.mark.slow
def test_credentials_never_leak(tmp_path, mlflow_server):
    with mlflow_server as server:
        work = tmp_path / "work"
        work.mkdir()
        uri = server.uri.replace("http://", f"http://alice:{URI_PASSWORD}@")
        settings = ["epochs=1", "search.num_samples=1", "trial.max_train_images=300",
                    f"mlflow.tracking_uri={uri}"]  # fmt: skip
        args = [a for s in settings for a in ("--set", s)]
        out = cnn_tune("run", str(DEMO), *args, "--json", cwd=work, env=SECRETS)
        assert out.returncode == 0, out.stderr[-3000:]

    needles = [*SECRETS.values(), URI_PASSWORD]
    summary = json.loads(out.stdout)
    assert summary["mlflow"]["tracking_uri"] == server.uri.replace("http://", "http://alice:***@")
    leaked = [
        line for line in (out.stdout + out.stderr).splitlines() if any(n in line for n in needles)
    ]
    assert not leaked
    # The tracking store (params, tags, metrics) and every artifact the server received.
    assert files_containing(tmp_path, needles, skip={"cnn_tune_config.yaml"}) == []
    # The one copy that must keep the URI to resume is readable by its owner only.
    saved = work / "ray_results" / "demo-mnist5k" / "cnn_tune_config.yaml"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_ui_binds_loopback_only():
    args = build_parser().parse_args(["ui", "--port", "5999"])
    captured = {}

    def fake_execv(path, argv):  # stands in for replacing this process with the UI
        captured["argv"] = argv

    original = os.execv
    os.execv = fake_execv
    try:
        args.func(args)
    finally:
        os.execv = original
    argv = captured["argv"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "5999"


def test_names_cannot_escape_the_storage_folder(tmp_path):
    for name in ("../up", "a/b", ".hidden", "x" * 101):
        out = cnn_tune("validate", str(DEMO), "--name", name, cwd=tmp_path)
        assert out.returncode == 2, name
        assert "name" in out.stderr
    assert not any(Path(tmp_path).parent.glob("up*"))


def test_an_outage_never_prints_the_uri_password(tmp_path, monkeypatch, capsys, caplog):
    """MLflow's exception texts quote the request URL with its credentials; the outbox's
    warnings, the libraries' own log lines and the exit-3 line must not pass them on."""
    import socket

    from mlflow import MlflowClient

    from tune.cli import main
    from tune.logs import setup_logging
    from tune.tracking._outbox import Outbox

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # released: nothing listens there
    uri = f"http://alice:{URI_PASSWORD}@127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")

    setup_logging(0)
    box = Outbox(MlflowClient(uri), str(tmp_path), {}, lambda *_: None)
    box.submit({"op": "log_batch", "run_id": "0" * 32, "tags": [["k", "v"]]})
    assert box.pending() == 1  # queued, not dropped
    import logging

    logging.getLogger("mlflow.tracking").warning(f"request to {uri}/api failed")  # a library's
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(DEMO), "--set", f"mlflow.tracking_uri={uri}", "--set", "epochs=1"])
    assert code == 3

    out = capsys.readouterr()
    assert "MLflow store unreachable" in out.err and "alice:***@" in out.err
    assert URI_PASSWORD not in out.err + out.out + caplog.text
    assert not (tmp_path / "ray_results").exists()


def test_the_saved_config_is_owner_only_from_its_creation(tmp_path, monkeypatch):
    from tests.config_cases import with_changes
    from tune.config.parse import parse_search_config
    from tune.config.schema import dump_search_config

    modes = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        modes.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    path = tmp_path / "cnn_tune_config.yaml"
    dump_search_config(parse_search_config(with_changes()), path)
    assert modes == [0o600]  # created so, not chmod-ed afterwards
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
