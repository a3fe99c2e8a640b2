"""trainables.registry: the three open sets by name, what `TrialConfig` checks against them."""

from __future__ import annotations

import pytest
from torch import nn

from trainables import augment, datasets, layers, registry
from trainables.config import ConfigError, TrialConfig

REGISTRIES = {  # trial config key -> its registry
    "activation": registry.ACTIVATIONS,
    "augment": registry.POLICIES,
    "dataset": registry.DATASETS,
}


def test_each_registry_is_non_empty_and_is_the_one_its_code_uses():
    assert all(len(names) > 0 for names in REGISTRIES.values())
    assert registry.POLICIES is augment.POLICIES
    assert registry.DATASETS is datasets.DATASETS
    assert layers.ACTIVATIONS is registry.ACTIVATIONS
    assert isinstance(layers.make_activation("gelu"), nn.GELU)


@pytest.mark.parametrize("key", sorted(REGISTRIES))
def test_trial_config_accepts_exactly_the_registered_names(key):
    for name in REGISTRIES[key]:
        TrialConfig(**{key: name}).validate()
    with pytest.raises(ConfigError) as info:
        TrialConfig(**{key: "not-registered"}).validate()
    assert f"unknown {key} 'not-registered'; allowed: {', '.join(REGISTRIES[key])}" == str(
        info.value
    )


def test_a_new_entry_is_valid_at_once(monkeypatch):
    monkeypatch.setitem(registry.ACTIVATIONS, "mish", nn.Mish)
    TrialConfig(activation="mish").validate()
    assert isinstance(layers.make_activation("mish"), nn.Mish)
