"""One small, explicit training loop shared by every torch model.

API
---
``TrainConfig``
    Frozen dataclass of the training fields every torch model's ``Config`` carries (it
    subclasses ``TrainConfig`` and may redeclare a field to change its default): ``epochs``,
    ``batch_size``, ``lr``, ``weight_decay``, ``optimizer`` (``adam``/``adamw``/``sgd``),
    ``patience``, ``grad_clip``, ``amp``, ``eval_every``. Forms and the CLI see them like any
    other hyperparameter.

``train_loop(model, module, config, *, epoch_batches, step_loss, train, valid, progress,
before_eval=None) -> TrainResult``
    Runs ``config.epochs`` epochs on ``model.device``. Each epoch calls ``epoch_batches(epoch)``
    for an iterable of batches (the model permutes its positives once per epoch and draws
    negatives per batch on the device) and ``step_loss(batch)`` for a scalar loss, computed
    under ``torch.autocast`` (bf16 on CUDA where supported, see
    :func:`recsys_core.device.autocast_dtype`; a no-op on CPU). After each ``eval_every``
    epochs the validation NDCG@10 on ``valid`` is measured with
    :func:`recsys_core.evaluate.validation_ndcg` (a local ``torch.topk`` fallback when that
    module is absent); training stops after ``patience`` evaluations without improvement
    and the best weights are restored. ``before_eval`` is called before each validation and
    after the restore, for models that cache derived tensors (e.g. LightGCN's propagated
    embeddings).

    ``progress(step, metrics)`` is called between batches at most every 0.2 s and at each
    epoch end, with ``epoch`` (completed epochs as a float, fractional inside an epoch),
    ``epochs_total``, ``loss`` (mean batch loss of the epoch so far) and, once measured,
    ``valid_ndcg@10``. It may raise :class:`recsys_core.errors.Cancelled`; nothing here
    catches it, so it propagates out of ``fit``.

    Side effects on ``model``: ``epoch_seconds_`` (list of float), ``n_epochs_run_``,
    ``best_epoch_``, ``curves_`` (``{"epoch": [...], "loss": [...], "valid_ndcg@10": [...]}``).

``make_generator(device, seed)``
    A ``torch.Generator`` on ``device`` seeded from the model seed, so CPU runs are
    reproducible bit for bit (``Recommender.fit`` also calls ``seed_everything``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.config import param, validate
from recsys_core.data.interactions import Interactions
from recsys_core.device import autocast_dtype
from recsys_core.errors import DataError

OPTIMIZERS = ("adam", "adamw", "sgd")
#: Minimum seconds between two between-batch progress calls.
PROGRESS_INTERVAL = 0.2
VALID_KEY = "valid_ndcg@10"


@dataclass(frozen=True)
class TrainConfig:
    """Training fields shared by the torch models (each model's Config subclasses this)."""

    epochs: int = param(50, "maximum number of passes over the training data", low=1, high=10_000)
    batch_size: int = param(2048, "training examples per optimiser step", low=1, high=1_000_000)
    lr: float = param(1e-3, "learning rate", low=1e-6, high=10.0, log=True)
    weight_decay: float = param(0.0, "decoupled weight decay (L2 for adam/sgd)", low=0.0, high=1.0)
    optimizer: str = param("adam", "optimiser", choices=OPTIMIZERS)
    patience: int = param(
        5, "stop after this many validations without a better valid NDCG@10", low=1, high=1000
    )
    grad_clip: float = param(0.0, "clip the gradient norm to this (0 = off)", low=0.0, high=1e6)
    amp: bool = param(True, "bf16 autocast on CUDA where supported (ignored on CPU)")
    eval_every: int = param(1, "epochs between two validations", low=1, high=1000)

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class TrainResult:
    """What one call of :func:`train_loop` did."""

    epochs_run: int
    best_epoch: int
    best_valid: float | None
    epoch_seconds: list[float] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch Generator on ``device`` (CPU where the device has none) seeded with ``seed``."""
    try:
        gen = torch.Generator(device=device)
    except RuntimeError:  # devices without their own generator (older mps builds)
        gen = torch.Generator()
    return gen.manual_seed(int(seed))


def make_optimizer(params: Iterable[torch.nn.Parameter], config: Any) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` with ``config.lr`` and weight decay."""
    params = [p for p in params if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def autocast_context(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in bf16 on CUDA when enabled and supported, else a no-op."""
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def local_validation_ndcg(
    model: Any, train: Interactions, valid: Interactions, k: int = 10, batch_size: int = 1024
) -> float:
    """Mean NDCG@k over users with a valid interaction, train items excluded (batched topk).

    Used only when ``recsys_core.evaluate.validation_ndcg`` is not available.
    """
    from recsys_core.models.base import mask_items

    truth = valid.binary.tocsr()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    if len(users) == 0:
        return float("nan")
    seen = train.binary.tocsr()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = mask_items(model.score_users(batch).float(), seen[batch])
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1).indices.cpu().numpy()
        rows = truth[batch]
        # hit[r, j] = 1 when the j-th recommendation of row r is a valid item: membership of
        # the key r * n_items + item in the sorted keys of the valid matrix (vectorised)
        n_items = rows.shape[1]
        keys = np.repeat(np.arange(len(batch), dtype=np.int64), np.diff(rows.indptr)) * n_items
        keys = np.sort(keys + rows.indices)
        query = np.arange(len(batch), dtype=np.int64)[:, None] * n_items + top
        pos = np.clip(np.searchsorted(keys, query), 0, max(len(keys) - 1, 0))
        hits = keys[pos] == query
        dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
        n_rel = np.minimum(np.diff(rows.indptr), k)
        idcg = np.cumsum(discounts)[n_rel - 1]
        total += float((dcg / idcg).sum())
    return total / len(users)


def validation_metric(model: Any, train: Interactions, valid: Interactions) -> float:
    """Valid NDCG@10 via the evaluation module when present, else the local fallback."""
    try:
        from recsys_core.evaluate import validation_ndcg
    except ImportError:
        return local_validation_ndcg(model, train, valid, k=10)
    return float(validation_ndcg(model, train, valid, k=10))


def _has_rows(valid: Interactions | None) -> bool:
    return valid is not None and valid.nnz > 0


def train_loop(
    model: Any,
    module: torch.nn.Module,
    config: TrainConfig,
    *,
    epoch_batches: Callable[[int], Iterable[Any]],
    step_loss: Callable[[Any], torch.Tensor],
    train: Interactions,
    valid: Interactions | None,
    progress: Callable[[int, dict[str, float]], None],
    before_eval: Callable[[], None] | None = None,
    n_batches: int | None = None,
) -> TrainResult:
    """Train ``module`` (the parameters of ``model``) and return what happened.

    Parameters
    ----------
    model : the Recommender being fitted (its ``device`` is used; its ``score_users`` is
        validated; ``epoch_seconds_``, ``n_epochs_run_``, ``best_epoch_``, ``curves_`` are set).
    module : torch module holding every trainable parameter (already on ``model.device``).
    config : a TrainConfig (or subclass) instance.
    epoch_batches : ``epoch -> iterable of batches`` (epoch counts from 1).
    step_loss : ``batch -> scalar loss tensor`` (called under autocast with grad enabled).
    train, valid : training data (excluded from validation rankings) and validation data;
        without valid interactions every epoch runs and the last weights are kept.
    progress : ``progress(step, metrics)`` callback; may raise Cancelled.
    before_eval : optional hook run before each validation and after restoring weights.
    n_batches : batches per epoch, for fractional ``epoch`` values in progress (optional).

    Raises
    ------
    DataError : when the loss becomes NaN or infinite (the message suggests a lower lr).
    """
    device = model.device
    # An update (recsys_core.updates) parks the previous run's weights here: they are copied
    # into the freshly built module, grown to the new vocabularies, before the first step.
    warm = getattr(model, "warm_start_", None)
    if warm is not None:
        warm.apply(model, module)
    optimizer = make_optimizer(module.parameters(), config)
    params = [p for p in module.parameters() if p.requires_grad]
    do_valid = _has_rows(valid)
    best_valid = -np.inf
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = 0
    bad_evals = 0
    step = 0
    last_report = time.monotonic()
    curves: dict[str, list[float]] = {"epoch": [], "loss": [], VALID_KEY: []}
    epoch_seconds: list[float] = []
    model.epoch_seconds_ = epoch_seconds
    model.curves_ = curves
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        module.train()
        loss_sum = torch.zeros((), device=device)
        n_seen = 0
        for batch in epoch_batches(epoch):
            with autocast_context(device, config.amp):
                loss = step_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.float().backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            loss_sum += loss.detach().float()
            n_seen += 1
            step += 1
            now = time.monotonic()
            if now - last_report >= PROGRESS_INTERVAL:
                last_report = now
                frac = min(n_seen / n_batches, 1.0) if n_batches else 0.0
                progress(
                    step,
                    {
                        "epoch": float(epoch - 1 + frac),
                        "epochs_total": float(config.epochs),
                        "loss": float(loss_sum.item()) / n_seen,
                    },
                )
        epoch_loss = float(loss_sum.item()) / max(n_seen, 1)
        if not np.isfinite(epoch_loss):
            raise DataError(
                f"{model.name}: the training loss became {epoch_loss} in epoch {epoch}",
                where=f"model {model.name!r}, lr={config.lr}",
                fix="lower the learning rate (lr) or set grad_clip, then train again",
            )
        metrics = {"epoch": float(epoch), "epochs_total": float(config.epochs), "loss": epoch_loss}
        valid_ndcg = float("nan")
        stop = False
        if do_valid and (epoch % config.eval_every == 0 or epoch == config.epochs):
            module.eval()
            if before_eval is not None:
                before_eval()
            with torch.no_grad():
                valid_ndcg = validation_metric(model, train, valid)
            metrics[VALID_KEY] = valid_ndcg
            if valid_ndcg > best_valid:
                best_valid, best_epoch, bad_evals = valid_ndcg, epoch, 0
                # clone: the optimiser updates parameters in place
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                bad_evals += 1
                stop = bad_evals >= config.patience
            # What the ETA needs to bound an early stop (recsys_core.jobs.eta).
            metrics.update(
                best_epoch=float(best_epoch),
                bad_evals=float(bad_evals),
                patience=float(config.patience),
                eval_every=float(config.eval_every),
            )
        epoch_seconds.append(time.perf_counter() - started)
        curves["epoch"].append(float(epoch))
        curves["loss"].append(epoch_loss)
        curves[VALID_KEY].append(valid_ndcg)
        last_report = time.monotonic()
        progress(step, metrics)
        if stop:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        best_epoch = epoch
    module.eval()
    if before_eval is not None:
        before_eval()
    model.n_epochs_run_ = epoch
    model.best_epoch_ = best_epoch
    return TrainResult(
        epochs_run=epoch,
        best_epoch=best_epoch,
        best_valid=None if best_state is None else float(best_valid),
        epoch_seconds=epoch_seconds,
        curves=curves,
    )


def epoch_permutation(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random permutation of ``range(n)`` on the generator's device, cut into batches."""
    perm = torch.randperm(n, generator=generator, device=generator.device)
    return list(torch.split(perm, batch_size))


def positives_of(matrix: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(users, items) int64 tensors on ``device`` of the nonzeros of a CSR matrix."""
    coo = matrix.tocoo()
    users = torch.as_tensor(coo.row.astype(np.int64), device=device)
    items = torch.as_tensor(coo.col.astype(np.int64), device=device)
    return users, items


__all__ = [
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "autocast_context",
    "epoch_permutation",
    "local_validation_ndcg",
    "make_generator",
    "make_optimizer",
    "positives_of",
    "train_loop",
    "validation_metric",
]
