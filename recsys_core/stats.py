"""Uncertainty and comparison of per-user metric arrays: bootstrap CIs, paired tests, segments.

Per-user arrays (one value per test user) are what make an evaluation honest: their spread
gives a confidence interval, and two runs on the same split can be compared user by user.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recsys_core.errors import DataError

#: Resample blocks are sized so one block holds at most this many float32 weights (~32 MB).
_BLOCK_ELEMENTS = 4_000_000


def bootstrap_means(values: np.ndarray, *, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of each column, sharing the resamples.

    Parameters
    ----------
    values : float [n] or [n, m]; NaN entries are left out of their column's mean.

    Returns
    -------
    float64 [n_resamples, m] resampled column means (m = 1 for a 1-D input).

    Resampling is vectorised: each block of resamples draws its row indices at once, turns them
    into per-row counts with one ``bincount``, and takes all means with one matrix product.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n, m = x.shape
    if n == 0:
        return np.full((n_resamples, m), np.nan)
    present = ~np.isnan(x)
    filled = np.where(present, x, 0.0)
    rng = np.random.default_rng(seed)
    block = max(1, min(n_resamples, _BLOCK_ELEMENTS // n))
    out = np.empty((n_resamples, m))
    for start in range(0, n_resamples, block):
        b = min(block, n_resamples - start)
        idx = (
            rng.integers(0, n, size=(b, n), dtype=np.int32)
            + (np.arange(b, dtype=np.int32) * n)[:, None]
        )
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        sums = counts @ filled
        used = counts @ present
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + b] = sums / used
    return out


def bootstrap_ci(
    values: np.ndarray,
    *,
    level: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float] | list[tuple[float, float]]:
    """Percentile bootstrap confidence interval of the mean.

    Parameters
    ----------
    values : float [n] (one metric) or [n, m] (m metrics sharing the same resamples).
    level : confidence level (0.95 = 95%).
    n_resamples : bootstrap resamples (seeded).

    Returns
    -------
    ``(low, high)`` for 1-D input, a list of m such pairs for 2-D input. ``(nan, nan)`` when a
    column has no finite value.
    """
    if not 0 < level < 1:
        raise DataError(f"confidence level {level} is outside (0, 1)", fix="use e.g. 0.95")
    x = np.asarray(values, dtype=np.float64)
    means = bootstrap_means(x, n_resamples=n_resamples, seed=seed)
    alpha = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanquantile(means, alpha, axis=0)
        hi = np.nanquantile(means, 1 - alpha, axis=0)
    pairs = [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]
    return pairs[0] if x.ndim == 1 else pairs


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired comparison of two runs' per-user values on the same users (same order).

    Returns
    -------
    dict with ``n``, ``mean_a``, ``mean_b``, ``mean_diff`` (a - b), ``t_stat``, ``t_pvalue``
    (``scipy.stats.ttest_rel``), ``wilcoxon_stat``, ``wilcoxon_pvalue`` (signed-rank test),
    ``cohens_d`` (mean difference / standard deviation of the differences). Identical arrays
    give p = 1 and d = 0 rather than NaN; pairs with a NaN on either side are left out.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise DataError(
            f"paired tests need the same users on both sides, got {len(a)} and {len(b)} values",
            where="paired_tests",
            fix="compare two runs evaluated on the same split",
        )
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    diff = a - b
    n = len(diff)
    out = {
        "n": float(n),
        "mean_a": float(a.mean()) if n else float("nan"),
        "mean_b": float(b.mean()) if n else float("nan"),
        "mean_diff": float(diff.mean()) if n else float("nan"),
    }
    if n < 2:
        out.update(t_stat=np.nan, t_pvalue=np.nan, wilcoxon_stat=np.nan, wilcoxon_pvalue=np.nan)
        out["cohens_d"] = float("nan")
        return out
    sd = float(diff.std(ddof=1))
    if sd == 0.0:
        # No variation in the differences: identical runs (p = 1) or a constant shift, where
        # the tests are undefined; report the degenerate case explicitly.
        same = bool(np.all(diff == 0))
        p = 1.0 if same else 0.0
        out.update(
            t_stat=0.0 if same else float(np.sign(diff[0]) * np.inf),
            t_pvalue=p,
            wilcoxon_stat=0.0,
            wilcoxon_pvalue=p,
            cohens_d=0.0 if same else float(np.sign(diff[0]) * np.inf),
        )
        return out
    # scipy.stats costs about a second to import: only paired tests pay for it.
    from scipy import stats as sps

    t = sps.ttest_rel(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        w = sps.wilcoxon(a, b, zero_method="wilcox")
    out.update(
        t_stat=float(t.statistic),
        t_pvalue=float(t.pvalue),
        wilcoxon_stat=float(w.statistic),
        wilcoxon_pvalue=float(w.pvalue),
        cohens_d=float(diff.mean() / sd),
    )
    return out


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979), for testing several metrics at once.

    The i-th smallest of m p-values is multiplied by ``m - i + 1`` (i = 1..m), a running
    maximum keeps the adjusted values in the order of the raw ones, and they are capped at 1.
    Rejecting every hypothesis whose adjusted p is below alpha keeps the family-wise error rate
    (the chance of any false "significant") at alpha, uniformly more powerful than Bonferroni.
    NaN p-values (untestable metrics) stay NaN and do not count towards m.

    Returns float64 [m] in the input order.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def paired_table(a: pd.DataFrame, b: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Paired tests of every metric two runs share, corrected for the number of metrics.

    Parameters
    ----------
    a, b : per-user metric tables of the two runs (index = user, one column per metric); only
        users and metrics present in both are compared.
    alpha : family-wise error rate of the ``significant`` column.

    Returns
    -------
    One row per metric: ``metric`` and the :func:`paired_tests` fields, plus ``t_pvalue_holm``
    and ``wilcoxon_pvalue_holm`` (:func:`holm` over the metrics tested) and ``significant``:
    True when the Holm-adjusted paired t-test p-value is below ``alpha``. Testing, say, twelve
    metrics at 0.05 each would call about one in two chance differences significant somewhere;
    the correction keeps that chance at ``alpha`` for the whole table.
    """
    if not 0 < alpha < 1:
        raise DataError(f"alpha {alpha} is outside (0, 1)", fix="use e.g. 0.05")
    shared = [c for c in a.columns if c in b.columns]
    both = a[shared].add_suffix(" A").join(b[shared].add_suffix(" B"), how="inner")
    rows = [
        {"metric": name} | paired_tests(both[f"{name} A"].to_numpy(), both[f"{name} B"].to_numpy())
        for name in shared
    ]
    table = pd.DataFrame(rows, columns=["metric", *PAIRED_FIELDS])
    table["t_pvalue_holm"] = holm(table["t_pvalue"].to_numpy())
    table["wilcoxon_pvalue_holm"] = holm(table["wilcoxon_pvalue"].to_numpy())
    table["significant"] = table["t_pvalue_holm"] < alpha
    return table


