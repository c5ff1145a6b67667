"""Model-specific checks of ItemKNN, EASE, RP3beta, iALS and the content-based model.

Each closed form is compared with a plain float64 numpy reference on small data; the balance
analogues are checked to move recommendations towards the tail; iALS fold-in is exact.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_core.balance import BalanceConfig
from recsys_core.data.interactions import Interactions
from recsys_core.data.synthetic import SyntheticConfig, make_synthetic
from recsys_core.errors import Cancelled, ConfigError, DataError
from recsys_core.models.content import ContentBased, ContentConfig
from recsys_core.models.ease import EASE, EASEConfig, _direct_inverse, _woodbury_inverse
from recsys_core.models.ials import IALS, IALSConfig
from recsys_core.models.itemknn import ItemKNN, ItemKNNConfig, weight_matrix
from recsys_core.models.rp3beta import RP3beta, RP3betaConfig

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def skewed():
    """Strong popularity skew: the balance options have a head to push away from."""
    return make_synthetic(SyntheticConfig(n_users=200, n_items=120, zipf=1.6, mean_history=15))


def mean_rec_popularity(model, data: Interactions, k: int = 10) -> float:
    items, _ = model.recommend(np.arange(data.n_users), k=k)
    return float(data.item_popularity[items].mean())


# ----- EASE -------------------------------------------------------------------------------------
def _ease_reference(x: np.ndarray, lam: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def test_ease_matches_float64_reference(small_synthetic):
    model = EASE(EASEConfig(l2=20.0), device="cpu").fit(small_synthetic)
    ref = _ease_reference(small_synthetic.binary.toarray().astype(np.float64), 20.0)
    np.testing.assert_allclose(model.item_similarity(), ref, atol=2e-4)
    assert np.all(np.diag(model.item_similarity()) == 0)


def test_ease_woodbury_equals_direct():
    # fewer users than items: the user x user route must give the same P
    x = sp.random(30, 80, density=0.15, format="csr", random_state=1, dtype=np.float32)
    x.data[:] = 1.0
    wood = _woodbury_inverse(x, 10.0, CPU).numpy()
    direct = _direct_inverse(x, 10.0, CPU).numpy()
    np.testing.assert_allclose(wood, direct, atol=1e-5)
    ref = np.linalg.inv(x.toarray().T.astype(np.float64) @ x.toarray() + 10.0 * np.eye(80))
    np.testing.assert_allclose(wood, ref, atol=1e-5)


def test_ease_pop_norm_moves_to_tail(skewed):
    plain = EASE(EASEConfig(l2=50.0), device="cpu").fit(skewed)
    normed = EASE(EASEConfig(l2=50.0), device="cpu", balance=BalanceConfig(pop_norm=0.5))
    normed.fit(skewed)
    assert mean_rec_popularity(normed, skewed) < 0.9 * mean_rec_popularity(plain, skewed)


def test_ease_refuses_too_many_items(small_synthetic):
    with pytest.raises(DataError, match="max_items"):
        EASE(EASEConfig(max_items=10), device="cpu").fit(small_synthetic)


# ----- ItemKNN ----------------------------------------------------------------------------------
def test_itemknn_matches_shrunk_cosine(small_synthetic):
    n = small_synthetic.n_items
    model = ItemKNN(ItemKNNConfig(topk=n, shrink=5.0, weighting="none"), device="cpu")
    model.fit(small_synthetic)
    x = small_synthetic.binary.toarray().astype(np.float64)
    dot = x.T @ x
    norms = np.sqrt(np.diag(dot))
    ref = dot / (np.outer(norms, norms) + 5.0)
    np.fill_diagonal(ref, 0.0)
    np.testing.assert_allclose(model.item_similarity().toarray(), ref, atol=1e-5)
    hist = small_synthetic.binary[:5]
    np.testing.assert_allclose(
        model.score_history(hist).numpy(), hist.toarray() @ ref, rtol=1e-4, atol=1e-5
    )


def test_itemknn_keeps_topk_per_item(small_synthetic):
    model = ItemKNN(ItemKNNConfig(topk=3), device="cpu").fit(small_synthetic)
    per_column = np.diff(model.item_similarity().tocsc().indptr)
    assert per_column.max() <= 3


def test_bm25_and_tfidf_weights():
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=np.float32))
    # items are documents, users are terms: idf_u = log(n_items / (1 + |u|))
    idf = np.log(3 / (1 + np.array([2.0, 1.0, 3.0])))
    item_len = np.array([3.0, 2.0, 1.0])
    tfidf = weight_matrix(x, "tfidf").toarray()
    expected = x.toarray() / item_len[None, :] * idf[:, None]
    np.testing.assert_allclose(tfidf, expected, atol=1e-6)
    k1, b = 1.2, 0.75
    norm = (1 - b) + b * item_len / item_len.mean()
    bm25 = weight_matrix(x, "bm25", k1, b).toarray()
    expected = x.toarray() * (k1 + 1) / (k1 * norm[None, :] + 1) * idf[:, None]
    np.testing.assert_allclose(bm25, expected, atol=1e-6)


def test_itemknn_pop_norm_and_rejects_unhonoured(skewed):
    plain = ItemKNN(device="cpu").fit(skewed)
    normed = ItemKNN(device="cpu", balance=BalanceConfig(pop_norm=1.0)).fit(skewed)
    assert mean_rec_popularity(normed, skewed) < 0.9 * mean_rec_popularity(plain, skewed)
    with pytest.raises(ConfigError, match="itemknn.*ips_beta"):
        ItemKNN(balance=BalanceConfig(ips_beta=0.5))


def test_itemknn_ignores_history_order(small_synthetic):
    model = ItemKNN(device="cpu").fit(small_synthetic)
    seqs = small_synthetic.sequences.rows(np.arange(4))
    shuffled = replace(seqs, items=np.random.default_rng(0).permutation(seqs.items))
    hist = seqs.to_csr(small_synthetic.n_items)
    np.testing.assert_allclose(
        model.score_history(hist, seqs).numpy(), model.score_history(hist, shuffled).numpy()
    )


# ----- RP3beta ----------------------------------------------------------------------------------
def _rp3_reference(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    p_ui = x / np.maximum(x.sum(1, keepdims=True), 1)
    p_iu = x.T / np.maximum(x.sum(0)[:, None], 1)
    w = (p_iu**alpha) @ (p_ui**alpha)
    w = w / np.maximum(x.sum(0), 1)[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    return w / np.where(w.sum(1, keepdims=True) > 0, w.sum(1, keepdims=True), 1)


def test_rp3beta_matches_dense_reference(small_synthetic):
    n = small_synthetic.n_items
    model = RP3beta(RP3betaConfig(alpha=0.8, beta=0.4, topk=n), device="cpu")
    model.fit(small_synthetic)
    ref = _rp3_reference(small_synthetic.binary.toarray().astype(np.float64), 0.8, 0.4)
    np.testing.assert_allclose(model.item_similarity().toarray(), ref, atol=1e-6)
    topk = RP3beta(RP3betaConfig(topk=4), device="cpu").fit(small_synthetic)
    assert np.diff(topk.item_similarity().indptr).max() <= 4


def test_rp3beta_beta_damps_popularity(skewed):
    p3 = RP3beta(RP3betaConfig(beta=0.0), device="cpu").fit(skewed)
    rp3 = RP3beta(RP3betaConfig(beta=0.8), device="cpu").fit(skewed)
    assert mean_rec_popularity(rp3, skewed) < 0.9 * mean_rec_popularity(p3, skewed)


# ----- iALS -------------------------------------------------------------------------------------
def _ials_user_reference(model: IALS, hist: np.ndarray) -> np.ndarray:
    """Normal equations of the user step in float64, one user at a time (reference only)."""
    y = model.item_factors_.numpy().astype(np.float64)
    w = model.unobserved_w_.numpy().astype(np.float64)
    s = model.pos_scale_.numpy().astype(np.float64)
    c = (1 + model.config.alpha) * s
    out = []
    for row in hist:
        pos = np.flatnonzero(row)
        weights = w.copy()
        weights[pos] = c[pos]
        a = (y * weights[:, None]).T @ y + model.config.l2 * np.eye(y.shape[1])
        out.append(np.linalg.solve(a, (y[pos] * c[pos, None]).sum(0)))
    return np.array(out)


@pytest.mark.parametrize(
    "balance",
    [BalanceConfig(), BalanceConfig(ips_beta=0.5, neg_sampler="popularity", neg_alpha=0.5)],
)
def test_ials_fold_in_is_exact(small_synthetic, balance):
    model = IALS(IALSConfig(factors=8, iterations=4, l2=0.5), device="cpu", balance=balance)
    model.fit(small_synthetic)
    users = np.arange(small_synthetic.n_users)
    folded = model.fold_in(small_synthetic.binary[users]).numpy()
    np.testing.assert_allclose(folded, model.user_factors_.numpy(), atol=1e-4)
    ref = _ials_user_reference(model, small_synthetic.binary[:6].toarray())
    np.testing.assert_allclose(folded[:6], ref, atol=1e-4)


def test_ials_scatter_path_matches_sparse_kernels(small_synthetic):
    """The gather/scatter path (devices without sparse CSR kernels, e.g. MPS) computes the same
    sampled and sparse products as the CSR kernels, on the CPU."""
    from recsys_core.models.ials import _SideData

    x = small_synthetic.binary
    ones = torch.ones(small_synthetic.n_items)
    side = _SideData(x, ones, ones, 2.0, torch.device("cpu"), by_item=False)
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(x.shape[0], 8, generator=gen)
    items = torch.randn(x.shape[1], 8, generator=gen)
    start = torch.randn(x.shape[0], 8, generator=gen)

    def products() -> tuple[torch.Tensor, torch.Tensor]:
        pairs = side.sddmm(users, items, torch.empty(side.nnz))
        return pairs, side.spmm(pairs, items, start.clone(), beta=-1.0)

    sparse = products()
    side.sparse_kernels = False
    scatter = products()
    dense = torch.as_tensor(x.toarray())
    expected_pairs = (users @ items.T)[dense > 0]  # CSR order is row-major
    torch.testing.assert_close(sparse[0], expected_pairs)
    torch.testing.assert_close(scatter[0], expected_pairs)
    expected = -start + (dense * (users @ items.T)) @ items
    torch.testing.assert_close(sparse[1], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scatter[1], expected, rtol=1e-4, atol=1e-4)


def test_ials_cg_close_to_cholesky(synthetic):
    cg = IALS(IALSConfig(iterations=8, factors=16), device="cpu").fit(synthetic)
    exact = IALS(IALSConfig(iterations=8, factors=16, solver="cholesky"), device="cpu")
    exact.fit(synthetic)

    def loss(m: IALS) -> float:
        x = synthetic.binary.toarray()
        pred = m.user_factors_.numpy() @ m.item_factors_.numpy().T
        conf = np.where(x > 0, 1 + m.config.alpha, 1.0)
        reg = m.config.l2 * ((m.user_factors_**2).sum() + (m.item_factors_**2).sum()).item()
        return float((conf * (x - pred) ** 2).sum() + reg)

    assert loss(cg) < 1.05 * loss(exact)


def test_ials_balance_moves_to_tail(skewed):
    def pop(**kw) -> float:
        model = IALS(
            IALSConfig(iterations=6, factors=16), device="cpu", balance=BalanceConfig(**kw)
        )
        return mean_rec_popularity(model.fit(skewed), skewed)

    ips = [pop(ips_beta=b) for b in (0.0, 0.5, 1.0)]
    assert ips[0] > ips[1] > ips[2], ips
    neg = [pop(neg_sampler="popularity", neg_alpha=a) for a in (0.0, 0.5, 1.0)]
    assert neg[0] > neg[1] > neg[2], neg


def test_ials_rejects_sampling_options():
    with pytest.raises(ConfigError, match="ials.*neg_sampler"):
        IALS(balance=BalanceConfig(neg_sampler="hard"))
    with pytest.raises(ConfigError, match="focal_gamma"):
        IALS(balance=BalanceConfig(focal_gamma=2.0))


def test_ials_progress_and_embeddings(small_synthetic):
    seen = []
    model = IALS(IALSConfig(iterations=3, factors=4), device="cpu")
    model.fit(small_synthetic, progress=lambda step, m: seen.append((step, m["epoch"])))
    assert seen == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert model.n_epochs_run_ == 3 and len(model.epoch_seconds_) == 3
    assert model.item_embeddings().shape == (small_synthetic.n_items, 4)
    assert model.user_embeddings().shape == (small_synthetic.n_users, 4)


def test_ials_validates_every_sweep_only_when_asked(small_synthetic):
    """By default the validation curve has one point (after the last sweep); eval_every=1
    gives one per sweep, so a study's pruner can act on iALS."""
    from recsys_core.split import SplitSpec, make_split

    split = make_split(small_synthetic, SplitSpec(protocol="random", seed=1))
    curves = {}
    for every in (0, 1):
        seen = []
        model = IALS(IALSConfig(iterations=4, factors=4, eval_every=every), device="cpu")
        model.fit(split.train, valid=split.valid, progress=lambda s, m, seen=seen: seen.append(m))
        curves[every] = [m["epoch"] for m in seen if "valid_ndcg@10" in m]
        assert all(0.0 <= m.get("valid_ndcg@10", 0.0) <= 1.0 for m in seen)
    assert curves == {0: [4.0], 1: [1.0, 2.0, 3.0, 4.0]}


