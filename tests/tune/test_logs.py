"""tune.logs: one stderr format, and what -q, the default and -v let through."""

from __future__ import annotations

import logging
import os

import pytest

from tune.logs import SUMMARY, get_logger, setup_logging, third_party_level, verbosity


def say_everything() -> None:
    log = get_logger("test")
    log.debug("a debug line")
    log.info("progress")
    log.warning("something odd")
    log.log(SUMMARY, "the summary table")
    log.error("it broke")


@pytest.mark.parametrize(
    "level, shown, hidden",
    [
        (-1, ["the summary table", "cnn-tune: error: it broke"], ["progress", "odd", "debug"]),
        (0, ["progress", "cnn-tune: warning: something odd", "the summary table"], ["debug"]),
        (1, ["a debug line", "progress", "cnn-tune: error: it broke"], []),
    ],
)
def test_levels(level, shown, hidden, capsys):
    setup_logging(level)
    say_everything()
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is kept for --json
    for text in shown:
        assert text in captured.err
    for text in hidden:
        assert text not in captured.err
    assert verbosity() == level


def test_quiet_also_quiets_ray_and_mlflow(monkeypatch):
    for name in ("MLFLOW_LOGGING_LEVEL", "RAY_AIR_NEW_OUTPUT"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    mlflow_level = logging.getLogger("mlflow").level
    setup_logging(0)
    assert logging.getLogger("mlflow").level == mlflow_level  # the default leaves it alone
    assert third_party_level() == logging.WARNING
    setup_logging(1)
    assert logging.getLogger("mlflow").level == logging.INFO
    assert third_party_level() == logging.INFO
    setup_logging(-1)
    assert logging.getLogger("mlflow").level == logging.ERROR
    assert logging.getLogger("ray").level == logging.ERROR
    assert third_party_level() == logging.ERROR
    # Read by MLflow when it is imported later, and by Ray Tune when a search starts.
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "ERROR"
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0"
    logging.getLogger("mlflow").setLevel(mlflow_level)
    logging.getLogger("ray").setLevel(logging.NOTSET)


def test_setting_up_twice_prints_once(capsys):
    setup_logging(0)
    setup_logging(0)
    get_logger().info("once")
    assert capsys.readouterr().err == "once\n"
