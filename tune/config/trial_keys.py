"""The trial keys of a search config (`trial:` and `space:`), checked through `TrialConfig`.

Each `space:` entry is a list, a choice, a range or a fixed value; every value a trial can draw
is checked.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from trainables.config import ConfigError, TrialConfig
from tune.config.schema import TOP_LEVEL_TRIAL_KEYS, UNSEARCHABLE_KEYS
from tune.config.space import RANGES, SPACE_FORMS, Choice, Domain, Fixed
from tune.errors import SearchConfigError, describe_kind


def check_trial_section(data: Any, space: Any, base: dict[str, Any]) -> dict[str, Any]:
    """Validate `trial:` key by key against TrialConfig; returns the coerced values."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SearchConfigError(
            "trial",
            f"{data!r} is {describe_kind(data)}; allowed: a mapping of trial-config keys",
        )
    space_keys = set(space) if isinstance(space, dict) else set()
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"trial.{key}"
        check_trial_key(path, key)
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
        out[key] = trial_value(path, key, value, base)
    # Keys can clash together (depth vs image_size) though each is fine alone.
    trial_config("trial", {**base, **out})
    return out


def check_space(data: Any, base: dict[str, Any]) -> dict[str, Domain]:
    """Parse each space entry and check every value a trial can get against TrialConfig."""
    if not isinstance(data, dict) or not data:
        raise SearchConfigError(
            "space",
            f"{data!r} is {describe_kind(data) if data != {} else 'empty'}; allowed: a non-empty "
            "mapping of trial-config keys to a list, {loguniform: [a, b]}, {uniform: [a, b]} "
            "or a fixed value",
        )
    out: dict[str, Domain] = {}
    for key, spec in data.items():
        path = f"space.{key}"
        check_trial_key(path, key)
        if key in UNSEARCHABLE_KEYS:
            where = "at top level" if key in TOP_LEVEL_TRIAL_KEYS else "in trial"
            raise SearchConfigError(
                path, f"{spec!r}: {key} cannot be searched; allowed: set it once {where}"
            )
        out[key] = _space_domain(path, key, spec, base)
    return out


def _space_domain(path: str, key: str, spec: Any, base: dict[str, Any]) -> Domain:
    if isinstance(spec, list):
        return _choice(path, key, spec, base)
    if not isinstance(spec, dict):
        return Fixed(trial_value(path, key, spec, base))
    if len(spec) != 1 or next(iter(spec)) not in SPACE_FORMS:
        raise SearchConfigError(
            path,
            f"{spec!r} is not a search form; allowed: a list, {{choice: [...]}}, "
            "{loguniform: [a, b]}, {uniform: [a, b]} or a fixed value",
        )
    form, body = next(iter(spec.items()))
    path = f"{path}.{form}"
    if form == "choice":
        if not isinstance(body, list):
            raise SearchConfigError(
                path, f"{body!r} is {describe_kind(body)}; allowed: a list of values"
            )
        return _choice(path, key, body, base)
    return _range(path, key, form, body, base)


def _choice(path: str, key: str, values: list[Any], base: dict[str, Any]) -> Choice:
    if not values:
        raise SearchConfigError(path, "[] is an empty list; allowed: at least one value")
    return Choice([trial_value(path, key, v, base) for v in values])


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
        trial_value(path, key, end, base)
    return RANGES[form](low, high)


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    return float(value)


def trial_value(path: str, key: str, value: Any, base: dict[str, Any]) -> Any:
    """Validate one value of a trial key against TrialConfig; return it as TrialConfig types it."""
    if isinstance(value, (dict, list)):
        raise SearchConfigError(
            path, f"{value!r} is {describe_kind(value)}; allowed: a single value"
        )
    return getattr(trial_config(path, {**base, key: value}), key)


def trial_config(path: str, values: dict[str, Any]) -> TrialConfig:
    try:
        return TrialConfig.from_dict(values)
    except ConfigError as err:
        raise SearchConfigError(path, str(err)) from None


def _trial_fields() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(TrialConfig)}


def _field_type(key: str) -> str:
    return _trial_fields()[key]


def check_trial_key(path: str, key: Any) -> None:
    allowed = _trial_fields()
    if key not in allowed:
        raise SearchConfigError(
            path, f"unknown trial config key {key!r}; allowed: {', '.join(sorted(allowed))}"
        )
