"""`search.stop` on a real local Ray: a target or a plateau ends the search normally (exit 0,
`stopped_by`, cut trials FINISHED with the rule as their reason), and a resume prints the
summary and exits 0."""

from __future__ import annotations

import json

import pytest

from tests.helpers import DEMO, NAME, budget_args, cnn_tune_here, mlflow_runs
from tests.webhooks import Webhook

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SAMPLES = 30


def assert_normal_stop(out, by: str, tmp_path, ray_address) -> dict:
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["stopped_by"] == by and not summary["interrupted"]
    trials = summary["trials"]
    assert 1 <= trials["total"] < SAMPLES  # the rule ended it long before the searcher
    ended = ("finished", "stopped_early", "cut", "diverged", "failed")
    assert sum(trials[k] for k in ended) == trials["total"]
    assert "interrupted" not in out.stderr

    _, parents, children = mlflow_runs(tmp_path)
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["cnn_tune.stopped_by"] == by
    # Should they differ, say which trials and what the driver logged (the failure is rare).
    with_runs = {c.data.tags.get("cnn_tune.trial_id") for c in children}
    counted = {t["trial_id"] for t in summary["trial_results"]}
    why = f"no run: {counted - with_runs}, no row: {with_runs - counted}, {summary['mlflow']}"
    assert len(children) == trials["total"], f"{why}\n{out.stderr[-6000:]}"
    cut = [c for c in children if c.data.tags.get("cnn_tune.stop_reason") == by]
    assert len(cut) == trials["cut"] and {c.info.status for c in cut} <= {"FINISHED"}

    again = cnn_tune_here("resume", NAME, "--json", cwd=tmp_path, address=ray_address)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(again.stdout)
    assert resumed["stopped_by"] == by and resumed["trials"] == trials
    _, parents, children = mlflow_runs(tmp_path)
    assert parents[0].info.status == "FINISHED" and len(children) == trials["total"]
    return summary


def test_a_target_ends_the_search_as_soon_as_a_trial_reaches_it(tmp_path, ray_address):
    # Chance on 10 digits is 0.1: some trial passes 0.2 within its first epochs.
    args = budget_args(**{"search.num_samples": SAMPLES, "search.max_concurrent": 2,
                          "epochs": 3, "search.stop.target": 0.2})  # fmt: skip
    out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, address=ray_address)
    summary = assert_normal_stop(out, "target", tmp_path, ray_address)
    assert summary["best"]["val_acc"] >= 0.2
    reached = [t for t in summary["trial_results"] if (t["val_acc"] or 0) >= 0.2]
    assert reached  # the trial that reached it is in the summary, finished or cut


def test_a_plateau_ends_the_search_when_the_best_stops_improving(tmp_path, ray_address):
    # One trial at a time; an improvement must beat the best by more than 0.5, which none
    # can after the first: the search ends after 1 + 2 finished trials (a 4th may have started).
    # The end is posted to a webhook (a real server here), by the run and by the resume.
    plateau = "{patience: 2, tolerance: 0.5}"
    with Webhook() as hook:
        args = budget_args(**{"search.num_samples": SAMPLES, "search.max_concurrent": 1,
                              "epochs": 1, "search.stop.plateau": plateau,
                              "notify.webhook": hook.url})  # fmt: skip
        out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, address=ray_address)
        summary = assert_normal_stop(out, "plateau", tmp_path, ray_address)
    assert summary["trials"]["finished"] == 3
    assert summary["trials"]["total"] <= 4
    assert [b["event"] for b in hook.bodies] == ["finished", "finished"]  # run, resume
    assert "stopped by its plateau" in hook.bodies[0]["text"]
    assert hook.bodies[0]["summary"]["trials"] == summary["trials"]
    # The URL is a credential: not in the log, the runs' tags or the config logged to MLflow.
    assert "SECRET" not in out.stderr
    client, parents, children = mlflow_runs(tmp_path)
    for run in (*parents, *children):
        assert "SECRET" not in json.dumps(run.data.tags)
    logged = client.download_artifacts(parents[0].info.run_id, "search_config.yaml", str(tmp_path))
    text = open(logged).read()
    assert "notify" in text and "SECRET" not in text
