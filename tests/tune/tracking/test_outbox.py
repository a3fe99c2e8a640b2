"""tune.tracking._outbox on a real SQLite MLflow store: order, an outage queued on disk, the
replay."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import RestException

from trainables import files as files_module
from tune import disk_full
from tune.tracking import _outbox as outbox_module
from tune.tracking._outbox import OUTBOX_FILE, PLACEHOLDER, Outbox


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
def outbox(shared_store, tmp_path):
    uri, folder, experiment = shared_store
    flaky = FlakyStore(uri)
    artifacts = (tmp_path / "artifacts").as_uri()
    experiment_id = flaky.client.create_experiment(experiment, artifact_location=artifacts)
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
    assert (Path(folder) / OUTBOX_FILE).exists()

    # A new driver (resume) opens the same folder and sends what the old one left.
    flaky.down = False
    again = Outbox(flaky, folder, {}, lambda *_: None)
    assert again.pending() == 1 and again.flush(force=True)
    assert flaky.client.get_run(run_id).data.metrics == {"acc": 0.4}


def test_a_refused_write_is_set_aside_and_the_rest_flow(outbox, caplog):
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    flaky.down = True
    never = "0" * 32  # a run that does not exist: refused for good
    box.submit({"op": "log_batch", "run_id": never, "metrics": [metric("acc", 0.4, 1)]})
    box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.5, 1)]})
    flaky.down = False
    assert box.flush(force=True)  # the refused one does not block the one behind it
    assert flaky.client.get_run(run_id).data.metrics == {"acc": 0.5}
    rejected = [json.loads(line) for line in Path(box.rejected).read_text().splitlines()]
    assert [r["op"]["run_id"] for r in rejected] == [never]
    assert rejected[0]["reason"]
    assert box.set_aside == 1 and "set aside" in caplog.text


class Refusing:
    """A store that answers every call with HTTP 403 (credentials rotated away)."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise RestException({"error_code": "PERMISSION_DENIED", "message": "forbidden"})

        return call


def test_rejected_credentials_keep_every_record_and_stop_sending(outbox, caplog):
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    box.client = Refusing()
    for step in (1, 2, 3):
        box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.1, step)]})
    assert box.pending() == 3 and box.set_aside == 0  # kept, not dropped
    assert "rejected the credentials" in caplog.text
    box.client = flaky  # credentials fixed (the next resume)
    assert not box.flush()  # not retried on its own with the same credentials
    assert box.flush(force=True) and box.pending() == 0
    assert [m.step for m in flaky.client.get_metric_history(run_id, "acc")] == [1, 2, 3]


class Killed(BaseException):
    """Stands in for SIGKILL in the middle of a flush."""


def test_a_flush_killed_midway_sends_nothing_twice(outbox, tmp_path):
    box, flaky, experiment_id, _ = outbox
    flaky.down = True
    tags = {"mlflow.parentRunId": "p" * 32, "cnn_tune.trial_id": "t1"}
    run = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                      "tags": tags})  # fmt: skip
    artifact = tmp_path / "curve.txt"
    artifact.write_text("x")
    box.submit({"op": "log_artifact", "run_id": run, "path": str(artifact), "artifact_path": None})
    box.submit({"op": "log_batch", "run_id": run, "metrics": [metric("acc", 0.1, 1)]})
    flaky.down = False

    calls = []
    real = flaky.client.log_batch

    def dies_on_log_batch(*args, **kwargs):
        calls.append(1)
        real(*args, **kwargs)  # the point reaches the store ...
        raise Killed  # ... and the driver dies before it can record that

    flaky.client.log_batch = dies_on_log_batch
    with pytest.raises(Killed):
        box.flush(force=True)
    flaky.client.log_batch = real

    # A new driver replays: the run is found, not created again; the artifact's copy is there.
    again = Outbox(flaky, str(Path(box.path).parent), box.aliases, lambda *_: None)
    assert again.pending() == 1  # only the write whose progress was not recorded
    assert again.flush(force=True)
    runs = flaky.client.search_runs([experiment_id])
    assert len(runs) == 1
    assert [a.path for a in flaky.client.list_artifacts(runs[0].info.run_id)] == ["curve.txt"]
    # The one write whose progress was lost is sent again, identical (same timestamp): the
    # store keeps one point.
    assert len(flaky.client.get_metric_history(runs[0].info.run_id, "acc")) == 1
    assert calls == [1]


