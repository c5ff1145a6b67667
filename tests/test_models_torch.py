"""Torch models (BPR-MF, Mult-VAE, NeuMF, LightGCN) learn planted structure, honour balance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_core.balance import BalanceConfig
from recsys_core.models import get_model
from recsys_core.models.base import Recommender
from recsys_core.models.bpr import BPRConfig
from recsys_core.models.lightgcn import LightGCNConfig
from recsys_core.models.multvae import MultVAEConfig
from recsys_core.models.neumf import NeuMFConfig
from recsys_core.models.popular import MostPopular
from recsys_core.training.trainer import local_validation_ndcg

#: Small, fast settings for 300 x 200 synthetic data (the defaults target real datasets).
FAST = {
    "bpr": BPRConfig(epochs=15, batch_size=256, lr=0.01),
    "multvae": MultVAEConfig(epochs=40, batch_size=64, lr=3e-3, hidden=64, latent=16),
    "neumf": NeuMFConfig(
        epochs=8, batch_size=256, lr=5e-3, mf_dim=16, mlp_dim=16, mlp_layers=(32, 16)
    ),
    "lightgcn": LightGCNConfig(epochs=15, batch_size=256, lr=0.01, dim=32),
}
KEYS = sorted(FAST)


@pytest.fixture(scope="module")
def parts(synthetic):
    r = np.random.default_rng(0).random(synthetic.nnz)
    train = synthetic.select(r < 0.7)
    valid = synthetic.select((r >= 0.7) & (r < 0.8))
    test = synthetic.select(r >= 0.8)
    seen = synthetic.select(r < 0.8)
    return train, valid, test, seen


@pytest.fixture(scope="module")
def fitted(parts):
    train, valid, _, _ = parts
    return {k: get_model(k)(FAST[k], device="cpu", seed=0).fit(train, valid=valid) for k in KEYS}


@pytest.fixture(scope="module")
def popular_ndcg(parts):
    train, _, test, seen = parts
    return local_validation_ndcg(MostPopular().fit(train), seen, test)


class _FoldIn:
    """Scores training users through ``score_history`` (fold-in) instead of their vectors."""

    def __init__(self, model: Recommender, train) -> None:
        self.model, self.history = model, train.binary.tocsr()

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        return self.model.score_history(self.history[users])


@pytest.mark.parametrize("key", KEYS)
def test_learns_planted_clusters_better_than_most_popular(key, fitted, parts, popular_ndcg):
    _, _, test, seen = parts
    ndcg = local_validation_ndcg(fitted[key], seen, test)
    assert ndcg > 1.5 * popular_ndcg, f"{key}: {ndcg:.3f} vs MostPopular {popular_ndcg:.3f}"


@pytest.mark.parametrize("key", KEYS)
def test_fold_in_of_a_history_also_beats_most_popular(key, fitted, parts, popular_ndcg):
    train, _, test, seen = parts
    ndcg = local_validation_ndcg(_FoldIn(fitted[key], train), seen, test)
    assert ndcg > 1.3 * popular_ndcg, f"{key} fold-in: {ndcg:.3f} vs {popular_ndcg:.3f}"


@pytest.mark.parametrize("key", KEYS)
def test_save_load_round_trip_and_embeddings(key, fitted, parts, tmp_path):
    train = parts[0]
    model = fitted[key]
    model.save(tmp_path / key)
    loaded = Recommender.load(tmp_path / key, device="cpu")
    users = np.arange(10)
    assert torch.allclose(model.score_users(users), loaded.score_users(users), atol=1e-5)
    hist = train.binary[:3]
    assert torch.allclose(model.score_history(hist), loaded.score_history(hist), atol=1e-4)
    items, users_e = model.item_embeddings(), model.user_embeddings()
    assert items.shape[0] == train.n_items and users_e.shape[0] == train.n_users
    assert np.isfinite(items).all() and np.isfinite(users_e).all()
    assert model.n_epochs_run_ >= 1 and len(model.epoch_seconds_) == model.n_epochs_run_


def _avg_rec_popularity(model, train) -> float:
    items, _ = model.recommend(np.arange(train.n_users), k=10)
    return float(train.item_popularity[items].mean())


def test_popularity_negatives_and_ips_lower_recommended_popularity(parts):
    train, valid = parts[0], parts[1]
    cfg = FAST["bpr"]
    base = get_model("bpr")(cfg, device="cpu").fit(train, valid=valid)
    pop_neg = get_model("bpr")(
        cfg, device="cpu", balance=BalanceConfig(neg_sampler="popularity", neg_alpha=1.0)
    ).fit(train, valid=valid)
    ips = get_model("bpr")(cfg, device="cpu", balance=BalanceConfig(ips_beta=1.0)).fit(
        train, valid=valid
    )
    p0 = _avg_rec_popularity(base, train)
    assert _avg_rec_popularity(pop_neg, train) < p0
    assert _avg_rec_popularity(ips, train) < p0


@pytest.mark.parametrize(
    ("key", "balance"),
    [
        ("bpr", BalanceConfig(neg_sampler="hard", hard_pool=5, focal_gamma=1.0)),
        ("lightgcn", BalanceConfig(neg_sampler="in_batch", n_negatives=3, user_cap=15)),
        ("neumf", BalanceConfig(positive_threshold=4.0, pos_weight=2.0, neg_sampler="hard")),
        ("multvae", BalanceConfig(resample="upsample_tail", ips_beta=0.5)),
    ],
)
def test_balance_options_train_and_still_learn(key, balance, parts, popular_ndcg):
    train, valid, test, seen = parts
    cfg = FAST[key]
    model = get_model(key)(cfg, device="cpu", balance=balance).fit(train, valid=valid)
    assert local_validation_ndcg(model, seen, test) > popular_ndcg


def test_neumf_negatives_default_to_config_and_balance_overrides():
    model = get_model("neumf")(FAST["neumf"], device="cpu")
    assert model._negatives_per_positive() == FAST["neumf"].n_negatives
    model = get_model("neumf")(FAST["neumf"], device="cpu", balance=BalanceConfig(n_negatives=7))
    assert model._negatives_per_positive() == 7


def test_neumf_catalogue_scoring_is_the_pairwise_network():
    """logits_all_items reorders the first MLP layer for speed; it must be the same function."""
    from recsys_core.models.neumf import _NeuMF

    torch.manual_seed(0)
    net = _NeuMF(5, 40, NeuMFConfig(mf_dim=8, mlp_dim=6, mlp_layers=(12, 4))).eval()
    users = torch.arange(5)
    u_mf, u_mlp = net.user_mf(users), net.user_mlp(users)
    items = torch.arange(40)[None, :].expand(5, -1)
    # the paper's form: the MLP on the concatenation [u, i] of every pair
    pair = torch.cat([u_mlp[:, None, :].expand(-1, 40, -1), net.item_mlp(items)], dim=-1)
    naive = net.out(torch.cat([u_mf[:, None, :] * net.item_mf(items), net.mlp(pair)], -1))[..., 0]
    assert torch.allclose(net.logits(u_mf, u_mlp, items), naive, atol=1e-5)
    assert torch.allclose(net.logits_all_items(u_mf, u_mlp), naive, atol=1e-5)
    net.train()
    assert net.logits_all_items(u_mf, u_mlp).shape == (5, 40)


def test_lightgcn_propagation_gradient_matches_dense_autograd():
    """The custom backward (A @ grad, A symmetric) equals autograd through a dense A."""
    import scipy.sparse as sp

    from recsys_core.models.base import csr_to_tensor
    from recsys_core.models.lightgcn import _Graph, normalized_adjacency

    positives = sp.random(6, 9, density=0.4, format="csr", random_state=0)
    adj = normalized_adjacency(positives)
    torch.manual_seed(0)
    graph = _Graph(15, 4)
    graph.propagate(csr_to_tensor(adj, torch.device("cpu")), 3)[[1, 7, 12]].pow(2).sum().backward()
    fast = graph.emb.weight.grad.clone()
    dense, x = torch.as_tensor(adj.toarray()), graph.emb.weight.detach().clone().requires_grad_()
    total, h = x, x
    for _ in range(3):
        h = dense @ h
        total = total + h
    (total / 4)[[1, 7, 12]].pow(2).sum().backward()
    assert torch.allclose(fast, x.grad, atol=1e-6)
