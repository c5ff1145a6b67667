"""Vectorised ranking and beyond-accuracy metrics (pure torch functions, any device).

Accuracy metrics read a top-K index matrix ``topk`` [n_users, K] (best first, with the user's
excluded items already removed before the top-k was taken) and a binary truth CSR
[n_users, n_items]. The hit matrix is computed once (a ``searchsorted`` of the flat
``user * n_items + item`` keys into the truth's sorted keys, so no dense truth matrix is ever
built) and every metric at every cut-off k <= K is read off that one ranking.

Definitions follow RecBole (Zhao et al. 2021) so figures compare with it:

* ``precision@k`` = hits in top-k / k
* ``recall@k`` = hits in top-k / |truth| (RecBole's denominator; not min(|truth|, k), so a user
  with more than k relevant items cannot reach 1)
* ``ndcg@k`` = DCG / IDCG with binary gain, DCG = sum_r hit_r / log2(r + 2) for 0-based rank r,
  IDCG over min(|truth|, k) hits at the top
* ``map@k`` = sum_r hit_r * precision@(r + 1) / min(|truth|, k) (RecBole's MAP)
* ``mrr@k`` = 1 / (rank of the first hit, 1-based), 0 when no hit in the top-k
* ``hit@k`` = 1 if any hit in the top-k else 0

All lie in [0, 1]. A user with an empty truth row scores 0 on every accuracy metric (evaluation
only passes users who have test items).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

MetricFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


# ----- hits ------------------------------------------------------------------------------------
def hit_matrix(topk: torch.Tensor, truth: sp.csr_matrix) -> torch.Tensor:
    """Boolean [n_users, K]: whether ``topk[u, r]`` is in user u's truth row.

    Parameters
    ----------
    topk : int64 [n_users, K] item indices (any device).
    truth : binary CSR [n_users, n_items].
    """
    device = topk.device
    truth = truth.tocsr()
    truth.sort_indices()
    n_items = truth.shape[1]
    rows = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr))
    keys = torch.as_tensor(rows * n_items + truth.indices.astype(np.int64), device=device)
    if keys.numel() == 0:
        return torch.zeros(topk.shape, dtype=torch.bool, device=device)
    user = torch.arange(topk.shape[0], device=device, dtype=torch.int64)[:, None]
    query = user * n_items + topk.long()
    pos = torch.searchsorted(keys, query.reshape(-1)).clamp_(max=keys.numel() - 1)
    # Negative entries mark empty slots (fewer eligible items than K): never a hit.
    return (keys[pos] == query.reshape(-1)).reshape(topk.shape) & (topk >= 0)


def truth_counts(truth: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 [n_users] |truth| per row."""
    return torch.as_tensor(np.diff(truth.tocsr().indptr), dtype=torch.float32, device=device)


def _discounts(k: int, device: torch.device) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(k, device=device, dtype=torch.float32) + 2.0)


# ----- accuracy metrics: fn(hits [n, K] bool, n_truth [n] float, k) -> [n] float -----------------
def precision(hits: torch.Tensor, n_truth: torch.Tensor, k: int) -> torch.Tensor:
    """Share of the top-k that is relevant: hits@k / k. Range [0, 1]."""
    return hits[:, :k].float().sum(1) / k


def recall(hits: torch.Tensor, n_truth: torch.Tensor, k: int) -> torch.Tensor:
    """Share of the relevant items found in the top-k: hits@k / |truth| (RecBole). [0, 1]."""
    return hits[:, :k].float().sum(1) / n_truth.clamp(min=1)


def ndcg(hits: torch.Tensor, n_truth: torch.Tensor, k: int) -> torch.Tensor:
    """Binary-gain NDCG@k; IDCG places min(|truth|, k) hits at the top. Range [0, 1]."""
    disc = _discounts(k, hits.device)
    dcg = (hits[:, :k].float() * disc[: hits[:, :k].shape[1]]).sum(1)
    ideal_cum = torch.cumsum(disc, 0)
    n_ideal = n_truth.clamp(max=k).long()
    idcg = torch.where(n_ideal > 0, ideal_cum[(n_ideal - 1).clamp(min=0)], torch.ones_like(dcg))
    return torch.where(n_ideal > 0, dcg / idcg, torch.zeros_like(dcg))


