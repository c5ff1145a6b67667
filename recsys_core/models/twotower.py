"""Two-tower retrieval model with side features (user attributes, item content).

Towers, in the spirit of Covington et al. (2016, "Deep Neural Networks for YouTube
Recommendations": the user is the pooled embedding of the watched items plus attributes) and
Yi et al. (2019, "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
Recommendations", RecSys):

- item tower: ``[id embedding | side features] -> MLP -> L2-normalised vector``, where the side
  features are the blocks of :func:`recsys_core.data.features.item_feature_blocks` (categories
  multi-hot, TF-IDF -> SVD of title/text, standardised numerics and a precomputed embedding such
  as a language model's, when the dataset has one), each L2-normalised per item;
- user tower: ``[pooled history id embeddings | pooled history side features | user attributes]
  -> MLP -> L2-normalised vector``; pooling is the mean, or a recency-weighted mean
  (``0.5^(age / half_life)``, age counted in interactions, newest = 0) when ``pooling="recency"``.

Score = cosine / temperature (Yi et al. 2019, sec. 4: normalised embeddings and a temperature).

Training: every training interaction (u, i) is one example; the user's pooled history leaves
the target out (otherwise the tower learns to find the target inside its own input). Loss is the
in-batch softmax with the logQ correction of Yi et al. (2019, eq. 3): the logit of a candidate j
is ``s(u, j) - log q_j`` with ``q_j`` the probability that j appears in a batch (its share of
the training interactions), which removes the popularity bias of in-batch negatives. Candidates
equal to the row's own target item elsewhere in the batch are masked (not false negatives).
``loss="sampled"`` uses batch-shared negatives from ``pop^neg_alpha`` instead (sampled softmax
with the same logQ correction, Bengio & Senécal 2008; Jean et al. 2015).

Side features matter for items nobody interacted with: ``id_dropout`` zeroes the id embedding
of a share of training items so the tower also learns to score from features alone, and items
without a training interaction are always scored with a zero id embedding (cold items are
scorable from their features).

User attributes (:func:`recsys_core.data.features.user_feature_matrix`) are known only for the
training users. ``score_users`` uses them; ``score_history`` describes a user by history only,
so it gives the attributes as zeros unless ``user_features`` is passed. ``attr_dropout`` zeroes
the attributes of a share of training rows so the tower serves both cases (fold-in users, masked
histories in explanations). Defaults: 64-d vectors, temperature 0.05 and batch 1024 (Yi et al.
2019 tune temperatures around 0.05), Adam lr 1e-3.

Explanations (:mod:`recsys_core.explain`): besides the history, the players are the user's
attributes (one per user-table column, e.g. "user: age=25", "user: gender=F") and the scored
item's side features (one per category, one each for its text, numeric and embedding blocks),
only those the model reads. A removed attribute is zero, its neutral value: the absent category
of a one-hot column, the mean of a standardised number, and what ``attr_dropout`` trains the
tower with. A removed item feature is encoded as if the item lacked it (see
:func:`recsys_core.models.content.mask_feature_rows`); only the explained item's vector changes,
every other item keeps its real one. With everything removed the user tower sees an empty
history and no attributes, so the base value is the score of a user the model knows nothing
about for the item described by its id embedding alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from recsys_core.balance import ips_weights, split_by_threshold
from recsys_core.config import param
from recsys_core.data.features import item_feature_blocks, user_feature_table
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import DataError
from recsys_core.models.base import ProgressFn, Recommender
from recsys_core.models.content import (
    SidePlayer,
    item_side_players,
    item_side_schema,
    json_from_tensor,
    json_to_tensor,
    mask_feature_rows,
    side_mask_tensor,
)
from recsys_core.training.sequences import shared_negatives_for
from recsys_core.training.trainer import TrainConfig, make_generator, train_loop

POOLINGS = ("mean", "recency")
LOSSES = ("in_batch", "sampled")
BLOCKS = ("categories", "text", "numeric", "embedding", "text_embedding")


@dataclass(frozen=True)
class TwoTowerConfig(TrainConfig):
    """Two-tower hyperparameters (defaults: Yi et al. 2019; Covington et al. 2016)."""

    # bf16 autocast off by default: on an H100 the model stopped at NDCG@10 0.183 with it and
    # reached 0.230 without (ml-latest-small), also after the logits moved to float32; the
    # towers are small MLPs, so AMP buys no speed worth that.
    amp: bool = param(False, "bf16 autocast on CUDA where supported (ignored on CPU)")
    dim: int = param(64, "output vector size of both towers", low=2, high=4096)
    hidden: int = param(256, "hidden layer width of both tower MLPs", low=2, high=16384)
    dropout: float = param(0.1, "dropout inside the tower MLPs", low=0.0, high=0.9)
    temperature: float = param(
        0.05, "softmax temperature on the cosine (Yi et al. 2019)", low=1e-3, high=10.0, log=True
    )
    loss: str = param(
        "in_batch", "in-batch softmax or batch-shared sampled softmax", choices=LOSSES
    )
    logq: bool = param(True, "logQ popularity correction of the negatives (Yi et al. 2019)")
    n_sampled: int = param(1024, "shared negatives per batch when loss=sampled", low=1)
    pooling: str = param("mean", "history pooling of the user tower", choices=POOLINGS)
    half_life: float = param(
        20.0, "recency pooling: weight halves every this many interactions", low=0.1, high=1e6
    )
    use_item_features: bool = param(True, "feed item side features to both towers")
    use_user_features: bool = param(True, "feed user attributes to the user tower")
    text_dims: int = param(64, "SVD dimensions of the item text block", low=1, high=1024)
    id_dropout: float = param(
        0.1, "share of items trained without their id embedding (cold start)", low=0.0, high=1.0
    )
    attr_dropout: float = param(
        0.5, "share of training rows without user attributes (fold-in users)", low=0.0, high=1.0
    )
    epochs: int = param(50, "maximum number of passes over the interactions", low=1, high=10_000)
    batch_size: int = param(1024, "interactions per step (= in-batch negatives)", low=2)
    weight_decay: float = param(0.0, "L2 / decoupled weight decay", low=0.0, high=1.0)


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, d_out)
    )


class _TwoTowerNet(nn.Module):
    """Both towers; the item features and user attributes are fixed buffers."""

    def __init__(
        self,
        n_items: int,
        item_features: torch.Tensor,
        user_features: torch.Tensor,
        cfg: TwoTowerConfig,
    ) -> None:
        super().__init__()
        d = cfg.dim
        self.register_buffer("item_features", item_features)  # [n_items, F]
        self.register_buffer("user_features", user_features)  # [n_users, A]
        self.item_ids = nn.Embedding(n_items, d)
        self.history_ids = nn.Embedding(n_items, d)  # the user tower's own item table
        n_feat, n_attr = item_features.shape[1], user_features.shape[1]
        self.item_mlp = _mlp(d + n_feat, cfg.hidden, d, cfg.dropout)
        self.user_mlp = _mlp(d + n_feat + n_attr, cfg.hidden, d, cfg.dropout)
        nn.init.normal_(self.item_ids.weight, std=d**-0.5)
        nn.init.normal_(self.history_ids.weight, std=d**-0.5)

    def history_table(self) -> torch.Tensor:
        """[n_items, d + F] what the user tower pools per history item."""
        return torch.cat([self.history_ids.weight, self.item_features], dim=1)

    def items(
        self,
        index: torch.Tensor,
        id_keep: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[len(index), d] unit item vectors; ``id_keep`` [len(index)] zeroes id embeddings,
        ``features`` [len(index), F] replaces the items' side features (explanations)."""
        ids = self.item_ids(index)
        if id_keep is not None:
            ids = ids * id_keep[:, None]
        if features is None:
            features = self.item_features[index]
        x = torch.cat([ids, features], dim=1)
        return nn.functional.normalize(self.item_mlp(x), dim=1)

    def users(self, pooled: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """[b, d] unit user vectors from pooled history [b, d + F] and attributes [b, A]."""
        return nn.functional.normalize(self.user_mlp(torch.cat([pooled, attrs], dim=1)), dim=1)


def _similarity(
    u: torch.Tensor, v: torch.Tensor, temperature: float, *, pairwise: bool = False
) -> torch.Tensor:
    """Cosine / temperature in float32 (all pairs [b_u, b_v], or row by row when pairwise).

    Under bf16 autocast a cosine carries ~3 significant digits, and dividing by a 0.05
    temperature turns that into logit noise of ~0.1, so the logits are float32 whenever AMP is
    switched on. That alone did not close the gap measured on an H100 (NDCG@10 0.183 with AMP,
    0.230 without), which is why AMP is off by default (``TwoTowerConfig.amp``).
    """
    with torch.autocast(device_type=u.device.type, enabled=False):
        u, v = u.float(), v.float()
        sim = (u * v).sum(dim=1) if pairwise else u @ v.T
        return sim / temperature


class TwoTower(Recommender):
    """Two-tower model with side features, in-batch softmax and logQ correction."""

    name = "twotower"
    update_strategy = "warm_start"
    family = "hybrid"
    Config = TwoTowerConfig
    honours_balance = frozenset({"ips_beta", "positive_threshold", "neg_sampler", "n_negatives"})

    def __init__(self, config=None, *, device="auto", seed=0, balance=None):  # noqa: D107
        super().__init__(config, device=device, seed=seed, balance=balance)
        # only recency pooling reads the time order of a history
        self.uses_sequences = self.config.pooling == "recency"

    # ----- features --------------------------------------------------------------------------
    def _item_features(self, train: Interactions) -> tuple[np.ndarray, dict[str, Any] | None]:
        """float32 [n_items, F] item side features and their schema for explanations."""
        if not self.config.use_item_features:
            return np.zeros((train.n_items, 0), dtype=np.float32), None
        blocks = item_feature_blocks(train, text_dims=self.config.text_dims, seed=self.seed)
        used = [b for b in BLOCKS if b in blocks]
        if not used:  # no item table: the item tower is an id embedding through an MLP
            return np.zeros((train.n_items, 0), dtype=np.float32), None
        # unit rows per block: no block dominates by its scale (same as the content model)
        parts = [blocks[b] for b in used]
        parts = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in parts]
        return np.hstack(parts).astype(np.float32), item_side_schema(train, blocks, used)

    def _user_features(self, train: Interactions) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """float32 [n_users, A] user attributes and their schema for explanations."""
        if not self.config.use_user_features:
            return np.zeros((train.n_users, 0), dtype=np.float32), []
        matrix, names = user_feature_table(train)
        return matrix.astype(np.float32), _user_side_schema(train, names)

    # ----- pooling ---------------------------------------------------------------------------
    def _pool_weights(self, history: sp.csr_matrix, sequences: Sequences | None) -> sp.csr_matrix:
        """Per-(row, item) pooling weights (not normalised): 1, or 0.5^(age / half_life)."""
        if self.config.pooling != "recency" or sequences is None:
            h = sp.csr_matrix(history, dtype=np.float32, copy=True)
            h.data[:] = 1.0
            return h
        lengths = sequences.lengths
        rows = np.repeat(np.arange(len(lengths)), lengths)
        age = np.repeat(sequences.indptr[1:], lengths) - 1 - np.arange(len(sequences.items))
        weight = np.power(0.5, age / self.config.half_life).astype(np.float32)
        m = sp.csr_matrix((weight, (rows, sequences.items)), shape=(len(lengths), self.n_items_))
        m.sum_duplicates()  # a re-consumed item counts with all its occurrences
        return m

    def _pooled(self, weights: sp.csr_matrix, table: torch.Tensor) -> torch.Tensor:
        """Weighted mean [b, d + F] of ``table`` rows (zero for an empty history)."""
        total = torch.as_tensor(
            np.asarray(weights.sum(axis=1)).ravel(), dtype=torch.float32, device=self.device
        )
        return _bag_sum(weights, table, self.device) / total.clamp_min(1e-12)[:, None]

    # ----- training --------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        cfg: TwoTowerConfig = self.config
        positives, _ = split_by_threshold(train, self.balance.positive_threshold)
        if positives.nnz == 0:
            raise DataError(
                "two-tower: the training data has no positive interaction",
                where="model 'twotower'",
                fix="train on a split with interactions (or lower positive_threshold)",
            )
        item_feat, item_schema = self._item_features(train)
        user_feat, user_schema = self._user_features(train)
        self.side_schema_: dict[str, Any] | None = {"items": item_schema, "user": user_schema}
        item_feat = torch.as_tensor(item_feat, device=self.device)
        user_feat = torch.as_tensor(user_feat, device=self.device)
        self.net_ = _TwoTowerNet(self.n_items_, item_feat, user_feat, cfg).to(self.device)
        net = self.net_
        popularity = positives.item_popularity
        self.trained_items_ = torch.as_tensor(popularity > 0, device=self.device)
        weights = self._pool_weights(
            positives.binary, positives.sequences if self.uses_sequences else None
        ).tocsr()
        weights.sort_indices()
        coo = weights.tocoo()
        # the examples are the nonzeros of the pooling matrix: (user, item, own pooling weight)
        ex_users = torch.as_tensor(coo.row.astype(np.int64), device=self.device)
        ex_items = torch.as_tensor(coo.col.astype(np.int64), device=self.device)
        ex_w = torch.as_tensor(coo.data.astype(np.float32), device=self.device)
        row_total = torch.as_tensor(
            np.asarray(weights.sum(axis=1)).ravel(), dtype=torch.float32, device=self.device
        )
        ex_users_np = coo.row.astype(np.int64)
        # q_j: probability that item j is a batch candidate (Yi et al. 2019, eq. 3)
        counts = np.bincount(coo.col, minlength=self.n_items_).astype(np.float64)
        log_q = torch.as_tensor(
            np.log(np.maximum(counts, 1.0) / counts.sum()), dtype=torch.float32, device=self.device
        )
        ips = (
            torch.as_tensor(ips_weights(popularity, self.balance.ips_beta), device=self.device)
            if self.balance.ips_beta > 0
            else None
        )
        negatives = shared_negatives_for(self, popularity, cfg.loss == "sampled", cfg.n_sampled)
        if negatives is not None:
            neg_log_q = torch.log(negatives.probs.clamp_min(1e-12))
        gen = make_generator(self.device, self.seed)
        n = len(ex_users)

        def batches(_epoch: int):
            perm = torch.randperm(n, generator=gen, device=gen.device).to(self.device)
            yield from torch.split(perm, cfg.batch_size)

        def step(idx: torch.Tensor) -> torch.Tensor:
            users, items, own = ex_users[idx], ex_items[idx], ex_w[idx]
            table = net.history_table()
            # pool each distinct user of the batch once (heavy users own many examples, so
            # pooling per example would cost sum(len^2) instead of sum(len)); rows are gathered
            # on the host (scipy row slicing is O(nnz))
            uniq, inverse = np.unique(ex_users_np[idx.cpu().numpy()], return_inverse=True)
            per_user = _bag_sum(weights[uniq], table, self.device)
            inverse_t = torch.as_tensor(inverse.ravel(), device=self.device)
            summed = per_user[inverse_t] - own[:, None] * table[items]
            total = (row_total[users] - own).clamp_min(1e-12)
            pooled = summed / total[:, None]  # the target itself is left out of its history
            attrs = net.user_features[users]
            if cfg.attr_dropout > 0 and attrs.shape[1]:
                keep = torch.rand(len(users), device=self.device, generator=gen) >= cfg.attr_dropout
                attrs = attrs * keep[:, None]
            u = net.users(pooled, attrs)
            if negatives is None:
                cand = items
                id_keep = None
                if cfg.id_dropout > 0:
                    id_keep = (
                        torch.rand(len(items), device=self.device, generator=gen) >= cfg.id_dropout
                    ).float()
                v = net.items(cand, id_keep)
                logits = _similarity(u, v, cfg.temperature)
                if cfg.logq:
                    logits = logits - log_q[cand][None, :]
                same = items[:, None] == cand[None, :]
                same.fill_diagonal_(False)  # a repeated target elsewhere is not a negative
                logits = logits.masked_fill(same, float("-inf"))
                target = torch.arange(len(items), device=self.device)
                loss = nn.functional.cross_entropy(logits, target, reduction="none")
            else:
                negs = negatives.draw()
                v_pos = net.items(items)
                v_neg = net.items(negs)
                pos = _similarity(u, v_pos, cfg.temperature, pairwise=True)[:, None]
                neg = _similarity(u, v_neg, cfg.temperature)
                if cfg.logq:
                    neg = neg - neg_log_q[negs][None, :]
                neg = neg.masked_fill(negs[None, :] == items[:, None], float("-inf"))
                loss = -torch.log_softmax(torch.cat([pos, neg], dim=1), dim=1)[:, 0]
            if ips is not None:
                loss = loss * ips[items]
            return loss.mean()

        train_loop(
            self,
            net,
            cfg,
            epoch_batches=batches,
            step_loss=step,
            train=train,
            valid=valid,
            progress=progress,
            before_eval=self._refresh_items,
            n_batches=-(-n // cfg.batch_size),
        )
        self._refresh_items()

    def after_update(self, train: Interactions) -> None:
        """After a warm-start update: every item with a positive in the whole of ``train`` is
        a trained item (the fine-tuning subset alone would mark old items cold)."""
        positives, _ = split_by_threshold(train, self.balance.positive_threshold)
        self.trained_items_ = torch.as_tensor(positives.item_popularity > 0, device=self.device)
        self._refresh_items()

    def _refresh_items(self) -> None:
        """Cache every item's vector (cold items from features alone) for scoring."""
        net = self.net_
        net.eval()
        with torch.no_grad():
            index = torch.arange(self.n_items_, device=self.device)
            self.item_vectors_ = net.items(index, self.trained_items_.float())

    # ----- scoring ---------------------------------------------------------------------------
    def _user_vectors(
        self,
        history: sp.csr_matrix,
        sequences: Sequences | None,
        user_features: np.ndarray | torch.Tensor | None,
    ) -> torch.Tensor:
        net = self.net_
        net.eval()
        with torch.no_grad():
            pooled = self._pooled(self._pool_weights(history, sequences), net.history_table())
            n_attr = net.user_features.shape[1]
            if user_features is None:
                attrs = torch.zeros((history.shape[0], n_attr), device=self.device)
            else:
                attrs = torch.as_tensor(user_features, dtype=torch.float32, device=self.device)
                if attrs.shape != (history.shape[0], n_attr):
                    raise DataError(
                        f"two-tower: user_features has shape {tuple(attrs.shape)}, expected "
                        f"({history.shape[0]}, {n_attr})",
                        where="TwoTower.score_history",
                        fix="pass one row of user_feature_matrix(train) per history row",
                    )
            return net.users(pooled, attrs)

    def score_history(
        self,
        history: sp.csr_matrix,
        sequences: Sequences | None = None,
        *,
        user_features: np.ndarray | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Cosine scores [batch, n_items]; user attributes are zeros unless given [batch, A]."""
        self._check_fitted()
        u = self._user_vectors(history, sequences, user_features)
        return (u @ self.item_vectors_.T).float()

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Scores [len(users), n_items] of training users, with their attributes."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        seqs = self.sequences_.rows(users) if self.sequences_ is not None else None
        attrs = self.net_.user_features[torch.as_tensor(users, device=self.device)]
        return self.score_history(self.history_[users], seqs, user_features=attrs)

    # ----- explanation hooks (see recsys_core.explain and the module docstring) ---------------
    def explain_side_features(self, user: int, item: int) -> list[tuple[str, str]]:
        """``(name, kind)`` per user attribute of ``user``, then per side feature of ``item``."""
        users, items = self._side_players(user, item)
        return [(p.name, p.kind) for p in users + items]

    def score_history_masked(
        self,
        history: sp.csr_matrix,
        sequences: Sequences | None = None,
        *,
        user: int,
        item: int,
        side_mask: np.ndarray,
    ) -> torch.Tensor:
        """:meth:`score_history` for histories of ``user`` with the side features ``side_mask``
        keeps: bool [batch, n_side] over :meth:`explain_side_features`' list.

        The user's attributes enter the user tower; the item's features change column ``item``
        only (every other item keeps its cached vector). All present gives the real scores of
        ``user`` (those of :meth:`score_users` for a training user's own history).
        """
        self._check_fitted()
        users, items = self._side_players(user, item)
        b, n_u = history.shape[0], len(users)
        mask = side_mask_tensor(side_mask, b, n_u + len(items), self.device)
        net = self.net_
        attrs = None
        if users:
            attrs = mask_feature_rows(net.user_features[int(user)], (), users, mask[:, :n_u])
        u = self._user_vectors(history, sequences, attrs)
        scores = (u @ self.item_vectors_.T).float()
        if items:
            blocks = self.side_schema_["items"]["blocks"]
            row = net.item_features[int(item)]
            features = mask_feature_rows(row, blocks, items, mask[:, n_u:])
            index = torch.full((b,), int(item), dtype=torch.long, device=self.device)
            with torch.no_grad():
                v = net.items(index, self.trained_items_[index].float(), features)
            scores[:, item] = (u * v).sum(dim=1)
        return scores

    def _side_players(self, user: int, item: int) -> tuple[list[SidePlayer], list[SidePlayer]]:
        # runs saved before side features were explained carry no schema: history only
        schema = self.side_schema_
        if schema is None:
            return [], []
        users: list[SidePlayer] = []
        feats = self.net_.user_features
        if schema["user"] and 0 <= int(user) < feats.shape[0]:
            users = _user_side_players(schema["user"], feats[int(user)].cpu().numpy())
        items: list[SidePlayer] = []
        if schema["items"] is not None:
            row = self.net_.item_features[int(item)].cpu().numpy()
            items = item_side_players(schema["items"], row)
        return users, items

    def item_embeddings(self) -> np.ndarray | None:
        return self.item_vectors_.detach().float().cpu().numpy()

    def user_embeddings(self) -> np.ndarray | None:
        users = np.arange(self.n_users_)
        out = []
        for batch in np.array_split(users, max(1, -(-len(users) // 2048))):
            seqs = self.sequences_.rows(batch) if self.sequences_ is not None else None
            attrs = self.net_.user_features[torch.as_tensor(batch, device=self.device)]
            out.append(self._user_vectors(self.history_[batch], seqs, attrs).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    # ----- persistence -----------------------------------------------------------------------
    def _state(self) -> dict[str, torch.Tensor]:
        state = {f"net.{k}": v for k, v in self.net_.state_dict().items()}
        state["trained_items"] = self.trained_items_
        if self.side_schema_ is not None:
            state["side_schema"] = json_to_tensor(self.side_schema_)
        return state

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        net_state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        self.net_ = _TwoTowerNet(
            self.n_items_, net_state["item_features"], net_state["user_features"], self.config
        ).to(self.device)
        self.net_.load_state_dict(net_state)
        self.trained_items_ = state["trained_items"].to(self.device)
        schema = state.get("side_schema")
        self.side_schema_ = None if schema is None else json_from_tensor(schema)
        self._refresh_items()


def _user_side_schema(train: Interactions, names: list[str]) -> list[dict[str, Any]]:
    """Per user-table column, the attribute columns it became (``user_feature_table``'s order).

    A numeric column is one standardised column named after it (its mean and std are kept to
    name the raw value); a categorical one is one-hot columns named ``"col=level"``.
    """
    table = train.user_table
    groups: list[dict[str, Any]] = []
    for col in [] if table is None else table.columns:
        label = str(col)
        if label in names:
            values = pd.Series(table[col]).to_numpy(dtype=np.float64, na_value=np.nan)
            mean = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
            std = float(np.nanstd(values)) if np.isfinite(values).any() else 1.0
            std = std if np.isfinite(std) and std > 0 else 1.0  # as the standardisation does
            start = names.index(label)
            groups.append({"column": label, "start": start, "width": 1, "mean": mean, "std": std})
            continue
        cols = [j for j, n in enumerate(names) if n.startswith(label + "=")]
        if cols:
            width = len(cols)
            group_names = names[cols[0] : cols[0] + width]
            groups.append({"column": label, "start": cols[0], "width": width, "names": group_names})
    return groups


def _user_side_players(schema: list[dict[str, Any]], row: np.ndarray) -> list[SidePlayer]:
    """One player per attribute the user has; a zero attribute (missing, or at the mean) is
    already at the neutral value, so it is no player (its Shapley value would be 0)."""
    players = []
    for group in schema:
        cols = np.arange(group["start"], group["start"] + group["width"], dtype=np.int64)
        values = row[cols]
        if not np.any(values):
            continue
        if "names" in group:
            label = group["names"][int(np.argmax(values))]
        else:
            label = f"{group['column']}={values[0] * group['std'] + group['mean']:.6g}"
        players.append(SidePlayer(f"user: {label}", "user", cols))
    return players


def _bag_sum(weights: sp.csr_matrix, table: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``weights @ table`` [b, d] for a sparse [b, n_items] batch, as one weighted embedding bag.

    ``embedding_bag`` gathers and sums in one kernel and its backward is a dense scatter-add,
    far cheaper than autograd through a sparse matrix product.
    """
    weights = weights.tocsr()
    return nn.functional.embedding_bag(
        torch.as_tensor(weights.indices.astype(np.int64), device=device),
        table,
        torch.as_tensor(weights.indptr[:-1].astype(np.int64), device=device),
        mode="sum",
        per_sample_weights=torch.as_tensor(weights.data.astype(np.float32), device=device),
    )
