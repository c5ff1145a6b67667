"""Data-balance options: negative sampling, loss reweighting and resampling.

One frozen ``BalanceConfig`` travels with every run. Each model declares in
``Recommender.honours_balance`` which of its fields it honours; a non-default value for a field
the model does not honour is rejected by :func:`check_honoured` (never silently ignored).

Functions that turn the options into training data, weights and samplers:

- :func:`split_by_threshold` - explicit ratings as classes (positives / explicit negatives).
- :func:`head_items` - the head/tail boundary the resampling acts on.
- :func:`resample_interactions` - up-sample tail, down-sample head, cap per user.
- :func:`resampled_popularity` - the popularity curve before/after, for the Balance page.
- :func:`ips_weights` - inverse-propensity weights ``pop^-beta`` with mean 1.
- :func:`make_sampler` / :func:`negative_popularity` - the configured negative sampler and a
  preview of the popularity of the negatives it draws.
- :func:`prepare_training` - all of the above for one model fit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recsys_core.config import param, validate
from recsys_core.data.interactions import Interactions
from recsys_core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

    from recsys_core.training.samplers import NegativeSampler

NEG_SAMPLERS = ("uniform", "popularity", "in_batch", "hard")
RESAMPLERS = ("none", "upsample_tail", "downsample_head")


@dataclass(frozen=True)
class BalanceConfig:
    """Balance options; the defaults change nothing (uniform negatives, no reweighting)."""

    # negative sampling (pairwise / sampled-softmax models)
    neg_sampler: str = param("uniform", "how negatives are drawn", choices=NEG_SAMPLERS)
    neg_alpha: float = param(
        0.0,
        "popularity exponent of negative sampling (0 uniform, 1 proportional)",
        low=0.0,
        high=2.0,
    )
    n_negatives: int = param(1, "negatives per positive", low=1, high=1000)
    hard_pool: int = param(
        20,
        "hard negatives: candidates scored per positive, the highest-scored kept",
        low=2,
        high=1000,
    )
    # loss reweighting
    ips_beta: float = param(
        0.0,
        "inverse-propensity weight popularity^-beta on positives (0 = off)",
        low=0.0,
        high=2.0,
    )
    pos_weight: float = param(1.0, "class weight of positives vs negatives", low=0.01, high=1000.0)
    focal_gamma: float = param(0.0, "focal loss gamma (0 = plain loss)", low=0.0, high=10.0)
    # resampling of the training interactions
    resample: str = param("none", "resampling of training interactions", choices=RESAMPLERS)
    resample_factor: float = param(
        2.0,
        "up-sampling factor for tail items / down-sampling divisor for head items",
        low=1.0,
        high=100.0,
    )
    head_share: float = param(
        0.2,
        "share of items (most popular first) counted as head",
        low=0.0,
        high=1.0,
    )
    user_cap: int = param(0, "keep at most this many interactions per user (0 = no cap)", low=0)
    # closed-form / neighbourhood analogues
    pop_norm: float = param(
        0.0,
        "divide item columns by popularity^x (EASE, ItemKNN, RP3beta analogue)",
        low=0.0,
        high=2.0,
    )
    # explicit ratings as classes
    positive_threshold: float = param(
        0.0,
        "ratings at or above this are positives, below are explicit negatives (0 = all)",
        low=0.0,
    )

    def __post_init__(self) -> None:
        validate(self)

    def changed(self) -> set[str]:
        """Names of the fields set away from their defaults."""
        return {f.name for f in fields(self) if getattr(self, f.name) != f.default}


#: Fields that only qualify another field; they count as honoured when their parent is.
DEPENDENT = {
    "neg_alpha": "neg_sampler",
    "hard_pool": "neg_sampler",
    "resample_factor": "resample",
    "head_share": "resample",
}


def check_honoured(model_name: str, honoured: frozenset[str], balance: BalanceConfig) -> None:
    """Raise ConfigError naming the model and option for any changed option it ignores."""
    ignored = sorted(
        name
        for name in balance.changed()
        if name not in honoured and DEPENDENT.get(name) not in honoured
    )
    if ignored:
        raise ConfigError(
            f"model {model_name!r} does not honour balance option(s) {ignored}; "
            f"it honours {sorted(honoured) or 'none'}. Reset those options or pick another model."
        )


# ----- explicit ratings as classes
def split_by_threshold(data: Interactions, threshold: float) -> tuple[Interactions, Interactions]:
    """(positives, explicit negatives) of ``data``: values ``>= threshold`` are positives.

    With ``threshold == 0`` every interaction is a positive and the negatives are empty.
    """
    if threshold <= 0:
        return data, data.select(np.zeros(data.nnz, dtype=bool))
    is_pos = data.values >= threshold
    if not is_pos.any():
        raise DataError(
            f"no interaction has a value at or above positive_threshold={threshold}",
            where=f"values range {data.values.min():g}..{data.values.max():g}",
            fix="lower positive_threshold (0 treats every interaction as a positive)",
        )
    return data.select(is_pos), data.select(~is_pos)


# ----- resampling
def interaction_counts(data: Interactions) -> np.ndarray:
    """int64 [n_items] number of interactions (duplicates counted) per item."""
    return np.bincount(data.items, minlength=data.n_items).astype(np.int64)


def head_items(popularity: np.ndarray, head_share: float) -> np.ndarray:
    """bool [n_items]: True for the ``round(head_share * n_items)`` most popular items.

    Ties are broken by item index (stable sort) so the boundary is deterministic.
    """
    popularity = np.asarray(popularity)
    n_head = int(round(head_share * len(popularity)))
    order = np.argsort(-popularity, kind="stable")
    mask = np.zeros(len(popularity), dtype=bool)
    mask[order[:n_head]] = True
    return mask


def _random_rank_within_user(users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each interaction, its 0-based rank in a random order within its user."""
    order = np.lexsort((rng.random(len(users)), users))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - group_start
    return rank


