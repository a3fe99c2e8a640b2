"""tune.paths: tracking-URI forms and precedence, experiment and state folders."""

from __future__ import annotations

import pytest

from tests.config_cases import with_changes
from tune.config.parse import parse_search_config
from tune.errors import BadInput
from tune.paths import (
    CONFIG_FILE,
    DEFAULT_TRACKING_URI,
    artifact_location,
    check_name,
    choose_tracking_uri,
    experiment_path,
    locate_experiment,
    redact_uri,
    resolve_storage_path,
    saved_config_path,
    sqlite_file,
    state_dir,
    state_root,
)


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("sqlite:////abs/mlruns.db", "sqlite:////abs/mlruns.db"),
        ("sqlite:///rel.db", "sqlite:///{cwd}/rel.db"),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("https://mlflow.example.com", "https://mlflow.example.com"),
        ("file:./mlruns", "file://{cwd}/mlruns"),
        ("file:///abs/mlruns", "file:///abs/mlruns"),
        ("mlruns", "{cwd}/mlruns"),
        ("databricks", "databricks"),
    ],
)
def test_tracking_uri_forms(tmp_path, uri, expected):
    cfg = parse_search_config(with_changes(mlflow={"tracking_uri": uri}), cwd=str(tmp_path))
    assert cfg.mlflow.tracking_uri == expected.format(cwd=tmp_path)


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    """The config's value, else $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db in the cwd."""
    assert choose_tracking_uri(None) == DEFAULT_TRACKING_URI
    unset = parse_search_config(with_changes(), cwd=str(tmp_path))
    assert unset.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlruns.db"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert choose_tracking_uri(None) == "http://mlflow.internal:5000"
    from_env = parse_search_config(with_changes(), cwd=str(tmp_path))
    assert from_env.mlflow.tracking_uri == "http://mlflow.internal:5000"
    given = parse_search_config(
        with_changes(mlflow={"tracking_uri": "sqlite:///mine.db"}), cwd=str(tmp_path)
    )
    assert given.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mine.db"
    # The saved config keeps the resolved URI, so a resume logs where the run did.
    assert parse_search_config(from_env.to_dict()) == from_env


def test_validate_shows_the_uri_from_the_environment(tmp_path, monkeypatch, capsys):
    from tests.helpers import DEMO
    from tune.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert main(["validate", str(DEMO)]) == 0
    assert f"tracking_uri: sqlite:///{tmp_path}/env.db" in capsys.readouterr().out


def test_redaction_and_sqlite_files():
    assert redact_uri("https://ann:s3cret@host/x") == "https://ann:***@host/x"
    assert redact_uri("sqlite:////a/b.db") == "sqlite:////a/b.db"
    assert sqlite_file("sqlite:///rel.db") == "rel.db"
    assert sqlite_file("sqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_file("sqlite:///:memory:") is None and sqlite_file("http://h") is None
    assert artifact_location("sqlite:////abs/x.db") == "file:///abs/mlartifacts"
    assert artifact_location("http://h") is None


def test_local_experiments_keep_their_state_in_the_experiment_folder(tmp_path):
    storage = str(tmp_path / "results")
    assert experiment_path(storage, "s") == f"{storage}/s"
    assert state_dir(storage, "s") == f"{storage}/s"
    assert saved_config_path(storage, "s") == f"{storage}/s/{CONFIG_FILE}"
    assert resolve_storage_path("s3://b/x") == "s3://b/x"


def test_remote_experiments_keep_their_state_under_xdg_state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert state_root() == str(tmp_path / "state" / "cnn-tune")
    assert state_dir("s3://bucket/runs", "nightly") == str(tmp_path / "state/cnn-tune/nightly")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_root() == str(tmp_path / "home/.local/state/cnn-tune")


def test_state_left_under_the_old_cache_folder_is_still_found(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "cache"))
    old = tmp_path / "cache" / "state" / "nightly"
    old.mkdir(parents=True)
    (old / CONFIG_FILE).write_text("name: nightly\n")
    assert state_dir("s3://bucket/runs", "nightly") == str(old)
    assert state_dir("s3://bucket/runs", "other") == str(tmp_path / "state/cnn-tune/other")
    # Once the new folder exists it wins.
    (tmp_path / "state" / "cnn-tune" / "nightly").mkdir(parents=True)
    assert state_dir("s3://bucket/runs", "nightly") == str(tmp_path / "state/cnn-tune/nightly")


@pytest.mark.parametrize(
    "name", ["..", "../other", "a/b", "/abs", "", "x" * 101, ".hidden", "a b", None, 3]
)
def test_a_name_that_is_not_plain_is_exit_2(tmp_path, name):
    with pytest.raises(BadInput, match="is not a plain name; allowed:") as caught:
        locate_experiment(str(tmp_path), name)
    assert caught.value.exit_code == 2


def test_a_plain_name_is_its_folder_under_the_storage_path(tmp_path):
    assert check_name("x" * 100) == "x" * 100
    assert locate_experiment(str(tmp_path), "demo-1.a_b") == f"{tmp_path}/demo-1.a_b"


def test_a_symlink_out_of_the_storage_path_is_refused(tmp_path):
    storage, outside = tmp_path / "results", tmp_path / "other"
    storage.mkdir()
    outside.mkdir()
    (storage / "escape").symlink_to(outside)
    with pytest.raises(BadInput, match="is a symlink to .*other, outside"):
        locate_experiment(str(storage), "escape", "search.warm_start")
    (storage / "real").mkdir()
    (storage / "alias").symlink_to(storage / "real")  # stays inside: found
    assert locate_experiment(str(storage), "alias") == f"{storage}/alias"
    (storage / "loop").symlink_to(storage)  # the storage path itself is not below it
    with pytest.raises(BadInput, match="outside"):
        locate_experiment(str(storage), "loop")


def test_the_storage_path_itself_may_be_a_symlink(tmp_path):
    real = tmp_path / "real-results"
    (real / "demo").mkdir(parents=True)
    (tmp_path / "results").symlink_to(real)
    assert locate_experiment(str(tmp_path / "results"), "demo") == f"{tmp_path}/results/demo"
