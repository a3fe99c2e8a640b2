"""`search.warm_start`: earlier searches' trials seed a new search, so it does not repeat them.

The earlier trials come from their experiment folders (a local storage path: each trial's
`params.json` and the last line of its `result.json`) or, where the folder is gone, from their
MLflow runs. Only trials whose search had the same dataset, epochs and metric count, and only
those that reported a finite metric and neither diverged nor failed (from MLflow: those whose
stop reason is a normal end). Then:
- optuna: they are `points_to_evaluate` with `evaluated_rewards` (TPE starts from them); those
  outside the new space, or from a search over other keys, are skipped and counted;
- random and grid: no config already evaluated is proposed again. The project draws (random)
  or expands (grid) the new trials itself and hands them to Ray as `points_to_evaluate`.

Which of the two a search gets is decided once, here (`seeds_the_searcher`); the rest of the
code reads `WarmStart.new`: a list of exactly the trials to run, or None when the searcher
proposes its own.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tune.config.reading import read_config_mapping
from tune.config.schema import SearchConfig
from tune.config.space import Choice, Domain, LogUniform, Uniform
from tune.errors import BadInput
from tune.logs import get_logger
from tune.metrics import is_finite_number
from tune.outcomes import RUN_STATUS_OF_REASON
from tune.paths import CONFIG_FILE, experiment_path, is_remote, locate_experiment, sqlite_file

log = get_logger("search")

REDRAWS = 1000  # draws per new random trial before the space counts as exhausted
OTHER_SETUP = "other dataset, epochs or metric"
OTHER_KEYS = "other searched keys"
OUTSIDE = "outside the space"


@dataclass
class Earlier:
    """One usable earlier trial: its searched values and its metric's last value."""

    config: dict[str, Any]
    value: float


@dataclass
class WarmStart:
    """What the earlier searches give the new one."""

    sources: list[str]
    evaluated: list[Earlier] = field(default_factory=list)  # same dataset, epochs, metric
    points: list[Earlier] = field(default_factory=list)  # of those: same keys, inside the space
    skipped: Counter = field(default_factory=Counter)  # why earlier trials were not used
    # random, grid: exactly the trials the new search runs; None: the searcher (optuna),
    # seeded with `points`, proposes its own
    new: list[dict[str, Any]] | None = None

    def trial_count(self, planned: int) -> int:
        """The trials the search runs: its new points, else the `planned` count of its config."""
        return len(self.new) if self.new is not None else planned

    def describe(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items()) or "none"
        return (
            f"warm start from {', '.join(self.sources)}: {len(self.evaluated)} earlier trials "
            f"used, skipped: {skipped}"
        )


def seeds_the_searcher(algorithm: str) -> bool:
    """Whether a warm start seeds the searcher with the earlier trials (optuna: TPE learns from
    them) instead of fixing the new trials itself (random, grid: `new_points`)."""
    return algorithm == "optuna"


def plan_warm_start(cfg: SearchConfig, restore: bool = False) -> WarmStart | None:
    """The earlier trials of `search.warm_start` and, unless they seed the searcher, the new
    trials (none evaluated before); None without a warm start.

    `restore`: a resumed search keeps its searcher's own state, so an earlier search that is
    gone only warns (the plan is then None).

    Raises:
        BadInput (exit 2): an earlier search that does not exist, or a space left with no
            config that was not evaluated.
    """
    try:
        warm = load_warm_start(cfg)
        if warm is not None and not seeds_the_searcher(cfg.search.algorithm):
            warm.new = new_points(cfg, warm)
            if not warm.new:
                raise BadInput(
                    f"search.warm_start: every config of the space was evaluated by "
                    f"{', '.join(warm.sources)}; nothing is left to search"
                )
    except BadInput as exc:
        if not restore:
            raise
        log.warning(f"{exc}; resuming without it")
        return None
    return warm


def in_domain(value: Any, domain: Domain) -> bool:
    if isinstance(domain, Choice):
        return value in domain.values
    if isinstance(domain, (LogUniform, Uniform)):
        return is_finite_number(value) and domain.low <= value <= domain.high
    return value == getattr(domain, "value", None)


def load_warm_start(cfg: SearchConfig) -> WarmStart | None:
    """The earlier trials of `search.warm_start` (None when it names none).

    Raises:
        BadInput (exit 2): a name found neither in storage nor in MLflow.
    """
    names = cfg.search.warm_start
    if not names:
        return None
    warm = WarmStart(sources=list(names))
    keys = cfg.searched_keys()
    for name in names:
        setup, trials = _from_folder(cfg, name) or _from_mlflow(cfg, name)
        same = (setup["dataset"], int(setup["epochs"]), setup["metric"]) == (
            cfg.dataset, cfg.epochs, cfg.search.metric,
        )  # fmt: skip
        for config, value in trials:
            if not same:
                warm.skipped[OTHER_SETUP] += 1
                continue
            earlier = Earlier({k: config.get(k) for k in keys}, value)
            warm.evaluated.append(earlier)
            if sorted(setup["searched_keys"]) != keys:
                warm.skipped[OTHER_KEYS] += 1
            elif not all(in_domain(config.get(k), cfg.space[k]) for k in keys):
                warm.skipped[OUTSIDE] += 1
            else:
                warm.points.append(earlier)
    if not warm.evaluated:
        log.warning(f"{warm.describe()}: no earlier trial is usable; the search starts cold")
    else:
        log.info(warm.describe())
    return warm


