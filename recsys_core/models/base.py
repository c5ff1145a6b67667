"""The model contract: one base class, ``recommend`` written once, save/load written once.

Subclasses declare ``name``, ``family`` and ``Config`` (a frozen dataclass), and implement
``_fit`` and ``score_history``. Everything else (seen-item exclusion, batching, top-k,
persistence of the training history) lives here, so every model behaves the same at the edges.
"""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.balance import BalanceConfig, check_honoured
from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.device import resolve_device, seed_everything
from recsys_core.errors import ConfigError, RecsysError

# torch flags every CSR tensor as beta; the products used here (CSR @ dense) are stable since 2.0
# and tested on CPU and CUDA, so the warning only buries real ones in logs.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

#: ``progress(step, metrics)``: called between batches/epochs with e.g. ``{"epoch": 3,
#: "loss": 0.41, "valid_ndcg@10": 0.2}``. It may raise :class:`recsys_core.errors.Cancelled`.
ProgressFn = Callable[[int, dict[str, float]], None]

STATE_FILE = "state.pt"
META_FILE = "model.json"
FORMAT_VERSION = 1


class NotFittedError(RecsysError):
    """A model was used before ``fit`` (or ``load``)."""


@runtime_checkable
class ReadsRecentItems(Protocol):
    """A model that reads only the latest items of a history (the sequence models).

    ``history_window()`` is how many (None: the whole history). Models that read the whole
    history (EASE; a fusion, whose per-user normalisation reads every seen item) do not
    implement it. The explainer asks it so that its players are the items the model really
    reads (see :meth:`recsys_core.models.sequential.SequenceModel.window`).
    """

    def history_window(self) -> int | None: ...


def history_window(model: object) -> int | None:
    """The latest items ``model`` reads, or None when it reads the whole history."""
    return model.history_window() if isinstance(model, ReadsRecentItems) else None


