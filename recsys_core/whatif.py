"""What if the user's history were different? Live fold-in of an edited history.

The analyst removes items from a user's history and adds others; the model scores the edited
history through its own ``score_history`` (the fold-in every model has: a least-squares user
vector, an encoder pass, a few optimisation steps or a sequence pass), and the new top-k is set
beside the original one: which items entered, which left and why, how far each moved.

Rules of an edit (the same everywhere: page, tests, background explanations)
---------------------------------------------------------------------------
- Added items go at the end of the history, as the most recent, in the order given: that is
  what a sequence model reads last. Removed items leave the history wherever they were.
- Each list excludes exactly its own history: the original top-k excludes the original
  history, the edited top-k the edited one. So an added item leaves the list (it is now seen),
  and a removed item may enter it (the model no longer knows the user saw it); the table says
  which is which. Removing the latest item and adding it back is the original history again.
- Scores come through the same path as the Explain page's top-k and explanation (side features
  present for models that read them), so the three agree.
- A model whose scores do not depend on the history (Random, MostPopular) cannot fold an edit
  in: the result says so (``reads_history`` False and a note) instead of showing a change.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import ConfigError, DataError, NotFoundError
from recsys_core.explain import (
    EXPLAIN_DIR,
    _real_scores,  # the scores the page's top-k and the explanation use (side features present)
    explain,
    finished_run,
    history_source,
    user_history,
)
from recsys_core.models.base import Recommender, history_window

if TYPE_CHECKING:
    from recsys_core.workspace import Workspace

#: Most items :func:`search_items` returns: the page offers these, never the whole catalogue.
SEARCH_LIMIT = 50

#: Status of an item of either list in :attr:`WhatIf.table`.
STATUSES = ("entered", "left", "moved up", "moved down", "unchanged")


@dataclass(frozen=True)
class WhatIf:
    """A user's top-k with the original history and with an edited one.

    Attributes
    ----------
    model : the model's registry key.
    user : the user's dense index.
    added, removed : int64 item indices added to (at the end) and removed from the history.
    history : int64 [n] the edited history, oldest first.
    data : the edited history as interactions (same vocabularies and side tables, this user
        only): pass it to :func:`recsys_core.explain.explain` to explain the edited history.
    before, after : the top-k with the original and with the edited history (columns rank, item,
        title, score, item_index, as :func:`recsys_core.explain.top_k`).
    table : one row per item of either list: item, title, before (rank with the original
        history, <NA> when it was in it), after (rank with the edited history, <NA> when it is
        in it), move (before - after; positive = moved up), status (one of :data:`STATUSES`),
        why (for items that entered or left because the edit touched them), item_index.
    entered, left : int64 items of the new top-k that were not in the old one, and the reverse.
    reads_history : False when the model gives every history the same scores (no fold-in).
    notes : plain-language caveats (a model that ignores the history, a sequence window).
    """

    model: str
    user: int
    added: np.ndarray
    removed: np.ndarray
    history: np.ndarray
    data: Interactions
    before: pd.DataFrame
    after: pd.DataFrame
    table: pd.DataFrame
    entered: np.ndarray
    left: np.ndarray
    reads_history: bool
    notes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True when the top-k's items or order differ."""
        return not np.array_equal(self.before["item_index"], self.after["item_index"])

    def summary(self) -> str:
        """One sentence: what entered and left the top-k, by title."""
        k = len(self.after)
        if not self.changed:
            return f"The top {k} is the same as before."
        titles = dict(zip(self.table["item_index"], self.table["title"], strict=True))
        parts = []
        if len(self.entered):
            parts.append("entered: " + "; ".join(str(titles[i]) for i in self.entered))
        if len(self.left):
            parts.append("left: " + "; ".join(str(titles[i]) for i in self.left))
        if not parts:
            return f"The same {k} items, in a different order."
        return f"{len(self.entered)} of the top {k} changed — " + " · ".join(parts) + "."


# ----- raw ids and search at the edges ----------------------------------------------------------
def item_indices(data: Interactions, ids: Iterable[object]) -> np.ndarray:
    """int64 dense indices of raw item ids; NotFoundError naming every unknown id and the fix."""
    ids = list(ids)
    found, unknown = [], []
    for raw in ids:
        try:
            found.append(data.item_index(raw))
        except NotFoundError:
            unknown.append(str(raw))
    if unknown:
        raise NotFoundError(
            f"unknown item id(s) {unknown}: they are not in this dataset's catalogue; "
            "search the items by title and pick from the matches"
        )
    return np.asarray(found, dtype=np.int64)


