"""Data health report: what is in a dataset, and what an analyst should do about it.

:func:`profile` returns plain data (numbers, warnings, series for plots); the figures are drawn
by :mod:`recsys_core.viz.data`. Every warning states the measured value, the threshold that
triggered it and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.data.interactions import Interactions
from recsys_core.metrics import gini

#: Thresholds behind the warnings (named so the UI and docs can quote them).
MIN_INTERACTIONS = 1_000
COLD_THRESHOLD = 5
COLD_ITEM_SHARE = 0.5
COLD_USER_SHARE = 0.2
HEAD_SHARE = 0.8
GINI_HIGH = 0.9
DENSITY_HIGH = 0.3
MIN_ITEMS = 50
DUPLICATE_SHARE = 0.01


@dataclass(frozen=True)
class HealthReport:
    """Health of one dataset.

    Attributes
    ----------
    stats : flat dict of named numbers (``n_users``, ``density``, ``user_median``, ``gini``,
        ``head_item_share``, ``cold_user_share``, ``time_start``...), JSON-ready.
    warnings : actionable sentences, most serious first.
    series : data behind the plots: ``item_popularity`` int64 [n_items] sorted descending,
        ``user_activity`` int64 [n_users], ``ratings`` DataFrame (value, count), ``over_time``
        DataFrame (period, interactions) or None, ``time_unit`` ("day"/"month"/"year") or None.
    """

    stats: dict[str, Any]
    warnings: list[str]
    series: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (series as lists)."""
        series: dict[str, Any] = {}
        for key, value in self.series.items():
            if isinstance(value, pd.DataFrame):
                frame = value.copy()
                for column in frame.columns:
                    if frame[column].dtype.kind == "M":
                        frame[column] = frame[column].dt.strftime("%Y-%m-%d")
                series[key] = {c: frame[c].tolist() for c in frame.columns}
            elif isinstance(value, np.ndarray):
                series[key] = value.tolist()
            else:
                series[key] = value
        return {"stats": self.stats, "warnings": list(self.warnings), "series": series}


def head_share(counts: np.ndarray, mass: float = HEAD_SHARE) -> float:
    """Smallest share of items whose interactions reach ``mass`` of all interactions."""
    x = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    total = x.sum()
    if len(x) == 0 or total == 0:
        return 0.0
    needed = int(np.searchsorted(np.cumsum(x), mass * total - 1e-9)) + 1
    return min(needed, len(x)) / len(x)


def _quantiles(counts: np.ndarray, prefix: str) -> dict[str, float]:
    if len(counts) == 0:
        return {f"{prefix}_{k}": 0.0 for k in ("min", "median", "p90", "max", "mean")}
    return {
        f"{prefix}_min": int(counts.min()),
        f"{prefix}_median": float(np.median(counts)),
        f"{prefix}_p90": float(np.percentile(counts, 90)),
        f"{prefix}_max": int(counts.max()),
        f"{prefix}_mean": float(counts.mean()),
    }


def _over_time(timestamps: np.ndarray) -> tuple[pd.DataFrame, str]:
    """Interactions per day, month or year (whichever gives a readable number of bars)."""
    span_days = (int(timestamps.max()) - int(timestamps.min())) / 86_400
    unit, code = ("day", "D") if span_days <= 120 else ("month", "M")
    if span_days > 365 * 30:
        unit, code = "year", "Y"
    periods = timestamps.astype("datetime64[s]").astype(f"datetime64[{code}]")
    values, counts = np.unique(periods, return_counts=True)
    frame = pd.DataFrame({"period": pd.to_datetime(values), "interactions": counts.astype(int)})
    return frame, unit