class Recommender(ABC):
    """Base class of every model.

    Parameters
    ----------
    config : the model's frozen ``Config`` dataclass (defaults when None).
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` or a ``torch.device``.
    seed : seed for every random choice the model makes.
    """

    name: ClassVar[str]
    family: ClassVar[str]  # "baseline" | "cf" | "deep" | "content" | "hybrid"
    Config: ClassVar[type]
    #: True when the model reads time-ordered sequences (``score_history`` uses ``sequences``).
    uses_sequences: ClassVar[bool] = False
    #: Names of the ``BalanceConfig`` options this model honours (see ``recsys_core.balance``).
    honours_balance: ClassVar[frozenset[str]] = frozenset()
    #: How :func:`recsys_core.updates.update_model` folds new interactions into a fitted model:
    #: ``"refit"`` (recompute from the updated matrix: closed-form and count models, fast),
    #: ``"partial_als"`` (iALS: re-solve touched users and items only), ``"warm_start"`` (torch:
    #: grow the embedding tables, fine-tune a few epochs with replay), ``"encode"`` (content:
    #: new items encoded from their side features, no training).
    update_strategy: ClassVar[str] = "refit"

    def __init__(
        self,
        config: Any = None,
        *,
        device: str | torch.device = "auto",
        seed: int = 0,
        balance: BalanceConfig | None = None,
    ):
        config = self.Config() if config is None else config
        if not isinstance(config, self.Config):
            raise ConfigError(
                f"{self.name}: expected a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self.balance = balance or BalanceConfig()
        check_honoured(self.name, self.honours_balance, self.balance)
        self.device = resolve_device(device)
        self.seed = int(seed)

    # ----- training ------------------------------------------------------------------------
    def fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
    ) -> Self:
        """Learn from ``train`` (``valid`` is for early stopping only); returns ``self``."""
        seed_everything(self.seed)
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.history_ = train.binary.tocsr()
        self.sequences_ = train.sequences if self.uses_sequences else None
        self._fit(train, valid, progress or _no_progress)
        return self

    def after_update(self, train: Interactions) -> None:  # noqa: B027 - optional hook
        """Refresh derived state after a warm-start update fine-tuned on a subset of ``train``
        (``history_`` already holds all of ``train``); most models derive nothing."""

    @abstractmethod
    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        """Model-specific training."""

    # ----- scoring -------------------------------------------------------------------------
    @abstractmethod
    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        """Scores of every item for users described only by their history.

        Parameters
        ----------
        history : binary CSR [batch, n_items] of the items each row has interacted with.
        sequences : the same histories in time order (only read by sequence models).

        Returns
        -------
        float32 tensor [batch, n_items] on ``self.device``; higher is better.
        """

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Scores [len(users), n_items] of training users; default: fold in their history."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        seqs = self.sequences_.rows(users) if self.sequences_ is not None else None
        return self.score_history(self.history_[users], seqs)

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each user, batched.

        Returns
        -------
        items : int64 [len(users), k] item indices, best first.
        scores : float32 [len(users), k] their scores (-inf where fewer than k were eligible).
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        k = min(int(k), self.n_items_)
        out_items = np.empty((len(users), k), dtype=np.int64)
        out_scores = np.empty((len(users), k), dtype=np.float32)
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            scores = self.score_users(batch).float()
            if exclude_seen:
                scores = mask_items(scores, self.history_[batch])
            top = torch.topk(scores, k, dim=1)
            out_items[start : start + len(batch)] = top.indices.cpu().numpy()
            out_scores[start : start + len(batch)] = top.values.cpu().numpy()
        return out_items, out_scores

    def recommend_history(
        self,
        history: sp.csr_matrix,
        sequences: Sequences | None = None,
        k: int = 10,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for users given only by a history (fold-in), history items excluded.

        Sequence models (``uses_sequences``) need ``sequences``, the same histories in time
        order: the CSR matrix holds no order, and guessing one ranks differently from
        ``recommend``.
        """
        self._check_fitted()
        if self.uses_sequences and sequences is None:
            raise ConfigError(
                f"{self.name} reads histories in time order, so recommend_history needs "
                "sequences; pass them, e.g. data.sequences.rows(users) beside data.binary[users]"
            )
        scores = mask_items(self.score_history(history, sequences).float(), history)
        top = torch.topk(scores, min(k, self.n_items_), dim=1)
        return top.indices.cpu().numpy(), top.values.cpu().numpy()

    # ----- embeddings ----------------------------------------------------------------------
    def item_embeddings(self) -> np.ndarray | None:
        """float32 [n_items, d] learned item vectors, or None when the model has none."""
        return None

    def user_embeddings(self) -> np.ndarray | None:
        """float32 [n_users, d] learned user vectors, or None when the model has none."""
        return None

    # ----- persistence ---------------------------------------------------------------------
    def _state(self) -> dict[str, torch.Tensor]:
        """Learned state as CPU tensors (subclasses extend the dict)."""
        return {}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:  # noqa: B027 - optional hook
        """Restore what ``_state`` returned (subclasses override; stateless models need not)."""

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (key, config, seed) and ``state.pt`` (tensors on CPU)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: _to_cpu_tensor(v) for k, v in self._state().items()}
        state.update(csr_to_state("history_", self.history_))
        if self.sequences_ is not None:
            state["sequences_indptr"] = torch.from_numpy(self.sequences_.indptr)
            state["sequences_items"] = torch.from_numpy(self.sequences_.items)
        meta = {
            "format": FORMAT_VERSION,
            "model": self.name,
            "config": config_to_dict(self.config),
            "seed": self.seed,
            "balance": config_to_dict(self.balance),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        torch.save(state, directory / STATE_FILE)
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "auto") -> Recommender:
        """Load a saved model; ``Recommender.load`` dispatches on the stored registry key."""
        from recsys_core.models import get_model  # registry imports every model module

        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        model_cls = get_model(meta["model"]) if cls is Recommender else cls
        model = model_cls(
            config_from_dict(model_cls.Config, meta["config"]),
            device=device,
            seed=meta["seed"],
            balance=config_from_dict(BalanceConfig, meta.get("balance")),
        )
        state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
        model.n_users_ = int(meta["n_users"])
        model.n_items_ = int(meta["n_items"])
        model.history_ = csr_from_state("history_", state)
        model.sequences_ = (
            Sequences(state["sequences_indptr"].numpy(), state["sequences_items"].numpy())
            if "sequences_indptr" in state
            else None
        )
        model._load_state(state)
        return model

    # ----- helpers -------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "history_"):
            raise NotFittedError(f"{self.name}: call fit() or load() before scoring")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r}, device={self.device.type!r})"


def _no_progress(step: int, metrics: dict[str, float]) -> None:
    return None


def mask_items(scores: torch.Tensor, exclude: sp.csr_matrix) -> torch.Tensor:
    """Set ``scores[r, j] = -inf`` wherever ``exclude[r, j] != 0`` (vectorised, in place)."""
    exclude = exclude.tocoo()
    if exclude.nnz:
        rows = torch.as_tensor(exclude.row, dtype=torch.long, device=scores.device)
        cols = torch.as_tensor(exclude.col, dtype=torch.long, device=scores.device)
        scores[rows, cols] = float("-inf")
    return scores


def csr_to_tensor(matrix: sp.spmatrix, device: torch.device) -> torch.Tensor:
    """scipy CSR -> torch sparse CSR float32 on ``device`` (COO on MPS, which lacks CSR)."""
    m = matrix.tocsr().astype(np.float32)
    if device.type == "mps":
        coo = m.tocoo()
        idx = torch.as_tensor(np.vstack([coo.row, coo.col]), dtype=torch.long)
        return (
            torch.sparse_coo_tensor(idx, torch.as_tensor(coo.data), m.shape).coalesce().to(device)
        )
    return torch.sparse_csr_tensor(
        torch.as_tensor(m.indptr, dtype=torch.int64),
        torch.as_tensor(m.indices, dtype=torch.int64),
        torch.as_tensor(m.data),
        size=m.shape,
        check_invariants=False,  # built from scipy's canonical CSR; checking costs a pass
    ).to(device)


def sparse_mm(sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``sparse @ dense`` in float32 with autocast off: CUDA's sparse kernels (cuSPARSE SpMM,
    addmm_sparse) have no bf16 version, so inside the trainer's bf16 autocast they would fail."""
    with torch.autocast(device_type=dense.device.type, enabled=False):
        return torch.sparse.mm(sparse, dense.float())


def dense_rows(matrix: sp.spmatrix, device: torch.device) -> torch.Tensor:
    """A small sparse batch as a dense float32 tensor on ``device``."""
    return torch.as_tensor(matrix.toarray(), dtype=torch.float32, device=device)


def csr_to_state(prefix: str, matrix: sp.csr_matrix) -> dict[str, torch.Tensor]:
    """A CSR matrix as plain tensors that ``torch.load(weights_only=True)`` accepts."""
    m = matrix.tocsr()
    return {
        prefix + "indptr": torch.from_numpy(m.indptr.astype(np.int64)),
        prefix + "indices": torch.from_numpy(m.indices.astype(np.int64)),
        prefix + "data": torch.from_numpy(m.data.astype(np.float32)),
        prefix + "shape": torch.tensor(m.shape, dtype=torch.int64),
    }


def csr_from_state(prefix: str, state: dict[str, torch.Tensor]) -> sp.csr_matrix:
    shape = tuple(int(x) for x in state[prefix + "shape"])
    return sp.csr_matrix(
        (
            state[prefix + "data"].numpy(),
            state[prefix + "indices"].numpy(),
            state[prefix + "indptr"].numpy(),
        ),
        shape=shape,
    )


def _to_cpu_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").contiguous()
    return torch.as_tensor(np.asarray(value))
