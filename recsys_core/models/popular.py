"""Non-personalised baselines: Random and MostPopular."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.config import validate
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.models.base import ProgressFn, Recommender


@dataclass(frozen=True)
class RandomConfig:
    """Random has no hyperparameters; the run seed fixes its scores."""

    def __post_init__(self) -> None:
        validate(self)


class Random(Recommender):
    """Uniformly random item scores (fixed per model seed): the floor any model must clear."""

    name = "random"
    family = "baseline"
    Config = RandomConfig

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        self.scores_ = torch.rand(self.n_items_, generator=gen).to(self.device)
        progress(1, {"epoch": 1})

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        return self.scores_.expand(history.shape[0], -1).clone()

    def _state(self) -> dict[str, torch.Tensor]:
        return {"scores": self.scores_}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.scores_ = state["scores"].to(self.device)


@dataclass(frozen=True)
class MostPopularConfig:
    """MostPopular has no hyperparameters: it ranks by training interaction counts."""

    def __post_init__(self) -> None:
        validate(self)


class MostPopular(Recommender):
    """Items ranked by how many training users interacted with them (plain counts)."""

    name = "most_popular"
    family = "baseline"
    Config = MostPopularConfig

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        counts = train.item_popularity.astype(np.float32)
        self.scores_ = torch.as_tensor(counts, device=self.device)
        progress(1, {"epoch": 1})

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        return self.scores_.expand(history.shape[0], -1).clone()

    def _state(self) -> dict[str, torch.Tensor]:
        return {"scores": self.scores_}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.scores_ = state["scores"].to(self.device)
