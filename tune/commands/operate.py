"""The commands on the experiments of a storage path: `list`, `stop` and `delete`."""

from __future__ import annotations

import argparse
import sys

from tune.commands.common import add_storage_argument, to_json
from tune.errors import BadInput, ExitCode
from tune.logs import SUMMARY, get_logger
from tune.paths import check_name, is_remote, resolve_storage_path

log = get_logger()


def add_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "list",
        parents=parents,
        help="the experiments under a storage path: state, trials, best, last update",
        description="List every experiment under a storage path (local or s3://...), the most "
        "recently updated first. 'running' is read from the experiment's lock: for remote "
        "storage only the driver's own host can see it.",
    )
    add_storage_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON array on stdout")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "stop",
        parents=parents,
        help="ask a search's live driver to stop cleanly (resumable), as SIGTERM does",
        description="Send SIGTERM to the live driver of NAME and wait until it has saved its "
        "state and let go: exit 0 when it stopped, 2 when no driver is running.",
    )
    p.add_argument("name", metavar="NAME", help="the experiment name")
    add_storage_argument(p)
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser(
        "delete",
        parents=parents,
        help="delete a search: its MLflow runs (soft), then its experiment folder and state",
        description="Mark the search's MLflow runs deleted (restorable until `mlflow gc`), then "
        "remove its experiment folder and state. Exit 4 while a driver holds it, 3 (nothing "
        "deleted) when MLflow does not answer.",
    )
    p.add_argument("name", metavar="NAME", help="the experiment name")
    add_storage_argument(p)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--keep-runs", action="store_true", help="leave the MLflow runs alone")
    p.set_defaults(func=cmd_delete)


def cmd_list(args: argparse.Namespace) -> int:
    from tune.commands.folders import list_experiments
    from tune.summary import align_columns

    storage = resolve_storage_path(args.storage_path)
    infos = list_experiments(storage)
    if args.json:
        print(to_json([i.to_json() for i in infos]))
    header = ["name", "state", "trials", "best", "dataset", "started", "last update", "parent run"]
    rows = [
        [i.name, i.state, f"{i.trials_done}/{i.trials_total}",
         "-" if i.best is None else f"{i.metric}={i.best:.4f}", i.dataset, i.started,
         i.last_update, i.parent_run_id or "-"]
        for i in infos
    ]  # fmt: skip
    lines = align_columns(header, rows)
    lines.append(f"{len(infos)} experiments under {storage}")
    if is_remote(storage):
        lines.append(
            "remote storage: listed from this host's state folders; a search driven from "
            "another host shows as interrupted here"
        )
    log.log(SUMMARY, "\n".join(lines))
    return ExitCode.OK


def cmd_stop(args: argparse.Namespace) -> int:
    from tune.commands.folders import stop_driver

    check_name(args.name)  # before a word is printed or a file read
    storage = resolve_storage_path(args.storage_path)
    log.log(SUMMARY, f"asking the driver of {args.name!r} to stop (it saves its state first)")
    stopped = stop_driver(storage, args.name)
    log.log(
        SUMMARY,
        f"stopped {args.name!r} ({stopped}); continue it with `cnn-tune resume {args.name} "
        f"--storage-path {storage}`",
    )
    return ExitCode.OK


def cmd_delete(args: argparse.Namespace) -> int:
    from tune.commands.folders import delete_experiment

    check_name(args.name)  # before the prompt: a path is never a name to confirm
    storage = resolve_storage_path(args.storage_path)
    if not args.yes:
        if not sys.stdin.isatty():
            raise BadInput(f"delete {args.name!r}: no terminal to confirm on; pass --yes to delete")
        what = "its experiment folder" + ("" if args.keep_runs else " and its MLflow runs")
        answer = input(f"delete search {args.name!r} ({what})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            log.log(SUMMARY, "nothing deleted")
            return ExitCode.OK
    done = delete_experiment(storage, args.name, keep_runs=args.keep_runs)
    runs = "MLflow runs kept" if args.keep_runs else f"{done['deleted_runs']} MLflow runs deleted"
    log.log(SUMMARY, f"deleted {args.name!r}: experiment folder removed, {runs}")
    return ExitCode.OK
