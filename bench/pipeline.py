"""One trial's speed: our training loop against the tutorial pipeline, same model, same images.

The tutorial ("Hyperparameter tuning with Ray Tune", PyTorch's CIFAR-10 classifier) reads a
torchvision dataset through a DataLoader with 2 workers and per-sample PIL transforms. Ours
(`trainables.loop.train`) decodes the JPEGs once into a uint8 tensor, slices batches from it by
index and augments whole batches as tensor ops. Both train the same model with Adam at the same
batch size for the same epochs, interleaved (tutorial, ours, tutorial, ours) so that a change in
the machine's load hits both alike; for two models, the tutorial's LeNet (2 conv + 3 linear) and
our default CNN (`TrialConfig()`: width 32, 3 stages). The tutorial computes in float32; ours in
bf16 autocast where the hardware runs it natively (CUDA, CPUs with AMX), as every trial does:
`--precision fp32` makes ours float32 too.

    python bench/pipeline.py [--data-root DIR] [--images 10000] [--epochs 2] [--precision P]
    python bench/pipeline.py --budget 200     # validation accuracy after 200 s of training
    python bench/pipeline.py --budget 200 --with-cnn   # and today's cnn recipe, back to back
    python bench/pipeline.py --budget 200 --ablate whiten=false --ablate tta=flip  # ablations
    python bench/pipeline.py --budget 200 --activations all   # the same budget, per activation

The budget modes train the CPU-sized trial recipe (`CPU_RECIPE`, which
configs/cifar10-cpu.yaml carries): airbench's network at the widths and epochs that win the
budget on 2 cores; `--with-cnn` adds today's default config (`TrialConfig()`), `--ablate K=V`
the recipe with one key changed, each printing its own RESULT line.

`DIR` holds train/<class>/*.jpg; without it the CIFAR-10 JPEGs in ../shared/data are unpacked
into the output folder (a temporary one unless --out). 5,000 of the 50,000 images are held out
for validation (the split `load_dataset` draws); throughput uses a 10,000-image slice of the
other 45,000 on a CPU, all of them on a GPU. Figures and machine: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any folder
from bench.common import (  # noqa: E402
    command,
    load,
    machine,
    out_dir,
    result,
    say,
    show_data_progress,
    table,
    unpack_cifar,
)
from trainables.config import PRECISIONS, TrialConfig  # noqa: E402
from trainables.data import Splits, load_dataset, split_val  # noqa: E402
from trainables.loop import choose_device, train  # noqa: E402
from trainables.model import make_model  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

BATCH_SIZE = 128  # images per step, both pipelines (our default)
CPU_IMAGES = 10_000  # training images for the throughput runs on a CPU; all of them on a GPU
REPEATS = 2  # interleaved runs per pipeline and model
VAL_FRACTION = 0.1  # 5,000 of CIFAR-10's 50,000 training images held out
TUTORIAL_LR = 1e-3  # Adam's default, what the tutorial style uses at a constant rate
TUTORIAL_WORKERS = 2  # DataLoader worker processes, as in the tutorial
TUTORIAL_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # the PyTorch tutorial's Normalize
# Threads of each training process: torch's default (one per core) unless --threads. On a
# shared 2-core machine two threads swung our LeNet from 768 to 11,060 images/s between
# back-to-back runs (one thread: a steady 6,200-7,600); `--threads 1` is what a Ray trial with
# cpus_per_trial 1 gets (OMP_NUM_THREADS=1). The tutorial's 2 loader workers come on top.
THREADS = None
# Budget mode: two short epochs of ours measure its speed, 20 steps each at any batch size (at
# 10 steps of 256 the warm-up weighed in: the plan ended 37 s early, 2 epochs short).
PROBE_STEPS = 20
BUDGET_SAFETY = 0.92  # budget mode: plan epochs for this share of the time left (load varies)
# The CPU-sized trial recipe: what configs/cifar10-cpu.yaml's `trial:` holds (a test checks),
# chosen on the validation split in 200 s budgets on 2 cores (BENCHMARKS.md, "A trial recipe").
CPU_RECIPE: dict[str, Any] = {
    "model": "airbench",
    "width": 24,
    "augment": "flip-crop",
    "flip_mode": "alternate",
    # flip-translate scored 0.842 in 7 epochs, flip 0.844 in 8: its six views cost the budget
    # more than they gave back on 2 cores
    "tta": "flip",
    "label_smoothing": 0.2,
    "batch_size": 256,
    "lr": 6.0e-3,
}
CNN_RECIPE: dict[str, Any] = {"augment": "crop"}  # today's: TrialConfig's defaults

# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class LeNet(nn.Module):
    """The tutorial's net: conv 5x5 (6) -> pool -> conv 5x5 (16) -> pool -> 120 -> 84 -> 10."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 32, 32) -> (B, classes)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 6, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 16, 5, 5)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


