"""Evaluation protocols: how a dataset is cut into train / valid / test without leakage.

Every protocol assigns each interaction row one part (train, valid, test, fold-in, or dropped)
with vectorised per-user ranks (``np.lexsort`` + group offsets, no Python loop over users), is
seeded and deterministic, and is verified by :func:`check_split`, which raises
:class:`~recsys_core.errors.DataError` on any violation. All parts share the dataset's
vocabularies, so a model fitted on ``train`` scores every item of the dataset.

Repeated (user, item) interactions are collapsed to their latest row for the per-user
protocols (``random``, ``leave_last``, ``users``) so that one pair can never sit on both sides
of the split; the description says how many rows that removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.interactions import Interactions
from recsys_core.errors import DataError
from recsys_core.split_file import load_split_file
from recsys_core.split_spec import PROTOCOL_FIELDS, PROTOCOLS, SplitSpec

TRAIN, VALID, TEST, FOLD_IN, DROP = 0, 1, 2, 3, -1
PART_NAMES = {"train": TRAIN, "valid": VALID, "test": TEST}
#: Spellings accepted in a predefined split column or file, mapped to the canonical part.
PART_ALIASES = {
    "train": "train",
    "training": "train",
    "trn": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
    "tst": "test",
}
@dataclass(frozen=True, eq=False)
class Split:
    """A dataset cut by a protocol.

    Attributes
    ----------
    spec : the SplitSpec that produced it.
    train, valid, test, fold_in : Interactions over the full vocabularies; ``valid`` is None when
        no validation part was asked for; ``fold_in`` (held-out users only) is the visible history
        of the test users, who are absent from ``train``.
    description : one paragraph for the UI/CLI saying what was done and what was dropped.
    test_users : int64 [n_test_users] sorted dense indices of users with a test interaction.
    exclusion : binary CSR [n_users, n_items] of items excluded from each user's test ranking
        (train + valid [+ fold_in]).
    cutoff : the global temporal cutoff (unix seconds) for ``temporal``, else None.
    """

    spec: SplitSpec
    train: Interactions
    valid: Interactions | None
    test: Interactions
    fold_in: Interactions | None
    description: str
    test_users: np.ndarray
    exclusion: sp.csr_matrix
    cutoff: int | None = None

    @property
    def history(self) -> Interactions:
        """What the test users are allowed to have seen (train [+ valid] or their fold-in)."""
        if self.fold_in is not None:
            return self.fold_in
        if self.valid is None:
            return self.train
        return _union(self.train, self.valid)


PartsFn = Callable[[Interactions, SplitSpec], tuple[np.ndarray, list[str], int | None]]


@dataclass(frozen=True)
class SplitProtocol:
    """A protocol's registry entry: key, one-sentence explanation for the UI, and its function.

    ``fn(data, spec)`` returns ``(part per row, notes, cutoff)`` with parts TRAIN/VALID/TEST/
    FOLD_IN/DROP.
    """

    name: str
    explanation: str
    fn: PartsFn


# ----- helpers (vectorised) ------------------------------------------------------------------
def _group_rank(
    users: np.ndarray, key: np.ndarray | tuple[np.ndarray, ...], n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each row within its user when sorted by ``key`` ascending (0 = smallest), and
    the user's row count per row. ``key`` may be a tuple of keys, last one primary (as in
    ``np.lexsort``). One lexsort, no loop over users."""
    keys = key if isinstance(key, tuple) else (key,)
    order = np.lexsort((*keys, users))
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - starts[users[order]]
    return rank, counts[users]


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)


def _latest_of_pair(data: Interactions) -> tuple[np.ndarray, int]:
    """Mask keeping only the latest row of each (user, item) pair, and how many rows it drops."""
    n = data.nnz
    time = data.timestamps if data.timestamps is not None else np.arange(n)
    pair = data.users.astype(np.int64) * data.n_items + data.items
    order = np.lexsort((np.arange(n), time, pair))
    last = np.ones(n, dtype=bool)
    last[:-1] = pair[order][1:] != pair[order][:-1]
    keep = np.zeros(n, dtype=bool)
    keep[order[last]] = True
    return keep, int(n - keep.sum())


