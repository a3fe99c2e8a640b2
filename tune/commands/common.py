"""What several subcommands share: config and driver flags, reading the config, the summary.

The summary goes to stderr as a table and, with --json, to stdout as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

from tune.config.schema import SearchConfig
from tune.errors import ExitCode
from tune.logs import SUMMARY, get_logger

log = get_logger()


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


def add_set_argument(p: argparse.ArgumentParser, help: str) -> None:
    """--set KEY=VALUE, repeatable, into `args.overrides`."""
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """CONFIG.yaml, --set and --name: what every command that reads a search config takes."""
    p.add_argument("config", metavar="CONFIG.yaml", help="search config file")
    add_set_argument(
        p,
        "override any config key, type-checked: --set epochs=2 "
        "--set space.lr='{loguniform: [1e-4, 1e-2]}'",
    )
    p.add_argument("--name", default=None, help="experiment name (overrides the config's name)")


def add_storage_argument(p: argparse.ArgumentParser) -> None:
    """--storage-path, for the commands that find an experiment by name."""
    p.add_argument(
        "--storage-path",
        default="./ray_results",  # as in the search config
        help="where the experiment folders live (default: %(default)s)",
    )


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


def load_config(args: argparse.Namespace) -> SearchConfig:
    """The validated config from CONFIG.yaml, --set and --name.

    Raises:
        SearchConfigError (exit 2), naming the file or the key.
    """
    from tune.config.parse import load_search_config

    overrides = list(args.overrides)
    if args.name is not None:
        overrides.append(f"name={args.name}")
    return load_search_config(args.config, overrides)


def print_summary(summary: Any, as_json: bool) -> None:
    """The summary table on stderr (shown even with -q), and the JSON on stdout if asked."""
    from tune.summary import format_table

    log.log(SUMMARY, format_table(summary))
    if as_json:
        print(to_json(summary.to_json()))


def drive_and_print(
    search: Callable[[], Any], args: argparse.Namespace, cfg: SearchConfig | None = None
) -> int:
    """Run a search callable, print its summary, and return its exit code (130 on Ctrl-C).

    With `cfg.notify` set, the end is also posted to its webhook (`tune.notify`): after the
    summary is printed, and for an unreachable service (exit 3) before the error propagates.
    """
    from tune.errors import DriverError

    try:
        summary = search()
    except KeyboardInterrupt:
        log.error("interrupted; resume the search with `cnn-tune resume NAME`")
        notify(cfg, ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED
    except DriverError as exc:
        notify(cfg, exc.exit_code, error=str(exc))  # only exit 3 of these is sent
        raise
    print_summary(summary, args.json)
    notify(cfg, summary.exit_code, json.loads(to_json(summary.to_json())))
    return summary.exit_code


def notify(
    cfg: SearchConfig | None, exit_code: int, summary: Any = None, error: str | None = None
) -> None:
    if cfg is None or cfg.notify.webhook is None:
        return
    from tune.notify import notify_end

    notify_end(cfg.notify, cfg.name, int(exit_code), summary, error)