MODELS = {
    "lenet": lambda classes: LeNet(classes),
    "default": lambda classes: make_model(TrialConfig(), 3, classes),
}

# ---------------------------------------------------------------------------------------------
# Data: one ImageFolder, two views of it
# ---------------------------------------------------------------------------------------------


class Data:
    """The JPEG folder for the tutorial and its decoded tensors for ours, split the same way."""

    def __init__(self, root: Path, cache: Path):
        from torchvision.datasets import ImageFolder

        self.root = root
        t0 = time.perf_counter()
        self.splits = load_dataset(
            "imagefolder", data_root=str(root), cache_dir=str(cache), val_fraction=VAL_FRACTION
        )
        self.decode_seconds = time.perf_counter() - t0
        self.folder = ImageFolder(root / "train")
        # load_dataset's held-out draw, applied to file indices: the tutorial sees the same images
        # (checked on three of them, pixel for pixel).
        idx = torch.arange(len(self.folder.samples))
        self.train_idx, _, self.val_idx, _ = split_val(idx, idx, VAL_FRACTION, "imagefolder")
        for k in (0, len(self.train_idx) // 2, len(self.train_idx) - 1):
            image, label = self.folder[int(self.train_idx[k])]  # PIL image (H, W, C)
            same = torch.equal(
                torch.from_numpy(np.array(image)), self.splits.train_x[k].permute(1, 2, 0)
            )
            if not same or label != self.splits.train_y[k]:
                raise SystemExit("tutorial and tensor splits disagree; did load_dataset change?")

    def subset(self, images: int | None, val_images: int | None = None) -> tuple[Splits, list[int]]:
        """A fixed random slice of the training images: our splits and the tutorial's indices.

        `val_images` shortens our per-epoch evaluation where only speed is measured.
        """
        n = len(self.train_idx)
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: images or n]
        keep = keep.sort().values
        s = self.splits
        val_x, val_y = s.val_x[:val_images], s.val_y[:val_images]
        sliced = Splits(s.train_x[keep], s.train_y[keep], val_x, val_y, None, None, s.classes)
        return sliced, self.train_idx[keep].tolist()


def tutorial_loader(data: Data, indices: list[int], train: bool) -> torch.utils.data.DataLoader:
    """The tutorial's input pipeline: PIL decode and transforms per sample, in 2 workers."""
    from torchvision import datasets, transforms

    steps = (
        [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if train else []
    )
    transform = transforms.Compose(
        [*steps, transforms.ToTensor(), transforms.Normalize(*TUTORIAL_MEAN_STD)]
    )
    folder = datasets.ImageFolder(data.root / "train", transform=transform)
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(folder, indices),
        batch_size=BATCH_SIZE if train else 1000,
        shuffle=train,
        num_workers=TUTORIAL_WORKERS,
    )


# ---------------------------------------------------------------------------------------------
# The two pipelines
# ---------------------------------------------------------------------------------------------


def run_tutorial(
    model: nn.Module, loader: torch.utils.data.DataLoader, epochs: int, deadline: float = math.inf
) -> tuple[int, float]:
    """Train like the tutorial: (images seen, seconds). Stops mid-epoch at `deadline`."""
    device = choose_device("auto")
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=TUTORIAL_LR)
    seen, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            seen += len(y)
            if time.perf_counter() >= deadline:
                return seen, time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen, time.perf_counter() - t0