def _from_folder(cfg: SearchConfig, name: str) -> tuple[dict, list] | None:
    """(setup, [(config, value)]) from a local experiment folder; None when it is not here."""
    # A symlink that leads out of the storage path is exit 2 here, as for every other command.
    state = locate_experiment(cfg.storage_path, name, "search.warm_start")
    saved = os.path.join(state, CONFIG_FILE)
    folder = experiment_path(cfg.storage_path, name)
    if is_remote(cfg.storage_path) or not os.path.exists(saved) or not os.path.isdir(folder):
        return None
    data = read_config_mapping(saved)
    search = data.get("search") or {}
    setup = {
        "dataset": data.get("dataset"),
        "epochs": data.get("epochs", 0),
        "metric": search.get("metric", "val_acc"),
        "searched_keys": list(data.get("space") or {}),
    }
    trials = []
    for entry in sorted(os.listdir(folder)):
        params = os.path.join(folder, entry, "params.json")
        results = os.path.join(folder, entry, "result.json")
        errored = os.path.exists(os.path.join(folder, entry, "error.txt"))  # Ray writes it
        if errored or not (os.path.exists(params) and os.path.exists(results)):
            continue
        with open(params) as f:
            config = json.load(f)
        with open(results) as f:
            lines = [line for line in f if line.strip()]
        last = json.loads(lines[-1]) if lines else {}
        value = last.get(setup["metric"])
        if not last.get("diverged") and is_finite_number(value):
            trials.append((config, float(value)))
    return setup, trials


def _from_mlflow(cfg: SearchConfig, name: str) -> tuple[dict, list]:
    """(setup, [(config, value)]) from the search's MLflow runs."""
    from tune.tracking import ReportError, param_value, read_search

    uri = cfg.mlflow.tracking_uri
    missing = BadInput(
        f"search.warm_start: no search {name!r} under {cfg.storage_path} or in MLflow "
        f"experiment {cfg.mlflow.experiment!r}"
    )
    db = sqlite_file(uri)
    if db is not None and not os.path.exists(db):
        raise missing  # no store yet: nothing to find, and checking must not create one
    try:
        _, parent, children = read_search(uri, cfg.mlflow.experiment, name)
    except ReportError:
        raise missing from None
    tags = parent.data.tags
    setup = {
        "dataset": tags.get("cnn_tune.dataset"),
        "epochs": tags.get("cnn_tune.epochs", 0),
        "metric": tags.get("cnn_tune.metric", "val_acc"),
        "searched_keys": [k for k in tags.get("cnn_tune.searched_keys", "").split(",") if k],
    }
    trials = []
    for run in children:
        reason = run.data.tags.get("cnn_tune.stop_reason")
        value = run.data.metrics.get(setup["metric"])
        if RUN_STATUS_OF_REASON.get(reason or "") == "FINISHED" and is_finite_number(value):
            trials.append(({k: param_value(v) for k, v in run.data.params.items()}, float(value)))
    return setup, trials


def _key(config: dict[str, Any], keys: list[str]) -> str:
    return json.dumps([config.get(k) for k in keys], default=str)


def new_points(cfg: SearchConfig, warm: WarmStart) -> list[dict[str, Any]]:
    """random and grid: the new search's trials, none of them a config already evaluated.

    grid: every combination `num_samples` times, less one repeat per earlier trial of it.
    random: `num_samples` draws (seeded by `search.seed`), redrawn when they repeat an earlier
    config; fewer when the space has no new config left (a warning says so).
    """
    keys = cfg.searched_keys()
    done = Counter(_key(e.config, keys) for e in warm.evaluated)
    if cfg.search.algorithm == "grid":
        combos = itertools.product(*(cfg.space[k].values for k in keys))
        points = []
        for values in combos:
            point = dict(zip(keys, values))
            repeats = cfg.search.num_samples - done.get(_key(point, keys), 0)
            points += [point] * max(0, repeats)
        return points
    rng = random.Random(cfg.search.seed)
    points, seen = [], set(done)
    for _ in range(cfg.search.num_samples):
        for _ in range(REDRAWS):
            point = {k: _draw(cfg.space[k], rng) for k in keys}
            if _key(point, keys) not in seen:
                break
        else:
            log.warning(
                f"warm start: the space has no config left that was not evaluated; "
                f"{len(points)} new trials instead of {cfg.search.num_samples}"
            )
            break
        seen.add(_key(point, keys))
        points.append(point)
    return points


def _draw(domain: Domain, rng: random.Random) -> Any:
    if isinstance(domain, Choice):
        return rng.choice(domain.values)
    if isinstance(domain, LogUniform):
        return math.exp(rng.uniform(math.log(domain.low), math.log(domain.high)))
    if isinstance(domain, Uniform):
        return rng.uniform(domain.low, domain.high)
    return domain.value
