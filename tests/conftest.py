"""Shared test settings: CPU only, few threads, tiny data."""

import os
import shutil
from pathlib import Path

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


@pytest.fixture(scope="session")
def _blank_store_file(tmp_path_factory) -> Path:
    """One empty MLflow SQLite store, its tables made once per session: making them (MLflow's
    migrations) costs 1-2 s, copying the file 30 ms."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("blank-store") / "mlruns.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def blank_sqlite(_blank_store_file):
    """`blank_sqlite(path)` puts an empty, ready MLflow store at `path` and returns its URI: for
    the tests of what goes into a store. Tests of making a store (tune.tracking.store, a failed
    start that must leave none) let the code under test make it."""

    def place(path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_blank_store_file, path)
        return f"sqlite:///{path}"

    return place


@pytest.fixture
def mlflow_server(tmp_path, blank_sqlite):
    """A real `mlflow server` (not started yet: `.start()` or `with`) on a blank SQLite store
    in the test's folder."""
    from tests.servers import MlflowServer

    return MlflowServer(tmp_path, blank_sqlite(tmp_path / "server.db"))


@pytest.fixture
def team_server(tmp_path, postgres, request):
    """`cnn-tune server` (not started yet) on a fresh database of the session's PostgreSQL."""
    import re

    from tests.servers import TeamServer

    database = re.sub(r"\W", "_", request.node.name.lower())[:60]
    return TeamServer(tmp_path, postgres.create(database))


@pytest.fixture
def store(tmp_path, blank_sqlite):
    uri = blank_sqlite(tmp_path / "mlruns.db")
    folder = tmp_path / "exp"
    folder.mkdir()
    return uri, str(folder)


@pytest.fixture(scope="session")
def shared_uri(tmp_path_factory, _blank_store_file):
    """One SQLite store for the tests that each use an experiment of their own."""
    path = tmp_path_factory.mktemp("shared-store") / "mlruns.db"
    shutil.copyfile(_blank_store_file, path)
    return f"sqlite:///{path}"


@pytest.fixture
def shared_store(shared_uri, tmp_path, request):
    """(uri, state folder, a fresh experiment name) on the shared store."""
    folder = tmp_path / "exp"
    folder.mkdir()
    return shared_uri, str(folder), f"e-{request.node.name}"


@pytest.fixture(scope="session")
def shared_head(tmp_path_factory):
    """One real Ray head (2 CPUs, `ray start --head`, its dashboard and job server on
    127.0.0.1) for every in-process search and every `ray job submit` of the session:
    {"address", "dashboard"}. Its address goes to each search as `--address`, so none pays
    Ray's start.

    Its workers get the session's cache and state folders from the head's environment (they do
    not see the test process's). Each search's driver disconnects when it ends; the next test
    checks that none stayed connected."""
    from tests.ray_nodes import ray_temp_dir, start_head, stop_nodes

    base = tmp_path_factory.getbasetemp()
    worker_env = {
        "CNN_TUNE_CACHE": str(base / "cnn-tune-cache"),
        "XDG_STATE_HOME": str(base / "xdg-state"),
    }
    with ray_temp_dir() as temp:
        head = start_head(temp, 2, "head_node", extra_env=worker_env)
        try:
            yield head
        finally:
            stop_nodes(temp)


@pytest.fixture(scope="session")
def shared_ray(shared_head):
    """The shared head's address."""
    return shared_head["address"]


@pytest.fixture
def ray_address(shared_ray):
    """The session's Ray, with no driver left connected by an earlier test."""
    import ray

    assert not ray.is_initialized(), "an earlier in-process search left Ray connected"
    yield shared_ray
    assert not ray.is_initialized(), "the search did not disconnect from Ray"


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL per pytest run (tests/postgres.py), in a folder of its own under
    /tmp (pytest's are root-only; the cluster runs as the `postgres` user). A test takes a
    fresh database with `postgres.create(name)`."""
    import tempfile

    from tests.postgres import running_postgres

    folder = Path(tempfile.mkdtemp(prefix="cnn-tune-pg-"))
    try:
        with running_postgres(folder) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)
