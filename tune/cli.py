"""`cnn-tune`: the argument parser, and the one place errors become exit codes.

The codes are `tune.errors.ExitCode` (README "Exit codes"); each command returns one, and every
`DriverError` it raises carries its own.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from tune.commands import operate, search, server, store, trial
from tune.errors import DriverError, ExitCode, one_line
from tune.logs import get_logger, setup_logging

log = get_logger()


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


def verbosity_parser() -> argparse.ArgumentParser:
    """-q/--quiet and -v/--verbose, shared by every subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=0,
        help="print errors and the final summary only (also quiets Ray's and MLflow's logs)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        help="also print debug lines and Ray's and MLflow's INFO logs",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnn-tune",
        description="Hyperparameter search for CNN image classifiers on Ray, logged to MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"cnn-tune {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    parents = [verbosity_parser()]
    for group in (search, trial, store, server, operate):
        group.add_parsers(sub, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, set the log level, run the command; every `DriverError` (a bad config, an
    unreachable service, a locked experiment) becomes one error line and its exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(one_line(str(exc)), file=sys.stderr)
        return ExitCode.BAD_INPUT
    setup_logging(args.verbosity)
    try:
        return int(args.func(args))
    except DriverError as exc:
        log.error(one_line(str(exc)))  # one line, whatever a value in it held
        return int(exc.exit_code)


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
