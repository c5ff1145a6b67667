"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019).

EASE learns an item x item weight matrix B with a zero diagonal by ridge regression of every
item column on all the others:

    min_B |X - X B|_F^2 + lambda |B|_F^2   s.t.  diag(B) = 0

whose closed form (Steck 2019, eq. 8) is

    P = (X^T X + lambda I)^-1,    B = I - P diag(1 / diag(P)),   i.e. B_ij = -P_ij / P_jj, B_jj = 0.

Two exact ways to get P, float32 on the device, both through a Cholesky factorisation:

- n_items <= n_users: factor the item Gram matrix G = X^T X + lambda I directly;
- n_users < n_items: the Woodbury identity turns the item x item inversion into a user x user
  solve, P = (I - X^T (lambda I + X X^T)^-1 X) / lambda = (I - Z^T Z) / lambda with
  Z = L^-1 X and L L^T = lambda I + X X^T. Same B, far cheaper when users are few.

A user's scores are ``history @ B``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.config import param, validate
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import DataError
from recsys_core.memory import available_bytes, check_fits, format_gb
from recsys_core.models.base import ProgressFn, Recommender, csr_to_tensor
from recsys_core.models.itemknn import BLOCK_FLOATS, popularity_damping


@dataclass(frozen=True)
class EASEConfig:
    """EASE hyperparameters."""

    # Steck (2019) used lambda = 500 on ML-20M / Netflix; RecBole's default is 250. On the fixed
    # ml-latest-small split, validation NDCG@10 is 0.2274 / 0.2296 / 0.2242 at 100 / 250 / 500.
    l2: float = param(
        250.0,
        "L2 regularisation lambda of the item-item regression",
        low=1e-6,
        high=1e7,
        log=True,
        search=(1.0, 1e4),
    )
    # The peak is about 2 dense n_items^2 float32 matrices (see EASE.peak_bytes): 7.3 GB at
    # 30,000 items, a third of a 24 GB machine; 40,000 items would peak near 13 GB.
    max_items: int = param(
        30_000,
        "refuse more items than this (fitting holds about two dense n_items^2 float32 "
        "matrices: 7.3 GB at 30,000 items)",
        low=2,
        high=10_000_000,
    )

    def __post_init__(self) -> None:
        validate(self)


class EASE(Recommender):
    """Closed-form item-item linear autoencoder (see module docstring).

    Balance: honours ``pop_norm`` by dividing column j of B by popularity_j^pop_norm (the
    popularity-normalised EASE variant discussed by Steck 2019, sec. 3.3).
    """

    name = "ease"
    family = "cf"
    Config = EASEConfig
    honours_balance = frozenset({"pop_norm"})

    def peak_bytes(self, n_users: int, n_items: int) -> int:
        """About the most memory ``fit`` holds at once (bytes, float32).

        Direct path: the Gram matrix and its Cholesky factor, then the factor and its inverse
        (2 n_items^2), plus one dense block of user rows. Woodbury path: X and L^-1 X with the
        user x user system and its factor, then L^-1 X and P. Measured on the CPU (RSS, 2
        threads): 10,000 items 0.81 GB direct (estimate 0.89), 0.62 GB Woodbury (0.58 + 10%).
        """
        f = 4
        if n_users < n_items:
            woodbury = max(2 * n_users * n_items + 2 * n_users**2, n_users * n_items + n_items**2)
            return int(1.1 * f * woodbury)
        return f * (2 * n_items**2 + min(BLOCK_FLOATS, n_users * n_items))

    def _most_items(self, n_users: int, budget: float) -> int:
        """The most items whose fit peaks within ``budget`` bytes (bisection on the estimate)."""
        low, high = 1, 1
        while self.peak_bytes(n_users, high) <= budget and high < 10**8:
            low, high = high, high * 2
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if self.peak_bytes(n_users, mid) <= budget else (low, mid)
        return low

    def state_bytes(self, n_users: int, n_items: int) -> int:
        """The saved B matrix: n_items^2 float32."""
        return 4 * n_items**2

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        n_users, n_items = train.n_users, train.n_items
        peak = self.peak_bytes(n_users, n_items)
        have = available_bytes(self.device)
        fits = self._most_items(n_users, HEADROOM * have) if have is not None else None
        if n_items > self.config.max_items:
            raise DataError(
                f"EASE on {n_items:,} items needs about {format_gb(peak)} at its peak (two "
                f"dense {n_items:,} x {n_items:,} float32 matrices), above "
                f"max_items={self.config.max_items:,}",
                where="model 'ease'",
                fix=_fewer_items_fix(self.config.max_items, fits, have),
            )
        check_fits(
            f"fitting ease on {n_items:,} items",
            self.device,
            peak,
            fix=_fewer_items_fix(self.config.max_items, fits, have),
            have=have,
            headroom=HEADROOM,
        )
        lam = float(self.config.l2)
        x = train.binary
        if n_users < n_items:
            p = _woodbury_inverse(x, lam, self.device)
        else:
            p = _direct_inverse(x, lam, self.device)
        progress(1, {"epoch": 1, "epochs_total": 2})
        # B = I - P diag(1/diag P): column j divided by -P_jj, then the diagonal set to 0
        diag = torch.diagonal(p).clone()
        b = p.div_(-diag[None, :])
        b.fill_diagonal_(0.0)
        damp = popularity_damping(train.item_popularity, self.balance.pop_norm, self.device)
        if damp is not None:
            b.mul_(damp[None, :])
        self.weights_ = b
        progress(2, {"epoch": 2, "epochs_total": 2})

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        """Scores [batch, n_items] = history @ B (float32 on the model's device)."""
        self._check_fitted()
        h = sp.csr_matrix(history, dtype=np.float32)
        if self.device.type in ("cpu", "cuda"):
            return torch.sparse.mm(csr_to_tensor(h, self.device), self.weights_)
        return torch.as_tensor(h.toarray(), device=self.device) @ self.weights_

    def item_similarity(self) -> np.ndarray:
        """float32 [n_items, n_items] B; ``B[i, j]`` is how much having item i predicts item j."""
        self._check_fitted()
        return self.weights_.cpu().numpy()

    def _state(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights_}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.weights_ = state["weights"].to(self.device, torch.float32)


