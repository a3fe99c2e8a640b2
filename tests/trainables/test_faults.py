"""trainables.faults: the test-only fault hook fires where it is asked to, and only there."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time

import pytest

from tests.disks import tmpfs
from trainables.faults import (
    ENV_VAR,
    Fault,
    active_fault,
    fill_before_report,
    hold_until_released,
    parse_fault,
)


def test_a_spec_is_parsed_into_kind_epoch_match_and_marker():
    assert parse_fault("nan@2?activation=sigmoid&once=/tmp/m") == Fault(
        "nan", 2, {"activation": "sigmoid"}, "/tmp/m"
    )
    assert parse_fault("raise@3") == Fault("raise", 3, {}, None)
    assert parse_fault("fill@1?file=/mnt/x") == Fault("fill", 1, {}, None, "/mnt/x")
    assert parse_fault("hold@2?until=/tmp/go") == Fault("hold", 2, {}, until="/tmp/go")


@pytest.mark.parametrize(
    "text",
    ["boom@2", "nan", "nan@two", "@2", "fill@1", "nan@1?file=/x", "hold@2", "nan@1?until=/x"],
)
def test_a_bad_spec_names_the_variable(text):
    with pytest.raises(ValueError, match=ENV_VAR):
        parse_fault(text)


def test_it_fires_in_its_epoch_for_matching_trials_only(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert active_fault(2, {"activation": "sigmoid"}) is None  # unset: the normal case
    monkeypatch.setenv(ENV_VAR, "nan@2?activation=sigmoid")
    assert active_fault(2, {"activation": "sigmoid"}) == "nan"
    assert active_fault(1, {"activation": "sigmoid"}) is None
    assert active_fault(2, {"activation": "relu"}) is None


def test_once_fires_a_single_time_and_leaves_its_marker(monkeypatch, tmp_path):
    marker = tmp_path / "fired"
    monkeypatch.setenv(ENV_VAR, f"raise@1?once={marker}")
    assert active_fault(1, {}) == "raise"
    assert marker.read_text() == "raise@1\n"
    assert active_fault(1, {}) is None  # the retry runs clean


def test_a_fill_is_not_the_loops_and_fills_the_disk_before_the_report(monkeypatch, tmp_path):
    disk = tmpfs(tmp_path / "small", "256k")
    try:
        monkeypatch.setenv(ENV_VAR, f"fill@2?file={disk / 'filler'}")
        assert active_fault(2, {}) is None  # the training loop injects no fill
        fill_before_report(1, {})
        assert os.statvfs(disk).f_bavail > 0  # not its epoch
        fill_before_report(2, {})
        assert os.statvfs(disk).f_bavail == 0
        with pytest.raises(OSError) as full:
            (disk / "checkpoint").write_bytes(b"x")
        assert full.value.errno == errno.ENOSPC
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_held_epoch_goes_on_once_its_release_file_exists(monkeypatch, tmp_path):
    release = tmp_path / "go"
    monkeypatch.setenv(ENV_VAR, f"hold@2?until={release}")
    assert active_fault(2, {}) == "hold" and active_fault(1, {}) is None
    threading.Timer(0.5, release.touch).start()
    started = time.monotonic()
    hold_until_released()
    assert 0.4 < time.monotonic() - started < 5
    assert (tmp_path / "go.held").exists()  # what a test waits on to know a trial is held