def test_creating_a_run_twice_finds_the_first(outbox):
    box, flaky, experiment_id, _ = outbox
    tags = {"mlflow.parentRunId": "q" * 32, "cnn_tune.trial_id": "t9"}
    op = {"op": "create_run", "experiment_id": experiment_id, "run_name": "r", "tags": tags}
    first = box.submit(op)
    assert box.submit(op) == first
    other = box.submit({**op, "tags": {**tags, "mlflow.parentRunId": "z" * 32}})
    assert other != first  # another search's trial of the same id (after --overwrite)


class Slow:
    """A store that takes its time to fail (a server that accepts and never answers)."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.calls = 0
        self.seconds = seconds

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls += 1
            time.sleep(self.seconds)
            raise requests.exceptions.ReadTimeout("read timed out")

        return call


def test_the_retry_clock_starts_when_a_failed_attempt_ends(outbox, monkeypatch):
    box, _, _, _ = outbox
    monkeypatch.setattr(outbox_module, "RETRY_EVERY_S", 0.2)
    box.client = slow = Slow()
    box.submit({"op": "log_batch", "run_id": "r" * 32, "metrics": [metric("acc", 0.1, 1)]})
    assert slow.calls == 1
    # The attempt took longer than the retry interval: the next write must not try again
    # at once (that is what would make every trial report wait for the timeout).
    box.submit({"op": "log_batch", "run_id": "r" * 32, "metrics": [metric("acc", 0.2, 2)]})
    assert slow.calls == 1 and box.pending() == 2
    time.sleep(0.25)
    box.submit({"op": "log_batch", "run_id": "r" * 32, "metrics": [metric("acc", 0.3, 3)]})
    assert slow.calls == 2


def test_a_full_disk_keeps_the_writes_in_memory_in_order_and_says_so(outbox, monkeypatch, caplog):
    # CI found the old way: a state folder on the full disk dropped every write (a trial's end
    # too), so runs stayed RUNNING in a store that was up all along.
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    flaky.down = True

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outbox_module, "open", full, raising=False)
    for step in (1, 2):
        box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.1, step)]})
    box.submit({"op": "set_terminated", "run_id": run_id, "status": "FINISHED"})
    assert box.lost == 0 and box.pending() == 3
    assert "cannot keep MLflow records on disk" in caplog.text
    assert "No space left on device" in caplog.text and "wait in memory" in caplog.text
    flaky.down = False
    assert box.flush(force=True) is True and box.pending() == 0
    assert [m.step for m in flaky.client.get_metric_history(run_id, "acc")] == [1, 2]
    assert flaky.client.get_run(run_id).info.status == "FINISHED"


def test_writes_behind_one_held_in_memory_wait_behind_it(outbox, monkeypatch):
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    flaky.down = True
    real_open = open
    refused = {"left": 1}

    def full_once(path, mode="r", *args, **kwargs):  # the disk refuses one append, then frees
        if "a" in mode and refused["left"]:
            refused["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(outbox_module, "open", full_once, raising=False)
    for step in (1, 2, 3):
        box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.1, step)]})
    assert box.pending() == 3 and not os.path.exists(box.path)  # 2 and 3 queued behind 1
    flaky.down = False
    flaky.calls.clear()
    assert box.flush(force=True) is True
    assert flaky.calls == ["log_batch"] * 3
    history = flaky.client.get_metric_history(run_id, "acc")
    assert [m.step for m in sorted(history, key=lambda m: m.timestamp)] == [1, 2, 3]


def test_the_end_of_a_search_keeps_sending_for_a_while(outbox, monkeypatch):
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    flaky.down = True
    box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.1, 1)]})
    polls = []

    def store_back_after_two_polls(seconds):
        polls.append(seconds)
        flaky.down = len(polls) < 2

    monkeypatch.setattr(outbox_module.time, "sleep", store_back_after_two_polls)
    assert box.send_backlog(within_s=60, poll_s=2.0) == 0
    assert len(polls) == 2
    flaky.down = True
    box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.2, 2)]})
    polls.clear()
    monkeypatch.setattr(outbox_module.time, "sleep", lambda s: polls.append(s))
    assert box.send_backlog(within_s=5, poll_s=2.0) == 1  # gives up in time, keeps it
    assert len(polls) == 2


def test_with_a_sender_thread_a_hanging_store_never_blocks_a_write(outbox):
    """While trials run, a thread sends: a trial's report (a write) never waits on the store."""
    box, flaky, experiment_id, _ = outbox
    placeholder = None
    box.client = hanging = Slow(seconds=1.0)
    box.start_background()
    try:
        started = time.monotonic()
        placeholder = box.submit({"op": "create_run", "experiment_id": experiment_id,
                                  "run_name": "r", "tags": {}})  # fmt: skip
        for step in range(1, 6):
            point = metric("acc", 0.1 * step, step)
            box.submit({"op": "log_batch", "run_id": placeholder, "metrics": [point]})
        assert time.monotonic() - started < 0.5  # queued at once, whatever the store does
        time.sleep(0.3)
        assert hanging.calls >= 1  # the sender is trying, off this thread
    finally:
        box.stop_background()  # waits for the attempt in flight
    box.client = flaky  # the store answers again
    assert box.flush(force=True) and box.pending() == 0
    run_id = box.resolve(placeholder)
    steps = [m.step for m in flaky.client.get_metric_history(run_id, "acc")]
    assert steps == [1, 2, 3, 4, 5]


