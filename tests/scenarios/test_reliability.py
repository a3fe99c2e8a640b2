"""Faults a long search meets: crashing trials, a killed or stopped driver, a second driver,
a tracking server that goes away, and a finished search run again."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    DEMO,
    NAME,
    REPO,
    assert_one_point_per_epoch,
    cnn_tune_here,
    epochs_reported,
    grid_args,
    mlflow_runs,
    start,
    wait_for,
)
from tune.lock import experiment_lock

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_crashed_trial_resumes_from_its_checkpoint(tmp_path, ray_address):
    marker = tmp_path / "fired"
    fault = {"CNN_TUNE_FAULT": f"raise@2?activation=relu&once={marker}"}
    out = cnn_tune_here(
        "run", str(DEMO), *grid_args(), cwd=tmp_path, env=fault, address=ray_address
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert marker.exists()  # the fault really fired
    summary = json.loads(out.stdout)
    assert summary["trials"]["finished"] == 2 and summary["trials"]["failed"] == 0
    # The retry restored epoch 1's checkpoint and went on with epoch 2: no epoch ran twice.
    assert sorted(epochs_reported(tmp_path).values()) == [[1, 2, 3], [1, 2, 3]]
    assert "retry" in out.stderr
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 2  # the retry reused its run
    assert {c.info.status for c in children} == {"FINISHED"}
    assert_one_point_per_epoch(client, children)


def test_trial_failing_beyond_max_failures_is_failed_with_its_reason(tmp_path, ray_address):
    fault = {"CNN_TUNE_FAULT": "raise@2?activation=relu"}  # fires on every retry
    out = cnn_tune_here(
        "run", str(DEMO), *grid_args(), cwd=tmp_path, env=fault, address=ray_address
    )
    assert out.returncode == 1, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["trials"]["failed"] == 1 and summary["trials"]["finished"] == 1
    failed = next(t for t in summary["trial_results"] if t["outcome"] == "failed")
    assert failed["config"]["activation"] == "relu"
    assert "injected fault in epoch 2" in failed["error"]
    assert "failed " in out.stderr and "injected fault" in out.stderr
    _, _, children = mlflow_runs(tmp_path)
    run = next(c for c in children if c.data.params["activation"] == "relu")
    assert run.info.status == "FAILED"
    assert run.data.tags["cnn_tune.stop_reason"] == "error"
    assert "injected fault in epoch 2" in run.data.tags["cnn_tune.error"]

    # Plain resume keeps it errored (it used up its retries) and earns the same exit code ...
    again = cnn_tune_here("resume", NAME, "--json", cwd=tmp_path, address=ray_address)
    assert again.returncode == 1 and json.loads(again.stdout)["trials"]["failed"] == 1
    # ... --retry-errored (the fault now gone) continues it from its epoch-1 checkpoint.
    retried = cnn_tune_here(
        "resume", NAME, "--retry-errored", "--json", cwd=tmp_path, address=ray_address
    )
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert json.loads(retried.stdout)["trials"]["finished"] == 2
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 2
    assert {c.info.status for c in children} == {"FINISHED"}
    assert_one_point_per_epoch(client, children)


def test_sigkill_at_three_moments_then_resume_loses_and_doubles_nothing(tmp_path, ray_address):
    """One 4-trial search whose driver (and its Ray) is killed with SIGKILL during a trial,
    between a trial's end and the next start, and during the end-of-search logging; resumed
    after each. At the end: 4 trials, 4 child runs, 1 parent, nothing RUNNING, no epoch logged
    twice, and the best model logged and registered once."""
    activations = "[relu, tanh, elu, silu]"  # two waves of two: the second starts after one ends
    args = [
        *grid_args(activations, epochs=3, images=300),
        "--set",
        "mlflow.registered_model=digits",
    ]

    def crashing_resume(point: str) -> None:
        marker = tmp_path / f"crashed-{point}"
        env = {"CNN_TUNE_DRIVER_CRASH": f"{point}?once={marker}"}
        driver = start("resume", NAME, "--json", cwd=tmp_path, env=env, address=ray_address)
        stdout, stderr = driver.communicate(timeout=300)
        assert driver.returncode == -signal.SIGKILL, stderr[-3000:]
        assert marker.exists()  # it died where it was asked to
        time.sleep(1)

    # 1. during a trial: held in epoch 2 (a file never made), so still running when killed
    hold = {"CNN_TUNE_FAULT": f"hold@2?until={tmp_path / 'never'}"}
    driver = start("run", str(DEMO), *args, cwd=tmp_path, env=hold, address=ray_address)
    try:
        wait_for((tmp_path / "never.held").exists)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver; Ray ends its job's trials
        driver.wait()
    time.sleep(1)
    crashing_resume("trial_end:1")  # 2. right after a trial ended, before the next started
    crashing_resume("search_end")  # 3. in the middle of the end-of-search logging

    out = cnn_tune_here("resume", NAME, "--json", cwd=tmp_path, address=ray_address)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["trials"]["total"] == 4 and summary["trials"]["finished"] == 4
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4
    assert len({c.data.tags["cnn_tune.trial_id"] for c in children}) == 4
    assert {c.info.status for c in children} == {"FINISHED"}
    assert_one_point_per_epoch(client, children)
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "val_acc")) == 3
    assert "test_acc" in parents[0].data.metrics
    models = client.search_logged_models([parents[0].info.experiment_id])
    versions = client.search_model_versions("name='digits'")
    assert len(models) == 1 and len(versions) == 1, (models, versions, out.stderr[-3000:])


def test_sigterm_stops_cleanly_and_resume_if_exists_finishes(tmp_path, ray_address):
    # 3 trials on 2 CPUs, held in epoch 2 until `release` exists: the SIGTERM meets two running
    # and one waiting, however fast the machine. Released 2 s after it, the two stop at their
    # next report (held, Ray would give them 10 s, then kill them). Later runs do not hold.
    release = tmp_path / "release"
    hold = {"CNN_TUNE_FAULT": f"hold@2?until={release}"}
    args = grid_args("[relu, tanh, elu]", epochs=3, images=400)
    driver = start("run", str(DEMO), *args, cwd=tmp_path, env=hold, address=ray_address)
    wait_for((tmp_path / "release.held").exists)
    driver.send_signal(signal.SIGTERM)
    time.sleep(2)
    release.touch()
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr[-3000:]
    assert json.loads(stdout)["interrupted"] is True
    assert "cnn-tune resume demo-mnist5k" in stderr
    _, parents, children = mlflow_runs(tmp_path)
    assert parents[0].info.status == "KILLED"
    assert not [c for c in children if c.info.status == "RUNNING"]
    assert {c.data.tags.get("cnn_tune.stop_reason") for c in children} <= {
        "interrupted",
        "completed",
    }

    # A scheduled job simply runs again with --resume-if-exists.
    out = cnn_tune_here(
        "run", str(DEMO), *args, "--resume-if-exists", cwd=tmp_path, address=ray_address
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["trials"]["finished"] == 3
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}
    assert_one_point_per_epoch(client, children)

    # Run again once finished: the same summary and exit code, nothing re-run or re-logged.
    again = cnn_tune_here(
        "run", str(DEMO), *args, "--resume-if-exists", cwd=tmp_path, address=ray_address
    )
    assert again.returncode == 0
    assert json.loads(again.stdout)["best"] == json.loads(out.stdout)["best"]
    _, parents2, children2 = mlflow_runs(tmp_path)
    assert len(parents2) == 1 and len(children2) == 3
    assert parents2[0].info.status == "FINISHED"  # reattached, then closed again

    # --overwrite starts afresh under a new parent run.
    fresh = cnn_tune_here(
        "run",
        str(DEMO),
        *grid_args("[relu]", epochs=1),
        "--overwrite",
        cwd=tmp_path,
        address=ray_address,
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert json.loads(fresh.stdout)["trials"]["total"] == 1
    _, parents3, _ = mlflow_runs(tmp_path)
    assert len(parents3) == 2


def test_second_driver_is_refused_while_the_first_lives(tmp_path, ray_address):
    first = cnn_tune_here(
        "run", str(DEMO), *grid_args("[relu]", epochs=1), cwd=tmp_path, address=ray_address
    )
    assert first.returncode == 0, first.stderr[-3000:]
    folder = tmp_path / "ray_results" / NAME
    with experiment_lock(str(folder), NAME):  # a live driver holds the experiment
        for args in (
            ["resume", NAME],
            ["run", str(DEMO), "--resume-if-exists"],
            ["run", str(DEMO)],
        ):
            out = cnn_tune_here(*args, cwd=tmp_path, address=ray_address)
            assert out.returncode == 4, (args, out.stderr)
            assert "already being driven" in out.stderr
    # A lock left by a process that died is taken over.
    script = (
        "import time\nfrom tune.lock import experiment_lock\n"
        f"with experiment_lock({str(folder)!r}, 'x'):\n"
        "    print('held', flush=True)\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    out = cnn_tune_here("resume", NAME, "--json", cwd=tmp_path, address=ray_address)
    assert out.returncode == 0, out.stderr[-3000:]


def test_tracking_server_outage_loses_and_doubles_nothing(tmp_path, ray_address, team_server):
    """The team's server (`cnn-tune server` on PostgreSQL) killed mid-search and started again
    on the same database: every epoch in MLflow once, every run closed."""
    server = team_server.start()
    uri = server.uri
    args = grid_args("[relu, tanh]", epochs=6, images=1000)
    to_server = ["--set", f"mlflow.tracking_uri={uri}"]
    driver = start("run", str(DEMO), *args, *to_server, cwd=tmp_path, address=ray_address)
    try:
        wait_for(lambda: any(len(e) >= 1 for e in epochs_reported(tmp_path).values()))
        server.stop()  # the server dies mid-search
        wait_for(lambda: sum(len(e) for e in epochs_reported(tmp_path).values()) >= 5)
        server.start()  # ... and comes back, same port and store, before the search ends
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, stderr[-3000:]
    assert "records are queued on disk" in stderr
    summary = json.loads(stdout)
    logs = stderr  # what a failed assertion below shows: the drivers' own account
    if summary["mlflow"]["unsent_records"]:
        # The search ended before the server was back: the backlog waits on disk, and the
        # next `resume` (a scheduled rerun) sends it first.
        again = cnn_tune_here("resume", NAME, "--json", cwd=tmp_path, address=ray_address)
        assert again.returncode == 0, again.stderr[-3000:]
        summary = json.loads(again.stdout)
        logs += "\n--- resume ---\n" + again.stderr
    assert summary["mlflow"]["unsent_records"] == 0
    rejected = tmp_path / "ray_results" / NAME / "mlflow_outbox.rejected.jsonl"
    why = (summary["mlflow"], rejected.read_text() if rejected.exists() else "", logs[-6000:])
    try:
        client, parents, children = mlflow_runs(tmp_path, uri)
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert len(children) == 2
        reported = {t["config"]["activation"]: t["epochs"] for t in summary["trial_results"]}
        for child in children:
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")]
            # every epoch the trial reported is there exactly once
            assert sorted(steps) == list(range(1, reported[child.data.params["activation"]] + 1))
            assert child.info.status == "FINISHED", (child.data.params["activation"], *why)
        # ... and no trial waited on the driver while the server was away (requests to a dead
        # server fail at once: the writes queue in the outbox).
        waits = waits_on_the_driver(tmp_path, client, children)
        assert waits and max(waits)[0] < 2.0, sorted(waits)[-5:]
    finally:
        server.stop()


EPOCHS_FROZEN = 16  # 0.5-1 s each: 4 a trial before the freeze, 8-16 during it, the rest after
FREEZE_S = 8  # twice the driver's MLflow request timeout below: at least one write times out
REQUEST_TIMEOUT = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "4"}  # the driver's own default is 10 s


def test_a_frozen_tracking_server_never_slows_the_trials(tmp_path, ray_address, mlflow_server):
    """A server that accepts and never answers for 8 s mid-search (longer than the driver's
    MLflow request timeout, 4 s here, so at least one write times out): no trial waits on the
    driver, and afterwards every metric point is in MLflow exactly once.

    A trial's wait is measured (`waits_on_the_driver`), not its epoch time: epoch times swing
    0.5-2.8 s on 2 shared cores (CI failed once on their median), which says nothing about the
    driver."""
    server = mlflow_server.start()
    args = grid_args("[relu, tanh]", epochs=EPOCHS_FROZEN, images=600)
    to_server = ["--set", f"mlflow.tracking_uri={server.uri}"]
    driver = start(
        "run", str(DEMO), *args, *to_server, cwd=tmp_path, env=REQUEST_TIMEOUT, address=ray_address
    )
    try:
        wait_for(lambda: sum(len(e) for e in epochs_reported(tmp_path).values()) >= 8)
        frozen_at = time.time()
        server.freeze()
        time.sleep(FREEZE_S)
        server.thaw()
        thawed_at = time.time()
        stdout, stderr = driver.communicate(timeout=400)
    finally:
        driver.kill()
        server.thaw()
    assert driver.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["mlflow"]["unsent_records"] == 0

    try:
        client, parents, children = mlflow_runs(tmp_path, server.uri)
        assert len(parents) == 1 and len(children) == 2
        handled_while_frozen = 0
        for child in children:
            points = client.get_metric_history(child.info.run_id, "val_acc")
            steps = sorted(m.step for m in points)
            assert steps == list(range(1, EPOCHS_FROZEN + 1)), steps  # each epoch once
            handled_while_frozen += sum(frozen_at < m.timestamp / 1000 < thawed_at for m in points)
        waits = waits_on_the_driver(tmp_path, client, children)
    finally:
        server.stop()
    assert handled_while_frozen >= 4  # the trials went on while the server was frozen
    # A write waiting on the frozen server would hold a trial for the 4 s timeout at least.
    assert max(waits)[0] < 2.0, sorted(waits)[-5:]


def waits_on_the_driver(folder, client, children) -> list[tuple[float, int, str]]:
    """(wait, epoch, trial id) for every epoch after a trial's first: how long the trial waited
    on the driver before that epoch began. Ray's `time_this_iter_s` runs from the driver's
    `train()` call to the report, so a driver stuck on a write shows up as a gap between the
    driver's handling of two reports (the points' MLflow timestamps, taken when the driver
    handles a result) longer than the epoch between them."""
    epoch_seconds = {}  # (trial id, epoch) -> Ray's time_this_iter_s
    for path in glob.glob(str(folder / "ray_results" / NAME / "*" / "result.json")):
        for line in Path(path).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                epoch_seconds[r["trial_id"], r["epoch"]] = r["time_this_iter_s"]
    waits = []
    for child in children:
        trial_id = child.data.tags["cnn_tune.trial_id"]
        handled = {
            m.step: m.timestamp / 1000
            for m in client.get_metric_history(child.info.run_id, "val_acc")
        }
        waits += [
            (handled[e] - handled[e - 1] - epoch_seconds[trial_id, e], e, trial_id)
            for e in sorted(handled)[1:]
            if e - 1 in handled and (trial_id, e) in epoch_seconds
        ]
    return waits
