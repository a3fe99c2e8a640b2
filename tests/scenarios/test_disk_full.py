"""A full disk wherever it strikes: before the first trial it is a failed start (exit 2, nothing
left); mid-search (Ray's experiment state, a trial's checkpoint, an embedded MLflow store on its
own disk) it stops the whole search like SIGTERM (exit 130, one line naming the filesystem, the
path and the moment), and a plain resume after space is freed finishes it. A damaged Ray state
is one line naming the file (the units of `tune.disk_full`: tests/tune/test_disk_full.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from mlflow import MlflowClient

from tests.disks import fill, tmpfs
from tests.helpers import (
    DEMO,
    NAME,
    assert_one_point_per_epoch,
    cnn_tune,
    cnn_tune_here,
    grid_args,
    mlflow_runs,
)
from trainables import faults
from tune import crash_points


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("max_failures", [0, 1])
def test_a_search_that_fills_its_disk_stops_then_resumes_to_the_end(
    tmp_path, max_failures, ray_address
):
    storage = tmpfs(tmp_path / "rr", "400k")  # room for the first checkpoints only
    try:
        args = ["--set", "epochs=3", "--set", "search.num_samples=4", "--set", "trial.width=8",
                "--set", "trial.max_train_images=400", "--set", f"storage_path={storage}",
                "--set", f"search.max_failures={max_failures}"]  # fmt: skip
        # Its own process (the stop signals the driver's process), on the session's Ray.
        out = cnn_tune("run", str(DEMO), *args, "--address", ray_address, cwd=tmp_path)
        assert out.returncode == 130, out.stderr[-3000:]
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        errors = [line for line in out.stderr.splitlines() if line.startswith("cnn-tune: error")]
        assert len(errors) == 1, out.stderr[-3000:]
        assert f"the filesystem at {storage} (0 B free of 400.0 KiB) is full" in errors[0]
        assert f"writing under {storage}/demo-mnist5k" in errors[0]
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(ids)
        statuses = {r.info.run_name: r.info.status for r in runs}
        assert runs and "RUNNING" not in statuses.values(), (statuses, out.stderr[-3000:])
        logged = sum(len(client.get_metric_history(r.info.run_id, "val_acc")) for r in runs)
        assert logged >= 1  # what was logged before the disk filled stays

        subprocess.run(["mount", "-o", "remount,size=64m", str(storage)], check=True)
        resume = ["resume", "demo-mnist5k", "--storage-path", str(storage)]
        out = cnn_tune_here(*resume, cwd=tmp_path, address=ray_address)
        assert out.returncode == 0, out.stderr[-3000:]
        runs = client.search_runs(ids)
        statuses = {r.info.run_name: r.info.status for r in runs}
        assert set(statuses.values()) == {"FINISHED"} and len(runs) == 5, (
            statuses,
            out.stdout[-2000:],
            out.stderr[-4000:],
        )
        for run in runs:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
            assert steps == sorted(set(steps)), (run.info.run_name, steps)  # none twice
    finally:
        subprocess.run(["umount", str(storage)], check=True)


# Each moment below is made to happen, not hoped for: the disk is filled before the start, or
# by a test-only hook just before the write the case is about (`tune.crash_points`' fill,
# `trainables.faults`' fill), so that write is the one that meets ENOSPC.


def one_small_trial(storage, epochs: int) -> list[str]:
    return [*grid_args("[relu]", epochs=epochs, images=200), "--set", f"storage_path={storage}"]


def the_error_line(out) -> str:
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("cnn-tune: error")]
    assert len(errors) == 1, out.stderr[-3000:]
    return errors[0]


def assert_resumes_to_the_end(tmp_path, storage, ray_address, monkeypatch) -> None:
    """Space freed, `resume NAME` exits 0: every trial's run once, FINISHED, no epoch twice."""
    for var in (crash_points.ENV_VAR, faults.ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    os.remove(storage / "filler")
    out = cnn_tune_here("resume", NAME, "--storage-path", str(storage), "--json",
                        cwd=tmp_path, address=ray_address)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and len(children) == json.loads(out.stdout)["trials"]["total"] == 1
    assert {r.info.status for r in parents + children} == {"FINISHED"}
    assert_one_point_per_epoch(client, children)


def assert_nothing_running(tmp_path) -> None:
    _, parents, children = mlflow_runs(tmp_path)
    assert parents and "RUNNING" not in {r.info.status for r in parents + children}


def test_a_disk_full_before_the_first_trial_is_a_failed_start(tmp_path):
    storage = tmpfs(tmp_path / "rr", "256k")
    try:
        fill(storage)
        out = cnn_tune_here("run", str(DEMO), *one_small_trial(storage, 1), cwd=tmp_path)
        assert out.returncode == 2, out.stderr[-3000:]
        line = the_error_line(out)
        assert f"cannot start search '{NAME}': the filesystem at {storage} (0 B free" in line
        assert f"is full, writing under {storage}/{NAME}" in line
        assert os.listdir(storage) == ["filler"]  # nothing left behind
        assert not (tmp_path / "mlruns.db").exists()  # no run was opened
    finally:
        subprocess.run(["umount", str(storage)], check=True)


# Mid-search moments on the storage disk: the variable that asks for the fill, its spec, and
# the epochs of the one trial.
MOMENTS = {
    # The trial's end is logged, then the disk fills: Ray's last save of its experiment state
    # is the write that fails (and the state file it leaves may be cut short).
    "Ray's experiment state": (crash_points.ENV_VAR, "trial_end:1?fill={filler}", 1),
    # The trial fills the disk just before it reports epoch 1: storing that epoch's checkpoint
    # is the write that fails, in the trial's process.
    "a trial's checkpoint": (faults.ENV_VAR, "fill@1?file={filler}", 2),
}


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS), ids=["ray-state", "trial-checkpoint"])
def test_a_disk_that_fills_mid_search_stops_naming_the_moment_then_resumes(
    tmp_path, ray_address, monkeypatch, moment
):
    variable, spec, epochs = MOMENTS[moment]
    storage = tmpfs(tmp_path / "rr", "16m")
    try:
        monkeypatch.setattr(crash_points, "_reached", crash_points.Counter())
        monkeypatch.setenv(variable, spec.format(filler=storage / "filler"))
        out = cnn_tune_here("run", str(DEMO), *one_small_trial(storage, epochs), cwd=tmp_path,
                            address=ray_address)  # fmt: skip
        assert out.returncode == 130, out.stderr[-3000:]
        line = the_error_line(out)
        assert f"the filesystem at {storage} (0 B free of 16.0 MiB) is full" in line
        assert f"writing under {storage}/{NAME} ({moment})" in line
        assert_nothing_running(tmp_path)
        assert_resumes_to_the_end(tmp_path, storage, ray_address, monkeypatch)
    finally:
        subprocess.run(["umount", str(storage)], check=True)