def average_precision(hits: torch.Tensor, n_truth: torch.Tensor, k: int) -> torch.Tensor:
    """RecBole's AP@k: sum over ranks r of hit_r * precision@(r+1), / min(|truth|, k). [0, 1]."""
    h = hits[:, :k].float()
    ranks = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=torch.float32)
    prec_at = torch.cumsum(h, 1) / ranks
    return (prec_at * h).sum(1) / n_truth.clamp(max=k).clamp(min=1)


def reciprocal_rank(hits: torch.Tensor, n_truth: torch.Tensor, k: int) -> torch.Tensor:
    """1 / (1-based rank of the first hit in the top-k), 0 when there is none. [0, 1]."""
    h = hits[:, :k]
    any_hit = h.any(1)
    first = torch.argmax(h.to(torch.int8), dim=1).float() + 1.0
    return torch.where(any_hit, 1.0 / first, torch.zeros_like(first))


def hit_rate(hits: torch.Tensor, n_truth: torch.Tensor, k: int) -> torch.Tensor:
    """1 when at least one relevant item is in the top-k, else 0."""
    return hits[:, :k].any(1).float()


#: Accuracy metric registry: key (as in report keys ``"<key>@<k>"``) -> function.
METRICS: dict[str, MetricFn] = {
    "ndcg": ndcg,
    "recall": recall,
    "precision": precision,
    "map": average_precision,
    "mrr": reciprocal_rank,
    "hit": hit_rate,
}