def test_the_sender_thread_sends_in_order_while_writes_keep_coming(outbox):
    box, flaky, experiment_id, _ = outbox
    box.start_background()
    try:
        run = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                          "tags": {}})  # fmt: skip
        for step in range(1, 21):
            box.submit({"op": "log_batch", "run_id": run, "metrics": [metric("acc", 0.0, step)]})
        deadline = time.monotonic() + 20
        while box.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        box.stop_background()
    assert box.pending() == 0
    history = flaky.client.get_metric_history(box.resolve(run), "acc")
    assert sorted(m.step for m in history) == list(range(1, 21))


def test_a_flush_on_a_full_disk_sends_each_queued_write_once_and_ends(outbox, monkeypatch, caplog):
    # CI found this: the disk filled while writes were queued, and the flush at the end of the
    # search raised from saving its progress instead of sending what waited.
    box, flaky, experiment_id, _ = outbox
    run_id = box.submit({"op": "create_run", "experiment_id": experiment_id, "run_name": "r",
                         "tags": {}})  # fmt: skip
    flaky.down = True
    for step in (1, 2, 3):
        box.submit({"op": "log_batch", "run_id": run_id, "metrics": [metric("acc", 0.1, step)]})
    assert box.pending() == 3
    real_open = open

    def full_for_writes(path, mode="r", *args, **kwargs):
        if "w" in mode or "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(outbox_module, "open", full_for_writes, raising=False)
    monkeypatch.setattr(files_module, "open", full_for_writes, raising=False)  # atomic_write's
    flaky.down = False
    flaky.calls.clear()
    assert box.flush(force=True) is True
    assert flaky.calls == ["log_batch"] * 3  # each once: no resend from a stale progress file
    history = flaky.client.get_metric_history(run_id, "acc")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert "cannot save the MLflow outbox's progress" in caplog.text
    assert box.pending() == 0


class FullStore:
    """An embedded store whose disk is full: every write fails as SQLite's does then."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise sqlite3.OperationalError("database or disk is full")

        return call


def test_a_full_store_disk_keeps_the_writes_in_order_and_stops_the_search(outbox, monkeypatch):
    box, flaky, experiment_id, _ = outbox
    run = flaky.client.create_run(experiment_id).info.run_id
    box.client, box.store_path = FullStore(), "/stores/team"
    noticed = []
    monkeypatch.setattr(disk_full, "notice", lambda *args: noticed.append(args) or True)
    for step in (1, 2):
        box.submit({"op": "log_batch", "run_id": run, "metrics": [metric("val_acc", 0.5, step)]})
    assert box.pending() == 2 and box.set_aside == 0  # waiting, never refused for good
    assert noticed[0][1:] == (disk_full.MLFLOW_STORE, "/stores/team")
    box.client = flaky  # space freed
    assert box.flush(force=True)
    assert [m.step for m in flaky.client.get_metric_history(run, "val_acc")] == [1, 2]
