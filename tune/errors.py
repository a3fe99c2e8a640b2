"""Errors that stop a search, each carrying the CLI exit code it maps to."""

from __future__ import annotations


class DriverError(Exception):
    """A problem that stops a search before or while it starts; carries the CLI exit code."""

    exit_code = 2


class BadInput(DriverError):
    exit_code = 2


class Unreachable(DriverError):
    """A service the search needs (a Ray cluster) could not be reached: retry later."""

    exit_code = 3


class Locked(DriverError):
    """Another live process drives this experiment."""

    exit_code = 4
