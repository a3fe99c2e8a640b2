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