@pytest.mark.ray
@pytest.mark.slow
def test_a_full_disk_under_the_mlflow_store_stops_then_resumes(tmp_path, ray_address, monkeypatch):
    # The store (SQLite file, artifacts beside it) on a disk of its own, filled once the first
    # of two trials has ended: the second trial's run is the write that fails. Nothing can
    # be written there until space is freed: the writes wait in the outbox for the resume.
    storage, store = tmp_path / "rr", tmpfs(tmp_path / "ml", "16m")
    uri = f"sqlite:///{store / 'mlruns.db'}"
    try:
        monkeypatch.setattr(crash_points, "_reached", crash_points.Counter())
        monkeypatch.setenv(crash_points.ENV_VAR, f"trial_end:1?fill={store / 'filler'}")
        args = [*grid_args("[relu, tanh]", epochs=1, images=200), "--set",
                f"storage_path={storage}", "--set", "search.max_concurrent=1",
                "--set", f"mlflow.tracking_uri={uri}"]  # fmt: skip
        out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, address=ray_address)
        assert out.returncode == 130, out.stderr[-3000:]
        line = the_error_line(out)
        # SQLite rolls its journal back after ENOSPC, so the pages the journal had are free
        # again by the time the line is written: a few KiB at most, never the filler's room.
        room = re.search(
            rf"the filesystem at {re.escape(str(store))} \((.+) free of 16.0 MiB\) is full", line
        )
        assert room and re.fullmatch(r"\d+ B|\d+\.\d KiB", room[1]), line
        assert f"writing under {store} (the MLflow store)" in line

        monkeypatch.delenv(crash_points.ENV_VAR)
        os.remove(store / "filler")
        out = cnn_tune_here("resume", NAME, "--storage-path", str(storage), "--json",
                            cwd=tmp_path, address=ray_address)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        client, parents, children = mlflow_runs(tmp_path, uri)
        assert len(parents) == 1 and len(children) == 2
        assert {r.info.status for r in parents + children} == {"FINISHED"}
        assert_one_point_per_epoch(client, children)
    finally:
        # Lazily: MLflow keeps this process's SQLite connection to the store open.
        subprocess.run(["umount", "--lazy", str(store)], check=True)


@pytest.mark.ray
@pytest.mark.slow
def test_a_resume_of_a_damaged_ray_state_is_one_line_naming_the_file(tmp_path, ray_address):
    storage = tmp_path / "rr"
    args = [*one_small_trial(storage, 1), "--set", "search.max_failures=0"]
    out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, address=ray_address)
    assert out.returncode == 0, out.stderr[-3000:]
    [state] = (storage / NAME).glob("experiment_state-*.json")
    state.write_text(state.read_text()[:40])  # cut short by something other than a full disk
    out = cnn_tune_here("resume", NAME, "--storage-path", str(storage), cwd=tmp_path,
                        address=ray_address)  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    assert f"cannot read Ray's experiment state {state}: " in the_error_line(out)
    _, parents, children = mlflow_runs(tmp_path)
    assert [r.info.status for r in parents + children] == ["FINISHED", "FINISHED"]  # untouched
