"""Validation: a plain mapping checked key by key into a `SearchConfig`, paths made absolute.

Everything a search needs is checked before Ray starts: unknown keys, bad values, every value a
trial can draw (`tune.config.trial_keys`, through `TrialConfig`), and combinations Ray cannot run.
Settings values go through one coercion (`_typed`) and one choice check (`_check_choice`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from trainables.config import SEED_LIMIT
from trainables.files import path_problem, shorten
from tune.config.schema import (
    METRICS,
    MODES,
    NOTIFY_EVENTS,
    TOP_LEVEL_TRIAL_KEYS,
    MlflowSettings,
    NotifySettings,
    Plateau,
    Resources,
    SearchConfig,
    SearchSettings,
    StopRule,
)
from tune.config.searchers import (
    DISCRETE_ONLY_SEARCHERS,
    INCOMPATIBLE,
    MUTATED_KEYS,
    SCHEDULER_NAMES,
    SEARCHER_NAMES,
)
from tune.config.space import domain_to_yaml, is_range, is_searchable
from tune.config.trial_keys import check_space, check_trial_section, trial_config
from tune.errors import SearchConfigError, describe_kind
from tune.paths import (
    NAME_RULE,
    absolute,
    choose_tracking_uri,
    is_remote,
    is_valid_name,
    redact_webhook,
    resolve_storage_path,
    resolve_tracking_uri,
    sqlite_file,
)


def validate_search_config(data: dict[str, Any], cwd: str) -> SearchConfig:
    """Check a mapping (overrides applied) and build the `SearchConfig`.

    Args:
        data: the mapping, as YAML would load it.
        cwd: the folder relative paths resolve against.

    Raises:
        SearchConfigError: on the first bad key, naming its path, the value and what is allowed.
    """
    return _Validator(cwd).config(data)


class _Validator:
    """Turns a plain mapping into a `SearchConfig`, failing on the first bad key."""

    def __init__(self, cwd: str) -> None:
        self.cwd = absolute(cwd)

    def config(self, data: dict[str, Any]) -> SearchConfig:
        allowed = [f.name for f in fields(SearchConfig)]
        _check_keys("", data, allowed)
        for key in ("name", "dataset", "space"):
            if key not in data:
                raise SearchConfigError(
                    key, "required key is missing; required: name, dataset, space"
                )

        name = _typed("name", data["name"], "str")
        if not is_valid_name(name):
            raise SearchConfigError(
                "name", f"{name!r} is not a safe folder name; allowed: {NAME_RULE}"
            )
        search = self.section("search", data.get("search"), SearchSettings)
        resources = self.section("resources", data.get("resources"), Resources)
        mlflow = self.section("mlflow", data.get("mlflow"), MlflowSettings)
        notify = self.notify(data.get("notify"))
        self.check_search(search)
        self.check_resources(resources)
        mlflow.tracking_uri = resolve_tracking_uri(
            choose_tracking_uri(mlflow.tracking_uri), self.cwd
        )
        db = sqlite_file(mlflow.tracking_uri)
        _check_path(
            "mlflow.tracking_uri", db if db is not None else mlflow.tracking_uri, db is None
        )
        if not (math.isfinite(mlflow.final_flush_s) and mlflow.final_flush_s >= 0):
            raise SearchConfigError(
                "mlflow.final_flush_s",
                f"{mlflow.final_flush_s!r} is not a finite number >= 0; allowed: seconds >= 0",
            )
        if not mlflow.experiment.strip():
            raise SearchConfigError("mlflow.experiment", "'' is empty; allowed: a non-empty name")

        # Top-level trial keys: each checked by TrialConfig alone, so the error names its key.
        top: dict[str, Any] = {}
        for key in TOP_LEVEL_TRIAL_KEYS:
            if key not in data:
                continue
            value = data[key]
            if key in ("data_root", "cache_dir") and isinstance(value, str):
                value = resolve_storage_path(value, self.cwd)  # a URI stays as given
            top[key] = getattr(trial_config(key, {key: value}), key)
        dataset = top["dataset"]
        data_root = top.get("data_root")
        if data_root is None and _needs_root(dataset):
            raise SearchConfigError(
                "data_root",
                f"dataset {dataset!r} needs a data_root (its raw files); got none; allowed: a "
                f"folder path, or a dataset that needs none ({', '.join(_rootless_datasets())})",
            )

        cfg = SearchConfig(
            name=name,
            dataset=dataset,
            space={},
            data_root=data_root,
            epochs=top.get("epochs", SearchConfig.epochs),
            search=search,
            resources=resources,
            mlflow=mlflow,
            notify=notify,
            storage_path=self.storage_path(
                _typed("storage_path", data.get("storage_path", SearchConfig.storage_path), "str")
            ),
            cache_dir=top.get("cache_dir"),
        )
        cfg.trial = check_trial_section(
            data.get("trial"), data.get("space"), cfg.fixed_trial_config()
        )
        cfg.space = check_space(data["space"], cfg.fixed_trial_config())
        self.check_combination(cfg)
        if cfg.name in cfg.search.warm_start:
            raise SearchConfigError(
                "search.warm_start",
                f"{cfg.name!r} is this search itself; allowed: earlier searches",
            )
        return cfg

    # --- sections ---

    def section(self, path: str, data: Any, cls: type) -> Any:
        """Build a flat settings dataclass, checking each value against the field's type."""
        if data is None:  # `search:` with everything below commented out
            data = {}
        if not isinstance(data, dict):
            raise SearchConfigError(
                path, f"{data!r} is {describe_kind(data)}; allowed: a mapping of {_names(cls)}"
            )
        _check_keys(path, data, [f.name for f in fields(cls)])
        values = {}
        for f in fields(cls):
            if f.name == "stop" and cls is SearchSettings:
                values["stop"] = stop_rule(f"{path}.stop", data.get("stop"))
            elif f.name == "warm_start" and cls is SearchSettings:
                values["warm_start"] = warm_start_names(f"{path}.warm_start", data.get(f.name))
            elif f.name in data:
                values[f.name] = _typed(f"{path}.{f.name}", data[f.name], f.type)
        return cls(**values)

    def notify(self, data: Any) -> NotifySettings:
        """`notify`: an http(s) webhook and the ends (`on`) that are sent to it."""
        if data is None:
            return NotifySettings()
        if not isinstance(data, dict):
            raise SearchConfigError(
                "notify", f"{data!r} is {describe_kind(data)}; allowed: a mapping of webhook, on"
            )
        _check_keys("notify", data, ["webhook", "on"])
        settings = NotifySettings()
        if data.get("webhook") is not None:
            url = _typed("notify.webhook", data["webhook"], "str")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SearchConfigError(
                    "notify.webhook",
                    f"{redact_webhook(url)!r} is not an http(s) URL with a host; allowed: "
                    "http://HOST/... or https://HOST/...",
                )
            settings.webhook = url
        if "on" in data:
            on = data["on"]
            if isinstance(on, str):
                on = [on]
            if not isinstance(on, list) or not on:
                allowed = ", ".join(NOTIFY_EVENTS)
                raise SearchConfigError(
                    "notify.on", f"{on!r} is not a list of ends; allowed: {allowed}"
                )
            for event in on:
                _check_choice("notify.on", event, NOTIFY_EVENTS)
            settings.on = list(dict.fromkeys(on))
        return settings

    def check_search(self, s: SearchSettings) -> None:
        _check_min("search.num_samples", s.num_samples, 1)
        _check_choice("search.algorithm", s.algorithm, SEARCHER_NAMES)
        _check_choice("search.scheduler", s.scheduler, SCHEDULER_NAMES)
        _check_choice("search.metric", s.metric, METRICS)
        _check_choice("search.mode", s.mode, MODES)
        # A loss maximized would crown the worst trial: almost surely a forgotten `mode: min`.
        natural = "min" if s.metric.endswith("_loss") else "max"
        if s.mode != natural:
            raise SearchConfigError(
                "search.mode",
                f"{s.mode!r} with metric {s.metric!r} would pick the worst trial; "
                f"allowed: {natural!r} for {s.metric}",
            )
        _check_min("search.max_concurrent", s.max_concurrent, 0)
        _check_min("search.max_failures", s.max_failures, 0)
        if s.time_budget_s is not None and not s.time_budget_s > 0:
            raise SearchConfigError(
                "search.time_budget_s",
                f"{s.time_budget_s!r} is not positive; allowed: seconds > 0, or null for no limit",
            )
        _check_min("search.seed", s.seed, 0)
        # Optuna's sampler (numpy's RandomState) takes seeds below 2**32 only.
        if s.seed >= SEED_LIMIT:
            raise SearchConfigError(
                "search.seed", f"{s.seed!r} is too large; allowed: 0 <= seed < 2**32"
            )

    def check_resources(self, r: Resources) -> None:
        for key in ("cpus_per_trial", "gpus_per_trial"):
            value = getattr(r, key)
            if not math.isfinite(value):
                raise SearchConfigError(
                    f"resources.{key}", f"{value!r} is not a finite number; allowed: a number"
                )
        if r.local_cpus is not None:
            _check_min("resources.local_cpus", r.local_cpus, 1)
        if not r.cpus_per_trial > 0:
            raise SearchConfigError(
                "resources.cpus_per_trial",
                f"{r.cpus_per_trial!r} is not positive; allowed: CPU cores > 0 (fractions allowed)",
            )
        if r.gpus_per_trial < 0:
            raise SearchConfigError(
                "resources.gpus_per_trial",
                f"{r.gpus_per_trial!r} is negative; allowed: 0, a fraction of one GPU, or a "
                "whole number of GPUs",
            )
        # Ray hands out fractions of one GPU only; more than one must be whole GPUs.
        if r.gpus_per_trial > 1 and not float(r.gpus_per_trial).is_integer():
            raise SearchConfigError(
                "resources.gpus_per_trial",
                f"{r.gpus_per_trial!r} is a fraction above 1; allowed: 0, a fraction of one GPU, "
                "or a whole number of GPUs",
            )

    def check_combination(self, cfg: SearchConfig) -> None:
        """Refuse algorithm/scheduler/space combinations Ray cannot run."""
        algorithm, scheduler = cfg.search.algorithm, cfg.search.scheduler
        why = INCOMPATIBLE.get((algorithm, scheduler))
        if why:
            others = [s for s in SCHEDULER_NAMES if (algorithm, s) not in INCOMPATIBLE]
            raise SearchConfigError(
                "search.scheduler",
                f"{scheduler!r} cannot run with search.algorithm {algorithm!r}: {why}; "
                f"allowed with {algorithm}: {', '.join(others)}",
            )
        if algorithm in DISCRETE_ONLY_SEARCHERS:
            for key, domain in cfg.space.items():
                if is_range(domain):
                    raise SearchConfigError(
                        f"space.{key}",
                        f"{domain_to_yaml(domain)!r} is a continuous range, which search."
                        f"algorithm {algorithm!r} cannot enumerate; allowed: a list of values, "
                        "or algorithm random or optuna",
                    )
        for key in MUTATED_KEYS.get(scheduler, ()):
            domain = cfg.space.get(key)
            if not is_searchable(domain):
                got = "missing" if domain is None else repr(domain_to_yaml(domain))
                raise SearchConfigError(
                    f"space.{key}",
                    f"search.scheduler {scheduler!r} mutates {key}, but space.{key} is {got}; "
                    "allowed: a range ({loguniform: [a, b]}) or a list of at least two values",
                )

    def storage_path(self, value: str) -> str:
        if not value:
            raise SearchConfigError("storage_path", "'' is empty; allowed: a folder path or a URI")
        resolved = resolve_storage_path(value, self.cwd)
        _check_path("storage_path", resolved, is_remote(resolved))
        return resolved


