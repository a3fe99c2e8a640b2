"""tune.fit.stopping without a Ray run: the target and plateau rules, and a restore's memory."""

from __future__ import annotations

import pickle

from tune.config.schema import Plateau, StopRule
from tune.fit.stopping import SearchStopper


def test_target_fires_on_the_first_result_that_reaches_it_per_mode():
    up = SearchStopper(StopRule(target=0.9), "val_acc", "max")
    assert up("a", {"val_acc": 0.89}) is False and not up.stop_all()
    assert up("b", {"val_acc": float("nan")}) is False and not up.stop_all()
    up("b", {"val_acc": 0.9})
    assert up.stop_all() and up.fired == "target"
    down = SearchStopper(StopRule(target=0.2), "val_loss", "min")
    down("a", {"val_loss": 0.25, "val_acc": 0.99})
    assert not down.stop_all()
    down("a", {"val_loss": 0.19})
    assert down.fired == "target"


def test_plateau_counts_finished_trials_without_an_improvement_over_the_tolerance():
    stopper = SearchStopper(StopRule(plateau=Plateau(patience=2, tolerance=0.01)), "val_acc", "max")
    stopper.trial_finished("a", {"val_acc": 0.80})  # the first best
    stopper.trial_finished("b", {"val_acc": 0.85})  # improved by 0.05: counting restarts
    stopper.trial_finished("c", {"val_acc": 0.855})  # by 0.005 only: 1
    stopper.trial_finished("c", {"val_acc": 0.5})  # the same trial again: not counted twice
    assert not stopper.stop_all() and stopper.without_improvement == 1
    stopper.trial_finished("d", {})  # errored or diverged: no metric, no improvement: 2
    assert stopper.stop_all() and stopper.fired == "plateau"
    assert stopper.best == 0.855  # the best is kept, even below the tolerance


def test_a_pickled_stopper_keeps_what_it_saw():
    # Ray pickles the stopper (RunConfig.stop) with the Tuner.
    stopper = SearchStopper(StopRule(target=0.5, plateau=Plateau(3)), "val_acc", "max")
    stopper.trial_finished("a", {"val_acc": 0.4})
    stopper("b", {"val_acc": 0.6})
    again = pickle.loads(pickle.dumps(stopper))
    assert again.stop_all() and again.fired == "target" and again.finished == {"a"}
