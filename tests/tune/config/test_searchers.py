"""tune.config.searchers: the names a config may use and the rules that pair them."""

from __future__ import annotations

import dataclasses

from trainables.config import TrialConfig
from tune.config.schema import SearchSettings
from tune.config.searchers import (
    DISCRETE_ONLY_SEARCHERS,
    INCOMPATIBLE,
    MUTATED_KEYS,
    SCHEDULER_NAMES,
    SEARCHER_NAMES,
)


def test_the_defaults_are_names_a_config_may_use():
    assert SearchSettings.algorithm in SEARCHER_NAMES
    assert SearchSettings.scheduler in SCHEDULER_NAMES


def test_every_rule_names_a_known_searcher_scheduler_or_trial_key():
    for algorithm, scheduler in INCOMPATIBLE:
        assert algorithm in SEARCHER_NAMES and scheduler in SCHEDULER_NAMES
        assert INCOMPATIBLE[(algorithm, scheduler)].strip()  # the why goes into the error line
    assert DISCRETE_ONLY_SEARCHERS <= set(SEARCHER_NAMES)
    keys = {f.name for f in dataclasses.fields(TrialConfig)}
    for scheduler, mutated in MUTATED_KEYS.items():
        assert scheduler in SCHEDULER_NAMES and set(mutated) <= keys


def test_every_searcher_runs_with_at_least_one_scheduler():
    for algorithm in SEARCHER_NAMES:
        assert any((algorithm, s) not in INCOMPATIBLE for s in SCHEDULER_NAMES)
