"""Test-only driver faults at a named point of a search: SIGKILL the driver, or fill a disk.

SIGKILL takes the driver and its local Ray; a fill leaves a filesystem without one byte, so the
next write on it fails with a real ENOSPC.

A resume must hold at every moment a driver can die or its disk can fill, and some moments
(between a trial's end and the next start, in the middle of the end-of-search logging, just
before Ray saves its experiment state for the last time) cannot be hit from outside at will.
Tests set `CNN_TUNE_DRIVER_CRASH`; nothing else does.

    CNN_TUNE_DRIVER_CRASH="trial_end:2?once=/tmp/m"   die right after the 2nd trial this driver
                                                      saw end (once: while /tmp/m does not exist)
    CNN_TUNE_DRIVER_CRASH="search_end?once=/tmp/m"    die in the middle of the end-of-search logging
    CNN_TUNE_DRIVER_CRASH="trial_end:1?fill=/mnt/small/x"   after the 1st trial's end is logged,
                                                      fill the filesystem of /mnt/small/x instead
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable

from trainables.faults import fill_filesystem

ENV_VAR = "CNN_TUNE_DRIVER_CRASH"
POINTS = ("trial_end", "search_end")

_reached: Counter[str] = Counter()


def crash_point(point: str, settle: Callable[[], None] | None = None) -> None:
    """SIGKILL this process group, or fill a disk, when the test asked for it here (no-op
    otherwise).

    `settle`, before a fill: lets the writes this point follows land first (the MLflow sender's
    queue), so the fill meets the write the test is about, not one of theirs running late."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    _reached[point] += 1
    where, _, options = spec.partition("?")
    name, _, count = where.partition(":")
    if name != point or _reached[point] != int(count or 1):
        return
    settings = dict(opt.split("=", 1) for opt in options.split("&") if "=" in opt)
    if "fill" in settings:
        if settle is not None:
            settle()
        fill_filesystem(settings["fill"])
        return
    marker = settings.get("once")
    if marker:
        if os.path.exists(marker):
            return
        with open(marker, "w") as f:
            f.write(point)
    os.killpg(os.getpgid(0), signal.SIGKILL)  # the driver and the Ray it started, like `kill -9`