@torch.no_grad()
def tutorial_accuracy(model: nn.Module, loader: torch.utils.data.DataLoader) -> float:
    device = next(model.parameters()).device
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        total += len(y)
    return correct / total


def ours_config(epochs: int, **values: Any) -> TrialConfig:
    """Our trial config on the ImageFolder data; throughput runs use the tutorial's flip+crop."""
    base = {"dataset": "imagefolder", "batch_size": BATCH_SIZE, "augment": "flip-crop"}
    return TrialConfig.from_dict({**base, **values, "epochs": epochs})


def run_ours(
    model: nn.Module, splits: Splits, epochs: int, precision: str = "auto"
) -> tuple[int, float]:
    """Train with our loop: (images seen, training seconds without the per-epoch evaluation)."""
    history = train(ours_config(epochs, precision=precision), splits=splits, model=model).history
    seen = sum(m["train_images"] for m in history)
    return seen, sum(m["train_images"] / m["images_per_s"] for m in history)


# ---------------------------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------------------------


def throughput(data: Data, images: int | None, epochs: int, precision: str = "auto") -> None:
    # Ours evaluates after every epoch; 1,000 val images keep that short (it is not timed).
    splits, indices = data.subset(images, val_images=1000)
    loader = tutorial_loader(data, indices, train=True)
    classes = len(splits.classes)
    say(f"throughput: {len(indices):,} images x {epochs} epochs, batch {BATCH_SIZE}")
    rows, mean = [], {}
    for name, build in MODELS.items():
        speeds: dict[str, list[float]] = {"tutorial": [], "ours": []}
        for rep in range(1, REPEATS + 1):
            for pipeline in ("tutorial", "ours"):
                torch.manual_seed(rep)
                model = build(classes)
                if pipeline == "tutorial":
                    seen, seconds = run_tutorial(model, loader, epochs)
                else:
                    seen, seconds = run_ours(model, splits, epochs, precision)
                speeds[pipeline].append(seen / seconds)
                rows.append([name, pipeline, rep, seen, seconds, seconds / epochs, seen / seconds])
                say(f"  {name} {pipeline} #{rep}: {seen / seconds:,.0f} images/s (load {load()})")
        mean[name] = {p: sum(v) / len(v) for p, v in speeds.items()}
    header = ["model", "pipeline", "run", "images", "train s", "s/epoch", "images/s"]
    print(table(header, rows))
    print()
    print(
        f"Ours decoded the {len(data.folder.samples):,} JPEGs once in {data.decode_seconds:.1f} s "
        "(cached; not in the figures above). The tutorial decodes every JPEG every epoch."
    )
    summary = [
        [name, m["tutorial"], m["ours"], m["ours"] / m["tutorial"]] for name, m in mean.items()
    ]
    print()
    print(table(["model", "tutorial images/s", "ours images/s", "speedup"], summary))
    for name, m in mean.items():
        result(f"{name}_speedup", m["ours"] / m["tutorial"])


class BudgetSpent(Exception):
    """Raised from `on_epoch` to stop our loop once an epoch ends past the deadline."""


