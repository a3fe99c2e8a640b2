"""One driver per experiment: an OS file lock in the experiment's state folder.

`fcntl` locks die with their process, so a lock left by a driver that was killed (SIGKILL,
a lost node) is simply free again: no stale-lock cleanup is needed, and no PID guessing.
The holder's PID and start time are written beside the lock for the refusal message.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from tune.errors import Locked

LOCK_FILE = ".cnn_tune.lock"
OWNER_FILE = ".cnn_tune.lock.owner"


class ExperimentLocked(Locked):
    """Another live process drives this experiment (exit code 4)."""


def owner(folder: str) -> dict[str, Any]:
    """Who holds the lock, as its owner file says: {"text", and "pid", "host" when known}."""
    try:
        with open(os.path.join(folder, OWNER_FILE)) as f:
            raw = f.read().strip()
    except OSError:
        return {"text": "another process"}
    try:
        data = json.loads(raw)
    except ValueError:  # an older version's "process PID (since ...)"
        return {"text": raw or "another process"}
    text = f"process {data.get('pid')} on {data.get('host')} (since {data.get('since')})"
    return {**data, "text": text}


def _owner(folder: str) -> str:
    return owner(folder)["text"]


def is_locked(folder: str) -> bool:
    """Whether a live process holds the lock (without taking it)."""
    from filelock import FileLock, Timeout

    if not os.path.exists(os.path.join(folder, LOCK_FILE)):
        return False
    lock = FileLock(os.path.join(folder, LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


@contextlib.contextmanager
def experiment_lock(folder: str, name: str) -> Iterator[None]:
    """Hold the experiment's lock for the block; raise ExperimentLocked if it is taken."""
    from filelock import FileLock, Timeout

    os.makedirs(folder, exist_ok=True)
    lock = FileLock(os.path.join(folder, LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ExperimentLocked(
            f"experiment {name!r} is already being driven by {_owner(folder)}; "
            "wait for it to end, or stop it (its search can then be resumed)"
        ) from None
    try:
        with open(os.path.join(folder, OWNER_FILE), "w") as f:
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            # `cnn-tune stop` reads the pid and host to signal this driver.
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}))
        yield
    finally:
        lock.release()
