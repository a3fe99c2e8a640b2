"""tune.tracking.run_map: the run map's round trip, and a failed save that keeps the old map
whole."""

from __future__ import annotations

import os

import pytest

from tune.tracking.run_map import RunMap, TrialRun


def a_map() -> RunMap:
    return RunMap(
        tracking_uri="sqlite:///m.db",
        experiment_id="1",
        parent_run_id="p",
        trials={"t1": TrialRun("r1", last_step=3, status="FINISHED", reason="done", best=0.9)},
        aliases={"queued-1": "r1"},
        fit_seconds=12.5,
        stopped_by="target",
        status="RUNNING",
    )


def test_a_saved_map_loads_back_equal_with_typed_trials(tmp_path):
    path = str(tmp_path / "map.json")
    a_map().save(path)
    loaded = RunMap.load(path)
    assert loaded == a_map()
    assert isinstance(loaded.trials["t1"], TrialRun)


def test_no_map_file_is_none(tmp_path):
    assert RunMap.load(str(tmp_path / "missing.json")) is None


def test_a_failed_save_leaves_the_old_map_and_no_partial_copy(tmp_path, monkeypatch):
    import errno
    import json

    path = str(tmp_path / "map.json")
    a_map().save(path)
    changed = a_map()
    changed.status = "FINISHED"

    def half_then_full(data, f, **kwargs):  # the disk fills in the middle of the write
        f.write("{")
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(json, "dump", half_then_full)
        with pytest.raises(OSError):
            changed.save(path)
    assert RunMap.load(path).status == "RUNNING"
    assert os.listdir(tmp_path) == ["map.json"]  # no partial copy beside it
    changed.save(path)
    assert RunMap.load(path).status == "FINISHED"