def item_labels(data: Interactions, items: Sequence[int] | np.ndarray) -> list[str]:
    """``"title · id"`` per item: unique even where two items share a title."""
    items = np.asarray(items, dtype=np.int64)
    titles = data.item_titles()[items]
    ids = data.item_ids[items].astype(str)
    return [t if t == i else f"{t} · {i}" for t, i in zip(titles, ids, strict=True)]


def search_items(
    data: Interactions,
    query: str,
    *,
    exclude: Sequence[int] | np.ndarray = (),
    limit: int = SEARCH_LIMIT,
) -> np.ndarray:
    """Items whose title or raw id contains ``query`` (case-insensitive), most popular first.

    An empty query gives the most popular items. ``exclude`` (e.g. the user's history) is left
    out; at most ``limit`` items come back, so a page never ships the whole catalogue.

    Returns
    -------
    int64 [<= limit] item indices.
    """
    if int(limit) < 1:
        raise ConfigError(f"search_items: limit must be at least 1, got {limit}")
    query = str(query).strip()
    keep = np.ones(data.n_items, dtype=bool)
    if query:
        titles = pd.Series(data.item_titles(), dtype=object).astype(str)
        ids = pd.Series(data.item_ids).astype(str)
        hit = titles.str.contains(query, case=False, regex=False) | ids.str.contains(
            query, case=False, regex=False
        )
        keep &= hit.to_numpy()
    exclude = np.asarray(exclude, dtype=np.int64)
    keep[exclude[(exclude >= 0) & (exclude < data.n_items)]] = False
    candidates = np.flatnonzero(keep)
    order = np.argsort(-data.item_popularity[candidates], kind="stable")
    return candidates[order[: int(limit)]].astype(np.int64)


# ----- the edited history -----------------------------------------------------------------------
def _check_items(data: Interactions, items: Iterable[int], what: str) -> np.ndarray:
    """int64 indices in the order given, duplicates dropped; NotFoundError for unknown ones."""
    raw = np.asarray(list(items), dtype=np.int64)
    bad = raw[(raw < 0) | (raw >= data.n_items)]
    if len(bad):
        raise NotFoundError(
            f"unknown item index(es) {bad.tolist()} to {what}: this dataset has items "
            f"0..{data.n_items - 1}; look raw ids up with whatif.item_indices"
        )
    _, first = np.unique(raw, return_index=True)
    return raw[np.sort(first)]


def edit_history(
    data: Interactions, user: int, *, add: Iterable[int] = (), remove: Iterable[int] = ()
) -> Interactions:
    """``user``'s history with ``remove`` taken out and ``add`` appended (most recent last).

    Returns interactions of this one user with ``data``'s vocabularies and side tables, so user
    and item indices (and side features keyed by them) mean the same. Kept items keep their
    time; added ones come after the latest, one second apart.

    Raises
    ------
    NotFoundError : unknown user or item index.
    DataError : an item to remove is not in the history; an item to add already is (and is not
        removed too: removing and adding an item moves it to the end).
    """
    user = int(user)
    if not 0 <= user < data.n_users:
        raise NotFoundError(
            f"unknown user index {user}: this dataset has users 0..{data.n_users - 1}; "
            "look the raw id up with Interactions.user_index"
        )
    add, remove = _check_items(data, add, "add"), _check_items(data, remove, "remove")
    history = user_history(data, user)
    where = f"user {data.user_ids[user]!r}"
    if len(missing := np.setdiff1d(remove, history)):
        raise DataError(
            f"items {item_labels(data, missing)} are not in the user's history, so they cannot "
            "be removed",
            where=where,
            fix="choose items to remove from the user's history",
        )
    kept = history[~np.isin(history, remove)]
    if len(seen := add[np.isin(add, kept)]):
        raise DataError(
            f"items {item_labels(data, seen)} are already in the user's history",
            where=where,
            fix="add items the user has not seen (search by title), or remove them first",
        )
    items = np.concatenate([kept, add]).astype(np.int64)
    times = None
    if data.timestamps is not None:
        rows = np.flatnonzero(data.users == user)
        latest = pd.Series(data.timestamps[rows], index=data.items[rows]).groupby(level=0).max()
        kept_times = latest.reindex(kept).to_numpy(dtype=np.int64)
        last = int(latest.max()) if len(latest) else 0
        times = np.concatenate([kept_times, last + 1 + np.arange(len(add), dtype=np.int64)])
    return replace(
        data,
        users=np.full(len(items), user, dtype=np.int32),
        items=items.astype(np.int32),
        values=np.ones(len(items), dtype=np.float32),
        timestamps=times,
        events=None,
        labels=None,
    )


