"""The search commands: `run`, `resume` and `validate`."""

from __future__ import annotations

import argparse

import yaml

from tune.commands.common import (
    add_config_arguments,
    add_driver_arguments,
    add_storage_argument,
    drive_and_print,
    load_config,
)
from tune.errors import ExitCode
from tune.logs import SUMMARY, get_logger
from tune.paths import redact_webhook, resolve_storage_path

log = get_logger()


def add_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        parents=parents,
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

    p = sub.add_parser(
        "resume",
        parents=parents,
        help="continue an interrupted search from its experiment folder",
        description="Continue an interrupted search with Tuner.restore: finished trials are "
        "kept, unfinished ones continue from their checkpoints, errored ones stay errored "
        "unless --retry-errored. A finished search prints its summary again.",
    )
    p.add_argument("name", metavar="NAME", help="the experiment name")
    add_storage_argument(p)
    add_driver_arguments(p)
    p.add_argument(
        "--retry-errored",
        action="store_true",
        help="also resume trials that errored beyond max_failures, from their latest checkpoint",
    )
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser(
        "validate",
        parents=parents,
        help="check a search config and print it resolved; starts nothing",
        description="Check everything `run` checks before Ray starts; print the resolved config.",
    )
    add_config_arguments(p)
    p.set_defaults(func=cmd_validate)


def cmd_run(args: argparse.Namespace) -> int:
    from tune.driver import run_search

    cfg = load_config(args)
    if_exists = "resume" if args.resume_if_exists else "overwrite" if args.overwrite else "refuse"
    return drive_and_print(
        lambda: run_search(cfg, address=args.address, if_exists=if_exists), args, cfg
    )


def cmd_resume(args: argparse.Namespace) -> int:
    from tune.driver import load_saved_config, resume_search

    storage = resolve_storage_path(args.storage_path)
    saved = load_saved_config(storage, args.name)  # exit 2 for an unknown name, before anything
    return drive_and_print(
        lambda: resume_search(args.name, storage, args.address, args.retry_errored), args, saved
    )


def cmd_validate(args: argparse.Namespace) -> int:
    from tune.checks import check_paths
    from tune.paths import locate_experiment
    from tune.warm_start import plan_warm_start

    cfg = load_config(args)
    locate_experiment(cfg.storage_path, cfg.name, "name")
    check_paths(cfg)  # every path as `run` checks it (a probe folder made and removed at once)
    warm = plan_warm_start(cfg)  # an earlier search that does not exist: exit 2
    # The tracking URI as the search will use it; a webhook's secret is not printed.
    shown = cfg.to_dict()
    if cfg.notify.webhook:
        shown["notify"]["webhook"] = redact_webhook(cfg.notify.webhook)
    print(yaml.safe_dump(shown, sort_keys=False), end="")
    count = warm.trial_count(cfg.trial_count()) if warm is not None else cfg.trial_count()
    log.log(SUMMARY, f"{count} trials; config OK")
    return ExitCode.OK
