"""A full disk mid-search stops the whole search like SIGTERM (exit 130, one line naming the
filesystem), and a plain resume after space is freed finishes it (the units of
`tune.disk_full`: tests/tune/test_disk_full.py)."""

from __future__ import annotations

import subprocess

import pytest
from mlflow import MlflowClient

from tests.disks import tmpfs
from tests.helpers import DEMO, cnn_tune, cnn_tune_here


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
