"""The search config: typed dataclasses, YAML and `--set` parsing, validation, the space.

`schema` holds the dataclasses, `space` the range types, `searchers` the searcher and scheduler
names with what each can run, `reading` the bounded file and YAML reader, `parse` and
`validation` turn a file or a mapping into a checked `SearchConfig`, `trial_keys` checks the
trial keys through `TrialConfig`. May import `trainables`, `tune.errors` and `tune.paths`; never
`tune.fit` (the Ray side), never Ray at import time, never MLflow.
"""

from tune.config.schema import SearchConfig

__all__ = ["SearchConfig"]