#: The fields of :func:`paired_tests`, in order.
PAIRED_FIELDS = (
    "n",
    "mean_a",
    "mean_b",
    "mean_diff",
    "t_stat",
    "t_pvalue",
    "wilcoxon_stat",
    "wilcoxon_pvalue",
    "cohens_d",
)


def activity_segments(activity: np.ndarray, n_buckets: int = 4) -> np.ndarray:
    """Label each user by the quantile bucket of their activity (e.g. ``"Q1: 2-11"``).

    Bucket edges are activity quantiles; equal edges merge, so there may be fewer buckets.
    Returns an object array [n] of labels whose order sorts like the buckets.
    """
    act = np.asarray(activity, dtype=np.int64)
    if len(act) == 0:
        return np.array([], dtype=object)
    edges = np.unique(np.quantile(act, np.linspace(0, 1, n_buckets + 1)[1:-1], method="higher"))
    bucket = np.searchsorted(edges, act, side="right")
    lows = np.full(len(edges) + 1, np.iinfo(np.int64).max)
    highs = np.full(len(edges) + 1, np.iinfo(np.int64).min)
    np.minimum.at(lows, bucket, act)
    np.maximum.at(highs, bucket, act)
    names = np.array(
        [
            f"Q{i + 1}: {lo}-{hi}" if lo <= hi else ""
            for i, (lo, hi) in enumerate(zip(lows, highs, strict=True))
        ],
        dtype=object,
    )
    return names[bucket]


def segment_table(
    per_user: pd.DataFrame,
    groups: np.ndarray | pd.Series,
    *,
    metrics: Sequence[str] | None = None,
    level: float = 0.95,
    n_resamples: int = 500,
    seed: int = 0,
    kind: str = "segment",
) -> pd.DataFrame:
    """Mean and bootstrap CI of each metric within each group of users (long format).

    Parameters
    ----------
    per_user : [n_users, n_metrics] per-user values (NaN = not applicable to that user).
    groups : [n_users] group label per row of ``per_user``.
    metrics : columns to summarise (default: all).
    kind : value of the ``kind`` column (e.g. ``"activity"``, ``"item popularity"``).

    Returns
    -------
    DataFrame with columns ``kind, segment, metric, n_users, mean, ci_low, ci_high``, segments
    in sorted label order.
    """
    cols = list(metrics) if metrics is not None else list(per_user.columns)
    labels = np.asarray(groups, dtype=object)
    if len(labels) != len(per_user):
        raise DataError(
            f"{len(labels)} group labels for {len(per_user)} users",
            where="segment_table",
            fix="pass one label per row of the per-user table",
        )
    rows = []
    values = per_user[cols].to_numpy(dtype=np.float64)
    for label in sorted(set(labels.tolist()), key=str):  # loop over segments, not users
        sel = labels == label
        block = values[sel]
        cis = bootstrap_ci(block, level=level, n_resamples=n_resamples, seed=seed)
        counts = (~np.isnan(block)).sum(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(block, axis=0)
        for j, col in enumerate(cols):
            rows.append(
                {
                    "kind": kind,
                    "segment": label,
                    "metric": col,
                    "n_users": int(counts[j]),
                    "mean": float(means[j]),
                    "ci_low": cis[j][0],
                    "ci_high": cis[j][1],
                }
            )
    return pd.DataFrame(
        rows, columns=["kind", "segment", "metric", "n_users", "mean", "ci_low", "ci_high"]
    )


__all__ = [
    "PAIRED_FIELDS",
    "activity_segments",
    "bootstrap_ci",
    "bootstrap_means",
    "holm",
    "paired_table",
    "paired_tests",
    "segment_table",
]
