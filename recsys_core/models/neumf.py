"""NeuMF: neural matrix factorisation (GMF + MLP), trained pointwise with sampled negatives.

He, Liao, Zhang, Nie, Hu & Chua (2017), "Neural Collaborative Filtering", WWW. Two branches
share nothing: GMF ``phi_GMF = p_u ⊙ q_i`` (eq. 9) and an MLP over ``[p'_u, q'_i]`` (eq. 10);
their outputs are concatenated and mapped to one logit (eq. 11). The loss is binary
cross-entropy over observed interactions and sampled negatives (eq. 7), 4 negatives per
positive in the paper (sec. 4.4). Defaults follow RecBole's NeuMF (64-d embeddings for both
branches, MLP 128-64, dropout 0.1), trained without the optional pre-training (the paper's
fig. 3 shows NeuMF without pre-training is already competitive). Learning rate 3e-3, measured
on ml-latest-small's fixed split (2-core CPU): NDCG@10 0.193 in 121 s, against 0.197 in 147 s
at 2e-3, 0.174 in 125 s at 5e-3, and RecBole's NeuMF 0.164 in 538 s.

Negatives per positive: the config's ``n_negatives`` (paper: 4) unless the run's
``BalanceConfig.n_negatives`` is set away from its default, which then wins.

Balance: sampler kind, n_negatives, IPS weights on positives, class weight ``pos_weight``,
focal gamma, resampling, user cap, and a positive threshold whose explicit negatives enter the
loss as labelled negatives.

Fold-in (``score_history``): the network is non-linear, so a new history gets fresh user
vectors (both branches, started at the mean training user) optimised for ``foldin_steps``
Adam steps on the BCE loss over all items (history items positive; the rest negative with a
weight that mirrors the training ratio of negatives to positives). Rows are solved together.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recsys_core.balance import BalanceConfig, prepare_training
from recsys_core.config import param
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.models.base import ProgressFn, Recommender, dense_rows
from recsys_core.training.losses import bce_loss
from recsys_core.training.pairwise import PairBatch, PairwiseData
from recsys_core.training.trainer import TrainConfig, make_generator, train_loop


@dataclass(frozen=True)
class NeuMFConfig(TrainConfig):
    """NeuMF hyperparameters (He et al. 2017; embedding/MLP sizes as RecBole's defaults)."""

    mf_dim: int = param(64, "GMF embedding dimension", low=1, high=4096)
    mlp_dim: int = param(64, "MLP embedding dimension (per side)", low=1, high=4096)
    mlp_layers: tuple = param((128, 64), "MLP hidden widths, first to last")
    dropout: float = param(0.1, "dropout in the MLP branch", low=0.0, high=0.99)
    n_negatives: int = param(
        4, "sampled negatives per positive (paper: 4; a balance n_negatives overrides)", low=1
    )
    epochs: int = param(100, "maximum number of passes over the positives", low=1, high=10_000)
    batch_size: int = param(4096, "positives per optimiser step", low=1, high=1_000_000)
    lr: float = param(3e-3, "learning rate", low=1e-6, high=10.0, log=True)
    patience: int = param(
        5, "stop after this many validations without a better valid NDCG@10", low=1, high=1000
    )
    foldin_steps: int = param(50, "Adam steps of the fold-in of a new history", low=1, high=10_000)
    foldin_lr: float = param(0.05, "learning rate of the fold-in", low=1e-6, high=10.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        from recsys_core.errors import ConfigError

        if not self.mlp_layers or any(int(w) < 1 for w in self.mlp_layers):
            raise ConfigError(
                f"NeuMFConfig.mlp_layers: {self.mlp_layers!r} must be positive widths, e.g. 128,64"
            )


class _NeuMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, cfg: NeuMFConfig) -> None:
        super().__init__()
        self.user_mf = nn.Embedding(n_users, cfg.mf_dim)
        self.item_mf = nn.Embedding(n_items, cfg.mf_dim)
        self.user_mlp = nn.Embedding(n_users, cfg.mlp_dim)
        self.item_mlp = nn.Embedding(n_items, cfg.mlp_dim)
        layers: list[nn.Module] = []
        width = 2 * cfg.mlp_dim
        for out in cfg.mlp_layers:
            layers += [nn.Dropout(cfg.dropout), nn.Linear(width, int(out)), nn.ReLU()]
            width = int(out)
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(cfg.mf_dim + width, 1)
        for emb in (self.user_mf, self.item_mf, self.user_mlp, self.item_mlp):
            nn.init.normal_(emb.weight, std=0.01)  # paper: N(0, 0.01)

    def logits(self, u_mf: torch.Tensor, u_mlp: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """User vectors [b, d] and items [b, m] -> logits [b, m].

        The MLP's first layer on ``[u, i]`` is computed as ``W_u u + W_i i``: the user half once
        per row instead of once per (user, item) pair, a third of a training step's work with 4
        negatives. In training, the input dropout mask of the user half is therefore shared by
        the row's positive and its negatives (each item half keeps its own mask).
        """
        first, drop, d = self.mlp[1], self.mlp[0], u_mlp.shape[1]
        user_part = drop(u_mlp) @ first.weight[:, :d].T + first.bias  # [b, h1]
        item_part = drop(self.item_mlp(items)) @ first.weight[:, d:].T  # [b, m, h1]
        hidden = self.mlp[3:](torch.relu(user_part[:, None, :] + item_part))
        gmf = u_mf[:, None, :] * self.item_mf(items)
        return self.out(torch.cat([gmf, hidden], dim=-1)).squeeze(-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.logits(self.user_mf(users), self.user_mlp(users), items)

    def logits_all_items(self, u_mf: torch.Tensor, u_mlp: torch.Tensor) -> torch.Tensor:
        """User vectors [b, d] -> logits [b, n_items] against the whole catalogue (eval mode).

        The same function as :meth:`logits`, computed in an order that scoring can afford: the
        first MLP layer on ``[u, i]`` is ``W_u u + W_i i``, so the item half is computed once
        per item instead of once per (user, item) pair, and the GMF half is a matrix product.
        """
        if self.training:  # dropout masks are per item: the item half cannot be shared
            n = self.item_mf.num_embeddings
            items = torch.arange(n, device=u_mf.device)[None, :].expand(len(u_mf), -1)
            return self.logits(u_mf, u_mlp, items)
        first, d = self.mlp[1], u_mlp.shape[1]
        user_part = u_mlp @ first.weight[:, :d].T + first.bias  # [b, h1]
        item_part = self.item_mlp.weight @ first.weight[:, d:].T  # [n_items, h1]
        hidden = self.mlp[3:](torch.relu(user_part[:, None, :] + item_part[None, :, :]))
        w, k = self.out.weight[0], u_mf.shape[1]
        gmf = (u_mf * w[:k]) @ self.item_mf.weight.T
        return gmf + hidden @ w[k:] + self.out.bias


class NeuMF(Recommender):
    """NeuMF (He et al. 2017) on the shared trainer."""

    name = "neumf"
    update_strategy = "warm_start"
    family = "deep"
    Config = NeuMFConfig
    honours_balance = frozenset(
        {
            "neg_sampler",
            "n_negatives",
            "ips_beta",
            "pos_weight",
            "focal_gamma",
            "resample",
            "user_cap",
            "positive_threshold",
        }
    )

    def _negatives_per_positive(self) -> int:
        default = BalanceConfig().n_negatives
        return (
            self.balance.n_negatives
            if self.balance.n_negatives != default
            else self.config.n_negatives
        )

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        cfg: NeuMFConfig = self.config
        gen = make_generator(self.device, self.seed)
        data = prepare_training(train, self.balance, self.seed)
        n_neg = self._negatives_per_positive()
        from dataclasses import replace

        pairs = PairwiseData(
            data,
            replace(self.balance, n_negatives=n_neg),
            batch_size=cfg.batch_size,
            device=self.device,
            generator=gen,
        )
        self.module_ = _NeuMF(self.n_users_, self.n_items_, cfg).to(self.device)
        module = self.module_
        bal = self.balance
        # explicit negatives (ratings below the positive threshold) as labelled examples
        exp = data.negatives.tocoo()
        exp_users = torch.as_tensor(exp.row.astype(np.int64), device=self.device)
        exp_items = torch.as_tensor(exp.col.astype(np.int64), device=self.device)
        n_batches = pairs.n_batches
        exp_batch = -(-len(exp_users) // n_batches) if len(exp_users) else 0

        def batches(_epoch: int) -> Iterator[tuple[PairBatch, torch.Tensor | None]]:
            score = module.forward if bal.neg_sampler == "hard" else None
            exp_perm = torch.randperm(len(exp_users), generator=gen, device=gen.device)
            exp_parts = torch.split(exp_perm.to(self.device), exp_batch) if exp_batch else ()
            for i, batch in enumerate(pairs.epoch(score)):
                yield batch, (exp_parts[i] if i < len(exp_parts) else None)

        def step(item: tuple[PairBatch, torch.Tensor | None]) -> torch.Tensor:
            batch, exp_idx = item
            items = torch.cat([batch.pos[:, None], batch.neg], dim=1)
            logits = module(batch.users, items)
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1.0
            weights = None
            if batch.weight is not None:
                weights = torch.ones_like(logits)
                weights[:, 0] = batch.weight
            loss = bce_loss(
                logits, labels, weights=weights, pos_weight=bal.pos_weight, gamma=bal.focal_gamma
            )
            if exp_idx is not None and len(exp_idx):
                exp_logits = module(exp_users[exp_idx], exp_items[exp_idx][:, None])
                loss = loss + bce_loss(
                    exp_logits, torch.zeros_like(exp_logits), gamma=bal.focal_gamma
                ) * (len(exp_idx) / logits.numel())
            return loss

        train_loop(
            self,
            module,
            cfg,
            epoch_batches=batches,
            step_loss=step,
            train=train,
            valid=valid,
            progress=progress,
            n_batches=n_batches,
        )

    # ----- scoring -------------------------------------------------------------------------
    def _score_vectors(self, u_mf: torch.Tensor, u_mlp: torch.Tensor) -> torch.Tensor:
        # rows per chunk: the [rows, n_items, first MLP width] activation stays near 64 MB
        width = int(self.config.mlp_layers[0])
        rows = max(1, 2**24 // (self.n_items_ * width))
        out = [
            self.module_.logits_all_items(u_mf[s : s + rows], u_mlp[s : s + rows])
            for s in range(0, len(u_mf), rows)
        ]
        return torch.cat(out) if out else torch.zeros((0, self.n_items_), device=self.device)

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        self._check_fitted()
        self.module_.eval()
        idx = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        with torch.no_grad():
            return self._score_vectors(self.module_.user_mf(idx), self.module_.user_mlp(idx))

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        self._check_fitted()
        cfg: NeuMFConfig = self.config
        m = self.module_.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        try:
            x = dense_rows(history.tocsr(), self.device)
            b = x.shape[0]
            u_mf = m.user_mf.weight.mean(0).expand(b, -1).clone().requires_grad_(True)
            u_mlp = m.user_mlp.weight.mean(0).expand(b, -1).clone().requires_grad_(True)
            # weight negatives so each row sees the training ratio of negatives to positives
            n_pos = x.sum(1, keepdim=True).clamp(min=1.0)
            neg_w = self._negatives_per_positive() * n_pos / (self.n_items_ - n_pos).clamp(min=1)
            weights = torch.where(x > 0, 1.0, neg_w.expand_as(x))
            opt = torch.optim.Adam([u_mf, u_mlp], lr=cfg.foldin_lr)
            with torch.enable_grad():
                for _ in range(cfg.foldin_steps):
                    logits = self._score_vectors(u_mf, u_mlp)
                    # x b: each row's fold-in must not depend on its batch (explanations and
                    # evaluation score the same history in batches of different sizes; with a
                    # batch mean, Adam's eps makes the result batch-size dependent)
                    loss = bce_loss(logits, x, weights=weights) * b
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                return self._score_vectors(u_mf, u_mlp)
        finally:
            for p in m.parameters():
                p.requires_grad_(True)

    def item_embeddings(self) -> np.ndarray | None:
        """GMF and MLP item vectors concatenated [n_items, mf_dim + mlp_dim]."""
        m = self.module_
        return torch.cat([m.item_mf.weight, m.item_mlp.weight], 1).detach().float().cpu().numpy()

    def user_embeddings(self) -> np.ndarray | None:
        """GMF and MLP user vectors concatenated [n_users, mf_dim + mlp_dim]."""
        m = self.module_
        return torch.cat([m.user_mf.weight, m.user_mlp.weight], 1).detach().float().cpu().numpy()

    # ----- persistence ---------------------------------------------------------------------
    def _state(self) -> dict[str, torch.Tensor]:
        return {f"module.{k}": v for k, v in self.module_.state_dict().items()}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.module_ = _NeuMF(self.n_users_, self.n_items_, self.config)
        self.module_.load_state_dict(
            {k[len("module.") :]: v for k, v in state.items() if k.startswith("module.")}
        )
        self.module_.to(self.device).eval()


__all__ = ["NeuMF", "NeuMFConfig"]