def budget_ours(
    splits: Splits, seconds: float, **values: Any
) -> tuple[float, float, int, list[dict[str, Any]]]:
    """A trial config (`values` over `ours_config`'s) trained for `seconds`.

    The one-cycle schedule must end inside the budget, so a short probe (counted in the
    budget) measures the speed and sets the number of epochs. Its second epoch is timed: the
    first pays one-off warm-up (allocations, kernel selection).

    Returns:
        (val_acc of the last epoch inside the budget, its elapsed seconds, planned epochs,
        every epoch's metrics with "elapsed").
    """
    n = len(splits.train_y)
    start = time.perf_counter()
    deadline = start + seconds
    probe_images = PROBE_STEPS * ours_config(1, **values).batch_size
    probe_cfg = ours_config(2, **{**values, "max_train_images": probe_images})
    probe = train(probe_cfg, splits=splits).last
    train_s = n / probe["images_per_s"]
    eval_s = probe["epoch_seconds"] - probe["train_images"] / probe["images_per_s"]
    left = deadline - time.perf_counter()
    epochs = max(1, int(BUDGET_SAFETY * left / (train_s + eval_s)))
    say(f"  ours: probe {time.perf_counter() - start:.1f} s; planning {epochs} epochs")
    history: list[dict[str, Any]] = []

    def stop_at_deadline(metrics: dict, _snapshot) -> None:
        metrics["elapsed"] = time.perf_counter() - start
        history.append(metrics)
        say(
            f"    epoch {metrics['epoch']}: val_acc {metrics['val_acc']:.4f} at "
            f"{metrics['elapsed']:.1f} s (load {load()})"
        )
        if time.perf_counter() >= deadline:
            raise BudgetSpent

    try:
        train(ours_config(epochs, **values), splits=splits, on_epoch=stop_at_deadline)
    except BudgetSpent:
        pass
    within = [m for m in history if m["elapsed"] <= seconds]
    if not within:
        return 0.0, 0.0, epochs, history
    return within[-1]["val_acc"], within[-1]["elapsed"], epochs, history


def budget(
    data: Data,
    images: int | None,
    seconds: float,
    precision: str = "auto",
    with_cnn: bool = False,
    ablations: list[tuple[str, Any]] | None = None,
) -> None:
    """The tutorial, then the CPU recipe (and today's recipe, and each ablation), each trained
    for `seconds`, back to back on the same images."""
    splits, indices = data.subset(images)
    n, classes = len(indices), len(splits.classes)
    say(f"budget: {seconds:g} s of training on {n:,} images, validation on {len(data.val_idx):,}")

    # Tutorial: LeNet, Adam at a constant 1e-3, epochs until the time is up (mid-epoch).
    torch.manual_seed(0)
    lenet = LeNet(classes)
    loader = tutorial_loader(data, indices, train=True)
    seen, spent = run_tutorial(lenet, loader, epochs=10**6, deadline=time.perf_counter() + seconds)
    tutorial_acc = tutorial_accuracy(lenet, tutorial_loader(data, data.val_idx.tolist(), False))
    say(f"  tutorial: {tutorial_acc:.4f} after {spent:.1f} s ({seen / n:.2f} epochs)")
    rows = [["tutorial (LeNet, Adam 1e-3, DataLoader)", "-", spent, seen / n, tutorial_acc]]
    result("tutorial_budget_acc", tutorial_acc)

    runs = [("budget_acc", "recipe (CPU_RECIPE)", CPU_RECIPE)]
    if with_cnn:
        runs.append(("budget_acc_cnn", "today's cnn (TrialConfig defaults)", CNN_RECIPE))
    for key, value in ablations or []:
        label = f"recipe with {key}={format_value(value)}"
        runs.append((f"budget_acc_{key}_{result_name(value)}", label, {**CPU_RECIPE, key: value}))
    for name, label, recipe in runs:
        say(f"  {label}:")
        acc, spent, epochs, history = budget_ours(splits, seconds, precision=precision, **recipe)
        within = [m for m in history if m["elapsed"] <= seconds]
        rows.append([label, epochs, spent, len(within), acc])
        if len(within) < len(history):
            last = history[-1]
            say(
                f"  {label} overran the budget: epoch {last['epoch']} ended at "
                f"{last['elapsed']:.1f} s; the last epoch inside it is reported"
            )
        result(name, acc)
    print(table(["pipeline", "epochs planned", "train s", "epochs", "val acc"], rows))


