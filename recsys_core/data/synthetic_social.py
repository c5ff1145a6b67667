"""Planted social influence on top of :func:`recsys_core.data.synthetic.make_frames`.

What is planted, so that a social model must recover it and an explanation must credit it:

- homophily: each user follows ``n_follows`` others, a share ``same_cluster`` of them from
  the user's own taste cluster (the ``segment`` column), the rest anywhere;
- influence: each user adopts a share ``adopt`` of the items of the users they follow (at most
  ``max_adopt`` per followed user), added to their history after their own items, so "people
  you follow liked it" is literally why those items are there.

The relation table is directed (``source`` follows ``target``) with a ``type`` (``follows``)
and a ``weight`` (1.0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.columns import ITEM, TIMESTAMP, USER, VALUE


def plant_follows(
    interactions: pd.DataFrame,
    users: pd.DataFrame,
    *,
    n_follows: int = 3,
    same_cluster: float = 0.8,
    adopt: float = 0.5,
    max_adopt: int = 4,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions with adopted items added, relation table) from synthetic frames."""
    rng = np.random.default_rng(seed)
    ids = users[USER].to_numpy(dtype=object)
    segment = users["segment"].to_numpy(dtype=object)
    n = len(ids)
    by_segment = {s: np.flatnonzero(segment == s) for s in pd.unique(segment)}
    src = np.repeat(np.arange(n), n_follows)
    own = rng.random(len(src)) < same_cluster
    dst = rng.integers(0, n, len(src))
    for s, members in by_segment.items():  # a loop over clusters, not users
        pick = own & (segment[src] == s)
        dst[pick] = members[rng.integers(0, len(members), int(pick.sum()))]
    keep = dst != src
    src, dst = src[keep], dst[keep]
    relations = pd.DataFrame(
        {"source": ids[src], "target": ids[dst], "type": "follows", "weight": 1.0}
    ).drop_duplicates(["source", "target"], ignore_index=True)

    # influence: each follower adopts some of the followed user's items
    history = interactions[[USER, ITEM]]
    pairs = relations.merge(history, left_on="target", right_on=USER)[["source", ITEM]]
    pairs = pairs[rng.random(len(pairs)) < adopt]
    pairs = pairs.groupby(pairs["source"], sort=False).head(max_adopt * n_follows)
    pairs = pairs.rename(columns={"source": USER})
    seen = history.set_index([USER, ITEM]).index
    pairs = pairs[~pd.MultiIndex.from_frame(pairs[[USER, ITEM]]).isin(seen)]
    pairs = pairs.drop_duplicates([USER, ITEM])
    last = interactions.groupby(USER)[TIMESTAMP].max()
    step = pairs.groupby(USER).cumcount().to_numpy() + 1
    added = pd.DataFrame(
        {
            USER: pairs[USER].to_numpy(),
            ITEM: pairs[ITEM].to_numpy(),
            VALUE: np.float32(5.0),
            TIMESTAMP: last.reindex(pairs[USER]).to_numpy() + step * 3600,
        }
    )
    out = pd.concat([interactions, added], ignore_index=True)
    return out.sort_values([USER, TIMESTAMP], kind="stable", ignore_index=True), relations


__all__ = ["plant_follows"]