def _holdout(
    users: np.ndarray, n_users: int, key: np.ndarray, test_share: float, valid_share: float
) -> np.ndarray:
    """Per-user holdout by ``key``: the first ceil-ish share are test, then valid, rest train.

    Each user with at least two rows keeps at least one training row and gets at least one test
    row when ``test_share > 0`` (rounded half up per user, as in the fixed MovieLens split).
    """
    rank, count = _group_rank(users, key, n_users)
    n_test = np.minimum(np.maximum(_round_half_up(count * test_share), 1), count - 1)
    n_test = np.where((count >= 2) & (test_share > 0), n_test, 0)
    n_valid = np.minimum(_round_half_up(count * valid_share), count - n_test - 1)
    n_valid = np.maximum(n_valid, 0)
    parts = np.full(len(users), TRAIN, dtype=np.int8)
    parts[rank < n_test + n_valid] = VALID
    parts[rank < n_test] = TEST
    return parts


def _rng_key(spec: SplitSpec, n: int, stream: int = 0) -> np.ndarray:
    return np.random.default_rng([spec.seed, stream]).random(n)


# ----- protocols -----------------------------------------------------------------------------
def _random(data: Interactions, spec: SplitSpec) -> tuple[np.ndarray, list[str], int | None]:
    keep, dropped = _latest_of_pair(data)
    parts = np.full(data.nnz, DROP, dtype=np.int8)
    idx = np.flatnonzero(keep)
    parts[idx] = _holdout(
        data.users[idx], data.n_users, _rng_key(spec, len(idx)), spec.test_ratio, spec.valid_ratio
    )
    notes = [f"{dropped} repeated user-item rows collapsed to their latest"] if dropped else []
    return parts, notes, None


def _leave_last(data: Interactions, spec: SplitSpec) -> tuple[np.ndarray, list[str], int | None]:
    keep, dropped = _latest_of_pair(data)
    idx = np.flatnonzero(keep)
    notes = [f"{dropped} repeated user-item rows collapsed to their latest"] if dropped else []
    if data.timestamps is None:
        notes.append("no timestamps: 'last' follows the order of the rows in the file")
        time = idx.astype(np.int64)
    else:
        time = data.timestamps[idx]
    users = data.users[idx]
    # Rank from the latest (rank 0 = most recent); ties broken by row order, latest row last.
    rank, count = _group_rank(users, (-idx, -time.astype(np.int64)), data.n_users)
    sub = np.full(len(idx), TRAIN, dtype=np.int8)
    has_test = count > spec.k
    sub[has_test & (rank < spec.k)] = TEST
    if spec.valid_k > 0:
        has_valid = count > spec.k + spec.valid_k
        sub[has_valid & (rank >= spec.k) & (rank < spec.k + spec.valid_k)] = VALID
    parts = np.full(data.nnz, DROP, dtype=np.int8)
    parts[idx] = sub
    return parts, notes, None


