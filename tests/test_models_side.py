"""Side-feature and hybrid models: two-tower, multi-interest (ComiRec-SA) and fusion.

Planted structure: a "categories only" dataset where each user's taste is a genre, items are
many and each appears rarely, and the test items are cold (never in training), so only a model
that reads item categories can rank them; fusion must learn its weights and beat its worst part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core.balance import BalanceConfig
from recsys_core.data.interactions import Interactions
from recsys_core.errors import Cancelled, ConfigError
from recsys_core.models import get_model
from recsys_core.models.base import Recommender
from recsys_core.models.fusion import Fusion, FusionConfig, _simplex_grid
from recsys_core.models.multiinterest import MultiInterest, MultiInterestConfig
from recsys_core.models.twotower import TwoTower, TwoTowerConfig

N_GENRES = 4
FAST_TT = TwoTowerConfig(epochs=15, batch_size=256, dim=32, hidden=64)


def categories_only_data(seed: int = 0) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """(data, cold-interaction mask, user genre): taste = genre, carried only by categories.

    480 items in 4 genres with shuffled ids (the id says nothing); each of 160 users draws 12
    training items and 2 test items from their genre. The 80 test ("cold") items never occur in
    training, so id-only models know nothing about them; each warm item is seen ~5 times.
    """
    rng = np.random.default_rng(seed)
    n_users, n_warm, n_cold = 160, 400, 80
    n_items = n_warm + n_cold
    item_genre = rng.permutation(np.arange(n_items) % N_GENRES)
    is_cold_item = np.zeros(n_items, dtype=bool)
    is_cold_item[rng.choice(n_items, n_cold, replace=False)] = True
    user_genre = np.arange(n_users) % N_GENRES
    rows = []
    for g in range(N_GENRES):  # loop over 4 genres (test data construction)
        warm = np.flatnonzero((item_genre == g) & ~is_cold_item)
        cold = np.flatnonzero((item_genre == g) & is_cold_item)
        for u in np.flatnonzero(user_genre == g):
            rows += [(u, i, False) for i in rng.choice(warm, 12, replace=False)]
            rows += [(u, i, True) for i in rng.choice(cold, 2, replace=False)]
    frame = pd.DataFrame(rows, columns=["u", "i", "cold"])
    inter = pd.DataFrame(
        {
            "user": "u" + frame["u"].astype(str).str.zfill(4),
            "item": "i" + frame["i"].astype(str).str.zfill(4),
            "value": 1.0,
        }
    )
    items = pd.DataFrame(
        {"categories": [f"G{g}" for g in item_genre]},
        index=pd.Index(["i" + str(i).zfill(4) for i in range(n_items)], name="item"),
    )
    data = Interactions.from_frame(inter, item_table=items)
    # the encoded order sorts by user (stable), as the frame is: the cold flags stay aligned
    order = np.argsort(frame["u"].to_numpy(), kind="stable")
    return data, frame["cold"].to_numpy()[order], user_genre


def cold_genre_precision(model: Recommender, data: Interactions, cold_items: np.ndarray) -> float:
    """Mean share of each user's top-10 among the cold items that are of the user's genre."""
    genre = np.array([int(c[1:]) for c in data.item_table["categories"]])
    user_genre = np.array([int(u[1:]) % N_GENRES for u in data.user_ids])
    scores = model.score_users(np.arange(data.n_users)).cpu().numpy()[:, cold_items]
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return float((genre[cold_items][top] == user_genre[:, None]).mean())


@pytest.fixture(scope="module")
def cats():
    data, cold, _ = categories_only_data()
    train = data.select(~cold)
    cold_items = np.flatnonzero(train.item_popularity == 0)
    return train, cold_items


# ----- two-tower --------------------------------------------------------------------------------
def test_two_tower_learns_from_categories_where_id_models_cannot(cats):
    train, cold_items = cats
    assert len(cold_items) > 60
    tower = TwoTower(FAST_TT, device="cpu").fit(train)
    id_only = TwoTower(
        TwoTowerConfig(epochs=15, batch_size=256, dim=32, hidden=64, use_item_features=False),
        device="cpu",
    ).fit(train)
    tower_p = cold_genre_precision(tower, train, cold_items)
    assert tower_p > 0.8, tower_p
    for other in (get_model("bpr")(device="cpu").fit(train), id_only):
        p = cold_genre_precision(other, train, cold_items)
        assert p < 0.5, (other.name, p)  # chance is 1 / N_GENRES
    itemknn = get_model("itemknn")(device="cpu").fit(train)
    assert cold_genre_precision(itemknn, train, cold_items) < 0.5


def test_two_tower_user_attributes_enter_score_users_only(synthetic):
    model = TwoTower(FAST_TT, device="cpu").fit(synthetic)
    users = np.arange(8)
    with_attrs = model.score_users(users).numpy()
    bare = model.score_history(model.history_[users]).numpy()
    assert with_attrs.shape == bare.shape == (8, synthetic.n_items)
    assert not np.allclose(with_attrs, bare, atol=1e-4)  # attributes change the user vector
    attrs = model.net_.user_features[torch.as_tensor(users)]
    given = model.score_history(model.history_[users], user_features=attrs).numpy()
    np.testing.assert_allclose(given, with_attrs, atol=1e-5)
    emb = model.user_embeddings()
    assert emb.shape == (synthetic.n_users, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def test_two_tower_balance_options_are_checked_and_sampled_loss_learns(cats):
    with pytest.raises(ConfigError, match="loss='sampled'"):
        TwoTower(FAST_TT, device="cpu", balance=BalanceConfig(neg_sampler="popularity")).fit(
            cats[0]
        )
    with pytest.raises(ConfigError, match="does not honour"):
        TwoTower(FAST_TT, device="cpu", balance=BalanceConfig(resample="upsample_tail"))
    cfg = TwoTowerConfig(epochs=15, batch_size=256, dim=32, hidden=64, loss="sampled", n_sampled=64)
    balance = BalanceConfig(neg_sampler="popularity", neg_alpha=0.5, ips_beta=0.5)
    model = TwoTower(cfg, device="cpu", balance=balance).fit(cats[0])
    assert cold_genre_precision(model, cats[0], cats[1]) > 0.7


def test_two_tower_recency_pooling_reads_time_order(synthetic):
    cfg = TwoTowerConfig(
        epochs=3, batch_size=512, dim=16, hidden=32, pooling="recency", half_life=2.0
    )
    model = TwoTower(cfg, device="cpu").fit(synthetic)
    assert model.uses_sequences and model.sequences_ is not None
    seqs = synthetic.sequences.rows(np.arange(4))
    ordered = model.score_history(synthetic.binary[:4], seqs).numpy()
    reversed_seqs = type(seqs)(
        seqs.indptr,
        np.concatenate(
            [seqs.items[a:b][::-1] for a, b in zip(seqs.indptr[:-1], seqs.indptr[1:], strict=True)]
        ),
    )
    flipped = model.score_history(synthetic.binary[:4], reversed_seqs).numpy()
    assert not np.allclose(ordered, flipped, atol=1e-5)


def test_cancelled_propagates_out_of_two_tower_fit(small_synthetic):
    def cancel(step, metrics):
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        TwoTower(FAST_TT, device="cpu").fit(small_synthetic, progress=cancel)


# ----- multi-interest ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def comirec(synthetic):
    cfg = MultiInterestConfig(epochs=8, batch_size=64, max_len=20, n_interests=3, hidden=32)
    return MultiInterest(cfg, device="cpu").fit(synthetic)


def test_multi_interest_returns_k_interests_and_scores_by_the_best(comirec, synthetic):
    users = np.arange(6)
    interests = comirec.user_interests(users)
    assert interests.shape == (6, 3, 32) and interests.dtype == np.float32
    # the K interests differ (the attention heads did not collapse onto one vector)
    assert np.linalg.norm(interests[:, 0] - interests[:, 1], axis=1).min() > 1e-4
    expected = (interests @ comirec.item_embeddings().T).max(axis=1)
    np.testing.assert_allclose(comirec.score_users(users).numpy(), expected, atol=1e-4)
    assert comirec.user_embeddings().shape == (synthetic.n_users, 32)


def test_multi_interest_attention_is_a_distribution_over_real_items(comirec, synthetic):
    seqs = synthetic.sequences.rows(np.arange(5))
    weights = comirec.attention_weights(seqs)  # over its window: the latest max_len = 20 items
    assert weights.shape == (5, 20)
    real = np.arange(20)[None, :] >= 20 - np.minimum(seqs.lengths, 20)[:, None]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert (weights[~real] == 0).all()


def test_multi_interest_empty_history_scores_zero(comirec, synthetic):
    empty = synthetic.binary[:2].copy()
    empty.data[:] = 0
    empty.eliminate_zeros()
    scores = comirec.score_history(empty).numpy()
    assert np.isfinite(scores).all() and np.allclose(scores, 0.0)


# ----- fusion -----------------------------------------------------------------------------------
def test_simplex_grid_covers_the_simplex():
    grid = _simplex_grid(3, 10)
    assert grid.shape == (66, 3)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert (grid >= 0).all() and len(np.unique(grid, axis=0)) == 66


def _holdout(data: Interactions, share: float, seed: int) -> tuple[Interactions, Interactions]:
    rng = np.random.default_rng(seed)
    held = rng.random(data.nnz) < share
    held &= ~np.r_[True, data.users[1:] != data.users[:-1]]
    return data.select(~held), data.select(held)


def _recall(model: Recommender, truth: Interactions) -> float:
    t = truth.binary
    users = np.flatnonzero(np.diff(t.indptr) > 0)
    items, _ = model.recommend(users, k=10)
    hits = np.take_along_axis(t[users].toarray() > 0, items, axis=1).sum(1)
    return float(np.mean(hits / np.minimum(np.diff(t.indptr)[users], 10)))


def test_fusion_learns_weights_and_beats_its_worst_component(synthetic):
    rest, test = _holdout(synthetic, 0.2, seed=1)
    train, valid = _holdout(rest, 0.15, seed=2)
    fusion = Fusion(FusionConfig(components=("random", "ease")), device="cpu").fit(
        train, valid=valid
    )
    weights = fusion.weights
    assert weights["ease"] >= 0.6 > weights["random"], weights  # not uniform (0.5 / 0.5)
    assert abs(sum(weights.values()) - 1.0) < 1e-6
    worst = min(_recall(c, test) for c in fusion.components_)
    assert _recall(fusion, test) > worst + 0.05


def test_fusion_without_valid_carves_refits_and_round_trips(synthetic, tmp_path):
    cfg = FusionConfig(components=("most_popular", "itemknn"), grid_steps=4)
    fusion = Fusion(cfg, device="cpu", seed=3).fit(synthetic)
    # refitted on the full training data: the components share the fusion's history
    for comp in fusion.components_:
        assert comp.history_.nnz == synthetic.binary.nnz
    fusion.save(tmp_path / "f")
    loaded = Recommender.load(tmp_path / "f", device="cpu")
    assert isinstance(loaded, Fusion) and loaded.weights == fusion.weights
    users = np.arange(15)
    np.testing.assert_allclose(
        loaded.score_users(users).numpy(), fusion.score_users(users).numpy(), atol=1e-5
    )


def test_fusion_skips_content_without_item_table_and_normalises(synthetic):
    bare = Interactions(
        user_ids=synthetic.user_ids,
        item_ids=synthetic.item_ids,
        users=synthetic.users,
        items=synthetic.items,
        values=synthetic.values,
        timestamps=synthetic.timestamps,
    )
    for norm in ("zscore", "minmax"):
        cfg = FusionConfig(components=("itemknn", "content"), normalise=norm, grid_steps=2)
        fusion = Fusion(cfg, device="cpu").fit(bare)
        assert fusion.skipped_ == ["content"] and fusion.weights == {"itemknn": 1.0, "content": 0.0}
        scores = fusion.score_history(bare.binary[:5]).numpy()
        assert np.isfinite(scores).all()
        unseen = bare.binary[:5].toarray() == 0
        if norm == "minmax":
            assert scores[unseen].min() >= -1e-6 and scores[unseen].max() <= 1 + 1e-6
        else:
            np.testing.assert_allclose(
                np.array([s[m].mean() for s, m in zip(scores, unseen, strict=True)]), 0, atol=1e-4
            )


def test_fusion_config_rejects_bad_components():
    with pytest.raises(ConfigError, match="repeats"):
        FusionConfig(components=("ease", "ease"))
    with pytest.raises(ConfigError, match="fusion"):
        FusionConfig(components=("fusion",))
    with pytest.raises(ConfigError):
        FusionConfig(components=())
