"""A full disk mid-search: stop the whole search the way SIGTERM does, on the real error.

ENOSPC or EDQUOT can come from anywhere that writes: a trial persisting its checkpoint (a
`RayTaskError` on the driver), Ray saving the experiment state, the run map or the outbox.
Ray would spend each trial's retries on it, and every retry fails the same way; so the first
one seen stops the search as Ctrl-C does (Ray Tune's graceful path: running trials end and
stay resumable), and the command ends with one line naming the full filesystem, exit 130.
Nothing here looks at free space in advance: only a write that failed counts.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tune.errors import DriverError, ExitCode
from tune.logs import get_logger

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How the errors read once Ray or pyarrow has turned them into text (a trial's error file, a
# RayTaskError whose cause did not survive pickling, pyarrow's "[errno 28]" detail).
FULL_TEXTS = (
    tuple(os.strerror(code) for code in FULL_ERRNOS)
    + tuple(f"[{word} {code}]" for code in FULL_ERRNOS for word in ("Errno", "errno"))
    + ("database or disk is full",)  # SQLite's SQLITE_FULL: an embedded MLflow store's disk
)

log = get_logger("driver")

# The moments named in the one line, where the error alone does not say which write it was.
RAY_STATE = "Ray's experiment state"  # Ray's own save of the experiment
TRIAL_CHECKPOINT = "a trial's checkpoint"  # a trial storing its checkpoint
MLFLOW_STORE = "the MLflow store"  # an embedded store's SQLite file or artifacts


class DiskFull(DriverError):
    """The search stopped on a full disk; its state is kept, `cnn-tune resume NAME` goes on."""

    exit_code = ExitCode.INTERRUPTED


def is_disk_full(exc: BaseException | str | None) -> bool:
    """Whether an error (or its text) is ENOSPC/EDQUOT, through causes, contexts and Ray's
    wrapping of a trial's error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, str):
            return any(text in exc for text in FULL_TEXTS)
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if any(text in str(exc) for text in FULL_TEXTS):
            return True
        cause = getattr(exc, "cause", None)  # RayTaskError: the trial's own exception
        if isinstance(cause, BaseException) and id(cause) not in seen:
            if is_disk_full(cause):
                return True
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return False


def mount_point(path: str) -> str:
    """The mount point of the filesystem `path` is on (or would be, once created)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


def describe_full(path: str) -> str:
    """'the filesystem at MOUNT (… free of …) is full, writing under PATH'."""
    mount = mount_point(path)
    try:
        st = os.statvfs(mount)
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        room = f" ({size_text(free)} free of {size_text(total)})"
    except OSError:
        room = ""
    return f"the filesystem at {mount}{room} is full, writing under {path}"


class FullDiskWatch:
    """The first full-disk error of a search, and the stop it asks for.

    `armed` while Ray Tune's fit runs, when SIGINT is Tune's graceful stop; at other times
    (the end of the search) a full disk is only noted: a SIGINT there would interrupt the
    driver's own bookkeeping.
    """

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path  # the experiment's folder: what filled up, unless an error names a file
        self.found: str | None = None
        self.armed = False
        self.stop_sent = False
        self.staging: str | None = None  # Ray's driver-side copy of the experiment state
        self.store_path: str | None = None  # an embedded MLflow store's folder, if any
        # Handlers whose full-disk records are hidden (`armed`) until the search ends.
        self.hiding: list[tuple[logging.Handler, logging.Filter]] = []

    def notice(
        self, exc: BaseException | str | None, where: str = "", path: str | None = None
    ) -> bool:
        """Take note of an error; on the first full-disk one, stop the search. Returns whether
        it was a full disk (the caller then goes on without the write).

        `path`: what was being written, where the error does not name a file and it is not
        the experiment's folder (the MLflow store's)."""
        if not is_disk_full(exc):
            return False
        filename = getattr(exc, "filename", None)
        if isinstance(filename, str):
            path = os.path.dirname(filename)
        elif where == MLFLOW_STORE:
            path = path or self.store_path
            if path is None:  # a tracking server's own disk: an outage to wait out, not ours
                return False
        if self.found is None:
            # The moment goes into the command's one line: which write met the full disk.
            self.found = describe_full(path or self.path) + (f" ({where})" if where else "")
            log.warning(f"{self.found}: stopping the search")
        if self.armed and not self.stop_sent:
            self.stop_sent = True
            os.kill(os.getpid(), signal.SIGINT)  # Tune's own graceful stop, as for SIGTERM
        return True

    def keep_state(self) -> None:
        """Keep Ray's experiment state off the full disk: its copy there may be cut short
        (Ray copies its driver-side files over at every save). `restore_kept_state` puts it
        back on the resume."""
        if self.staging is None or not os.path.isdir(self.staging):
            return
        kept = kept_state_dir(self.path)
        try:
            if os.path.isdir(kept):
                shutil.rmtree(kept)
            os.makedirs(kept)
            for entry in os.listdir(self.staging):  # the experiment's files, not the trials'
                source = os.path.join(self.staging, entry)
                if os.path.isfile(source):
                    shutil.copy2(source, kept)
        except OSError as exc:
            log.warning(f"could not keep Ray's experiment state in {kept}: {exc}")

    def error(self) -> DiskFull:
        """The command's one line: the filesystem, the path, and how to go on."""
        return DiskFull(
            f"search {self.name!r} stopped: {self.found}; its state is kept: free space, then "
            f"`cnn-tune resume {self.name}`"
        )