#: Share of the free memory a fit may plan to use: the dataset, the split and the evaluation
#: that follows need the rest.
HEADROOM = 0.8


def _fewer_items_fix(max_items: int, fits: int | None, have: int | None) -> str:
    """A suggestion that fits: never "raise max_items" past what the free memory holds."""
    limit = min(max_items, fits) if fits is not None else max_items
    text = (
        f"keep at most {limit:,} items by raising the minimum interactions per item "
        "(import option min_item_interactions, CLI --min-item)"
    )
    if fits is not None and fits > max_items:
        text += (
            f", or raise max_items up to {fits:,} (what {HEADROOM:.0%} of the "
            f"{format_gb(have or 0)} free holds)"
        )
    return text + ", or use ItemKNN, which needs no dense item x item matrix"


def _woodbury_inverse(x: sp.csr_matrix, lam: float, device: torch.device) -> torch.Tensor:
    """P = (X^T X + lam I)^-1 via the user x user system (for n_users < n_items).

    Returns a dense float32 [n_items, n_items] tensor on ``device``.
    """
    xd = torch.as_tensor(x.toarray(), dtype=torch.float32, device=device)  # [U, I]
    k = xd @ xd.T  # [U, U]
    k.diagonal().add_(lam)
    chol = torch.linalg.cholesky(k)
    z = torch.linalg.solve_triangular(chol, xd, upper=False)  # L^-1 X, [U, I]
    del xd, k
    p = z.T @ z  # X^T K^-1 X, symmetric [I, I]
    p.neg_()
    p.diagonal().add_(1.0)
    return p.div_(lam)


def _direct_inverse(x: sp.csr_matrix, lam: float, device: torch.device) -> torch.Tensor:
    """P = (X^T X + lam I)^-1 by a Cholesky factorisation of the item Gram matrix.

    G = X^T X is accumulated over dense blocks of user rows, so memory stays at the
    [n_items, n_items] result plus one [block, n_items] slice however many users there are.
    """
    n_users, n_items = x.shape
    g = torch.zeros(n_items, n_items, dtype=torch.float32, device=device)
    rows = max(1, BLOCK_FLOATS // max(n_items, 1))
    for start in range(0, n_users, rows):  # blocks of users, not single users
        xb = torch.as_tensor(x[start : start + rows].toarray(), dtype=torch.float32, device=device)
        g.addmm_(xb.T, xb)
    g.diagonal().add_(lam)
    chol = torch.linalg.cholesky(g)
    del g
    return torch.cholesky_inverse(chol)
