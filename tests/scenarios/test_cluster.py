"""A real two-node Ray cluster on this machine (`ray start --head` + `ray start --address`):
trials land on both nodes, and `ray job submit` runs and then resumes a search."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from tests.helpers import DEMO, REPO
from tests.ray_nodes import BIN, env, own_ports, ray_temp_dir, start_head, stop_nodes
from tests.trainables.raw_files import write_image_folder

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMALL = {
    "epochs": 2,
    "trial.max_train_images": 600,
    "trial.width": 8,
    "search.num_samples": 4,
    "search.scheduler": "fifo",
}


def sets(values: dict) -> list[str]:
    return [a for key, value in values.items() for a in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def cluster():
    """Head (1 CPU) plus a second node (1 CPU) with its own raylet: a trial fits one a node."""
    with ray_temp_dir() as temp:
        head = start_head(temp, 1, "head_node")
        # The second node keeps its own dataset cache, as a separate machine would (its trials
        # resolve the cache folder at run time, from the environment `ray start` gave them).
        second = subprocess.run(
            [str(BIN / "ray"), "start", f"--address={head['address']}", "--num-cpus=1",
             '--resources={"second_node": 1}', *own_ports()],
            env={**env(), "CNN_TUNE_CACHE": str(temp / "second-node-cache")},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        try:
            assert second.returncode == 0, second.stderr
            yield {**head, "second_cache": temp / "second-node-cache"}
        finally:
            stop_nodes(temp)


@pytest.fixture
def job_head(shared_head):
    """`ray job submit` goes to the session's one-node head. (Not to `cluster`: two nodes on one
    machine share one runtime-env folder, and the second node's agent deletes the job's
    working-dir copy under its driver.)"""
    return shared_head


def test_trials_run_on_both_nodes_and_a_node_without_the_data_copies_the_shared_cache(
    cluster, tmp_path
):
    """The driver stages an ImageFolder into a shared cache (a `file://` URI: the same pyarrow
    calls as s3://); the raw images then disappear, as on a GPU worker that joins later without
    them. The second node's trials copy the decoded file into its own cache and train."""
    raw, shared = tmp_path / "raw", tmp_path / "shared"
    write_image_folder(raw, per_class=40)
    settings = {
        **SMALL,
        "dataset": "imagefolder",
        "data_root": str(raw),
        "cache_dir": shared.as_uri(),
        "trial.image_size": 16,
        "space": "{activation: [relu, tanh], augment: [crop], batch_size: [16], lr: [0.003]}",
    }
    driver = subprocess.Popen(
        [sys.executable, "-m", "tune.cli", "run", str(DEMO), *sets(settings),
         "--address", cluster["address"], "--json"],
        cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(shared.glob("*.sha256")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(shared.glob("*.sha256")), "the driver did not share the staged dataset"
        shutil.rmtree(raw)  # from now on, no node can decode the raw images
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["trials"]["total"] == 4 and summary["trials"]["failed"] == 0
    assert [p.name for p in cluster["second_cache"].glob("imagefolder-*.pt")]  # copied down
    client = MlflowClient(summary["mlflow"]["tracking_uri"])
    runs = client.search_runs(
        [summary["mlflow"]["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{summary['mlflow']['parent_run_id']}'",
    )
    nodes = {r.data.tags["cnn_tune.node"] for r in runs}
    assert len(runs) == 4
    assert len(nodes) == 2, nodes  # 1 CPU a node, 1 CPU a trial: both nodes had to train


def job_output(logs: str) -> dict:
    """The JSON summary inside a job's logs (stdout and stderr are merged there)."""
    match = re.search(r"^\{\n.*?^\}$", logs, flags=re.S | re.M)
    assert match, logs[-3000:]
    return json.loads(match.group(0))


def submit(cluster: dict, args: list[str]) -> tuple[int, str]:
    for _ in range(30):  # the job agent comes up some seconds after `ray start` returns
        job = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"],
             "--working-dir", str(REPO), "--", "cnn-tune", *args],
            env=env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        logs = job.stdout + job.stderr
        if "No available agent to submit job" not in logs:
            return job.returncode, logs
        time.sleep(2)
    return job.returncode, logs


def test_ray_job_submit_runs_then_resumes(job_head, tmp_path):
    shared = {
        "storage_path": str(tmp_path / "ray_results"),
        "mlflow.tracking_uri": f"sqlite:///{tmp_path / 'mlruns.db'}",
        "name": "nightly",
    }
    args = ["run", "configs/demo.yaml", "--resume-if-exists", "--json", *sets({**SMALL, **shared})]
    code, logs = submit(job_head, args)
    assert code == 0, logs[-3000:]
    first = job_output(logs)
    assert first["trials"]["total"] == 4
    assert first["storage_path"] == str(tmp_path / "ray_results")
    assert (tmp_path / "ray_results" / "nightly").is_dir()

    # The next scheduled submission finds the search done: same summary, nothing re-run.
    started = time.time()
    code, logs = submit(job_head, args)
    assert code == 0, logs[-3000:]
    again = job_output(logs)
    assert again["best"] == first["best"]
    assert "resuming" in logs
    client = MlflowClient(shared["mlflow.tracking_uri"])
    exp = client.get_experiment_by_name("cnn-tune")
    children = client.search_runs([exp.experiment_id], "tags.`cnn_tune.role` = 'trial'")
    assert len(children) == 4
    assert all(r.info.start_time / 1000 < started for r in children)


def test_relative_paths_in_a_job_are_warned_about(job_head, tmp_path):
    code, logs = submit(job_head, ["validate", "configs/demo.yaml"])
    assert code == 0, logs[-2000:]  # validate starts nothing; the warning belongs to run
    code, logs = submit(
        job_head,
        [
            "run",
            "configs/demo.yaml",
            *sets({**SMALL, "search.num_samples": 1, "epochs": 1}),
            "--json",
        ],
    )
    assert code == 0, logs[-3000:]
    assert "inside this job's temporary working directory" in logs
