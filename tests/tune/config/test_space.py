"""tune.config.space: the range types, their YAML form, the values a trial can draw, their Ray
form."""

from __future__ import annotations

from ray.tune.search.sample import Categorical, Float

from tune.config.space import (
    Choice,
    Fixed,
    LogUniform,
    Uniform,
    domain_to_yaml,
    domain_values,
    is_range,
    is_searchable,
    to_ray,
)


def test_yaml_forms():
    assert domain_to_yaml(Choice([1, 2])) == [1, 2]
    assert domain_to_yaml(Fixed(16)) == 16
    assert domain_to_yaml(LogUniform(1e-4, 1e-2)) == {"loguniform": [1e-4, 1e-2]}
    assert domain_to_yaml(Uniform(0.0, 0.5)) == {"uniform": [0.0, 0.5]}


def test_searchable_means_trials_can_differ():
    assert is_searchable(LogUniform(1e-4, 1e-2)) and is_range(Uniform(0, 1))
    assert is_searchable(Choice([1, 2]))
    assert not is_searchable(Choice([1])) and not is_range(Choice([1, 2]))
    assert not is_searchable(Fixed(3)) and not is_searchable(None)


def test_domain_values_of_discrete_domains():
    assert domain_values(Choice([64, 128]), 32) == [64, 128]
    assert domain_values(Fixed(16), 32) == [16]
    assert domain_values(None, 32) == [32]


def test_ray_forms():
    assert isinstance(to_ray(Choice(["relu", "tanh"])), Categorical)
    assert to_ray(Choice([1, 2]), grid=True) == {"grid_search": [1, 2]}
    assert isinstance(to_ray(LogUniform(1e-4, 1e-2)), Float)
    assert to_ray(Fixed("crop")) == "crop"
