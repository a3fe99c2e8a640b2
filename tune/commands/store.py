"""The commands on the MLflow store: `ui` and `report`."""

from __future__ import annotations

import argparse
import os
import sys

from tune.commands.common import print_summary
from tune.errors import BadInput, ExitCode
from tune.logs import SUMMARY, get_logger
from tune.paths import (
    DEFAULT_TRACKING_URI,
    choose_tracking_uri,
    is_server_uri,
    resolve_tracking_uri,
)

log = get_logger()


def add_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        parents=parents,
        help="a search's summary table read back from MLflow (or an HTML report)",
        description="Print the summary of a finished or running search, read from MLflow; "
        "with --html, also write one self-contained HTML page (note, trials, plots) to mail.",
    )
    p.add_argument("name", metavar="NAME", help="the search's name (its MLflow parent run)")
    add_store_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument(
        "--html",
        metavar="OUT.html",
        default=None,
        help="also write the report as one self-contained HTML file (plots embedded)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "ui",
        parents=parents,
        help="start the MLflow UI on the configured store, bound to 127.0.0.1",
        description="Start the MLflow UI on the tracking store, bound to 127.0.0.1 "
        "(reach it from elsewhere through SSH port forwarding).",
    )
    add_store_arguments(p)
    p.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    p.set_defaults(func=cmd_ui)


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
    """(tracking_uri, experiment): --tracking-uri, else the --config file's (which follows the
    same precedence), else $MLFLOW_TRACKING_URI, else the SQLite default."""
    from tune.config.parse import load_search_config
    from tune.config.schema import MlflowSettings

    settings = load_search_config(args.config).mlflow if args.config else MlflowSettings()
    uri = choose_tracking_uri(args.tracking_uri or settings.tracking_uri)
    return resolve_tracking_uri(uri), args.experiment or settings.experiment


def cmd_ui(args: argparse.Namespace) -> int:
    uri, _ = store_from_args(args)
    if is_server_uri(uri):
        raise BadInput(f"--tracking-uri {uri} is already a server: open it in a browser")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", "127.0.0.1", "--port", str(args.port)]
    log.log(SUMMARY, f"MLflow UI on http://127.0.0.1:{args.port} for {uri}")
    for handler in log.handlers:
        handler.flush()
    os.execv(sys.executable, command)  # the UI replaces this process: Ctrl-C stops it
    return ExitCode.OK  # not reached


def cmd_report(args: argparse.Namespace) -> int:
    from tune.paths import check_name
    from tune.tracking import load_report

    check_name(args.name, "search name")  # it goes into an MLflow filter: a plain name only
    uri, experiment = store_from_args(args)
    if args.html is not None:
        check_html_path(args.html)
    print_summary(load_report(uri, experiment, args.name), args.json)
    if args.html is not None:
        from tune.tracking import write_html_report

        path = write_html_report(uri, experiment, args.name, args.html)
        log.log(SUMMARY, f"report: {path}")
    return ExitCode.OK


def check_html_path(path: str) -> None:
    """The report's file must be writable where asked: checked before MLflow is read."""
    from tune.checks import check_folder

    if os.path.isdir(path):
        raise BadInput(f"--html {path}: is a folder; give a file name such as report.html")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInput(f"--html {path}: folder {folder} does not exist")
    check_folder("--html", folder, note=f" (the folder of {os.path.basename(path)})")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise BadInput(f"--html {path}: is not writable")
