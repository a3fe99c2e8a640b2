import dataclasses

import pytest
import torch

from trainables.config import TrialConfig
from trainables.model import make_model
from trainables.registry import ACTIVATIONS


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_trains_one_step(name):
    cfg = dataclasses.replace(TrialConfig(), activation=name, width=8)
    torch.manual_seed(0)
    model = make_model(cfg, channels=3, classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert any(type(m) is type(ACTIVATIONS[name]()) for m in model.modules())


def test_model_shapes_follow_knobs():
    cfg = dataclasses.replace(TrialConfig(), width=4, depth=2, convs_per_stage=2, dropout=0.5)
    model = make_model(cfg, channels=1, classes=7)
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 7)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 4, 8, 8]
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules())


def test_model_accepts_other_image_sizes():
    model = make_model(TrialConfig(width=4), channels=3, classes=10)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
