"""tune.lock: one driver per experiment, the holder named in the refusal, a killed holder's lock
free again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tune.errors import ExitCode
from tune.lock import OWNER_FILE, ExperimentLocked, experiment_lock, is_locked, owner


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    folder = str(tmp_path / "state")
    assert not is_locked(folder)
    with experiment_lock(folder, "demo"):
        assert is_locked(folder)
        held = owner(folder)
        assert held["pid"] == os.getpid() and held["host"]
        with pytest.raises(ExperimentLocked) as refused:
            with experiment_lock(folder, "demo"):
                pass
        assert refused.value.exit_code == ExitCode.LOCKED
        assert f"process {os.getpid()}" in str(refused.value) and "'demo'" in str(refused.value)
    assert not is_locked(folder)


def test_a_lock_whose_holder_was_killed_is_free_again(tmp_path):
    folder = tmp_path / "state"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tune.lock import experiment_lock\n"
            f"with experiment_lock({str(folder)!r}, 'demo'):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_locked(str(folder))
        assert owner(str(folder))["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not is_locked(str(folder))  # no stale-lock cleanup needed
    with experiment_lock(str(folder), "demo"):
        assert owner(str(folder))["pid"] == os.getpid()


def test_the_owner_of_a_missing_or_older_owner_file(tmp_path):
    assert owner(str(tmp_path)) == {"text": "another process"}
    (tmp_path / OWNER_FILE).write_text("process 12 (since 2025-01-01 00:00:00)")
    assert owner(str(tmp_path)) == {"text": "process 12 (since 2025-01-01 00:00:00)"}
    (tmp_path / OWNER_FILE).write_text(json.dumps({"pid": 7, "host": "h", "since": "t"}))
    assert owner(str(tmp_path))["text"] == "process 7 on h (since t)"