# ----- content-based ----------------------------------------------------------------------------
def _genre_data() -> Interactions:
    """Two genres; item 'cold' (genre A) has no interaction at all in training."""
    frame = pd.DataFrame(
        {"user": ["u1", "u1", "u2", "u2", "u3"], "item": ["a1", "a2", "b1", "b2", "a1"]}
    )
    items = pd.DataFrame(
        {"categories": ["A", "A", "B", "B", "A"], "title": ["x", "y", "z", "w", "v"]},
        index=["a1", "a2", "b1", "b2", "cold"],
    )
    data = Interactions.from_frame(frame, item_table=items)
    # from_frame keeps only items with interactions; add the cold one to the vocabulary
    ids = np.append(data.item_ids, "cold")
    return replace(data, item_ids=ids, item_table=items.reindex(ids).reset_index(drop=True))


def test_content_scores_cold_items_by_genre():
    data = _genre_data()
    model = ContentBased(ContentConfig(w_text=0.0), device="cpu").fit(data)
    cold = data.item_index("cold")
    assert data.item_popularity[cold] == 0
    scores = model.score_users(np.array([data.user_index("u3")])).numpy()[0]
    b1 = data.item_index("b1")
    assert scores[cold] > scores[b1]  # same genre as the user's history
    items, _ = model.recommend(np.array([data.user_index("u3")]), k=1)
    assert items[0, 0] in (cold, data.item_index("a2"))
    assert model.item_embeddings().shape[0] == data.n_items


