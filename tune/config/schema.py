"""The search config as typed dataclasses: `SearchConfig` and its sections, `to_dict`, dump.

Reading one (YAML, `--set`, validation) is `tune.config.parse`; every instance that comes from there
is checked and has absolute paths.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

import yaml

from tune.config.space import Choice, Domain, domain_to_yaml

METRICS = ("val_acc", "val_loss", "train_loss")
MODES = ("max", "min")
# Trial keys the search config sets at top level (or the driver sets); `space` may not vary them.
TOP_LEVEL_TRIAL_KEYS = ("dataset", "data_root", "cache_dir", "epochs")
# Also the keys that decide the data itself: trials of one search must see the same images and
# validate on the same split, or their scores cannot be compared.
UNSEARCHABLE_KEYS = (
    *TOP_LEVEL_TRIAL_KEYS,
    "download",
    "device",
    "val_fraction",
    "image_size",
    "image_mode",
)


@dataclass
class Plateau:
    """End the search when its best has not improved by more than `tolerance` over `patience`
    finished trials."""

    patience: int  # finished trials without an improvement, >= 1
    tolerance: float = 0.0  # what counts as an improvement: more than this, >= 0


@dataclass
class StopRule:
    """`search.stop`: end the whole search early once it is good enough (either rule)."""

    target: float | None = None  # any trial's metric reaching this (per `mode`)
    plateau: Plateau | None = None


@dataclass
class SearchSettings:
    """How trials are proposed, stopped and retried."""

    num_samples: int = 8  # trials (grid: repeats of the whole grid)
    algorithm: str = "random"  # a name in tune.config.searchers.SEARCHER_NAMES
    scheduler: str = "asha"  # a name in tune.config.searchers.SCHEDULER_NAMES
    metric: str = "val_acc"  # reported metric the searcher and scheduler optimize
    mode: str = "max"  # max | min
    max_concurrent: int = 0  # trials at once; 0: as many as resources allow
    max_failures: int = 1  # retries of an errored trial (Ray's FailureConfig)
    time_budget_s: float | None = None  # seconds; stop the whole search after this; None: no limit
    seed: int = 0  # seeds every searcher (random, grid, optuna): a rerun proposes the same trials
    stop: StopRule | None = None  # end the search at a target or a plateau; None: never early
    # earlier searches (names) whose finished trials seed this one (tune.warm_start)
    warm_start: list[str] = field(default_factory=list)


@dataclass
class Resources:
    """What one trial reserves; fractions pack several trials onto one GPU."""

    cpus_per_trial: float = 1  # CPU cores, > 0
    gpus_per_trial: float = 0  # GPUs, >= 0; 0.25 packs 4 trials a GPU
    # CPUs of a private local Ray (no --address); None: the CPUs this process may use
    # (affinity, cgroup quota). Two searches on one machine: split them, or share one Ray.
    local_cpus: int | None = None


@dataclass
class MlflowSettings:
    """Where the search is logged."""

    # http(s)://, sqlite:///, file:, or a plain path. None: $MLFLOW_TRACKING_URI, else
    # sqlite:///mlruns.db in the current directory (tune.paths.choose_tracking_uri).
    tracking_uri: str | None = None
    experiment: str = "cnn-tune"  # MLflow experiment name
    registered_model: str | None = None  # Model Registry name for the best model; None: not
    # seconds the end of a search keeps sending what an outage queued before it reports them
    # unsent (they then wait for `cnn-tune resume`)
    final_flush_s: float = 60.0


NOTIFY_EVENTS = ("finished", "failed", "interrupted")  # exit 0; exit 1 or 3; exit 130


@dataclass
class NotifySettings:
    """Who hears how a search ended: one HTTP POST of the summary (Slack/Mattermost shape)."""

    webhook: str | None = None  # http(s) URL, a credential: redacted wherever it is shown
    on: list[str] = field(default_factory=lambda: list(NOTIFY_EVENTS))  # which ends to send


SECTIONS: dict[str, type] = {
    "search": SearchSettings,
    "resources": Resources,
    "mlflow": MlflowSettings,
    "notify": NotifySettings,
}


@dataclass
class SearchConfig:
    """A whole search: what to train, what to vary, how to search, where to log and store.

    Paths are absolute once parsed: Ray runs trials in other working directories.
    """

    name: str  # experiment name: storage folder and MLflow parent run name
    dataset: str  # a name in trainables.registry.DATASETS
    space: dict[str, Domain]  # trial-config keys to vary
    data_root: str | None = None  # raw dataset folder, where the dataset needs one
    epochs: int = 4  # max epochs per trial (the scheduler's max_t)
    trial: dict[str, Any] = field(default_factory=dict)  # other trial-config keys, fixed
    search: SearchSettings = field(default_factory=SearchSettings)
    resources: Resources = field(default_factory=Resources)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    storage_path: str = "./ray_results"  # Ray results (local path or URI such as s3://bucket/x)
    cache_dir: str | None = None  # decoded-dataset cache; None: a per-user folder on each node

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-dumpable, resolved values; `space` in its YAML form.

        `parse_search_config(cfg.to_dict())` gives back an equal config.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "space":
                value = {key: domain_to_yaml(domain) for key, domain in value.items()}
            elif f.name == "trial":
                value = dict(value)
            elif f.name in SECTIONS:
                value = {s.name: _plain(getattr(value, s.name)) for s in fields(value)}
                if f.name == "notify":
                    value["on"] = list(value["on"])
            out[f.name] = value
        return out

    def searched_keys(self) -> list[str]:
        """The trial keys this search varies (its `space`), sorted."""
        return sorted(self.space)

    def trial_count(self) -> int:
        """How many trials the search runs (grid: every combination, `num_samples` times)."""
        if self.search.algorithm != "grid":
            return self.search.num_samples
        combinations = math.prod(
            len(d.values) for d in self.space.values() if isinstance(d, Choice)
        )
        return combinations * self.search.num_samples

    def fixed_trial_config(self) -> dict[str, Any]:
        """The trial-config values every trial shares: `trial` plus the top-level trial keys."""
        return {
            **self.trial,
            "dataset": self.dataset,
            "data_root": self.data_root,
            "cache_dir": self.cache_dir,
            "epochs": self.epochs,
        }


def _plain(value: Any) -> Any:
    """A settings value as YAML can dump it (a nested rule as a mapping)."""
    return asdict(value) if is_dataclass(value) else value


def dump_search_config(cfg: SearchConfig, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML (loadable by `tune.config.parse.load_search_config`).

    It holds the tracking URI, which may carry a password: the file is created owner-only
    (like .netrc), never readable by others even for a moment, and replaced atomically.
    """
    from trainables.files import atomic_write

    with atomic_write(path, mode=0o600) as fh:
        yaml.safe_dump(cfg.to_dict(), fh, sort_keys=False)
