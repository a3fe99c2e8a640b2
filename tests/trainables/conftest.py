"""Fixtures shared by the dataset tests."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist5k_cache(tmp_path_factory) -> Path:
    """One cache folder for the mnist5k tests: the 5,000 digits are decoded once per session."""
    return tmp_path_factory.mktemp("mnist5k-cache")
