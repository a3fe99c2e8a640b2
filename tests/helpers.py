"""Helpers the scenario and unit tests share: the console script, a small grid search, and
reading what a search left (its epochs on disk, its MLflow runs)."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[1]


DEMO = REPO / "configs" / "demo.yaml"


CLI = [sys.executable, "-m", "tune.cli"]


def cnn_tune(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Ran:
    """What a command left: its exit code and its two streams (as `subprocess.run` gives)."""

    returncode: int
    stdout: str
    stderr: str


def cnn_tune_here(
    *args: str, cwd: Path, address: str | None = None, env: dict | None = None
) -> Ran:
    """`cnn-tune ARGS` run by `tune.cli.main` in this process, in `cwd`: no interpreter to
    start and no torch, Ray or MLflow to import again (about 5 s a command). `run` and `resume`
    join the Ray at `address` (the session's `shared_ray`) instead of starting their own.

    `env` is set for the command only. Of it, the trials on the shared Ray see just
    `CNN_TUNE_FAULT`, which a driver that joins a cluster forwards (`tune.fit.tuner`); other
    variables reach the driver only. For tests where a separate process is not the point;
    signals, crashes and a second driver need `cnn_tune` or `start`."""
    from tune.cli import main

    argv = [*args, *(["--address", address] if address and args[0] in ("run", "resume") else [])]
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    sys.argv = ["cnn-tune", *argv]  # what the console script sees (the runs' source name)
    out, err = io.StringIO(), io.StringIO()
    os.chdir(cwd)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's --help and --version end the process
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()  # `-q` sets MLflow's and Ray's output variables for the process
        os.environ.update(saved_env)
    return Ran(code, out.getvalue(), err.getvalue())


NAME = "demo-mnist5k"


def grid_args(activations: str = "[relu, tanh]", epochs: int = 3, images: int = 600) -> list[str]:
    space = f"{{activation: {activations}, augment: [crop], batch_size: [64], lr: [0.003]}}"
    settings = {
        "epochs": epochs,
        "trial.max_train_images": images,
        "trial.width": 8,
        "search.algorithm": "grid",
        "search.scheduler": "fifo",
        "search.num_samples": 1,
        "space": space,
    }
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")] + [
        "--json"
    ]


def start(
    *args: str, cwd: Path, env: dict | None = None, address: str | None = None
) -> subprocess.Popen:
    """`cnn-tune` in the background, in its own session so the test can kill it (and the Ray it
    started, where it started one). With `address` (the session's `shared_ray`), `run` and
    `resume` join that Ray instead of starting their own: about 10 s less a driver."""
    argv = [*args, *(["--address", address] if address and args[0] in ("run", "resume") else [])]
    return subprocess.Popen(
        [sys.executable, "-m", "tune.cli", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def epochs_reported(folder: Path) -> dict[str, list[int]]:
    """Trial folder -> the epochs its result.json holds, in order."""
    out = {}
    for path in glob.glob(str(folder / "ray_results" / NAME / "*" / "result.json")):
        with open(path) as f:
            out[Path(path).parent.name] = [json.loads(line)["epoch"] for line in f if line.strip()]
    return out


def wait_for(predicate, timeout: float = 180, every: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError("condition not met in time")


def mlflow_runs(folder: Path, uri: str | None = None):
    client = MlflowClient(uri or f"sqlite:///{folder / 'mlruns.db'}")
    exp = client.get_experiment_by_name("cnn-tune")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("cnn_tune.role") == "search"]
    children = [r for r in runs if r.data.tags.get("cnn_tune.role") == "trial"]
    return client, parents, children


def assert_one_point_per_epoch(client, children) -> None:
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")]
        assert sorted(steps) == list(range(1, len(steps) + 1)), steps


def budget_args(**settings) -> list[str]:
    base = {"trial.max_train_images": 300, "trial.width": 8, "search.scheduler": "fifo"}
    return [a for k, v in {**base, **settings}.items() for a in ("--set", f"{k}={v}")] + ["--json"]
