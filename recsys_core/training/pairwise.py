"""Batches of (user, positive, negatives, weight) for pairwise and sampled pointwise models.

One epoch = the training positives permuted once on the device and cut into batches; each
batch draws its negatives on the device from the configured :class:`NegativeSampler`. Nothing
loops over users or items in Python; the only loop is over batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from recsys_core.balance import BalanceConfig, TrainingData, make_sampler
from recsys_core.training.samplers import NegativeSampler, ScoreFn


@dataclass
class PairBatch:
    """One training batch (all tensors on the device).

    users, pos : int64 [b]; neg : int64 [b, n_negatives]; weight : float32 [b] or None.
    """

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    weight: torch.Tensor | None


class PairwiseData:
    """The positives of a fit on the device plus the sampler that completes each batch.

    Parameters
    ----------
    data : output of :func:`recsys_core.balance.prepare_training`.
    balance : the run's balance options (sampler kind, n_negatives, ...).
    batch_size : positives per batch.
    device : torch device.
    generator : seeded torch Generator for permutations and negatives.
    """

    def __init__(
        self,
        data: TrainingData,
        balance: BalanceConfig,
        *,
        batch_size: int,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        self.device = device
        self.generator = generator
        self.batch_size = int(batch_size)
        self.users = torch.as_tensor(data.users, device=device)
        self.items = torch.as_tensor(data.items, device=device)
        self.weights = (
            None if data.item_weights is None else torch.as_tensor(data.item_weights, device=device)
        )
        self.sampler: NegativeSampler = make_sampler(
            data.positives, balance, device=device, generator=generator
        )

    @property
    def n_batches(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def epoch(self, score_fn: ScoreFn | None = None) -> Iterator[PairBatch]:
        """Batches of one epoch (positives in a fresh random order)."""
        perm = torch.randperm(
            len(self.users), generator=self.generator, device=self.generator.device
        ).to(self.device)
        for idx in torch.split(perm, self.batch_size):
            users, pos = self.users[idx], self.items[idx]
            neg = self.sampler.sample(users, pos, score_fn)
            weight = None if self.weights is None else self.weights[pos]
            yield PairBatch(users, pos, neg, weight)

    def epochs(self, score_fn: ScoreFn | None = None) -> Callable[[int], Iterator[PairBatch]]:
        """``epoch -> batches``, the form :func:`train_loop` takes."""
        return lambda _epoch: self.epoch(score_fn)


__all__ = ["PairBatch", "PairwiseData"]
