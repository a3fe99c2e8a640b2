"""tune.tracking._store_errors: what an MLflow client error means for the outbox."""

from __future__ import annotations

import errno
import sqlite3

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException

from tune.tracking._store_errors import (
    CREDENTIALS,
    LOCAL,
    REFUSED,
    UNREACHABLE,
    classify,
    describe,
)


def rest(status: int, code: str) -> RestException:
    exc = RestException({"error_code": code, "message": f"{status} {code}"})
    exc.get_http_status_code = lambda: status  # what the REST client attaches
    return exc


@pytest.mark.parametrize(
    "exc, meaning",
    [
        (requests.ConnectionError("refused"), UNREACHABLE),
        (RuntimeError("no answer"), UNREACHABLE),  # no structured answer at all
        (sqlite3.OperationalError("database is locked"), UNREACHABLE),
        (rest(503, "TEMPORARILY_UNAVAILABLE"), UNREACHABLE),
        (rest(401, "UNAUTHENTICATED"), CREDENTIALS),
        (rest(403, "PERMISSION_DENIED"), CREDENTIALS),
        (rest(404, "RESOURCE_DOES_NOT_EXIST"), REFUSED),
        (rest(400, "INVALID_PARAMETER_VALUE"), REFUSED),
        (OSError(errno.ENOSPC, "No space left on device"), LOCAL),
    ],
)
def test_each_error_has_one_meaning(exc, meaning):
    assert classify(exc) == meaning


def test_a_connection_fault_under_a_wrapper_is_still_unreachable():
    try:
        try:
            raise requests.ConnectionError("reset")
        except requests.ConnectionError as inner:
            raise MlflowException("API request to /runs/log-batch failed") from inner
    except MlflowException as exc:
        assert classify(exc) == UNREACHABLE


def test_describe_is_one_short_line():
    assert describe(ValueError("first\nsecond")) == "first"
    assert describe(ValueError("")) == "ValueError"
    assert len(describe(ValueError("x" * 1000))) == 300
