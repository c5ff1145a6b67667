"""Batches of time-ordered windows for the sequence models (SASRec, GRU4Rec).

One training example per user per step, as in the SASRec paper (Kang & McAuley 2018, sec.
III-F): a window of ``max_len + 1`` consecutive items is cut from the user's history; the first
``max_len`` are the input and every position predicts the next item (targets = the window
shifted by one). RecBole instead trains on every prefix as a separate example, which is what
makes its epochs slow; predicting all positions of one window at once uses the same signal.

Each epoch the window end is drawn at random per user (the latest window with probability
``p_latest``, otherwise uniformly among valid ends), so long histories are covered across
epochs while the most recent behaviour, which the test ranking depends on most, is seen often.
Everything is vectorised over users with numpy gathers; there is no loop over users.

Optionally (``taste_items > 0``) each example also carries items drawn at random from the user's
*whole* training history, which the last position must predict too (:func:`taste_loss`). This
is the "dense all-action" objective of PinnerFormer (Pancha et al. 2022): the next item alone
teaches short-term intent, while held-out items under a random split, and a user's long-term
taste in general, are spread over the whole history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recsys_core.data.interactions import Sequences
from recsys_core.errors import ConfigError
from recsys_core.training.losses import linear_cross_entropy
from recsys_core.training.samplers import sampling_probabilities


def windows(seqs: Sequences, ends: np.ndarray, length: int, pad: int) -> np.ndarray:
    """[n_rows, length] windows ending (exclusively) at ``ends`` (absolute positions).

    Row r holds ``items[ends[r] - length : ends[r]]`` restricted to row r's own segment,
    right-aligned with ``pad`` before it.
    """
    starts = seqs.indptr[:-1, None]
    src = ends[:, None] - length + np.arange(length)[None, :]
    valid = src >= starts
    if len(seqs.items) == 0:
        return np.full(src.shape, pad, dtype=np.int64)
    out = seqs.items[np.clip(src, 0, len(seqs.items) - 1)].astype(np.int64)
    return np.where(valid, out, pad)


class WindowBatches:
    """Random next-item windows, one per user, in shuffled batches of users.

    Parameters
    ----------
    seqs : training sequences (oldest first); users with fewer than 2 items are skipped.
    max_len : input length L (windows have L + 1 items).
    batch_size : users per batch.
    pad : padding index (``n_items``).
    device : where batches are put.
    seed : numpy seed for the permutation and window ends.
    p_latest : probability of taking the most recent window.
    taste_items : items per user drawn from the whole history for :func:`taste_loss` (0 = off).
    """

    def __init__(
        self,
        seqs: Sequences,
        *,
        max_len: int,
        batch_size: int,
        pad: int,
        device: torch.device,
        seed: int,
        p_latest: float = 0.5,
        taste_items: int = 0,
    ) -> None:
        lengths = seqs.lengths
        self.rows = np.flatnonzero(lengths >= 2)
        self.seqs = seqs.rows(self.rows)
        self.max_len = max_len
        self.batch_size = batch_size
        self.pad = pad
        self.device = device
        self.p_latest = p_latest
        self.taste_items = taste_items
        self.rng = np.random.default_rng(seed)

    @property
    def n_batches(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def epoch(self, _epoch: int = 0) -> Iterator[SeqBatch]:
        """Yield batches of inputs [b, L] and next-item targets [b, L] (int64; pad marks empty
        positions), plus ``taste`` [b, taste_items] items from each user's whole history."""
        n = len(self.rows)
        lengths = self.seqs.lengths
        # window end (exclusive, relative to the row start) in [2, length]
        rel_end = 2 + (self.rng.random(n) * (lengths - 1)).astype(np.int64)
        latest = self.rng.random(n) < self.p_latest
        rel_end = np.where(latest, lengths, np.minimum(rel_end, lengths))
        ends = self.seqs.indptr[:-1] + rel_end
        win = windows(self.seqs, ends, self.max_len + 1, self.pad)
        taste = None
        if self.taste_items:
            pick = (self.rng.random((n, self.taste_items)) * lengths[:, None]).astype(np.int64)
            taste = self.seqs.items[self.seqs.indptr[:-1, None] + pick].astype(np.int64)
        order = self.rng.permutation(n)
        for start in range(0, n, self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = torch.as_tensor(win[rows], device=self.device)
            extra = None if taste is None else torch.as_tensor(taste[rows], device=self.device)
            yield SeqBatch(batch[:, :-1], batch[:, 1:], extra)


@dataclass(frozen=True)
class SeqBatch:
    """One batch of windows: ``inputs``/``targets`` [b, L]; ``taste`` [b, m] or None."""

    inputs: torch.Tensor
    targets: torch.Tensor
    taste: torch.Tensor | None = None


class SharedNegatives:
    """Negatives shared by a whole batch for sampled softmax, drawn from ``pop^alpha``.

    Sharing one set of negatives across the batch (as GRU4Rec's mini-batch sampling and most
    sampled-softmax trainers do) turns the scoring into one [positions, n] matmul.
    """

    def __init__(
        self, popularity: np.ndarray, alpha: float, n: int, device: torch.device, seed: int
    ) -> None:
        probs = sampling_probabilities(popularity, alpha)
        self.probs = torch.as_tensor(probs, dtype=torch.float32, device=device)
        self.n = n
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.device = device

    def draw(self) -> torch.Tensor:
        """int64 [n] item indices (with replacement)."""
        idx = torch.multinomial(
            self.probs.cpu(), self.n, replacement=True, generator=self.generator
        )
        return idx.to(self.device)


def next_item_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    *,
    pad: int,
    negatives: torch.Tensor | None = None,
    target_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the next item at every non-pad position.

    Parameters
    ----------
    hidden : [b, L, d] sequence representations.
    targets : [b, L] next items (``pad`` where there is none).
    item_weight : [n_items, d] output item embeddings.
    negatives : [m] shared sampled negatives; None for the full softmax over all items.
    target_weights : [n_items] per-item loss weights (inverse propensity), or None.
    """
    keep = targets != pad
    t = targets[keep]
    if negatives is None:
        weights = None if target_weights is None else target_weights[t]
        return linear_cross_entropy(hidden[keep], item_weight, t, row_weights=weights)
    h = hidden[keep].float()
    pos = (h * item_weight[t].float()).sum(dim=1, keepdim=True)
    neg = h @ item_weight[negatives].float().T
    # an accidental hit (a sampled negative equal to the target) must not be pushed down
    neg = neg.masked_fill(negatives[None, :] == t[:, None], float("-inf"))
    loss = -torch.log_softmax(torch.cat([pos, neg], dim=1), dim=1)[:, 0]
    if target_weights is not None:
        loss = loss * target_weights[t]
    return loss.mean()


def taste_loss(
    last: torch.Tensor,
    taste: torch.Tensor,
    item_weight: torch.Tensor,
    *,
    negatives: torch.Tensor | None = None,
    target_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of items from the whole history at the last position (all-action loss).

    Parameters
    ----------
    last : [b, d] representation at the last position.
    taste : [b, m] items drawn from each user's training history.
    item_weight, negatives, target_weights : as in :func:`next_item_loss`.
    """
    if negatives is None:
        # Every target of a row shares one softmax (the last position's): one [b, n_items]
        # logit matrix and one log-sum-exp per row, not one per target; the naive form cost
        # m times more and was most of a GRU4Rec epoch on the CPU with m = 128.
        logits = last.float() @ item_weight.float().T
        loss = torch.logsumexp(logits, dim=1, keepdim=True) - logits.gather(1, taste)
        if target_weights is not None:
            loss = loss * target_weights[taste]
        return loss.mean()
    m = taste.shape[1]
    hidden = last[:, None, :].expand(-1, m, -1)
    return next_item_loss(
        hidden, taste, item_weight, pad=-1, negatives=negatives, target_weights=target_weights
    )


def shared_negatives_for(
    model: Any, popularity: np.ndarray, sampled: bool, n_sampled: int
) -> SharedNegatives | None:
    """The batch-shared negative sampler for sampled softmax, honouring the balance options."""
    balance = model.balance
    if not sampled:
        if {"neg_sampler", "n_negatives"} & balance.changed():
            raise ConfigError(
                f"model {model.name!r}: negative-sampling options need loss='sampled' "
                "(the full softmax uses every item as a negative)"
            )
        return None
    if balance.neg_sampler not in ("uniform", "popularity"):
        raise ConfigError(
            f"model {model.name!r} samples shared negatives per batch: neg_sampler must be "
            f"'uniform' or 'popularity', got {balance.neg_sampler!r}"
        )
    alpha = balance.neg_alpha if balance.neg_sampler == "popularity" else 0.0
    n = max(n_sampled, balance.n_negatives)
    return SharedNegatives(popularity, alpha, n, model.device, model.seed)
