"""tune.disk_full: a full disk is known by its errno or its text, through causes and contexts;
the line names the filesystem and the path; the watch stops the fit once (the scenario, a real
search filling a real tmpfs, is tests/scenarios/test_disk_full.py)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess

import pytest

from tests.disks import fill, tmpfs
from tune import disk_full
from tune.disk_full import FullDiskWatch, describe_full, is_disk_full, mount_point


@pytest.fixture
def small_disk(tmp_path):
    folder = tmpfs(tmp_path / "small", "64k")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


class FakeRayTaskError(Exception):
    """What Ray raises on the driver for a trial's failure: the trial's exception in `cause`."""

    def __init__(self, cause):
        super().__init__("ray::ImplicitFunc.train() failed")
        self.cause = cause


@pytest.mark.parametrize(
    "exc, full",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] ..."), True),
        (FakeRayTaskError(OSError(errno.ENOSPC, "x")), True),
        ("Failure # 1\nOSError: [Errno 28] No space left on device\n", True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("28 trials"), False),
        (None, False),
    ],
)
def test_a_full_disk_is_known_by_its_errno_or_its_text(exc, full):
    assert is_disk_full(exc) is full


def test_a_full_disk_is_found_through_causes_and_contexts():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise EOFError("Ran out of input") from None
    except EOFError as exc:
        assert not is_disk_full(exc)  # `from None` hides the context on purpose
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as exc:
        assert is_disk_full(exc)


def test_the_line_names_the_filesystem_and_the_path(small_disk):
    fill(small_disk)
    assert mount_point(str(small_disk / "a" / "b")) == str(small_disk)
    text = describe_full(str(small_disk / "exp"))
    assert text.startswith(f"the filesystem at {small_disk} (0 B free of 64.0 KiB) is full")
    assert text.endswith(f"writing under {small_disk / 'exp'}")


def test_a_watch_stops_only_while_the_fit_runs(monkeypatch, tmp_path):
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(sig))
    watch = FullDiskWatch("demo", str(tmp_path))
    assert not watch.notice(OSError(errno.EACCES, "Permission denied"))
    assert watch.notice(OSError(errno.ENOSPC, "No space left on device")) and sent == []
    watch.armed = True
    watch.notice(OSError(errno.ENOSPC, "x"))
    watch.notice(OSError(errno.ENOSPC, "x"))
    assert sent == [signal.SIGINT]  # once: a second SIGINT would skip Ray's state save
    error = watch.error()
    assert error.exit_code == 130 and "`cnn-tune resume demo`" in str(error)


def test_the_run_map_on_a_full_disk_stays_whole(small_disk):
    from tune.tracking.run_map import RunMap

    path = str(small_disk / "cnn_tune_mlflow.json")
    RunMap("sqlite:///x.db", "1", "parent").save(path)
    fill(small_disk)
    big = RunMap("sqlite:///x.db", "1", "parent", aliases={str(i): "r" * 50 for i in range(5000)})
    with pytest.raises(OSError):
        big.save(path)
    assert RunMap.load(path).parent_run_id == "parent"  # the old map, not a cut one
    assert not list(small_disk.glob("*.tmp"))  # no partial copy beside it
    assert disk_full.notice(OSError(errno.ENOSPC, "x"))  # no search driven: only told


def test_the_line_names_the_moment_and_the_mlflow_stores_own_folder(tmp_path):
    watch = FullDiskWatch("demo", str(tmp_path / "exp"))
    watch.store_path = str(tmp_path / "store")
    sqlite_full = Exception("(sqlite3.OperationalError) database or disk is full")
    assert watch.notice(sqlite_full, disk_full.MLFLOW_STORE)
    assert f"writing under {tmp_path / 'store'} (the MLflow store)" in str(watch.error())
    other = FullDiskWatch("demo", str(tmp_path / "exp"))
    other.notice(OSError(errno.ENOSPC, "No space left on device"), disk_full.RAY_STATE)
    assert f"writing under {tmp_path / 'exp'} (Ray's experiment state)" in str(other.error())


@pytest.mark.parametrize(
    "logger, message, moment",
    [
        ("ray.tune.execution.experiment_state", "Saving experiment state to storage at 'x' "
         "failed with exception: [Errno 28] No space left on device", "Ray's experiment state"),
        ("ray.tune", "Trial task failed: OSError: [Errno 28] No space left on device",
         "a trial's checkpoint"),
        ("mlflow.store.db.utils", "SQLAlchemy database error. (sqlite3.OperationalError) "
         "database or disk is full", "the MLflow store"),
    ],
)  # fmt: skip
def test_ray_and_mlflow_log_lines_of_a_full_disk_are_hidden_and_name_their_moment(
    monkeypatch, tmp_path, logger, message, moment
):
    monkeypatch.setattr(os, "kill", lambda pid, sig: None)
    hide = disk_full._HideFullDiskTracebacks()
    with disk_full.watch_for_full_disk("demo", str(tmp_path)) as watch:
        watch.store_path = str(tmp_path / "store")  # an embedded store's folder
        record = logging.LogRecord(logger, logging.ERROR, __file__, 1, message, None, None)
        assert hide.filter(record) is False  # hidden: the one line says it
        quiet = logging.LogRecord(logger, logging.ERROR, __file__, 1, "other trouble", None, None)
        assert hide.filter(quiet) is True
        assert f"({moment})" in watch.found


def test_a_tracking_servers_full_disk_is_not_this_searchs(tmp_path):
    watch = FullDiskWatch("demo", str(tmp_path / "exp"))  # no embedded store: a server's
    assert not watch.notice(Exception("database or disk is full"), disk_full.MLFLOW_STORE)
    assert watch.found is None


def test_the_state_kept_aside_belongs_to_one_experiment_folder(tmp_path, monkeypatch):
    """Two searches of one name in two storage paths: the state one kept when its disk filled
    is put back by its own resume only (a slow-lane run put one test's into the next's)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    here, there = tmp_path / "a" / "demo", tmp_path / "b" / "demo"
    for folder in (here, there):
        folder.mkdir(parents=True)
        (folder / "experiment_state-x.json").write_text(f'{{"from": "{folder}"}}')
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "experiment_state-x.json").write_text('{"from": "kept"}')
    watch = FullDiskWatch("demo", str(here))
    watch.staging = str(staging)
    watch.keep_state()
    assert disk_full.kept_state_dir(str(here)) != disk_full.kept_state_dir(str(there))

    disk_full.restore_kept_state(str(there))  # the other search's resume takes nothing
    assert (there / "experiment_state-x.json").read_text() == f'{{"from": "{there}"}}'
    disk_full.restore_kept_state(str(here))
    assert (here / "experiment_state-x.json").read_text() == '{"from": "kept"}'
    assert not os.path.exists(disk_full.kept_state_dir(str(here)))  # taken once
