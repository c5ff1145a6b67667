"""Updating a fitted model with new interactions instead of training it again from scratch.

:func:`update_model` applies the model's declared ``update_strategy``
(:attr:`recsys_core.models.base.Recommender.update_strategy`):

- ``partial_als`` (iALS): new users and items get rows; a few alternating exact solves restricted
  to the touched users and items (``IALS.partial_update``, as implicit's ``partial_fit_*``);
- ``refit`` (EASE, ItemKNN, RP3beta, MostPopular, Random, fusion): recomputed from the updated
  matrix, the same work as a fit (closed-form or count models, fast; fusion refits its parts);
- ``encode`` (content): a refit, which only encodes every item, new ones included, from its
  side features (there is nothing to train);
- ``warm_start`` (BPR, Mult-VAE, NeuMF, LightGCN, two-tower, SASRec, GRU4Rec, multi-interest):
  the network is rebuilt for the new vocabularies, the previous weights copied in (new users'
  and items' rows keep the network's own initialisation, like the originals had), then
  ``epochs`` epochs of fine-tuning on the touched users' histories mixed with a replay sample
  of other users (``replay`` old interactions per new one), so that old tastes are not
  forgotten. Sequence models read the extended histories afterwards.

Data must come from a later version of the dataset the model was fitted on
(:mod:`recsys_core.data.versions`), so that old indices mean the same users and items.

An *update run* is an ordinary run whose spec names a ``parent`` run (see
:func:`submit_update` and :mod:`recsys_core.jobs.runner`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.config import config_from_dict, config_to_dict, param, validate
from recsys_core.data.interactions import Interactions
from recsys_core.errors import ConfigError
from recsys_core.models.base import ProgressFn, Recommender

STRATEGIES = ("refit", "partial_als", "warm_start", "encode")


@dataclass(frozen=True)
class UpdateSettings:
    """How an update runs (stored in the update run's spec)."""

    epochs: int = param(3, "warm_start: fine-tuning epochs", low=1, high=1000)
    replay: float = param(
        1.0,
        "warm_start: old interactions replayed per new one (whole histories of random "
        "untouched users); 0 = only the touched users",
        low=0.0,
        high=100.0,
    )
    sweeps: int = param(2, "partial_als: alternating sweeps over the touched rows", low=1, high=50)

    def __post_init__(self) -> None:
        validate(self)


def strategy_of(model: Recommender | type[Recommender]) -> str:
    """The update strategy a model (class or instance) declares."""
    strategy = model.update_strategy
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"{model.name}: unknown update strategy {strategy!r}; one of {STRATEGIES}"
        )
    return strategy


def touched(
    old_history: sp.csr_matrix, new_train: Interactions
) -> tuple[np.ndarray, np.ndarray, int]:
    """Users and items whose training rows changed (new ones included), and the new pairs.

    Returns
    -------
    users : int64 sorted user indices; items : int64 sorted item indices; n_new : new pairs.
    """
    new = new_train.binary.tocsr()
    if old_history.shape[0] > new.shape[0] or old_history.shape[1] > new.shape[1]:
        raise ConfigError(
            f"the new data ({new.shape[0]} users x {new.shape[1]} items) is smaller than the "
            f"fitted model's ({old_history.shape[0]} x {old_history.shape[1]}); update with a "
            "later version of the same dataset (python -m recsys_core append)"
        )
    old = sp.csr_matrix(old_history, dtype=np.float32, copy=True)
    old.resize(new.shape)
    added = (new - old).tocoo()
    added_mask = added.data > 0
    changed = (new != old).tocoo()
    users = np.union1d(changed.row, np.arange(old_history.shape[0], new.shape[0]))
    items = np.union1d(changed.col, np.arange(old_history.shape[1], new.shape[1]))
    return users.astype(np.int64), items.astype(np.int64), int(added_mask.sum())


def update_model(
    model: Recommender,
    train: Interactions,
    settings: UpdateSettings | None = None,
    progress: ProgressFn | None = None,
) -> Recommender:
    """``model`` updated with ``train`` (all training data of the later version).

    Returns the updated model: ``model`` itself for ``partial_als``, a new instance otherwise
    (the input is left as it was). ``update_info_`` on the result says what was done.
    """
    settings = settings or UpdateSettings()
    model._check_fitted()
    strategy = strategy_of(model)
    users, items, n_new = touched(model.history_, train)
    new_users, new_items = train.n_users - model.n_users_, train.n_items - model.n_items_
    start = time.perf_counter()
    if strategy == "partial_als":
        updated = model.partial_update(  # type: ignore[attr-defined]
            train, sweeps=settings.sweeps, progress=progress
        )
    elif strategy == "warm_start":
        updated = _warm_start(model, train, users, n_new, settings, progress)
    else:  # refit / encode: the model's own fit on the updated data
        updated = _fresh(model, model.config).fit(train, progress=progress)
    updated.update_info_ = {
        "strategy": strategy,
        "touched_users": int(len(users)),
        "touched_items": int(len(items)),
        "new_users": int(new_users),
        "new_items": int(new_items),
        "new_pairs": n_new,
        "seconds": time.perf_counter() - start,
    }
    return updated


def _fresh(model: Recommender, config: Any) -> Recommender:
    return type(model)(config, device=model.device, seed=model.seed, balance=model.balance)


