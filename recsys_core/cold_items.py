"""Cold-item evaluation: how well a model ranks items that had no interaction in training.

The evaluator's segments split users by activity and items by training popularity; an item
unseen in training has no segment of its own there, and under a random split of a k-core
dataset there are hardly any. This module adds the standard cold-start item protocol (e.g.
Volkovs et al. 2017, "DropoutNet", sec. 5; Schein et al. 2002):

- :func:`cold_item_split` holds out a seeded share of the *items*: every interaction with them
  is a test interaction, the model trains on the rest (so they are truly unseen);
- :func:`cold_item_metrics` scores, for every user with a held-out item, only the held-out
  items (the catalogue of new arrivals) from the user's training history, and reports
  NDCG@k, Recall@k and HitRate@k of that ranking (means over those users).

A model that ignores side information scores these items at its prior (ids it never saw), so
the figures show exactly what item features, such as text vectors, add.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.data.interactions import Interactions
from recsys_core.errors import DataError


def cold_item_split(
    data: Interactions, share: float = 0.1, *, seed: int = 0
) -> tuple[Interactions, Interactions, np.ndarray]:
    """(train, test, cold_items): a seeded ``share`` of the items held out with every
    interaction they have; int64 ``cold_items`` sorted."""
    if not 0 < share < 1:
        raise DataError(
            f"share must be in (0, 1), got {share}", where="cold_item_split", fix="use 0.1"
        )
    rng = np.random.default_rng(seed)
    n_cold = max(1, int(round(share * data.n_items)))
    cold = np.sort(rng.choice(data.n_items, size=n_cold, replace=False)).astype(np.int64)
    is_cold = np.zeros(data.n_items, dtype=bool)
    is_cold[cold] = True
    held = is_cold[data.items]
    return data.select(~held), data.select(held), cold


def cold_item_metrics(
    model: Any,
    train: Interactions,
    test: Interactions,
    cold_items: np.ndarray,
    *,
    k: int = 10,
    batch_size: int = 512,
) -> dict[str, float]:
    """NDCG@k, Recall@k, HitRate@k of ranking only ``cold_items`` for the users who have one in
    ``test``, from their ``train`` history (``model.score_history``); plus the counts.

    Recall@k = hits / min(k, |truth|); NDCG@k with binary gains over the ideal DCG of
    min(k, |truth|) hits; all in [0, 1].
    """
    cold = np.asarray(cold_items, dtype=np.int64)
    truth_all = test.binary[:, cold].tocsr()
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    if not len(users):
        raise DataError("no test user has a held-out item", where="cold_item_metrics", fix="")
    k = int(min(k, len(cold)))
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    ideal = torch.cumsum(discounts, 0)
    sums = {"ndcg": 0.0, "recall": 0.0, "hit": 0.0}
    history = train.binary
    cold_t = torch.as_tensor(cold)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        with torch.no_grad():
            scores = _score(model, history[batch], train, batch)
        scores = scores.detach().to("cpu", torch.float64)[:, cold_t]
        top = torch.topk(scores, k, dim=1).indices.numpy()
        truth = truth_all[batch]
        hits = _hits(top, truth)
        n_truth = torch.as_tensor(np.diff(truth.indptr), dtype=torch.float64)
        n_hits = hits.sum(1)
        sums["hit"] += float((n_hits > 0).sum())
        sums["recall"] += float((n_hits / n_truth.clamp(max=k)).sum())
        dcg = (hits * discounts[None]).sum(1)
        sums["ndcg"] += float((dcg / ideal[n_truth.clamp(max=k).long() - 1]).sum())
    out = {f"cold_{m}@{k}": v / len(users) for m, v in sums.items()}
    return out | {"cold_users": int(len(users)), "cold_items": int(len(cold))}


def _score(model: Any, history: sp.csr_matrix, train: Interactions, users: np.ndarray):  # noqa: ANN202
    if getattr(model, "uses_sequences", False):
        return model.score_history(history, train.sequences.rows(users))
    return model.score_history(history)


def _hits(top: np.ndarray, truth: sp.csr_matrix) -> torch.Tensor:
    """float64 [b, k]: 1 where the ranked cold column ``top[r, j]`` is a truth item of row r."""
    dense_rows = np.zeros((top.shape[0], truth.shape[1]), dtype=bool)  # b x n_cold only
    rows = np.repeat(np.arange(truth.shape[0]), np.diff(truth.indptr))
    dense_rows[rows, truth.indices] = True
    return torch.as_tensor(np.take_along_axis(dense_rows, top, axis=1), dtype=torch.float64)


__all__ = ["cold_item_metrics", "cold_item_split"]
