"""Multi-interest recommender: ComiRec-SA (Cen et al. 2020, "Controllable Multi-Interest
Framework for Recommendation", KDD).

A user's latest ``max_len`` items ``H`` [L, d] are turned into K interest vectors by
self-attention (eq. 5-6 of the paper)::

    A = softmax(W2 tanh(W1 Hᵀ))    # [K, L], softmax over the history positions
    V = A H                        # [K, d] the user's interests

and an item is scored by its best-matching interest, ``max_k <v_k, e_i>`` (sec. 3.5, the
retrieval step). Training follows the paper (sec. 3.4): for a target item the interest used is
the argmax ``k* = argmax_k <v_k, e_target>`` and the loss is a softmax over items of
``<v_k*, e>``. By default that softmax runs over the full catalogue (as for SASRec here, see
Klenitskiy & Vasilev 2023); ``loss="sampled"`` uses batch-shared negatives from
``pop^neg_alpha`` like the paper's sampled softmax.

Batching reuses the sequence models' windows (:class:`recsys_core.training.sequences.
WindowBatches`, one window per user per step) and predicts every position: the attention scores
``W2 tanh(W1 h_j)`` of a position do not depend on the query, so the interests of every prefix
of the window come from one causally masked softmax over the same scores ([b, K, L, L]). For
that reason the item inputs carry no positional embedding (the paper adds one; MIND, Li et al.
2019, does not); time order enters through which items are in the window. Defaults: d 64,
K = 4 interests, attention width 4d, max_len 50 (the paper's settings on its smaller datasets),
Adam lr 1e-3.

``user_interests(users)`` returns the K vectors [b, K, d] (kept for the embedding maps);
``attention_weights(sequences)`` the attention [b, L] averaged over interests;
``user_embeddings`` the mean of a user's interests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recsys_core.config import param
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.models.base import ProgressFn
from recsys_core.models.sequential import SequenceConfig, SequenceModel
from recsys_core.training.losses import linear_cross_entropy
from recsys_core.training.sequences import SeqBatch

LOSSES = ("full", "sampled")
#: Latest positions of a window trained on next-item prediction.
NEXT_POSITIONS = 50


@dataclass(frozen=True)
class MultiInterestConfig(SequenceConfig):
    """ComiRec-SA hyperparameters (defaults: Cen et al. 2020, sec. 5.1)."""

    # Interests are read off the whole history, so it reads more of it than SASRec (pooling is
    # linear in the length): 200 items and 128 all-action items took NDCG@10 on ml-latest-small
    # from 0.143 (50 items) to 0.164, with lr 1e-3 (2e-3 was worse).
    max_len: int = param(200, "history length read (latest items)", low=2, high=2000)
    lr: float = param(1e-3, "learning rate (Adam)", low=1e-6, high=10.0, log=True)
    taste_items: int = param(
        128, "history items per user for the all-action loss", low=1, high=1000
    )
    n_interests: int = param(4, "number of interest vectors K per user", low=1, high=64)
    attn_width: int = param(0, "attention width d_a of W1 (0 = 4 x hidden)", low=0, high=16384)
    dropout: float = param(0.1, "dropout on the history item embeddings", low=0.0, high=0.9)
    loss: str = param("full", "full softmax over all items, or sampled softmax", choices=LOSSES)
    epochs: int = param(100, "maximum number of passes over the users", low=1, high=100_000)


class _ComiRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: MultiInterestConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.pad = n_items
        self.items = nn.Embedding(n_items + 1, d, padding_idx=n_items)
        width = cfg.attn_width or 4 * d
        self.w1 = nn.Linear(d, width, bias=False)
        self.w2 = nn.Linear(width, cfg.n_interests, bias=False)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.items.weight, std=d**-0.5)
        with torch.no_grad():
            self.items.weight[n_items].zero_()

    @property
    def item_weight(self) -> torch.Tensor:
        return self.items.weight[: self.pad]

    def scores(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(history embeddings [b, L, d], attention logits [b, K, L]) of padded ``seq``."""
        h = self.drop(self.items(seq))
        logits = self.w2(torch.tanh(self.w1(h))).transpose(1, 2)  # W2 tanh(W1 Hᵀ), eq. 5
        return h, logits

    def interests(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(interests [b, K, d], attention [b, K, L]) reading the whole window."""
        h, logits = self.scores(seq)
        keep = (seq != self.pad)[:, None, :]
        attn = torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=2)
        attn = torch.nan_to_num(attn, nan=0.0)  # an empty history has no interest (zeros)
        return attn @ h, attn

    def prefix_interests(self, seq: torch.Tensor, last: int | None = None) -> torch.Tensor:
        """[b, Lq, K, d] interests of the prefixes ``seq[:, :t+1]`` (causal softmax) ending at
        the ``last`` latest positions (all L when None)."""
        h, logits = self.scores(seq)
        length = seq.shape[1]
        n_q = length if last is None else min(last, length)
        keep = (seq != self.pad)[:, None, None, :]  # [b, 1, 1, L] key positions
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        mask = keep & causal[None, None, length - n_q :]  # [b, 1, Lq, Lk]
        attn = logits[:, :, None, :].expand(-1, -1, n_q, -1).masked_fill(~mask, float("-inf"))
        attn = torch.nan_to_num(torch.softmax(attn, dim=3), nan=0.0)  # [b, K, Lq, Lk]
        return (attn @ h[:, None]).transpose(1, 2)  # [b, Lq, K, d]


class MultiInterest(SequenceModel):
    """ComiRec-SA (Cen et al. 2020): K interests by self-attention, score = max over interests."""

    name = "multiinterest"
    family = "deep"
    Config = MultiInterestConfig

    def _build_net(self) -> nn.Module:
        return _ComiRecNet(self.n_items_, self.config)

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        cfg: MultiInterestConfig = self.config
        data = self._prepare(train)
        net, negatives, weights = self.net_, data.negatives, data.weights

        def interest_loss(v: torch.Tensor, t: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            """Softmax loss of targets ``t`` [n], each served by its best interest in ``v``."""
            target_emb = items[t]  # [n, d]
            # the interest that serves the target (argmax, Cen et al. 2020, eq. 8)
            k_star = torch.einsum("nkd,nd->nk", v, target_emb).argmax(dim=1)
            user = v[torch.arange(len(t), device=v.device), k_star]  # [n, d]
            if negatives is None:
                row_weights = None if weights is None else weights[t]
                return linear_cross_entropy(user, items, t, row_weights=row_weights)
            negs = negatives.draw()
            pos = (user * target_emb).sum(dim=1, keepdim=True)
            neg = (user @ items[negs].T).masked_fill(negs[None, :] == t[:, None], float("-inf"))
            loss = -torch.log_softmax(torch.cat([pos, neg], dim=1), dim=1)[:, 0]
            if weights is not None:
                loss = loss * weights[t]
            return loss.mean()

        def taste_interest_loss(v: torch.Tensor, taste: torch.Tensor, items: torch.Tensor):
            """:func:`interest_loss` of ``taste`` [b, m] against each row's interests [b, K, d]
            with one softmax per interest, not per target (the targets of a row share them)."""
            if negatives is not None:
                m = taste.shape[1]
                flat = v[:, None].expand(-1, m, -1, -1).reshape(-1, *v.shape[1:])
                return interest_loss(flat, taste.reshape(-1), items)
            logits = v @ items.T  # [b, K, n_items]
            own = logits.gather(2, taste[:, None, :].expand(-1, v.shape[1], -1))  # [b, K, m]
            k_star = own.argmax(dim=1, keepdim=True)  # the interest serving each target
            lse = torch.logsumexp(logits, dim=2)[:, :, None].expand_as(own)
            loss = (lse.gather(1, k_star) - own.gather(1, k_star))[:, 0]
            if weights is not None:
                loss = loss * weights[taste]
            return loss.mean()

        def step(batch: SeqBatch) -> torch.Tensor:
            inputs, targets = batch.inputs, batch.targets
            keep = (targets != self.n_items_) & (inputs != self.n_items_)
            # next-item prediction at the latest positions only; interests still attend over
            # the whole window (a softmax per position over 200 positions was 4x SASRec's)
            n_q = min(NEXT_POSITIONS, inputs.shape[1])
            keep = keep[:, -n_q:]
            items = net.item_weight.float()
            prefixes = net.prefix_interests(inputs, last=n_q)
            loss = interest_loss(prefixes[keep].float(), targets[:, -n_q:][keep], items)
            if batch.taste is not None:
                # the whole window's interests also predict items from anywhere in the history
                v, _ = net.interests(inputs)
                loss = loss + cfg.taste_weight * taste_interest_loss(v.float(), batch.taste, items)
            return loss

        self._train_windows(data, step, train, valid, progress)

    # ----- scoring ---------------------------------------------------------------------------
    def _interests(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.net_.eval()
        with torch.no_grad():
            return self.net_.interests(seq)

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        """Scores [batch, n_items]: the best dot product over the K interests."""
        self._check_fitted()
        interests, _ = self._interests(self._padded(history, sequences))
        with torch.no_grad():
            return (interests @ self.net_.item_weight.T).amax(dim=1).float()

    def user_interests(self, users: np.ndarray) -> np.ndarray:
        """float32 [len(users), K, d] interest vectors of training users."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        seq = self._padded(self.history_[users], self.sequences_.rows(users))
        return self._interests(seq)[0].float().cpu().numpy()

    def attention_weights(self, sequences: Sequences) -> np.ndarray:
        """[b, L] attention over the (pad-left) latest L items, mean over the K interests.

        Padded positions get zero weight. This is attention, not attribution.
        """
        self._check_fitted()
        return self._interests(self._padded(None, sequences))[1].mean(dim=1).float().cpu().numpy()

    def _user_vectors(self, history: sp.csr_matrix, sequences: Sequences | None) -> np.ndarray:
        """The mean of the history's interests (``user_interests`` keeps all K)."""
        interests, _ = self._interests(self._padded(history, sequences))
        return interests.mean(dim=1).float().cpu().numpy()
