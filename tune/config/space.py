"""The search space's range types (`Choice`, `LogUniform`, `Uniform`, `Fixed`) and their forms.

Each has a YAML form (what a config file says) and a Ray Tune form (what Ray samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The four hyperparameters every search is about: child run names are made of them.
HEADLINE_KEYS = ("activation", "augment", "batch_size", "lr")


@dataclass
class Choice:
    """One of a list of values (grid: each of them)."""

    values: list[Any]


@dataclass
class LogUniform:
    """A float drawn log-uniformly from [low, high)."""

    low: float
    high: float


@dataclass
class Uniform:
    """A float drawn uniformly from [low, high)."""

    low: float
    high: float


@dataclass
class Fixed:
    """The same value in every trial."""

    value: Any


Domain = Choice | LogUniform | Uniform | Fixed
# YAML keys of the range forms, and of the explicit choice form.
RANGES: dict[str, type[LogUniform] | type[Uniform]] = {
    "loguniform": LogUniform,
    "uniform": Uniform,
}
SPACE_FORMS = ("choice", *RANGES)


def is_range(domain: Domain) -> bool:
    """A continuous range (as opposed to a list of values or a fixed value)."""
    return isinstance(domain, (LogUniform, Uniform))


def is_searchable(domain: Domain | None) -> bool:
    """Whether trials can get different values: a range, or a choice of two or more."""
    return is_range(domain) or (isinstance(domain, Choice) and len(domain.values) > 1)


def domain_to_yaml(domain: Domain) -> Any:
    """The YAML form a config file uses: a list, {loguniform: [a, b]}, or the plain value."""
    if isinstance(domain, Choice):
        return list(domain.values)
    if isinstance(domain, Fixed):
        return domain.value
    kind = next(k for k, cls in RANGES.items() if isinstance(domain, cls))
    return {kind: [domain.low, domain.high]}


def domain_values(domain: Domain | None, default: Any) -> list[Any]:
    """Every value a trial can draw from a discrete domain (`default` when the key is unset)."""
    if isinstance(domain, Choice):
        return list(domain.values)
    if isinstance(domain, Fixed):
        return [domain.value]
    return [default]


def to_ray(domain: Domain, grid: bool = False) -> Any:
    """Choice -> `tune.choice` (`tune.grid_search` when `grid`), LogUniform -> `tune.loguniform`,
    Uniform -> `tune.uniform`, Fixed -> its plain value."""
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
