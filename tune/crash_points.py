"""Test-only driver crashes: SIGKILL the driver (and its local Ray) at a named point of a search.

A resume must hold at every moment a driver can die, and some moments (between a trial's end and
the next start, in the middle of the end-of-search logging) cannot be hit from outside at will.
Tests set `CNN_TUNE_DRIVER_CRASH`; nothing else does.

    CNN_TUNE_DRIVER_CRASH="trial_end:2?once=/tmp/m"   die right after the 2nd trial this driver
                                                      saw end (once: while /tmp/m does not exist)
    CNN_TUNE_DRIVER_CRASH="search_end?once=/tmp/m"    die in the middle of the end-of-search logging
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV_VAR = "CNN_TUNE_DRIVER_CRASH"
POINTS = ("trial_end", "search_end")

_reached: Counter[str] = Counter()


def crash_point(point: str) -> None:
    """SIGKILL this process group when the test asked to die here (no-op otherwise)."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    _reached[point] += 1
    where, _, options = spec.partition("?")
    name, _, count = where.partition(":")
    if name != point or _reached[point] != int(count or 1):
        return
    marker = dict(opt.split("=", 1) for opt in options.split("&") if "=" in opt).get("once")
    if marker:
        if os.path.exists(marker):
            return
        with open(marker, "w") as f:
            f.write(point)
    os.killpg(os.getpgid(0), signal.SIGKILL)  # the driver and the Ray it started, like `kill -9`
