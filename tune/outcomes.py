"""How a trial ended: one stop reason, and what it means for counts, run status and progress."""

from __future__ import annotations

from typing import Any

# Why a trial stopped (the `cnn_tune.stop_reason` tag).
COMPLETED = "completed"  # ran every epoch
SCHEDULER = "scheduler"  # the scheduler (ASHA, PBT) stopped it early
BUDGET = "budget"  # the search's time budget ran out while it ran
TARGET = "target"  # another trial reached the search's target (search.stop)
PLATEAU = "plateau"  # the search's best stopped improving (search.stop)
INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM / a crash of the driver stopped the search
DIVERGED = "diverged"  # NaN or infinite loss; not retried
ERROR = "error"  # raised beyond max_failures
REASONS = (COMPLETED, SCHEDULER, BUDGET, TARGET, PLATEAU, INTERRUPTED, DIVERGED, ERROR)

# Disjoint outcomes the summary counts (JSON `trials` keys).
FINISHED = "finished"
STOPPED_EARLY = "stopped_early"  # by the scheduler
CUT = "cut"  # by a search-level stop (the time budget) before its last epoch
FAILED = "failed"
OUTCOMES = (FINISHED, STOPPED_EARLY, CUT, DIVERGED, FAILED)

# What ended a whole search before its searcher ran out of trials (the summary's `stopped_by`).
SEARCH_STOPS = (BUDGET, TARGET, PLATEAU)

OUTCOME_OF_REASON = {
    COMPLETED: FINISHED,
    SCHEDULER: STOPPED_EARLY,
    BUDGET: CUT,
    TARGET: CUT,
    PLATEAU: CUT,
    INTERRUPTED: STOPPED_EARLY,
    DIVERGED: DIVERGED,
    ERROR: FAILED,
}

# The MLflow run status of each reason, decided once. A trial the scheduler stopped early ended
# normally: KILLED would draw it with the UI's failure icon (Ray's own MLflow callback also ends
# early-stopped trials FINISHED). Only a stop from outside the search is KILLED.
RUN_STATUS_OF_REASON = {
    COMPLETED: "FINISHED",
    SCHEDULER: "FINISHED",
    BUDGET: "FINISHED",  # the search ended normally; the trial is as good as its last epoch
    TARGET: "FINISHED",
    PLATEAU: "FINISHED",
    INTERRUPTED: "KILLED",
    DIVERGED: "FAILED",
    ERROR: "FAILED",
}

# The word a progress line shows when a trial ends.
PROGRESS_WORD_OF_REASON = {
    COMPLETED: "done",
    SCHEDULER: "stopped",
    BUDGET: "stopped",
    TARGET: "stopped",
    PLATEAU: "stopped",
    INTERRUPTED: "stopped",
    DIVERGED: "diverged",
    ERROR: "error",
}


def stop_reason(
    metrics: dict[str, Any], epochs: int, error: str | None = None, cut_by: str | None = None
) -> str:
    """Why a trial stopped, from its last reported metrics.

    Args:
        metrics: the trial's last result ({} when it never reported).
        epochs: the search's epochs per trial.
        error: the trial's error, when it raised beyond max_failures.
        cut_by: the search-level stop (one of `SEARCH_STOPS`) in force when it stopped, if any:
            a trial stopped before its last epoch then was cut by it, not by the scheduler.
    """
    if error is not None:
        return ERROR
    if metrics.get("diverged"):
        return DIVERGED
    if int(metrics.get("epoch", 0)) >= epochs:
        return COMPLETED
    return cut_by if cut_by in SEARCH_STOPS else SCHEDULER


def outcome(
    metrics: dict[str, Any], epochs: int, error: str | None = None, reason: str | None = None
) -> str:
    """The summary's outcome of a trial (one of `OUTCOMES`).

    Args:
        reason: the stop reason recorded when the trial ended, where one was; it tells a trial
            the budget cut from one the scheduler stopped, which its metrics alone cannot.
    """
    if error is not None:
        return FAILED
    if reason in OUTCOME_OF_REASON and reason != INTERRUPTED:
        return OUTCOME_OF_REASON[reason]
    return OUTCOME_OF_REASON[stop_reason(metrics, epochs, error)]