# ----- the re-ranking ---------------------------------------------------------------------------
def what_if(
    model: Recommender,
    data: Interactions,
    user: int,
    *,
    add: Iterable[int] = (),
    remove: Iterable[int] = (),
    k: int = 10,
) -> WhatIf:
    """The user's top-k with the original history and with ``remove`` out and ``add`` in.

    Parameters
    ----------
    model : a fitted Recommender (on ``data``'s catalogue).
    data : interactions holding the user's history (the run's train part, or fold-in).
    user : the user's dense index.
    add : item indices to append to the history (most recent last, in this order).
    remove : item indices to take out of the history.
    k : length of both lists.

    Raises
    ------
    NotFoundError, DataError : see :func:`edit_history`; DataError when the model was fitted
        on another catalogue.
    """
    model._check_fitted()
    if data.n_items != model.n_items_:
        raise DataError(
            f"the data has {data.n_items} items but the model was fitted on {model.n_items_}",
            fix="pass the interactions of the run the model was trained on",
        )
    edited_data = edit_history(data, user, add=add, remove=remove)
    user = int(user)
    original, edited = user_history(data, user), user_history(edited_data, user)
    n_orig, n_edit = len(original), len(edited)
    # Three rows in one call: original, edited, empty (the empty one tells a history-blind model).
    seqs = Sequences(
        np.array([0, n_orig, n_orig + n_edit, n_orig + n_edit], dtype=np.int64),
        np.concatenate([original, edited]).astype(np.int32),
    )
    scores = _real_scores(model, seqs.to_csr(model.n_items_), seqs, user)
    reads = not (torch.equal(scores[0], scores[2]) and torch.equal(scores[1], scores[2]))
    k = max(1, min(int(k), model.n_items_ - max(n_orig, n_edit)))
    lists, ranks = [], []
    for row, seen in ((0, original), (1, edited)):
        s = scores[row].clone()
        s[torch.as_tensor(seen, dtype=torch.long, device=s.device)] = float("-inf")
        lists.append(_top_frame(data, s, k))
        ranks.append(_full_ranks(s))
    added = np.setdiff1d(edited, original)
    removed = np.setdiff1d(original, edited)
    table = _diff_table(data, lists[0], lists[1], ranks, added, removed)
    before_items, after_items = lists[0]["item_index"], lists[1]["item_index"]
    return WhatIf(
        model=model.name,
        user=user,
        added=added,
        removed=removed,
        history=edited,
        data=edited_data,
        before=lists[0],
        after=lists[1],
        table=table,
        entered=after_items[~after_items.isin(before_items)].to_numpy(dtype=np.int64),
        left=before_items[~before_items.isin(after_items)].to_numpy(dtype=np.int64),
        reads_history=reads,
        notes=tuple(_notes(model, reads, n_edit)),
    )


def _top_frame(data: Interactions, scores: torch.Tensor, k: int) -> pd.DataFrame:
    top = torch.topk(scores, k)
    items = top.indices.cpu().numpy().astype(np.int64)
    return pd.DataFrame(
        {
            "rank": np.arange(1, k + 1),
            "item": data.item_ids[items].astype(str),
            "title": data.item_titles()[items],
            "score": top.values.cpu().numpy(),
            "item_index": items,
        }
    )


