"""The one data container: encoded user-item interactions with their id vocabularies.

Users and items are dense integer indices; the raw ids (strings or ints, as uploaded) are kept
in ``user_ids`` / ``item_ids`` so they round-trip exactly. Splits of one dataset share the same
vocabularies, so a model fitted on train scores every item of the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.columns import (
    CATEGORIES,
    EVENT,
    ITEM,
    SPLIT,
    TIMESTAMP,
    TITLE,
    USER,
    VALUE,
)
from recsys_core.errors import NotFoundError


@dataclass(frozen=True)
class Sequences:
    """Per-row item sequences in time order, stored CSR-style (no Python lists).

    ``items[indptr[r]:indptr[r + 1]]`` is row r's history, oldest first.
    """

    indptr: np.ndarray  # int64 [n_rows + 1]
    items: np.ndarray  # int32 [nnz]

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self, index: np.ndarray) -> Sequences:
        """Sequences of the given rows (vectorised gather)."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.lengths[index]
        indptr = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        offsets = np.repeat(self.indptr[index] - indptr[:-1], lengths)
        gather = offsets + np.arange(indptr[-1], dtype=np.int64)
        return Sequences(indptr, self.items[gather])

    def latest(self, n: int) -> Sequences:
        """Each row's latest ``n`` items, oldest first (vectorised gather).

        This is the one truncation rule of the sequence models: training windows, scoring,
        fold-in, attention and explanations all read a history through it (via
        :meth:`padded` or :meth:`recsys_core.models.sequential.SequenceModel.window`), so a
        history longer than the window is cut the same way everywhere.
        """
        n = int(n)
        if n < 1:
            raise ValueError(f"Sequences.latest: n must be at least 1, got {n}")
        lengths = np.minimum(self.lengths, n)
        indptr = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        offsets = np.repeat(self.indptr[1:] - lengths - indptr[:-1], lengths)
        return Sequences(indptr, self.items[offsets + np.arange(indptr[-1], dtype=np.int64)])

    def padded(self, max_len: int, pad: int) -> np.ndarray:
        """[n_rows, max_len] int64 matrix of the latest ``max_len`` items (:meth:`latest`),
        right-aligned, ``pad`` before.

        The most recent item is in the last column, which is what causal sequence models read.
        """
        kept = self.latest(max_len)
        lengths = kept.lengths
        out = np.full((self.n_rows, max_len), pad, dtype=np.int64)
        rows = np.repeat(np.arange(self.n_rows), lengths)
        # position within the row counted from its end: the newest item goes to column L - 1
        from_end = np.repeat(kept.indptr[1:], lengths) - np.arange(len(kept.items))
        out[rows, max_len - from_end] = kept.items
        return out

    def to_csr(self, n_items: int) -> sp.csr_matrix:
        """Binary history matrix of these sequences (duplicates collapse to 1)."""
        data = np.ones(len(self.items), dtype=np.float32)
        # Copies: scipy keeps the arrays it is given, and sum_duplicates sorts the indices in
        # place, which would reorder this (frozen) sequence's items by index and silently feed
        # sequence models a scrambled history (the Explain page's top-10 once did).
        m = sp.csr_matrix(
            (data, self.items.copy(), self.indptr.copy()), shape=(self.n_rows, n_items)
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    @classmethod
    def from_lists(cls, lists: list[list[int]]) -> Sequences:
        """Build from Python lists (for small inputs such as one user's edited history)."""
        lengths = np.array([len(x) for x in lists], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.concatenate([np.asarray(x, dtype=np.int32) for x in lists]) if lists else []
        return cls(indptr, np.asarray(items, dtype=np.int32))


@dataclass(frozen=True, eq=False)
class Interactions:
    """Encoded interactions.

    Attributes
    ----------
    user_ids, item_ids : raw ids indexed by the dense index (``user_ids[u]`` is user u's raw id).
    users, items : int32 [nnz] dense indices of each interaction, sorted by user then time.
    values : float32 [nnz] rating or value (1.0 for plain implicit events).
    timestamps : int64 [nnz] unix seconds, or None when the data has no time.
    events : object [nnz] event type per interaction, or None.
    item_table : side information indexed 0..n_items-1 (``title``, ``categories`` as
        ``"A|B"`` strings, ``text``, numeric columns, ``embedding`` as float arrays), or None.
    user_table : side information indexed 0..n_users-1, or None.
    labels : object [nnz] predefined split label per interaction (``train``/``valid``/``test``)
        when the source data carried one, else None.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray | None = None
    events: np.ndarray | None = None
    item_table: pd.DataFrame | None = None
    user_table: pd.DataFrame | None = None
    labels: np.ndarray | None = None

    # ----- sizes -----------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def nnz(self) -> int:
        return len(self.users)

    @property
    def has_time(self) -> bool:
        return self.timestamps is not None

    # ----- derived views (cached; the container is immutable) --------------------------------
    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """float32 CSR [n_users, n_items] of values (duplicates summed)."""
        m = sp.csr_matrix(
            (self.values.astype(np.float32), (self.users, self.items)),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        return m

    @cached_property
    def binary(self) -> sp.csr_matrix:
        """float32 CSR [n_users, n_items] with 1.0 wherever an interaction exists."""
        m = self.matrix.copy()
        m.data[:] = 1.0
        return m

    @cached_property
    def sequences(self) -> Sequences:
        """Every user's items in time order (interaction order when there is no time)."""
        if self.timestamps is not None:
            order = np.lexsort((self.timestamps, self.users))
        else:
            order = np.argsort(self.users, kind="stable")
        counts = np.bincount(self.users, minlength=self.n_users)
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return Sequences(indptr, self.items[order].astype(np.int32))

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """int64 [n_items] number of users who interacted with each item."""
        return np.asarray(self.binary.sum(axis=0)).ravel().astype(np.int64)

    @cached_property
    def user_activity(self) -> np.ndarray:
        """int64 [n_users] number of distinct items each user interacted with."""
        return np.diff(self.binary.indptr).astype(np.int64)

    # ----- derived datasets --------------------------------------------------------------------
    def select(self, mask: np.ndarray) -> Interactions:
        """The interactions where ``mask`` is True, with the same vocabularies and side tables."""
        mask = np.asarray(mask, dtype=bool)
        return replace(
            self,
            users=self.users[mask],
            items=self.items[mask],
            values=self.values[mask],
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            events=None if self.events is None else self.events[mask],
            labels=None if self.labels is None else self.labels[mask],
        )

    # ----- raw ids at the edges ------------------------------------------------------------------
    @cached_property
    def _user_lookup(self) -> pd.Index:
        return pd.Index(self.user_ids)

    @cached_property
    def _item_lookup(self) -> pd.Index:
        return pd.Index(self.item_ids)

    def user_index(self, raw: object) -> int:
        """Dense index of raw user id ``raw`` (also accepts its string form)."""
        return _lookup(self._user_lookup, raw, "user")

    def item_index(self, raw: object) -> int:
        """Dense index of raw item id ``raw`` (also accepts its string form)."""
        return _lookup(self._item_lookup, raw, "item")

    def item_titles(self) -> np.ndarray:
        """Display name per item: the title where the item table has one, else the raw id."""
        names = self.item_ids.astype(str).astype(object)
        if self.item_table is not None and TITLE in self.item_table.columns:
            titles = self.item_table[TITLE].to_numpy(dtype=object)
            present = pd.notna(titles) & (titles != "")
            names = np.where(present, titles, names)
        return names

    def item_categories(self) -> list[list[str]] | None:
        """Per item, its list of categories, or None when the item table has none."""
        if self.item_table is None or CATEGORIES not in self.item_table.columns:
            return None
        col = self.item_table[CATEGORIES].fillna("")
        return [[c for c in str(s).split("|") if c] for s in col]

    def to_frame(self) -> pd.DataFrame:
        """Interactions as a DataFrame with raw ids (columns: user, item, value[, timestamp])."""
        frame = pd.DataFrame(
            {USER: self.user_ids[self.users], ITEM: self.item_ids[self.items], VALUE: self.values}
        )
        if self.timestamps is not None:
            frame[TIMESTAMP] = self.timestamps
        if self.events is not None:
            frame[EVENT] = self.events
        if self.labels is not None:
            frame[SPLIT] = self.labels
        return frame

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        item_table: pd.DataFrame | None = None,
        user_table: pd.DataFrame | None = None,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
    ) -> Interactions:
        """Encode a clean frame with canonical columns (``user``, ``item``[, ``value``,
        ``timestamp``, ``event``, ``split``]). Validation belongs to the importer; this only
        encodes.

        ``item_table`` / ``user_table`` are indexed by raw id; rows for ids that have no
        interaction are dropped here (the importer reports them before calling this).
        ``user_ids`` / ``item_ids`` fix the vocabularies (a dataset version keeps its parent's
        indices); by default the ids are sorted.
        """
        user_codes, user_ids = _encode(frame[USER], user_ids, "user")
        item_codes, item_ids = _encode(frame[ITEM], item_ids, "item")
        values = (
            frame[VALUE].to_numpy(dtype=np.float32)
            if VALUE in frame
            else np.ones(len(frame), dtype=np.float32)
        )
        timestamps = frame[TIMESTAMP].to_numpy(dtype=np.int64) if TIMESTAMP in frame else None
        events = frame[EVENT].to_numpy(dtype=object) if EVENT in frame else None
        labels = frame[SPLIT].to_numpy(dtype=object) if SPLIT in frame else None
        users = user_codes.astype(np.int32)
        items = item_codes.astype(np.int32)
        order = (
            np.lexsort((timestamps, users))
            if timestamps is not None
            else np.argsort(users, kind="stable")
        )
        user_ids = np.asarray(user_ids)
        item_ids = np.asarray(item_ids)
        return cls(
            user_ids=user_ids,
            item_ids=item_ids,
            users=users[order],
            items=items[order],
            values=values[order],
            timestamps=None if timestamps is None else timestamps[order],
            events=None if events is None else events[order],
            labels=None if labels is None else labels[order],
            item_table=_align(item_table, item_ids),
            user_table=_align(user_table, user_ids),
        )


def _encode(column: pd.Series, vocab: np.ndarray | None, what: str) -> tuple[np.ndarray, object]:
    if vocab is None:
        return pd.factorize(column, sort=True)
    codes = pd.Index(vocab).get_indexer(column)
    if (codes < 0).any():
        raise NotFoundError(
            f"{int((codes < 0).sum())} {what} ids of the interactions are missing from the "
            f"stored vocabulary (e.g. {column[codes < 0].iloc[0]!r}); the dataset files are "
            "inconsistent: delete this version and append the batch again"
        )
    return codes, vocab


def _align(table: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame | None:
    if table is None:
        return None
    aligned = table.reindex(pd.Index(ids))
    return aligned.reset_index(drop=True)


def _lookup(index: pd.Index, raw: object, what: str) -> int:
    if raw in index:
        return int(index.get_loc(raw))
    text = str(raw)
    if index.dtype.kind in "iu":
        try:
            as_int = int(text)
        except ValueError:
            as_int = None
        if as_int is not None and as_int in index:
            return int(index.get_loc(as_int))
    else:
        matches = np.flatnonzero(index.astype(str) == text)
        if len(matches):
            return int(matches[0])
    raise NotFoundError(f"unknown {what} id {raw!r}: it has no interaction in this dataset")
