"""`cnn-tune`: argument parsing and exit codes only; the work lives in importable modules.

Exit codes (README "Exit codes"):
    0  done (diverged trials alone do not fail a search)
    1  the search ran, but trials failed beyond max_failures or none finished
    2  bad input (config, flags, data), reported before anything starts
    3  a service it needs (Ray cluster, tracking server) could not be reached: retry later
    4  the experiment is already driven by another live process
  130  interrupted (Ctrl-C, SIGTERM): the state is saved, `cnn-tune resume NAME` continues
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_TRIALS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_LOCKED = 4


class UsageError(Exception):
    """A command-line problem: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _version() -> str:
    try:
        return metadata.version("cnn-tune")
    except metadata.PackageNotFoundError:
        return "unknown"


def to_json(obj: Any) -> str:
    """JSON text with NaN/inf written as null (a diverged loss), which strict parsers require."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(obj), indent=2, sort_keys=False)


def fail(message: str) -> None:
    print(f"cnn-tune: error: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- train


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one trial config without Ray (progress on stderr)",
        description="Train one trial config in this process: no Ray, no MLflow.",
    )
    p.add_argument("--dataset", default="mnist5k", help="dataset name (default: %(default)s)")
    p.add_argument("--activation", default="relu", help="activation (default: %(default)s)")
    p.add_argument("--augment", default="crop", help="augmentation policy (default: %(default)s)")
    p.add_argument(
        "--batch-size", type=int, default=128, help="images per step (default: %(default)s)"
    )
    p.add_argument(
        "--lr", type=float, default=3e-3, help="Adam learning rate (default: %(default)s)"
    )
    p.add_argument("--epochs", type=int, default=3, help="epochs (default: %(default)s)")
    p.add_argument(
        "--data-root", default=None, help="dataset folder (torchvision root or ImageFolder)"
    )
    p.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other trial config key, e.g. --set width=64 --set lr_schedule=constant",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_train)


def trial_values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    values: dict[str, Any] = {
        "dataset": args.dataset,
        "activation": args.activation,
        "augment": args.augment,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "epochs": args.epochs,
        "data_root": args.data_root,
        "download": args.download,
        "device": args.device,
        "seed": args.seed,
    }
    for item in args.overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        values[key.strip()] = yaml.safe_load(text)
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from trainables.config import ConfigError, TrialConfig
    from trainables.data import DataError, dataset_from_config
    from trainables.loop import train

    try:
        cfg = TrialConfig.from_dict(trial_values_from_args(args))
        if cfg.device == "cuda":
            from trainables.loop import choose_device

            choose_device("cuda")
        splits = dataset_from_config(cfg)
    except (ConfigError, DataError, RuntimeError) as exc:
        fail(str(exc))
        return EXIT_BAD_INPUT

    def show(metrics: dict[str, Any], _snapshot: Any) -> None:
        test = f"  test_acc {metrics['test_acc']:.4f}" if "test_acc" in metrics else ""
        flag = "  DIVERGED" if metrics["diverged"] else ""
        print(
            f"epoch {metrics['epoch']}/{cfg.epochs}  train_loss {metrics['train_loss']:.4f}"
            f"  val_loss {metrics['val_loss']:.4f}  val_acc {metrics['val_acc']:.4f}{test}"
            f"  {metrics['epoch_seconds']:.1f}s  {metrics['images_per_s']:.0f} img/s{flag}",
            file=sys.stderr,
            flush=True,
        )

    print(
        f"training {cfg.dataset}: {len(splits.train_y)} train / {len(splits.val_y)} val images, "
        f"{cfg.activation}, {cfg.augment}, batch {cfg.batch_size}, lr {cfg.lr:g}",
        file=sys.stderr,
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
        print("training diverged (loss is NaN or infinite); stopped", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- run / validate


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.yaml", help="search config file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, type-checked: --set epochs=2 "
        "--set space.lr='{loguniform: [1e-4, 1e-2]}'",
    )
    p.add_argument("--name", default=None, help="experiment name (overrides the config's name)")


def add_driver_arguments(p: argparse.ArgumentParser) -> None:
    """What every command that drives a search takes: where Ray is, and --json."""
    p.add_argument(
        "--address",
        default=None,
        help="join the Ray cluster at this address (default: $RAY_ADDRESS, else a local Ray)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a search on a local Ray or a Ray cluster",
        description="Validate CONFIG.yaml, start or join Ray, run the search, print its summary.",
    )
    add_config_arguments(p)
    add_driver_arguments(p)
    exists = p.add_mutually_exclusive_group()
    exists.add_argument(
        "--resume-if-exists",
        action="store_true",
        help="resume the experiment when it exists (its saved config wins), else start it",
    )
    exists.add_argument(
        "--overwrite", action="store_true", help="start afresh even when the experiment exists"
    )
    p.set_defaults(func=cmd_run)


def add_resume_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        help="continue an interrupted search from its experiment folder",
        description="Continue an interrupted search with Tuner.restore: finished trials are "
        "kept, unfinished ones continue from their checkpoints, errored ones stay errored "
        "unless --retry-errored. A finished search prints its summary again.",
    )
    p.add_argument("name", metavar="NAME", help="the experiment name")
    p.add_argument(
        "--storage-path",
        default="./ray_results",
        help="where the experiment folder lives (default: %(default)s)",
    )
    add_driver_arguments(p)
    p.add_argument(
        "--retry-errored",
        action="store_true",
        help="also resume trials that errored beyond max_failures, from their latest checkpoint",
    )
    p.set_defaults(func=cmd_resume)


def add_validate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a search config and print it resolved; starts nothing",
        description="Check everything `run` checks before Ray starts; print the resolved config.",
    )
    add_config_arguments(p)
    p.set_defaults(func=cmd_validate)


def load_config(args: argparse.Namespace):
    from tune.config import load_search_config

    overrides = list(args.overrides)
    if args.name is not None:
        overrides.append(f"name={args.name}")
    return load_search_config(args.config, overrides)


def cmd_validate(args: argparse.Namespace) -> int:
    import yaml

    from tune.config import SearchConfigError

    try:
        cfg = load_config(args)
    except SearchConfigError as exc:
        fail(str(exc))
        return EXIT_BAD_INPUT
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    print(f"{cfg.trial_count()} trials; config OK", file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from tune.config import SearchConfigError
    from tune.driver import run_search

    try:
        cfg = load_config(args)
    except SearchConfigError as exc:
        fail(str(exc))
        return EXIT_BAD_INPUT
    if_exists = "resume" if args.resume_if_exists else "overwrite" if args.overwrite else "refuse"
    return drive_and_report(
        lambda: run_search(cfg, address=args.address, if_exists=if_exists), args
    )


def cmd_resume(args: argparse.Namespace) -> int:
    import os

    from tune.driver import resume_search

    storage = os.path.abspath(os.path.expanduser(args.storage_path))
    if "://" in args.storage_path:
        storage = args.storage_path
    return drive_and_report(
        lambda: resume_search(args.name, storage, args.address, args.retry_errored), args
    )


def drive_and_report(search: Any, args: argparse.Namespace) -> int:
    """Run a search callable; map its errors to exit codes; print the table and JSON."""
    from tune.driver import DriverError
    from tune.summary import format_table

    try:
        summary = search()
    except DriverError as exc:
        fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        fail("interrupted; resume the search with `cnn-tune resume NAME`")
        return 130
    print(format_table(summary), file=sys.stderr)
    if args.json:
        print(to_json(summary.to_json()))
    return summary.exit_code


# --------------------------------------------------------------------------- stage-data


def add_stage_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stage-data",
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


def cmd_stage(args: argparse.Namespace) -> int:
    import time

    from trainables.config import ConfigError, TrialConfig
    from trainables.data import DataError, cache_path, dataset_from_config

    try:
        cfg = TrialConfig.from_dict(
            {
                "dataset": args.dataset,
                "data_root": args.data_root,
                "cache_dir": args.cache_dir,
                "download": args.download,
                "image_size": args.image_size,
                "image_mode": args.image_mode,
            }
        )
        start = time.perf_counter()
        splits = dataset_from_config(cfg)
    except (ConfigError, DataError) as exc:
        fail(str(exc))
        return EXIT_BAD_INPUT
    path = cache_path(cfg.dataset, cfg.data_root, cfg.image_size, cfg.image_mode, cfg.cache_dir)
    print(
        f"staged {cfg.dataset}: {len(splits.train_y)} train / {len(splits.val_y)} val"
        f"{'' if splits.test_y is None else f' / {len(splits.test_y)} test'} images, "
        f"{splits.num_classes} classes, in {time.perf_counter() - start:.1f}s -> {path}",
        file=sys.stderr,
    )
    return EXIT_OK


# --------------------------------------------------------------------------- ui / report


DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: the --config file's, else $MLFLOW_TRACKING_URI, "
        f"else {DEFAULT_TRACKING_URI} in this directory)",
    )
    p.add_argument(
        "--config", default=None, help="read the tracking URI and experiment from this config"
    )
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: cnn-tune)")


def store_from_args(args: argparse.Namespace) -> tuple[str, str]:
    """(tracking_uri, experiment) from flags, a config file, the environment or the defaults."""
    import os

    from tune.config import MlflowSettings, load_search_config, resolve_tracking_uri

    settings = MlflowSettings()
    if args.config:
        settings = load_search_config(args.config).mlflow
    uri = args.tracking_uri or (settings.tracking_uri if args.config else None)
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    return resolve_tracking_uri(uri, os.getcwd()), args.experiment or settings.experiment


def add_ui_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="start the MLflow UI on the configured store, bound to 127.0.0.1",
        description="Start the MLflow UI on the tracking store, bound to 127.0.0.1 "
        "(reach it from elsewhere through SSH port forwarding).",
    )
    add_store_arguments(p)
    p.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    p.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    import os

    from tune.config import SearchConfigError

    try:
        uri, _ = store_from_args(args)
    except SearchConfigError as exc:
        fail(str(exc))
        return EXIT_BAD_INPUT
    if uri.startswith(("http://", "https://")):
        fail(f"--tracking-uri {uri} is already a server: open it in a browser")
        return EXIT_BAD_INPUT
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", "127.0.0.1", "--port", str(args.port)]
    print(f"MLflow UI on http://127.0.0.1:{args.port} for {uri}", file=sys.stderr, flush=True)
    os.execv(sys.executable, command)  # the UI replaces this process: Ctrl-C stops it
    return EXIT_OK  # not reached


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="a search's summary table read back from MLflow",
        description="Print the summary of a finished or running search, read from MLflow.",
    )
    p.add_argument("name", metavar="NAME", help="the search's name (its MLflow parent run)")
    add_store_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from tune.config import SearchConfigError
    from tune.report import ReportError, load_report
    from tune.summary import format_table

    try:
        uri, experiment = store_from_args(args)
        summary = load_report(uri, experiment, args.name)
    except (SearchConfigError, ReportError) as exc:
        fail(str(exc))
        return EXIT_BAD_INPUT
    print(format_table(summary), file=sys.stderr)
    if args.json:
        print(to_json(summary.to_json()))
    return EXIT_OK


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnn-tune",
        description="Hyperparameter search for CNN image classifiers on Ray, logged to MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"cnn-tune {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    add_run_parser(sub)
    add_resume_parser(sub)
    add_validate_parser(sub)
    add_train_parser(sub)
    add_stage_parser(sub)
    add_report_parser(sub)
    add_ui_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT


def entry() -> None:
    """The `cnn-tune` console script: `main`, then a quick exit.

    Tearing down the modules of torch, Ray, MLflow and matplotlib at interpreter exit takes
    1-2 s after the work is done (measured: 2.3 s after a search), which every scheduled job
    and every search's wall time would pay. atexit handlers still run and the streams are
    flushed; only the module teardown is skipped.
    """
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a closed stream
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