def _check_path(key: str, value: str, uri: bool) -> None:
    """A path (or URI) the OS would refuse is exit 2 here, not a ValueError mid-search."""
    problem = path_problem(value, uri=uri)
    if problem:
        raise SearchConfigError(key, f"{shorten(value)!r} {problem}")


def _needs_root(dataset: str) -> bool:
    """Whether a dataset reads raw files from data_root (its registry entry says)."""
    from trainables.registry import DATASETS

    return DATASETS[dataset].needs_root


def _rootless_datasets() -> list[str]:
    from trainables.registry import DATASETS

    return [name for name, spec in DATASETS.items() if not spec.needs_root]


def _check_keys(path: str, data: dict[str, Any], allowed: list[str]) -> None:
    for key in data:
        if key in allowed:
            continue
        if not str(key).strip():  # `{'': 0}`: name the mapping that holds it, not "resources."
            where, problem = path or "top level", f"an empty key {key!r}"
        else:
            where, problem = (f"{path}.{key}" if path else str(key)), f"unknown key {key!r}"
        raise SearchConfigError(where, f"{problem}; allowed: {', '.join(allowed)}")


def _names(cls: type) -> str:
    return ", ".join(f.name for f in fields(cls))


def _typed(path: str, value: Any, annotation: Any) -> Any:
    """Check a settings value against its annotation ('int', 'float | None', 'str')."""
    kind = str(annotation)
    optional = kind.endswith("| None")
    base = kind.split(" |")[0]
    if value is None:
        if optional:
            return None
        raise SearchConfigError(path, f"null is not allowed; allowed: a {base}")
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base == "float" and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value) if isinstance(value, float) else value
        if isinstance(value, str):  # PyYAML reads 1e3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    if base == "str" and isinstance(value, str):
        return value
    article = "an" if base == "int" else "a"
    allowed = f"{article} {base}" + (" or null" if optional else "")
    raise SearchConfigError(path, f"{value!r} is {describe_kind(value)}; allowed: {allowed}")


