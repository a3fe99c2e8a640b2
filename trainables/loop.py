"""The epoch loop: the whole dataset as uint8 tensors on the device, batches as index slices.

Walk of one trial: load the cached splits -> move them to the device once -> per epoch a
seeded permutation, per step a slice, a batched augmentation, a forward/backward in the
device's precision, an Adam step at the scheduled lr -> evaluate on validation -> `on_epoch`.
No DataLoader and no per-sample PIL work: on a CPU that is most of the tutorial pipeline's time.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from trainables.augment import FLIPPING_POLICIES, alternating_flips, augment, first_half
from trainables.config import TrialConfig
from trainables.data import Splits, dataset_from_config
from trainables.faults import InjectedFault, active_fault, hold_until_released
from trainables.model import make_model

# metrics of one epoch, and a function that returns the checkpoint state when called
# (built lazily so a caller that does not checkpoint pays nothing).
OnEpoch = Callable[[dict[str, Any], Callable[[], dict[str, Any]]], None]

WARMUP_SHARE = 0.15  # share of all steps the one-cycle schedule spends warming up
NAN_CHECK_EVERY = 25  # steps between divergence checks (each check syncs with the GPU)
NORM_SAMPLE = 10_000  # images used to estimate the per-channel mean and std


@dataclass
class TrainResult:
    """What one call of `train` did."""

    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics dict per epoch
    diverged: bool = False
    seconds: float = 0.0
    model: nn.Module | None = None

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def choose_device(name: str = "auto") -> torch.device:
    """The one place that picks the device: `auto` takes CUDA when present."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier on the peak lr at `progress` in [0, 1] of all training steps.

    A pure function of progress (not a stateful torch scheduler) so a resumed trial and a
    PBT-mutated lr need no scheduler state: lr(step) = cfg.lr * lr_factor(step / total).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    if schedule == "onecycle":
        if progress < WARMUP_SHARE:
            return 0.1 + 0.9 * progress / WARMUP_SHARE
        p = (progress - WARMUP_SHARE) / (1.0 - WARMUP_SHARE)
        return 0.5 * (1.0 + math.cos(math.pi * min(p, 1.0)))
    raise ValueError(f"unknown lr_schedule {schedule!r}")


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] units.

    Returns:
        mean and std, each shaped (1, C, 1, 1).
    """
    sample = x[:NORM_SAMPLE].float() / 255.0
    mean = sample.mean(dim=(0, 2, 3), keepdim=True)
    std = sample.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    return mean, std


class DeviceSplits:
    """The whole splits, resident on the device, with the conversion uint8 -> normalized floats.

    A batch is an index slice of these tensors: no DataLoader, no host-to-device copy per step.
    """

    def __init__(self, splits: Splits, cfg: TrialConfig, device: torch.device):
        train_x, train_y = splits.train_x, splits.train_y
        if cfg.max_train_images is not None and cfg.max_train_images < len(train_y):
            # A fixed random subset: ImageFolder data is sorted by class, so a prefix would not do.
            keep = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))
            keep = keep[: cfg.max_train_images]
            train_x, train_y = train_x[keep], train_y[keep]
        self.device = device
        self.train_x, self.train_y = train_x.to(device), train_y.to(device)
        self.val_x, self.val_y = splits.val_x.to(device), splits.val_y.to(device)
        self.test_x = splits.test_x.to(device) if splits.test_x is not None else None
        self.test_y = splits.test_y.to(device) if splits.test_y is not None else None
        mean, std = channel_stats(splits.train_x)
        self.mean, self.std = mean.to(device), std.to(device)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.bf16 = uses_bf16(device, cfg.precision)
        self.tta = tta_views(cfg)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast where `uses_bf16`, else float32 (a no-op context)."""
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalized float32 (B, C, H, W) in the trial's memory layout."""
        x = (x.float() / 255.0 - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)


