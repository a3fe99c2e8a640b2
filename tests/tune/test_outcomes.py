"""tune.outcomes: one stop reason per trial, and what it means everywhere it is shown."""

from __future__ import annotations

import pytest

from tune.outcomes import (
    OUTCOME_OF_REASON,
    OUTCOMES,
    PROGRESS_WORD_OF_REASON,
    REASONS,
    RUN_STATUS_OF_REASON,
    outcome,
    stop_reason,
)


@pytest.mark.parametrize(
    "metrics, error, budget_hit, reason, counted_as",
    [
        ({"epoch": 3}, None, False, "completed", "finished"),
        ({"epoch": 1}, None, False, "scheduler", "stopped_early"),
        ({"epoch": 1}, None, True, "budget", "cut"),
        ({"epoch": 3}, None, True, "completed", "finished"),
        ({"epoch": 3, "diverged": True}, None, False, "diverged", "diverged"),
        ({"epoch": 2}, "ValueError: boom", False, "error", "failed"),
        ({}, "ValueError: boom", False, "error", "failed"),
        ({}, None, False, "scheduler", "stopped_early"),
    ],
)
def test_reason_and_outcome(metrics, error, budget_hit, reason, counted_as):
    assert stop_reason(metrics, 3, error, "budget" if budget_hit else None) == reason
    assert OUTCOME_OF_REASON[reason] == counted_as
    if not budget_hit:
        assert outcome(metrics, 3, error) == counted_as


def test_every_reason_has_a_status_a_word_and_an_outcome():
    for table in (OUTCOME_OF_REASON, RUN_STATUS_OF_REASON, PROGRESS_WORD_OF_REASON):
        assert set(table) == set(REASONS)
    assert set(OUTCOME_OF_REASON.values()) == set(OUTCOMES)
    assert set(RUN_STATUS_OF_REASON.values()) <= {"FINISHED", "KILLED", "FAILED"}


def test_only_a_stop_from_outside_is_killed_and_only_a_broken_trial_failed():
    # The UI draws KILLED and FAILED with its failure icon: early stopping is a normal end.
    finished = {"completed", "scheduler", "budget", "target", "plateau"}
    assert {r for r, s in RUN_STATUS_OF_REASON.items() if s == "FINISHED"} == finished
    assert {r for r, s in RUN_STATUS_OF_REASON.items() if s == "KILLED"} == {"interrupted"}
    assert {r for r, s in RUN_STATUS_OF_REASON.items() if s == "FAILED"} == {"diverged", "error"}


# --- the end of a whole search -----------------------------------------------------------------


def fit_outcome(statuses: dict[str, str], epochs: dict[str, int], search_stop=None, error=None):
    from tune.outcomes import FitOutcome, TrialRecord

    records = [
        TrialRecord(
            t, {}, {"epoch": epochs[t]} if epochs.get(t) else {}, error if t == "t0" else None
        )
        for t in statuses
    ]
    return FitOutcome(records, statuses=statuses, search_stop=search_stop)


def end_of(outcome, planned=2, open_trials=(), tracked=None, budget_spent=False, disk_full=False):
    from tune.outcomes import decide_end

    return decide_end(
        outcome,
        epochs=3,
        planned=planned,
        open_trials=set(open_trials),
        tracked=set(tracked if tracked is not None else outcome.statuses),
        budget_spent=budget_spent,
        disk_full=disk_full,
    )


def test_every_planned_trial_ended_is_a_normal_end():
    end = end_of(fit_outcome({"t0": "TERMINATED", "t1": "TERMINATED"}, {"t0": 3, "t1": 3}))
    assert (end.interrupted, end.stopped_by, end.started) == (False, None, {"t0", "t1"})


def test_a_trial_still_running_means_a_signal_interrupted_the_search():
    end = end_of(fit_outcome({"t0": "TERMINATED", "t1": "RUNNING"}, {"t0": 3, "t1": 1}))
    assert end.interrupted and end.stopped_by is None


def test_fewer_trials_than_planned_without_a_stop_is_interrupted():
    end = end_of(fit_outcome({"t0": "TERMINATED"}, {"t0": 3}), planned=4)
    assert end.interrupted


def test_a_spent_budget_with_trials_missing_is_a_normal_budget_end():
    # t1: a searcher's pending proposal when the budget ran out, never started nor tracked
    outcome = fit_outcome({"t0": "TERMINATED", "t1": "PENDING"}, {"t0": 3})
    end = end_of(outcome, planned=4, tracked={"t0"}, budget_spent=True)
    assert (end.interrupted, end.stopped_by, end.started) == (False, "budget", {"t0"})


def test_a_spent_budget_that_cut_nothing_is_no_budget_stop():
    end = end_of(fit_outcome({"t0": "TERMINATED", "t1": "TERMINATED"}, {"t0": 3, "t1": 3}),
                 budget_spent=True)  # fmt: skip
    assert (end.interrupted, end.stopped_by) == (False, None)


def test_a_cut_trial_under_a_spent_budget_names_the_budget():
    outcome = fit_outcome({"t0": "TERMINATED", "t1": "TERMINATED"}, {"t0": 3, "t1": 1})
    assert end_of(outcome, open_trials={"t1"}, budget_spent=True).stopped_by == "budget"
    # the same trial stopped early by the scheduler, no budget: a normal end, no search stop
    assert end_of(outcome, open_trials={"t1"}).stopped_by is None


def test_a_fired_search_stop_rule_wins_and_is_a_normal_end():
    outcome = fit_outcome({"t0": "TERMINATED"}, {"t0": 2}, search_stop="target")
    end = end_of(outcome, planned=8)
    assert (end.interrupted, end.stopped_by) == (False, "target")


def test_a_full_disk_always_interrupts_even_when_every_trial_ended():
    outcome = fit_outcome({"t0": "TERMINATED", "t1": "TERMINATED"}, {"t0": 3, "t1": 3})
    end = end_of(outcome, disk_full=True)
    assert end.interrupted and end.stopped_by is None


def test_a_trial_that_failed_before_reporting_still_started():
    outcome = fit_outcome({"t0": "ERROR"}, {}, error="ValueError: boom")
    assert end_of(outcome, planned=1, tracked=set()).started == {"t0"}
