"""End to end on a real local Ray (2 CPUs): `cnn-tune run` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import DEMO, cnn_tune_here
from tune.paths import CONFIG_FILE

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMALL = ["--set", "epochs=2", "--set", "trial.max_train_images=600", "--set", "trial.width=8"]


def test_demo_search_end_to_end(tmp_path, ray_address):
    out = cnn_tune_here(
        "run", str(DEMO), *SMALL, "--set", "search.num_samples=4", "--json", cwd=tmp_path,
        address=ray_address,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)  # stdout holds only the JSON object

    assert summary["name"] == "demo-mnist5k"
    trials = summary["trials"]
    assert trials["total"] == 4
    outcomes = ("finished", "stopped_early", "diverged", "failed")
    assert sum(trials[k] for k in outcomes) == 4
    assert trials["failed"] == 0 and trials["finished"] >= 1
    assert summary["storage_path"] == str(tmp_path / "ray_results")
    assert summary["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path / 'mlruns.db'}"

    space = yaml.safe_load(DEMO.read_text())["space"]
    rows = summary["trial_results"]
    for row in rows:
        cfg = row["config"]
        assert cfg["activation"] in space["activation"]
        assert cfg["augment"] in space["augment"]
        assert cfg["batch_size"] in space["batch_size"]
        assert 1e-4 <= cfg["lr"] <= 1e-2
    assert len({row["config"]["lr"] for row in rows}) == 4  # lr was really sampled per trial

    best = summary["best"]
    finished = [r for r in rows if r["outcome"] in ("finished", "stopped_early")]
    assert best["val_acc"] == max(r["val_acc"] for r in finished)
    assert best["config"]["max_train_images"] == 600 and best["config"]["epochs"] == 2

    # 4 trials on 2 slots: the last two run in the worker processes of the first two
    # (reuse_actors), not in new ones. Ray stamps every result with its process id.
    experiment = tmp_path / "ray_results" / "demo-mnist5k"
    pids = {json.loads(line)["pid"] for path in experiment.glob("*/result.json")
            for line in path.read_text().splitlines() if line.strip()}  # fmt: skip
    assert 1 <= len(pids) < 4

    # Progress and the summary table went to stderr; the config is kept with the experiment.
    assert "epoch 1/2" in out.stderr
    assert "best " in out.stderr
    saved = yaml.safe_load((tmp_path / "ray_results" / "demo-mnist5k" / CONFIG_FILE).read_text())
    assert saved["epochs"] == 2

    # A second run of the same name is refused before Ray starts.
    again = cnn_tune_here("run", str(DEMO), *SMALL, cwd=tmp_path, address=ray_address)
    assert again.returncode == 2 and "already exists" in again.stderr


def grid(tmp_path: Path, activations: list[str]) -> list[str]:
    space = f"{{activation: {activations}, augment: [crop], batch_size: [64], lr: [0.003]}}"
    return [
        *SMALL,
        "--set", "search.algorithm=grid",
        "--set", "search.scheduler=fifo",
        "--set", "search.num_samples=1",
        "--set", f"space={space}",
        "--json",
    ]  # fmt: skip


def test_diverged_trials_are_counted_not_fatal(tmp_path, ray_address):
    # No tracking URI in the config: `run` takes $MLFLOW_TRACKING_URI, as `report` and `ui` do.
    store = f"sqlite:///{tmp_path / 'from-env.db'}"
    env = {"CNN_TUNE_FAULT": "nan@1?activation=sigmoid", "MLFLOW_TRACKING_URI": store}
    args = grid(tmp_path, ["relu", "sigmoid"])
    out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, env=env, address=ray_address)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["mlflow"]["tracking_uri"] == store
    assert (tmp_path / "from-env.db").exists() and not (tmp_path / "mlruns.db").exists()
    assert summary["trials"]["diverged"] == 1
    assert summary["trials"]["finished"] == 1
    assert summary["best"]["config"]["activation"] == "relu"
    diverged = [r for r in summary["trial_results"] if r["outcome"] == "diverged"]
    assert diverged[0]["config"]["activation"] == "sigmoid"


def test_all_diverged_exits_1(tmp_path, ray_address):
    fault = {"CNN_TUNE_FAULT": "nan@1"}
    args = ["-q", *grid(tmp_path, ["sigmoid", "tanh"])]
    out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, env=fault, address=ray_address)
    assert out.returncode == 1, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["trials"]["diverged"] == 2
    assert summary["best"] is None
    # -q: the summary table only; no progress, no notes, no Ray or MLflow logs.
    assert "best: none" in out.stderr and "search 'demo-mnist5k': 2 trials" in out.stderr
    for noise in ("epoch 1/", "data: ", "mlflow: ", "INFO", "Started a local Ray"):
        assert noise not in out.stderr, out.stderr
