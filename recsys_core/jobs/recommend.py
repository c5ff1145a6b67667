"""Top-k items of a finished run for one raw user id (the ``recommend`` command's logic)."""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_core.errors import ConfigError, NotFoundError
from recsys_core.jobs.artifacts import RunArtifacts
from recsys_core.workspace import Workspace


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def recommend_for(
    ws: Workspace, run_id: str, user: object, *, k: int = 10, device: str = "cpu"
) -> list[dict[str, Any]]:
    """The run's top-``k`` items for raw user id ``user``, the user's known items excluded.

    A user the model was trained on is scored from its training history; a user the split held
    out (held-out-users protocol) is folded in from its full history in the dataset.

    Returns
    -------
    One dict per item, best first: ``rank``, ``item`` (raw id), ``title`` (the raw id when the
    dataset has no titles), ``score``, ``item_index``.
    """
    if int(k) < 1:
        raise ConfigError(f"k: expected a positive number of items, got {k}")
    artifacts = RunArtifacts(ws, run_id)
    data = artifacts.dataset()
    try:
        u = data.user_index(user)
    except NotFoundError:
        examples = ", ".join(str(x) for x in data.user_ids[:3])
        raise NotFoundError(
            f"user {user!r} is not in dataset {artifacts.spec().dataset} of run {run_id}; "
            f"use a raw user id from that dataset (e.g. {examples})"
        ) from None
    model = artifacts.model(device=device)
    if model.history_[u].nnz > 0:
        items, scores = model.recommend(np.array([u]), k=int(k))
    else:
        sequences = data.sequences.rows(np.array([u])) if model.uses_sequences else None
        items, scores = model.recommend_history(data.binary[[u]], sequences, k=int(k))
    titles = data.item_titles()
    rows = []
    for rank, (item, score) in enumerate(zip(items[0], scores[0], strict=True), start=1):
        if not np.isfinite(score):
            break  # fewer than k items were eligible
        rows.append(
            {
                "rank": rank,
                "item": _plain(data.item_ids[item]),
                "title": str(titles[item]),
                "score": float(score),
                "item_index": int(item),
            }
        )
    return rows
