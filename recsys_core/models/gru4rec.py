"""GRU4Rec: session-based recommendation with recurrent neural networks.

Hidasi, Karatzoglou, Baltrunas & Tikk (2016), "Session-based Recommendations with Recurrent
Neural Networks", ICLR; losses from Hidasi & Karatzoglou (2018), "Recurrent Neural Networks
with Top-k Gains for Session-based Recommendations", CIKM.

A GRU reads the time-ordered item embeddings; its hidden state at each position scores every
item by a dot product with the (tied) item embeddings. Training uses the same one-window-per-
user batching as SASRec (``recsys_core.training.sequences``). Losses:

- ``ce`` (default): cross-entropy over all items, the "softmax" loss the 2018 paper and the
  authors' later reproducibility study (Hidasi & Czapp 2023) found strong when affordable;
- ``bpr_max``: the 2018 paper's BPR-max over batch-shared sampled negatives (eq. 12) with its
  score regularisation, for large catalogues.

Defaults: one GRU layer, dropout 0.25 on the embeddings (2016 paper); hidden 128 (RecBole's
GRU4Rec), Adam lr 3e-3, and the all-action loss with 128 history items at weight 4: on
ml-latest-small's fixed random split (``bench``) a GRU's last state forgets most of a long
history, and predicting the whole history from it took NDCG@10 from 0.120 (hidden 64, lr 1e-3,
8 items at weight 1; below MostPopular's 0.128) to 0.159.
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
from recsys_core.training.sequences import (
    SeqBatch,
    next_item_loss,
)

LOSSES = ("ce", "bpr_max")


@dataclass(frozen=True)
class GRU4RecConfig(SequenceConfig):
    """GRU4Rec hyperparameters (Hidasi et al. 2016/2018)."""

    hidden: int = param(128, "embedding and hidden size", low=4, high=4096)
    lr: float = param(3e-3, "learning rate (Adam)", low=1e-6, high=10.0, log=True)
    taste_weight: float = param(
        4.0, "weight of the all-action loss (0 = next item only)", low=0.0, high=100.0
    )
    taste_items: int = param(
        128, "history items per user for the all-action loss", low=1, high=1000
    )
    n_layers: int = param(1, "stacked GRU layers", low=1, high=8)
    dropout: float = param(0.25, "dropout on the input embeddings", low=0.0, high=0.9)
    loss: str = param("ce", "cross-entropy over all items, or BPR-max on sampled", choices=LOSSES)
    bpreg: float = param(1.0, "BPR-max score regularisation (2018 paper, eq. 12)", low=0.0)


class _GRUNet(nn.Module):
    def __init__(self, n_items: int, cfg: GRU4RecConfig) -> None:
        super().__init__()
        self.pad = n_items
        self.items = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=n_items)
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.hidden, cfg.hidden, num_layers=cfg.n_layers, batch_first=True)
        nn.init.normal_(self.items.weight, std=cfg.hidden**-0.5)
        with torch.no_grad():
            self.items.weight[n_items].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """[b, L] pad-left item indices -> [b, L] x d hidden states."""
        # Pads come first and have zero embeddings, so the state entering the first real item is
        # the GRU's response to zeros, the same for every user: a learned start state.
        out, _ = self.gru(self.drop(self.items(seq)))
        return out

    @property
    def item_weight(self) -> torch.Tensor:
        return self.items.weight[: self.pad]


def bpr_max_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    negatives: torch.Tensor,
    *,
    pad: int,
    bpreg: float,
    target_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """BPR-max (Hidasi & Karatzoglou 2018, eq. 12) over batch-shared negatives."""
    keep = targets != pad
    h = hidden[keep].float()
    t = targets[keep]
    pos = (h * item_weight[t].float()).sum(dim=1, keepdim=True)
    neg = h @ item_weight[negatives].float().T
    hit = negatives[None, :] == t[:, None]
    soft = torch.softmax(neg.masked_fill(hit, float("-inf")), dim=1)
    loss = -torch.log((soft * torch.sigmoid(pos - neg)).sum(dim=1) + 1e-10)
    loss = loss + bpreg * (soft * neg.pow(2)).sum(dim=1)
    if target_weights is not None:
        loss = loss * target_weights[t]
    return loss.mean()


class GRU4Rec(SequenceModel):
    """GRU4Rec (Hidasi et al. 2016, losses of 2018) on the shared trainer."""

    name = "gru4rec"
    family = "deep"
    Config = GRU4RecConfig

    def _build_net(self) -> nn.Module:
        return _GRUNet(self.n_items_, self.config)

    def _sampled_loss(self) -> bool:
        return self.config.loss == "bpr_max"

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        cfg: GRU4RecConfig = self.config
        data = self._prepare(train)
        net, negatives = self.net_, data.negatives

        def step(batch: SeqBatch) -> torch.Tensor:
            hidden = net(batch.inputs)
            negs = negatives.draw() if negatives is not None else None
            if negs is None:
                loss = next_item_loss(
                    hidden,
                    batch.targets,
                    net.item_weight,
                    pad=self.n_items_,
                    target_weights=data.weights,
                )
            else:
                loss = bpr_max_loss(
                    hidden,
                    batch.targets,
                    net.item_weight,
                    negs,
                    pad=self.n_items_,
                    bpreg=cfg.bpreg,
                    target_weights=data.weights,
                )
            return loss + self._taste_term(hidden[:, -1], batch, data, negs)

        self._train_windows(data, step, train, valid, progress)

    def _encode(self, history: sp.csr_matrix, sequences: Sequences | None) -> torch.Tensor:
        seq = self._padded(history, sequences)
        self.net_.eval()
        with torch.no_grad():
            return self.net_(seq)[:, -1, :]

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        self._check_fitted()
        with torch.no_grad():
            return (self._encode(history, sequences) @ self.net_.item_weight.T).float()

    def _user_vectors(self, history: sp.csr_matrix, sequences: Sequences | None) -> np.ndarray:
        return self._encode(history, sequences).float().cpu().numpy()
