"""Content-based recommender: cosine similarity between a user's profile and item features.

The classic content-based filter (Pazzani & Billsus 2007, "Content-based recommendation
systems"; Lops et al. 2011): every item is a vector of its side information, a user is the
(optionally recency-weighted) mean of the vectors of the items in their history, and every item
is scored by cosine similarity to that profile. It needs no interaction with an item to score
it, which makes it the cold-start baseline against collaborative filtering. An optional
popularity prior (on by default, ``popularity_prior``) multiplies the clipped cosine by
(1 + popularity)^prior: among look-alikes, the ones people actually chose come first.

Item vectors are the blocks of :func:`recsys_core.data.features.item_feature_blocks`
(categories multi-hot, TF-IDF + SVD of title and text, standardised numerics, precomputed
embeddings, text embeddings from ``embed-text``), each L2-normalised per item and scaled by the
square root of its block weight, so the dot product of two items is the weighted sum of their
per-block cosines.

Explanations (:mod:`recsys_core.explain`): the scored item's side features are players of the
Shapley game beside the history, one per category of the item, one for its text, one for its
numeric columns, one for its precomputed embedding and one for its text embedding ("item text
embedding", from ``embed-text``) (only blocks the model uses). A removed
feature takes its neutral value: the item is encoded as if it lacked it (the categories block
re-normalised over the categories kept, a removed block zero, as for an item without text or
embedding), so with every feature removed the item vector is zero and the base value is 0. The
popularity prior is a property of the item's interactions, not a side feature: it stays. The
helpers of this module are shared with the two-tower model, which reads the same blocks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.balance import BalanceConfig
from recsys_core.config import param, validate
from recsys_core.data.features import item_feature_blocks
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import ConfigError, DataError
from recsys_core.models.base import ProgressFn, Recommender, csr_to_tensor

BLOCKS = ("categories", "text", "numeric", "embedding", "text_embedding")
#: Side-feature name of each item block explained as one player (categories: one per category).
BLOCK_FEATURES = {
    "text": "item text",
    "numeric": "item numeric features",
    "embedding": "item embedding",
    "text_embedding": "item text embedding",
}


@dataclass(frozen=True)
class ContentConfig:
    """Block weights and profile options of the content-based model."""

    w_categories: float = param(1.0, "weight of the categories block", low=0.0, high=100.0)
    w_text: float = param(1.0, "weight of the title/text TF-IDF block", low=0.0, high=100.0)
    w_numeric: float = param(0.25, "weight of the numeric-columns block", low=0.0, high=100.0)
    w_embedding: float = param(
        1.0, "weight of the precomputed-embedding block", low=0.0, high=100.0
    )
    w_text_embedding: float = param(
        1.0, "weight of the item text-embedding block (embed-text)", low=0.0, high=100.0
    )
    text_dims: int = param(64, "SVD dimensions of the text block", low=1, high=1024)
    recency_half_life: float = param(
        0.0,
        "weight history items by 0.5^(age / half_life), age counted in interactions "
        "(0 = plain mean; needs time order)",
        low=0.0,
        high=1e6,
    )

    # Pure content (0) ranks obscure look-alikes first and scores NDCG@10 0.015 on the fixed
    # MovieLens split's validation part, far below MostPopular (0.106); 0.5 gives 0.140.
    popularity_prior: float = param(
        0.5,
        "score = max(cosine, 0) x (1 + training popularity)^prior (0 = pure content; "
        "items nobody interacted with keep their cosine)",
        low=0.0,
        high=5.0,
    )

    def __post_init__(self) -> None:
        validate(self)


class ContentBased(Recommender):
    """User profile = mean of history item vectors; score = cosine to every item.

    Fitting needs an item table with at least one of categories, title/text, numeric columns
    or embeddings; otherwise :class:`recsys_core.errors.DataError` explains what to attach.
    """

    name = "content"
    update_strategy = "encode"  # a refit only encodes items from side features
    family = "content"
    Config = ContentConfig

    def __init__(
        self,
        config: ContentConfig | None = None,
        *,
        device: str | torch.device = "auto",
        seed: int = 0,
        balance: BalanceConfig | None = None,
    ) -> None:
        super().__init__(config, device=device, seed=seed, balance=balance)
        # only a recency-weighted profile reads the time order of the history
        self.uses_sequences = self.config.recency_half_life > 0

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        cfg = self.config
        blocks = item_feature_blocks(train, text_dims=cfg.text_dims, seed=self.seed)
        if not blocks:
            raise DataError(
                "the content-based model needs side information about items, and this dataset "
                "has no item table with categories, title/text, numeric or embedding columns",
                where="model 'content'",
                fix="attach an item table (e.g. MovieLens movies.csv) to the dataset, or pick a "
                "collaborative model such as 'ease'",
            )
        weights = {
            "categories": cfg.w_categories,
            "text": cfg.w_text,
            "numeric": cfg.w_numeric,
            "embedding": cfg.w_embedding,
            "text_embedding": cfg.w_text_embedding,
        }
        parts = []
        used = [name for name in BLOCKS if name in blocks and weights[name] > 0]
        for name in used:
            block = torch.as_tensor(blocks[name], dtype=torch.float32, device=self.device)
            block = torch.nn.functional.normalize(block, dim=1)
            parts.append(block * float(np.sqrt(weights[name])))
        if not parts:
            raise ConfigError(
                f"content: every available feature block ({sorted(blocks)}) has weight 0; "
                "give at least one of them a positive weight"
            )
        vectors = torch.cat(parts, dim=1)
        # unit rows: the profile's dot product with an item is then its cosine
        self.item_vectors_ = torch.nn.functional.normalize(vectors, dim=1)
        pop = torch.as_tensor(train.item_popularity, dtype=torch.float32, device=self.device)
        self.prior_ = (1.0 + pop) ** cfg.popularity_prior
        self.side_schema_: dict[str, Any] | None = item_side_schema(train, blocks, used)
        progress(1, {"epoch": 1, "epochs_total": 1})

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        """Scores [batch, n_items]: cosine of each history's profile to every item vector,
        clipped at 0 and multiplied by the popularity prior (see ``ContentConfig``)."""
        self._check_fitted()
        profiles = self.profiles(history, sequences)
        cosine = profiles @ self.item_vectors_.T
        return cosine.clamp_min_(0.0).mul_(self.prior_[None, :])

    def profiles(self, history: sp.csr_matrix, sequences: Sequences | None = None) -> torch.Tensor:
        """float32 [batch, d] unit user profiles (zero for an empty history)."""
        self._check_fitted()
        weights = self._history_weights(history, sequences)
        summed = csr_to_tensor(weights, self.device) @ self.item_vectors_
        return torch.nn.functional.normalize(summed, dim=1)  # mean and sum share a direction

    def _history_weights(
        self, history: sp.csr_matrix, sequences: Sequences | None
    ) -> sp.csr_matrix:
        """Per-(row, item) weights: 1, or 0.5^(age/half_life) with age 0 for the latest item.

        With recency weighting on and ``sequences`` given, the sequences define the history.
        """
        half_life = self.config.recency_half_life
        if half_life <= 0 or sequences is None:
            h = sp.csr_matrix(history, dtype=np.float32)
            h.data[:] = 1.0
            return h
        lengths = sequences.lengths
        rows = np.repeat(np.arange(sequences.n_rows), lengths)
        age = np.repeat(sequences.indptr[1:], lengths) - 1 - np.arange(len(sequences.items))
        w = np.power(0.5, age / half_life).astype(np.float32)
        cols = sequences.items.astype(np.int64)
        # a repeated item keeps the weight of its latest (heaviest) occurrence
        order = np.lexsort((-w, cols, rows))
        r, c = rows[order], cols[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
        sel = order[first]
        shape = (sequences.n_rows, self.item_vectors_.shape[0])
        return sp.csr_matrix((w[sel], (rows[sel], cols[sel])), shape=shape, dtype=np.float32)

    # ----- explanation hooks (see recsys_core.explain) -----------------------------------------
    def explain_side_features(self, user: int, item: int) -> list[tuple[str, str]]:
        """``(name, "item")`` per side feature of ``item`` the model reads (see module doc)."""
        return [(p.name, p.kind) for p in self._side_players(item)]

    def score_history_masked(
        self,
        history: sp.csr_matrix,
        sequences: Sequences | None = None,
        *,
        user: int,
        item: int,
        side_mask: np.ndarray,
    ) -> torch.Tensor:
        """:meth:`score_history` with ``item`` encoded from the side features ``side_mask`` keeps.

        ``side_mask`` is bool [batch, n_side] over :meth:`explain_side_features`' list; only
        column ``item`` of the scores depends on it (the profile is built from the history,
        which does not hold the item).
        """
        self._check_fitted()
        players = self._side_players(item)
        mask = side_mask_tensor(side_mask, history.shape[0], len(players), self.device)
        profiles = self.profiles(history, sequences)
        scores = (profiles @ self.item_vectors_.T).clamp_min_(0.0).mul_(self.prior_[None, :])
        if players:
            rows = mask_feature_rows(
                self.item_vectors_[item], self.side_schema_["blocks"], players, mask
            )
            vectors = torch.nn.functional.normalize(rows, dim=1)
            own = (profiles * vectors).sum(dim=1).clamp_min(0.0) * self.prior_[item]
            scores[:, item] = own
        return scores

    def _side_players(self, item: int) -> list[SidePlayer]:
        # runs saved before side features were explained carry no schema: history only
        if self.side_schema_ is None:
            return []
        row = self.item_vectors_[int(item)].detach().cpu().numpy()
        return item_side_players(self.side_schema_, row)

    def item_embeddings(self) -> np.ndarray:
        """float32 [n_items, d]: the unit item content vectors."""
        self._check_fitted()
        return self.item_vectors_.cpu().numpy()

    def user_embeddings(self) -> np.ndarray:
        """float32 [n_users, d]: the training users' unit profiles."""
        self._check_fitted()
        seqs = self.sequences_ if self.uses_sequences else None
        return self.profiles(self.history_, seqs).cpu().numpy()

    def _state(self) -> dict[str, torch.Tensor]:
        state = {"item_vectors": self.item_vectors_, "prior": self.prior_}
        if self.side_schema_ is not None:
            state["side_schema"] = json_to_tensor(self.side_schema_)
        return state

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.item_vectors_ = state["item_vectors"].to(self.device, torch.float32)
        self.prior_ = state["prior"].to(self.device, torch.float32)
        schema = state.get("side_schema")
        self.side_schema_ = None if schema is None else json_from_tensor(schema)


