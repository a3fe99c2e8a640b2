"""The single-trial commands, with no Ray and no MLflow: `train` and `stage-data`."""

from __future__ import annotations

import argparse
import time
from typing import Any

from trainables.config import TrialConfig
from tune.commands.common import add_set_argument, to_json
from tune.config.parse import parse_overrides
from tune.errors import BadInput, ExitCode
from tune.logs import SUMMARY, get_logger

log = get_logger()


def add_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        parents=parents,
        help="train one trial config without Ray (progress on stderr)",
        description="Train one trial config in this process: no Ray, no MLflow.",
    )
    # Each flag defaults to None so TrialConfig stays the one home of the defaults: a flag
    # not given is left out and the dataclass fills it in (the help shows its value).
    default = TrialConfig()
    p.add_argument("--dataset", help=f"dataset name (default: {default.dataset})")
    p.add_argument("--activation", help=f"activation (default: {default.activation})")
    p.add_argument("--augment", help=f"augmentation policy (default: {default.augment})")
    p.add_argument(
        "--batch-size", type=int, help=f"images per step (default: {default.batch_size})"
    )
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default: {default.lr:g})")
    p.add_argument("--epochs", type=int, help=f"epochs (default: {default.epochs})")
    p.add_argument("--data-root", help="dataset folder (torchvision root or ImageFolder)")
    p.add_argument(
        "--download", action="store_true", default=None, help="let torchvision download it"
    )
    p.add_argument("--device", help=f"auto | cpu | cuda (default: {default.device})")
    p.add_argument("--seed", type=int, help=f"seed (default: {default.seed})")
    add_set_argument(
        p, "any other trial config key, e.g. --set width=64 --set lr_schedule=constant"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "stage-data",
        parents=parents,
        help="fetch a dataset (if asked) and decode it once into this node's cache",
        description="Download (with --download) and decode DATASET once into the cache that "
        "trials read (a file lock makes concurrent stagers wait; a checksum guards the file).",
    )
    p.add_argument("dataset", metavar="DATASET", help="a dataset name, e.g. cifar10")
    p.add_argument("--data-root", default=None, help="raw dataset folder")
    p.add_argument("--cache-dir", default=None, help="decoded cache (default: ~/.cache/cnn-tune)")
    p.add_argument("--download", action="store_true", help="let torchvision download it")
    p.add_argument("--image-size", type=int, default=32, help="ImageFolder size (default: 32)")
    p.add_argument("--image-mode", default="RGB", help="ImageFolder mode: RGB or L")
    p.set_defaults(func=cmd_stage)


def trial_values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The trial config `train` runs: the flags given, then each --set KEY=VALUE (YAML-parsed,
    by the parser `run` uses); what neither gives is TrialConfig's default."""
    flags = ("dataset", "activation", "augment", "batch_size", "lr", "epochs", "data_root",
             "download", "device", "seed")  # fmt: skip
    values: dict[str, Any] = {k: getattr(args, k) for k in flags if getattr(args, k) is not None}
    for parts, value in parse_overrides(args.overrides):
        if len(parts) > 1:
            raise BadInput(f"--set {'.'.join(parts)}: trial config keys are not nested")
        values[parts[0]] = value
    return values


def _load_trial(values: dict[str, Any]) -> tuple[Any, Any]:
    """(TrialConfig, Splits) for `values`; any problem with them is bad input (exit 2)."""
    from trainables.config import ConfigError, TrialConfig
    from trainables.data import DataError, dataset_from_config

    try:
        cfg = TrialConfig.from_dict(values)
        if cfg.device == "cuda":
            from trainables.loop import choose_device

            choose_device("cuda")
        return cfg, dataset_from_config(cfg)
    except (ConfigError, DataError, RuntimeError) as exc:
        raise BadInput(str(exc)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from trainables.loop import train

    cfg, splits = _load_trial(trial_values_from_args(args))

    def show(metrics: dict[str, Any], _snapshot: Any) -> None:
        test = f"  test_acc {metrics['test_acc']:.4f}" if "test_acc" in metrics else ""
        flag = "  DIVERGED" if metrics["diverged"] else ""
        log.info(
            f"epoch {metrics['epoch']}/{cfg.epochs}  train_loss {metrics['train_loss']:.4f}"
            f"  val_loss {metrics['val_loss']:.4f}  val_acc {metrics['val_acc']:.4f}{test}"
            f"  {metrics['epoch_seconds']:.1f}s  {metrics['images_per_s']:.0f} img/s{flag}"
        )

    log.info(
        f"training {cfg.dataset}: {len(splits.train_y)} train / {len(splits.val_y)} val images, "
        f"{cfg.activation}, {cfg.augment}, batch {cfg.batch_size}, lr {cfg.lr:g}"
    )
    result = train(cfg, on_epoch=show, splits=splits)
    last = result.last
    summary = {
        "val_acc": last.get("val_acc"),
        "val_loss": last.get("val_loss"),
        "test_acc": last.get("test_acc"),
        "epochs": len(result.history),
        "images_per_s": last.get("images_per_s"),
        "seconds": result.seconds,
        "diverged": result.diverged,
        "config": result.config,
        "history": result.history,
    }
    if args.json:
        print(to_json(summary))
    if result.diverged:
        log.log(SUMMARY, "training diverged (loss is NaN or infinite); stopped")
    else:
        log.log(
            SUMMARY,
            f"trained {cfg.dataset} in {result.seconds:.1f}s: val_acc {last.get('val_acc'):.4f}",
        )
    return ExitCode.OK


def cmd_stage(args: argparse.Namespace) -> int:
    from trainables.cache import cache_path

    start = time.perf_counter()
    cfg, splits = _load_trial(
        {
            "dataset": args.dataset,
            "data_root": args.data_root,
            "cache_dir": args.cache_dir,
            "download": args.download,
            "image_size": args.image_size,
            "image_mode": args.image_mode,
        }
    )
    path = cache_path(cfg.dataset, cfg.data_root, cfg.image_size, cfg.image_mode, cfg.cache_dir)
    test = "" if splits.test_y is None else f" / {len(splits.test_y)} test"
    log.log(
        SUMMARY,
        f"staged {cfg.dataset}: {len(splits.train_y)} train / {len(splits.val_y)} val{test} "
        f"images, {splits.num_classes} classes, in {time.perf_counter() - start:.1f}s -> {path}",
    )
    return ExitCode.OK
