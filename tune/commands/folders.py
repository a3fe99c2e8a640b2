"""The experiments under a storage path, seen from this host: list, stop a driver, delete.

`delete` removes the MLflow runs first (soft), then the folders. Everything is read from
cnn-tune's own state files (the saved config, the MLflow run map, the lock), never from Ray's
experiment state: a few small files per experiment, where Ray's can be large. Whether a driver
is running is the lock's word, not a guess; for remote storage the lock lives on the driver's
host, so only that host can see a search running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from tune.config.reading import read_config_mapping
from tune.config.validation import validate_search_config
from tune.errors import BadInput, DriverError, SearchConfigError
from tune.lock import ExperimentLocked, is_locked, owner
from tune.metrics import best_of
from tune.paths import (
    CONFIG_FILE,
    experiment_path,
    is_remote,
    legacy_state_dir,
    locate_experiment,
    redact_uri,
    state_root,
)
from tune.tracking import RUN_MAP_FILE, RunMap, delete_runs

STOP_WAIT_S = 300.0  # how long `stop` waits for the driver to save its state and exit


class NoDriver(BadInput):
    """`stop`: no live driver holds the search (exit 2)."""


@dataclass
class ExperimentInfo:
    """One line of `cnn-tune list`."""

    name: str
    state: str  # running | finished | failed | interrupted
    trials_done: int
    trials_total: int
    best: float | None  # the search metric's best over its trials' epochs
    metric: str
    dataset: str
    started: str  # local time, when the search's config was saved
    last_update: str  # local time, the run map's last save
    parent_run_id: str | None
    tracking_uri: str  # password redacted
    storage_path: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def state_folders(storage_path: str) -> dict[str, str]:
    """Experiment name -> its state folder, for every experiment of `storage_path`."""
    if not is_remote(storage_path):
        if not os.path.isdir(storage_path):
            return {}
        return {
            name: os.path.join(storage_path, name)
            for name in sorted(os.listdir(storage_path))
            if os.path.exists(os.path.join(storage_path, name, CONFIG_FILE))
        }
    # Remote storage: this host's state folders whose saved config names that storage path.
    found: dict[str, str] = {}
    for root in (os.path.dirname(legacy_state_dir("x")), state_root()):  # current ones win
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name, CONFIG_FILE)
            try:
                saved = read_config_mapping(path)
            except SearchConfigError:
                continue
            if str(saved.get("storage_path", "")).rstrip("/") == storage_path.rstrip("/"):
                found[name] = os.path.join(root, name)
    return found


def describe(name: str, folder: str) -> ExperimentInfo:
    """An experiment's line from its state folder."""
    saved = read_config_mapping(os.path.join(folder, CONFIG_FILE))
    search = saved.get("search") or {}
    metric, mode = search.get("metric", "val_acc"), search.get("mode", "max")
    try:
        runs = RunMap.load(os.path.join(folder, RUN_MAP_FILE))
    except (OSError, ValueError, TypeError):
        runs = None
    config_time = os.path.getmtime(os.path.join(folder, CONFIG_FILE))
    map_path = os.path.join(folder, RUN_MAP_FILE)
    updated = os.path.getmtime(map_path) if runs is not None else config_time
    bests = [t.best for t in (runs.trials.values() if runs else []) if t.best is not None]
    return ExperimentInfo(
        name=name,
        state=_state(folder, runs),
        trials_done=sum(1 for t in runs.trials.values() if t.status) if runs else 0,
        trials_total=max(_planned(saved, folder), len(runs.trials) if runs else 0),
        best=best_of(mode, bests) if bests else None,
        metric=metric,
        dataset=str(saved.get("dataset", "")),
        started=_stamp(config_time),
        last_update=_stamp(updated),
        parent_run_id=runs.parent_run_id if runs else None,
        tracking_uri=redact_uri(str((saved.get("mlflow") or {}).get("tracking_uri", ""))),
        storage_path=str(saved.get("storage_path", "")),
    )


def _state(folder: str, runs: RunMap | None) -> str:
    if is_locked(folder):
        return "running"
    if runs is None:
        return "interrupted"  # its driver died before the MLflow runs were made
    if runs.status is None and runs.finished:  # a run map of an older version
        return "finished"
    return {"FINISHED": "finished", "FAILED": "failed"}.get(runs.status or "", "interrupted")


