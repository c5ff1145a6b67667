"""Mult-VAE: variational autoencoder with a multinomial likelihood for implicit feedback.

Liang, Krishnan, Hoffman & Jebara (2018), "Variational Autoencoders for Collaborative
Filtering", WWW. A user's click vector ``x_u`` is L2-normalised, passed through dropout
(p = 0.5 on the input, sec. 2.4) and an MLP encoder ``[n_items -> 600 -> 2 x 200]`` (tanh)
to the Gaussian posterior ``q(z_u | x_u) = N(mu, diag(sigma^2))``; a decoder
``[200 -> 600 -> n_items]`` gives logits whose softmax is the multinomial ``pi(z_u)`` (eq. 1).
The loss is the annealed negative ELBO (eq. 6): ``-sum_i x_ui log pi_i + beta KL(q || N(0, I))``
with ``beta`` raised linearly from 0 to ``anneal_cap`` = 0.2 over ``total_anneal_steps``
updates (sec. 2.2.2). At test time the posterior mean is decoded (no sampling).

Scoring a history is native (the encoder folds any history in), so ``score_history`` and
``score_users`` are the same computation. Balance: IPS weights multiply the positives'
log-likelihood terms; resampling changes the click counts ``x_ui``; a positive threshold
keeps only positives in ``x_u``.

Defaults follow the paper except the step budget: 500 users per batch and 200,000 annealing
steps suit ML-20M's 136k users (270 updates per epoch); on a dataset of hundreds of users that
is 2 updates per epoch and beta never leaves 0. Batches of 128 users and 20,000 annealing steps
took ml-latest-small's fixed split from NDCG@10 0.195-0.201 to 0.213 (``bench``; RecBole's
MultiVAE 0.207).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.balance import prepare_training
from recsys_core.config import param
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.models.base import ProgressFn, Recommender, dense_rows, sparse_mm
from recsys_core.training.losses import multinomial_nll
from recsys_core.training.trainer import TrainConfig, make_generator, train_loop


@dataclass(frozen=True)
class MultVAEConfig(TrainConfig):
    """Mult-VAE hyperparameters (Liang et al. 2018, sec. 4.3; step budget: module docstring)."""

    hidden: int = param(600, "encoder/decoder hidden width (paper: 600)", low=1, high=100_000)
    latent: int = param(200, "latent dimension (paper: 200)", low=1, high=10_000)
    dropout: float = param(
        0.5, "dropout on the normalised input (paper: 0.5)", low=0.0, high=0.99, search=(0.0, 0.8)
    )
    anneal_cap: float = param(
        0.2, "largest KL weight beta (paper: 0.2)", low=0.0, high=10.0, search=(0.0, 1.0)
    )
    total_anneal_steps: int = param(
        20_000, "updates over which beta rises from 0 to anneal_cap (paper: 200000)", low=1
    )
    epochs: int = param(200, "maximum number of passes over the users", low=1, high=100_000)
    batch_size: int = param(128, "users per optimiser step (paper: 500)", low=1, high=1_000_000)
    lr: float = param(
        1e-3,
        "learning rate (paper: Adam 1e-3)",
        low=1e-6,
        high=10.0,
        log=True,
        search=(1e-4, 1e-2),
    )
    patience: int = param(
        20, "stop after this many validations without a better valid NDCG@10", low=1, high=10_000
    )


class _VAE(nn.Module):
    def __init__(self, n_items: int, hidden: int, latent: int, dropout: float) -> None:
        super().__init__()
        self.latent = latent
        self.enc = nn.Linear(n_items, hidden)
        self.enc_out = nn.Linear(hidden, 2 * latent)
        self.dec = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, n_items)
        self.drop = nn.Dropout(dropout)
        for layer in (self.enc, self.enc_out, self.dec, self.dec_out):
            # Xavier init with small normal biases as in the authors' code
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[b, n_items] clicks -> (mu, logvar), each [b, latent]."""
        h = self.drop(F.normalize(x, dim=1))
        if h.device.type == "mps":  # MPS lacks sparse-dense products
            h = self.enc(h)
        else:
            # click vectors are ~1% dense: a sparse product makes the widest layer cheap
            h = sparse_mm(h.detach().to_sparse(), self.enc.weight.T) + self.enc.bias
        h = torch.tanh(h)
        mu, logvar = self.enc_out(h).split(self.latent, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec_out(torch.tanh(self.dec(z)))


class MultVAE(Recommender):
    """Mult-VAE (Liang et al. 2018) on the shared trainer."""

    name = "multvae"
    update_strategy = "warm_start"
    family = "deep"
    Config = MultVAEConfig
    honours_balance = frozenset({"ips_beta", "resample", "user_cap", "positive_threshold"})

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        cfg: MultVAEConfig = self.config
        gen = make_generator(self.device, self.seed)
        data = prepare_training(train, self.balance, self.seed)
        counts = data.counts.tocsr()
        rows = np.flatnonzero(np.diff(counts.indptr) > 0)
        weights = (
            None
            if data.item_weights is None
            else torch.as_tensor(data.item_weights, device=self.device)
        )
        self.module_ = _VAE(self.n_items_, cfg.hidden, cfg.latent, cfg.dropout).to(self.device)
        module = self.module_
        self.update_ = 0
        n_batches = -(-len(rows) // cfg.batch_size)

        def batches(_epoch: int) -> Iterator[torch.Tensor]:
            perm = torch.randperm(len(rows), generator=gen, device=gen.device).cpu().numpy()
            for start in range(0, len(rows), cfg.batch_size):
                yield dense_rows(counts[rows[perm[start : start + cfg.batch_size]]], self.device)

        def step(x: torch.Tensor) -> torch.Tensor:
            mu, logvar = module.encode(x)
            # reparameterisation trick; noise from the seeded generator for reproducibility
            eps = torch.randn(mu.shape, generator=gen, device=gen.device).to(mu.device)
            z = mu + eps * torch.exp(0.5 * logvar)
            nll = multinomial_nll(module.decode(z), x, item_weights=weights)
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1).mean()
            beta = min(cfg.anneal_cap, self.update_ / cfg.total_anneal_steps)
            self.update_ += 1
            return nll + beta * kl

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
    def _encode_mean(self, history: sp.csr_matrix, max_rows: int = 1024) -> torch.Tensor:
        """Posterior means [b, latent] of the histories (eval mode: no dropout)."""
        self.module_.eval()
        out = []
        with torch.no_grad():
            for start in range(0, history.shape[0], max_rows):
                x = dense_rows(history[start : start + max_rows], self.device)
                out.append(self.module_.encode(x)[0])
        if not out:
            return torch.zeros((0, self.config.latent), device=self.device)
        return torch.cat(out)

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        self._check_fitted()
        with torch.no_grad():
            return self.module_.decode(self._encode_mean(history.tocsr())).float()

    def item_embeddings(self) -> np.ndarray | None:
        """The decoder's output weights [n_items, hidden]: one vector per item."""
        return self.module_.dec_out.weight.detach().float().cpu().numpy()

    def user_embeddings(self) -> np.ndarray | None:
        """Posterior means [n_users, latent] of the training users."""
        return self._encode_mean(self.history_).cpu().numpy()

    # ----- persistence ---------------------------------------------------------------------
    def _state(self) -> dict[str, torch.Tensor]:
        return {f"module.{k}": v for k, v in self.module_.state_dict().items()}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        cfg: MultVAEConfig = self.config
        self.module_ = _VAE(self.n_items_, cfg.hidden, cfg.latent, cfg.dropout)
        self.module_.load_state_dict(
            {k[len("module.") :]: v for k, v in state.items() if k.startswith("module.")}
        )
        self.module_.to(self.device).eval()


__all__ = ["MultVAE", "MultVAEConfig"]