def resample_interactions(
    data: Interactions, balance: BalanceConfig, seed: int = 0
) -> Interactions:
    """Training interactions resampled as ``balance`` says (same vocabularies).

    - ``upsample_tail``: every interaction with a tail item is repeated ``resample_factor``
      times in expectation (``floor(f)`` copies plus one more with probability ``f % 1``).
    - ``downsample_head``: every interaction with a head item is kept with probability
      ``1 / resample_factor``.
    - ``user_cap > 0``: a random subset of at most ``user_cap`` interactions per user is kept.

    Head = the ``head_share`` most popular items (:func:`head_items`). A user never loses all
    interactions: where down-sampling would drop every one, one of them (chosen at random) is
    kept. Repeated interactions are duplicate rows; models that train on interaction lists see
    them as extra weight (``Interactions.binary`` collapses them).
    """
    if balance.resample == "none" and balance.user_cap == 0:
        return data
    rng = np.random.default_rng(seed)
    users, n = data.users, data.nnz
    index = np.arange(n)
    if balance.resample != "none":
        head = head_items(interaction_counts(data), balance.head_share)[data.items]
        f = balance.resample_factor
        if balance.resample == "upsample_tail":
            copies = np.where(
                head, 1, np.floor(f).astype(np.int64) + (rng.random(n) < f % 1.0)
            ).astype(np.int64)
            index = np.repeat(index, copies)
        else:
            keep = ~head | (rng.random(n) < 1.0 / f)
            # keep one random interaction of every user who would otherwise vanish
            kept_per_user = np.bincount(users[keep], minlength=data.n_users)
            first = _random_rank_within_user(users, rng) == 0
            keep |= first & (kept_per_user[users] == 0)
            index = index[keep]
    if balance.user_cap > 0:
        rank = _random_rank_within_user(users[index], rng)
        index = index[rank < balance.user_cap]
    index = np.sort(index, kind="stable")  # keep the user-then-time order of the container
    return _take(data, index)


def _take(data: Interactions, index: np.ndarray) -> Interactions:
    from dataclasses import replace

    return replace(
        data,
        users=data.users[index],
        items=data.items[index],
        values=data.values[index],
        timestamps=None if data.timestamps is None else data.timestamps[index],
        events=None if data.events is None else data.events[index],
        labels=None if data.labels is None else data.labels[index],
    )


def resampled_popularity(
    data: Interactions, balance: BalanceConfig, seed: int = 0
) -> dict[str, np.ndarray]:
    """Popularity curves before and after resampling, for the Balance page.

    Returns
    -------
    dict with ``before`` and ``after`` (int64 [n_items] interaction counts per item, both in the
    item order of ``before`` sorted most popular first), ``order`` (that item order) and
    ``head`` (bool [n_items] head mask in that order).
    """
    before = interaction_counts(data)
    after = interaction_counts(resample_interactions(data, balance, seed))
    order = np.argsort(-before, kind="stable")
    head = head_items(before, balance.head_share)
    return {"before": before[order], "after": after[order], "order": order, "head": head[order]}


