"""Two scheduled searches that start at the same moment on one machine and a fresh store."""

from __future__ import annotations

import json

import pytest

from tests.helpers import DEMO, grid_args, mlflow_runs, start

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_two_searches_at_once_on_a_fresh_store(tmp_path):
    # Each search gets its own share of the CPUs (resources.local_cpus), as README advises.
    args = [*grid_args("[relu]", epochs=1, images=300), "--set", "resources.local_cpus=1"]
    drivers = [
        start("run", str(DEMO), *args, "--name", name, cwd=tmp_path) for name in ("a", "b")
    ]  # the default sqlite:///mlruns.db does not exist yet: both create it at once
    outputs = [driver.communicate(timeout=300) for driver in drivers]
    for driver, (stdout, stderr) in zip(drivers, outputs):
        assert driver.returncode == 0, stderr[-3000:]
        assert json.loads(stdout)["trials"]["finished"] == 1
    client, parents, children = mlflow_runs(tmp_path)
    assert sorted(p.info.run_name for p in parents) == ["a", "b"]
    assert {p.info.status for p in parents} == {"FINISHED"}
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id for p in parents}