# ----- side features of items, for explanations (shared with the two-tower model) ---------------
@dataclass(frozen=True)
class SidePlayer:
    """One side feature as a player of the explanation game.

    Attributes
    ----------
    name : display name (``"item category: Comedy"``, ``"user: age=25"``).
    kind : ``"item"`` or ``"user"``.
    columns : int64 columns of the model's feature vector (item or user attributes) it covers.
    """

    name: str
    kind: str
    columns: np.ndarray


def item_side_schema(
    data: Interactions, blocks: dict[str, np.ndarray], used: Sequence[str]
) -> dict[str, Any] | None:
    """What explanations need to name and mask item features, JSON-ready (None: no blocks).

    ``blocks`` as from :func:`item_feature_blocks`; ``used`` the names of the blocks the model
    concatenates, in column order. Returns ``{"blocks": [[name, width], ...], "categories":
    [name per categories column]}``.
    """
    if not used:
        return None
    schema: dict[str, Any] = {"blocks": [[name, int(blocks[name].shape[1])] for name in used]}
    if "categories" in used:
        schema["categories"] = _category_names(data, int(blocks["categories"].shape[1]))
    return schema


def _category_names(data: Interactions, width: int) -> list[str]:
    # the categories block is pandas' get_dummies, whose columns are the sorted distinct names
    names = sorted({c for row in data.item_categories() or [] for c in row})
    if len(names) != width:  # odd values ("A||B"): the block has columns we cannot name
        return [f"#{j}" for j in range(width)]
    return names


