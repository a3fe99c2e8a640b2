"""tune.fit.algorithms: searchers and schedulers by name, and the param space Ray samples from."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Experiment
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Float, LogUniform, Uniform
from ray.tune.search.variant_generator import generate_variants

from trainables.config import TrialConfig
from tune.config.parse import parse_search_config
from tune.config.searchers import (
    DISCRETE_ONLY_SEARCHERS,
    INCOMPATIBLE,
    MUTATED_KEYS,
    SCHEDULER_NAMES,
    SEARCHER_NAMES,
)
from tune.fit.algorithms import (
    SCHEDULERS,
    SEARCHERS,
    make_param_space,
    make_scheduler,
    make_searcher,
    tune_max_concurrent,
)

SPACE = {
    "activation": ["relu", "tanh"],
    "augment": ["none", "crop"],
    "batch_size": [64, 128],
    "lr": {"loguniform": [1e-4, 1e-2]},
}


def config(space=None, **search):
    return parse_search_config(
        {
            "name": "t",
            "dataset": "mnist5k",
            "epochs": 3,
            "trial": {"width": 8},
            "space": SPACE if space is None else space,
            "search": search,
        }
    )


def test_registries_hold_the_documented_names():
    assert list(SEARCHERS) == ["random", "grid", "optuna"]
    assert list(SCHEDULERS) == ["fifo", "asha", "pbt"]


def test_every_name_a_config_may_use_has_a_builder_and_no_builder_is_unnamed():
    # The config wing names them (validation), this side builds them: the two must agree.
    assert list(SEARCHERS) == list(SEARCHER_NAMES)
    assert list(SCHEDULERS) == list(SCHEDULER_NAMES)
    named = set(SEARCHER_NAMES) | set(SCHEDULER_NAMES)
    assert {n for pair in INCOMPATIBLE for n in pair} <= named
    assert set(MUTATED_KEYS) <= set(SCHEDULER_NAMES) and DISCRETE_ONLY_SEARCHERS <= named


def test_param_space_holds_ray_domains_and_fixed_values():
    space = make_param_space(config({**SPACE, "dropout": {"uniform": [0.0, 0.5]}, "depth": 2}))
    assert isinstance(space["activation"], Categorical)
    assert space["activation"].categories == ["relu", "tanh"]
    assert isinstance(space["lr"], Float)
    assert isinstance(space["lr"].get_sampler(), LogUniform)
    assert (space["lr"].lower, space["lr"].upper) == (1e-4, 1e-2)
    assert isinstance(space["dropout"].get_sampler(), Uniform)
    assert space["depth"] == 2
    # what every trial shares rides along as plain values
    assert space["width"] == 8 and space["dataset"] == "mnist5k" and space["epochs"] == 3


def test_sampled_trial_configs_are_valid_trial_configs():
    space = make_param_space(config())
    for _, trial in generate_variants(space, random_state=0):
        cfg = TrialConfig.from_dict(trial)
        assert 1e-4 <= cfg.lr <= 1e-2 and cfg.activation in ("relu", "tanh")


def test_grid_uses_grid_search_and_matches_trial_count():
    cfg = config({**SPACE, "lr": [1e-3, 1e-2]}, algorithm="grid", num_samples=2)
    space = make_param_space(cfg)
    assert space["activation"] == {"grid_search": ["relu", "tanh"]}
    assert space["lr"] == {"grid_search": [1e-3, 1e-2]}
    assert isinstance(make_searcher(cfg), BasicVariantGenerator)
    # Ray expands the grid once per sample; the count must be what trial_count promises.
    variants = list(generate_variants(space))
    assert len(variants) * cfg.search.num_samples == cfg.trial_count() == 32
    assert len({tuple(sorted(v.items())) for _, v in variants}) == 16


def propose(cfg):
    """The trial configs a searcher proposes, without Ray running."""
    searcher = make_searcher(cfg)
    trainable = lambda config: None  # noqa: E731
    experiment = Experiment("x", trainable, config=make_param_space(cfg), num_samples=6)
    searcher.add_configurations([experiment])
    proposals = []
    while (trial := searcher.next_trial()) is not None:
        proposals.append((trial.config["activation"], trial.config["lr"]))
    return proposals


def test_random_search_is_seeded_by_search_seed():
    first = propose(config(seed=0, num_samples=6))
    assert len(first) == 6 and len(set(first)) == 6  # one generator across the samples
    assert propose(config(seed=0, num_samples=6)) == first
    assert propose(config(seed=1, num_samples=6)) != first


def test_random_takes_the_concurrency_limit_itself():
    cfg = config(max_concurrent=2)
    searcher = make_searcher(cfg)
    assert searcher.max_concurrent == 2
    # Tune would only warn and ignore its own limit for a BasicVariantGenerator.
    assert tune_max_concurrent(searcher, cfg) is None
    optuna = config(algorithm="optuna", max_concurrent=2)
    assert tune_max_concurrent(make_searcher(optuna), optuna) == 2


def test_optuna_searcher_is_seeded_and_reads_the_space():
    cfg = config(algorithm="optuna", seed=7, metric="val_loss", mode="min")
    searcher = make_searcher(cfg)
    assert isinstance(searcher, OptunaSearch)
    assert (searcher.metric, searcher.mode, searcher._seed) == ("val_loss", "min", 7)
    # The param space converts to Optuna distributions, fixed keys left out.
    distributions = OptunaSearch.convert_search_space(make_param_space(cfg))
    assert set(distributions) == {"activation", "augment", "batch_size", "lr"}
    assert distributions["lr"].log


def test_fifo():
    assert type(make_scheduler(config(scheduler="fifo"))) is FIFOScheduler


def test_asha_stops_at_epochs_and_leaves_metric_to_tune_config():
    scheduler = make_scheduler(config(scheduler="asha"))
    assert isinstance(scheduler, ASHAScheduler)
    assert scheduler._max_t == 3
    assert scheduler._time_attr == "training_iteration"
    assert scheduler._reduction_factor in (2, 3)
    assert scheduler.metric is None and scheduler._mode is None


def test_asha_max_t_follows_epoch_override():
    cfg = parse_search_config(
        {"name": "t", "dataset": "mnist5k", "space": SPACE}, overrides=["epochs=2"]
    )
    assert make_scheduler(cfg)._max_t == 2


@pytest.mark.parametrize(
    "lr, kind",
    [({"loguniform": [1e-4, 1e-2]}, Float), ([1e-3, 3e-3, 1e-2], list)],
)
def test_pbt_mutates_lr(lr, kind):
    scheduler = make_scheduler(config({**SPACE, "lr": lr}, scheduler="pbt"))
    assert isinstance(scheduler, PopulationBasedTraining)
    assert scheduler._time_attr == "training_iteration"
    assert scheduler._perturbation_interval == 1
    assert set(scheduler._hyperparam_mutations) == {"lr"}
    assert isinstance(scheduler._hyperparam_mutations["lr"], kind)
    assert scheduler.metric is None


def test_pbt_keeps_lr_inside_its_declared_range():
    """PBT multiplies lr by 0.8 or 1.2 (or resamples it); the explored value stays in range."""
    from ray.tune.schedulers.pbt import _explore

    scheduler = make_scheduler(
        config({**SPACE, "lr": {"loguniform": [1e-4, 1e-2]}}, scheduler="pbt")
    )
    for start, factors in ((1e-2, (1.2, 1.2)), (1e-4, (0.8, 0.8)), (5e-3, (1.2, 1.2))):
        explored, _ = _explore(
            {"lr": start, "activation": "relu"},
            scheduler._hyperparam_mutations,
            resample_probability=0.0,
            perturbation_factors=factors,
            custom_explore_fn=scheduler._custom_explore_fn,
        )
        assert 1e-4 <= explored["lr"] <= 1e-2
        assert explored["lr"] == pytest.approx(min(max(start * factors[0], 1e-4), 1e-2))
