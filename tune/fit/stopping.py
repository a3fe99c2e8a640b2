"""`search.stop`: end a whole search once it is good enough, as a Ray Tune `Stopper`.

Two rules, either or both: a `target` any trial's metric reaches (per the search's mode), and a
`plateau`: the best over finished trials has not improved by more than `tolerance` over
`patience` finished trials. Such an end is normal, like the time budget's (exit 0,
`stopped_by`), and the trials it cuts end FINISHED with the rule's name as their stop reason.

The target is checked on every result; the plateau counts finished trials, which a `Stopper`
is not told about, so `FinishedTrials` (a callback) feeds it. Ray pickles the stopper when the
Tuner is made, before it has seen anything: a resume gets a fresh one, told by the run map
whether a rule had already ended the search (`tune.fit.tuner.restore_stopper`).
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback, Stopper

from tune.config.schema import StopRule
from tune.metrics import better, finite_or_none
from tune.outcomes import PLATEAU, TARGET


class SearchStopper(Stopper):
    """Never stops one trial; stops them all once a rule fires (`fired` names it)."""

    def __init__(self, rule: StopRule, metric: str, mode: str) -> None:
        self.rule, self.metric, self.mode = rule, metric, mode
        self.fired: str | None = None
        self.best: float | None = None  # the best final value of the finished trials
        self.without_improvement = 0  # finished trials since the best last improved
        self.finished: set[str] = set()  # counted once, also across a restore

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = finite_or_none(result.get(self.metric))
        target = self.rule.target
        if self.fired is None and value is not None and target is not None:
            if value == target or better(self.mode, value, target):
                self.fired = TARGET
        return False  # a trial's own end is the scheduler's business

    def trial_finished(self, trial_id: str, result: dict[str, Any]) -> None:
        """A trial ended (any way): count it towards the plateau."""
        plateau = self.rule.plateau
        if plateau is None or trial_id in self.finished:
            return
        self.finished.add(trial_id)
        value = finite_or_none(result.get(self.metric))
        if value is not None and (
            self.best is None or better(self.mode, value, self.best, plateau.tolerance)
        ):
            self.best, self.without_improvement = value, 0
        else:
            if value is not None and better(self.mode, value, self.best):
                self.best = value  # better, but not by more than the tolerance
            self.without_improvement += 1
        if self.fired is None and self.without_improvement >= plateau.patience:
            self.fired = PLATEAU

    def stop_all(self) -> bool:
        return self.fired is not None


class FinishedTrials(Callback):
    """Tells the stopper each trial's end (completed, stopped early or errored)."""

    def __init__(self, stopper: SearchStopper) -> None:
        self.stopper = stopper

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.stopper.trial_finished(trial.trial_id, getattr(trial, "last_result", None) or {})

    def on_trial_error(self, iteration, trials, trial, **info):
        self.stopper.trial_finished(trial.trial_id, {})
