"""`cnn-tune stop` on a real running search: the driver stops as on SIGTERM (exit 130, state
saved), `list` sees it running then interrupted, and the search resumes."""

from __future__ import annotations

import json
import threading

import pytest

from tests.helpers import (
    DEMO,
    NAME,
    cnn_tune_here,
    grid_args,
    mlflow_runs,
    start,
    wait_for,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def listed(folder) -> dict:
    out = cnn_tune_here("list", "--json", cwd=folder)
    assert out.returncode == 0, out.stderr
    return {e["name"]: e for e in json.loads(out.stdout)}


def test_stop_asks_the_live_driver_to_stop_cleanly_and_it_resumes(tmp_path, ray_address):
    # The trials wait in epoch 2 until `release` exists: `stop` reaches the driver while they
    # run, however fast the machine. Released 2 s after the stop, they reach their next report
    # and stop there (held, Ray would give them 10 s, then kill them). The resume does not
    # hold them.
    release = tmp_path / "release"
    hold = {"CNN_TUNE_FAULT": f"hold@2?until={release}"}
    args = grid_args("[relu, tanh]", epochs=3, images=300)
    driver = start("run", str(DEMO), *args, cwd=tmp_path, env=hold, address=ray_address)
    wait_for((tmp_path / "release.held").exists)
    assert listed(tmp_path)[NAME]["state"] == "running"

    threading.Timer(2.0, release.touch).start()
    stopped = cnn_tune_here("stop", NAME, cwd=tmp_path)  # returns once the driver is gone
    assert stopped.returncode == 0, stopped.stderr
    assert f"cnn-tune resume {NAME}" in stopped.stderr
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr[-3000:]  # as SIGTERM: trials stopped, state saved
    assert json.loads(stdout)["interrupted"] is True
    assert listed(tmp_path)[NAME]["state"] == "interrupted"
    _, parents, _ = mlflow_runs(tmp_path)
    assert parents[0].info.status == "KILLED"

    again = cnn_tune_here("stop", NAME, cwd=tmp_path)
    assert again.returncode == 2 and "no driver is running" in again.stderr

    resumed = cnn_tune_here("resume", NAME, "--json", cwd=tmp_path, address=ray_address)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["trials"]["finished"] == 2
    assert listed(tmp_path)[NAME]["state"] == "finished"
