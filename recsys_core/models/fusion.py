"""Fusion: a learned, weighted blend of several models' per-user normalised scores.

Score fusion in the tradition of CombSUM / linear late fusion (Fox & Shaw 1994; Vogt & Cottrell
1999, "Fusion via a linear combination of scores"), the simplest way to unify collaborative,
deep and content (pretrained-model) signals. Every component is fitted on the training part with
its default config (the fusion's seed and device). For each user the component's scores are
normalised over the items eligible for that user (not in the history), by z-score (default; robust
to the very different scales of EASE, iALS and cosine scores) or min-max, and blended with
non-negative weights that sum to 1::

    s(u, i) = sum_c w_c * norm_u(s_c(u, i)),   w >= 0, sum_c w_c = 1

The weights maximise NDCG@10 on the validation part (the metric the product reports, and the one
the torch models early-stop on). NDCG is piecewise constant in w, so instead of a gradient the
search scans the simplex on a grid of step ``1 / grid_steps`` (66 points for 3 components and
10 steps), on at most ``max_valid_users`` validation users; ties go to the most uniform weights.
Without a validation part, ``holdout`` of each user's training interactions (default 10%) is
carved out, the components are fitted on the rest to learn the weights, then refitted on the full
training data.

Default components: ``("ease", "sasrec", "content")``: the strongest closed-form CF model here,
the sequence model (recency, which EASE's bag of items cannot see) and the side-feature
(cold-start) model. A second CF model adds little to EASE: with ``("ease", "ials", "content")``
the weights went almost all to EASE (NDCG@10 0.2768 vs EASE's 0.2770 on ml-latest-small's fixed
split), while EASE + SASRec reached 0.2798. A component that cannot be fitted
on the data because it lacks side information (``content`` without an item table) is skipped and
named in ``skipped_``; at least one component must remain. Memory of the weight search is bounded
by ``n_components x max_valid_users x n_items`` float32.

Persistence uses the base class mechanisms: every component's ``_state`` is stored in the same
``state.pt`` under the prefix ``c<i>.``; the components share the fusion's training history.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.config import param, validate
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import ConfigError, DataError
from recsys_core.models.base import ProgressFn, Recommender

NORMALISATIONS = ("zscore", "minmax")


@dataclass(frozen=True)
class FusionConfig:
    """Fusion hyperparameters (see the module docstring)."""

    components: tuple[str, ...] = param(
        ("ease", "sasrec", "content"), "model keys to blend (each with its default config)"
    )
    normalise: str = param("zscore", "per-user score normalisation", choices=NORMALISATIONS)
    grid_steps: int = param(10, "weight grid resolution: steps of 1/grid_steps", low=1, high=100)
    max_valid_users: int = param(
        1000, "validation users the weights are fitted on (seeded sample)", low=10
    )
    holdout: float = param(
        0.1,
        "share of each user's training items held out when there is no valid part",
        low=0.01,
        high=0.5,
    )

    def __post_init__(self) -> None:
        validate(self)
        if not self.components:
            raise ConfigError("FusionConfig.components: give at least one model key, e.g. ease")
        if "fusion" in self.components:
            raise ConfigError("FusionConfig.components: a fusion cannot contain 'fusion'")
        if len(set(self.components)) != len(self.components):
            raise ConfigError(
                f"FusionConfig.components: {list(self.components)} repeats a model key"
            )
        if len(self.components) > 6:
            raise ConfigError(
                f"FusionConfig.components: {len(self.components)} components; at most 6 "
                "(the weight grid grows combinatorially)"
            )


class Fusion(Recommender):
    """Weighted blend of normalised component scores, weights fitted on validation NDCG@10."""

    name = "fusion"
    family = "hybrid"
    Config = FusionConfig

    def __init__(self, config=None, *, device="auto", seed=0, balance=None):  # noqa: D107
        super().__init__(config, device=device, seed=seed, balance=balance)
        from recsys_core.models import get_model  # the registry imports this module

        self.component_classes_ = [get_model(key) for key in self.config.components]
        # sequences are kept when any component reads them (they share the fusion's history)
        self.uses_sequences = any(cls.uses_sequences for cls in self.component_classes_)

    # ----- training --------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        has_valid = valid is not None and valid.nnz > 0
        if has_valid:
            inner_train, inner_valid = train, valid
        else:
            inner_train, inner_valid = self._carve(train)
        n_steps = len(self.component_classes_) * (1 if has_valid else 2) + 1
        models, active = self._fit_components(
            inner_train, inner_valid, progress, step0=0, n_steps=n_steps
        )
        self.active_ = np.asarray(active, dtype=bool)
        self.weights_ = self._learn_weights(models, inner_train, inner_valid)
        if not has_valid:  # refit on everything now that the weights are known
            models, _ = self._fit_components(
                train, None, progress, step0=len(active), n_steps=n_steps, only=self.active_
            )
        self.components_ = models
        progress(n_steps, {"epoch": float(n_steps), "epochs_total": float(n_steps)})

    def _carve(self, train: Interactions) -> tuple[Interactions, Interactions]:
        """(inner train, inner valid): a seeded random share of each user's interactions."""
        rng = np.random.default_rng(self.seed)
        held = rng.random(train.nnz) < self.config.holdout
        first = np.r_[True, train.users[1:] != train.users[:-1]]  # every user keeps one item
        held &= ~first
        if not held.any():
            raise DataError(
                "fusion: no interaction could be held out to learn the blend weights",
                where="model 'fusion' without a validation part",
                fix="pass a split with a validation part, or raise holdout",
            )
        return train.select(~held), train.select(held)

    def _fit_components(
        self,
        train: Interactions,
        valid: Interactions | None,
        progress: ProgressFn,
        *,
        step0: int,
        n_steps: int,
        only: np.ndarray | None = None,
    ) -> tuple[list[Recommender | None], list[bool]]:
        models: list[Recommender | None] = []
        active: list[bool] = []
        for c, cls in enumerate(self.component_classes_):
            if only is not None and not only[c]:
                models.append(None)
                active.append(False)
                continue
            step = step0 + c

            def sub_progress(_s: int, metrics: dict[str, float], step: int = step) -> None:
                total = metrics.get("epochs_total") or 0.0
                frac = min(metrics.get("epoch", 0.0) / total, 1.0) if total else 0.0
                progress(step, {"epoch": step + frac, "epochs_total": float(n_steps)})

            model = cls(device=self.device, seed=self.seed)
            try:
                model.fit(train, valid=valid, progress=sub_progress)
            except DataError:
                if cls.family != "content":
                    raise
                # the side-feature model needs an item table this dataset does not have
                models.append(None)
                active.append(False)
                continue
            models.append(model)
            active.append(True)
        if not any(active):
            raise DataError(
                f"fusion: none of the components {list(self.config.components)} could be fitted",
                where="model 'fusion'",
                fix="add a collaborative component such as 'ease' to components",
            )
        self.skipped_ = [k for k, a in zip(self.config.components, active, strict=True) if not a]
        return models, active

    def _learn_weights(
        self, models: list[Recommender | None], train: Interactions, valid: Interactions
    ) -> np.ndarray:
        """Simplex-grid search of the blend weights on validation NDCG@10 (module docstring)."""
        cfg = self.config
        users = np.unique(valid.users).astype(np.int64)
        if len(users) > cfg.max_valid_users:
            rng = np.random.default_rng(self.seed)
            users = np.sort(rng.choice(users, cfg.max_valid_users, replace=False))
        active = np.flatnonzero(self.active_)
        seen = train.binary[users]
        blocks = torch.stack(
            [self._normalised(models[c].score_users(users), seen) for c in active]
        )  # [m, b, n_items]
        # ineligible (already seen) items can never be recommended
        seen_t = _dense_mask(seen, self.device)
        blocks = blocks.masked_fill(seen_t[None], float("-inf"))
        truth = _dense_mask(valid.binary[users], self.device)
        grid = _simplex_grid(len(active), cfg.grid_steps)
        k = min(10, train.n_items)
        discounts = 1.0 / torch.log2(
            torch.arange(2, k + 2, device=self.device, dtype=torch.float32)
        )
        n_rel = truth.sum(dim=1).clamp(max=k)
        idcg = torch.cumsum(discounts, 0)[(n_rel - 1).clamp_min(0)]
        ndcg = np.empty(len(grid))
        for g, w in enumerate(grid):  # loop over grid points (tens), not users or items
            w_t = torch.as_tensor(w, dtype=torch.float32, device=self.device)
            blend = torch.einsum("c,cbn->bn", w_t, torch.nan_to_num(blocks, neginf=-1e30))
            top = torch.topk(blend, k, dim=1).indices
            hits = torch.gather(truth, 1, top).float()
            ndcg[g] = float(((hits * discounts).sum(1) / idcg).mean())
        # ties (NDCG is piecewise constant) go to the most uniform weights
        spread = np.abs(grid - 1.0 / len(active)).sum(axis=1)
        best = int(np.lexsort((spread, -ndcg))[0])
        self.valid_ndcg_ = float(ndcg[best])
        self.grid_ndcg_ = ndcg
        weights = np.zeros(len(self.config.components), dtype=np.float32)
        weights[active] = grid[best]
        return weights

    # ----- scoring ---------------------------------------------------------------------------
    def _normalised(self, scores: torch.Tensor, seen: sp.csr_matrix) -> torch.Tensor:
        """Per-row z-score or min-max of ``scores`` over the finite, unseen items.

        Items outside that set get the row's lowest normalised value, so the output is finite.
        """
        s = scores.float()
        eligible = torch.isfinite(s) & ~_dense_mask(seen, s.device)
        count = eligible.sum(dim=1, keepdim=True).clamp_min(1)
        if self.config.normalise == "zscore":
            x = torch.where(eligible, s, torch.zeros_like(s))
            mean = x.sum(dim=1, keepdim=True) / count
            var = (torch.where(eligible, s - mean, torch.zeros_like(s)) ** 2).sum(
                dim=1, keepdim=True
            ) / count
            out = (s - mean) / var.sqrt().clamp_min(1e-12)
        else:
            lo = torch.where(eligible, s, torch.full_like(s, float("inf"))).amin(1, keepdim=True)
            hi = torch.where(eligible, s, torch.full_like(s, float("-inf"))).amax(1, keepdim=True)
            lo = torch.where(torch.isfinite(lo), lo, torch.zeros_like(lo))
            hi = torch.where(torch.isfinite(hi), hi, lo)
            out = (s - lo) / (hi - lo).clamp_min(1e-12)
        floor = torch.where(eligible, out, torch.full_like(out, float("inf"))).amin(1, keepdim=True)
        floor = torch.where(torch.isfinite(floor), floor, torch.zeros_like(floor))
        return torch.where(eligible, out, floor)

    def _blend(self, parts: list[tuple[int, torch.Tensor]], seen: sp.csr_matrix) -> torch.Tensor:
        total = None
        for c, scores in parts:
            term = float(self.weights_[c]) * self._normalised(scores, seen)
            total = term if total is None else total + term
        return total.float()

    def _active(self) -> list[int]:
        return [int(c) for c in np.flatnonzero(self.active_) if self.weights_[c] > 0] or [
            int(np.flatnonzero(self.active_)[0])
        ]

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        """Blended normalised scores [batch, n_items] of histories (each component folds in)."""
        self._check_fitted()
        parts = [(c, self.components_[c].score_history(history, sequences)) for c in self._active()]
        return self._blend(parts, history)

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Blended scores [len(users), n_items] of training users (components' own user state)."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        parts = [(c, self.components_[c].score_users(users)) for c in self._active()]
        return self._blend(parts, self.history_[users])

    @property
    def weights(self) -> dict[str, float]:
        """The learned blend weight of every component key (0 for skipped ones)."""
        return {k: float(w) for k, w in zip(self.config.components, self.weights_, strict=True)}

    # ----- persistence -----------------------------------------------------------------------
    def _state(self) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {
            "weights": torch.as_tensor(self.weights_),
            "active": torch.as_tensor(self.active_),
        }
        for c, model in enumerate(self.components_):
            if model is not None:
                state.update({f"c{c}.{k}": v for k, v in model._state().items()})
        return state

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.weights_ = state["weights"].numpy().astype(np.float32)
        self.active_ = state["active"].numpy().astype(bool)
        self.skipped_ = [
            k for k, a in zip(self.config.components, self.active_, strict=True) if not a
        ]
        self.components_ = []
        for c, cls in enumerate(self.component_classes_):
            if not self.active_[c]:
                self.components_.append(None)
                continue
            # mirror Recommender.load: the components share the fusion's training history
            model = cls(device=self.device, seed=self.seed)
            model.n_users_, model.n_items_ = self.n_users_, self.n_items_
            model.history_ = self.history_
            model.sequences_ = self.sequences_ if model.uses_sequences else None
            prefix = f"c{c}."
            model._load_state(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
            self.components_.append(model)


def _dense_mask(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """bool [rows, cols] of the nonzeros of a (small) sparse batch."""
    m = matrix.tocoo()
    out = torch.zeros(m.shape, dtype=torch.bool, device=device)
    if m.nnz:
        rows = torch.as_tensor(m.row.astype(np.int64), device=device)
        cols = torch.as_tensor(m.col.astype(np.int64), device=device)
        out[rows, cols] = True
    return out


def _simplex_grid(m: int, steps: int) -> np.ndarray:
    """float [n_points, m] every weight vector with entries in {0, 1/steps, ..., 1} summing to 1."""
    points = [c for c in itertools.product(range(steps + 1), repeat=m - 1) if sum(c) <= steps]
    grid = np.array([[*c, steps - sum(c)] for c in points], dtype=np.float64) / steps
    return grid.reshape(-1, m)
