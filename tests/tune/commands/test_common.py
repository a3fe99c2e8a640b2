"""tune.commands.common: strict JSON, the config read from the real parser's arguments, and the
summary's two streams."""

from __future__ import annotations

import json

import pytest

from tests.config_cases import BASE, write
from tune.cli import build_parser
from tune.commands.common import load_config, print_summary, to_json
from tune.errors import SearchConfigError
from tune.logs import setup_logging
from tune.outcomes import TrialRecord
from tune.summary import summarize


def strict(text):
    """json.loads that refuses NaN and Infinity, as strict parsers (jq, JSON.parse) do."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_nan_and_infinities_become_null_at_any_depth():
    nan, inf = float("nan"), float("inf")
    data = {"loss": nan, "curve": [1.0, inf, -inf], "trial": {"best": (nan, 2)}, 3: "three"}
    assert strict(to_json(data)) == {
        "loss": None, "curve": [1.0, None, None], "trial": {"best": [None, 2]}, "3": "three",
    }  # fmt: skip


def test_finite_values_and_key_order_are_kept():
    data = {"z": 0.25, "a": [True, None, "x"], "m": 10**20}
    assert to_json(data) == json.dumps(data, indent=2)


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_load_config_applies_set_and_name_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, BASE)
    args = parse("validate", str(path), "--set", "epochs=2", "--set", "search.num_samples=3",
                 "--name", "renamed")  # fmt: skip
    cfg = load_config(args)
    assert (cfg.name, cfg.epochs, cfg.search.num_samples) == ("renamed", 2, 3)
    assert cfg.storage_path == str(tmp_path / "ray_results")  # relative paths: the cwd's


def test_name_wins_over_a_set_name_and_a_bad_one_names_the_key(tmp_path):
    path = write(tmp_path, BASE)
    assert load_config(parse("validate", str(path), "--set", "name=a", "--name", "b")).name == "b"
    assert load_config(parse("validate", str(path))).name == BASE["name"]
    with pytest.raises(SearchConfigError, match="name"):
        load_config(parse("validate", str(path), "--name", "../up"))


def small_summary():
    records = [
        TrialRecord("t1", {"activation": "relu"}, {"epoch": 2, "val_acc": 0.9, "val_loss": 0.3}),
        TrialRecord(
            "t2", {"activation": "tanh"}, {"epoch": 1, "val_acc": 0.6, "val_loss": float("nan")}
        ),  # fmt: skip
    ]
    return summarize(records, name="s", epochs=2, metric="val_acc", mode="max",
                     searched_keys=["activation"], wall_seconds=3.0, storage_path="/r",
                     experiment_path="/r/s")  # fmt: skip


def test_the_summary_json_goes_to_stdout_and_only_there(capsys):
    setup_logging(0)
    summary = small_summary()
    print_summary(summary, as_json=True)
    out, err = capsys.readouterr()
    assert strict(out) == strict(to_json(summary.to_json()))
    assert strict(out)["name"] == "s"
    assert "t1" in err and "{" not in err  # the table, not the JSON


def test_without_json_stdout_stays_empty(capsys):
    setup_logging(0)
    print_summary(small_summary(), as_json=False)
    out, err = capsys.readouterr()
    assert out == "" and "t1" in err
