"""tune.tracking.deletion on a real SQLite store: a search's runs soft-deleted, all or none."""

from __future__ import annotations

import socket

import pytest
from mlflow import MlflowClient

from tests.tracking_cases import CFG, TRIAL
from tune.errors import DriverError
from tune.tracking.deletion import delete_runs
from tune.tracking.store import TrackingUnreachable
from tune.tracking.tracker import Tracker


@pytest.fixture
def search(shared_store):
    uri, folder, experiment = shared_store
    tracker = Tracker(uri, experiment, folder)
    tracker.start_search(CFG, "name: s1\n")
    for trial_id in ("a", "b"):
        tracker.trial_started(trial_id, TRIAL)
        tracker.trial_ended(trial_id, "completed")
    tracker.finish_search({}, "FINISHED")
    return uri, tracker


def stages(uri: str, tracker: Tracker) -> list[str]:
    client = MlflowClient(uri)
    ids = [tracker.runs.parent_run_id, tracker.run_id("a"), tracker.run_id("b")]
    return [client.get_run(i).info.lifecycle_stage for i in ids]


def test_the_parent_and_every_child_are_soft_deleted_once(search):
    uri, tracker = search
    assert delete_runs(uri, tracker.runs) == 3
    assert stages(uri, tracker) == ["deleted"] * 3
    assert delete_runs(uri, tracker.runs) == 3  # again: already deleted, nothing fails
    MlflowClient(uri).restore_run(tracker.runs.parent_run_id)  # soft: restorable until gc
    assert stages(uri, tracker)[0] == "active"


def test_a_run_never_created_is_skipped(search):
    uri, tracker = search
    tracker.runs.trials["queued"] = type(tracker.runs.trials["a"])("pending-never-sent")
    assert delete_runs(uri, tracker.runs) == 3


def test_a_missing_run_deletes_nothing(search):
    uri, tracker = search
    tracker.runs.trials["gone"] = type(tracker.runs.trials["a"])("0" * 32)
    with pytest.raises(DriverError):
        delete_runs(uri, tracker.runs)
    assert stages(uri, tracker) == ["active"] * 3  # every id is checked before any is deleted


def test_an_unreachable_server_deletes_nothing(search):
    _, tracker = search
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TrackingUnreachable):
        delete_runs(f"http://127.0.0.1:{port}", tracker.runs)