def _temporal(data: Interactions, spec: SplitSpec) -> tuple[np.ndarray, list[str], int | None]:
    if data.timestamps is None:
        raise DataError(
            "the temporal split needs timestamps and this dataset has none",
            where="split protocol 'temporal'",
            fix="choose the random or held-out-users protocol, or import a timestamp column",
        )
    t = data.timestamps
    if spec.cutoff > 0:
        cutoff = int(spec.cutoff)
    else:
        cutoff = int(np.quantile(t, 1.0 - spec.test_ratio, method="higher"))
    valid_from = (
        int(np.quantile(t, 1.0 - spec.test_ratio - spec.valid_ratio, method="higher"))
        if spec.valid_ratio > 0
        else cutoff
    )
    valid_from = min(valid_from, cutoff)
    parts = np.full(data.nnz, TRAIN, dtype=np.int8)
    parts[t >= valid_from] = VALID
    parts[t >= cutoff] = TEST
    if not (parts == TRAIN).any() or not (parts == TEST).any():
        raise DataError(
            f"the temporal cutoff {cutoff} leaves an empty train or test part",
            where="split protocol 'temporal'",
            fix="choose a cutoff inside the data's time range or another test_ratio",
        )
    notes = []
    # A pair already seen before the cutoff is excluded from the ranking, so it cannot be hit:
    # drop such repeats from valid/test rather than count them as unreachable targets.
    seen = sp.csr_matrix(
        (
            np.ones(int((parts == TRAIN).sum())),
            (data.users[parts == TRAIN], data.items[parts == TRAIN]),
        ),
        shape=(data.n_users, data.n_items),
    )
    seen.sum_duplicates()
    repeat = np.asarray(seen[data.users, data.items]).ravel() > 0
    later_repeat = repeat & (parts != TRAIN)
    # Valid pairs are excluded from the test ranking too.
    vmask = parts == VALID
    vseen = sp.csr_matrix(
        (np.ones(int(vmask.sum())), (data.users[vmask], data.items[vmask])),
        shape=(data.n_users, data.n_items),
    )
    test_repeat = (parts == TEST) & (np.asarray(vseen[data.users, data.items]).ravel() > 0)
    dropped = later_repeat | test_repeat
    if dropped.any():
        notes.append(
            f"{int(dropped.sum())} valid/test rows repeat an earlier pair and were dropped"
        )
    parts[dropped] = DROP
    # Users whose whole history is after the cutoff stay in the test as cold-start users (a
    # production system meets them too); the description says how many there are.
    train_count = np.bincount(data.users[parts == TRAIN], minlength=data.n_users)
    cold = (parts == TEST) & (train_count[data.users] == 0)
    if cold.any():
        n_cold = len(np.unique(data.users[cold]))
        notes.append(f"{n_cold} test users have no interaction before the cutoff (cold start)")
    return parts, notes, cutoff


def _users(data: Interactions, spec: SplitSpec) -> tuple[np.ndarray, list[str], int | None]:
    keep, dropped = _latest_of_pair(data)
    idx = np.flatnonzero(keep)
    notes = [f"{dropped} repeated user-item rows collapsed to their latest"] if dropped else []
    users = data.users[idx]
    counts = np.bincount(users, minlength=data.n_users)
    eligible = np.flatnonzero(counts >= 2)
    n_held = int(_round_half_up(np.array([len(eligible) * spec.test_ratio]))[0])
    n_held = min(max(n_held, 1), max(len(eligible) - 1, 0))
    if n_held == 0:
        raise DataError(
            "too few users with at least two interactions to hold any out",
            where="split protocol 'users'",
            fix="use a larger dataset or the random protocol",
        )
    rng = np.random.default_rng([spec.seed, 1])
    held = np.zeros(data.n_users, dtype=bool)
    held[rng.choice(eligible, size=n_held, replace=False)] = True
    sub = np.empty(len(idx), dtype=np.int8)
    in_held = held[users]
    # Held-out users: a random share of their history is the target, the rest is fold-in
    # (the strong-generalisation protocol of Liang et al. 2018, Mult-VAE).
    target = _holdout(users, data.n_users, _rng_key(spec, len(idx), 2), spec.target_ratio, 0.0)
    sub[in_held] = np.where(target[in_held] == TEST, TEST, FOLD_IN)
    # Training users: validation carved per user (random), so early stopping scores known users.
    rest = _holdout(users, data.n_users, _rng_key(spec, len(idx), 3), 0.0, spec.valid_ratio)
    sub[~in_held] = rest[~in_held]
    parts = np.full(data.nnz, DROP, dtype=np.int8)
    parts[idx] = sub
    return parts, notes, None


def _predefined(data: Interactions, spec: SplitSpec) -> tuple[np.ndarray, list[str], int | None]:
    if spec.split_file:
        labels = load_split_file(data, spec.split_file)
        source = f"file {Path(spec.split_file).name}"
    elif data.labels is not None:
        labels = data.labels
        source = "the dataset's split column"
    else:
        raise DataError(
            "a predefined split needs a split column in the data or a split file",
            where="split protocol 'predefined'",
            fix="import the data with a train/valid/test column or pass --split-file",
        )
    parts = _parse_labels(labels, source)
    return parts, [f"parts taken from {source}"], None


