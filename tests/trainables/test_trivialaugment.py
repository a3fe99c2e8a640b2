import pytest
import torch
from torchvision.transforms import v2

from trainables.trivialaugment import apply, space, trivialaugment_batch

REFERENCE = v2.TrivialAugmentWide()


def images(channels, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, 32, 32), generator=g, dtype=torch.uint8)


def torchvision_op(img, name, magnitude):
    return REFERENCE._apply_image_or_video_transform(
        img, name, magnitude, interpolation=v2.InterpolationMode.NEAREST, fill={}
    )


OPS = [(name, mags, signed) for name, mags, signed in space(32, 32) if name != "Identity"]


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name,magnitudes,signed", OPS, ids=[op[0] for op in OPS])
def test_each_op_equals_torchvisions_on_single_images(name, magnitudes, signed, channels):
    x = images(channels)
    bins = [None] if magnitudes is None else [magnitudes[1], magnitudes[17], magnitudes[30]]
    for value in bins:
        for sign in (1, -1) if signed else (1,):
            m = 0.0 if value is None else float(value) * sign
            ours = apply(name, x, None if value is None else torch.full((len(x),), m))
            expected = torch.stack([torchvision_op(img, name, m) for img in x])
            # Blends with a per-image factor round in another order than torchvision's scalar
            # one: a value at a truncation boundary may land one lower or higher, rarely.
            diff = (ours.int() - expected.int()).abs()
            assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, (name, m)


def test_each_image_gets_its_own_magnitude():
    x = images(3, n=2)
    m = torch.tensor([30.0, -45.0])
    ours = apply("Rotate", x, m)
    for i in range(2):
        assert torch.equal(ours[i], torchvision_op(x[i], "Rotate", float(m[i])))


def test_batch_draws_ops_over_the_whole_space_and_keeps_shape():
    x = images(3, n=512, seed=1)
    out = trivialaugment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    unchanged = (out == x).flatten(1).all(dim=1).float().mean().item()
    # Identity is 1 of 14 ops; a few others leave an image unchanged at their smallest bin.
    assert 0.03 < unchanged < 0.25


def test_batch_is_reproducible_and_leaves_global_rng_alone():
    x = images(3, n=64)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a = trivialaugment_batch(x, torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(a, trivialaugment_batch(x, torch.Generator().manual_seed(7)))