def warm_start_names(path: str, data: Any) -> list[str]:
    """`search.warm_start`: a list of earlier searches' names (a single name is a list of one).
    Whether each exists is checked before the search starts (`tune.warm_start`)."""
    if data is None:
        return []
    names = [data] if isinstance(data, str) else data
    if not isinstance(names, list):
        raise SearchConfigError(
            path, f"{data!r} is {describe_kind(data)}; allowed: a list of search names"
        )
    for name in names:
        if not isinstance(name, str) or not is_valid_name(name):
            raise SearchConfigError(path, f"{name!r} is not a search name; allowed: {NAME_RULE}")
    return list(dict.fromkeys(names))


STOP_FORM = "target: NUMBER and/or plateau: {patience: N >= 1, tolerance: X >= 0}"


def stop_rule(path: str, data: Any) -> StopRule | None:
    """`search.stop`: null, or a mapping with a target and/or a plateau rule."""
    if data is None:
        return None
    if not isinstance(data, dict) or not data:
        raise SearchConfigError(path, f"{data!r} is {describe_kind(data)}; allowed: {STOP_FORM}")
    _check_keys(path, data, ["target", "plateau"])
    rule = StopRule()
    if data.get("target") is not None:
        rule.target = _typed(f"{path}.target", data["target"], "float")
        if not math.isfinite(rule.target):
            raise SearchConfigError(
                f"{path}.target", f"{rule.target!r} is not finite; allowed: a finite number"
            )
    plateau = data.get("plateau")
    if plateau is not None:
        where = f"{path}.plateau"
        if not isinstance(plateau, dict) or "patience" not in plateau:
            raise SearchConfigError(
                where, f"{plateau!r} is not a mapping with patience; allowed: {STOP_FORM}"
            )
        _check_keys(where, plateau, ["patience", "tolerance"])
        patience = _typed(f"{where}.patience", plateau["patience"], "int")
        _check_min(f"{where}.patience", patience, 1)
        tolerance = _typed(f"{where}.tolerance", plateau.get("tolerance", 0.0), "float")
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise SearchConfigError(
                f"{where}.tolerance", f"{tolerance!r} is negative; allowed: a number >= 0"
            )
        rule.plateau = Plateau(patience, float(tolerance))
    if rule.target is None and rule.plateau is None:
        raise SearchConfigError(path, f"sets no rule; allowed: {STOP_FORM}, or null")
    return rule


def _check_min(path: str, value: int, low: int) -> None:
    if value < low:
        raise SearchConfigError(path, f"{value!r} is below {low}; allowed: an integer >= {low}")


def _check_choice(path: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise SearchConfigError(path, f"unknown value {value!r}; allowed: {', '.join(allowed)}")
