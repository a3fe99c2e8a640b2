"""The on-disk outbox for MLflow writes: sent now if the store answers, else queued in order.

What is queued is sent when the store is back, or by `cnn-tune resume`.

A search must never wait on a tracking server that went down, and must not lose or double a
metric point because of it. Every write is one JSON line (`OUTBOX_FILE` in the experiment's
state folder); a run created while the server is down gets a placeholder id that later writes
use, and that is swapped for the real id when the creation finally goes through.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from typing import Any

from tune.logs import get_logger

log = get_logger("mlflow")

OUTBOX_FILE = "mlflow_outbox.jsonl"
OUTBOX_FILES = "mlflow_outbox_files"  # copies of artifacts waiting to be sent
RETRY_EVERY_S = 5.0  # while the store is down, writes go straight to disk between retries
PLACEHOLDER = "pending-"
# MLflow error codes that no retry will fix: the write is dropped with a warning.
PERMANENT_ERRORS = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}


def is_transient(exc: BaseException) -> bool:
    """True when the store could not be reached (retry later), not when it refused the write."""
    code = getattr(exc, "error_code", None)
    return code not in PERMANENT_ERRORS


class Outbox:
    """Ordered MLflow writes with a disk-backed backlog."""

    def __init__(
        self,
        client: Any,
        folder: str,
        aliases: dict[str, str],
        on_created: Callable[[str, str], None],
    ):
        """
        Args:
            client: an MlflowClient.
            folder: where the backlog lives (the experiment's state folder).
            aliases: placeholder run id -> real run id, shared with (and saved by) the run map.
            on_created: called with (placeholder, real id) when a queued run creation goes through.
        """
        self.client = client
        self.path = os.path.join(folder, OUTBOX_FILE)
        self.files = os.path.join(folder, OUTBOX_FILES)
        self.aliases = aliases
        self.on_created = on_created
        self.down_since: float | None = None
        self.last_try = 0.0
        self.sent = 0

    # ------------------------------------------------------------------ public

    def pending(self) -> int:
        """Writes waiting on disk."""
        if not os.path.exists(self.path):
            return 0
        with open(self.path) as f:
            return sum(1 for line in f if line.strip())

    def submit(self, op: dict[str, Any]) -> Any:
        """Send `op` now when nothing is waiting and the store answers; else queue it on disk.

        Returns:
            For `create_run`: the run id (a placeholder when queued). Otherwise None.
        """
        if self.pending() and not self.flush():
            return self._queue(op)
        try:
            result = self._send(op)
        except Exception as exc:
            if not is_transient(exc):
                self._drop(op, exc)
                return None
            self._mark_down(exc)
            return self._queue(op)
        self.down_since = None
        return result

    def flush(self, force: bool = False) -> bool:
        """Send waiting writes in order; stop at the first that fails. True when none is left.

        While the store is down, only one try every RETRY_EVERY_S (unless `force`).
        """
        if not os.path.exists(self.path):
            return True
        now = time.monotonic()
        if self.down_since is not None and not force and now - self.last_try < RETRY_EVERY_S:
            return False
        self.last_try = now
        with open(self.path) as f:
            ops = [json.loads(line) for line in f if line.strip()]
        done = 0
        try:
            for op in ops:
                try:
                    self._send(op)
                except Exception as exc:
                    if is_transient(exc):
                        self._mark_down(exc)
                        return False
                    self._drop(op, exc)
                done += 1
        finally:
            self._rewrite(ops[done:])
        if self.down_since is not None:
            log.info("cnn-tune: MLflow store is back; queued records sent")
        self.down_since = None
        return True

    # ------------------------------------------------------------------ internals

    def resolve(self, run_id: str) -> str:
        return self.aliases.get(run_id, run_id)

    def _send(self, op: dict[str, Any]) -> Any:
        from mlflow.entities import Metric, Param, RunTag

        kind = op["op"]
        if kind == "create_run":
            run = self.client.create_run(
                op["experiment_id"], run_name=op["run_name"], tags=op["tags"]
            )
            if op.get("placeholder"):
                self.aliases[op["placeholder"]] = run.info.run_id
                self.on_created(op["placeholder"], run.info.run_id)
            self.sent += 1
            return run.info.run_id
        run_id = self.resolve(op["run_id"])
        if run_id.startswith(PLACEHOLDER):
            raise RuntimeError(f"run {run_id} was never created")  # transient: wait for it
        if kind == "log_batch":
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, v, ts, step) for k, v, ts, step in op.get("metrics", [])],
                params=[Param(k, v) for k, v in op.get("params", [])],
                tags=[RunTag(k, v) for k, v in op.get("tags", [])],
            )
        elif kind == "set_terminated":
            self.client.set_terminated(run_id, status=op["status"])
        elif kind == "update_run":
            self.client.update_run(run_id, status=op["status"])
        elif kind == "log_artifact":
            self.client.log_artifact(run_id, op["path"], op.get("artifact_path"))
            if op.get("owned"):
                shutil.rmtree(os.path.dirname(op["path"]), ignore_errors=True)
        else:
            raise ValueError(f"unknown outbox op {kind!r}")
        self.sent += 1
        return None

    def _queue(self, op: dict[str, Any]) -> Any:
        op = dict(op)
        result = None
        if op["op"] == "create_run":
            op["placeholder"] = op.get("placeholder") or f"{PLACEHOLDER}{uuid.uuid4().hex}"
            result = op["placeholder"]
        if op["op"] == "log_artifact" and not op.get("owned"):
            # The file may be a temporary one: keep a copy until it is sent.
            keep = os.path.join(self.files, uuid.uuid4().hex)
            os.makedirs(keep, exist_ok=True)
            op["path"] = shutil.copy(op["path"], keep)
            op["owned"] = True
        with open(self.path, "a") as f:
            f.write(json.dumps(op) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return result

    def _rewrite(self, ops: list[dict[str, Any]]) -> None:
        if not ops:
            if os.path.exists(self.path):
                os.remove(self.path)
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(op) + "\n" for op in ops)
        os.replace(tmp, self.path)

    def _mark_down(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.last_try = self.down_since
            first = (
                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            )
            log.warning(
                f"MLflow store unreachable ({first}); "
                "records are queued on disk and sent when it is back"
            )

    def _drop(self, op: dict[str, Any], exc: BaseException) -> None:
        log.warning(f"MLflow refused a {op['op']} write, dropped: {exc}")
