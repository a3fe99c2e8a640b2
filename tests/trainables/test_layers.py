"""trainables.layers: the activation by name and the model-configured BatchNorm that both
networks build from."""

from __future__ import annotations

import pytest
from torch import nn

from trainables.airbench import Airbench
from trainables.config import TrialConfig
from trainables.layers import batch_norm, make_activation
from trainables.model import make_model


def test_each_call_makes_a_fresh_module_of_the_named_activation():
    first, second = make_activation("leaky_relu"), make_activation("leaky_relu")
    assert isinstance(first, nn.LeakyReLU) and first is not second


@pytest.mark.parametrize(
    "model, momentum, scale_trains",
    [("cnn", 0.1, True), ("airbench", 0.4, False)],  # each model's defaults
)
def test_batch_norm_takes_the_models_defaults(model, momentum, scale_trains):
    norm = batch_norm(16, TrialConfig(model=model))
    assert norm.num_features == 16 and norm.momentum == pytest.approx(momentum)
    assert norm.weight.requires_grad is scale_trains
    assert norm.bias.requires_grad  # the shift always trains


def test_batch_norm_follows_the_trials_own_settings():
    norm = batch_norm(8, TrialConfig(model="airbench", bn_momentum=0.2, bn_scale=True))
    assert norm.momentum == pytest.approx(0.2) and norm.weight.requires_grad


@pytest.mark.parametrize("model", ["cnn", "airbench"])
def test_both_networks_build_their_norms_and_activations_here(model):
    cfg = TrialConfig(model=model, activation="elu", bn_scale=False, width=8, depth=2)
    net = make_model(cfg, channels=3, classes=10)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not n.weight.requires_grad for n in norms)
    assert any(isinstance(m, nn.ELU) for m in net.modules())
    if model == "airbench":
        assert isinstance(net, Airbench) and net.fit_sample == 5000
