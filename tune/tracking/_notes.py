"""The runs' descriptions (`mlflow.note.content`), in Markdown: what a search was and what it found.

The parent's note answers an analyst's first questions on the run's page: what was searched and
how, how the trials ended, the top trials, the best config and the command that trains it
again. Each child's note says its config, how it ended and its rank. `tune.tracking.html_report`
shows the same note in the HTML report.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from tune.config.schema import SearchConfig
from tune.config.space import domain_to_yaml
from tune.metrics import best_first, is_finite_number
from tune.outcomes import OUTCOMES
from tune.summary import Summary, format_value

TOP = 5  # rows of the parent note's table
# `cnn-tune train` flags that the reproduce command always states (train's defaults differ).
ALWAYS_STATED = ("dataset", "activation", "augment", "batch_size", "lr", "epochs", "seed")
ENDINGS = {
    "completed": "ran every epoch",
    "scheduler": "stopped early by the scheduler",
    "budget": "cut when the search's time budget ran out",
    "target": "cut when another trial reached the search's target",
    "plateau": "cut when the search stopped improving",
    "interrupted": "interrupted (the search was stopped from outside; resumable)",
    "diverged": "diverged (NaN or infinite loss)",
    "error": "raised an error",
}


def _cell(value: Any) -> str:
    return format_value(value).replace("|", "\\|")


def yaml_value(value: Any) -> str:
    """A value as `--set KEY=VALUE` reads it back (YAML): plain where that round-trips, else
    JSON (which is YAML)."""
    import yaml

    if isinstance(value, str) and yaml.safe_load(value) == value and "\n" not in value:
        return value
    return json.dumps(value)


def reproduce_command(config: dict[str, Any]) -> str:
    """The `cnn-tune train` command that trains this trial config again, without Ray.

    Every key differing from `TrialConfig`'s default is stated, and the headline keys always
    (`train`'s own flags have defaults of their own).
    """
    from trainables.config import TrialConfig

    resolved = TrialConfig.from_dict(config).to_dict()
    defaults = TrialConfig().to_dict()
    words = ["cnn-tune", "train"]
    for key, value in sorted(resolved.items()):
        if key in ALWAYS_STATED or value != defaults.get(key):
            words += ["--set", f"{key}={yaml_value(value)}"]
    return shlex.join(words)


def describe_search(cfg: SearchConfig) -> list[str]:
    """What was searched and how: Markdown table rows (space, algorithm, scheduler, budget)."""
    space = "; ".join(
        f"`{key}`: {json.dumps(domain_to_yaml(cfg.space[key]))}" for key in cfg.searched_keys()
    )
    s = cfg.search
    budget = f"{s.time_budget_s:g} s" if s.time_budget_s else "none"
    return [
        "| | |",
        "|---|---|",
        f"| dataset | `{cfg.dataset}` |",
        f"| space | {space or '(nothing varied)'} |",
        f"| algorithm | `{s.algorithm}`, seed {s.seed}, {cfg.trial_count()} trials |",
        f"| scheduler | `{s.scheduler}`, up to {cfg.epochs} epochs a trial |",
        f"| metric | `{s.metric}` ({s.mode}) |",
        f"| time budget | {budget} |",
    ]


def running_note(cfg: SearchConfig) -> str:
    """The parent's note while the search runs; replaced by `search_note` at its end."""
    return "\n".join(
        [f"**Search `{cfg.name}`**: running.", "", *describe_search(cfg), ""]
        + ["The outcome, the top trials and the best config appear here when it ends."]
    )


def top_trials(summary: Summary, n: int = TOP) -> list[dict[str, Any]]:
    """The `n` best rows by the search's metric (rows without it left out)."""
    rows = [r for r in summary.trials if is_finite_number(r.get(summary.metric))]
    return best_first(rows, summary.mode, key=lambda r: r[summary.metric])[:n]


def ranks(summary: Summary) -> dict[str, int]:
    """Trial id -> rank by the metric (1 is best), for every trial that reported it."""
    return {r["trial_id"]: i + 1 for i, r in enumerate(top_trials(summary, len(summary.trials)))}


def search_note(
    cfg: SearchConfig, summary: Summary, importance: dict[str, float] | None, pareto: list[str]
) -> str:
    """The parent's note at the end: the search, its outcome, the top trials, the best config,
    the command that reproduces the best trial, and what mattered."""
    metric, keys = summary.metric, summary.searched_keys
    counts = ", ".join(
        f"{summary.counts[k]} {k.replace('_', ' ')}" for k in OUTCOMES if summary.counts.get(k)
    )
    ended = f"stopped by its {summary.stopped_by}" if summary.stopped_by else "ended"
    if summary.interrupted:
        ended = "interrupted (resume it with `cnn-tune resume`)"
    lines = [
        f"**Search `{summary.name}`** {ended}: {len(summary.trials)} trials ({counts}) "
        f"in {summary.wall_seconds:.0f} s.",
        "",
        *describe_search(cfg),
        "",
        f"**Top {min(TOP, len(summary.trials))} by `{metric}`**",
        "",
        "| rank | trial | " + " | ".join(keys) + f" | outcome | epochs | {metric} | test_acc |",
        "|---" * (len(keys) + 6) + "|",
    ]
    for rank, row in enumerate(top_trials(summary), 1):
        cells = [rank, row["trial_id"], *(row["config"].get(k) for k in keys)]
        cells += [row["outcome"], row["epochs"], row.get(metric), row.get("test_acc")]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    best = summary.best
    if best is not None:
        chosen = ", ".join(f"`{k}={format_value(best['config'].get(k))}`" for k in keys)
        lines += [
            "",
            f"**Best**: trial `{best['trial_id']}`, `{metric}` {format_value(best[metric])}, "
            f"test_acc {format_value(best.get('test_acc'))}: {chosen}. Train it again without Ray:",
            "",
            "```",
            reproduce_command(best["config"]),
            "```",
        ]
    else:
        lines += ["", "**Best**: none (no trial finished or stopped early)."]
    lines.append("")
    if summary.interrupted:
        lines.append("**What mattered**: estimated when the search ends.")
    elif importance:
        shares = ", ".join(f"`{k}` {v:.2f}" for k, v in importance.items())
        lines.append(f"**What mattered** (fANOVA share of `{metric}`'s variance): {shares}.")
    else:
        lines.append(f"**What mattered**: not estimated; fewer than 6 trials reported `{metric}`.")
    if pareto:
        lines.append(
            f"**Cost**: Pareto-optimal on `{metric}` against training time: "
            + ", ".join(f"`{t}`" for t in pareto)
            + " (tag `cnn_tune.pareto=true`; `plots/accuracy_vs_cost.png`)."
        )
    return "\n".join(lines)


def trial_note(summary: Summary, row: dict[str, Any], rank: int | None, reason: str | None) -> str:
    """A child's note: its config, how it ended, its rank."""
    chosen = ", ".join(f"`{k}={format_value(row['config'].get(k))}`" for k in summary.searched_keys)
    ending = ENDINGS.get(reason or "", row["outcome"].replace("_", " "))
    placed = (
        f"rank {rank} of {len(summary.trials)} by `{summary.metric}` "
        f"({format_value(row.get(summary.metric))})"
        if rank is not None
        else f"unranked: no `{summary.metric}`"
    )
    return (
        f"Trial `{row['trial_id']}` of search `{summary.name}`: {chosen}. "
        f"It {ending} (last epoch {row['epochs']}); {placed}."
    )
