"""The checks of a start, each once, before anything is created, and the plan they leave.

What they found comes back as one typed `StartPlan` for the locked part of the start
(`tune.driver`). In order: the name and every path setting, the Ray address (or this machine's
resources), the data (staged into this node's cache once), the batch size against it, the warm
start, a resume's saved Ray state (read), and the tracking store (probed once). A failure is
exit 2 or 3 with one line; nothing was made yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tune.checks import (
    check_batch_size,
    check_local_resources,
    check_paths,
    probe_address,
    probe_tracking_store,
)
from tune.config.schema import SearchConfig
from tune.logs import get_logger
from tune.paths import experiment_path, is_remote, locate_experiment, sqlite_file
from tune.staging import stage_data
from tune.warm_start import WarmStart, plan_warm_start

log = get_logger("driver")


@dataclass(frozen=True)
class StartPlan:
    """A start that has passed every check: what the locked part needs, resolved once."""

    cfg: SearchConfig
    folder: str  # the experiment's state folder, strictly inside `storage_path`
    address: str | None  # the Ray cluster to join; None: a private local Ray
    restore: bool  # continue the experiment's saved state instead of starting afresh
    inputs: list[dict[str, Any]]  # the staged splits, as MLflow dataset inputs (`tune.staging`)
    warm: WarmStart | None  # `search.warm_start`'s plan, if the search has one


def preflight(cfg: SearchConfig, address: str | None, restore: bool) -> StartPlan:
    """Check a start and stage its data; see the module's docstring for the order.

    `address`: a Ray cluster to join; default $RAY_ADDRESS, else a local Ray.

    Raises:
        BadInput (exit 2), Unreachable (exit 3).
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    folder = locate_experiment(cfg.storage_path, cfg.name, "name")
    check_paths(cfg)
    warn_if_job_paths_are_temporary(cfg)
    if address:
        probe_address(address)
    else:
        check_local_resources(cfg)
    staged = stage_data(cfg)
    check_batch_size(cfg, staged.train_images)
    warm = plan_warm_start(cfg, restore)  # an unknown earlier search: exit 2 (a restore warns)
    if restore:
        check_saved_state(cfg)
    probe_tracking_store(cfg.mlflow.tracking_uri)
    return StartPlan(cfg, folder, address, restore, staged.inputs, warm)


def check_saved_state(cfg: SearchConfig) -> None:
    """A resume reads Ray's saved experiment state before it touches anything (the lock, the
    MLflow runs): a damaged one is exit 2, one line naming the file. Where a full disk cut it
    short, the copy kept aside (`tune.disk_full`) is the one the resume puts back."""
    from tune.disk_full import kept_state_dir
    from tune.fit.tuner import experiment_state_files, read_experiment_state

    path = experiment_path(cfg.storage_path, cfg.name)
    if is_remote(cfg.storage_path) or os.path.isdir(kept_state_dir(path)):
        return
    if experiment_state_files(path):  # else Ray starts afresh
        read_experiment_state(path)


def warn_if_job_paths_are_temporary(cfg: SearchConfig) -> None:
    """Under `ray job submit` the command runs in a temporary copy of the working directory:
    results and a SQLite store kept there are lost with it, and a rerun could not resume."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # set by Ray for job entrypoints
        return
    here = os.getcwd()
    paths = {
        "storage_path": cfg.storage_path,
        "mlflow.tracking_uri": sqlite_file(cfg.mlflow.tracking_uri) or "",
    }
    for key, path in paths.items():
        if os.path.isabs(path) and os.path.commonpath([here, path]) == here:
            log.warning(
                f"{key} {path} is inside this job's temporary working directory; pass an "
                f"absolute shared location (--set {key}=/shared/...) so results survive the "
                "job and a rerun can resume"
            )