def profile(data: Interactions, import_report: dict[str, Any] | None = None) -> HealthReport:
    """Profile a dataset.

    Parameters
    ----------
    data : the encoded dataset.
    import_report : the import report stored with the dataset (duplicates, filtered rows);
        optional.

    Returns
    -------
    HealthReport with stats, warnings and plot series.
    """
    report = import_report or {}
    n_users, n_items, nnz = data.n_users, data.n_items, data.nnz
    user_counts = np.bincount(data.users, minlength=n_users).astype(np.int64)
    item_counts = np.bincount(data.items, minlength=n_items).astype(np.int64)
    stats: dict[str, Any] = {
        "n_users": int(n_users),
        "n_items": int(n_items),
        "n_interactions": int(nnz),
        "density": float(nnz / max(n_users * n_items, 1)),
    }
    stats |= _quantiles(user_counts, "user")
    stats |= _quantiles(item_counts, "item")
    cold_users = float(np.mean(user_counts < COLD_THRESHOLD)) if n_users else 0.0
    cold_items = float(np.mean(item_counts < COLD_THRESHOLD)) if n_items else 0.0
    stats["cold_user_share"] = cold_users
    stats["cold_item_share"] = cold_items
    stats["single_interaction_users"] = int(np.sum(user_counts < 2))
    stats["gini"] = gini(item_counts)
    stats["head_item_share"] = head_share(item_counts)

    values = data.values
    distinct, value_counts = np.unique(values, return_counts=True)
    explicit = len(distinct) > 1
    stats["has_ratings"] = bool(explicit)
    stats["rating_min"] = float(distinct.min()) if len(distinct) else None
    stats["rating_max"] = float(distinct.max()) if len(distinct) else None
    stats["rating_mean"] = float(values.mean()) if len(values) else None
    stats["rating_distinct"] = int(len(distinct))

    stats["has_time"] = data.timestamps is not None
    over_time, time_unit = None, None
    if data.timestamps is not None and nnz:
        ts = data.timestamps
        stats["time_start"] = pd.Timestamp(int(ts.min()), unit="s").isoformat()
        stats["time_end"] = pd.Timestamp(int(ts.max()), unit="s").isoformat()
        stats["time_span_days"] = float((int(ts.max()) - int(ts.min())) / 86_400)
        over_time, time_unit = _over_time(ts)
    if data.events is not None:
        kinds, kind_counts = np.unique(data.events.astype(str), return_counts=True)
        stats["event_types"] = {str(k): int(c) for k, c in zip(kinds, kind_counts, strict=True)}
    if data.labels is not None:
        kinds, kind_counts = np.unique(data.labels.astype(str), return_counts=True)
        stats["split_labels"] = {str(k): int(c) for k, c in zip(kinds, kind_counts, strict=True)}

    duplicates = report.get("duplicates", {})
    stats["rows_read"] = int(report.get("rows_read", nnz))
    stats["duplicates_removed"] = int(duplicates.get("rows_removed", 0))
    stats["duplicate_policy"] = duplicates.get("policy")
    stats["filtered_rows"] = int(report.get("filtered_rows", 0))

    warnings = _warnings(stats)
    warnings += [str(w) for w in report.get("warnings", [])]
    series = {
        "item_popularity": np.sort(item_counts)[::-1].copy(),
        "user_activity": user_counts,
        "ratings": pd.DataFrame({"value": distinct.astype(float), "count": value_counts}),
        "over_time": over_time,
        "time_unit": time_unit,
    }
    return HealthReport(stats, warnings, series)


def _warnings(s: dict[str, Any]) -> list[str]:
    out = []
    if s["n_interactions"] < MIN_INTERACTIONS:
        out.append(
            f"fewer than {MIN_INTERACTIONS:,} interactions ({s['n_interactions']:,}): metrics "
            "will be noisy; read the confidence intervals before comparing models"
        )
    if s["cold_item_share"] >= COLD_ITEM_SHARE:
        out.append(
            f"{s['cold_item_share']:.0%} of items have fewer than {COLD_THRESHOLD} interactions: "
            "collaborative models cannot learn them; set min_item_interactions or rely on "
            "content features"
        )
    if s["cold_user_share"] >= COLD_USER_SHARE:
        out.append(
            f"{s['cold_user_share']:.0%} of users have fewer than {COLD_THRESHOLD} interactions: "
            "their test sets are tiny; consider min_user_interactions=5"
        )
    if s["single_interaction_users"]:
        out.append(
            f"{s['single_interaction_users']:,} users have a single interaction: they cannot be "
            "in both training and test, so per-user splits skip them"
        )
    if not s["has_time"]:
        out.append(
            "timestamps missing: temporal splits (leave-last-out, global cutoff) and time-ordered "
            "sequence models are unavailable"
        )
    if s["gini"] >= GINI_HIGH:
        out.append(
            f"item popularity is highly concentrated (Gini {s['gini']:.2f}; "
            f"{s['head_item_share']:.1%} of items make up {HEAD_SHARE:.0%} of interactions): "
            "MostPopular will be a strong baseline; watch tail coverage"
        )
    if s["density"] >= DENSITY_HIGH:
        out.append(
            f"density {s['density']:.0%}: most users have seen most items, so few items are "
            "left to rank; ranking metrics will be compressed"
        )
    if s["n_items"] < MIN_ITEMS:
        out.append(
            f"only {s['n_items']} items: top-k metrics with k near {s['n_items']} say little"
        )
    if s["rows_read"] and s["duplicates_removed"] / s["rows_read"] >= DUPLICATE_SHARE:
        out.append(
            f"{s['duplicates_removed']:,} duplicate (user, item) rows "
            f"({s['duplicates_removed'] / s['rows_read']:.0%} of rows) were resolved by policy "
            f"'{s['duplicate_policy']}': check it matches what the data means"
        )
    return out


__all__ = ["HealthReport", "head_share", "profile"]
