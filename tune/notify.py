"""`notify`: one HTTP POST when a search ends, in the shape Slack and Mattermost webhooks take.

The body is the JSON summary (when there is one) plus a one-line `text`. finished = exit 0,
failed = exit 1 or 3, interrupted = exit 130; exits 2 and 4 started nothing and send nothing.
Sending never changes the exit code: after 3 tries (10 s each, backing off) it is a warning. The
URL is a credential: only `redact_webhook`'s form of it is ever printed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tune.config.schema import NotifySettings
from tune.errors import ExitCode
from tune.logs import get_logger
from tune.paths import redact_webhook

log = get_logger("notify")

TIMEOUT_S = 10.0  # per try
TRIES = 3
BACKOFF_S = 1.0  # before the 2nd try; doubled before the 3rd
EVENT_OF_EXIT = {
    ExitCode.OK: "finished",
    ExitCode.TRIALS_FAILED: "failed",
    ExitCode.UNREACHABLE: "failed",
    ExitCode.INTERRUPTED: "interrupted",
}


def event_of(exit_code: int) -> str | None:
    """The end an exit code is (None for 2 and 4: nothing started, nothing to tell)."""
    return EVENT_OF_EXIT.get(ExitCode(exit_code)) if exit_code in set(ExitCode) else None


def message(name: str, event: str, summary: dict[str, Any] | None, error: str | None) -> str:
    """The one-line `text`: what ended, how, and the best trial."""
    text = f"cnn-tune search {name!r} {event}"
    if summary:
        trials = summary.get("trials", {})
        text += f": {trials.get('total', 0)} trials"
        if summary.get("stopped_by"):
            text += f", stopped by its {summary['stopped_by']}"
        best = summary.get("best")
        if best:
            text += f"; best {best['trial_id']} val_acc={best.get('val_acc')}"
    if error:
        text += f": {error}"
    return text + f" (exit {summary['exit_code'] if summary else '-'})"


def notify_end(
    settings: NotifySettings,
    name: str,
    exit_code: int,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """POST the end of a search to the webhook when its event is wanted; True when sent.

    Args:
        summary: the JSON summary (`Summary.to_json()`, NaN already written as null); None
            when the search raised (exit 3).
        error: the error line, when it raised.
    """
    event = event_of(exit_code)
    if settings.webhook is None or event is None or event not in settings.on:
        return False
    body = {
        "text": message(name, event, summary, error),
        "event": event,
        "name": name,
        "exit_code": int(exit_code),
        "error": error,
        "summary": summary,
    }
    return post_json(settings.webhook, body)


def post_json(url: str, body: dict[str, Any]) -> bool:
    """POST `body` as JSON: 3 tries with backoff; a failure is a warning, never an error."""
    data = json.dumps(body, default=str, allow_nan=False).encode()
    shown, problem = redact_webhook(url), ""
    for attempt in range(TRIES):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                response.read()
            log.info(f"notify: sent to {shown}")
            return True
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = type(exc).__name__
    log.warning(f"notify: {shown} did not take the notification after {TRIES} tries ({problem})")
    return False
