"""tune.config.trial_keys: `trial:` and `space:` checked value by value through TrialConfig."""

from __future__ import annotations

import pytest

from trainables.config import TrialConfig
from tune.config.space import Choice, LogUniform
from tune.config.trial_keys import check_space, check_trial_section, trial_value
from tune.errors import SearchConfigError

BASE = {"dataset": "mnist5k", "epochs": 2}


def refused(fn, *args) -> str:
    with pytest.raises(SearchConfigError) as err:
        fn(*args)
    return str(err.value)


def test_space_entries_become_domains_with_every_value_typed():
    space = check_space({"batch_size": ["64", 128], "lr": {"loguniform": ["1e-4", 1e-2]}}, BASE)
    assert space["batch_size"] == Choice([64, 128])  # as TrialConfig types them
    assert isinstance(space["lr"], LogUniform) and space["lr"].low == 1e-4


def test_every_value_a_trial_can_draw_is_checked_and_named():
    assert "space.activation" in refused(check_space, {"activation": ["relu", "swish2"]}, BASE)
    assert "low < high" in refused(check_space, {"lr": {"uniform": [0.1, 0.01]}}, BASE)
    assert "ranges only for float keys" in refused(
        check_space, {"batch_size": {"uniform": [2, 8]}}, BASE
    )
    assert "0 < low" in refused(check_space, {"lr": {"loguniform": [0, 1]}}, BASE)
    assert "cannot be searched" in refused(check_space, {"dataset": ["mnist5k"]}, BASE)
    assert "unknown trial config key 'colour'" in refused(check_space, {"colour": [1]}, BASE)
    assert "non-empty" in refused(check_space, {}, BASE)


def test_the_trial_section_fixes_keys_but_not_those_the_space_varies():
    assert check_trial_section({"width": "16"}, {"lr": [0.1]}, BASE) == {"width": 16}
    assert "also in space" in refused(check_trial_section, {"lr": 0.1}, {"lr": [0.1]}, BASE)
    assert "top-level key epochs" in refused(check_trial_section, {"epochs": 3}, {}, BASE)
    assert check_trial_section(None, {}, BASE) == {}


def test_a_single_value_is_typed_as_the_trial_config_types_it():
    assert trial_value("trial.lr", "lr", "3e-3", BASE) == pytest.approx(3e-3)
    assert "a single value" in refused(trial_value, "trial.lr", "lr", [0.1], BASE)
    assert TrialConfig.from_dict({**BASE, "lr": 0.003}).lr == 0.003
