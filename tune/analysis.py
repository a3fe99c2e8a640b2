"""What a search's trials say: which hyperparameter mattered, and what the metric cost.

Plain data in (summary rows: `config`, the metric, `train_seconds`), plain data out, so both are
tested without MLflow or Ray. Importance is Optuna's fANOVA on a study rebuilt from the trials
(Optuna is already the TPE searcher's dependency; fANOVA's forest is scikit-learn's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tune.config.space import Choice, Domain, LogUniform, Uniform
from tune.metrics import is_finite_number

MIN_TRIALS_FOR_IMPORTANCE = 6  # fewer trials than this give a forest nothing to split on
IMPORTANCE_SEED = 0  # fANOVA's random forest: the same trials give the same importances


def to_distribution(domain: Domain) -> Any:
    """The Optuna distribution of a searched key's domain (None for a fixed one)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(domain, Choice) and len(domain.values) > 1:
        return CategoricalDistribution(list(domain.values))
    if isinstance(domain, LogUniform):
        return FloatDistribution(domain.low, domain.high, log=True)
    if isinstance(domain, Uniform):
        return FloatDistribution(domain.low, domain.high)
    return None


def param_importance(
    rows: Sequence[dict[str, Any]], space: dict[str, Domain], metric: str, mode: str
) -> dict[str, float] | None:
    """Each searched key's share of the metric's variance (fANOVA), largest first.

    Args:
        rows: one per trial, with `config` (searched values) and the metric's last reported
            value; trials without a finite value (diverged, failed) are left out.
        space: the search's domains; fixed keys are left out.

    Returns:
        key -> importance (summing to 1), or None when fewer than `MIN_TRIALS_FOR_IMPORTANCE`
        trials reported the metric or nothing was searched.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import create_trial

    distributions = {k: d for k, d in ((k, to_distribution(v)) for k, v in space.items()) if d}
    usable = [r for r in rows if is_finite_number(r.get(metric))]
    if len(usable) < MIN_TRIALS_FOR_IMPORTANCE or not distributions:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for row in usable:
        params = {k: row["config"][k] for k in distributions if k in row["config"]}
        if len(params) == len(distributions):
            study.add_trial(
                create_trial(params=params, distributions=distributions, value=row[metric])
            )
    if len(study.trials) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    evaluator = FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
    return dict(get_param_importances(study, evaluator=evaluator, normalize=True))


def pareto_front(
    points: Sequence[tuple[str, float, float]], mode: str
) -> list[tuple[str, float, float]]:
    """The trials no other beats on both cost and metric, cheapest first.

    Args:
        points: (trial id, cost in seconds, metric value); lower cost is better, and the
            metric is better per `mode`.
    """
    sign = 1.0 if mode == "max" else -1.0
    front: list[tuple[str, float, float]] = []
    best = -math.inf
    # Cheapest first (ties: best metric first); a point is on the front when it beats every
    # cheaper point's metric.
    for trial_id, cost, value in sorted(points, key=lambda p: (p[1], -sign * p[2])):
        if sign * value > best:
            front.append((trial_id, cost, value))
            best = sign * value
    return front
