"""Synthetic interaction data with planted structure, for tests, demos and benchmarks.

What is planted, so that a good model must recover it:

- taste clusters: each user belongs to one cluster and draws most items from that cluster;
- a long tail: item popularity within a cluster follows a Zipf law;
- categories that carry signal: each item's first category is its cluster's genre;
- time order that carries signal: a user's items arrive in a cluster-specific cyclic order,
  so the next item is predictable from the last one (sequence models can learn it);
- user attributes: each user has a ``segment`` column equal to its cluster (side features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_core.config import param, validate
from recsys_core.data.columns import CATEGORIES, ITEM, TEXT, TIMESTAMP, TITLE, USER, VALUE
from recsys_core.data.interactions import Interactions


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic dataset."""

    n_users: int = param(300, "number of users", low=2, high=10_000_000)
    n_items: int = param(200, "number of items", low=2, high=10_000_000)
    n_clusters: int = param(5, "number of taste clusters (= genres)", low=1, high=1000)
    mean_history: float = param(20.0, "mean interactions per user", low=1.0, high=10_000.0)
    in_cluster: float = param(
        0.9, "share of a user's items from their own cluster", low=0.0, high=1.0
    )
    zipf: float = param(1.1, "popularity exponent within a cluster (0 = flat)", low=0.0, high=5.0)
    seed: int = param(0, "random seed", low=0)

    def __post_init__(self) -> None:
        validate(self)


def make_frames(
    config: SyntheticConfig | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Raw frames (interactions, items, users) as an importer would produce them.

    Interactions have raw ids ``u0..`` / ``i0..``, a 1-5 rating and unix-second timestamps.
    """
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    n_users, n_items, k = cfg.n_users, cfg.n_items, cfg.n_clusters

    item_cluster = np.arange(n_items) % k
    user_cluster = rng.integers(0, k, size=n_users)
    # Zipf popularity by rank within each cluster: item j's rank is j // k.
    rank = np.arange(n_items) // k
    weight = 1.0 / (rank + 1.0) ** cfg.zipf

    lengths = np.clip(rng.poisson(cfg.mean_history, size=n_users), 2, max(2, n_items // 2))
    total = int(lengths.sum())
    user_of = np.repeat(np.arange(n_users), lengths)
    own = rng.random(total) < cfg.in_cluster
    cluster_of = np.where(own, user_cluster[user_of], rng.integers(0, k, size=total))

    # Draw an item per interaction from its cluster, popularity-weighted (vectorised by cluster).
    items = np.empty(total, dtype=np.int64)
    for c in range(k):  # loop over clusters, not users
        members = np.flatnonzero(item_cluster == c)
        where = np.flatnonzero(cluster_of == c)
        p = weight[members] / weight[members].sum()
        items[where] = rng.choice(members, size=len(where), p=p)

    frame = pd.DataFrame({"u": user_of, "i": items})
    frame = frame.drop_duplicates(["u", "i"]).reset_index(drop=True)
    # Time order: within a user, items sorted by their position in a cluster-cyclic order
    # shifted by a per-user phase, so "next item" follows a learnable successor relation.
    phase = rng.integers(0, n_items, size=n_users)
    order_key = (frame["i"].to_numpy() - phase[frame["u"].to_numpy()]) % n_items
    frame["key"] = order_key
    frame = frame.sort_values(["u", "key"], kind="stable")
    start = 1_600_000_000 + rng.integers(0, 86_400 * 30, size=n_users)
    step = frame.groupby("u").cumcount().to_numpy()
    frame[TIMESTAMP] = start[frame["u"].to_numpy()] + step * 3600
    liked = item_cluster[frame["i"].to_numpy()] == user_cluster[frame["u"].to_numpy()]
    frame[VALUE] = np.where(liked, rng.integers(4, 6, len(frame)), rng.integers(1, 4, len(frame)))
    frame[VALUE] = frame[VALUE].astype(np.float32)
    frame[USER] = "u" + frame["u"].astype(str)
    frame[ITEM] = "i" + frame["i"].astype(str)
    interactions = frame[[USER, ITEM, VALUE, TIMESTAMP]].reset_index(drop=True)

    genres = np.array([f"Genre{c}" for c in range(k)])
    extra = genres[rng.integers(0, k, size=n_items)]
    items_frame = pd.DataFrame(
        {
            ITEM: "i" + pd.Series(np.arange(n_items)).astype(str),
            TITLE: [f"Item {j} ({genres[item_cluster[j]]})" for j in range(n_items)],
            CATEGORIES: [f"{genres[item_cluster[j]]}|{extra[j]}" for j in range(n_items)],
            TEXT: [f"a {genres[item_cluster[j]].lower()} story number {j}" for j in range(n_items)],
            "year": 1950 + (np.arange(n_items) * 7) % 70,
        }
    )
    users_frame = pd.DataFrame(
        {
            USER: "u" + pd.Series(np.arange(n_users)).astype(str),
            "segment": [f"S{c}" for c in user_cluster],
            "age": rng.integers(18, 70, size=n_users),
        }
    )
    return interactions, items_frame, users_frame


def make_synthetic(config: SyntheticConfig | None = None, **overrides: object) -> Interactions:
    """An encoded synthetic dataset (see module docstring for what is planted).

    ``make_synthetic(n_users=100, seed=3)`` is shorthand for a config with those fields.
    """
    cfg = config or SyntheticConfig(**overrides)  # type: ignore[arg-type]
    inter, items, users = make_frames(cfg)
    return Interactions.from_frame(
        inter, item_table=items.set_index(ITEM), user_table=users.set_index(USER)
    )


def cluster_labels(data: Interactions, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """The planted (user_cluster, item_cluster) of a synthetic dataset, by dense index."""
    item_c = np.array([int(str(i)[1:]) % n_clusters for i in data.item_ids])
    seg = data.user_table["segment"].to_numpy() if data.user_table is not None else None
    user_c = np.array([int(s[1:]) for s in seg]) if seg is not None else np.zeros(data.n_users, int)
    return user_c, item_c
