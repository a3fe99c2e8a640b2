"""A search ended by its time budget is a normal end: exit 0, parent FINISHED, best model logged,
cut trials FINISHED with reason `budget`, and a resume prints the summary and exits 0."""

from __future__ import annotations

import json

import pytest

from tests.helpers import DEMO, NAME, budget_args, cnn_tune_here, mlflow_runs

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def assert_normal_budget_end(out, samples: int, tmp_path) -> dict:
    """Exit 0 (1 only when no trial finished or stopped early), the parent closed to match."""
    summary = json.loads(out.stdout)
    usable = summary["trials"]["finished"] + summary["trials"]["stopped_early"]
    assert out.returncode == (0 if usable else 1), out.stderr[-3000:]
    assert summary["stopped_by"] == "budget" and not summary["interrupted"]
    trials = summary["trials"]
    assert 1 <= trials["total"] < samples  # the searcher had not proposed them all
    ended = ("finished", "stopped_early", "cut", "diverged", "failed")
    assert sum(trials[k] for k in ended) == trials["total"]
    assert summary["best"] is not None
    assert "interrupted" not in out.stderr

    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == ("FINISHED" if usable else "FAILED")
    assert parent.data.tags["cnn_tune.stopped_by"] == "budget"
    assert "best_val_acc" in parent.data.metrics
    assert len(children) == trials["total"]
    assert {c.info.status for c in children} <= {"FINISHED", "KILLED", "FAILED"}  # none RUNNING
    cut = [c for c in children if c.data.tags.get("cnn_tune.stop_reason") == "budget"]
    assert len(cut) == trials["cut"] and {c.info.status for c in cut} <= {"FINISHED"}
    best = next(
        c for c in children if c.data.tags["cnn_tune.trial_id"] == summary["best"]["trial_id"]
    )
    models = client.search_logged_models([parent.info.experiment_id])
    assert [m.source_run_id for m in models] == [best.info.run_id], out.stderr[-3000:]
    return summary


def assert_resume_is_a_normal_end(summary: dict, tmp_path, ray_address) -> None:
    again = cnn_tune_here("resume", NAME, "--json", cwd=tmp_path, address=ray_address)
    assert again.returncode == summary["exit_code"] != 130, again.stderr[-3000:]
    resumed = json.loads(again.stdout)
    assert resumed["stopped_by"] == "budget" and not resumed["interrupted"]
    assert resumed["trials"] == summary["trials"]
    _, parents, children = mlflow_runs(tmp_path)
    expected = "FINISHED" if summary["exit_code"] == 0 else "FAILED"
    assert parents[0].info.status == expected and len(children) == summary["trials"]["total"]


def test_budget_stop_with_optuna(tmp_path, ray_address):
    # Optuna keeps a trial pending: the searcher never proposes all 40.
    args = budget_args(**{"search.algorithm": "optuna", "search.num_samples": 40,
                          "epochs": 3, "search.time_budget_s": 14})  # fmt: skip
    out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, address=ray_address)
    summary = assert_normal_budget_end(out, 40, tmp_path)
    assert summary["exit_code"] == 0  # 3-epoch trials: several finished within the budget
    assert_resume_is_a_normal_end(summary, tmp_path, ray_address)


def test_budget_stop_with_random_and_max_concurrent_cuts_the_running_trial(tmp_path, ray_address):
    # One trial at a time, each far longer than the budget (1,000 epochs of ~0.2-0.4 s): the
    # first trial is still running when the budget runs out, whatever the machine's load, and is
    # cut before its last epoch. Trials of 10-25 s made this depend on timing: a trial that had
    # just finished as the budget ran out left nothing to cut. The budget leaves a loaded
    # machine time for the first trial's first epoch; nothing finished, so exit 1.
    args = budget_args(**{"search.algorithm": "random", "search.num_samples": 20,
                          "search.max_concurrent": 1, "epochs": 1000,
                          "search.time_budget_s": 16})  # fmt: skip
    out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, address=ray_address)
    summary = assert_normal_budget_end(out, 20, tmp_path)
    assert summary["trials"] == {"total": 1, "finished": 0, "stopped_early": 0, "cut": 1,
                                 "diverged": 0, "failed": 0}  # fmt: skip
    assert summary["exit_code"] == 1
    [cut] = summary["trial_results"]
    assert cut["outcome"] == "cut" and 1 <= cut["epochs"] < 1000
    assert summary["best"]["trial_id"] == cut["trial_id"]  # as good as its last epoch
    assert_resume_is_a_normal_end(summary, tmp_path, ray_address)