# ----- warm start (torch models) --------------------------------------------------------------
@dataclass
class WarmStart:
    """The previous weights of every torch module of a model, and the sizes they were built for.

    The shared trainer calls :meth:`apply` on the freshly built module before the first step.
    """

    states: dict[str, dict[str, torch.Tensor]]
    old_users: int
    old_items: int

    def apply(self, model: Recommender, module: torch.nn.Module) -> None:
        """Copy the previous weights into ``module`` (grown where the vocabularies grew)."""
        name = next((k for k, v in vars(model).items() if v is module), None)
        state = self.states.get(name) if name else None
        if state is None and len(self.states) == 1:
            state = next(iter(self.states.values()))
        if state is None:
            return
        sizes = (self.old_users, self.old_items, model.n_users_, model.n_items_)
        with torch.no_grad():
            for key, param_ in module.named_parameters():
                if key in state:
                    grow_into(param_, state[key].to(param_.device), *sizes)


def grow_into(
    new: torch.Tensor, old: torch.Tensor, old_u: int, old_i: int, new_u: int, new_i: int
) -> bool:
    """Copy ``old`` into ``new`` in place where the shapes say how; False when they do not.

    One dimension may differ; the rule follows its old/new size: ``I`` -> ``I'`` (an item
    table or an item output layer: leading rows), ``I + 1`` -> ``I' + 1`` (a table with a
    padding row last: the real rows only, the new padding row keeps its initial value),
    ``U + I`` -> ``U' + I'`` (LightGCN's joint table: user block, then item block moved after
    the new users), ``U`` -> ``U'`` (leading rows). Rows beyond the old ones keep the module's
    initialisation.
    """
    if new.shape == old.shape:
        new.copy_(old)
        return True
    if new.dim() != old.dim():
        return False
    differ = [d for d in range(new.dim()) if new.shape[d] != old.shape[d]]
    if len(differ) != 1:
        return False
    dim = differ[0]
    o, n = old.shape[dim], new.shape[dim]
    if (o, n) == (old_u + old_i, new_u + new_i):
        src = np.arange(o)
        dst = np.concatenate([np.arange(old_u), new_u + np.arange(old_i)])
    elif (o, n) == (old_i + 1, new_i + 1):
        src = dst = np.arange(old_i)
    elif o <= n:
        src = dst = np.arange(o)
    else:
        return False
    src_t = torch.as_tensor(src, device=new.device)
    dst_t = torch.as_tensor(dst, device=new.device)
    new.index_copy_(dim, dst_t, old.index_select(dim, src_t).to(new.dtype))
    return True


def _warm_start(
    model: Recommender,
    train: Interactions,
    users: np.ndarray,
    n_new: int,
    settings: UpdateSettings,
    progress: ProgressFn | None,
) -> Recommender:
    states = {
        name: {k: v.detach().clone() for k, v in value.state_dict().items()}
        for name, value in vars(model).items()
        if isinstance(value, torch.nn.Module)
    }
    subset = _replay_subset(model, train, users, n_new, settings)
    config = replace(model.config, epochs=settings.epochs)
    fresh = _fresh(model, config)
    fresh.warm_start_ = WarmStart(states, model.n_users_, model.n_items_)
    try:
        fresh.fit(subset, progress=progress)
    finally:
        del fresh.warm_start_
    # Scoring reads the whole extended history, not the fine-tuning subset.
    fresh.history_ = train.binary.tocsr()
    fresh.sequences_ = train.sequences if fresh.uses_sequences else None
    fresh.config = model.config
    fresh.after_update(train)
    return fresh


def _replay_subset(
    model: Recommender,
    train: Interactions,
    users: np.ndarray,
    n_new: int,
    settings: UpdateSettings,
) -> Interactions:
    """Touched users' whole histories plus random untouched users' (about ``replay * n_new``
    interactions): whole histories, so sequence and auto-encoder models see real contexts."""
    activity = train.user_activity
    others = np.setdiff1d(np.flatnonzero(activity > 0), users)
    rng = np.random.default_rng(model.seed)
    order = rng.permutation(others)
    budget = settings.replay * max(n_new, 1)
    take = int(np.searchsorted(np.cumsum(activity[order]), budget)) if budget > 0 else 0
    keep = np.zeros(train.n_users, dtype=bool)
    keep[users] = True
    keep[order[:take]] = True
    return train.select(keep[train.users])


# ----- update runs ----------------------------------------------------------------------------
def check_no_leak(old_history: sp.csr_matrix, test: Interactions) -> None:
    """Refuse an evaluation whose test pairs the parent model trained on.

    A random split of a later version reshuffles which pairs are tested, so pairs the parent
    learned from could land in the test part and flatter the update.
    """
    t = test.binary.tocsr()[: old_history.shape[0], : old_history.shape[1]]
    leaked = int(t.multiply(old_history).nnz)
    if leaked:
        raise ConfigError(
            f"{leaked} test pairs of this split were training pairs of the parent run, so the "
            "update would be scored on data it learned from; use a split under which appended "
            "data never moves earlier pairs into the test: leave_last, temporal or predefined"
        )


def submit_update(
    ws: Any,
    parent_run: str,
    dataset: str,
    settings: UpdateSettings | dict[str, Any] | None = None,
    *,
    label: str | None = None,
) -> str:
    """Queue an update run of finished run ``parent_run`` on ``dataset`` (a later version)."""
    from recsys_core.jobs import api

    if not isinstance(settings, UpdateSettings):
        settings = config_from_dict(UpdateSettings, settings or {})
    parent = api.get_run(ws, parent_run).spec
    spec = replace(
        parent,
        dataset=dataset,
        parent=parent_run,
        update=config_to_dict(settings),
        label=label or f"update of {parent_run}",
        group=None,
    )
    return api.submit(ws, spec)


__all__ = [
    "STRATEGIES",
    "UpdateSettings",
    "WarmStart",
    "check_no_leak",
    "grow_into",
    "strategy_of",
    "submit_update",
    "touched",
    "update_model",
]
