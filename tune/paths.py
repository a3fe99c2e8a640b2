"""Where an experiment lives: its folder under storage_path, local or remote."""

from __future__ import annotations

from tune.config import SearchConfig


def is_remote(path: str) -> bool:
    return "://" in path


def experiment_path(cfg: SearchConfig) -> str:
    """Where Ray keeps this search's state: `<storage_path>/<name>`."""
    return f"{cfg.storage_path.rstrip('/')}/{cfg.name}"
