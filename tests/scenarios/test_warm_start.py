"""A real warm-started search on a real local Ray: yesterday's trials are not run again."""

from __future__ import annotations

import json

import pytest

from tests.helpers import DEMO, cnn_tune_here, mlflow_runs

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPACE = "{activation: [relu, tanh], augment: [none, crop], batch_size: [64], lr: [0.003]}"
ARGS = ["--set", "epochs=1", "--set", "trial.max_train_images=300", "--set", "trial.width=8",
        "--set", "search.scheduler=fifo", "--set", "search.num_samples=2",
        "--set", f"space={SPACE}", "--json"]  # fmt: skip


def configs(summary: dict) -> set[tuple[str, str]]:
    return {(t["config"]["activation"], t["config"]["augment"]) for t in summary["trial_results"]}


def test_a_nightly_search_adds_trials_without_repeating_yesterdays(tmp_path, ray_address):
    first = cnn_tune_here(
        "run", str(DEMO), *ARGS, "--name", "monday", cwd=tmp_path, address=ray_address
    )
    assert first.returncode == 0, first.stderr[-3000:]
    monday = configs(json.loads(first.stdout))
    assert len(monday) == 2

    warm = ["--set", "search.warm_start=[monday]"]
    second = cnn_tune_here(
        "run", str(DEMO), *ARGS, *warm, "--name", "tuesday", cwd=tmp_path, address=ray_address
    )
    assert second.returncode == 0, second.stderr[-3000:]
    tuesday = configs(json.loads(second.stdout))
    assert len(tuesday) == 2 and not tuesday & monday  # the other two of the four
    assert "warm start from monday: 2 earlier trials used" in second.stderr
    _, parents, _ = mlflow_runs(tmp_path)
    tags = {p.info.run_name: p.data.tags for p in parents}
    assert tags["tuesday"]["cnn_tune.warm_start"] == "monday"

    # Nothing left: exit 2 before anything starts; an unknown name: exit 2 at validate.
    both = ["--set", "search.warm_start=[monday, tuesday]"]
    none_left = cnn_tune_here(
        "run", str(DEMO), *ARGS, *both, "--name", "wednesday", cwd=tmp_path, address=ray_address
    )
    assert none_left.returncode == 2 and "nothing is left to search" in none_left.stderr
    unknown = cnn_tune_here(
        "validate",
        str(DEMO),
        "--set",
        "search.warm_start=[sunday]",
        cwd=tmp_path,
        address=ray_address,
    )
    assert unknown.returncode == 2 and "no search 'sunday'" in unknown.stderr
