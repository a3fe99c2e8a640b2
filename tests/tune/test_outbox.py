"""tune.outbox on a real SQLite MLflow store: order, an outage queued on disk, the replay."""

from __future__ import annotations

import pytest
import requests
from mlflow import MlflowClient

from tune.outbox import OUTBOX_FILE, PLACEHOLDER, Outbox


class FlakyStore:
    """A real MlflowClient behind a switch: while `down`, every call fails as an unreachable
    server does (a connection error, no MLflow error code)."""

    def __init__(self, uri: str) -> None:
        self.client = MlflowClient(uri)
        self.down = False
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            if self.down:
                raise requests.exceptions.ConnectionError("connection refused")
            self.calls.append(name)
            return method(*args, **kwargs)

        return call


@pytest.fixture
def outbox(shared_store):
    uri, folder, experiment = shared_store
    flaky = FlakyStore(uri)
    experiment_id = flaky.client.create_experiment(experiment)
    created: list[tuple[str, str]] = []
    box = Outbox(flaky, folder, {}, lambda placeholder, real: created.append((placeholder, real)))
    return box, flaky, experiment_id, created


def metric(name: str, value: float, step: int) -> list:
    return [name, value, 0, step]


def test_writes_go_straight_through_while_the_store_answers(outbox):
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.5, 1)]})
    box.submit({"op": "set_terminated", "run_id": run_id, "status": "FINISHED"})
    assert box.pending() == 0 and not run_id.startswith(PLACEHOLDER)
    assert flaky.calls == ["create_run", "log_batch", "set_terminated"]
    assert flaky.client.get_run(run_id).info.status == "FINISHED"


def test_an_outage_is_queued_in_order_and_replayed_once(outbox, tmp_path, caplog):
    box, flaky, experiment_id, created = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.1, 1)]})

    flaky.down = True
    for step in (2, 3):
        box.submit(
            {"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.1 * step, step)]}
        )
    # A run created during the outage gets a placeholder that later writes use.
    late = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "late",
                       "tags": {}})  # fmt: skip
    assert late.startswith(PLACEHOLDER)
    box.submit({"op": "log_batch", "run_id": late, "metrics": [metric("acc", 0.9, 1)]})
    artifact = tmp_path / "note.txt"
    artifact.write_text("kept")
    box.submit({"op": "log_artifact", "run_id": run_id, "path": str(artifact),
                "artifact_path": None})  # fmt: skip
    artifact.unlink()  # a temporary file: the outbox kept its own copy
    assert box.pending() == 5
    assert "MLflow store unreachable" in caplog.text
    assert not box.flush()  # still down; nothing lost
    assert box.pending() == 5

    flaky.down = False
    assert box.flush(force=True)
    assert box.pending() == 0
    history = flaky.client.get_metric_history(run_id, "acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.30000000000000004)]
    real = box.resolve(late)
    assert created == [(late, real)] and not real.startswith(PLACEHOLDER)
    assert flaky.client.get_run(real).data.metrics == {"acc": 0.9}
    assert [a.path for a in flaky.client.list_artifacts(run_id)] == ["note.txt"]

    # Replayed once: a second flush sends nothing again.
    calls = len(flaky.calls)
    assert box.flush(force=True) and len(flaky.calls) == calls
    assert len(flaky.client.get_metric_history(run_id, "acc")) == 3


def test_a_write_during_an_outage_waits_behind_the_backlog(outbox):
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    flaky.down = True
    box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.2, 2)]})
    flaky.down = False
    # The store is back, but a new write must not overtake the queued one: the backlog goes
    # first (this submit flushes it), so steps arrive in order.
    box.down_since, box.last_try = None, 0.0
    box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.3, 3)]})
    assert box.pending() == 0
    assert [m.step for m in flaky.client.get_metric_history(run_id, "acc")] == [2, 3]


def test_the_backlog_survives_a_new_outbox(outbox, shared_store):
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    flaky.down = True
    box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.4, 1)]})
    _, folder, _ = shared_store
    assert folder and (__import__("pathlib").Path(folder) / OUTBOX_FILE).exists()

    # A new driver (resume) opens the same folder and sends what the old one left.
    flaky.down = False
    again = Outbox(flaky, folder, {}, lambda *_: None)
    assert again.pending() == 1 and again.flush(force=True)
    assert flaky.client.get_run(run_id).data.metrics == {"acc": 0.4}


def test_a_refused_write_is_dropped_with_a_warning(outbox, caplog):
    box, flaky, experiment_id, _ = outbox
    box.submit({"op": "log_batch", "run_id": "0" * 32, "metrics": [metric("acc", 0.4, 1)]})
    assert box.pending() == 0
    assert "MLflow refused a log_batch write, dropped" in caplog.text
