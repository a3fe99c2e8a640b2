"""Searchers and schedulers by name as Ray's builders, and a `SearchConfig` as Ray Tune's space.

The names a config may use and what each can run with which are `tune.config.searchers`; here
each name gets its builder (`SEARCHERS`, `SCHEDULERS`), and a test checks both sides name the
same set. Ray is imported inside the builders.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from tune.config.schema import SearchConfig
from tune.config.searchers import MUTATED_KEYS
from tune.config.space import Choice, Domain, is_range, to_ray
from tune.warm_start import WarmStart

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import SearchAlgorithm, Searcher

# Rungs of ASHA keep the best 1/REDUCTION_FACTOR of trials; 2 suits the few epochs of a search.
ASHA_REDUCTION_FACTOR = 2
ASHA_GRACE_PERIOD = 1  # epochs every trial gets before ASHA may stop it
PBT_PERTURBATION_INTERVAL = 1  # epochs between PBT exploit/explore steps


def make_param_space(cfg: SearchConfig, points: list | None = None) -> dict[str, Any]:
    """The trial config Ray samples from: the shared fixed values plus one Ray domain per
    space key (`tune.grid_search` for choices under algorithm grid, unless a warm start's
    `points` give every trial: then Ray's own expansion must not add more)."""
    space = cfg.fixed_trial_config()
    grid = cfg.search.algorithm == "grid" and points is None
    for key, domain in cfg.space.items():
        space[key] = to_ray(domain, grid=grid)
    return space


def make_searcher(cfg: SearchConfig, warm: WarmStart | None = None) -> Searcher | SearchAlgorithm:
    """The search algorithm for `cfg.search.algorithm`, seeded by `search.seed`.

    `warm`: a `tune.warm_start.WarmStart` whose earlier trials seed it (optuna), or whose new
    points it proposes (random, grid: `warm.new` from `tune.warm_start.new_points`).
    """
    return SEARCHERS[cfg.search.algorithm](cfg, warm)


def tune_max_concurrent(search_alg: Any, cfg: SearchConfig) -> int | None:
    """`TuneConfig.max_concurrent_trials`: Tune wraps a `Searcher` in a ConcurrencyLimiter
    with it, but only warns for a BasicVariantGenerator, which takes its limit itself."""
    from ray.tune.search import BasicVariantGenerator

    if isinstance(search_alg, BasicVariantGenerator):
        return None
    return cfg.search.max_concurrent or None


def make_scheduler(cfg: SearchConfig) -> TrialScheduler:
    """The trial scheduler for `cfg.search.scheduler`; metric and mode are left to TuneConfig."""
    return SCHEDULERS[cfg.search.scheduler](cfg)


# --- searchers -------------------------------------------------------------------------------


def _basic_variants(cfg: SearchConfig, warm: WarmStart | None = None) -> SearchAlgorithm:
    from ray.tune.search import BasicVariantGenerator

    # Ray's default: samples domains at random and expands grid_search. Seeded, so that a
    # rerun of the same config proposes the same trials, as optuna's does. A warm start's
    # points (none evaluated before) are every trial it proposes.
    return BasicVariantGenerator(
        points_to_evaluate=list(warm.new) if warm is not None and warm.new is not None else None,
        max_concurrent=cfg.search.max_concurrent,
        random_state=cfg.search.seed,
    )


def _optuna(cfg: SearchConfig, warm: WarmStart | None = None) -> Searcher:
    from ray.tune.search.optuna import OptunaSearch

    # TPE; the seed makes a rerun of the same config propose the same trials. Earlier trials
    # are told to it as evaluated: TPE's start-up draws count them.
    points = [p.config for p in warm.points] if warm is not None and warm.points else None
    return OptunaSearch(
        metric=cfg.search.metric,
        mode=cfg.search.mode,
        seed=cfg.search.seed,
        points_to_evaluate=points,
        evaluated_rewards=[p.value for p in warm.points] if points else None,
    )


SEARCHERS: dict[str, Callable[[SearchConfig, Any], Searcher | SearchAlgorithm]] = {
    "random": _basic_variants,
    "grid": _basic_variants,
    "optuna": _optuna,
}


# --- schedulers ------------------------------------------------------------------------------


def _fifo(cfg: SearchConfig) -> TrialScheduler:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def _asha(cfg: SearchConfig) -> TrialScheduler:
    from ray.tune.schedulers import ASHAScheduler

    # One training_iteration is one epoch (the trainable reports once per epoch).
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=cfg.epochs,
        grace_period=ASHA_GRACE_PERIOD,
        reduction_factor=ASHA_REDUCTION_FACTOR,
    )


def _pbt(cfg: SearchConfig) -> TrialScheduler:
    from ray.tune.schedulers import PopulationBasedTraining

    mutations = {key: _pbt_mutation(cfg.space[key]) for key in MUTATED_KEYS["pbt"]}
    bounds = {
        key: (domain.low, domain.high)
        for key in MUTATED_KEYS["pbt"]
        if is_range(domain := cfg.space[key])
    }
    return PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=PBT_PERTURBATION_INTERVAL,
        hyperparam_mutations=mutations,
        # PBT scales a range value by 0.8 or 1.2 without looking at the range: lr would drift
        # past what the config allows (and past 10, where a trial raises).
        custom_explore_fn=partial(clip_to_ranges, bounds),
    )


def clip_to_ranges(bounds: dict[str, tuple[float, float]], config: dict[str, Any]) -> dict:
    """PBT's explored config with each ranged key put back inside [low, high]."""
    for key, (low, high) in bounds.items():
        if isinstance(config.get(key), (int, float)):
            config[key] = min(max(config[key], low), high)
    return config


def _pbt_mutation(domain: Domain) -> Any:
    # PBT takes a list (steps to a neighbouring value) or a Ray domain (resample or scale by
    # 0.8/1.2); validation has checked the domain is one of those, not a fixed value.
    if isinstance(domain, Choice):
        return list(domain.values)
    return to_ray(domain)


SCHEDULERS: dict[str, Callable[[SearchConfig], TrialScheduler]] = {
    "fifo": _fifo,
    "asha": _asha,
    "pbt": _pbt,
}