def _full_ranks(scores: torch.Tensor) -> np.ndarray:
    """float64 [n_items] 1-based rank of every item (NaN where excluded, i.e. -inf)."""
    order = torch.argsort(scores, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(1, len(order) + 1, device=order.device)
    out = ranks.cpu().numpy().astype(np.float64)
    out[~torch.isfinite(scores).cpu().numpy()] = np.nan
    return out


def _diff_table(
    data: Interactions,
    before: pd.DataFrame,
    after: pd.DataFrame,
    ranks: list[np.ndarray],
    added: np.ndarray,
    removed: np.ndarray,
) -> pd.DataFrame:
    """One row per item of either list, ordered by the new rank (items that left last)."""
    items = pd.unique(np.concatenate([after["item_index"], before["item_index"]]))
    items = np.asarray(items, dtype=np.int64)
    k = len(after)
    old, new = ranks[0][items], ranks[1][items]
    in_old, in_new = old <= len(before), new <= k  # NaN compares False
    status = np.select(
        [in_new & ~in_old, in_old & ~in_new, new < old, new > old],
        ["entered", "left", "moved up", "moved down"],
        "unchanged",
    )
    why = np.where(
        np.isin(items, added),
        "added to the history",
        np.where(np.isin(items, removed), "removed from the history", ""),
    )
    table = pd.DataFrame(
        {
            "item": data.item_ids[items].astype(str),
            "title": data.item_titles()[items],
            "before": pd.array(np.where(np.isnan(old), None, old), dtype="Int64"),
            "after": pd.array(np.where(np.isnan(new), None, new), dtype="Int64"),
            "status": status,
            "why": why,
            "item_index": items,
        }
    )
    table.insert(4, "move", table["before"] - table["after"])
    sort_key = np.where(in_new, new, k + np.nan_to_num(old, nan=np.inf))
    return table.iloc[np.argsort(sort_key, kind="stable")].reset_index(drop=True)


def _notes(model: Recommender, reads_history: bool, n_edited: int) -> list[str]:
    notes = []
    if not reads_history:
        notes.append(
            f"{model.name} gives every history the same scores (it has no fold-in), so an edit "
            "cannot change its ranking; items only leave the list by entering the history"
        )
    window = history_window(model)
    if window is not None:
        notes.append(
            f"{model.name} reads the history in time order: added items come last, as the most "
            "recent"
            + (
                f"; it reads only the latest {window} of the {n_edited} items"
                if n_edited > window
                else ""
            )
        )
    return notes


# ----- explanations of edited histories in the background ------------------------------------
def edited_explanation_path(
    ws: Workspace,
    run_id: str,
    user_id: object,
    item_id: object,
    target: str,
    k: int,
    add: Sequence[object],
    remove: Sequence[object],
) -> Path:
    """Where the ``"explain_edited"`` task stores its JSON: beside the unedited explanations
    (:func:`recsys_core.explain.explanation_path`), named by a digest of the edit."""
    edit = json.dumps([[str(a) for a in add], sorted(str(r) for r in remove)])
    digest = hashlib.sha256(edit.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{user_id}__{item_id}__{target}_k{int(k)}")
    return ws.runs_dir / run_id / EXPLAIN_DIR / f"{safe}__edit_{digest}.json"


def explain_edited_task(
    ws: Workspace, payload: dict[str, Any], progress: Callable[..., None]
) -> dict[str, Any]:
    """Background task ``"explain_edited"``: explain a recommendation for an edited history.

    ``payload``: ``run``, ``user``, ``item``, ``add``, ``remove`` (raw ids; ``add`` in the order
    appended) and optional :func:`recsys_core.explain.explain` options. Writes the JSON to
    :func:`edited_explanation_path` and returns its headline numbers.
    """
    from recsys_core.explain import save_explanation, task_progress

    payload = dict(payload)
    missing = sorted({"run", "user", "item", "add", "remove"} - set(payload))
    if missing:
        raise ConfigError(
            f"explain_edited task: payload lacks {missing}; give run, user, item, add and remove"
        )
    run_id, user_id, item_id = payload.pop("run"), payload.pop("user"), payload.pop("item")
    add_ids, remove_ids = list(payload.pop("add")), list(payload.pop("remove"))
    device = payload.pop("device", "auto")
    art = finished_run(ws, run_id)
    split, dataset = art.split(), art.dataset()
    user, item = dataset.user_index(user_id), dataset.item_index(item_id)
    data = history_source(split, user)
    edited = edit_history(
        data, user, add=item_indices(data, add_ids), remove=item_indices(data, remove_ids)
    )
    model = art.model(device=device)
    exp = explain(model, edited, user, item, progress=task_progress(progress), **payload)
    path = edited_explanation_path(
        ws, run_id, user_id, item_id, exp.target, exp.k, add_ids, remove_ids
    )
    return save_explanation(exp, path)
