"""The `cnn_tune` logger: one stderr handler, the -q/-v levels, and Ray's and MLflow's own logs.

stdout is reserved for `--json`, so every line a person reads goes to stderr through here.
Levels: `-q` shows errors and the final summary only (`SUMMARY`), the default adds warnings and
progress (INFO), `-v` adds debug lines and Ray's and MLflow's INFO logs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from tune.paths import redact_uri

LOGGER = "cnn_tune"
# Above WARNING, below ERROR: what a command prints as its result (the summary table, "config
# OK") stays visible under -q while warnings do not.
SUMMARY = 35
logging.addLevelName(SUMMARY, "SUMMARY")

_LEVELS = {-1: SUMMARY, 0: logging.INFO, 1: logging.DEBUG}
# Other libraries' loggers: -q keeps only their errors, -v shows their INFO lines, the default
# leaves them as they set themselves (Ray: warnings, as `ray.init` is told).
_THIRD_PARTY = ("mlflow", "ray", "ray.tune", "ray.train", "alembic", "optuna")
_THIRD_PARTY_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}


class _Prefixed(logging.Formatter):
    """'cnn-tune: error: ...' and 'cnn-tune: warning: ...'; other levels print the message."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"cnn-tune: error: {text}"
        if record.levelno == logging.WARNING:
            return f"cnn-tune: warning: {text}"
        return text


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is now (tests and redirect_stdout swap it)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _redacting_factory(make_record: Callable[..., logging.LogRecord]) -> Callable:
    """Wrap a LogRecord factory so that no record, ours or a library's, carries a password.

    MLflow's and requests' exception texts quote the request URL, credentials included (a
    tracking URI `http://user:secret@host`); those texts reach warnings, the exit-3 line and
    the libraries' own log lines, and from there cron logs.
    """

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging to report
            return record
        redacted = redact_uri(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record

    make.redacting = True  # type: ignore[attr-defined]
    return make


def install_redaction() -> None:
    """Redact passwords in every log record of this process (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "redacting", False):
        logging.setLogRecordFactory(_redacting_factory(factory))


def get_logger(name: str = "") -> logging.Logger:
    """The `cnn_tune` logger or one of its children (`get_logger("driver")`)."""
    return logging.getLogger(f"{LOGGER}.{name}" if name else LOGGER)


def setup_logging(verbosity: int = 0) -> None:
    """Send `cnn_tune` records to stderr at the level for `verbosity` (-1 quiet, 0, 1 verbose)."""
    verbosity = max(-1, min(1, verbosity))
    install_redaction()
    root = logging.getLogger(LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Prefixed())
    root.addHandler(handler)
    root.setLevel(_LEVELS[verbosity])
    root.propagate = False
    if verbosity == 0:
        return
    for name in _THIRD_PARTY:
        logging.getLogger(name).setLevel(_THIRD_PARTY_LEVELS[verbosity])
    if verbosity < 0:
        # MLflow sets its loggers' level when it is imported, which comes later: it reads this.
        os.environ["MLFLOW_LOGGING_LEVEL"] = "ERROR"
        # Ray Tune's console output prints a "Configuration for experiment" box even at
        # verbose=0; its legacy reporter prints nothing at verbose=0.
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"


def verbosity() -> int:
    """The verbosity `setup_logging` set: -1 quiet, 0 default, 1 verbose."""
    level = logging.getLogger(LOGGER).getEffectiveLevel()
    return -1 if level > logging.WARNING else (1 if level <= logging.DEBUG else 0)


def third_party_level() -> int:
    """The level Ray's own logging should use now (passed to `ray.init`)."""
    return _THIRD_PARTY_LEVELS[verbosity()]
