"""The Ray Tune callback that feeds a search's trial events to its MLflow `Tracker`.

Built here, by the tracking wing, and handed to `tune.fit.tuner` ready made: the Ray side
imports nothing of MLflow or of this package. Runs, epoch metrics, ends and learning curves
are logged from the driver as Ray reports them; a failed write is a warning, never a stop.
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from tune import disk_full
from tune.crash_points import crash_point
from tune.logs import get_logger
from tune.outcomes import BUDGET, ERROR, stop_reason
from tune.tracking.tracker import Tracker

log = get_logger("progress")


def latest_error(trial: Any) -> str | None:
    """The text of a trial's latest failure, from its error file on the driver (Ray appends
    each failure to it; the driver's staging copy is readable even when storage is full)."""
    path = getattr(trial, "error_file", None)
    if not path:
        return None
    try:
        with open(path, errors="replace") as f:
            return f.read()[-4000:]
    except OSError:
        return None


class MlflowTrialCallback(Callback):
    """Feeds trial events to the search's `Tracker`: runs, epoch metrics, ends, curves."""

    # Methods use only attributes, so __getstate__ decides exactly what Ray pickles into the
    # experiment folder.
    def __init__(self, tracker: Tracker, epochs: int, time_budget_s: float | None) -> None:
        self.tracker: Tracker | None = tracker
        self.epochs = epochs
        self.time_budget_s = time_budget_s
        self.start = time.monotonic()
        self.last: dict[str, dict[str, Any]] = {}
        self.epochs_seen: dict[str, dict[int, dict[str, Any]]] = {}  # trial -> epoch -> result
        self.stopper: Any = None  # the `search.stop` stopper (tune.fit.stopping), if any

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the RunConfig (callbacks included) into the experiment folder; the
        # tracker holds the tracking URI, which may carry credentials. A restore gets a fresh
        # callback from its driver, so the tracker need not be saved.
        return {**self.__dict__, "tracker": None, "last": {}, "epochs_seen": {}}

    @property
    def stopped_by(self) -> str | None:
        """The `search.stop` rule that already ended this search, as its run map recorded."""
        runs = self.tracker.runs if self.tracker is not None else None
        return runs.stopped_by if runs is not None else None

    def _safe(self, what: str, method: str, *args: Any) -> None:
        # Tracking must never stop a search: a failed write is reported, training goes on.
        if self.tracker is None:
            return
        try:
            getattr(self.tracker, method)(*args)
        except Exception as exc:
            log.warning(f"MLflow {what} failed: {exc}")

    def on_trial_start(self, iteration, trials, trial, **info):
        storage = getattr(trial, "storage", None)  # kept off a disk that fills (disk_full)
        disk_full.note_staging(getattr(storage, "experiment_driver_staging_path", None))
        self._safe("run creation", "trial_started", trial.trial_id, trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last[trial.trial_id] = result
        if isinstance(result.get("epoch"), int):  # a re-run epoch replaces the first
            self.epochs_seen.setdefault(trial.trial_id, {})[result["epoch"]] = result
        self._safe("metric logging", "trial_result", trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        elapsed = time.monotonic() - self.start
        budget_hit = self.time_budget_s is not None and elapsed >= self.time_budget_s
        # A trial restored from its final checkpoint ends without reporting again: its last
        # result then comes from Ray's saved state.
        last = self.last.get(trial.trial_id) or getattr(trial, "last_result", None) or {}
        cut_by = BUDGET if budget_hit else getattr(self.stopper, "fired", None)
        reason = stop_reason(last, self.epochs, cut_by=cut_by)
        self._safe("run end", "trial_ended", trial.trial_id, reason)
        self._log_curve(trial.trial_id)
        crash_point("trial_end", settle=self._wait_until_sent)

    def on_trial_error(self, iteration, trials, trial, **info):
        # The error's text is filled in at the end from Ray's results (record_error).
        if disk_full.notice(latest_error(trial), f"trial {trial.trial_id}"):
            return  # the search stops; the run is closed as interrupted, to be resumed
        self._safe("run end", "trial_ended", trial.trial_id, ERROR)
        self._log_curve(trial.trial_id)

    def on_trial_recover(self, iteration, trials, trial, **info):
        # Before Ray spends a retry: a full disk fails every retry the same way.
        disk_full.notice(latest_error(trial), f"trial {trial.trial_id}")

    def _wait_until_sent(self, within_s: float = 30.0) -> None:
        """Wait until the sender has sent what is queued (a test's fill after a trial's end).
        Once in CI the sender created a trial's run after that trial had ended, and its run map
        save, not Ray's state save, met the disk the test had just filled."""
        outbox = self.tracker.outbox if self.tracker is not None else None
        deadline = time.monotonic() + within_s
        while outbox is not None and outbox.pending() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _log_curve(self, trial_id: str) -> None:
        """Draw the curves now, while the driver waits on other trials, when this driver saw
        every epoch; else the end of the search draws them from Ray's history."""
        from tune.tracking.artifacts import log_trial_curve

        seen = self.epochs_seen.pop(trial_id, {})
        if self.tracker is None or not seen or sorted(seen) != list(range(1, max(seen) + 1)):
            return
        try:
            log_trial_curve(self.tracker, trial_id, [seen[e] for e in sorted(seen)])
        except Exception as exc:  # the end of the search tries again
            log.warning(f"learning curves failed: {exc}")
