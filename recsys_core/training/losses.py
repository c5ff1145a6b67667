"""Losses shared by the torch models, with the balance reweightings built in.

- :func:`bpr_loss`: pairwise ``-log σ(s_pos - s_neg)`` (Rendle et al. 2009, eq. 7), optional
  per-positive weights (inverse propensity, Schnabel et al. 2016) and a focal modulation
  ``(1 - σ(x))^γ`` (Lin et al. 2017) that down-weights pairs already ranked correctly.
- :func:`bce_loss`: pointwise binary cross-entropy with a positive class weight, per-example
  weights and the same focal modulation (NeuMF, He et al. 2017, eq. 7).
- :func:`multinomial_nll`: ``-Σ_i w_i x_ui log softmax(z_u)_i`` (Mult-VAE, Liang et al. 2018,
  eq. 2), with optional per-item weights.

All return the mean over examples as a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    gamma: float = 0.0,
) -> torch.Tensor:
    """Pairwise BPR loss.

    Parameters
    ----------
    pos : [b] scores of the positives.
    neg : [b, n] scores of their negatives.
    weights : [b] per-positive weights (e.g. inverse propensity), or None.
    gamma : focal exponent; 0 gives the plain BPR loss.
    """
    diff = pos.float()[:, None] - neg.float()
    loss = -F.logsigmoid(diff)
    if gamma > 0:
        # focal modulation: (1 - σ(x))^γ with σ(x) the probability the pair is ordered right
        loss = loss * torch.sigmoid(-diff).pow(gamma)
    loss = loss.mean(dim=1)
    if weights is not None:
        loss = loss * weights
    return loss.mean()


def bce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    pos_weight: float = 1.0,
    gamma: float = 0.0,
) -> torch.Tensor:
    """Binary cross-entropy on logits with class weight and focal modulation.

    Parameters
    ----------
    logits, labels : same shape; labels in {0, 1}.
    weights : per-example weights of the same shape, or None.
    pos_weight : multiplies the loss of positive examples (class rebalancing).
    gamma : focal exponent (Lin et al. 2017); 0 gives plain BCE.
    """
    logits = logits.float()
    labels = labels.float()
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    if gamma > 0:
        p_true = torch.where(labels > 0.5, torch.sigmoid(logits), torch.sigmoid(-logits))
        loss = loss * (1.0 - p_true).pow(gamma)
    if pos_weight != 1.0:
        loss = loss * torch.where(labels > 0.5, pos_weight, 1.0)
    if weights is not None:
        loss = loss * weights
    return loss.mean()


def multinomial_nll(
    logits: torch.Tensor, targets: torch.Tensor, *, item_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Multinomial log-likelihood loss per user, averaged over the batch.

    Parameters
    ----------
    logits : [b, n_items] decoder outputs.
    targets : [b, n_items] binary (or weighted) click vectors.
    item_weights : [n_items] weights on the positives' log-likelihood terms, or None.
    """
    log_probs = F.log_softmax(logits.float(), dim=1)
    x = targets if item_weights is None else targets * item_weights[None, :]
    return -(log_probs * x).sum(dim=1).mean()


__all__ = ["bce_loss", "bpr_loss", "multinomial_nll"]
