"""tune.commands.trial: the trial config `train` builds from its flags and --set (the training
itself: tests/tune/test_cli.py)."""

from __future__ import annotations

import pytest

from trainables.config import TrialConfig
from tune.cli import build_parser
from tune.commands.trial import trial_values_from_args
from tune.errors import BadInput


def values(*argv):
    return trial_values_from_args(build_parser().parse_args(["train", *argv]))


def test_a_flag_not_given_takes_the_trial_configs_default():
    # One home for the defaults: TrialConfig. `train` alone is TrialConfig().
    assert TrialConfig.from_dict(values()).to_dict() == TrialConfig.from_dict({}).to_dict()
    assert TrialConfig.from_dict(values()).epochs == TrialConfig().epochs


def test_a_given_flag_wins(tmp_path):
    given = values("--dataset", "mnist5k", "--activation", "tanh", "--augment", "none",
                   "--batch-size", "64", "--lr", "0.01", "--epochs", "2", "--seed", "7",
                   "--device", "cpu", "--download", "--data-root", str(tmp_path))  # fmt: skip
    assert {k: given[k] for k in ("activation", "augment", "batch_size", "lr", "epochs")} == {
        "activation": "tanh", "augment": "none", "batch_size": 64, "lr": 0.01, "epochs": 2,
    }  # fmt: skip
    assert (given["seed"], given["device"], given["download"]) == (7, "cpu", True)
    assert given["data_root"] == str(tmp_path)
    cfg = TrialConfig.from_dict(given)
    assert (cfg.epochs, cfg.lr, cfg.width) == (2, 0.01, TrialConfig().width)


def test_set_reaches_the_values_typed_as_yaml_and_after_the_flags():
    given = values("--lr", "0.01", "--set", "width=64", "--set", "lr_schedule=constant",
                   "--set", "lr=0.5", "--set", "max_train_images=null")  # fmt: skip
    assert given["width"] == 64 and given["lr_schedule"] == "constant"
    assert given["lr"] == 0.5 and given["max_train_images"] is None
    assert TrialConfig.from_dict(given).width == 64


@pytest.mark.parametrize(
    "item, problem",
    [("width", "malformed override"), ("=3", "malformed override"),
     ("width=[1", "width=\\[1"), ("model.width=8", "not nested")],
)  # fmt: skip
def test_a_bad_set_is_one_bad_input_line_naming_it(item, problem):
    # The same parser as `run --set`: a value that is not YAML is bad input, not a traceback.
    with pytest.raises(BadInput, match=problem) as raised:
        values("--set", item)
    assert "\n" not in str(raised.value)
