"""tune.crash_points: the test-only driver crash kills its process group at the named point."""

from __future__ import annotations

import errno
import os
import signal
import subprocess

import pytest

from tests.disks import tmpfs
from tune import crash_points
from tune.crash_points import ENV_VAR, crash_point


def killed(monkeypatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(os, "killpg", lambda group, signum: sent.append(signum))
    monkeypatch.setattr(crash_points, "_reached", crash_points.Counter())
    return sent


def test_nothing_happens_without_the_variable(monkeypatch):
    sent = killed(monkeypatch)
    monkeypatch.delenv(ENV_VAR, raising=False)
    crash_point("trial_end")
    assert sent == []


def test_it_dies_at_the_nth_time_the_point_is_reached(monkeypatch):
    sent = killed(monkeypatch)
    monkeypatch.setenv(ENV_VAR, "trial_end:2")
    crash_point("search_end")  # another point: not counted
    crash_point("trial_end")
    assert sent == []
    crash_point("trial_end")
    assert sent == [signal.SIGKILL]


def test_once_dies_only_while_its_marker_is_missing(monkeypatch, tmp_path):
    sent = killed(monkeypatch)
    marker = tmp_path / "m"
    monkeypatch.setenv(ENV_VAR, f"search_end?once={marker}")
    crash_point("search_end")
    assert sent == [signal.SIGKILL] and marker.read_text() == "search_end"
    monkeypatch.setattr(crash_points, "_reached", crash_points.Counter())  # the resumed driver
    crash_point("search_end")
    assert sent == [signal.SIGKILL]


def test_fill_fills_the_disk_instead_of_dying(monkeypatch, tmp_path):
    sent = killed(monkeypatch)
    disk = tmpfs(tmp_path / "small", "256k")
    try:
        monkeypatch.setenv(ENV_VAR, f"trial_end:1?fill={disk / 'filler'}")
        crash_point("trial_end")
        assert sent == [] and os.statvfs(disk).f_bavail == 0
        with pytest.raises(OSError) as full:
            (disk / "next").write_bytes(b"x")
        assert full.value.errno == errno.ENOSPC  # the next write is the one that fails
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_fill_lets_the_writes_it_follows_land_first(monkeypatch, tmp_path):
    killed(monkeypatch)
    disk = tmpfs(tmp_path / "small", "256k")
    try:
        monkeypatch.setenv(ENV_VAR, f"trial_end:1?fill={disk / 'filler'}")
        late = disk / "late-write"  # a write queued before the point, landing late
        crash_point("trial_end", settle=lambda: late.write_bytes(b"x" * 1000))
        assert late.stat().st_size == 1000 and os.statvfs(disk).f_bavail == 0
        # and without a fill asked for, settle is not called
        monkeypatch.setenv(ENV_VAR, "search_end:5")
        crash_point("trial_end", settle=lambda: pytest.fail("settled without a fill"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)