def item_side_players(schema: dict[str, Any], row: np.ndarray) -> list[SidePlayer]:
    """The side features an item vector ``row`` [F] has, one player per category or block.

    Blocks (or categories) the item lacks are no players: they are already at the neutral
    value, so their Shapley value would be 0.
    """
    players: list[SidePlayer] = []
    start = 0
    for name, width in schema["blocks"]:
        cols = np.arange(start, start + width, dtype=np.int64)
        start += width
        values = row[cols]
        if name == "categories":
            players.extend(
                SidePlayer(f"item category: {schema['categories'][j]}", "item", cols[j : j + 1])
                for j in np.flatnonzero(values)
            )
        elif np.any(values):
            players.append(SidePlayer(BLOCK_FEATURES.get(name, f"item {name}"), "item", cols))
    return players


def mask_feature_rows(
    row: torch.Tensor,
    blocks: Sequence[Sequence[Any]],
    players: Sequence[SidePlayer],
    mask: torch.Tensor,
) -> torch.Tensor:
    """float32 [b, F] copies of feature vector ``row`` [F] with the removed players zeroed.

    ``mask`` is bool [b, len(players)]. Each of ``blocks`` (``[name, width]`` in column order;
    none for user attributes) is then rescaled to the norm it has in ``row``, so it holds what
    the encoder gives an item with only the kept features (the categories kept, re-normalised);
    a block with nothing kept stays zero, as for an item without it.
    """
    keep = torch.ones((mask.shape[0], row.shape[0]), dtype=row.dtype, device=row.device)
    for p, player in enumerate(players):  # a handful of players; the batch is vectorised
        cols = torch.as_tensor(player.columns, device=row.device)
        keep[:, cols] = mask[:, p : p + 1].to(row.dtype)
    rows = row[None, :] * keep
    start = 0
    for _name, width in blocks:
        part = rows[:, start : start + width]
        norm = part.norm(dim=1, keepdim=True)
        part.mul_(row[start : start + width].norm() / norm.clamp_min(1e-12))
        start += width
    return rows


def side_mask_tensor(
    side_mask: np.ndarray, n_rows: int, n_side: int, device: torch.device
) -> torch.Tensor:
    """``side_mask`` as a bool tensor [n_rows, n_side]; DataError naming both shapes if not."""
    mask = np.asarray(side_mask, dtype=bool)
    if mask.shape != (n_rows, n_side):
        raise DataError(
            f"side_mask has shape {mask.shape}, expected ({n_rows}, {n_side}): one row per "
            "history and one column per side feature",
            where="score_history_masked",
            fix="pass one column per entry of explain_side_features(user, item)",
        )
    return torch.as_tensor(mask, device=device)


def json_to_tensor(value: Any) -> torch.Tensor:
    """A JSON value as a uint8 tensor: model state holds tensors only (weights_only loading)."""
    return torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8)


def json_from_tensor(tensor: torch.Tensor) -> Any:
    """Inverse of :func:`json_to_tensor`."""
    return json.loads(tensor.cpu().numpy().tobytes().decode())