_watch: FullDiskWatch | None = None


def kept_state_dir(experiment: str) -> str:
    """Where a search stopped on a full disk keeps Ray's experiment state until its resume
    (under cnn-tune's state root; a name never starts with '.', so no experiment is there).

    Keyed by the experiment's folder, not its name alone: a search of the same name in another
    storage path must neither take this state on its resume nor skip its own checks for it."""
    import hashlib

    from tune.paths import state_root

    where = os.path.abspath(experiment)
    digest = hashlib.sha256(where.encode()).hexdigest()[:16]
    return os.path.join(state_root(), ".full-disk", f"{os.path.basename(where)}-{digest}")


def note_staging(path: str | None) -> None:
    """Ray's driver-side folder of the experiment state (a trial's `storage` knows it)."""
    if _watch is not None and path:
        _watch.staging = path


def restore_kept_state(experiment: str) -> None:
    """On a resume: put back the experiment state a full disk may have cut short."""
    kept = kept_state_dir(experiment)
    if not os.path.isdir(kept):
        return
    for entry in os.listdir(kept):
        shutil.copy2(os.path.join(kept, entry), os.path.join(experiment, entry))
    shutil.rmtree(kept)
    log.info(f"Ray's experiment state restored from {kept}, kept when the disk filled")


def notice(exc: BaseException | str | None, where: str = "", path: str | None = None) -> bool:
    """Report an error to the search being driven (if any); True when it was a full disk."""
    if _watch is None:
        return is_disk_full(exc)
    return _watch.notice(exc, where, path)


class _HideFullDiskTracebacks(logging.Filter):
    """Ray logs each trial's failure and each failed state save with its traceback, MLflow
    each failed SQLite write with its traceback in the message; for a full disk the search's
    one line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if record.name.split(".")[0] == "mlflow":
            where = MLFLOW_STORE
        elif "experiment state" in message or "controller checkpointing" in message:
            where = RAY_STATE  # Ray's own saves
        else:
            where = TRIAL_CHECKPOINT  # the rest Ray logs of a full disk: a trial's store
        if notice(exc, where) or notice(message, where):
            return False
        return True


@contextmanager
def watch_for_full_disk(name: str, path: str) -> Iterator[FullDiskWatch]:
    """While a search is driven, every full-disk error goes to one watch."""
    global _watch
    watch = _watch = FullDiskWatch(name, path)
    try:
        yield watch
    finally:
        _watch = None
        for handler, hide in watch.hiding:
            handler.removeFilter(hide)


@contextmanager
def armed() -> Iterator[None]:
    """While Ray Tune's fit runs: a full disk stops the search with SIGINT. From now until the
    search ends (its end writes to MLflow too), Ray's and MLflow's own tracebacks of a full
    disk are hidden: their handlers exist once Ray has started and the runs are open."""
    if _watch is not None:
        hide = _HideFullDiskTracebacks()
        for handler in logging.getLogger("ray").handlers + logging.getLogger("mlflow").handlers:
            if all(kept is not handler for kept, _ in _watch.hiding):
                handler.addFilter(hide)
                _watch.hiding.append((handler, hide))
        _watch.armed = True
    try:
        yield
    finally:
        if _watch is not None:
            _watch.armed = False


def errored_trials(trials: list[Any]) -> tuple[list[str], list[str]]:
    """Of Ray's saved trials, those it saved as errored: (those that failed on a full disk,
    the others).

    A full disk cuts a trial's own error files short: an error text that says ENOSPC/EDQUOT,
    or one that is missing or empty, counts as a full disk. An error pickle cut short is
    removed, so that Ray reads the text instead of failing on it.
    """
    import pickle

    full, other = [], []
    for trial in trials:
        if trial.status != "ERROR":
            continue
        folder = trial.path or ""
        text = ""
        try:
            with open(os.path.join(folder, "error.txt"), errors="replace") as f:
                text = f.read()
        except OSError:
            pass
        pickled = os.path.join(folder, "error.pkl")
        if os.path.exists(pickled):
            try:
                with open(pickled, "rb") as f:
                    pickle.load(f)
            except Exception:  # written on a full disk: cut short
                os.remove(pickled)
                text = text or os.strerror(errno.ENOSPC)
        (full if not text.strip() or is_disk_full(text) else other).append(trial.trial_id)
    return full, other


__all__ = [
    "DiskFull",
    "armed",
    "errored_trials",
    "FullDiskWatch",
    "is_disk_full",
    "notice",
    "watch_for_full_disk",
]
