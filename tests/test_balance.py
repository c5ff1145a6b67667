"""Balance machinery: samplers draw what they claim, IPS weights, resampling, honoured options."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from recsys_core.balance import (
    BalanceConfig,
    head_items,
    interaction_counts,
    ips_weights,
    make_sampler,
    negative_popularity,
    prepare_training,
    resample_interactions,
    resampled_popularity,
    split_by_threshold,
)
from recsys_core.errors import ConfigError, DataError
from recsys_core.training.samplers import NegativeSampler, sampling_probabilities

N_ITEMS = 30


def _positives_with_empty_users(n_users: int = 50) -> tuple[sp.csr_matrix, np.ndarray]:
    """Users 0..9 have positives drawn with a skew; users 10.. have none (free draws)."""
    rng = np.random.default_rng(0)
    pop_p = 1.0 / np.arange(1, N_ITEMS + 1)
    rows, cols = [], []
    for u in range(10):
        items = rng.choice(N_ITEMS, size=8, replace=False, p=pop_p / pop_p.sum())
        rows += [u] * len(items)
        cols += list(items)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, N_ITEMS))
    return m, np.asarray(m.sum(axis=0)).ravel()


def _chi2_pvalue(draws: np.ndarray, probs: np.ndarray) -> float:
    probs = np.asarray(probs, dtype=np.float64)
    observed = np.bincount(draws, minlength=len(probs))
    support = probs > 0
    assert observed[~support].sum() == 0, "drew an item with zero probability"
    expected = probs[support] / probs[support].sum() * observed.sum()
    return float(stats.chisquare(observed[support], expected).pvalue)


def _free_users(n: int) -> torch.Tensor:
    # users 10..49 have no positives: the draws show the sampler's base distribution
    return torch.as_tensor(np.random.default_rng(1).integers(10, 50, n), dtype=torch.long)


def test_uniform_sampler_is_uniform():
    pos, _ = _positives_with_empty_users()
    s = NegativeSampler(
        pos, kind="uniform", n_negatives=4, generator=torch.Generator().manual_seed(0)
    )
    draws = s.sample(_free_users(20_000)).numpy().ravel()
    assert _chi2_pvalue(draws, np.full(N_ITEMS, 1.0 / N_ITEMS)) > 0.001


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_popularity_sampler_follows_pop_power_alpha(alpha):
    pos, pop = _positives_with_empty_users()
    s = NegativeSampler(
        pos,
        kind="popularity",
        alpha=alpha,
        n_negatives=2,
        generator=torch.Generator().manual_seed(1),
    )
    draws = s.sample(_free_users(30_000)).numpy().ravel()
    expected = np.where(pop > 0, pop, 0.0) ** alpha
    assert _chi2_pvalue(draws, expected / expected.sum()) > 0.001
    # and it is not uniform: the most popular item is drawn clearly more often than average
    counts = np.bincount(draws, minlength=N_ITEMS)
    assert counts[np.argmax(pop)] > 1.5 * counts.mean()


def test_alpha_zero_is_uniform():
    assert np.allclose(sampling_probabilities(np.array([5, 1, 0, 2]), 0.0), 0.25)


def test_in_batch_sampler_draws_in_proportion_to_batch_positives():
    # pool of batch positives with known frequencies; users without positives -> no rejection
    pos, _ = _positives_with_empty_users()
    s = NegativeSampler(
        pos, kind="in_batch", n_negatives=3, generator=torch.Generator().manual_seed(2)
    )
    pool = torch.as_tensor(np.repeat(np.arange(5), [1, 2, 3, 4, 10]))
    users = torch.full((len(pool),), 20, dtype=torch.long)
    draws = np.concatenate([s.sample(users, pool).numpy().ravel() for _ in range(500)])
    freq = np.bincount(pool.numpy(), minlength=N_ITEMS).astype(float)
    assert _chi2_pvalue(draws, freq / freq.sum()) > 0.001


def test_in_batch_never_picks_the_rows_own_positive_slot():
    pos, _ = _positives_with_empty_users()
    s = NegativeSampler(
        pos, kind="in_batch", n_negatives=5, generator=torch.Generator().manual_seed(3)
    )
    pool = torch.arange(8)  # all distinct: a row's own positive can only come from its own slot
    users = torch.full((8,), 30, dtype=torch.long)
    negs = s.sample(users, pool)
    assert not (negs == pool[:, None]).any()


@pytest.mark.parametrize("kind", ["uniform", "popularity", "hard", "in_batch"])
def test_negatives_are_never_positives(kind, synthetic):
    train = synthetic.binary.tocsr()
    s = NegativeSampler(
        train,
        kind=kind,
        alpha=1.0,
        n_negatives=5,
        hard_pool=4,
        generator=torch.Generator().manual_seed(4),
    )
    coo = train.tocoo()
    users = torch.as_tensor(coo.row.astype(np.int64))
    items = torch.as_tensor(coo.col.astype(np.int64))
    score = lambda u, i: i.float()  # noqa: E731 - a fixed scorer for the hard sampler
    negs = s.sample(users, items, score).numpy()
    # independent check against the scipy matrix
    hit = np.asarray(train[np.repeat(coo.row, negs.shape[1]), negs.ravel()]).ravel()
    if kind == "in_batch":
        # documented: only users whose positives cover the batch pool can keep a collision
        assert hit.mean() < 0.01 and s.collision_rate_ == pytest.approx(hit.mean())
    else:
        assert hit.sum() == 0


def test_hard_sampler_prefers_high_scores():
    pos, _ = _positives_with_empty_users()
    users = _free_users(4000)
    score = lambda u, i: i.float()  # noqa: E731 - higher item index = harder negative
    hard = NegativeSampler(
        pos, kind="hard", hard_pool=5, generator=torch.Generator().manual_seed(5)
    )
    uni = NegativeSampler(pos, kind="uniform", generator=torch.Generator().manual_seed(5))
    h = hard.sample(users, None, score).numpy().ravel()
    u = uni.sample(users).numpy().ravel()
    # the max of 5 uniform draws on 0..29 has mean about 24.3; a single draw 14.5
    assert h.mean() > u.mean() + 6
    with pytest.raises(ConfigError, match="score function"):
        hard.sample(users)


def test_sampler_is_reproducible_under_a_seed(synthetic):
    a = make_sampler(
        synthetic.binary,
        BalanceConfig(neg_sampler="popularity", neg_alpha=0.7),
        generator=torch.Generator().manual_seed(9),
    )
    b = make_sampler(
        synthetic.binary,
        BalanceConfig(neg_sampler="popularity", neg_alpha=0.7),
        generator=torch.Generator().manual_seed(9),
    )
    users = torch.arange(100)
    assert torch.equal(a.sample(users), b.sample(users))


def test_ips_weights_match_formula():
    pop = np.array([100, 10, 1, 0, 50], dtype=float)
    w = ips_weights(pop, 0.5)
    raw = np.maximum(pop, 1) ** -0.5
    assert np.allclose(w / w[0], raw / raw[0], rtol=1e-5)
    assert (pop * w).sum() / pop.sum() == pytest.approx(1.0, rel=1e-5)  # mean 1 over interactions
    assert np.allclose(ips_weights(pop, 0.0), 1.0)
    assert w[2] > w[1] > w[0]  # rarer items weigh more


def test_head_items_marks_top_share():
    pop = np.array([5, 50, 1, 20, 7, 0, 3, 9, 2, 4])
    head = head_items(pop, 0.2)
    assert set(np.flatnonzero(head)) == {1, 3}


@pytest.mark.parametrize("mode", ["upsample_tail", "downsample_head"])
def test_resampling_changes_the_popularity_curve_as_configured(synthetic, mode):
    bal = BalanceConfig(resample=mode, resample_factor=3.0, head_share=0.2)
    out = resample_interactions(synthetic, bal, seed=0)
    before, after = interaction_counts(synthetic), interaction_counts(out)
    head = head_items(before, 0.2)
    if mode == "upsample_tail":
        assert np.array_equal(after[head], before[head])
        ratio = after[~head].sum() / before[~head].sum()
    else:
        assert np.array_equal(after[~head], before[~head])
        ratio = after[head].sum() / before[head].sum()
        ratio = 1.0 / ratio
    assert ratio == pytest.approx(3.0, rel=0.1)
    # never drops a user entirely
    assert set(np.unique(out.users)) == set(np.unique(synthetic.users))


def test_downsampling_keeps_every_user_even_when_all_their_items_are_head(small_synthetic):
    # head_share 1.0: every item is head, so each user's interactions are all at risk
    bal = BalanceConfig(resample="downsample_head", resample_factor=100.0, head_share=1.0)
    out = resample_interactions(small_synthetic, bal, seed=3)
    assert out.nnz < small_synthetic.nnz / 5
    assert set(np.unique(out.users)) == set(np.unique(small_synthetic.users))


def test_user_cap_bounds_interactions_per_user(synthetic):
    out = resample_interactions(synthetic, BalanceConfig(user_cap=5), seed=1)
    per_user = np.bincount(out.users, minlength=synthetic.n_users)
    before = np.bincount(synthetic.users, minlength=synthetic.n_users)
    assert np.array_equal(per_user, np.minimum(before, 5))


def test_resampled_popularity_preview(synthetic):
    curves = resampled_popularity(synthetic, BalanceConfig(resample="upsample_tail"), seed=0)
    assert np.all(np.diff(curves["before"]) <= 0)  # sorted most popular first
    assert curves["after"].sum() > curves["before"].sum()
    assert curves["head"][: int(curves["head"].sum())].all()


def test_negative_popularity_preview_tracks_alpha(synthetic):
    pop = synthetic.item_popularity
    flat = negative_popularity(synthetic, BalanceConfig(), n_draws=20_000)
    skew = negative_popularity(
        synthetic, BalanceConfig(neg_sampler="popularity", neg_alpha=1.0), n_draws=20_000
    )
    assert stats.spearmanr(skew, pop).statistic > 0.8
    # uniform draws with positives rejected: popular items are, if anything, drawn less often
    assert stats.spearmanr(flat, pop).statistic <= 0.0
    assert flat.max() < 2 * flat.mean()


def test_positive_threshold_splits_classes(synthetic):
    pos, neg = split_by_threshold(synthetic, 4.0)
    assert (pos.values >= 4).all() and (neg.values < 4).all()
    assert pos.nnz + neg.nnz == synthetic.nnz
    prepared = prepare_training(synthetic, BalanceConfig(positive_threshold=4.0))
    assert prepared.negatives.multiply(prepared.positives).nnz == 0
    with pytest.raises(DataError, match="positive_threshold"):
        split_by_threshold(synthetic, 99.0)


def test_unsupported_option_rejected_naming_model_and_option():
    from recsys_core.models import get_model

    with pytest.raises(ConfigError, match=r"multvae.*neg_sampler"):
        get_model("multvae")(balance=BalanceConfig(neg_sampler="popularity"))
    with pytest.raises(ConfigError, match=r"bpr.*pos_weight"):
        get_model("bpr")(balance=BalanceConfig(pos_weight=3.0))
    # honoured options are accepted
    get_model("neumf")(balance=BalanceConfig(pos_weight=3.0, neg_sampler="hard"))