# ----- loss reweighting
def ips_weights(popularity: np.ndarray, beta: float) -> np.ndarray:
    """float32 [n_items] inverse-propensity weights ``w_i = c * max(pop_i, 1)^-beta``.

    The constant ``c`` makes the mean weight over the training interactions 1
    (``sum(pop * w) / sum(pop) == 1``), so reweighting moves emphasis from head to tail without
    changing the loss scale (Schnabel et al. 2016, propensity = popularity^beta).
    """
    pop = np.asarray(popularity, dtype=np.float64)
    raw = np.maximum(pop, 1.0) ** (-float(beta))
    total = pop.sum()
    c = total / float((pop * raw).sum()) if total > 0 else 1.0 / raw.mean()
    return (c * raw).astype(np.float32)


# ----- negative sampling
def make_sampler(
    positives: sp.csr_matrix,
    balance: BalanceConfig,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> NegativeSampler:
    """The negative sampler ``balance`` asks for, over the given positives."""
    from recsys_core.training.samplers import NegativeSampler

    return NegativeSampler(
        positives,
        kind=balance.neg_sampler,
        n_negatives=balance.n_negatives,
        alpha=balance.neg_alpha,
        hard_pool=balance.hard_pool,
        device=device,
        generator=generator,
    )


def negative_popularity(
    data: Interactions, balance: BalanceConfig, *, n_draws: int = 100_000, seed: int = 0
) -> np.ndarray:
    """int64 [n_items] how often each item is drawn as a negative (preview, no model needed).

    ``hard`` needs a trained model, so the preview shows its uniform candidate pool instead.
    """
    import torch

    from recsys_core.training.samplers import NegativeSampler

    kind = "uniform" if balance.neg_sampler == "hard" else balance.neg_sampler
    positives = data.binary
    sampler = NegativeSampler(
        positives,
        kind=kind,
        n_negatives=1,
        alpha=balance.neg_alpha,
        generator=torch.Generator().manual_seed(seed),
    )
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, data.nnz, size=n_draws)
    users = torch.as_tensor(data.users[pick].astype(np.int64))
    items = torch.as_tensor(data.items[pick].astype(np.int64))
    negs = sampler.sample(users, items).numpy().ravel()
    return np.bincount(negs, minlength=data.n_items).astype(np.int64)


@dataclass(frozen=True)
class TrainingData:
    """What a model trains on after the balance options are applied.

    Attributes
    ----------
    users, items : int64 [n] positive interactions (duplicates = up-sampled copies).
    positives : binary CSR [n_users, n_items] of the positives (for rejection of negatives).
    counts : float32 CSR [n_users, n_items] multiplicity of each positive.
    negatives : binary CSR [n_users, n_items] explicit negatives (ratings below the
        positive threshold; empty without a threshold).
    item_weights : float32 [n_items] IPS weights of positives, or None when ``ips_beta == 0``.
    """

    users: np.ndarray
    items: np.ndarray
    positives: sp.csr_matrix
    counts: sp.csr_matrix
    negatives: sp.csr_matrix
    item_weights: np.ndarray | None


def prepare_training(data: Interactions, balance: BalanceConfig, seed: int = 0) -> TrainingData:
    """Apply the threshold, resampling and IPS options to ``data`` for one fit."""
    pos, neg = split_by_threshold(data, balance.positive_threshold)
    pos = resample_interactions(pos, balance, seed)
    shape = (data.n_users, data.n_items)
    counts = sp.csr_matrix(
        (np.ones(pos.nnz, dtype=np.float32), (pos.users, pos.items)), shape=shape
    )
    counts.sum_duplicates()
    positives = counts.copy()
    positives.data[:] = 1.0
    negatives = neg.binary - neg.binary.multiply(positives)  # an item rated both ways is positive
    negatives.eliminate_zeros()
    weights = ips_weights(np.asarray(positives.sum(axis=0)).ravel(), balance.ips_beta)
    return TrainingData(
        users=pos.users.astype(np.int64),
        items=pos.items.astype(np.int64),
        positives=positives.tocsr(),
        counts=counts.tocsr(),
        negatives=sp.csr_matrix(negatives),
        item_weights=weights if balance.ips_beta > 0 else None,
    )
