"""trainables.faults: the test-only fault hook fires where it is asked to, and only there."""

from __future__ import annotations

import pytest

from trainables.faults import ENV_VAR, Fault, active_fault, parse_fault


def test_a_spec_is_parsed_into_kind_epoch_match_and_marker():
    assert parse_fault("nan@2?activation=sigmoid&once=/tmp/m") == Fault(
        "nan", 2, {"activation": "sigmoid"}, "/tmp/m"
    )
    assert parse_fault("raise@3") == Fault("raise", 3, {}, None)


@pytest.mark.parametrize("text", ["boom@2", "nan", "nan@two", "@2"])
def test_a_bad_spec_names_the_variable(text):
    with pytest.raises(ValueError, match=ENV_VAR):
        parse_fault(text)


def test_it_fires_in_its_epoch_for_matching_trials_only(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert active_fault(2, {"activation": "sigmoid"}) is None  # unset: the normal case
    monkeypatch.setenv(ENV_VAR, "nan@2?activation=sigmoid")
    assert active_fault(2, {"activation": "sigmoid"}) == "nan"
    assert active_fault(1, {"activation": "sigmoid"}) is None
    assert active_fault(2, {"activation": "relu"}) is None


def test_once_fires_a_single_time_and_leaves_its_marker(monkeypatch, tmp_path):
    marker = tmp_path / "fired"
    monkeypatch.setenv(ENV_VAR, f"raise@1?once={marker}")
    assert active_fault(1, {}) == "raise"
    assert marker.read_text() == "raise@1\n"
    assert active_fault(1, {}) is None  # the retry runs clean
