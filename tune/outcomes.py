"""How a trial ended: one stop reason, and what it means for counts, run status and progress."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class TrialRecord:
    """One trial as the summary needs it."""

    trial_id: str
    config: dict[str, Any]  # the trial's full resolved config
    metrics: dict[str, Any]  # its last reported metrics ({} when it never reported)
    error: str | None = None  # last line of the error, when it failed
    reason: str | None = None  # the stop reason recorded when it ended (tune.outcomes)


@dataclass
class FitOutcome:
    """What a finished `Tuner.fit()` leaves for the summary and the tracking artifacts."""

    records: list[TrialRecord]
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per-epoch results
    checkpoints: dict[str, Any] = field(default_factory=dict)  # trial id -> latest Checkpoint
    ran_anything: bool = False  # whether any trial reported during this fit
    statuses: dict[str, str] = field(default_factory=dict)  # trial id -> Ray's trial status
    fit_seconds: float = 0.0  # how long Tuner.fit() ran: what a time budget counts
    search_stop: str | None = None  # the `search.stop` rule that ended it (target, plateau)
    planned: int | None = None  # trials it was to run, where a warm start changed the count

    def unfinished(self) -> list[str]:
        """Trials Ray did not end (an interrupted search): neither TERMINATED nor ERROR."""
        return [t for t, s in self.statuses.items() if s not in ("TERMINATED", "ERROR")]


@dataclass(frozen=True)
class SearchEnd:
    """How a whole search ended: decided once, by `decide_end`, from facts alone."""

    interrupted: bool  # a signal, a crash or a full disk stopped it: resume it (exit 130)
    stopped_by: str | None  # the search-level stop that ended it normally (`SEARCH_STOPS`)
    started: frozenset[str]  # the trials that started: the only trials of this search


def decide_end(
    outcome: FitOutcome,
    *,
    epochs: int,
    planned: int,
    open_trials: set[str],
    tracked: set[str],
    budget_spent: bool,
    disk_full: bool = False,
) -> SearchEnd:
    """Decide how a search ended; pure, so every case is a unit test.

    A search ended by its time budget or a `search.stop` rule is a normal end: the searcher
    may not have proposed every trial. Only a signal, a crash or a full disk interrupts.

    Args:
        outcome: Ray's word on each trial (`statuses`, `records`, `search_stop`).
        epochs: the search's epochs per trial.
        planned: the trials it was to run (a warm start's new points, else the config's count).
        open_trials: trials whose MLflow runs are still open.
        tracked: trials that have an MLflow run.
        budget_spent: whether the fits so far (resumes included) used up `search.time_budget_s`.
        disk_full: whether a full disk stopped the fit (its saved state may lag: never done).
    """
    # Trials Ray created but never started (a searcher's pending proposal when the budget ran
    # out) are not trials of this search: `trials.total` counts those that started.
    started = frozenset(
        r.trial_id
        for r in outcome.records
        if r.trial_id in tracked or "epoch" in r.metrics or r.error
    )
    missing = len(outcome.records) < planned
    unfinished = outcome.unfinished()
    # A signal stops running trials (Ray saves them to continue); a spent budget or a fired
    # rule explains only trials that never ran or were never proposed.
    ended_early = budget_spent or outcome.search_stop is not None
    interrupted = (
        disk_full
        or any(t in started for t in unfinished)
        or ((missing or bool(unfinished)) and not ended_early)
    )
    cut = any(
        r.trial_id in open_trials
        and outcome.statuses.get(r.trial_id) == "TERMINATED"
        and stop_reason(r.metrics, epochs) == SCHEDULER
        for r in outcome.records
    )
    stopped_by = None
    if not interrupted and outcome.search_stop is not None:
        stopped_by = outcome.search_stop
    elif budget_spent and not interrupted and (missing or cut or unfinished):
        stopped_by = BUDGET
    return SearchEnd(interrupted, stopped_by, started)
