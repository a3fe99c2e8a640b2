"""What a search amounts to: its trials' outcomes, the best trial, the exit code, the table.

Built from plain per-trial records (not Ray objects) so it can be tested without Ray and
rebuilt from a saved experiment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tune.errors import ExitCode
from tune.metrics import better, is_finite_number
from tune.outcomes import (
    CUT,
    FAILED,
    FINISHED,
    OUTCOMES,
    PLATEAU,
    STOPPED_EARLY,
    TARGET,
    TrialRecord,
    outcome,
)


def classify(record: TrialRecord, epochs: int) -> str:
    """The outcome of one trial (`tune.outcomes`)."""
    return outcome(record.metrics, epochs, record.error, record.reason)


@dataclass
class Summary:
    """The result of a search, as printed on stderr and written as JSON on stdout."""

    name: str
    metric: str
    mode: str
    searched_keys: list[str]
    wall_seconds: float
    storage_path: str
    experiment_path: str
    trials: list[dict[str, Any]] = field(default_factory=list)  # one row per trial
    best: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    mlflow: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C / SIGTERM stopped it; it can be resumed
    # a search-level stop (budget, target, plateau); None: it ran out of trials
    stopped_by: str | None = None

    @property
    def exit_code(self) -> int:
        """0: done; 1: trials failed beyond max_failures, or none finished or stopped early;
        130: interrupted (resume it)."""
        if self.interrupted:
            return ExitCode.INTERRUPTED
        usable = self.counts.get(FINISHED, 0) + self.counts.get(STOPPED_EARLY, 0)
        if self.stopped_by in (TARGET, PLATEAU):
            # Good enough: the trial that reached the target may be among those it cut.
            usable += self.counts.get(CUT, 0)
        if self.counts.get(FAILED, 0) > 0 or usable == 0:
            return ExitCode.TRIALS_FAILED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "best": self.best,
            # total: the trials that started (a stopped search may not have proposed them all)
            "trials": {"total": len(self.trials), **{k: self.counts.get(k, 0) for k in OUTCOMES}},
            "stopped_by": self.stopped_by,
            "wall_seconds": round(self.wall_seconds, 2),
            # the driver process's own peak (Ray's workers and raylet are other processes)
            "driver_peak_rss_mib": round(peak_rss_mib(), 1),
            "storage_path": self.storage_path,
            "experiment_path": self.experiment_path,
            "mlflow": self.mlflow,
            "interrupted": self.interrupted,
            "exit_code": int(self.exit_code),
            "trial_results": self.trials,
        }


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summarize(
    records: list[TrialRecord],
    *,
    name: str,
    epochs: int,
    metric: str,
    mode: str,
    searched_keys: list[str],
    wall_seconds: float,
    storage_path: str,
    experiment_path: str,
    mlflow: dict[str, Any] | None = None,
    interrupted: bool = False,
    stopped_by: str | None = None,
) -> Summary:
    """Classify every trial and pick the best by `metric` at its last reported epoch.

    Only trials that neither diverged nor failed can be best; `test_acc` is reported, never
    used to choose.
    """
    summary = Summary(
        name=name,
        metric=metric,
        mode=mode,
        searched_keys=searched_keys,
        wall_seconds=wall_seconds,
        storage_path=storage_path,
        experiment_path=experiment_path,
        mlflow=mlflow or {"tracking_uri": None, "experiment_id": None, "parent_run_id": None},
        interrupted=interrupted,
        stopped_by=stopped_by,
    )
    summary.counts = {k: 0 for k in OUTCOMES}
    best_record, best_value = None, None
    for record in sorted(records, key=lambda r: r.trial_id):
        ended = classify(record, epochs)
        summary.counts[ended] += 1
        m = record.metrics
        summary.trials.append(
            {
                "trial_id": record.trial_id,
                "outcome": ended,
                "config": {k: record.config.get(k) for k in searched_keys},
                "epochs": m.get("epoch", 0),
                "val_acc": m.get("val_acc"),
                "val_loss": m.get("val_loss"),
                "test_acc": m.get("test_acc"),
                "error": record.error,
            }
        )
        value = m.get(metric)
        if ended in (FINISHED, STOPPED_EARLY, CUT) and is_finite_number(value):
            if best_value is None or better(mode, value, best_value):
                best_record, best_value = record, value
    if best_record is not None:
        summary.best = {
            "trial_id": best_record.trial_id,
            "config": best_record.config,
            metric: best_value,
            "val_acc": best_record.metrics.get("val_acc"),
            "test_acc": best_record.metrics.get("test_acc"),
            "epochs": best_record.metrics.get("epoch"),
        }
    return summary


def format_table(summary: Summary) -> str:
    """The end-of-search table for stderr: one row per trial, then the best and the counts."""
    keys = summary.searched_keys
    header = ["trial", *keys, "outcome", "ep", "val_acc", "test_acc"]
    rows = []
    for t in summary.trials:
        rows.append(
            [
                t["trial_id"],
                *(format_value(t["config"].get(k)) for k in keys),
                t["outcome"],
                str(t["epochs"]),
                format_value(t["val_acc"]),
                format_value(t["test_acc"]),
            ]
        )
    lines = align_columns(header, rows)
    counts = ", ".join(f"{summary.counts.get(k, 0)} {k.replace('_', ' ')}" for k in OUTCOMES)
    lines.append("")
    lines.append(
        f"search {summary.name!r}: {len(summary.trials)} trials ({counts}) "
        f"in {summary.wall_seconds:.0f}s"
        + (f", stopped by the {summary.stopped_by}" if summary.stopped_by else "")
    )
    if summary.best:
        best = summary.best
        chosen = ", ".join(f"{k}={format_value(best['config'].get(k))}" for k in keys)
        lines.append(
            f"best {best['trial_id']}: {summary.metric}={format_value(best[summary.metric])} "
            f"test_acc={format_value(best.get('test_acc'))}  ({chosen})"
        )
    else:
        lines.append("best: none (no trial finished or stopped early)")
    lines.append(f"results: {summary.experiment_path}")
    for failed in (t for t in summary.trials if t["outcome"] == FAILED):
        lines.append(f"failed {failed['trial_id']}: {failed['error']}")
    return "\n".join(lines)


def align_columns(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A plain-text table for stderr: one line per row, each column as wide as its widest cell."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]


def format_value(value: Any) -> str:
    """A cell of a table: 4 decimals in the usual range, else scientific; None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
    return str(value)


__all__ = [
    "TrialRecord",
    "Summary",
    "summarize",
    "classify",
    "format_table",
    "format_value",
    "align_columns",
    "OUTCOMES",
]
