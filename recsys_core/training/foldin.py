"""Fold-in of new histories for id-embedding models (users the model never saw).

A dot-product model scores ``u · v_i``; for a history ``H`` the user vector ``u`` is found in
closed form by weighted least squares on the fixed item vectors, as in iALS (Hu, Koren &
Volinsky 2008, eq. 4): observed items have target 1 and weight 1, every other item target 0
and weight ``w0``, plus an L2 penalty ``reg``::

    (w0 · VᵀV + (1 - w0) · V_Hᵀ V_H + reg · I) u = V_Hᵀ 1

``VᵀV`` is one ``d × d`` product shared by every row; ``V_Hᵀ V_H`` is a batched product over
each row's padded history, so the whole batch is solved at once with a Cholesky factorisation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def padded_indices(history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(index [b, L], mask [b, L]) of each row's column indices, padded with 0 / False."""
    history = history.tocsr()
    lengths = np.diff(history.indptr)
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    pos = history.indptr[:-1, None] + np.arange(width)[None, :]
    mask = np.arange(width)[None, :] < lengths[:, None]
    index = np.where(mask, history.indices[np.clip(pos, 0, max(history.nnz - 1, 0))], 0)
    return index.astype(np.int64), mask


def least_squares_foldin(
    item_vectors: torch.Tensor,
    history: sp.csr_matrix,
    *,
    reg: float = 0.1,
    unobserved_weight: float = 0.01,
    max_rows: int = 256,
) -> torch.Tensor:
    """User vectors [b, d] for the histories [b, n_items] (see module docstring).

    Parameters
    ----------
    item_vectors : float tensor [n_items, d] on the model's device.
    history : binary CSR [b, n_items].
    reg : L2 penalty on the user vector.
    unobserved_weight : weight ``w0`` of the items outside the history (target 0).
    max_rows : rows solved per chunk (bounds the padded [rows, L, d] gather).
    """
    v = item_vectors.float()
    d = v.shape[1]
    device = v.device
    gram = v.T @ v
    eye = torch.eye(d, device=device)
    out = torch.empty((history.shape[0], d), device=device)
    for start in range(0, history.shape[0], max_rows):
        rows = history[start : start + max_rows]
        index, mask = padded_indices(rows)
        vh = v[torch.as_tensor(index, device=device)]  # [r, L, d]
        vh = vh * torch.as_tensor(mask, device=device, dtype=v.dtype)[:, :, None]
        a = (
            unobserved_weight * gram[None]
            + (1.0 - unobserved_weight) * vh.transpose(1, 2) @ vh
            + reg * eye[None]
        )
        rhs = vh.sum(dim=1, keepdim=True).transpose(1, 2)  # [r, d, 1]
        chol = torch.linalg.cholesky(a)
        out[start : start + len(index)] = torch.cholesky_solve(rhs, chol).squeeze(2)
    return out


def calibrate_foldin_scale(
    item_vectors: torch.Tensor,
    user_vectors: torch.Tensor,
    history: sp.csr_matrix,
    *,
    reg: float,
    max_users: int = 512,
    seed: int = 0,
) -> float:
    """Scalar ``c`` that best maps fold-in scores onto the trained users' scores.

    The least-squares fold-in recovers a user's direction, not the scale the training loss
    gave the learned vectors; ``c = <S_fold, S_direct> / <S_fold, S_fold>`` over a seeded
    sample of at most ``max_users`` training users (least squares) makes the two comparable,
    so scores of folded-in and trained users live on one scale. Ranking is unaffected.
    """
    users = np.flatnonzero(np.diff(history.tocsr().indptr) > 0)
    if len(users) == 0:
        return 1.0
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    with torch.no_grad():
        folded = least_squares_foldin(item_vectors, history[users], reg=reg) @ item_vectors.T
        idx = torch.as_tensor(users, device=user_vectors.device)
        direct = user_vectors[idx].float() @ item_vectors.float().T
        denom = float((folded * folded).sum())
        return float((folded * direct).sum()) / denom if denom > 0 else 1.0


__all__ = ["calibrate_foldin_scale", "least_squares_foldin", "padded_indices"]
