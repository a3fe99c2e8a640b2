"""Shared test settings: CPU only, few threads, tiny data."""

import os

import pytest

# Tests must behave the same on a GPU host: force the CPU path, keep BLAS from oversubscribing.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write the decoded-dataset cache to the user's home; share one per test session."""
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cnn-tune-cache"))
