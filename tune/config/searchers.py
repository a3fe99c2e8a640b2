"""The searchers and schedulers a config may name, and what each can run with which.

Names and rules only: `tune.fit.algorithms` maps each name to Ray's builder (a test checks both
name the same set), so validation reads them without importing Ray or the Ray side. Adding a
searcher or scheduler is its name here (plus a rule below if it cannot run everything) and its
builder there.
"""

from __future__ import annotations

SEARCHER_NAMES: tuple[str, ...] = ("random", "grid", "optuna")
SCHEDULER_NAMES: tuple[str, ...] = ("fifo", "asha", "pbt")

# Searchers that only enumerate values: Ray's grid_search has no form for a continuous range.
DISCRETE_ONLY_SEARCHERS: frozenset[str] = frozenset({"grid"})

# Scheduler -> trial keys it mutates during training; each must be searchable in `space`.
MUTATED_KEYS: dict[str, tuple[str, ...]] = {"pbt": ("lr",)}

# (algorithm, scheduler) pairs that cannot run together, and why.
INCOMPATIBLE: dict[tuple[str, str], str] = {
    ("optuna", "pbt"): (
        "PBT rewrites trial configs mid-run, which Optuna's TPE model never sees, so its "
        "suggestions would learn from configs that did not run"
    ),
}
