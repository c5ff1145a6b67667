"""What every sequence model (SASRec, GRU4Rec, multi-interest) shares.

They read each user's time-ordered history through a torch network ``net_`` (item embeddings
with padding index ``n_items`` and an ``item_weight`` property), train on one window per user
per step (:mod:`recsys_core.training.sequences`) with the same balance options, and score any
history by encoding its latest ``max_len`` items. The models only write their network, their
loss and how a history becomes a user vector.

Truncation has one rule, applied in one place: a model reads the latest ``window_length``
(= ``max_len``) items of a time-ordered history (:meth:`SequenceModel.window`, which is
:meth:`Sequences.latest`). Training windows are cut to that length, and ``recommend``,
``score_history`` (fold-in), attention and the explainer (through
:class:`recsys_core.models.base.ReadsRecentItems`) read a history through it, so a user with
more items than the window gets the same top-k whichever path scores them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recsys_core.balance import ips_weights, split_by_threshold
from recsys_core.config import param
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.models.base import ProgressFn, Recommender
from recsys_core.training.sequences import (
    SeqBatch,
    SharedNegatives,
    WindowBatches,
    shared_negatives_for,
    taste_loss,
)
from recsys_core.training.trainer import TrainConfig, train_loop


@dataclass(frozen=True)
class SequenceConfig(TrainConfig):
    """Fields shared by the sequence models (each model's Config subclasses this)."""

    max_len: int = param(50, "history length read (latest items)", low=2, high=2000)
    hidden: int = param(64, "embedding and hidden size", low=4, high=4096)
    n_sampled: int = param(256, "shared negatives per batch for the sampled losses", low=1)
    epochs: int = param(200, "maximum number of passes over the users", low=1, high=100_000)
    batch_size: int = param(64, "users (sequences) per step", low=1, high=1_000_000)
    lr: float = param(2e-3, "learning rate (Adam)", low=1e-6, high=10.0, log=True)
    # Valid NDCG@10 of a sequence model is noisy epoch to epoch on small data; 10 stopped
    # SASRec at 35-50 epochs, 20 lets it reach its best (about 85 on ml-latest-small).
    patience: int = param(
        20, "stop after this many validations without a better valid NDCG@10", low=1, high=1000
    )
    taste_weight: float = param(
        2.0,
        "weight of the all-action loss: the last position also predicts items from the whole "
        "history (PinnerFormer; 0 = next item only)",
        low=0.0,
        high=100.0,
    )
    taste_items: int = param(64, "history items per user for the all-action loss", low=1, high=1000)


@dataclass(frozen=True)
class SequenceTraining:
    """What one fit of a sequence model trains on."""

    batches: WindowBatches
    negatives: SharedNegatives | None
    weights: torch.Tensor | None  # [n_items] IPS weights of targets, or None


class SequenceModel(Recommender):
    """Base of the sequence models: training inputs, padding, embeddings, persistence."""

    uses_sequences = True
    update_strategy = "warm_start"  # histories extended; new items' rows appended, fine-tuned
    honours_balance = frozenset({"ips_beta", "positive_threshold", "neg_sampler", "n_negatives"})

    @abstractmethod
    def _build_net(self) -> nn.Module:
        """A fresh network for ``self.n_items_`` and ``self.config`` (not yet on the device)."""

    @abstractmethod
    def _user_vectors(self, history: sp.csr_matrix, sequences: Sequences | None) -> np.ndarray:
        """float32 [b, d] one vector per history (for ``user_embeddings``)."""

    def _sampled_loss(self) -> bool:
        """Whether the configured loss uses shared sampled negatives."""
        return self.config.loss == "sampled"

    def _prepare(self, train: Interactions) -> SequenceTraining:
        """Build ``net_`` and the windows, negatives and weights that honour the balance."""
        cfg = self.config
        positives, _ = split_by_threshold(train, self.balance.positive_threshold)
        popularity = positives.item_popularity
        self.net_ = self._build_net().to(self.device)
        batches = WindowBatches(
            positives.sequences,
            max_len=self.window_length,
            batch_size=cfg.batch_size,
            pad=self.n_items_,
            device=self.device,
            seed=self.seed,
            taste_items=cfg.taste_items if cfg.taste_weight > 0 else 0,
        )
        negatives = shared_negatives_for(self, popularity, self._sampled_loss(), cfg.n_sampled)
        weights = (
            torch.as_tensor(ips_weights(popularity, self.balance.ips_beta), device=self.device)
            if self.balance.ips_beta > 0
            else None
        )
        return SequenceTraining(batches, negatives, weights)

    def _train_windows(
        self,
        data: SequenceTraining,
        step_loss: Callable[[SeqBatch], torch.Tensor],
        train: Interactions,
        valid: Interactions | None,
        progress: ProgressFn,
    ) -> None:
        """Run the shared trainer over ``data``'s windows with the model's ``step_loss``."""
        train_loop(
            self,
            self.net_,
            self.config,
            epoch_batches=data.batches.epoch,
            step_loss=step_loss,
            train=train,
            valid=valid,
            progress=progress,
            n_batches=data.batches.n_batches,
        )

    def _taste_term(
        self,
        last: torch.Tensor,
        batch: SeqBatch,
        data: SequenceTraining,
        negatives: torch.Tensor | None,
    ) -> torch.Tensor | float:
        """The weighted all-action loss of the last position's vectors [b, d] (0 when off)."""
        if batch.taste is None:
            return 0.0
        return self.config.taste_weight * taste_loss(
            last,
            batch.taste,
            self.net_.item_weight,
            negatives=negatives,
            target_weights=data.weights,
        )

    @property
    def window_length(self) -> int:
        """How many of the latest history items the model reads (``config.max_len``)."""
        return int(self.config.max_len)

    def history_window(self) -> int | None:
        """:class:`~recsys_core.models.base.ReadsRecentItems`: the latest items read."""
        return self.window_length

    def window(self, sequences: Sequences) -> Sequences:
        """The part of each history the model reads: its latest ``window_length`` items."""
        return sequences.latest(self.window_length)

    def _padded(self, history: sp.csr_matrix | None, sequences: Sequences | None) -> torch.Tensor:
        """[b, window_length] the window of each history, pad-left, on the device."""
        if sequences is None:
            # No time order given: fall back to the CSR order of the history (item index order);
            # recommend_history refuses this for sequence models, score_history tolerates it.
            sequences = Sequences(history.indptr.astype(np.int64), history.indices.astype(np.int32))
        seq = self.window(sequences).padded(self.window_length, self.n_items_)
        return torch.as_tensor(seq, device=self.device)

    def item_embeddings(self) -> np.ndarray | None:
        return self.net_.item_weight.detach().float().cpu().numpy()

    def user_embeddings(self) -> np.ndarray | None:
        users = np.arange(self.n_users_)
        parts = [
            self._user_vectors(self.history_[b], self.sequences_.rows(b))
            for b in np.array_split(users, max(1, -(-len(users) // 2048)))
        ]
        return np.concatenate(parts).astype(np.float32) if parts else None

    def _state(self) -> dict[str, torch.Tensor]:
        return {f"net.{k}": v for k, v in self.net_.state_dict().items()}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.net_ = self._build_net().to(self.device)
        self.net_.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.net_.eval()
