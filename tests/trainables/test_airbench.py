import pytest
import torch

from trainables.airbench import Airbench, patch_covariance, set_whitening
from trainables.config import ConfigError, TrialConfig
from trainables.data import load_dataset
from trainables.loop import train
from trainables.registry import ACTIVATIONS


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def airbench(**values) -> TrialConfig:
    base = {"model": "airbench", "width": 8, "device": "cpu", "epochs": 2}
    return TrialConfig.from_dict({**base, **values})


def correlated_images(n=300, c=3, size=12, seed=0):
    """Smooth colour images: neighbouring pixels and channels correlate, as in photographs."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, size // 2, size // 2, generator=g)
    x = torch.nn.functional.interpolate(base, size=size, mode="bilinear").repeat(1, c, 1, 1)
    return x + 0.3 * torch.randn(n, c, size, size, generator=g)


def test_the_whitening_stem_decorrelates_the_datas_patches():
    images = correlated_images()
    stem = torch.nn.Conv2d(3, 24, kernel_size=2, bias=False)
    before = patch_covariance(images, 2)
    assert before[0, 1] / before[0, 0] > 0.5  # neighbouring pixels correlate
    set_whitening(stem, images)
    with torch.no_grad():
        out = stem(images)[:, :12]  # the first half; the second is its negative
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    covariance = flat.T @ flat / len(flat)
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.float64), atol=0.02)
    assert torch.equal(stem.weight[12:], -stem.weight[:12])


def test_a_fresh_trial_whitens_from_its_data_and_freezes_the_stem(mnist5k):
    result = train(airbench(epochs=1, max_train_images=600), splits=mnist5k)
    stem = result.model.stem
    assert not stem.weight.requires_grad
    # mnist5k is one channel: a 2x2 patch is 4 numbers, the stem 8 filters (+/- each)
    assert stem.weight.shape == (8, 1, 2, 2)
    assert torch.equal(stem.weight[4:], -stem.weight[:4]) and stem.weight.abs().sum() > 0


def test_the_whitening_bias_trains_for_its_epochs_only(mnist5k):
    biases = []
    cfg = airbench(epochs=3, whiten_bias_epochs=1, max_train_images=400)

    def record(metrics, snapshot):
        biases.append(snapshot()["model"]["stem.bias"].clone())

    train(cfg, on_epoch=record, splits=mnist5k)
    assert not torch.equal(biases[0], torch.zeros_like(biases[0]))  # epoch 1 trained it
    assert torch.equal(biases[0], biases[1]) and torch.equal(biases[1], biases[2])


def test_without_whitening_the_stem_learns():
    model = Airbench(airbench(whiten=False), channels=3, classes=10)
    assert model.stem.weight.requires_grad
    model.fit_to_data(correlated_images(20, size=32))  # a learned stem keeps its random init
    model.before_epoch(5)
    assert model.stem.bias.requires_grad


def test_dirac_init_starts_each_conv_as_the_identity_on_its_inputs():
    model = Airbench(airbench(), channels=3, classes=10)
    conv = model.groups[1].conv1  # 8 -> 32 channels
    x = torch.randn(2, 8, 6, 6)
    assert torch.allclose(conv(x)[:, :8], x)
    plain = Airbench(airbench(dirac_init=False), channels=3, classes=10).groups[1].conv1
    assert not torch.allclose(plain(x)[:, :8], x)


def test_batch_norm_has_fast_momentum_and_no_learned_scale_unless_set():
    norms = [
        m for m in Airbench(airbench(), 3, 10).modules() if isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert norms and all(n.momentum == 0.4 and not n.weight.requires_grad for n in norms)
    assert all(n.bias.requires_grad for n in norms)
    set_ = Airbench(airbench(bn_momentum=0.1, bn_scale=True), 3, 10)
    norms = [m for m in set_.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(n.momentum == 0.1 and n.weight.requires_grad for n in norms)


def test_widths_grow_fourfold_after_the_first_group_and_any_size_fits():
    model = Airbench(airbench(width=4, depth=3), channels=3, classes=7)
    assert [g.conv2.out_channels for g in model.groups] == [4, 16, 16]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 7)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_trains_airbench_on_digits(name, mnist5k):
    cfg = airbench(activation=name, epochs=3, max_train_images=512, batch_size=64, lr=3e-3)
    result = train(cfg, splits=mnist5k)
    losses = [m["train_loss"] for m in result.history]
    assert not result.diverged and losses[-1] < losses[0], losses


def test_keys_of_another_model_are_refused():
    with pytest.raises(ConfigError, match="whiten False does not apply to model 'cnn'"):
        TrialConfig.from_dict({"whiten": False})
    assert airbench().model_option("whiten") is True
    assert TrialConfig().model_option("bn_momentum") == 0.1  # torch's default for the cnn