def cpu_runs_bf16_natively() -> bool:
    """Whether this CPU has bf16 matrix units (AMX) or instructions (AVX512-BF16).

    With them oneDNN's bf16 convolutions ran our default CNN 1.8x faster than float32 (3,500
    against 1,950 images/s on this 2-core Xeon); without them bf16 is emulated and slower.
    """
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu, torch >= 2.3
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def uses_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast (no loss scaling needed, unlike fp16) per `TrialConfig.precision`.

    auto: on CUDA (tensor cores) and on CPUs that run bf16 natively; float32 elsewhere.
    """
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and cpu_runs_bf16_natively())


@torch.no_grad()
def evaluate(
    model: nn.Module, on_device: DeviceSplits, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy and predicted classes (N,) on un-augmented images (and
    other views, their logits averaged, under test-time augmentation: `tta_logits`)."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    preds = []
    for start in range(0, len(y), batch_size):
        xb = on_device.prepare(x[start : start + batch_size])
        with on_device.autocast():
            logits = tta_logits(model, xb, on_device.tta)
        loss_sum += F.cross_entropy(logits, y[start : start + batch_size], reduction="sum")
        preds.append(logits.argmax(dim=1))
    pred = torch.cat(preds)
    acc = (pred == y).float().mean().item()
    return loss_sum.item() / max(1, len(y)), acc, pred


def tta_views(cfg: TrialConfig) -> str:
    """The test-time views per `TrialConfig.tta`: auto is `flip` where the training policy
    mirrors, else `none`."""
    if cfg.tta != "auto":
        return cfg.tta
    return "flip" if cfg.augment in FLIPPING_POLICIES else "none"


def tta_logits(model: nn.Module, x: torch.Tensor, views: str) -> torch.Tensor:
    """float32 logits of a normalized batch averaged over the views: `none` the image alone,
    `flip` with its mirror, `flip-translate` (airbench's level 2) half of that and half the
    same pair shifted one pixel up-left and down-right (reflect-padded), averaged."""
    logits = model(x).float()
    if views == "none":
        return logits
    logits = (logits + model(x.flip(3)).float()) / 2
    if views == "flip":
        return logits
    h, w = x.shape[2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, :h, :w], padded[:, :, 2:, 2:]]
    return (logits + sum(tta_logits(model, s, "flip") for s in shifted) / 2) / 2


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed for one epoch's order and augmentation: a resumed epoch replays the same draws."""
    return seed * 1_000_003 + epoch


def train(
    cfg: TrialConfig,
    on_epoch: OnEpoch | None = None,
    state: dict[str, Any] | None = None,
    splits: Splits | None = None,
    model: nn.Module | None = None,
) -> TrainResult:
    """Train one trial config, calling `on_epoch` after every epoch.

    Args:
        cfg: the validated trial config.
        on_epoch: receives the epoch's metrics and a function returning the checkpoint state
            (model, optimizer, epoch, config, history).
        state: a checkpoint state from an earlier call; training continues at the next epoch.
        splits: already-loaded data (the Ray trainable, tests, benchmarks); default:
            `dataset_from_config(cfg)`.
        model: a module to train instead of `make_model(cfg, ...)` (benchmarks compare other
            architectures on the same loop); it must map (B, C, H, W) images to (B, classes).

    Returns:
        The history of per-epoch metrics, whether the run diverged, and the trained model.
    """
    t_start = time.perf_counter()
    device = choose_device(cfg.device)
    splits = splits if splits is not None else dataset_from_config(cfg)
    on_device = DeviceSplits(splits, cfg, device)

    torch.manual_seed(cfg.seed)
    if model is None:
        model = make_model(cfg, splits.channels, splits.num_classes)
    model = model.to(device=device, memory_format=on_device.memory_format)
    fit_to_data = getattr(model, "fit_to_data", None)  # airbench's whitening: from the data
    if fit_to_data is not None and state is None:  # a resume loads the fitted weights
        fit_to_data(on_device.prepare(on_device.train_x[: model.fit_sample]))
    before_epoch = getattr(model, "before_epoch", None)
    # Steps and evaluation call `net`; checkpoints keep `model`'s state dict, whose keys the
    # compiled wrapper would prefix with `_orig_mod.`. Compiling costs seconds to a minute
    # once (and once more for eval mode), so it pays only over many steps.
    net = torch.compile(model) if cfg.compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # torch's own EMA: the average is evaluated (and exported) in place of the raw weights.
    averaged = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        if cfg.ema > 0
        else None
    )
    evaluated = averaged.module if averaged is not None else net
    # The plain module, never the compiled wrapper: what checkpoints and export load into.
    result = TrainResult(config=cfg.to_dict(), model=model if averaged is None else evaluated)
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if averaged is not None and "ema_model" in state:
            averaged.module.load_state_dict(state["ema_model"])
            averaged.n_averaged.fill_(int(state["ema_steps"]))
        start_epoch = int(state["epoch"])
        result.history = list(state.get("history", []))

    n = len(on_device.train_y)
    batch_size = min(cfg.batch_size, n)
    steps_per_epoch = max(
        1, n // batch_size
    )  # the remainder differs every epoch, so no image is lost
    total_steps = steps_per_epoch * cfg.epochs
    generator = torch.Generator(device=device)
    # Alternating flip needs its fixed half only where the policy mirrors at all.
    alternate = cfg.flip_mode == "alternate" and cfg.augment in FLIPPING_POLICIES
    half = first_half(cfg.seed, n, device) if alternate else None

    def snapshot() -> dict[str, Any]:
        saved = {
            "model": cpu_state(model),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "config": cfg.to_dict(),
            "history": list(result.history),
        }
        if averaged is not None:  # what the metrics were measured on: what export loads
            saved["ema_model"] = cpu_state(averaged.module)
            saved["ema_steps"] = int(averaged.n_averaged)
        return saved

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        t_epoch = time.perf_counter()
        generator.manual_seed(epoch_seed(cfg.seed, epoch))
        # Dropout draws from torch's global generator: seeded per epoch too, so an epoch run
        # again after a resume draws the same masks as it did the first time.
        torch.manual_seed(epoch_seed(cfg.seed, epoch))
        order = torch.randperm(n, generator=generator, device=device)
        net.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        diverged = False
        fault = active_fault(epoch, result.config)
        if fault == "raise":
            raise InjectedFault(f"injected fault in epoch {epoch}")
        if fault == "hold":
            hold_until_released()
        if before_epoch is not None:
            before_epoch(epoch)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            flipped = None if half is None else alternating_flips(half, idx, epoch)
            xb = on_device.prepare(augment(cfg.augment, on_device.train_x[idx], generator, flipped))
            yb = on_device.train_y[idx]
            progress = ((epoch - 1) * steps_per_epoch + step) / total_steps
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg.lr_schedule, progress)
            with on_device.autocast():
                logits = net(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
                if fault == "nan":
                    loss = loss * float("nan")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if averaged is not None:
                averaged.update_parameters(model)
            loss_sum += loss.detach() * len(yb)
            correct += (logits.argmax(dim=1) == yb).sum()
            if (step + 1) % NAN_CHECK_EVERY == 0 and not torch.isfinite(loss_sum).item():
                diverged = True
                break
        seen = (step + 1) * batch_size
        train_loss = loss_sum.item() / seen  # waits for the device's queued steps: time after it
        train_seconds = time.perf_counter() - t_epoch
        diverged = diverged or not math.isfinite(train_loss)
        val_loss, val_acc, _ = evaluate(
            evaluated, on_device, on_device.val_x, on_device.val_y, cfg.eval_batch_size
        )
        diverged = diverged or not math.isfinite(val_loss)
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": correct.item() / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_seconds": time.perf_counter() - t_epoch,
            "images_per_s": seen / train_seconds,
            "train_images": seen,
            "diverged": diverged,
        }
        if epoch == cfg.epochs and not diverged and on_device.test_x is not None:
            _, metrics["test_acc"], _ = evaluate(
                evaluated, on_device, on_device.test_x, on_device.test_y, cfg.eval_batch_size
            )
        result.history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics, snapshot)
        if diverged:
            # A NaN/inf loss cannot recover: stop cleanly, report it, no exception and no retry.
            result.diverged = True
            break

    result.seconds = time.perf_counter() - t_start
    return result


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict on the CPU, detached: what a checkpoint holds."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def exported_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a checkpoint's metrics were measured on: the average under `ema`."""
    return state.get("ema_model", state["model"])


def predict(model: nn.Module, splits: Splits, cfg: TrialConfig, split: str = "val") -> torch.Tensor:
    """Predicted classes for a split ('val' or 'test') with a trained model (confusion matrices)."""
    device = next(model.parameters()).device
    on_device = DeviceSplits(splits, cfg, device)
    if split == "val":
        x, y = on_device.val_x, on_device.val_y
    else:
        x, y = on_device.test_x, on_device.test_y
    if x is None:
        raise ValueError(f"dataset {cfg.dataset!r} has no {split} split")
    return evaluate(model, on_device, x, y, cfg.eval_batch_size)[2].cpu()