def _parse_labels(labels: np.ndarray, source: str) -> np.ndarray:
    text = pd.Series(labels, dtype=object).astype(str).str.strip().str.lower()
    canon = text.map(PART_ALIASES)
    bad = canon.isna().to_numpy()
    if bad.any():
        values = sorted(set(text[bad].tolist()))[:5]
        raise DataError(
            f"unknown split label(s) {values} in {source}",
            where=f"row {int(np.flatnonzero(bad)[0])}",
            fix="use train, valid or test",
        )
    return canon.map(PART_NAMES).to_numpy().astype(np.int8)


SPLITS: dict[str, SplitProtocol] = {
    "random": SplitProtocol(
        "random",
        "A random share of each user's interactions is hidden for testing (and validation); "
        "the rest trains the model.",
        _random,
    ),
    "leave_last": SplitProtocol(
        "leave_last",
        "Each user's last k interactions in time are the test (and the k before them the "
        "validation), RecBole's sequential protocol when k = 1.",
        _leave_last,
    ),
    "temporal": SplitProtocol(
        "temporal",
        "Everything after one global point in time is the test, so the model only ever learns "
        "from the past, as in production.",
        _temporal,
    ),
    "users": SplitProtocol(
        "users",
        "A share of users is removed from training entirely; the model sees part of their "
        "history at test time and must predict the rest (strong generalisation).",
        _users,
    ),
    "predefined": SplitProtocol(
        "predefined",
        "The train/valid/test parts come with the data (a column or a split file), so results "
        "compare exactly with other tools.",
        _predefined,
    ),
}


# ----- public API ----------------------------------------------------------------------------
def make_split(data: Interactions, spec: SplitSpec | None = None) -> Split:
    """Cut ``data`` by ``spec`` and verify the result with :func:`check_split`.

    Parameters
    ----------
    data : the encoded dataset.
    spec : protocol and options (defaults: random 70/10/20 per user, seed 0).

    Returns
    -------
    Split whose parts share ``data``'s vocabularies.

    Raises
    ------
    DataError
        When the protocol cannot apply to this data (no timestamps for ``temporal``, no labels
        for ``predefined``, no test users) or when the result leaks.
    """
    spec = spec or SplitSpec()
    if spec.protocol not in SPLITS:
        raise DataError(
            f"unknown split protocol {spec.protocol!r}",
            where="SplitSpec.protocol",
            fix=f"choose one of {sorted(SPLITS)}",
        )
    if data.nnz == 0:
        raise DataError("the dataset has no interactions to split", where="make_split")
    parts, notes, cutoff = SPLITS[spec.protocol].fn(data, spec)
    train = data.select(parts == TRAIN)
    valid = data.select(parts == VALID) if (parts == VALID).any() else None
    test = data.select(parts == TEST)
    fold_in = data.select(parts == FOLD_IN) if spec.protocol == "users" else None
    exclusion = train.binary
    for extra in (valid, fold_in):
        if extra is not None:
            exclusion = exclusion + extra.binary
    exclusion = exclusion.tocsr()
    exclusion.data[:] = 1.0
    test_users = np.unique(test.users).astype(np.int64)
    counts = {
        name: int((parts == code).sum())
        for name, code in (("train", TRAIN), ("valid", VALID), ("test", TEST), ("fold-in", FOLD_IN))
    }
    parts_text = ", ".join(f"{v:,} {k}" for k, v in counts.items() if v or k != "fold-in")
    text = (
        f"{SPLITS[spec.protocol].explanation} {parts_text} interactions; "
        f"{len(test_users):,} test users."
    )
    if fold_in is not None:
        text += " Held-out users are ranked from their fold-in history, which is excluded."
    elif valid is not None:
        text += " Test ranking excludes each user's training and validation items."
    if notes:
        text += " " + "; ".join(n[0].upper() + n[1:] for n in notes) + "."
    split = Split(spec, train, valid, test, fold_in, text, test_users, exclusion, cutoff)
    check_split(split)
    return split


