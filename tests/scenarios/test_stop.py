"""`cnn-tune stop` on a real running search: the driver stops as on SIGTERM (exit 130, state
saved), `list` sees it running then interrupted, and the search resumes."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    DEMO,
    NAME,
    cnn_tune_here,
    epochs_reported,
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
    # 4 epochs of 1-2 s after the first: `stop` reaches the driver while its trials run.
    args = grid_args("[relu, tanh]", epochs=5, images=1000)
    driver = start("run", str(DEMO), *args, cwd=tmp_path, address=ray_address)
    wait_for(lambda: any(len(e) >= 1 for e in epochs_reported(tmp_path).values()))
    assert listed(tmp_path)[NAME]["state"] == "running"

    stopped = cnn_tune_here("stop", NAME, cwd=tmp_path)
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
