import pytest
import torch

from trainables.augment import (
    FLIPPING_POLICIES,
    POLICIES,
    alternating_flips,
    augment,
    crop,
    cutout,
    first_half,
    flip,
)


def batch(b=64, c=3, h=32, w=32):
    g = torch.Generator().manual_seed(123)
    return torch.randint(1, 256, (b, c, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_keeps_shape_and_dtype(name):
    x = batch()
    out = augment(name, x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.dtype == torch.uint8


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_is_reproducible_from_seed(name):
    x = batch()
    a = augment(name, x, torch.Generator().manual_seed(7))
    b = augment(name, x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(set(POLICIES) - {"none"}))
def test_policy_randomness_is_per_sample(name):
    # The same image repeated across the batch must not come out identically everywhere:
    # one random draw for the whole batch would make every row equal.
    one = batch(1)
    x = one.repeat(32, 1, 1, 1)
    out = augment(name, x, torch.Generator().manual_seed(1))
    distinct = {bytes(img.flatten().tolist()) for img in out}
    assert len(distinct) > 1
    assert not torch.equal(out, x)


def test_grayscale_batches_work():
    x = batch(8, c=1, h=28, w=28)
    for name in POLICIES:
        assert augment(name, x, torch.Generator().manual_seed(0)).shape == x.shape


def test_flip_mirrors_about_half():
    x = batch(400)
    out = flip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert torch.all(flipped | same)
    assert 120 < flipped.sum().item() < 280


def test_crop_is_a_translation_within_the_pad():
    x = batch(16)
    out = crop(x, torch.Generator().manual_seed(3))
    for src, dst in zip(x, out):
        # Each output must equal the source shifted by some (dy, dx) in [-4, 4], zeros elsewhere.
        padded = torch.nn.functional.pad(src, (4, 4, 4, 4))
        matches = [
            torch.equal(padded[:, dy : dy + 32, dx : dx + 32], dst)
            for dy in range(9)
            for dx in range(9)
        ]
        assert any(matches)


def test_cutout_zeroes_a_small_square_per_sample():
    x = batch(32)  # values >= 1, so zeros come only from cutout
    out = cutout(x, torch.Generator().manual_seed(0))
    zeros = (out == 0).all(1).flatten(1).sum(1)  # zeroed pixels per image
    assert torch.all(zeros > 0)
    assert torch.all(zeros <= 9 * 9)
    assert torch.equal(out[out != 0], x[out != 0])


def test_different_seeds_give_different_batches():
    x = batch()
    a = augment("flip-crop", x, torch.Generator().manual_seed(1))
    b = augment("flip-crop", x, torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


def test_trivialaugment_leaves_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    augment("trivialaugment", batch(4), torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", sorted(set(POLICIES) - {"trivialaugment"}))
def test_flipping_policies_are_exactly_those_that_mirror(name):
    # tta: auto mirrors at evaluation only after training with mirrored images. A left-to-right
    # ramp comes out reversed only when mirrored (crop and cutout shift or blank a little of it).
    ramp = (torch.arange(32) * 8).to(torch.uint8).expand(256, 3, 32, 32)
    out = augment(name, ramp.clone(), torch.Generator().manual_seed(0)).float()
    left_to_right = out[..., 16:].mean(dim=(1, 2, 3)) - out[..., :16].mean(dim=(1, 2, 3))
    assert bool((left_to_right < 0).any()) == (name in FLIPPING_POLICIES)


def test_trivialaugment_never_mirrors():
    from trainables.trivialaugment import space

    assert not any("flip" in name.lower() for name, _, _ in space(32, 32))
    assert "trivialaugment" not in FLIPPING_POLICIES


def test_alternating_flip_mirrors_each_image_on_every_other_epoch():
    cpu = torch.device("cpu")
    half = first_half(seed=3, count=1000, device=cpu)
    assert 400 < half.sum().item() < 600
    assert torch.equal(first_half(seed=3, count=1000, device=cpu), half)  # a resume's draw
    idx = torch.randperm(1000)[:64]
    odd, even = (alternating_flips(half, idx, epoch) for epoch in (1, 2))
    assert torch.equal(odd, half[idx]) and torch.equal(even, ~odd)
    assert torch.equal(alternating_flips(half, idx, 3), odd)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_given_flips_decide_the_mirroring_of_flipping_policies_only(name):
    x, given = batch(8), torch.tensor([True, False] * 4)
    if name in FLIPPING_POLICIES:
        # draws for the steps after the mirror are the same either way
        expected = POLICIES[name](x.flip(3), torch.Generator().manual_seed(0), ~given)
    else:
        expected = augment(name, x, torch.Generator().manual_seed(0))
    assert torch.equal(augment(name, x, torch.Generator().manual_seed(0), given), expected)
