"""What ends a command early, and the one table of exit codes every command returns."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """`cnn-tune`'s exit codes (README "Exit codes")."""

    OK = 0  # done (diverged trials alone do not fail a search)
    TRIALS_FAILED = 1  # the search ran, but trials failed beyond max_failures or none finished
    BAD_INPUT = 2  # config, flags or data are wrong; reported before anything starts
    UNREACHABLE = 3  # a service it needs (Ray cluster, tracking store) did not answer: retry later
    LOCKED = 4  # another live process drives this experiment
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: the state is saved, `cnn-tune resume NAME` continues


class DriverError(Exception):
    """A problem that stops a command before or while it starts; carries its exit code."""

    exit_code = ExitCode.BAD_INPUT


class BadInput(DriverError):
    """Bad input (a flag, a saved experiment, the data): exit 2, nothing created."""

    exit_code = ExitCode.BAD_INPUT


class Unreachable(DriverError):
    """A service the search needs (a Ray cluster, an MLflow store) could not be reached."""

    exit_code = ExitCode.UNREACHABLE


class StateUnreadable(BadInput):
    """Ray's saved experiment state cannot be read (cut short, damaged): the line names the
    file. Exit 2: the experiment as found is the input that is wrong."""


class Locked(DriverError):
    """Another live process drives this experiment."""

    exit_code = ExitCode.LOCKED


class SearchConfigError(BadInput, ValueError):
    """A search config key is unknown, has a bad value, or combines badly with another key.

    Attributes:
        key: the dotted key path (``space.lr.loguniform``), or the file for a file-level problem.
        problem: what is wrong and what is allowed.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray and multiprocessing pickle exceptions; the default would call cls(message) only.
        return (type(self), (self.key, self.problem))


def one_line(text: str) -> str:
    """An error as one line: control characters a value brought in (a key with a newline,
    a carriage return) are shown escaped, as `repr` would, so the line stays whole."""
    return (
        "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)
        or "(no message)"
    )


def describe_kind(value: Any) -> str:
    """'a mapping', 'a list', 'an int', 'nothing': how a message names a value of the wrong kind."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
