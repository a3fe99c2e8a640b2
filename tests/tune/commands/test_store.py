"""tune.commands.store: which MLflow store and experiment `report` and `ui` read, and the
--html path checked before MLflow is read."""

from __future__ import annotations

import pytest

from tests.config_cases import with_changes, write
from tune.cli import build_parser, main
from tune.commands.store import check_html_path, store_from_args
from tune.errors import BadInput


def store(*argv):
    return store_from_args(build_parser().parse_args(["report", "s", *argv]))


@pytest.fixture
def config(tmp_path):
    mlflow = {"tracking_uri": f"sqlite:///{tmp_path / 'cfg.db'}", "experiment": "from-config"}
    return str(write(tmp_path, with_changes(mlflow=mlflow)))


def test_the_configs_store_and_experiment_are_read(tmp_path, config):
    assert store("--config", config) == (f"sqlite:///{tmp_path / 'cfg.db'}", "from-config")


def test_the_flags_win_over_the_config(tmp_path, config):
    uri, experiment = store("--config", config, "--tracking-uri", "sqlite:///flag.db",
                            "--experiment", "from-flag")  # fmt: skip
    assert experiment == "from-flag"
    assert uri.startswith("sqlite:////") and uri.endswith("/flag.db")  # made absolute


def test_without_flags_or_config_the_environment_then_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store() == (f"sqlite:///{tmp_path / 'mlruns.db'}", "cnn-tune")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert store() == ("http://mlflow.example:5000", "cnn-tune")


def test_an_html_file_in_a_writable_folder_passes_and_nothing_is_written(tmp_path):
    check_html_path(str(tmp_path / "report.html"))
    assert list(tmp_path.iterdir()) == []


def test_an_html_path_in_a_missing_folder_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        check_html_path(str(tmp_path / "missing" / "report.html"))


def test_an_html_path_that_is_a_folder_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="is a folder"):
        check_html_path(str(tmp_path))


def test_report_refuses_a_missing_html_folder_in_one_line_before_reading_mlflow(tmp_path, capsys):
    db = tmp_path / "mlruns.db"
    argv = ["report", "s", "--tracking-uri", f"sqlite:///{db}"]
    assert main([*argv, "--html", str(tmp_path / "missing" / "r.html")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "missing" in lines[0] and "does not exist" in lines[0]
    assert not db.exists()  # the store was never opened