def parse_ablation(text: str) -> tuple[str, Any]:
    """`KEY=VALUE`: one trial-config key of the recipe changed, checked as a config would be."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    import yaml

    value = yaml.safe_load(raw) if raw else None
    try:
        TrialConfig.from_dict({**CPU_RECIPE, key: value})
    except ValueError as err:  # ConfigError: unknown key, bad value
        raise argparse.ArgumentTypeError(str(err)) from None
    return key, value


def format_value(value: Any) -> str:
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def result_name(value: Any) -> str:
    """A value as a RESULT name part: letters, digits and underscores only."""
    return "".join(c if c.isalnum() else "_" for c in format_value(value))


def budget_per_activation(
    data: Data, images: int | None, seconds: float, activations: list[str], precision: str = "auto"
) -> None:
    """The budget run of the CPU recipe once per activation, the rest of it unchanged.

    Every activation must still train under the recipe tuned for the default (relu); no
    tutorial run here, since its LeNet has no activation to vary.
    """
    splits, indices = data.subset(images)
    say(f"budget per activation: {seconds:g} s each on {len(indices):,} images")
    rows = []
    for name in activations:
        say(f"  {name}:")
        acc, spent, epochs, history = budget_ours(
            splits, seconds, precision=precision, **{**CPU_RECIPE, "activation": name}
        )
        curve = ", ".join(f"{m['val_acc']:.3f}" for m in history if m["elapsed"] <= seconds)
        rows.append([name, epochs, curve or "-", spent, acc])
        result(f"budget_acc_{name}", acc)
    print(table(["activation", "epochs planned", "val acc per epoch", "train s", "val acc"], rows))


def parse_activations(text: str) -> list[str]:
    """`all` or a comma-separated list of names in the activation registry."""
    from trainables.registry import ACTIVATIONS

    names = list(ACTIVATIONS) if text == "all" else [n.strip() for n in text.split(",") if n]
    unknown = [n for n in names if n not in ACTIVATIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown activation {', '.join(unknown) or '(none)'}; known: {', '.join(ACTIVATIONS)}"
        )
    return names


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="folder with train/<class>/*.jpg (default: unpack)")
    parser.add_argument("--out", help="keep the unpacked data and cache here (default: temp)")
    parser.add_argument("--budget", type=float, help="seconds: run the time-to-accuracy mode")
    parser.add_argument(
        "--images", type=int, help=f"training images (default: {CPU_IMAGES:,} on CPU, all on GPU)"
    )
    parser.add_argument(
        "--activations",
        type=parse_activations,
        help="with --budget: one budget run per activation ('all' or a comma-separated list)",
    )
    parser.add_argument(
        "--with-cnn",
        action="store_true",
        help="with --budget: also today's cnn recipe, back to back (RESULT budget_acc_cnn)",
    )
    parser.add_argument(
        "--ablate",
        type=parse_ablation,
        action="append",
        metavar="KEY=VALUE",
        help="with --budget: also the recipe with this key changed (repeatable)",
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per throughput run")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads per process")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="ours: TrialConfig.precision (auto: bf16 on CUDA and on CPUs with native bf16)",
    )
    args = parser.parse_args(argv)
    for key in ("budget", "images", "epochs", "threads"):
        value = getattr(args, key)
        if value is not None and value <= 0:
            parser.error(f"--{key} must be > 0, got {value:g}")
    for flag, given in (("activations", args.activations), ("with-cnn", args.with_cnn),
                        ("ablate", args.ablate)):  # fmt: skip
        if given and args.budget is None:
            parser.error(f"--{flag} needs --budget")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; {torch.get_num_threads()} torch threads")
    print(f"command: {command('pipeline.py', argv)}\n")
    with out_dir(args.out) as out:
        root = Path(args.data_root).resolve() if args.data_root else unpack_cifar(out / "cifar10")
        data = Data(root, out / "cache")
        if args.activations:
            budget_per_activation(data, args.images, args.budget, args.activations, args.precision)
        elif args.budget is not None:
            budget(data, args.images, args.budget, args.precision, args.with_cnn, args.ablate)
        else:
            on_cpu = choose_device("auto").type == "cpu"
            images = args.images or (CPU_IMAGES if on_cpu else None)
            throughput(data, images, args.epochs, args.precision)
    print(f"\nload average at the end: {load()}")
    return 0


if __name__ == "__main__":
    show_data_progress()
    sys.exit(main())