def _planned(saved: dict[str, Any], folder: str) -> int:
    """Trials the saved config asks for, counted by `SearchConfig.trial_count` (the one home of
    that rule); 0 where the saved config no longer validates (a newer or hand-edited file)."""
    try:
        return validate_search_config(saved, folder).trial_count()
    except DriverError:
        return 0


def list_experiments(storage_path: str) -> list[ExperimentInfo]:
    """Every experiment under `storage_path`, the most recently updated first."""
    infos = []
    for name, folder in state_folders(storage_path).items():
        try:
            infos.append(describe(name, folder))
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # a folder being created or removed right now
    return sorted(infos, key=lambda i: i.last_update, reverse=True)


def stop_driver(storage_path: str, name: str, wait_s: float = STOP_WAIT_S) -> str:
    """Ask the live driver of `name` to stop as SIGTERM does (trials stopped, state saved,
    resumable), and wait for it to let go of the lock.

    Returns:
        The driver it stopped ("process PID on HOST ...").

    Raises:
        NoDriver (exit 2): no live driver; BadInput: its driver runs on another host.
    """
    folder = locate_experiment(storage_path, name)
    if not os.path.exists(os.path.join(folder, CONFIG_FILE)):
        raise NoDriver(f"no experiment {name!r} under {storage_path}")
    if not is_locked(folder):
        raise NoDriver(f"no driver is running search {name!r}; nothing to stop")
    held_by = owner(folder)
    if held_by.get("host") not in (None, socket.gethostname()):
        raise BadInput(
            f"search {name!r} is driven from host {held_by['host']}; run `cnn-tune stop` there"
        )
    pid = held_by.get("pid")
    if not isinstance(pid, int):
        raise NoDriver(f"the driver of {name!r} did not record its process id; stop it by hand")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise NoDriver(f"the driver of {name!r} (process {pid}) has already exited") from None
    deadline = time.monotonic() + wait_s
    while is_locked(folder):
        if time.monotonic() > deadline:
            raise DriverError(
                f"search {name!r}: process {pid} was asked to stop but still runs after "
                f"{wait_s:.0f}s"
            )
        time.sleep(0.2)
    return held_by.get("text", f"process {pid}")


def delete_experiment(storage_path: str, name: str, keep_runs: bool = False) -> dict[str, Any]:
    """Delete a search: its MLflow runs first (soft: restorable until `mlflow gc`), then its
    experiment folder and state.

    Only a folder that is a cnn-tune experiment (it holds the saved config) and lies under the
    storage path is removed; a symlink is never followed (`locate_experiment`), and a symlink
    that stays inside is refused too: the experiment it leads to is deleted by its own name.

    Raises:
        BadInput (2): a name that is not plain, a symlink, no such experiment;
        ExperimentLocked (4): a driver holds it; Unreachable (3): the MLflow store did not
        answer (nothing deleted).
    """
    folder = locate_experiment(storage_path, name)
    if os.path.islink(folder):
        raise BadInput(
            f"delete {name!r}: {folder} is a symlink; delete the experiment it leads to by its "
            "own name"
        )
    if not os.path.isfile(os.path.join(folder, CONFIG_FILE)):
        raise BadInput(f"no experiment {name!r} under {storage_path}")
    if is_locked(folder):
        raise ExperimentLocked(
            f"search {name!r} is being driven by {owner(folder)['text']}; stop it first"
        )
    runs = RunMap.load(os.path.join(folder, RUN_MAP_FILE))
    deleted_runs = 0
    if runs is not None and not keep_runs:
        deleted_runs = delete_runs(saved_tracking_uri(folder), runs)
    if is_remote(storage_path):  # Ray's folder there; this host's state folder below
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(experiment_path(storage_path, name))
        fs.delete_dir(path)
    shutil.rmtree(folder)  # local storage: the experiment folder itself
    return {"name": name, "deleted_runs": deleted_runs, "kept_runs": keep_runs}


def saved_tracking_uri(folder: str) -> str | None:
    """The tracking URI a search was started with, from its saved config."""
    saved = read_config_mapping(os.path.join(folder, CONFIG_FILE))
    return (saved.get("mlflow") or {}).get("tracking_uri")