def test_content_needs_item_table(small_synthetic):
    with pytest.raises(DataError, match="item table"):
        ContentBased(device="cpu").fit(replace(small_synthetic, item_table=None))
    zero = ContentConfig(w_categories=0, w_text=0, w_numeric=0, w_embedding=0)
    with pytest.raises(ConfigError, match="weight"):
        ContentBased(zero, device="cpu").fit(small_synthetic)


def test_content_recency_weights_latest(small_synthetic):
    model = ContentBased(ContentConfig(recency_half_life=1.0), device="cpu").fit(small_synthetic)
    assert model.uses_sequences
    seqs = small_synthetic.sequences.rows(np.arange(3))
    hist = seqs.to_csr(small_synthetic.n_items)
    latest = seqs.items[seqs.indptr[1:] - 1]
    plain = ContentBased(device="cpu").fit(small_synthetic)
    # the most recent item counts most, so it is closer to the recency profile than the mean
    rec = model.score_history(hist, seqs).numpy()[np.arange(3), latest]
    flat = plain.score_history(hist).numpy()[np.arange(3), latest]
    assert (rec > flat).all()


# ----- cancellation -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [ItemKNN, EASE, RP3beta, IALS, ContentBased])
def test_cancelled_propagates_out_of_fit(cls, small_synthetic):
    def stop(step: int, metrics: dict[str, float]) -> None:
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        cls(device="cpu").fit(small_synthetic, progress=stop)
