"""Losses shared by the torch models, with the balance reweightings built in.

- :func:`bpr_loss`: pairwise ``-log σ(s_pos - s_neg)`` (Rendle et al. 2009, eq. 7), optional
  per-positive weights (inverse propensity, Schnabel et al. 2016) and a focal modulation
  ``(1 - σ(x))^γ`` (Lin et al. 2017) that down-weights pairs already ranked correctly.
- :func:`bce_loss`: pointwise binary cross-entropy with a positive class weight, per-example
  weights and the same focal modulation (NeuMF, He et al. 2017, eq. 7).
- :func:`multinomial_nll`: ``-Σ_i w_i x_ui log softmax(z_u)_i`` (Mult-VAE, Liang et al. 2018,
  eq. 2), with optional per-item weights.
- :func:`linear_cross_entropy`: full-softmax cross-entropy of ``hidden @ items.T`` without the
  [n, n_items] logit matrix (the next-item loss of the sequence models).

All return the mean over examples as a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Most logits one chunk of :func:`linear_cross_entropy` holds: 2^22 floats (16 MB), below
#: glibc's largest mmap threshold (32 MB), so the CPU allocator recycles the block instead of
#: mapping fresh pages for every step.
CE_CHUNK_FLOATS = 2**22


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


def linear_cross_entropy(
    hidden: torch.Tensor,
    items: torch.Tensor,
    targets: torch.Tensor,
    *,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mean_r w_r CE(softmax(hidden_r . items^T), targets_r)`` without the logit matrix.

    The value and gradients of ``F.cross_entropy(hidden @ items.T, targets)`` (times
    ``row_weights`` before the mean), computed over chunks of rows of at most
    ``CE_CHUNK_FLOATS`` logits. Each chunk's gradients (softmax minus one-hot, times the
    row weight) are taken on the spot, as in Liger Kernel's fused linear cross-entropy and
    Wijmans et al. 2024 ("Cut your losses in large-vocabulary language models"), so neither
    pass holds [n, n_items] floats: for SASRec on ml-latest-small that matrix was 90 MB per
    step and its page faults and passes were most of a CPU epoch.

    Parameters
    ----------
    hidden : [n, d] representations (any float dtype; computed in at least float32).
    items : [n_items, d] output item embeddings.
    targets : int64 [n] target items.
    row_weights : [n] per-row loss weights (e.g. inverse propensity of the target), or None.
    """
    if hidden.shape[0] == 0:  # nothing to predict: zero loss with zero gradients
        return (hidden.sum() + items.sum()) * 0.0
    return _LinearCrossEntropy.apply(hidden, items, targets, row_weights)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, items, targets, row_weights):  # type: ignore[override]
        dtype = torch.promote_types(hidden.dtype, torch.float32)
        need_hidden, need_items = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # under the trainer's bf16 autocast the products would run in bf16; the loss wants float32
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), items.to(dtype)
            grad_h = torch.empty_like(h) if need_hidden else None
            grad_w = torch.zeros_like(w) if need_items else None
            total = h.new_zeros(())
            n = h.shape[0]
            rows = max(1, CE_CHUNK_FLOATS // max(w.shape[0], 1))
            for start in range(0, n, rows):  # a few chunks of rows, never one row at a time
                hc, tc = h[start : start + rows], targets[start : start + rows, None]
                logits = hc @ w.T
                lse = torch.logsumexp(logits, dim=1, keepdim=True)
                loss = (lse - logits.gather(1, tc)).squeeze(1)
                wc = None if row_weights is None else row_weights[start : start + rows, None]
                total += loss.sum() if wc is None else (loss * wc[:, 0]).sum()
                if grad_h is None and grad_w is None:
                    continue
                # d loss / d logits = softmax - one-hot, in place of the logits
                probs = logits.sub_(lse).exp_()
                probs.scatter_add_(1, tc, torch.full_like(tc, -1, dtype=dtype))
                if wc is not None:
                    probs.mul_(wc.to(dtype))
                if grad_h is not None:
                    torch.mm(probs, w, out=grad_h[start : start + rows])
                if grad_w is not None:
                    grad_w.addmm_(probs.T, hc)
        ctx.n = n
        ctx.dtypes = (hidden.dtype, items.dtype)
        ctx.save_for_backward(grad_h, grad_w)
        return total / n

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.n
        out_h = None if grad_h is None else (grad_h * scale).to(ctx.dtypes[0])
        out_w = None if grad_w is None else (grad_w * scale).to(ctx.dtypes[1])
        return out_h, out_w, None, None


__all__ = ["bce_loss", "bpr_loss", "linear_cross_entropy", "multinomial_nll"]
