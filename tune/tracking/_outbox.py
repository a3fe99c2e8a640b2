"""The on-disk outbox for MLflow writes: sent now if the store answers, else queued in order.

What is queued is sent when the store is back, or by `cnn-tune resume`.

A search must never wait on a tracking server that went down, and must not lose or double a
metric point because of it. Every queued write is one JSON line with an id (`OUTBOX_FILE` in the
experiment's state folder); the id of the last one sent is saved after each send
(`PROGRESS_FILE`), so a driver killed in the middle of a flush resumes after it, never before.
A run created while the server is down gets a placeholder id that later writes use, swapped for
the real id when the creation goes through; a creation looks its run up first, so a replay
never makes a second run. What the store refuses for good is set aside in `REJECTED_FILE` with
its reason; rejected credentials stop sending and keep everything.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from trainables.files import atomic_write
from tune import disk_full
from tune.logs import get_logger
from tune.tracking._store_errors import CREDENTIALS, UNREACHABLE, classify, describe

log = get_logger("mlflow")

OUTBOX_FILE = "mlflow_outbox.jsonl"
PROGRESS_FILE = "mlflow_outbox.sent"  # id of the last queued write that went through
REJECTED_FILE = "mlflow_outbox.rejected.jsonl"  # writes the store refused for good, with why
OUTBOX_FILES = "mlflow_outbox_files"  # copies of artifacts waiting to be sent
RETRY_EVERY_S = 5.0  # after a failed attempt ends, writes go straight to disk this long
PLACEHOLDER = "pending-"
TRIAL_TAG = "cnn_tune.trial_id"
PARENT_TAG = "mlflow.parentRunId"


class Outbox:
    """Ordered MLflow writes with a disk-backed backlog."""

    def __init__(
        self,
        client: Any,
        folder: str,
        aliases: dict[str, str],
        on_created: Callable[[str, str], None],
        lock: threading.RLock | None = None,
        store_path: str | None = None,
    ):
        """
        Args:
            client: an MlflowClient.
            folder: where the backlog lives (the experiment's state folder).
            aliases: placeholder run id -> real run id, shared with (and saved by) the run map.
            on_created: called with (placeholder, real id) when a queued run creation goes through.
            lock: held while `aliases` changes and `on_created` runs: the owner of the run map
                holds it too while it changes or saves the map (the sender is another thread).
            store_path: the folder of an embedded store's files (SQLite, artifacts), named when
                its disk fills.
        """
        self.client = client
        self.store_path = store_path
        self.path = os.path.join(folder, OUTBOX_FILE)
        self.progress = os.path.join(folder, PROGRESS_FILE)
        self.rejected = os.path.join(folder, REJECTED_FILE)
        self.files = os.path.join(folder, OUTBOX_FILES)
        self.aliases = aliases
        self.on_created = on_created
        self.down_since: float | None = None  # when the store stopped answering
        self.problem: str | None = None  # UNREACHABLE or CREDENTIALS while it lasts
        self.last_try = 0.0  # when the last failed attempt ended
        self.sent = 0
        self.lost = 0  # writes neither sent nor kept (the disk was full): reported, not hidden
        self.set_aside = 0  # writes the store refused for good, in REJECTED_FILE
        self.lock = lock or threading.RLock()
        self._io = threading.Lock()  # the files: appends against reads and rewrites
        self._sending = threading.Lock()  # one flush at a time: writes go out in order, once
        # The id of the last queued write sent, also kept here: a full disk can refuse its file,
        # and a flush that lost track would send the same writes again, forever.
        self._last_sent: str | None = None
        # Writes the disk refused (a full disk), in order after those on disk: sent from memory,
        # never dropped; only a driver killed before the store takes them loses them.
        self._overflow: list[dict[str, Any]] = []
        self._said_unsaved = False
        self._said_overflow = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    # ------------------------------------------------------------------ public

    def pending(self) -> int:
        """Writes waiting, on disk or (a full disk) in memory."""
        with self._io:
            return len(self._waiting())

    def submit(self, op: dict[str, Any]) -> Any:
        """Send `op` now when nothing is waiting and the store answers; else queue it on disk.

        With a background sender running, every write is queued and the sender sends it: the
        caller (a trial's report, through a Ray Tune callback) never waits on the store.

        Returns:
            For `create_run`: the run id (a placeholder when queued). Otherwise None.
        """
        if self._thread is not None:
            result = self._queue(op)
            self._wake.set()
            return result
        if (os.path.exists(self.path) or self._overflow) and not self.flush():
            return self._queue(op)
        try:
            result = self._send(op)
        except Exception as exc:
            kind = self._kind_of(exc)
            if kind in (UNREACHABLE, CREDENTIALS):
                self._mark_down(kind, exc)
                return self._queue(op)
            self._set_aside(op, exc)
            return None
        self.problem = self.down_since = None
        self._cleanup(op)
        return result

    def flush(self, force: bool = False) -> bool:
        """Send waiting writes in order; stop at the first the store cannot take now.

        While the store is down, one try every RETRY_EVERY_S after the last failed attempt
        ended (unless `force`), so a store that takes long to fail is not asked again at once.

        Returns:
            True when nothing is left waiting.
        """
        if not os.path.exists(self.path) and not self._overflow:
            return True
        if not force and self.problem == CREDENTIALS:
            return False  # no point asking again with the same credentials
        if not force and self.problem is not None:
            if time.monotonic() - self.last_try < RETRY_EVERY_S:
                return False
        with self._sending:
            while True:
                with self._io:
                    ops = self._waiting()
                    if not ops:
                        for path in (self.path, self.progress):
                            if os.path.exists(path):
                                os.remove(path)
                        self._last_sent = None
                        break
                for op in ops:
                    try:
                        self._send(op)
                    except Exception as exc:
                        kind = self._kind_of(exc)
                        if kind in (UNREACHABLE, CREDENTIALS):
                            self._mark_down(kind, exc)
                            with self._io:
                                self._compact(self._waiting_on_disk())
                            return False
                        self._set_aside(op, exc)
                    with self._io:
                        if self._overflow and self._overflow[0] is op:
                            self._overflow.pop(0)  # sent from memory: nothing on disk to mark
                        else:
                            self._record_progress(op)
                    self._cleanup(op)
        if self.problem is not None:
            log.info("cnn-tune: MLflow store is back; queued records sent")
        self.problem = self.down_since = None
        return True

    def start_background(self) -> None:
        """Send from a thread of its own from now on (while trials run)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._send_loop, name="cnn-tune-mlflow-sender", daemon=True
        )
        self._thread.start()

    def stop_background(self) -> None:
        """Stop the sending thread (after its current attempt); writes are sent inline again."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join()

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=RETRY_EVERY_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception as exc:  # never let the sender die silently
                log.warning(f"MLflow sender: {describe(exc)}")

    def send_backlog(self, within_s: float, poll_s: float = 2.0) -> int:
        """Keep sending what waits, one try every `poll_s`, for up to `within_s` seconds (the end
        of a search: a short outage then needs no resume). Returns what is still waiting."""
        deadline = time.monotonic() + within_s
        for _ in range(int(within_s // poll_s)):
            if self.flush(force=True) or self.problem == CREDENTIALS:
                return self.pending()
            if time.monotonic() + poll_s > deadline:
                break
            time.sleep(poll_s)
        self.flush(force=True)
        return self.pending()

    def resolve(self, run_id: str) -> str:
        return self.aliases.get(run_id, run_id)

    # ------------------------------------------------------------------ sending

    def _send(self, op: dict[str, Any]) -> Any:
        from mlflow.entities import Metric, Param, RunTag

        kind = op["op"]
        if kind == "create_run":
            run_id = (
                self._find_run(op)
                or self.client.create_run(
                    op["experiment_id"], run_name=op["run_name"], tags=op["tags"]
                ).info.run_id
            )
            if op.get("placeholder"):
                with self.lock:
                    self.aliases[op["placeholder"]] = run_id
                    self.on_created(op["placeholder"], run_id)
            self.sent += 1
            return run_id
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
        elif kind == "delete_tag":
            self.client.delete_tag(run_id, op["key"])
        elif kind == "log_artifact":
            self.client.log_artifact(run_id, op["path"], op.get("artifact_path"))
        elif kind == "log_inputs":
            self.client.log_inputs(run_id, datasets=[dataset_input(d) for d in op["datasets"]])
        else:
            raise ValueError(f"unknown outbox op {kind!r}")
        self.sent += 1
        return None

    def _find_run(self, op: dict[str, Any]) -> str | None:
        """A trial's run that an earlier try already created (a replay after a crash): looked
        up by its parent run and trial id, so creating it twice is impossible."""
        tags = op.get("tags", {})
        if TRIAL_TAG not in tags or PARENT_TAG not in tags:
            return None
        found = self.client.search_runs(
            [op["experiment_id"]],
            filter_string=f"tags.`{PARENT_TAG}` = '{tags[PARENT_TAG]}' "
            f"and tags.`{TRIAL_TAG}` = '{tags[TRIAL_TAG]}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    # ------------------------------------------------------------------ the files

    def _waiting(self) -> list[dict[str, Any]]:
        """Queued writes not yet sent, in order: those on disk, then those held in memory."""
        return self._waiting_on_disk() + self._overflow

    def _waiting_on_disk(self) -> list[dict[str, Any]]:
        """The file's writes after the last one recorded as sent."""
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            ops = [json.loads(line) for line in f if line.strip()]
        last = self._last_sent
        if last is None:
            try:
                with open(self.progress) as f:
                    last = f.read().strip()
            except FileNotFoundError:
                return ops
        ids = [op.get("id") for op in ops]
        # Not found: the file was compacted after that write, so every line still waits.
        return ops[ids.index(last) + 1 :] if last in ids else ops

    def _queue(self, op: dict[str, Any]) -> Any:
        op = {**op, "id": uuid.uuid4().hex}
        result = None
        if op["op"] == "create_run":
            op["placeholder"] = op.get("placeholder") or f"{PLACEHOLDER}{uuid.uuid4().hex}"
            result = op["placeholder"]
        if op["op"] == "log_artifact" and not os.path.exists(op["path"]):
            self._set_aside(op, FileNotFoundError(f"{op['path']} no longer exists"))
            return None
        if self._overflow:  # after a write the disk refused, every write waits behind it
            with self._io:
                self._overflow.append(op)
            return result
        try:
            if op["op"] == "log_artifact" and not op.get("owned"):
                # The file may be a temporary one: keep a copy until it is sent.
                keep = os.path.join(self.files, op["id"])
                os.makedirs(keep, exist_ok=True)
                op["path"] = shutil.copy(op["path"], keep)
                op["owned"] = True
            with self._io, open(self.path, "a") as f:
                f.write(json.dumps(op) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:  # a full disk: the write waits in memory, in order, and is said
            with self._io:
                self._overflow.append(op)
            if not self._said_overflow:
                self._said_overflow = True
                log.warning(
                    f"cannot keep MLflow records on disk in {os.path.dirname(self.path)} "
                    f"({err.strerror or err}); they wait in memory and are sent as the store "
                    "takes them (a driver killed before then would lose them)"
                )
        return result

    def _record_progress(self, op: dict[str, Any]) -> None:
        if "id" not in op:
            return
        self._last_sent = op["id"]
        try:
            with atomic_write(self.progress) as f:
                f.write(op["id"])
        except OSError as err:
            # A full disk: this process goes on from the id in memory; only a driver killed
            # before the disk frees could send these writes again when resumed.
            self._warn_once_unsaved(err)

    def _compact(self, ops: list[dict[str, Any]]) -> None:
        """Rewrite the file with only what still waits (the progress id then matches none)."""
        try:
            with atomic_write(self.path) as f:
                f.writelines(json.dumps(op) + "\n" for op in ops)
        except OSError as err:  # a full disk: the file stays as it was, still right
            self._warn_once_unsaved(err)
            return
        self._last_sent = None  # its id is gone from the file: every line waits

    def _warn_once_unsaved(self, err: OSError) -> None:
        if not self._said_unsaved:
            self._said_unsaved = True
            log.warning(
                f"cannot save the MLflow outbox's progress in {os.path.dirname(self.path)} "
                f"({err.strerror or err}); sending goes on"
            )

    def _cleanup(self, op: dict[str, Any]) -> None:
        # Only after the send is recorded: a crash before that replays the artifact, whose
        # copy must still be there.
        if op.get("owned"):
            shutil.rmtree(os.path.dirname(op["path"]), ignore_errors=True)

    def _kind_of(self, exc: BaseException) -> str:
        """What a failed send means. A full disk under an embedded store is waited out like an
        outage (kept in order, sent once space is freed: never set aside as refused), and stops
        the search (`tune.disk_full`): every later write would fail the same way."""
        if disk_full.notice(exc, disk_full.MLFLOW_STORE, self.store_path):
            return UNREACHABLE
        return classify(exc)

    def _mark_down(self, kind: str, exc: BaseException) -> None:
        self.last_try = time.monotonic()  # the attempt has ended: the retry clock starts now
        if self.problem == kind:
            return
        if self.problem is None:
            self.down_since = self.last_try
        self.problem = kind
        if kind == CREDENTIALS:
            log.warning(
                f"the MLflow store rejected the credentials ({describe(exc)}); nothing is "
                "sent until they are fixed, every record is kept on disk and sent by "
                "`cnn-tune resume`"
            )
        else:
            log.warning(
                f"MLflow store unreachable ({describe(exc)}); "
                "records are queued on disk and sent when it is back"
            )

    def _set_aside(self, op: dict[str, Any], exc: BaseException) -> None:
        """A write the store refused for good: kept with its reason, the others go on."""
        self.set_aside += 1
        try:
            with open(self.rejected, "a") as f:
                f.write(json.dumps({"reason": describe(exc), "op": op}) + "\n")
        except OSError:
            self.lost += 1
        log.warning(
            f"MLflow refused a {op['op']} write for good ({describe(exc)}); it is set aside in "
            f"{self.rejected} and the other records go on"
        )


def dataset_input(data: dict[str, Any]) -> Any:
    """An MLflow `DatasetInput` from a queued plain dict (`tune.staging.dataset_inputs`)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = Dataset(
        name=data["name"],
        digest=data["digest"],
        source_type=data["source_type"],
        source=data["source"],
        profile=data.get("profile"),
    )
    return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, data["context"])])
