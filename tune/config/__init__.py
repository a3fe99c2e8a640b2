"""The search config: typed dataclasses, YAML and `--set` parsing, validation, the space.

`schema` holds the dataclasses, `space` the range types, `parse` and `validation` turn a file or a
mapping into a checked `SearchConfig`, `trial_keys` checks the trial keys through `TrialConfig`.
May import `trainables.config`, `tune.errors`, `tune.paths` and `tune.fit.algorithms` (the searcher
and scheduler names); never Ray at import time, never MLflow.
"""

from tune.config.schema import SearchConfig

__all__ = ["SearchConfig"]
