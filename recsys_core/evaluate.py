"""Model x split -> EvalReport: full-ranking evaluation, batched over users on the model's device.

For every test user the model scores every item; the user's excluded items (train, plus valid
when the split has a validation part, plus fold-in for held-out users) are set to -inf; one
top-K ranking (K = max(max(ks), keep)) then gives every accuracy metric at every k, the kept
recommendation lists and the beyond-accuracy metrics. Batches are sized from the number of
items so memory stays bounded whatever the number of users.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import ConfigError, DataError
from recsys_core.memory import memory_guard
from recsys_core.metrics import (
    METRICS,
    beyond_accuracy,
    category_matrix,
    hit_matrix,
    intra_list_diversity_at,
    metrics_from_hits,
    popularity_buckets,
    ranking_metrics,
    truth_counts,
)
from recsys_core.models.base import Recommender, mask_items
from recsys_core.split import Split
from recsys_core.stats import activity_segments, bootstrap_ci, segment_table

#: Upper bound on the elements of one dense score block (float32: 128 MB); the user batch is
#: shrunk to fit, so 100k users x 50k items is scored in bounded memory.
SCORE_BLOCK_ELEMENTS = 1 << 25
SAMPLERS = ("uniform", "popularity")
POPULARITY_BUCKETS = ("head", "mid", "tail")
SEGMENT_METRICS = ("ndcg", "recall", "hit")


@dataclass(eq=False)
class EvalReport:
    """The result of :func:`evaluate`.

    Attributes
    ----------
    aggregate : metric key (``"ndcg@10"``, ``"coverage@10"``, ...) -> value (mean over users for
        accuracy metrics).
    ci : accuracy metric key -> 95% percentile-bootstrap interval of the mean.
    per_user : DataFrame [n_test_users, n_accuracy_metrics], index = dense user index.
    recs_items : int64 [n_test_users, keep] recommended items best first (-1 = empty slot).
    recs_scores : float32 [n_test_users, keep] their scores.
    test_users : int64 [n_test_users] dense user indices (row order of the arrays above).
    notes : what the evaluation did that a reader must know (exclusions, fold-in, sampling).
    segments : long DataFrame (kind, segment, metric, n_users, mean, ci_low, ci_high) by user
        activity quartile and by item popularity bucket (head/mid/tail truth items only).
    ks : the cut-offs.
    seconds : wall time of the evaluation.
    """

    aggregate: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_user: pd.DataFrame
    recs_items: np.ndarray
    recs_scores: np.ndarray
    test_users: np.ndarray
    notes: list[str] = field(default_factory=list)
    segments: pd.DataFrame | None = None
    ks: tuple[int, ...] = (5, 10, 20)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-user arrays and lists are stored separately as Parquet)."""
        seg = (
            self.segments.replace({np.nan: None}).to_dict(orient="records")
            if self.segments is not None
            else []
        )
        return {
            "aggregate": {k: _finite(v) for k, v in self.aggregate.items()},
            "ci": {k: [_finite(lo), _finite(hi)] for k, (lo, hi) in self.ci.items()},
            "notes": list(self.notes),
            "ks": [int(k) for k in self.ks],
            "n_test_users": int(len(self.test_users)),
            "segments": seg,
            "seconds": float(self.seconds),
        }

    def table(self, k: int | None = None) -> pd.DataFrame:
        """One row per metric: value and CI (accuracy metrics at ``k``, or all when None)."""
        rows = []
        for key, value in self.aggregate.items():
            if k is not None and not key.endswith(f"@{k}"):
                continue
            lo, hi = self.ci.get(key, (np.nan, np.nan))
            rows.append({"metric": key, "value": value, "ci_low": lo, "ci_high": hi})
        return pd.DataFrame(rows).set_index("metric")


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _batch_rows(batch_size: int, n_items: int) -> int:
    return max(1, min(int(batch_size), SCORE_BLOCK_ELEMENTS // max(n_items, 1)))


def _parse_sampled(sampled: Any) -> tuple[int, str] | None:
    if sampled is None or sampled is False:
        return None
    if isinstance(sampled, int) and not isinstance(sampled, bool):
        n, strategy = sampled, "uniform"
    elif isinstance(sampled, dict):
        n, strategy = int(sampled.get("n", 100)), str(sampled.get("strategy", "uniform"))
    elif isinstance(sampled, (tuple, list)) and len(sampled) == 2:
        n, strategy = int(sampled[0]), str(sampled[1])
    else:
        raise ConfigError(
            f"sampled: expected N, (N, strategy) or {{'n': N, 'strategy': ...}}, got {sampled!r}"
        )
    if n < 1 or strategy not in SAMPLERS:
        raise ConfigError(
            f"sampled: need N >= 1 and a strategy in {SAMPLERS}, got N={n}, strategy={strategy!r}"
        )
    return n, strategy


class _Scorer:
    """Scores batches of test users the way the split demands."""

    def __init__(self, model: Recommender, split: Split, notes: list[str]):
        self.model = model
        self.history: Interactions | None = None
        if split.fold_in is not None:
            self.history = split.fold_in
            notes.append(
                "held-out users are scored from their fold-in history (score_history); "
                "fold-in items are excluded from their ranking"
            )
        elif split.valid is not None and model.uses_sequences:
            self.history = split.history
            notes.append(
                "sequence model: test users are scored from train + valid history, so the "
                "latest items are visible (RecBole's sequential protocol)"
            )
        self.binary = self.history.binary if self.history is not None else None
        self.sequences: Sequences | None = (
            self.history.sequences if self.history is not None and model.uses_sequences else None
        )

    def __call__(self, users: np.ndarray) -> torch.Tensor:
        if self.binary is None:
            return self.model.score_users(users)
        seqs = self.sequences.rows(users) if self.sequences is not None else None
        return self.model.score_history(self.binary[users], seqs)


def evaluate(
    model: Recommender,
    split: Split,
    *,
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 1024,
    keep: int = 100,
    sampled: int | tuple[int, str] | dict | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> EvalReport:
    """Evaluate a fitted model on a split with full ranking over all items.

    Parameters
    ----------
    model : a fitted Recommender (its ``device`` is where scoring and top-k run).
    split : from :func:`recsys_core.split.make_split`.
    ks : cut-offs for every metric.
    batch_size : most users scored at once (shrunk so a block holds <= 2^25 scores).
    keep : length of the recommendation lists kept in the report.
    sampled : also compute sampled-candidate metrics (keys ``"sampled_ndcg@10"``, ...): each
        test user's truth items ranked against ``N`` negatives drawn uniformly or by
        popularity from the items not excluded for that user. ``None`` (default) = off.
    n_resamples, seed : bootstrap resamples and seed for CIs, negatives and personalisation.
    progress : optional ``progress(users_done, {"eval_fraction": f})``.

    Returns
    -------
    EvalReport

    Raises
    ------
    DataError
        When the model's item count differs from the split's or there are no test users.
    OutOfMemory
        When an allocation fails (one line: what, about how much, what is free, what to try).
    """
    what = f"evaluating {model.name} on {split.test.n_users:,} users x {split.test.n_items:,} items"
    fix = "a smaller batch_size, or fewer items (minimum interactions per item)"
    with memory_guard(what, model.device, fix=fix):
        return _evaluate(
            model,
            split,
            ks=ks,
            batch_size=batch_size,
            keep=keep,
            sampled=sampled,
            n_resamples=n_resamples,
            seed=seed,
            progress=progress,
        )


@torch.no_grad()
def _evaluate(
    model: Recommender,
    split: Split,
    *,
    ks: Sequence[int],
    batch_size: int,
    keep: int,
    sampled: int | tuple[int, str] | dict | None,
    n_resamples: int,
    seed: int,
    progress: Callable[[int, dict[str, float]], None] | None,
) -> EvalReport:
    """:func:`evaluate` without the out-of-memory guard."""
    start_time = time.perf_counter()
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks: need positive cut-offs, got {ks}")
    n_items = split.test.n_items
    if getattr(model, "n_items_", n_items) != n_items:
        raise DataError(
            f"the model knows {model.n_items_} items but the split has {n_items}",
            where=f"model {model.name!r}",
            fix="fit the model on this split's training part",
        )
    sampling = _parse_sampled(sampled)
    notes: list[str] = []
    if split.fold_in is not None:
        pass  # held-out users have no train/valid rows; the scorer's note explains fold-in
    elif split.valid is not None:
        notes.append("test ranking excludes each user's training and validation items")
    else:
        notes.append("test ranking excludes each user's training items")
    scorer = _Scorer(model, split, notes)
    device = model.device
    users = np.asarray(split.test_users, dtype=np.int64)
    truth_all = split.test.binary[users]
    exclusion = split.exclusion
    k_top = min(max(ks[-1], int(keep)), n_items)
    keep = min(int(keep), n_items)
    popularity = split.train.item_popularity
    buckets = popularity_buckets(popularity)
    bucket_t = torch.as_tensor(buckets, dtype=torch.int64, device=device)
    bucket_onehot = sp.csr_matrix(
        (np.ones(n_items, dtype=np.float32), (np.arange(n_items), buckets)),
        shape=(n_items, len(POPULARITY_BUCKETS)),
    )
    main_k = 10 if 10 in ks else ks[-1]
    if sampling is not None:
        n_neg, strategy = sampling
        notes.append(
            f"sampled_* metrics rank the truth items against {n_neg} {strategy} negatives per "
            "user; they are optimistic compared with full ranking"
        )
        weights = np.ones(n_items) if strategy == "uniform" else popularity.astype(np.float64)
        log_w = torch.as_tensor(np.log(np.maximum(weights, 1e-300)), device=device).float()
        log_w[torch.as_tensor(weights <= 0, device=device)] = float("-inf")
        gen = torch.Generator().manual_seed(seed)

    rows = _batch_rows(batch_size, n_items)
    per_user_parts: dict[str, list[np.ndarray]] = {}
    bucket_parts: dict[str, dict[str, list[np.ndarray]]] = {b: {} for b in POPULARITY_BUCKETS}
    all_top = np.empty((len(users), k_top), dtype=np.int64)
    recs_scores = np.empty((len(users), keep), dtype=np.float32)
    n_nan = 0
    for start in range(0, len(users), rows):
        batch = users[start : start + rows]
        scores = scorer(batch).to(device=device, dtype=torch.float32)
        if scores.shape != (len(batch), n_items):
            raise DataError(
                f"model returned scores of shape {tuple(scores.shape)}, expected "
                f"({len(batch)}, {n_items})",
                where=f"model {model.name!r}",
                fix="score_users/score_history must return [batch, n_items]",
            )
        nan = torch.isnan(scores)
        if bool(nan.any()):
            n_nan += int(nan.sum())
            scores = scores.masked_fill(nan, float("-inf"))
        scores = mask_items(scores, exclusion[batch])
        top = torch.topk(scores, k_top, dim=1)
        top_items = torch.where(torch.isinf(top.values) & (top.values < 0), -1, top.indices)
        truth = truth_all[start : start + len(batch)]
        hits = hit_matrix(top_items, truth)
        n_truth = truth_counts(truth, device)
        for key, values in metrics_from_hits(hits, n_truth, ks).items():
            per_user_parts.setdefault(key, []).append(values.cpu().numpy())
        # Item-popularity segments: the same ranking judged only on truth items of one bucket
        # (hits masked by the bucket of the recommended item, |truth| counted per bucket).
        top_bucket = bucket_t[top_items.clamp(min=0)]
        per_bucket = torch.as_tensor(
            (truth @ bucket_onehot).toarray(), dtype=torch.float32, device=device
        )
        for code, name in enumerate(POPULARITY_BUCKETS):
            sub_n = per_bucket[:, code]
            sub = metrics_from_hits(hits & (top_bucket == code), sub_n, (main_k,), SEGMENT_METRICS)
            for key, values in sub.items():
                arr = values.cpu().numpy().astype(np.float64)
                arr[(sub_n == 0).cpu().numpy()] = np.nan
                bucket_parts[name].setdefault(key, []).append(arr)
        if sampling is not None:
            sampled_top = _sampled_ranking(scores, truth, n_neg, log_w, gen, ks[-1])
            for key, values in ranking_metrics(sampled_top, truth, ks, prefix="sampled_").items():
                per_user_parts.setdefault(key, []).append(values.cpu().numpy())
        all_top[start : start + len(batch)] = top_items.cpu().numpy()
        recs_scores[start : start + len(batch)] = top.values[:, :keep].cpu().numpy()
        if progress is not None:
            done = start + len(batch)
            progress(done, {"eval_fraction": done / max(len(users), 1)})
    if n_nan:
        notes.append(f"the model produced {n_nan} NaN scores; they were ranked last")

    recs_items = all_top[:, :keep]
    order = [f"{m}@{k}" for m in METRICS for k in ks]
    if sampling is not None:
        order += [f"sampled_{m}@{k}" for m in METRICS for k in ks]
    per_user = pd.DataFrame(
        {key: np.concatenate(per_user_parts[key]).astype(np.float64) for key in order},
        index=pd.Index(users, name="user"),
    )
    means = per_user.mean(axis=0)
    aggregate = {key: float(means[key]) for key in order}
    cis = bootstrap_ci(per_user.to_numpy(), n_resamples=n_resamples, seed=seed)
    ci = {key: cis[j] for j, key in enumerate(order)}

    categories = split.train.item_categories()
    cat_matrix = category_matrix(categories, n_items) if categories is not None else None
    embeddings = model.item_embeddings() if cat_matrix is None else None
    if cat_matrix is not None:
        notes.append("diversity@k: mean Jaccard distance of item categories within each list")
    elif embeddings is not None:
        notes.append("diversity@k: mean cosine distance of the model's item embeddings")
    for k in ks:
        aggregate.update(
            beyond_accuracy(
                all_top[:, :k],
                k=k,
                popularity=popularity,
                n_users=split.train.n_users,
                seed=seed,
                device=device,
            )
        )
    if cat_matrix is not None or embeddings is not None:
        diversity = intra_list_diversity_at(
            all_top, ks, categories=cat_matrix, embeddings=embeddings, device=device
        )
        aggregate.update({f"diversity@{k}": v for k, v in diversity.items()})
    notes.append(
        "tail = items outside the most popular ones that hold 80% of training interactions; "
        "head/mid/tail segments cut at 50% and 80%"
    )

    history = split.fold_in if split.fold_in is not None else split.train
    activity = history.user_activity[users]
    main_cols = [f"{m}@{main_k}" for m in METRICS]
    segs = [
        segment_table(
            per_user[main_cols],
            activity_segments(activity),
            n_resamples=min(n_resamples, 200),
            seed=seed,
            kind="user activity",
        )
    ]
    for name in POPULARITY_BUCKETS:
        frame = pd.DataFrame({k: np.concatenate(v) for k, v in bucket_parts[name].items()})
        segs.append(
            segment_table(
                frame,
                np.full(len(frame), name, dtype=object),
                n_resamples=min(n_resamples, 200),
                seed=seed,
                kind="item popularity",
            )
        )
    segments = pd.concat(segs, ignore_index=True)
    return EvalReport(
        aggregate=aggregate,
        ci=ci,
        per_user=per_user,
        recs_items=recs_items,
        recs_scores=recs_scores,
        test_users=users,
        notes=notes,
        segments=segments,
        ks=ks,
        seconds=time.perf_counter() - start_time,
    )


def _sampled_ranking(
    scores: torch.Tensor,
    truth: sp.csr_matrix,
    n_neg: int,
    log_w: torch.Tensor,
    gen: torch.Generator,
    k: int,
) -> torch.Tensor:
    """Top-k over each user's truth items plus ``n_neg`` sampled negatives (-1 = empty slot).

    Negatives are drawn without replacement with the Gumbel-top-k trick (keys = log w + Gumbel
    noise), restricted to items that are neither excluded (score -inf) nor relevant.
    """
    device = scores.device
    b, n_items = scores.shape
    coo = truth.tocoo()
    rows = torch.as_tensor(coo.row, dtype=torch.long, device=device)
    cols = torch.as_tensor(coo.col, dtype=torch.long, device=device)
    u = torch.rand((b, n_items), generator=gen).to(device).clamp_(1e-12, 1 - 1e-7)
    keys = log_w[None, :] - torch.log(-torch.log(u))
    keys = keys.masked_fill(torch.isinf(scores) & (scores < 0), float("-inf"))
    keys[rows, cols] = float("-inf")
    n_take = min(n_neg, n_items)
    neg = torch.topk(keys, n_take, dim=1)
    drawn = torch.zeros_like(scores, dtype=torch.bool)
    drawn.scatter_(1, neg.indices, ~torch.isinf(neg.values))
    cand = torch.where(drawn, scores, torch.full_like(scores, float("-inf")))
    cand[rows, cols] = scores[rows, cols]
    top = torch.topk(cand, min(k, n_items), dim=1)
    return torch.where(torch.isinf(top.values) & (top.values < 0), -1, top.indices)


@torch.no_grad()
def validation_ndcg(
    model: Recommender,
    train: Interactions,
    valid: Interactions,
    k: int = 10,
    *,
    batch_size: int = 1024,
    max_users: int | None = None,
    seed: int = 0,
) -> float:
    """Mean NDCG@k of ``model`` on the validation part, training items excluded (for early
    stopping; fast: only the hit matrix and NDCG, no CIs or lists).

    Parameters
    ----------
    model : a model being trained; it must be able to ``score_users`` at this point.
    train, valid : the split's parts (same vocabularies).
    k : cut-off.
    max_users : evaluate a seeded sample of at most this many validation users (None = all).

    Returns
    -------
    float in [0, 1]; 0.0 when ``valid`` has no interactions.
    """
    users = np.unique(valid.users).astype(np.int64)
    if len(users) == 0:
        return 0.0
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    n_items = valid.n_items
    truth_all = valid.binary[users]
    seen = train.binary
    rows = _batch_rows(batch_size, n_items)
    total = 0.0
    k = min(int(k), n_items)
    for start in range(0, len(users), rows):
        batch = users[start : start + rows]
        scores = model.score_users(batch).float()
        scores = torch.nan_to_num(scores, nan=float("-inf"))
        scores = mask_items(scores, seen[batch])
        top = torch.topk(scores, k, dim=1)
        top_items = torch.where(torch.isinf(top.values) & (top.values < 0), -1, top.indices)
        truth = truth_all[start : start + len(batch)]
        values = ranking_metrics(top_items, truth, (k,), ("ndcg",))[f"ndcg@{k}"]
        total += float(values.sum())
    return total / len(users)


__all__ = ["EvalReport", "evaluate", "validation_ndcg"]
