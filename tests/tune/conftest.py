"""Fixtures for the tune tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    folder = tmp_path / "exp"
    folder.mkdir()
    return uri, str(folder)


@pytest.fixture(scope="session")
def shared_uri(tmp_path_factory):
    """One SQLite store for the tests that each use an experiment of their own: creating a
    store's tables costs ~2 s."""
    return f"sqlite:///{tmp_path_factory.mktemp('shared-store') / 'mlruns.db'}"


@pytest.fixture
def shared_store(shared_uri, tmp_path, request):
    """(uri, state folder, a fresh experiment name) on the shared store."""
    folder = tmp_path / "exp"
    folder.mkdir()
    return shared_uri, str(folder), f"e-{request.node.name}"
