"""Negative samplers, vectorised on the device.

Every sampler draws ``n_negatives`` items per (user, positive) pair and rejects a user's own
positives with a sorted-key membership test (key = ``user * n_items + item``, looked up with
``torch.searchsorted``), re-drawing only the rejected slots for up to ``MAX_ROUNDS`` rounds.
A collision can survive only when a user's positives cover nearly the whole distribution the
sampler draws from (e.g. a user who rated almost every item); the ``collision_rate_`` attribute
records the share of slots left colliding after the last call.

Kinds (``BalanceConfig.neg_sampler``):

- ``uniform``: every item with equal probability.
- ``popularity``: ``P(i) ∝ pop_i^alpha`` (alpha = 0 is uniform, 1 proportional), drawn by
  ``searchsorted`` on the CDF (Mikolov et al. 2013 use alpha = 0.75 for word2vec negatives).
- ``in_batch``: the positives of the other rows of the batch (so items in proportion to their
  training popularity, as in sampled-softmax two-tower training, Yi et al. 2019); rejected
  slots re-draw from the batch pool, and when a user's positives cover the pool a collision
  remains (rare; measured in ``collision_rate_``).
- ``hard``: for each negative, ``hard_pool`` candidates drawn uniformly (positives rejected),
  scored by the current model, the highest-scored kept (Rendle & Freudenthaler 2014 adaptive
  sampling; Zhang et al. 2013 dynamic negative sampling).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.errors import ConfigError

MAX_ROUNDS = 20
KINDS = ("uniform", "popularity", "in_batch", "hard")

#: ``score_fn(users [b], items [b, m]) -> scores [b, m]`` used by the hard sampler.
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sampling_probabilities(popularity: np.ndarray, alpha: float) -> np.ndarray:
    """float64 [n_items] probabilities ``pop^alpha / sum(pop^alpha)`` (uniform when alpha=0).

    Items never seen in training have zero probability for alpha > 0; if no item has any
    popularity the distribution falls back to uniform.
    """
    pop = np.asarray(popularity, dtype=np.float64)
    if alpha == 0 or pop.sum() <= 0:
        return np.full(len(pop), 1.0 / len(pop))
    weights = np.where(pop > 0, pop, 0.0) ** alpha
    return weights / weights.sum()


class NegativeSampler:
    """Draw negatives for batches of (user, positive item) pairs.

    Parameters
    ----------
    positives : binary CSR [n_users, n_items] of each user's training positives.
    kind : one of ``uniform``, ``popularity``, ``in_batch``, ``hard``.
    n_negatives : negatives per positive.
    alpha : popularity exponent (``popularity`` sampler).
    hard_pool : candidates per negative (``hard`` sampler).
    device : where samples are drawn and returned.
    generator : torch Generator (on ``device`` or CPU) for reproducible draws.
    """

    def __init__(
        self,
        positives: sp.csr_matrix,
        *,
        kind: str = "uniform",
        n_negatives: int = 1,
        alpha: float = 0.0,
        hard_pool: int = 20,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"neg_sampler: {kind!r} is not a sampler; choose one of {KINDS}")
        self.kind = kind
        self.n_negatives = int(n_negatives)
        self.hard_pool = int(hard_pool)
        self.device = torch.device(device)
        self.generator = generator or torch.Generator().manual_seed(0)
        positives = positives.tocsr()
        self.n_users, self.n_items = positives.shape
        coo = positives.tocoo()
        keys = coo.row.astype(np.int64) * self.n_items + coo.col.astype(np.int64)
        self.keys = torch.as_tensor(np.unique(keys), device=self.device)
        popularity = np.asarray((positives > 0).sum(axis=0)).ravel()
        self.probs = sampling_probabilities(popularity, alpha if kind == "popularity" else 0.0)
        self.cdf = torch.as_tensor(np.cumsum(self.probs), dtype=torch.float64, device=self.device)
        self.collision_rate_ = 0.0

    # ----- primitives ----------------------------------------------------------------------
    def _rand(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.rand(
            shape, generator=self.generator, device=self.generator.device, dtype=torch.float64
        ).to(self.device)

    def _draw_items(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Items from the sampler's base distribution (uniform or pop^alpha)."""
        if self.kind == "popularity":
            # inverse-CDF sampling; clamp guards against the last CDF value rounding below 1
            idx = torch.searchsorted(self.cdf, self._rand(shape), right=True)
            return idx.clamp_(max=self.n_items - 1)
        return torch.randint(
            self.n_items, shape, generator=self.generator, device=self.generator.device
        ).to(self.device)

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Bool tensor shaped like ``items``: is ``items[r, j]`` a positive of ``users[r]``."""
        if len(self.keys) == 0:
            return torch.zeros_like(items, dtype=torch.bool)
        query = users.reshape(-1, *([1] * (items.dim() - 1))) * self.n_items + items
        pos = torch.searchsorted(self.keys, query).clamp_(max=len(self.keys) - 1)
        return self.keys[pos] == query

    def _reject(
        self, users: torch.Tensor, items: torch.Tensor, redraw: Callable[[int], torch.Tensor]
    ) -> torch.Tensor:
        """Re-draw the slots of ``items`` that are positives of their row's user."""
        for _ in range(MAX_ROUNDS):
            bad = self.is_positive(users, items)
            n_bad = int(bad.sum())
            if n_bad == 0:
                break
            items[bad] = redraw(n_bad)
        bad = self.is_positive(users, items)
        self.collision_rate_ = float(bad.float().mean()) if items.numel() else 0.0
        return items

    # ----- public --------------------------------------------------------------------------
    def sample(
        self,
        users: torch.Tensor,
        pos_items: torch.Tensor | None = None,
        score_fn: ScoreFn | None = None,
    ) -> torch.Tensor:
        """int64 [b, n_negatives] negatives for the rows ``users`` [b].

        ``pos_items`` [b] (the batch's positives) is required by ``in_batch``; ``score_fn``
        by ``hard``.
        """
        users = users.to(self.device)
        b, n = len(users), self.n_negatives
        if self.kind == "in_batch":
            if pos_items is None:
                raise ConfigError("in_batch negative sampling needs the batch's positive items")
            pool = pos_items.to(self.device)

            def redraw_pool(m: int) -> torch.Tensor:
                pick = torch.randint(
                    len(pool), (m,), generator=self.generator, device=self.generator.device
                )
                return pool[pick.to(self.device)]

            if b < 2:
                return self._reject(users, self._draw_items((b, n)), self._draw_flat)
            # a random non-zero shift per slot never picks the row's own positive
            shift = torch.randint(
                1, b, (b, n), generator=self.generator, device=self.generator.device
            ).to(self.device)
            idx = (torch.arange(b, device=self.device)[:, None] + shift) % b
            return self._reject(users, pool[idx], redraw_pool)
        if self.kind == "hard":
            if score_fn is None:
                raise ConfigError("hard negative sampling needs the model's score function")
            cands = self._reject(users, self._draw_items((b, n * self.hard_pool)), self._draw_flat)
            with torch.no_grad():
                scores = score_fn(users, cands).float().view(b, n, self.hard_pool)
            best = scores.argmax(dim=2, keepdim=True)
            return cands.view(b, n, self.hard_pool).gather(2, best).squeeze(2)
        return self._reject(users, self._draw_items((b, n)), self._draw_flat)

    def _draw_flat(self, m: int) -> torch.Tensor:
        return self._draw_items((m,))


__all__ = ["KINDS", "MAX_ROUNDS", "NegativeSampler", "ScoreFn", "sampling_probabilities"]
