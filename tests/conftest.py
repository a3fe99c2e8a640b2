"""Shared test settings: CPU only, few threads, tiny data."""

import os

import pytest

# Tests must behave the same on a GPU host: force the CPU path, keep BLAS from oversubscribing.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write the decoded-dataset cache or state to the user's home; one per session."""
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cnn-tune-cache"))
    # State of remote-storage experiments, and the tracking store a config leaves unset: never
    # the user's, and never what the shell running the tests happens to export.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(autouse=True)
def _fresh_logging():
    """A test that runs `main` sets up the `cnn_tune` logger; the next test starts plain
    (records propagating to pytest's caplog)."""
    yield
    import logging

    logger = logging.getLogger("cnn_tune")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
