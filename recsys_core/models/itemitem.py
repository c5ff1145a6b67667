"""Base of the models that score a history as ``history @ W`` with a sparse item-item ``W``.

ItemKNN (W = kept neighbour similarities) and RP3beta (W = damped random-walk weights) differ
only in how they build ``W``; scoring on the device, persistence and the ``item_similarity``
view used by the maps are written once here.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.data.interactions import Sequences
from recsys_core.models.base import Recommender, csr_from_state, csr_to_state, csr_to_tensor


class SparseItemItem(Recommender):
    """A Recommender whose learned state is one sparse [n_items, n_items] matrix ``weights_``."""

    def _set_weights(self, weights: sp.spmatrix) -> None:
        """Store ``W`` (float32 CSR) and its transpose on the device."""
        self.weights_ = sp.csr_matrix(weights, dtype=np.float32)
        # W^T as sparse CSR so a batch scores as (W^T @ H^T)^T without densifying W
        self.weights_t_ = csr_to_tensor(self.weights_.T.tocsr(), self.device)

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        """Scores [batch, n_items] = history @ W (float32 on the model's device)."""
        self._check_fitted()
        h = torch.as_tensor(
            sp.csr_matrix(history).toarray().T, dtype=torch.float32, device=self.device
        )
        return (self.weights_t_ @ h).T.contiguous()

    def item_similarity(self) -> sp.csr_matrix:
        """Sparse float32 [n_items, n_items] W: ``W[i, j]`` is how much history item i adds to
        item j's score."""
        self._check_fitted()
        return self.weights_

    def _state(self) -> dict[str, torch.Tensor]:
        return csr_to_state("weights_", self.weights_)

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self._set_weights(csr_from_state("weights_", state))
