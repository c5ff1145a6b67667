"""The data's imbalance, for the Balance page: before training and in the lists of runs.

- :func:`imbalance_profile` - positives per user, the popularity curve and its head/tail split.
- :func:`negative_buckets` - the popularity of sampled negatives (chosen option vs uniform)
  against the popularity of the positives, by popularity bin.
- :func:`recommendation_buckets` - the same bins for the top-k lists of finished runs.

Pure functions of the data and the options; what the options do to training is
:mod:`recsys_core.balance`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.balance import BalanceConfig, head_items, interaction_counts, negative_popularity
from recsys_core.data.interactions import Interactions
from recsys_core.errors import ConfigError
from recsys_core.metrics import gini
from recsys_core.workspace import Workspace


# ----- before training --------------------------------------------------------------------------
def imbalance_profile(data: Interactions, head_share: float = 0.2) -> dict[str, Any]:
    """The data's two imbalances, for the Balance page.

    Returns
    -------
    dict with ``positives_per_user`` (int64 [n_users]), ``popularity`` (int64 [n_items]
    interactions per item, most popular first), ``head`` (bool [n_items] head mask in that
    order, the ``head_share`` most popular items), ``head_interaction_share`` (share of
    interactions on head items), ``density`` (interactions / (users x items)) and ``gini``
    (Gini coefficient of item popularity; 0 = even, 1 = one item holds all).
    """
    per_user = np.bincount(data.users, minlength=data.n_users).astype(np.int64)
    counts = interaction_counts(data)
    order = np.argsort(-counts, kind="stable")
    popularity = counts[order]
    head = head_items(counts, head_share)[order]
    total = max(int(popularity.sum()), 1)
    return {
        "positives_per_user": per_user,
        "popularity": popularity,
        "head": head,
        "head_interaction_share": float(popularity[head].sum() / total),
        "density": float(data.nnz / max(data.n_users * data.n_items, 1)),
        "gini": gini(counts),
    }


def popularity_bins(counts: np.ndarray, n_buckets: int = 10) -> np.ndarray:
    """int64 [n_items] equal-count popularity bin of each item (deciles by default): 0 = the
    most popular ``1/n_buckets`` of items. Not :func:`recsys_core.metrics.popularity_buckets`,
    which cuts head/mid/tail by interaction mass."""
    if n_buckets < 1:
        raise ConfigError(f"n_buckets: expected at least 1, got {n_buckets}")
    order = np.argsort(-np.asarray(counts), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return (rank * n_buckets) // max(len(order), 1)


def _bin_labels(n_buckets: int) -> list[str]:
    step = 100 / n_buckets
    return [f"{i * step:.0f}-{(i + 1) * step:.0f}%" for i in range(n_buckets)]


def negative_buckets(
    data: Interactions,
    balance: BalanceConfig,
    *,
    n_buckets: int = 10,
    n_draws: int = 50_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Where the negatives go, by item-popularity bucket, before any model is trained.

    Returns a long DataFrame (``bucket`` label, most popular items first; ``source``;
    ``share``) with three sources: ``"positives"`` (share of training interactions),
    ``"uniform negatives"`` and ``"chosen negatives"`` (share of ``n_draws`` negatives drawn by
    the sampler ``balance`` configures on ``data``). Shares sum to 1 per source.
    """
    counts = interaction_counts(data)
    buckets = popularity_bins(counts, n_buckets)
    uniform = negative_popularity(data, BalanceConfig(), n_draws=n_draws, seed=seed)
    chosen = negative_popularity(data, balance, n_draws=n_draws, seed=seed)
    labels = _bin_labels(n_buckets)
    parts = []
    for source, per_item in (
        ("positives", counts),
        ("uniform negatives", uniform),
        ("chosen negatives", chosen),
    ):
        mass = np.bincount(buckets, weights=per_item, minlength=n_buckets)
        parts.append(
            pd.DataFrame({"bucket": labels, "source": source, "share": mass / max(mass.sum(), 1.0)})
        )
    return pd.concat(parts, ignore_index=True)


def recommendation_buckets(
    ws: Workspace,
    run_ids: Sequence[str],
    *,
    k: int = 10,
    n_buckets: int = 10,
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Popularity of the top-``k`` recommendations of finished runs vs the data's.

    Returns a long DataFrame (``bucket``, ``source``, ``share``): ``"data"`` is the share of
    the dataset's interactions per item-popularity bucket, and one source per run (its
    ``names`` entry or id) the share of its top-``k`` slots. Buckets are cut on the run's
    dataset (all interactions), most popular first.
    """
    from recsys_core.jobs.artifacts import RunArtifacts

    if not run_ids:
        raise ConfigError("recommendation_buckets: no run ids given; pass finished run ids")
    names = dict(names or {})
    first = RunArtifacts(ws, run_ids[0])
    data = first.dataset()
    counts = interaction_counts(data)
    buckets = popularity_bins(counts, n_buckets)
    labels = _bin_labels(n_buckets)
    mass = np.bincount(buckets, weights=counts, minlength=n_buckets)
    parts = [pd.DataFrame({"bucket": labels, "source": "data", "share": mass / mass.sum()})]
    for run_id in run_ids:
        recs = RunArtifacts(ws, run_id).recs()
        items = recs.loc[recs["rank"] <= k, "item_index"].to_numpy(dtype=np.int64)  # 1-based
        share = np.bincount(buckets[items], minlength=n_buckets).astype(np.float64)
        parts.append(
            pd.DataFrame(
                {
                    "bucket": labels,
                    "source": names.get(run_id, run_id),
                    "share": share / max(share.sum(), 1.0),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)

__all__ = [
    "imbalance_profile",
    "negative_buckets",
    "popularity_bins",
    "recommendation_buckets",
]
