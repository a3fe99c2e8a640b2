"""Reading a search config: a YAML file or a mapping, plus `--set` overrides, then validation.

Errors are one line that names the file or key path, the bad value and what is allowed, e.g.
``space.lr.loguniform: inverted range [0.01, 0.0001]; allowed: low < high``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tune.config.reading import load_yaml, read_config_mapping
from tune.config.schema import SearchConfig
from tune.config.validation import validate_search_config
from tune.errors import SearchConfigError, describe_kind


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
        SearchConfigError: naming the file (missing, not a bounded UTF-8 regular file,
            malformed YAML and its line, a repeated key) or the key path.
    """
    data = read_config_mapping(os.fspath(path))
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
        raise SearchConfigError(
            "<config>", f"{describe_kind(data)} is not a mapping; allowed: a mapping"
        )
    data = _apply_overrides(data, parse_overrides(overrides))
    return validate_search_config(data, os.getcwd() if cwd is None else cwd)


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
        value = load_yaml(raw, f"--set {item}") if raw.strip() else None
        parsed.append((parts, value))
    return parsed


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
                    f"cannot set inside {where}, which holds {describe_kind(child)} {child!r}, "
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
