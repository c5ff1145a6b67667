"""Metric functions: hand-computed fixtures, an sklearn cross-check and a plain-Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import ndcg_score

from recsys_core import metrics as M


def _truth(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = np.repeat(np.arange(len(rows)), [len(x) for x in rows])
    c = np.concatenate([np.asarray(x, dtype=np.int64) for x in rows]) if r.size else []
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


# Fixture: 2 users, 10 items.
#   user 0: ranking [3, 1, 7, 0, 5], truth {1, 5, 9}  -> hits at ranks 2 and 5 (1-based)
#   user 1: ranking [2, 4, 6, 8, 0], truth {2}        -> hit at rank 1
TOPK = torch.tensor([[3, 1, 7, 0, 5], [2, 4, 6, 8, 0]])
TRUTH = _truth([[1, 5, 9], [2]], 10)
L2 = math.log2


def test_hit_matrix_marks_relevant_positions():
    hits = M.hit_matrix(TOPK, TRUTH)
    assert hits.tolist() == [[False, True, False, False, True], [True, False, False, False, False]]


def test_hit_matrix_ignores_empty_slots():
    # -1 marks an empty slot; user 1's key -1 must not match user 0's last truth item.
    topk = torch.tensor([[0, -1], [-1, -1]])
    truth = _truth([[9], [0]], 10)
    assert not M.hit_matrix(topk, truth).any()


def test_hand_computed_precision_recall_hit():
    m = M.ranking_metrics(TOPK, TRUTH, ks=(1, 5))
    # precision@5: user0 2/5, user1 1/5; precision@1: user0 0, user1 1
    assert m["precision@5"].tolist() == pytest.approx([0.4, 0.2])
    assert m["precision@1"].tolist() == pytest.approx([0.0, 1.0])
    # recall@5: user0 2/3 (RecBole's |truth| denominator), user1 1/1; recall@1: 0, 1
    assert m["recall@5"].tolist() == pytest.approx([2 / 3, 1.0])
    assert m["recall@1"].tolist() == pytest.approx([0.0, 1.0])
    assert m["hit@1"].tolist() == [0.0, 1.0]
    assert m["hit@5"].tolist() == [1.0, 1.0]


def test_hand_computed_ndcg():
    m = M.ranking_metrics(TOPK, TRUTH, ks=(1, 2, 5))
    # user0 @5: DCG = 1/log2(3) + 1/log2(6); IDCG (3 relevant, k=5) = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / L2(3) + 1 / L2(6)
    idcg = 1 + 1 / L2(3) + 1 / L2(4)
    assert m["ndcg@5"][0].item() == pytest.approx(dcg / idcg, rel=1e-6)
    # user0 @2: DCG = 1/log2(3); IDCG over min(3, 2) = 2 hits = 1 + 1/log2(3)
    assert m["ndcg@2"][0].item() == pytest.approx((1 / L2(3)) / (1 + 1 / L2(3)), rel=1e-6)
    # user1: hit at rank 1, one relevant item -> 1 at every k
    assert m["ndcg@1"][1].item() == pytest.approx(1.0)
    assert m["ndcg@5"][1].item() == pytest.approx(1.0)


def test_hand_computed_map_and_mrr():
    m = M.ranking_metrics(TOPK, TRUTH, ks=(5, 1))
    # user0 AP@5 = (P@2 * 1 + P@5 * 1) / min(3, 5) = (1/2 + 2/5) / 3 = 0.3
    assert m["map@5"][0].item() == pytest.approx(0.3)
    assert m["map@5"][1].item() == pytest.approx(1.0)
    # user0 AP@1: no hit at rank 1 -> 0; user1 AP@1 = 1 / min(1, 1) = 1
    assert m["map@1"].tolist() == pytest.approx([0.0, 1.0])
    # MRR@5: first hit at rank 2 -> 1/2; user1 -> 1
    assert m["mrr@5"].tolist() == pytest.approx([0.5, 1.0])
    assert m["mrr@1"].tolist() == pytest.approx([0.0, 1.0])


def test_no_truth_gives_zero_not_nan():
    m = M.ranking_metrics(torch.tensor([[0, 1]]), _truth([[]], 4), ks=(2,))
    for key, value in m.items():
        assert value.item() == 0.0, key


def _reference(ranking: list[int], truth: set[int], k: int) -> dict[str, float]:
    """Plain-Python loop implementation of every metric (the independent reference)."""
    top = ranking[:k]
    hits = [1 if item in truth else 0 for item in top]
    n_hit = sum(hits)
    dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
    idcg = sum(1 / math.log2(r + 2) for r in range(min(len(truth), k)))
    ap, found = 0.0, 0
    for r, h in enumerate(hits):
        if h:
            found += 1
            ap += found / (r + 1)
    first = next((r for r, h in enumerate(hits) if h), None)
    return {
        "precision": n_hit / k,
        "recall": n_hit / len(truth),
        "ndcg": dcg / idcg,
        "map": ap / min(len(truth), k),
        "mrr": 0.0 if first is None else 1 / (first + 1),
        "hit": float(n_hit > 0),
    }


def test_against_plain_python_reference_on_random_data():
    rng = np.random.default_rng(7)
    n_users, n_items, big_k = 40, 30, 12
    scores = rng.random((n_users, n_items))
    truth_rows = [
        list(rng.choice(n_items, size=rng.integers(1, 8), replace=False)) for _ in range(n_users)
    ]
    truth = _truth(truth_rows, n_items)
    ranking = np.argsort(-scores, axis=1)
    got = M.ranking_metrics(torch.as_tensor(ranking[:, :big_k]), truth, ks=(1, 5, 12))
    for k in (1, 5, 12):
        for u in range(n_users):
            ref = _reference(ranking[u].tolist(), set(truth_rows[u]), k)
            for name, value in ref.items():
                assert got[f"{name}@{k}"][u].item() == pytest.approx(value, abs=1e-6), (name, k, u)


def test_ndcg_matches_sklearn():
    rng = np.random.default_rng(3)
    n_users, n_items = 25, 40
    scores = rng.random((n_users, n_items))
    relevance = (rng.random((n_users, n_items)) < 0.15).astype(float)
    relevance[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # >= 1 relevant
    ranking = torch.as_tensor(np.argsort(-scores, axis=1)[:, :10])
    ours = M.ranking_metrics(ranking, sp.csr_matrix(relevance), ks=(10,), names=("ndcg",))
    for u in range(n_users):
        ref = ndcg_score(relevance[u : u + 1], scores[u : u + 1], k=10)
        assert ours["ndcg@10"][u].item() == pytest.approx(ref, abs=1e-6)


def test_registry_functions_are_in_unit_range():
    rng = np.random.default_rng(0)
    topk = torch.as_tensor(rng.permutation(50)[None, :20].repeat(5, 0))
    truth = sp.csr_matrix((rng.random((5, 50)) < 0.3).astype(float))
    for key, value in M.ranking_metrics(topk, truth, ks=(5, 20)).items():
        assert ((value >= 0) & (value <= 1)).all(), key


# ----- beyond accuracy -------------------------------------------------------------------------
def test_head_and_popularity_buckets():
    # popularity 50, 30, 10, 5, 5, 0 (total 100): 80% is reached by the first two items.
    pop = np.array([50, 30, 10, 5, 5, 0])
    assert M.head_items(pop, 0.8).tolist() == [True, True, False, False, False, False]
    # 50% is reached by item 0 alone -> head {0}, mid {1}, tail {2..5}
    assert M.popularity_buckets(pop).tolist() == [0, 1, 2, 2, 2, 2]


def test_coverage_tail_popularity_novelty_by_hand():
    pop = np.array([50, 30, 10, 5, 5, 0])
    recs = np.array([[0, 1], [0, 2]])
    tail = ~M.head_items(pop, 0.8)  # items 2..5
    assert M.catalogue_coverage(recs, 6) == pytest.approx(3 / 6)
    assert M.tail_coverage(recs, tail) == pytest.approx(1 / 4)  # item 2 of {2,3,4,5}
    assert M.tail_share(recs, tail) == pytest.approx(1 / 4)  # 1 of 4 slots
    assert M.average_popularity(recs, pop) == pytest.approx((50 + 30 + 50 + 10) / 4)
    # novelty with 100 users: mean of -log2(pop/100)
    expected = np.mean([-L2(0.5), -L2(0.3), -L2(0.5), -L2(0.1)])
    assert M.novelty(recs, pop, 100) == pytest.approx(expected)


def test_gini_extremes_and_hand_value():
    # All exposure on one of 4 items: Gini = (n - 1) / n = 0.75.
    assert M.gini_exposure(np.array([[0], [0], [0]]), 4) == pytest.approx(0.75)
    # Equal exposure: 0.
    assert M.gini_exposure(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)
    # Counts sorted (0, 0, 1, 3): sum (2i - n - 1) c_i = (1)(1) + (3)(3) = 10; / (4 * 4) = 0.625
    assert M.gini_exposure(np.array([[0, 1], [0, 0]]), 4) == pytest.approx(0.625)


def test_intra_list_diversity_by_categories_and_embeddings():
    cats = M.category_matrix([["A"], ["A", "B"], ["C"]], 3)
    # list (0, 1): Jaccard {A} vs {A, B} = 1/2 -> distance 1/2; list (0, 2): distance 1
    recs = np.array([[0, 1], [0, 2]])
    assert M.intra_list_diversity(recs, categories=cats) == pytest.approx(0.75)
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # cosine distances: (0,1) -> 0, (0,2) -> 1
    assert M.intra_list_diversity(recs, embeddings=emb) == pytest.approx(0.5)


def test_personalisation_by_hand():
    # Two users, identical lists -> 0; disjoint -> 1; half overlap -> 0.5.
    assert M.personalisation(np.array([[0, 1], [0, 1]]), 4) == pytest.approx(0.0)
    assert M.personalisation(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(1.0)
    assert M.personalisation(np.array([[0, 1], [0, 3]]), 4) == pytest.approx(0.5)


def test_beyond_accuracy_keys():
    pop = np.array([5, 4, 3, 2, 1, 0])
    recs = np.array([[0, 1, 2], [3, 4, 5]])
    out = M.beyond_accuracy(recs, k=2, popularity=pop, n_users=10)
    assert set(out) == {
        "coverage@2",
        "tail_coverage@2",
        "tail_share@2",
        "avg_popularity@2",
        "gini@2",
        "novelty@2",
        "personalisation@2",
    }
    assert out["coverage@2"] == pytest.approx(4 / 6)


def test_diversity_at_several_k_matches_one_k_at_a_time():
    rng = np.random.default_rng(5)
    cats = M.category_matrix([[f"c{j % 3}", f"d{j % 4}"] for j in range(30)], 30)
    recs = np.stack([rng.permutation(30)[:8] for _ in range(20)])
    both = M.intra_list_diversity_at(recs, (3, 8), categories=cats)
    assert both[3] == pytest.approx(M.intra_list_diversity(recs[:, :3], categories=cats))
    assert both[8] == pytest.approx(M.intra_list_diversity(recs, categories=cats))


def test_diversity_ignores_empty_slots():
    cats = M.category_matrix([["A"], ["B"], ["A"]], 3)
    # list (1, -1): the empty slot adds no pair distance; (0, 1) has distance 1.
    recs = np.array([[0, 1], [1, -1]])
    assert M.intra_list_diversity(recs, categories=cats) == pytest.approx(0.5)