def ranking_metrics(
    topk: torch.Tensor,
    truth: sp.csr_matrix,
    ks: Sequence[int] = (5, 10, 20),
    names: Sequence[str] | None = None,
    *,
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    """Per-user accuracy metrics at every k from one top-max(ks) ranking.

    Parameters
    ----------
    topk : int64 [n_users, K] item indices best first, K >= max(ks) (or n_items when smaller).
    truth : binary CSR [n_users, n_items] of relevant items.
    ks : cut-offs.
    names : metric keys from :data:`METRICS` (default: all).
    prefix : prepended to every key (``"sampled_"`` for sampled-candidate metrics).

    Returns
    -------
    ``{"ndcg@10": float32 tensor [n_users], ...}`` on ``topk.device``.
    """
    hits = hit_matrix(topk, truth)
    return metrics_from_hits(hits, truth_counts(truth, topk.device), ks, names, prefix=prefix)


def metrics_from_hits(
    hits: torch.Tensor,
    n_truth: torch.Tensor,
    ks: Sequence[int],
    names: Sequence[str] | None = None,
    *,
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    """Like :func:`ranking_metrics` from a precomputed hit matrix [n, K] and |truth| [n]
    (lets a caller judge one ranking against several truth subsets without re-ranking)."""
    out: dict[str, torch.Tensor] = {}
    for name in names or METRICS:
        fn = METRICS[name]
        for k in ks:
            out[f"{prefix}{name}@{k}"] = fn(hits, n_truth, int(k))
    return out


# ----- beyond accuracy ---------------------------------------------------------------------------
def head_items(popularity: np.ndarray, share: float = 0.8) -> np.ndarray:
    """Boolean [n_items]: the most popular items that together hold ``share`` of interactions.

    The head is the smallest prefix of items sorted by popularity (descending) whose cumulative
    interactions reach ``share`` of the total; every other item is the long tail.
    """
    pop = np.asarray(popularity, dtype=np.float64)
    order = np.argsort(-pop, kind="stable")
    total = pop.sum()
    head = np.zeros(len(pop), dtype=bool)
    if total <= 0:
        return head
    cum = np.cumsum(pop[order]) / total
    n_head = int(np.searchsorted(cum, share - 1e-12) + 1)
    head[order[:n_head]] = True
    return head


def popularity_buckets(
    popularity: np.ndarray, cuts: tuple[float, float] = (0.5, 0.8)
) -> np.ndarray:
    """int8 [n_items] 0 = head, 1 = mid, 2 = tail, by cumulative share of interactions.

    Head: the top items holding the first ``cuts[0]`` of interactions; mid: up to ``cuts[1]``;
    tail: the rest (the same tail as :func:`head_items` with ``share = cuts[1]``).
    """
    inner = head_items(popularity, cuts[0])
    outer = head_items(popularity, cuts[1])
    return np.where(inner, 0, np.where(outer, 1, 2)).astype(np.int8)


def catalogue_coverage(recs: np.ndarray, n_items: int) -> float:
    """Share of the catalogue recommended to at least one user. Range [0, 1]."""
    return float(len(np.unique(recs[recs >= 0])) / max(n_items, 1))


def tail_coverage(recs: np.ndarray, tail: np.ndarray) -> float:
    """Share of the long-tail items (``tail`` bool [n_items]) recommended at least once."""
    if not tail.any():
        return 0.0
    shown = np.zeros(len(tail), dtype=bool)
    shown[recs[recs >= 0]] = True
    return float((shown & tail).sum() / tail.sum())


def tail_share(recs: np.ndarray, tail: np.ndarray) -> float:
    """Share of all recommendation slots filled by long-tail items. Range [0, 1]."""
    valid = recs[recs >= 0]
    return float(tail[valid].mean()) if len(valid) else 0.0


def average_popularity(recs: np.ndarray, popularity: np.ndarray) -> float:
    """Mean training popularity (number of users) of the recommended items."""
    valid = recs[recs >= 0]
    return float(popularity[valid].mean()) if len(valid) else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative ``counts`` [n] (0 = equal, -> 1 = concentrated): the one
    Gini of the package, for item popularity and for recommendation exposure alike.

    G = sum_i (2i - n - 1) x_(i) / (n sum x) with x sorted ascending and i = 1..n.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), float(x.sum())
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(np.sum((2 * ranks - n - 1) * x) / (n * total))


def gini_exposure(recs: np.ndarray, n_items: int) -> float:
    """Gini of how often each catalogue item is recommended (0 = equal exposure, -> 1 = all
    exposure on one item), over every item including never-recommended ones."""
    return gini(np.bincount(recs[recs >= 0].ravel(), minlength=n_items))


def novelty(recs: np.ndarray, popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(pop / n_users) of recommended items (Zhou et al. 2010).

    Items without any training interaction get pop = 1 (the most novel finite value).
    """
    valid = recs[recs >= 0]
    if not len(valid):
        return 0.0
    p = np.maximum(popularity[valid], 1) / max(n_users, 1)
    return float(-np.log2(p).mean())


def category_matrix(categories: list[list[str]], n_items: int) -> sp.csr_matrix:
    """Multi-hot CSR [n_items, n_categories] from per-item category lists."""
    vocab: dict[str, int] = {}
    lengths = np.fromiter((len(c) for c in categories), dtype=np.int64, count=len(categories))
    flat = [vocab.setdefault(c, len(vocab)) for cats in categories for c in cats]
    rows = np.repeat(np.arange(len(categories)), lengths)
    m = sp.csr_matrix(
        (np.ones(len(flat), dtype=np.float32), (rows, np.asarray(flat, dtype=np.int64))),
        shape=(n_items, max(len(vocab), 1)),
    )
    m.data[:] = 1.0
    return m


def intra_list_diversity(
    recs: np.ndarray,
    *,
    categories: sp.csr_matrix | None = None,
    embeddings: np.ndarray | None = None,
    batch_size: int = 4096,
    device: torch.device | str = "cpu",
) -> float:
    """Mean pairwise distance between the items of each list, averaged over users.

    Distance is 1 - cosine similarity of ``embeddings`` [n_items, d] when given, else the
    Jaccard distance of the items' category sets (``categories`` multi-hot [n_items, c]; two
    items without categories are at distance 0). Range [0, 1] for Jaccard, [0, 2] for cosine.
    Batched over users; cost O(n_users * k^2 * d).
    """
    k = recs.shape[1]
    return intra_list_diversity_at(
        recs,
        (k,),
        categories=categories,
        embeddings=embeddings,
        batch_size=batch_size,
        device=device,
    )[k]


def intra_list_diversity_at(
    recs: np.ndarray,
    ks: Sequence[int],
    *,
    categories: sp.csr_matrix | None = None,
    embeddings: np.ndarray | None = None,
    batch_size: int = 4096,
    device: torch.device | str = "cpu",
) -> dict[int, float]:
    """:func:`intra_list_diversity` of every prefix ``recs[:, :k]`` for k in ``ks``, from one
    [batch, K, K] distance tensor per batch (the k x k top-left block is the top-k list's)."""
    if embeddings is None and categories is None:
        raise ValueError("intra_list_diversity needs categories or embeddings")
    n = recs.shape[0]
    big_k = min(max(ks), recs.shape[1])
    if n == 0 or big_k < 2:
        return {int(k): 0.0 for k in ks}
    if embeddings is not None:
        feats = torch.as_tensor(np.asarray(embeddings, dtype=np.float32), device=device)
        feats = torch.nn.functional.normalize(feats, dim=1)
    else:
        feats = torch.as_tensor(categories.toarray(), dtype=torch.float32, device=device)
    totals = dict.fromkeys((int(k) for k in ks), 0.0)
    for start in range(0, n, batch_size):
        block = torch.as_tensor(recs[start : start + batch_size, :big_k], device=device)
        x = feats[block.clamp(min=0)]  # [b, K, d]; -1 (empty slot) gathers item 0, masked below
        inter = torch.bmm(x, x.transpose(1, 2))  # [b, K, K]
        if embeddings is not None:
            dist = 1.0 - inter
        else:
            size = x.sum(2)
            union = size[:, :, None] + size[:, None, :] - inter
            dist = torch.where(union > 0, 1.0 - inter / union.clamp(min=1e-9), 0.0)
        present = (block >= 0).float()
        dist = dist * present[:, :, None] * present[:, None, :]
        # Diagonal is 0 for Jaccard and cosine; prefix sums give every k at once.
        dist = dist - torch.diag_embed(torch.diagonal(dist, dim1=1, dim2=2))
        for k in totals:
            kk = min(k, big_k)
            if kk >= 2:
                totals[k] += float(dist[:, :kk, :kk].sum() / (kk * (kk - 1)))
    return {k: v / n for k, v in totals.items()}


def personalisation(recs: np.ndarray, n_items: int, *, sample: int = 1000, seed: int = 0) -> float:
    """1 - mean pairwise overlap |L_u ∩ L_v| / k between users' lists (Christakopoulou 2016).

    Computed on a seeded sample of at most ``sample`` users, so cost stays O(sample^2).
    0 = everyone gets the same list, 1 = no two lists share an item.
    """
    n, k = recs.shape
    if n < 2 or k == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    sub = recs[rows]
    m = len(rows)
    r = np.repeat(np.arange(m), k)
    valid = sub.ravel() >= 0
    mat = sp.csr_matrix(
        (np.ones(int(valid.sum()), dtype=np.float32), (r[valid], sub.ravel()[valid])),
        shape=(m, n_items),
    )
    overlap = (mat @ mat.T).toarray() / k
    mean_off = (overlap.sum() - np.trace(overlap)) / (m * (m - 1))
    return float(1.0 - mean_off)


def beyond_accuracy(
    recs: np.ndarray,
    *,
    k: int,
    popularity: np.ndarray,
    n_users: int,
    categories: sp.csr_matrix | None = None,
    embeddings: np.ndarray | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Every beyond-accuracy metric at cut-off ``k`` over the lists ``recs[:, :k]``.

    Parameters
    ----------
    recs : int64 [n_test_users, >= k] recommended items (best first; -1 = empty slot).
    popularity : int [n_items] training users per item (defines head/tail and novelty).
    n_users : number of users in the dataset (novelty's denominator).
    categories / embeddings : item features for intra-list diversity (embeddings preferred);
        ``diversity@k`` is left out when neither is given.

    Returns
    -------
    ``{"coverage@k", "tail_coverage@k", "tail_share@k", "avg_popularity@k", "gini@k",
    "novelty@k", "personalisation@k"[, "diversity@k"]}``.
    """
    lists = recs[:, :k]
    n_items = len(popularity)
    tail = ~head_items(popularity, 0.8)
    out = {
        f"coverage@{k}": catalogue_coverage(lists, n_items),
        f"tail_coverage@{k}": tail_coverage(lists, tail),
        f"tail_share@{k}": tail_share(lists, tail),
        f"avg_popularity@{k}": average_popularity(lists, popularity),
        f"gini@{k}": gini_exposure(lists, n_items),
        f"novelty@{k}": novelty(lists, popularity, n_users),
        f"personalisation@{k}": personalisation(lists, n_items, seed=seed),
    }
    if embeddings is not None or categories is not None:
        out[f"diversity@{k}"] = intra_list_diversity(
            lists, categories=categories, embeddings=embeddings, device=device
        )
    return out


__all__ = [
    "METRICS",
    "average_popularity",
    "average_precision",
    "beyond_accuracy",
    "catalogue_coverage",
    "category_matrix",
    "gini",
    "gini_exposure",
    "head_items",
    "hit_matrix",
    "metrics_from_hits",
    "hit_rate",
    "intra_list_diversity",
    "intra_list_diversity_at",
    "ndcg",
    "novelty",
    "personalisation",
    "popularity_buckets",
    "precision",
    "ranking_metrics",
    "recall",
    "reciprocal_rank",
    "tail_coverage",
    "tail_share",
]
