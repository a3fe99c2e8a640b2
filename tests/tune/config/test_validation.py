"""tune.config.validation and tune.config.trial_keys: every way a search config can be wrong, each
one line
that names the key path and the bad value."""

from __future__ import annotations

import pytest

from tests.config_cases import BASE, space_with, with_changes, write
from tune.config.parse import load_search_config
from tune.errors import SearchConfigError

INVALID = [
    # Values that once passed validate and failed later, inside Ray or a trial:
    pytest.param(
        with_changes(trial={"seed": 2**32}), [], ["trial.seed", "< 4294967296"], id="trial-seed"
    ),
    pytest.param(
        with_changes(search={"seed": 2**32, "algorithm": "optuna"}),
        [],
        ["search.seed", "2**32"],
        id="search-seed",
    ),
    pytest.param(
        "name: d\ndataset: mnist5k\nspace: {lr: [0.1]}\nresources: {gpus_per_trial: .nan}\n",
        [],
        ["resources.gpus_per_trial", "nan", "finite"],
        id="gpus-nan",
    ),
    pytest.param(
        "name: d\ndataset: mnist5k\nspace: {lr: [0.1]}\nresources: {cpus_per_trial: .inf}\n",
        [],
        ["resources.cpus_per_trial", "inf", "finite"],
        id="cpus-inf",
    ),
    pytest.param(
        with_changes(space=space_with(val_fraction=[0.1, 0.2])),
        [],
        ["space.val_fraction", "cannot be searched", "in trial"],
        id="val-fraction-searched",
    ),
    pytest.param(
        with_changes(space=space_with(image_size=[16, 32])),
        [],
        ["space.image_size", "cannot be searched"],
        id="image-size-searched",
    ),
    pytest.param(
        "name: demo\ndataset: mnist5k\nspace:\n  lr: [0.1, 0.2\n",
        [],
        ["search.yaml", "malformed YAML at line 5"],
        id="malformed-yaml",
    ),
    pytest.param("- a\n- b\n", [], ["search.yaml", "not a mapping"], id="not-a-mapping"),
    pytest.param(with_changes(space=...), [], ["space", "required"], id="missing-space"),
    pytest.param(
        with_changes(epoch=3), [], ["epoch", "'epoch'", "allowed: name"], id="unknown-top"
    ),
    pytest.param(
        with_changes(search={"num_sample": 3}),
        [],
        ["search.num_sample", "'num_sample'", "num_samples"],
        id="unknown-nested",
    ),
    pytest.param(
        with_changes(mlflow={"uri": "x"}), [], ["mlflow.uri", "tracking_uri"], id="unknown-mlflow"
    ),
    pytest.param(
        with_changes(space=space_with(activation=["relu", "swishy"])),
        [],
        ["space.activation", "'swishy'", "relu"],
        id="unknown-activation",
    ),
    pytest.param(
        with_changes(space={"lr": [0.001, 0.01]}, trial={"augment": "rotate"}),
        [],
        ["trial.augment", "'rotate'", "crop"],
        id="unknown-augment-in-trial",
    ),
    pytest.param(
        with_changes(space=space_with(augment={"choice": ["none", "mixup"]})),
        [],
        ["space.augment.choice", "'mixup'"],
        id="unknown-augment-in-choice",
    ),
    pytest.param(
        with_changes(dataset="imagenet"), [], ["dataset", "'imagenet'", "mnist5k"], id="dataset"
    ),
    pytest.param(
        with_changes(dataset="cifar10"), [], ["data_root", "'cifar10'"], id="dataset-needs-root"
    ),
    pytest.param(
        with_changes(search={"algorithm": "bayes"}),
        [],
        ["search.algorithm", "'bayes'", "random, grid, optuna"],
        id="unknown-algorithm",
    ),
    pytest.param(
        with_changes(search={"scheduler": "hyperband"}),
        [],
        ["search.scheduler", "'hyperband'", "fifo, asha, pbt"],
        id="unknown-scheduler",
    ),
    pytest.param(
        with_changes(space=space_with(lr=0)), [], ["space.lr", "lr 0.0", "> 0"], id="lr-zero"
    ),
    pytest.param(
        with_changes(space=space_with(lr=[-0.1, 0.01])), [], ["space.lr", "-0.1"], id="lr-negative"
    ),
    pytest.param(
        with_changes(space=space_with(lr={"loguniform": [1e-2, 1e-4]})),
        [],
        ["space.lr.loguniform", "0.01", "0.0001", "low < high"],
        id="inverted-range",
    ),
    pytest.param(
        with_changes(space=space_with(lr={"loguniform": [0, 1e-2]})),
        [],
        ["space.lr.loguniform", "0.0", "0 < low"],
        id="loguniform-zero",
    ),
    pytest.param(
        with_changes(space=space_with(lr={"loguniform": [1e-4]})),
        [],
        ["space.lr.loguniform", "[0.0001]", "[low, high]"],
        id="range-not-a-pair",
    ),
    pytest.param(
        with_changes(space=space_with(dropout={"uniform": [0.0, 1.0]})),
        [],
        ["space.dropout.uniform", "dropout 1.0", "< 1"],
        id="range-end-out-of-trial-range",
    ),
    pytest.param(
        with_changes(space=space_with(batch_size=[0, 64])),
        [],
        ["space.batch_size", "batch_size 0", ">= 2"],
        id="batch-size-zero",
    ),
    pytest.param(
        with_changes(space=space_with(batch_size={"uniform": [16, 256]})),
        [],
        ["space.batch_size.uniform", "batch_size is int", "a list of values"],
        id="range-on-int-field",
    ),
    pytest.param(
        with_changes(space=space_with(dropout={"normal": [0, 1]})),
        [],
        ["space.dropout", "'normal'", "loguniform"],
        id="unknown-space-form",
    ),
    pytest.param(
        with_changes(space=space_with(activation=[])),
        [],
        ["space.activation", "[]"],
        id="empty-list",
    ),
    pytest.param(with_changes(space={}), [], ["space", "empty"], id="empty-space"),
    pytest.param(
        with_changes(space=space_with(widht=[16, 32])),
        [],
        ["space.widht", "'widht'", "width"],
        id="unknown-space-key",
    ),
    pytest.param(
        with_changes(space=space_with(epochs=[2, 4])),
        [],
        ["space.epochs", "top level"],
        id="space-top-level-key",
    ),
    pytest.param(
        with_changes(space=space_with(device=["cpu", "cuda"])),
        [],
        ["space.device"],
        id="space-device",
    ),
    pytest.param(
        with_changes(trial={"lr": 0.1}), [], ["trial.lr", "also in space"], id="trial-in-space"
    ),
    pytest.param(
        with_changes(trial={"epochs": 3}), [], ["trial.epochs", "top-level"], id="trial-top-level"
    ),
    pytest.param(
        with_changes(trial={"max_train_images": 0}),
        [],
        ["trial", "max_train_images", ">= 2"],
        id="trial-bad-cap",
    ),
    pytest.param(with_changes(epochs=0), [], ["epochs", "epochs 0", ">= 1"], id="epochs-zero"),
    pytest.param(with_changes(epochs="abc"), [], ["epochs", "'abc'"], id="epochs-not-int"),
    pytest.param(
        with_changes(search={"num_samples": 0}),
        [],
        ["search.num_samples", "0", ">= 1"],
        id="num-samples-zero",
    ),
    pytest.param(
        with_changes(search={"num_samples": "many"}),
        [],
        ["search.num_samples", "'many'", "an int"],
        id="num-samples-type",
    ),
    pytest.param(
        with_changes(search={"max_concurrent": -1}),
        [],
        ["search.max_concurrent", "-1"],
        id="max-concurrent-negative",
    ),
    pytest.param(
        with_changes(search={"max_failures": -2}),
        [],
        ["search.max_failures", "-2"],
        id="max-failures-negative",
    ),
    pytest.param(
        with_changes(search={"time_budget_s": 0}),
        [],
        ["search.time_budget_s", "0", "> 0"],
        id="time-budget-zero",
    ),
    pytest.param(
        with_changes(search={"stop": {"target": "high"}}),
        [],
        ["search.stop.target", "'high'", "a float"],
        id="stop-target-not-a-number",
    ),
    pytest.param(
        with_changes(search={"stop": {"plateau": {"patience": 0}}}),
        [],
        ["search.stop.plateau.patience", "0", ">= 1"],
        id="stop-plateau-patience-zero",
    ),
    pytest.param(
        with_changes(search={"stop": {"plateau": {"patience": 2, "tolerance": -0.1}}}),
        [],
        ["search.stop.plateau.tolerance", "-0.1", ">= 0"],
        id="stop-plateau-negative-tolerance",
    ),
    pytest.param(
        with_changes(search={"stop": {"plateau": 3}}),
        [],
        ["search.stop.plateau", "patience"],
        id="stop-plateau-not-a-mapping",
    ),
    pytest.param(
        with_changes(search={"stop": {"at": 0.9}}),
        [],
        ["search.stop.at", "target, plateau"],
        id="stop-unknown-rule",
    ),
    pytest.param(
        with_changes(search={"stop": 0.99}),
        [],
        ["search.stop", "0.99", "target: NUMBER"],
        id="stop-not-a-mapping",
    ),
    pytest.param(
        with_changes(notify={"webhook": "ftp://hooks.example/SECRET"}),
        [],
        ["notify.webhook", "ftp://hooks.example/***", "http"],
        id="notify-webhook-not-http",
    ),
    pytest.param(
        with_changes(notify={"webhook": "https://h/x", "on": ["done"]}),
        [],
        ["notify.on", "'done'", "finished, failed, interrupted"],
        id="notify-unknown-end",
    ),
    pytest.param(
        with_changes(notify={"url": "https://h/x"}),
        [],
        ["notify.url", "webhook, on"],
        id="notify-unknown-key",
    ),
    pytest.param(
        with_changes(search={"mode": "maximize"}),
        [],
        ["search.mode", "'maximize'", "max, min"],
        id="bad-mode",
    ),
    pytest.param(
        with_changes(search={"metric": "val_loss"}),
        [],
        ["search.mode", "'max'", "'val_loss'", "'min'"],
        id="loss-maximized",
    ),
    pytest.param(
        with_changes(search={"metric": "accuracy"}),
        [],
        ["search.metric", "'accuracy'", "val_acc"],
        id="bad-metric",
    ),
    pytest.param(
        with_changes(search={"algorithm": "optuna", "scheduler": "pbt"}),
        [],
        ["search.scheduler", "'pbt'", "'optuna'", "fifo, asha"],
        id="optuna-pbt",
    ),
    pytest.param(
        with_changes(search={"algorithm": "grid"}),
        [],
        ["space.lr", "loguniform", "'grid'"],
        id="grid-continuous",
    ),
    pytest.param(
        with_changes(space=space_with(lr=0.003), search={"scheduler": "pbt"}),
        [],
        ["space.lr", "'pbt'", "0.003"],
        id="pbt-fixed-lr",
    ),
    pytest.param(
        with_changes(space={"activation": ["relu", "tanh"]}, search={"scheduler": "pbt"}),
        [],
        ["space.lr", "'pbt'", "missing"],
        id="pbt-no-lr",
    ),
    pytest.param(with_changes(name="../evil"), [], ["name", "'../evil'", "folder"], id="bad-name"),
    pytest.param(with_changes(name=".hidden"), [], ["name", "'.hidden'"], id="dot-name"),
    pytest.param(with_changes(name="x" * 101), [], ["name", "1-100"], id="long-name"),
    pytest.param(with_changes(name=7), [], ["name", "7 is an int", "a str"], id="name-not-str"),
    pytest.param(
        with_changes(resources={"gpus_per_trial": -1}),
        [],
        ["resources.gpus_per_trial", "-1"],
        id="negative-gpus",
    ),
    pytest.param(
        with_changes(resources={"gpus_per_trial": 1.5}),
        [],
        ["resources.gpus_per_trial", "1.5", "whole"],
        id="gpus-fraction-above-one",
    ),
    pytest.param(
        with_changes(resources={"cpus_per_trial": 0}),
        [],
        ["resources.cpus_per_trial", "0", "> 0"],
        id="zero-cpus",
    ),
    pytest.param(
        with_changes(search=[1, 2]), [], ["search", "[1, 2]", "a mapping"], id="section-not-mapping"
    ),
    pytest.param(BASE, ["epochs2"], ["--set epochs2", "KEY=VALUE"], id="set-without-equals"),
    pytest.param(BASE, ["=3"], ["--set =3", "KEY=VALUE"], id="set-empty-key"),
    pytest.param(BASE, ["search..x=3"], ["--set search..x=3"], id="set-empty-part"),
    pytest.param(
        BASE, ["search.nope=1"], ["search.nope", "'nope'", "num_samples"], id="set-unknown-path"
    ),
    pytest.param(BASE, ["nope=1"], ["nope", "'nope'", "allowed: name"], id="set-unknown-top"),
    pytest.param(BASE, ["name.x=1"], ["name.x", "'demo'", "not a mapping"], id="set-into-scalar"),
    pytest.param(
        BASE,
        ["space.lr={loguniform: [1"],
        ["--set space.lr={loguniform: [1", "malformed YAML"],
        id="set-malformed-value",
    ),
    pytest.param(
        BASE,
        ["space.activation=[relu, swishy]"],
        ["space.activation", "'swishy'"],
        id="set-bad-value",
    ),
]


@pytest.mark.parametrize("data, overrides, fragments", INVALID)
def test_invalid_config(tmp_path, data, overrides, fragments):
    path = write(tmp_path, data)
    with pytest.raises(SearchConfigError) as info:
        load_search_config(path, overrides, cwd=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert message.startswith(info.value.key + ": ")


def test_invalid_table_is_large_enough():
    assert len(INVALID) >= 20
