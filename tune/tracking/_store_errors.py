"""What an MLflow store's error means: retry later, fix the credentials, set the record aside.

Every write of a search goes through this one classification (the outbox while trials run, the
tracker at the start), by the exception's type, its cause and the HTTP status it carries, not
by guessing from the text.
"""

from __future__ import annotations

import sqlite3

UNREACHABLE = "unreachable"  # no answer (refused, reset, timed out, 5xx, 429): retry later
CREDENTIALS = "credentials"  # 401/403: keep every record, stop sending, say so
REFUSED = "refused"  # the store answered no for good (4xx: a deleted run or experiment)
LOCAL = "local"  # a fault on this machine (a file that is gone, a full disk)

# HTTP statuses after which the same request may go through later.
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
_CREDENTIAL_STATUSES = {401, 403}
# MLflow error codes the embedded stores raise for what will never succeed.
_REFUSED_CODES = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "BAD_REQUEST",
    "INVALID_STATE",
    "ENDPOINT_NOT_FOUND",
}
_CREDENTIAL_CODES = {"UNAUTHENTICATED", "PERMISSION_DENIED", "CUSTOMER_UNAUTHORIZED"}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from or during."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _is_connection_fault(exc: BaseException) -> bool:
    import requests

    transport = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, TimeoutError)
    if isinstance(exc, transport) or isinstance(exc, ConnectionError):
        return True
    try:
        import urllib3

        return isinstance(exc, urllib3.exceptions.HTTPError)
    except ImportError:  # pragma: no cover - requests brings urllib3
        return False


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status a store's refusal carries, when it came over HTTP."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(exc, RestException) or (
        isinstance(exc, MlflowException) and "failed with error code" in str(exc)
    ):
        return exc.get_http_status_code()
    return None


def classify(exc: BaseException) -> str:
    """UNREACHABLE, CREDENTIALS, REFUSED or LOCAL for an error raised by an MLflow client call."""
    chain = _chain(exc)
    if any(_is_connection_fault(e) for e in chain):
        return UNREACHABLE
    if any(isinstance(e, sqlite3.OperationalError) or "database is locked" in str(e)
           for e in chain):  # fmt: skip
        return UNREACHABLE  # an embedded store busy with another writer: it frees up
    code = getattr(exc, "error_code", None)
    status = _http_status(exc)
    if status in _CREDENTIAL_STATUSES or code in _CREDENTIAL_CODES:
        return CREDENTIALS
    if status in _RETRY_STATUSES:
        return UNREACHABLE
    if code in _REFUSED_CODES or (status is not None and 400 <= status < 500):
        return REFUSED
    if isinstance(exc, OSError):
        return LOCAL
    if code is None:
        return UNREACHABLE  # no structured answer at all: most likely no answer
    return REFUSED


def describe(exc: BaseException) -> str:
    """The first line of the error, for one-line messages (passwords are redacted by logging)."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