def check_split(split: Split) -> None:
    """Verify a split; raise DataError naming the first violated guarantee.

    Checks: there are test users; no test (user, item) pair appears in train, valid or fold-in;
    held-out test users have no training interaction; ``leave_last``: no training or validation
    interaction of a user is later than that user's earliest test interaction; ``temporal``: no
    training interaction at or after the cutoff and no test interaction before it.
    """
    test = split.test
    if test.nnz == 0 or len(split.test_users) == 0:
        raise DataError(
            "the split has no test interactions",
            where=f"split protocol {split.spec.protocol!r}",
            fix="use a larger dataset, a larger test_ratio or a different protocol",
        )
    test_pairs = test.binary
    for name, part in (("train", split.train), ("valid", split.valid), ("fold-in", split.fold_in)):
        if part is None or part.nnz == 0:
            continue
        overlap = test_pairs.multiply(part.binary)
        if overlap.nnz:
            u, i = overlap.nonzero()
            raise DataError(
                f"{overlap.nnz} test interaction(s) also appear in {name} (leakage)",
                where=f"user {test.user_ids[u[0]]!r}, item {test.item_ids[i[0]]!r}",
                fix=f"give each user-item pair one part only; remove it from {name} or test",
            )
    if split.spec.protocol == "users":
        in_train = np.bincount(split.train.users, minlength=split.train.n_users) > 0
        leaked = split.test_users[in_train[split.test_users]]
        if len(leaked):
            raise DataError(
                f"{len(leaked)} held-out test user(s) also have training interactions",
                where=f"user {test.user_ids[leaked[0]]!r}",
                fix="held-out users must be absent from train",
            )
    if split.spec.protocol == "leave_last" and test.timestamps is not None:
        n = test.n_users
        first_test = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_test, test.users, test.timestamps)
        for name, part in (("train", split.train), ("valid", split.valid)):
            if part is None or part.nnz == 0:
                continue
            later = part.timestamps > first_test[part.users]
            if later.any():
                row = int(np.flatnonzero(later)[0])
                raise DataError(
                    f"{int(later.sum())} {name} interaction(s) are later than the user's test "
                    "interactions (time leakage)",
                    where=f"user {part.user_ids[part.users[row]]!r}",
                    fix="hold out each user's latest interactions",
                )
    if split.spec.protocol == "temporal" and split.cutoff is not None:
        if split.train.nnz and int(split.train.timestamps.max()) >= split.cutoff:
            raise DataError(
                "training interactions at or after the temporal cutoff (time leakage)",
                where=f"cutoff {split.cutoff}",
                fix="train only on interactions before the cutoff",
            )
        if int(test.timestamps.min()) < split.cutoff:
            raise DataError(
                "test interactions before the temporal cutoff",
                where=f"cutoff {split.cutoff}",
                fix="test only on interactions at or after the cutoff",
            )


def _union(a: Interactions, b: Interactions) -> Interactions:
    """Rows of ``a`` and ``b`` together, sorted by user then time (same vocabularies)."""
    users = np.concatenate([a.users, b.users])
    times = (
        np.concatenate([a.timestamps, b.timestamps])
        if a.timestamps is not None and b.timestamps is not None
        else None
    )
    order = np.lexsort((times, users)) if times is not None else np.argsort(users, kind="stable")

    def cat(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
        return None if x is None or y is None else np.concatenate([x, y])[order]

    from dataclasses import replace

    return replace(
        a,
        users=users[order],
        items=np.concatenate([a.items, b.items])[order],
        values=np.concatenate([a.values, b.values])[order],
        timestamps=None if times is None else times[order],
        events=cat(a.events, b.events),
        labels=cat(a.labels, b.labels),
    )


def describe_protocols() -> dict[str, str]:
    """Protocol key -> its one-sentence explanation (for the UI)."""
    return {k: v.explanation for k, v in SPLITS.items()}


__all__ = [
    "PROTOCOLS",
    "PROTOCOL_FIELDS",
    "SPLITS",
    "Split",
    "SplitProtocol",
    "SplitSpec",
    "check_split",
    "describe_protocols",
    "load_split_file",
    "make_split",
]
