"""What a hyperparameter search may choose by: every metric the evaluator computes, measured on
the split's validation part (never on the test part).

:func:`validation_report` evaluates a fitted model on the validation part exactly as
:func:`recsys_core.evaluate.evaluate` evaluates the test part (full ranking, training items
excluded), so a run's ``metrics.json`` holds ``validation`` figures under the same names as
its test ``aggregate``: ``ndcg@10``, ``recall@20``, ``coverage@10``, ``gini@20``, ...
:func:`check_objective` turns a user's choice into one of those names with its direction.

The torch trainer (and iALS with ``eval_every``) reports one metric per epoch while it trains,
:data:`CURVE_METRIC`; only a study whose objective is that metric can prune on the curve.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recsys_core.errors import ConfigError

#: The cut-offs every run is evaluated at (``evaluate``'s default ``ks``).
VALIDATION_KS = (5, 10, 20)
#: Accuracy metrics (per user, then averaged), as in ``recsys_core.metrics.METRICS``.
ACCURACY = ("ndcg", "recall", "precision", "map", "mrr", "hit")
#: Beyond-accuracy metrics of the lists (``diversity`` needs item categories or embeddings).
BEYOND = (
    "coverage",
    "tail_coverage",
    "tail_share",
    "avg_popularity",
    "gini",
    "novelty",
    "personalisation",
    "diversity",
)
#: Metrics where less is better (popularity bias, inequality of exposure).
LOWER_IS_BETTER = frozenset({"avg_popularity", "gini"})
#: The metric the trainers report per epoch (progress key ``valid_ndcg@10``).
CURVE_METRIC = "ndcg@10"
CURVE_KEY = "valid_" + CURVE_METRIC
DIRECTIONS = ("maximize", "minimize")


def objective_names() -> list[str]:
    """Every metric a study can choose by, ``ndcg@10`` first."""
    names = [f"{m}@{k}" for m in (*ACCURACY, *BEYOND) for k in VALIDATION_KS]
    names.remove(CURVE_METRIC)
    return [CURVE_METRIC, *names]


def check_objective(name: str, direction: str | None = None) -> tuple[str, str]:
    """``(metric, direction)`` for a user's objective; the direction defaults to the metric's
    own (minimise popularity and Gini, maximise the rest). ConfigError names the choices."""
    metric = str(name).strip().lower()
    if metric not in objective_names():
        base = metric.split("@")[0]
        hint = (
            f"cut-offs are {', '.join(map(str, VALIDATION_KS))}"
            if base in (*ACCURACY, *BEYOND)
            else f"metrics are {', '.join((*ACCURACY, *BEYOND))}"
        )
        raise ConfigError(
            f"objective: {name!r} is not computed on the validation part; use METRIC@K, e.g. "
            f"ndcg@10 or recall@20 ({hint})"
        )
    if direction is None or direction == "":
        direction = "minimize" if metric.split("@")[0] in LOWER_IS_BETTER else "maximize"
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction: {direction!r} unknown; choose one of {DIRECTIONS}")
    return metric, direction


def validation_report(
    model: Any, split: Any, *, n_resamples: int = 1000
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Every evaluation metric of ``model`` on ``split.valid`` (training items excluded from
    the ranking) and the 95% bootstrap CIs of the per-user ones; ``({}, {})`` when the split
    has no validation part."""
    from recsys_core.evaluate import evaluate
    from recsys_core.split import Split

    valid = split.valid
    if valid is None or valid.nnz == 0:
        return {}, {}
    view = Split(
        spec=split.spec,
        train=split.train,
        valid=None,
        test=valid,
        fold_in=None,
        description="validation part",
        test_users=np.unique(valid.users).astype(np.int64),
        exclusion=split.train.binary,
    )
    report = evaluate(
        model, view, ks=VALIDATION_KS, keep=max(VALIDATION_KS), n_resamples=n_resamples
    )
    values = {k: float(v) for k, v in report.aggregate.items() if v is not None}
    return values, {k: [_finite(lo), _finite(hi)] for k, (lo, hi) in report.ci.items()}


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
