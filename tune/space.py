"""SearchConfig -> Ray Tune's param_space, searcher and scheduler.

Searchers and schedulers are registries by name: adding one is one entry in `SEARCHERS` or
`SCHEDULERS` (plus, if it cannot run everything, a line in the capability tables below them,
which `tune.config` checks before Ray starts). Ray is imported inside the factories, so
`tune.config` can read the registry names without paying for the Ray import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tune.config import Choice, Domain, Fixed, LogUniform, SearchConfig, Uniform

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

# Rungs of ASHA keep the best 1/REDUCTION_FACTOR of trials; 2 suits the few epochs of a search.
ASHA_REDUCTION_FACTOR = 2
ASHA_GRACE_PERIOD = 1  # epochs every trial gets before ASHA may stop it
PBT_PERTURBATION_INTERVAL = 1  # epochs between PBT exploit/explore steps


def make_param_space(cfg: SearchConfig) -> dict[str, Any]:
    """The trial config Ray samples from: the shared fixed values plus one Ray domain per space key.

    Choice becomes `tune.choice` (`tune.grid_search` for algorithm grid), LogUniform
    `tune.loguniform`, Uniform `tune.uniform`, Fixed its plain value.
    """
    space = cfg.fixed_trial_config()
    grid = cfg.search.algorithm == "grid"
    for key, domain in cfg.space.items():
        space[key] = _ray_domain(domain, grid=grid)
    return space


def make_searcher(cfg: SearchConfig) -> Searcher | None:
    """The searcher for `cfg.search.algorithm`; None means Ray's BasicVariantGenerator."""
    return SEARCHERS[cfg.search.algorithm](cfg)


def make_scheduler(cfg: SearchConfig) -> TrialScheduler:
    """The trial scheduler for `cfg.search.scheduler`; metric and mode are left to TuneConfig."""
    return SCHEDULERS[cfg.search.scheduler](cfg)


def _ray_domain(domain: Domain, grid: bool = False) -> Any:
    from ray import tune

    if isinstance(domain, Choice):
        values = list(domain.values)
        return tune.grid_search(values) if grid else tune.choice(values)
    if isinstance(domain, LogUniform):
        return tune.loguniform(domain.low, domain.high)
    if isinstance(domain, Uniform):
        return tune.uniform(domain.low, domain.high)
    if isinstance(domain, Fixed):
        return domain.value
    raise TypeError(f"unknown search domain {domain!r}")


# --- searchers -------------------------------------------------------------------------------


def _basic_variants(cfg: SearchConfig) -> None:
    # Ray's default BasicVariantGenerator: samples domains at random and expands grid_search.
    # Returning None (not an instance) lets TuneConfig.max_concurrent_trials apply to it.
    return None


def _optuna(cfg: SearchConfig) -> Searcher:
    from ray.tune.search.optuna import OptunaSearch

    # TPE; the seed makes a rerun of the same config propose the same trials.
    return OptunaSearch(metric=cfg.search.metric, mode=cfg.search.mode, seed=cfg.search.seed)


SEARCHERS: dict[str, Callable[[SearchConfig], Searcher | None]] = {
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
    return PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=PBT_PERTURBATION_INTERVAL,
        hyperparam_mutations=mutations,
    )


def _pbt_mutation(domain: Domain) -> Any:
    # PBT takes a list (steps to a neighbouring value) or a Ray domain (resample or scale by
    # 0.8/1.2); tune.config has checked the domain is one of those, not a fixed value.
    if isinstance(domain, Choice):
        return list(domain.values)
    return _ray_domain(domain)


SCHEDULERS: dict[str, Callable[[SearchConfig], TrialScheduler]] = {
    "fifo": _fifo,
    "asha": _asha,
    "pbt": _pbt,
}


# --- what each can run (checked by tune.config) -----------------------------------------------

# Searchers that only enumerate values: Ray's grid_search has no form for a continuous range.
DISCRETE_ONLY_SEARCHERS: frozenset[str] = frozenset({"grid"})

# Scheduler -> trial keys it mutates during training; each must be searchable in `space`.
MUTATED_KEYS: dict[str, tuple[str, ...]] = {"pbt": ("lr",)}

# (algorithm, scheduler) pairs that cannot run together, and why.
INCOMPATIBLE: dict[tuple[str, str], str] = {
    ("optuna", "pbt"): (
        "PBT rewrites trial configs mid-run, which Optuna's TPE model never sees, so its "
        "suggestions would learn from configs that did not run"
    ),
}
