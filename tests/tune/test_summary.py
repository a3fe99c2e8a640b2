"""tune.summary: outcomes, best-trial choice and exit codes, from plain records."""

import math

from tune.outcomes import TrialRecord
from tune.summary import format_table, summarize


def record(tid, val_acc, epoch=4, diverged=False, error=None, test_acc=None, act="relu"):
    metrics = {"epoch": epoch, "val_acc": val_acc, "diverged": diverged}
    if test_acc is not None:
        metrics["test_acc"] = test_acc
    return TrialRecord(tid, {"activation": act, "lr": 1e-3}, metrics, error)


def make(records, mode="max", metric="val_acc"):
    return summarize(
        records,
        name="s",
        epochs=4,
        metric=metric,
        mode=mode,
        searched_keys=["activation", "lr"],
        wall_seconds=12.0,
        storage_path="/r",
        experiment_path="/r/s",
    )


def test_outcomes_are_disjoint_and_counted():
    s = make(
        [
            record("a", 0.9),
            record("b", 0.8, epoch=2),
            record("c", 0.99, diverged=True),
            record("d", None, epoch=1, error="boom"),
        ]
    )
    assert s.counts == {"finished": 1, "stopped_early": 1, "cut": 0, "diverged": 1, "failed": 1}
    assert s.to_json()["trials"]["total"] == 4
    assert s.exit_code == 1  # a failed trial fails the search


def test_best_skips_diverged_and_failed_and_ignores_test_acc():
    s = make(
        [
            record("a", 0.90, test_acc=0.99),
            record("b", 0.95, test_acc=0.50),
            record("c", 0.99, diverged=True),
        ]
    )
    assert s.best["trial_id"] == "b"
    assert s.best["test_acc"] == 0.50
    assert s.exit_code == 0  # diverged trials alone do not fail a search


def test_min_mode_picks_lowest():
    recs = [record("a", 0.9), record("b", 0.8)]
    for r, loss in zip(recs, [0.3, 0.2]):
        r.metrics["val_loss"] = loss
    assert make(recs, mode="min", metric="val_loss").best["trial_id"] == "b"


def test_all_diverged_is_exit_1_with_no_best():
    s = make([record("a", 0.1, diverged=True), record("b", math.nan, diverged=True)])
    assert s.best is None
    assert s.exit_code == 1
    assert "best: none" in format_table(s)


def test_table_names_every_trial_and_the_failure():
    s = make([record("a", 0.9), record("d", None, epoch=1, error="RuntimeError: boom")])
    table = format_table(s)
    assert "a" in table and "d" in table
    assert "failed d: RuntimeError: boom" in table
    assert "results: /r/s" in table


def test_a_budget_stop_is_a_normal_end_and_counts_its_cut_trials():
    records = [record("a", 0.9), record("b", 0.95, epoch=2)]
    records[1].reason = "budget"  # the budget ended it after 2 of 4 epochs
    s = make(records)
    s.stopped_by = "budget"
    assert s.counts["cut"] == 1 and s.counts["stopped_early"] == 0
    assert s.exit_code == 0
    data = s.to_json()
    assert data["stopped_by"] == "budget" and data["trials"]["cut"] == 1
    assert data["trials"]["total"] == 2
    assert s.best["trial_id"] == "b"  # a cut trial is as good as its last epoch
    assert "stopped by the budget" in format_table(s)
    only_cut = make([records[1]])
    assert only_cut.exit_code == 1  # nothing finished or stopped early
