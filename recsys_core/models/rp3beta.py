"""RP3beta: a popularity-damped three-step random walk over the user-item graph.

Paudel, Christoffel, Newell & Bernstein (2016), "Updatable, accurate, diverse, and scalable
recommendations for interactive applications", building on P^3 (Cooper et al. 2014) and
Christoffel et al. (2015). From item i a walker steps to a user who has i, then to an item j of
that user:

    P_ui = X / |u|   (row-normalised user -> item transitions)
    P_iu = X^T / |i| (row-normalised item -> user transitions)
    W_ij = [(P_iu^alpha) (P_ui^alpha)]_ij / pop_j^beta

(alpha applied element-wise to the transition probabilities, beta damping popular targets),
then only each row's ``topk`` largest entries are kept and rows are L1-normalised, as in the
reference implementation of Dacrema et al. (2019), who found it as strong as much heavier neural
models. Defaults: topk = 100 as theirs; alpha and beta see ``RP3betaConfig``.

A user with binary history h gets ``h @ W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.config import param, validate
from recsys_core.data.interactions import Interactions
from recsys_core.models.base import (
    ProgressFn,
    csr_to_tensor,
)
from recsys_core.models.itemitem import SparseItemItem
from recsys_core.models.itemknn import blockwise_topk


@dataclass(frozen=True)
class RP3betaConfig:
    """RP3beta hyperparameters (defaults after Dacrema et al. 2019)."""

    # Dacrema et al. report alpha ~ 1, beta ~ 0.6 on their sets; on the validation part of
    # the fixed ml-latest-small split (alpha, beta) = (1, 0.6) / (1, 0.3) / (0.7, 0.3) give
    # NDCG@10 0.1637 / 0.1894 / 0.1923, so the defaults are the latter (still in their range).
    alpha: float = param(
        0.7,
        "exponent applied to the transition probabilities",
        low=0.0,
        high=5.0,
        search=(0.1, 2.0),
    )
    beta: float = param(
        0.3,
        "popularity damping of the target item (0 = plain P^3)",
        low=0.0,
        high=2.0,
        search=(0.0, 1.0),
    )
    topk: int = param(
        100, "neighbours kept per item", low=1, high=100_000, log=True, search=(5, 1000)
    )
    normalize: bool = param(True, "L1-normalise each item's kept neighbour weights")

    def __post_init__(self) -> None:
        validate(self)


class RP3beta(SparseItemItem):
    """Random-walk item-item recommender with popularity damping (see module docstring).

    Balance: honours ``pop_norm`` as extra damping of the target popularity, i.e. the
    effective exponent is ``beta + pop_norm`` (applied before the top-k selection).
    """

    name = "rp3beta"
    family = "cf"
    Config = RP3betaConfig
    honours_balance = frozenset({"pop_norm"})

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        cfg = self.config
        x = train.binary
        user_deg = np.maximum(np.diff(x.indptr), 1).astype(np.float32)
        item_deg = np.maximum(train.item_popularity, 1).astype(np.float64)
        # P_ui ^ alpha, element-wise (binary X: every nonzero is 1/|u|)
        p_ui = sp.diags((1.0 / user_deg) ** cfg.alpha) @ x
        # P_iu^T ^ alpha as users x items: column i scaled by (1/|i|)^alpha
        p_iu_t = (x @ sp.diags((1.0 / item_deg) ** cfg.alpha)).astype(np.float32).tocsc()
        damping = torch.as_tensor(
            item_deg ** -(cfg.beta + self.balance.pop_norm), dtype=torch.float32, device=self.device
        )
        left = csr_to_tensor(sp.csr_matrix(p_ui.T, dtype=np.float32), self.device)  # [I, U]

        def block(start: int, end: int) -> torch.Tensor:
            return torch.as_tensor(p_iu_t[:, start:end].toarray(), device=self.device)

        def post(prod: torch.Tensor, start: int, end: int) -> torch.Tensor:
            # prod[j, i - start] = (P_iu P_ui)[i, j]; damp the target j, drop self-loops
            prod.mul_(damping[:, None])
            sources = torch.arange(start, end, device=self.device)
            prod[sources, sources - start] = 0.0
            return prod

        targets, sources, vals = blockwise_topk(
            left, block, post, cfg.topk, train.n_items, progress
        )
        n = train.n_items
        w = sp.csr_matrix((vals, (sources, targets)), shape=(n, n), dtype=np.float32)
        if cfg.normalize:
            sums = np.asarray(w.sum(axis=1)).ravel()
            w = sp.diags(1.0 / np.where(sums > 0, sums, 1.0)).astype(np.float32) @ w
        self._set_weights(w)
