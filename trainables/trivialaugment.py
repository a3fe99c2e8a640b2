"""TrivialAugmentWide on a whole batch: one op and one magnitude per sample, a few kernels per op.

torchvision's `v2.TrivialAugmentWide` draws one op for the whole input, so a per-sample policy
had to loop over images: on an H100 that ran at 770-2,400 images/s against 20,000-45,000 for
flip-crop, and a trivialaugment trial's first epoch took a minute (BENCHMARKS.md, "GPU"). Here
the samples are grouped by op and each group is transformed at once, with per-sample magnitudes.

The ops, their magnitude bins and signs are torchvision's (`_AUGMENTATION_SPACE`, 31 bins,
nearest interpolation, zero fill); tests/trainables/test_trivialaugment.py checks every op
against torchvision's own on single images.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

NUM_BINS = 31  # torchvision's default num_magnitude_bins
SHARPEN = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))  # torchvision's smoothing kernel


def space(height: int, width: int) -> list[tuple[str, torch.Tensor | None, bool]]:
    """(op name, magnitude per bin or None, signed) in torchvision's order."""
    from torchvision.transforms import v2  # lazy: torchvision is only needed for this policy

    ops = v2.TrivialAugmentWide._AUGMENTATION_SPACE
    return [(name, fn(NUM_BINS, height, width), signed) for name, (fn, signed) in ops.items()]


@functools.lru_cache(maxsize=16)
def _table(
    height: int, width: int, device: torch.device
) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor]:
    """The space as tensors on `device`, made once per image size and device, not per step:
    op names, magnitudes (ops, bins; 0 where an op has none) and whether each op is signed."""
    ops = space(height, width)
    magnitudes = torch.stack(
        [torch.zeros(NUM_BINS) if m is None else m.float() for _, m, _ in ops]
    ).to(device)
    signed = torch.tensor([s for _, _, s in ops], device=device)
    return tuple(name for name, _, _ in ops), magnitudes, signed


def trivialaugment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply TrivialAugmentWide to each image of a uint8 batch (B, C, H, W) independently."""
    b, _, h, w = x.shape
    names, magnitudes, signed = _table(h, w, x.device)
    op = torch.randint(0, len(names), (b,), generator=generator, device=x.device)
    bins = torch.randint(0, NUM_BINS, (b,), generator=generator, device=x.device)
    signs = torch.where(torch.rand(b, generator=generator, device=x.device) <= 0.5, -1.0, 1.0)
    m = magnitudes[op, bins] * torch.where(signed[op], signs, 1.0)
    # Samples grouped by op: one device-to-host read of the group sizes, not one per op.
    order = torch.argsort(op)
    sizes = torch.bincount(op, minlength=len(names)).tolist()
    out = x.clone()
    start = 0
    for name, size in zip(names, sizes):
        rows = order[start : start + size]
        start += size
        if name != "Identity" and size > 0:
            out[rows] = apply(name, x[rows], m[rows])
    return out


def apply(name: str, x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """One op on a uint8 batch, magnitude `m[i]` for image i (None for magnitude-free ops)."""
    from torchvision.transforms.v2 import functional as TF

    if name in GEOMETRIC:
        return _warp(x, GEOMETRIC[name](m, *x.shape[-2:]))
    if name == "Posterize":
        keep = (255 << (8 - m.to(torch.int32))) & 255  # the top `bits` bits of each value
        return x & keep.to(torch.uint8)[:, None, None, None]
    if name == "Solarize":
        return torch.where(x >= (255.0 * m)[:, None, None, None], 255 - x, x)
    if name == "AutoContrast":
        return TF.autocontrast(x)
    if name == "Equalize":
        return TF.equalize(x)
    # In float64 first, like torchvision's Python-float factor and 1 - factor: the same bits.
    factor64 = (1.0 + m.double())[:, None, None, None]
    factor, rest = factor64.float(), (1.0 - factor64).float()
    xf = x.float()
    if name == "Brightness":
        other = torch.zeros_like(xf)
    elif name == "Color":
        if x.shape[1] == 1:
            return x  # a grey image has no saturation to change (torchvision: unchanged)
        other = _grey(xf).floor()  # as torchvision does for integer images
    elif name == "Contrast":
        grey = _grey(xf) if x.shape[1] == 3 else xf
        # torchvision takes the mean of the grey image rounded back to the input's dtype
        other = grey.to(x.dtype).float().mean(dim=(-3, -2, -1), keepdim=True)
    elif name == "Sharpness":
        return _sharpen(x, rest)
    else:
        raise ValueError(f"unknown TrivialAugment op {name!r}")
    return (xf * factor + other * rest).clamp(0, 255).to(x.dtype)


def _grey(xf: torch.Tensor) -> torch.Tensor:
    r, g, b = xf.unbind(dim=1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114)[:, None]  # torchvision's order


def _sharpen(x: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """torchvision's sharpness: blend with a 3x3 blur inside the image, the border unchanged."""
    c = x.shape[1]
    kernel = torch.tensor(SHARPEN, device=x.device)
    kernel = (kernel / kernel.sum()).expand(c, 1, 3, 3)
    out = x.float()
    blurred = F.conv2d(out, kernel, groups=c).round()
    inner = out[..., 1:-1, 1:-1]
    out[..., 1:-1, 1:-1] = inner + rest * (blurred - inner)  # torchvision's order
    return out.clamp(0, 255).to(x.dtype)


# Each op's inverse map: (magnitudes (N,), height, width) -> (N, 2, 3) matrices taking an output
# pixel centre (u, v), relative to the image centre, to the source pixel centre it copies.
def _matrix(a, b, c, d, e, f) -> torch.Tensor:  # [[a, b, c], [d, e, f]], each (N,)
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], -2)


def _shear_x(m, h, w):
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    # source x = x + s (y - y0), the shear's centre y0 on the top edge (torchvision: center=[0, 0])
    return _matrix(one, m, m * h / 2, zero, one, zero)


def _shear_y(m, h, w):
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _matrix(one, zero, zero, m, one, m * w / 2)


def _translate_x(m, h, w):
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _matrix(one, zero, -m.trunc(), zero, one, zero)  # torchvision: int(magnitude)


def _translate_y(m, h, w):
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _matrix(one, zero, zero, zero, one, -m.trunc())


def _rotate(m, h, w):
    t = m * (math.pi / 180.0)
    cos, sin, zero = t.cos(), t.sin(), torch.zeros_like(m)
    return _matrix(cos, -sin, zero, sin, cos, zero)


GEOMETRIC = {
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
    "Rotate": _rotate,
}


def _warp(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour resampling through per-image inverse maps; outside pixels become 0."""
    n, c, h, w = x.shape
    v, u = torch.meshgrid(
        torch.arange(h, device=x.device) + 0.5 - h / 2,
        torch.arange(w, device=x.device) + 0.5 - w / 2,
        indexing="ij",
    )
    points = torch.stack([u, v, torch.ones_like(u)], -1).reshape(1, h * w, 3)
    source = points @ inverse.transpose(1, 2)  # (N, H*W, 2)
    # pixel k spans [k, k + 1) from the top-left corner; round half to even like grid_sample
    sx = torch.round(source[..., 0] + w / 2 - 0.5).long()
    sy = torch.round(source[..., 1] + h / 2 - 0.5).long()
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    index = (sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1))[:, None, :].expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, index) * inside[:, None, :]
    return out.reshape(n, c, h, w)
