"""The model contract, run against every registered model (and every model added later).

Each model must: fit on small synthetic data; score [batch, n_items] float32 on its device;
exclude seen items in ``recommend``; round-trip through save/load to the same scores; be
deterministic under a seed; agree between ``score_history`` on the training history and
``score_users``; and recover the planted taste clusters clearly better than MostPopular.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.config import config_from_dict
from recsys_core.data.interactions import Interactions
from recsys_core.models import MODELS, get_model
from recsys_core.models.base import Recommender
from recsys_core.whatif import search_items, user_history, what_if

#: Config overrides that keep each model fast on the test data (deep models: few epochs).
FAST_CONFIGS: dict[str, dict] = {
    "ials": {"iterations": 6},
    "itemknn": {"topk": 50},
    "ease": {"l2": 50.0},
    "sasrec": {"epochs": 12, "batch_size": 32, "max_len": 20},
    "gru4rec": {"epochs": 12, "batch_size": 32, "max_len": 20},
    "twotower": {"epochs": 8, "batch_size": 256, "dim": 32, "hidden": 64},
    "multiinterest": {"epochs": 12, "batch_size": 32, "max_len": 20, "n_interests": 2},
    "fusion": {"components": ["ease", "itemknn"]},
    "bpr": {"epochs": 15, "batch_size": 256, "lr": 0.01},
    "multvae": {"epochs": 40, "batch_size": 64, "lr": 3e-3, "hidden": 64, "latent": 16},
    "neumf": {"epochs": 8, "batch_size": 256, "lr": 5e-3, "mf_dim": 16, "mlp_dim": 16},
    "lightgcn": {"epochs": 15, "batch_size": 256, "lr": 0.01, "dim": 32},
}

#: Models that by design cannot beat MostPopular on the synthetic data, with the reason.
STRUCTURE_EXEMPT: dict[str, str] = {
    "random": "uniformly random scores are the floor, not a learner",
    "most_popular": "it is the reference the others are compared with",
}

#: Models whose score_users is not a fold-in of the training history: the least top-10 overlap
#: (mean over users) between the fold-in's ranking and the trained user's. Every other model's
#: fold-in equals its trained scores to 1e-3.
FOLD_IN_AGREEMENT: dict[str, float] = {
    # score_users adds the user attributes; score_history (a bare history) has none
    "twotower": 0.7,
    # id-embedding models: score_users reads the trained user vector, score_history folds the
    # history in (least squares on item vectors, scale-calibrated; NeuMF: gradient steps). Mean
    # top-10 overlap measured on the small data with FAST_CONFIGS: twotower 0.76, bpr 0.72,
    # lightgcn 0.65, neumf 0.88; a ranking unrelated to the trained one scores about 0.3.
    "bpr": 0.65,
    "lightgcn": 0.6,
    "neumf": 0.8,
}

MODEL_KEYS = sorted(MODELS)


def make_model(key: str, device: str, seed: int = 0) -> Recommender:
    cls = get_model(key)
    config = config_from_dict(cls.Config, FAST_CONFIGS.get(key, {}))
    return cls(config, device=device, seed=seed)


class _FitCache(dict):
    """Fits a model on first access (so ``-k`` selections only fit what they use)."""

    def __init__(self, data: Interactions) -> None:
        super().__init__()
        self.data = data

    def __missing__(self, key: str) -> Recommender:
        self[key] = make_model(key, "cpu").fit(self.data)
        return self[key]


@pytest.fixture(scope="module")
def fitted(small_synthetic):
    """One CPU fit per model on the small data, shared by the read-only checks."""
    return _FitCache(small_synthetic)


def _scores(model: Recommender, users: np.ndarray) -> np.ndarray:
    return model.score_users(users).detach().float().cpu().numpy()


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_scores_shape_dtype_device(key, small_synthetic, device):
    model = make_model(key, device).fit(small_synthetic)
    users = np.arange(7)
    scores = model.score_users(users)
    assert isinstance(scores, torch.Tensor)
    assert scores.shape == (7, small_synthetic.n_items)
    assert scores.dtype == torch.float32
    assert scores.device.type == torch.device(device).type
    assert torch.isfinite(scores).all()
    hist = model.score_history(small_synthetic.binary[users], small_synthetic.sequences.rows(users))
    assert hist.shape == (7, small_synthetic.n_items) and hist.dtype == torch.float32


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_recommend_excludes_seen(key, fitted, small_synthetic):
    model = fitted[key]
    users = np.arange(small_synthetic.n_users)
    items, scores = model.recommend(users, k=10)
    assert items.shape == (len(users), 10) and scores.shape == (len(users), 10)
    seen = small_synthetic.binary[users].toarray() > 0
    picked = np.take_along_axis(seen, items, axis=1)
    assert not picked[np.isfinite(scores)].any(), "a recommended item was already seen"
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "scores are not sorted best first"


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_save_load_roundtrip(key, fitted, tmp_path):
    model = fitted[key]
    users = np.arange(10)
    model.save(tmp_path / key)
    loaded = Recommender.load(tmp_path / key, device="cpu")
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    np.testing.assert_allclose(_scores(loaded, users), _scores(model, users), atol=1e-5)
    hist = model.history_[users]
    np.testing.assert_allclose(
        loaded.score_history(hist).cpu().numpy(), model.score_history(hist).cpu().numpy(), atol=1e-5
    )


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_deterministic_under_seed(key, fitted, small_synthetic):
    again = make_model(key, "cpu").fit(small_synthetic)
    users = np.arange(small_synthetic.n_users)
    np.testing.assert_allclose(_scores(again, users), _scores(fitted[key], users), atol=1e-5)


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_score_history_matches_score_users(key, fitted, small_synthetic):
    model = fitted[key]
    users = np.arange(12)
    seqs = small_synthetic.sequences.rows(users) if model.uses_sequences else None
    folded = model.score_history(model.history_[users], seqs).cpu().numpy()
    direct = _scores(model, users)
    if key not in FOLD_IN_AGREEMENT:
        scale = max(1.0, float(np.abs(direct).max()))
        np.testing.assert_allclose(folded, direct, atol=1e-3 * scale)
        return
    seen = small_synthetic.binary[users].toarray() > 0
    overlap = top_k_overlap(folded, direct, seen, k=10)
    assert overlap >= FOLD_IN_AGREEMENT[key], (key, overlap)


def top_k_overlap(a: np.ndarray, b: np.ndarray, seen: np.ndarray, k: int) -> float:
    """Mean share of the top-``k`` unseen items that rankings by ``a`` and ``b`` have in common."""
    top_a = np.argsort(-np.where(seen, -np.inf, a), axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-np.where(seen, -np.inf, b), axis=1, kind="stable")[:, :k]
    common = (top_a[:, :, None] == top_b[:, None, :]).any(axis=2).sum(axis=1)
    return float(common.mean() / k)


def test_top_k_overlap_can_fail():
    seen = np.zeros((1, 20), dtype=bool)
    scores = np.arange(20, dtype=float)[None, :]
    assert top_k_overlap(scores, scores, seen, k=5) == 1.0
    assert top_k_overlap(scores, -scores, seen, k=5) == 0.0
    assert top_k_overlap(np.zeros_like(scores), scores, seen, k=5) == 0.0  # an all-zero fold-in


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_embeddings_shapes(key, fitted, small_synthetic):
    model = fitted[key]
    items = model.item_embeddings()
    if items is not None:
        assert items.ndim == 2 and items.shape[0] == small_synthetic.n_items
        assert items.dtype == np.float32
    users = model.user_embeddings()
    if users is not None:
        assert users.ndim == 2 and users.shape[0] == small_synthetic.n_users
        assert users.dtype == np.float32


# ----- planted structure ------------------------------------------------------------------------
def random_holdout(data: Interactions, share: float = 0.2, seed: int = 0):
    """Per-interaction random holdout: (train, test truth CSR); every user keeps >= 1 item."""
    rng = np.random.default_rng(seed)
    test = rng.random(data.nnz) < share
    # keep each user's first interaction in train so no user disappears
    first = np.r_[True, data.users[1:] != data.users[:-1]]
    test &= ~first
    train = data.select(~test)
    truth = data.select(test).binary
    return train, truth


def recall_at(model: Recommender, truth: sp.csr_matrix, k: int = 10) -> float:
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    items, _ = model.recommend(users, k=k)
    hits = np.take_along_axis(truth[users].toarray() > 0, items, axis=1).sum(1)
    return float(np.mean(hits / np.minimum(np.diff(truth.indptr)[users], k)))


def last_items_holdout(data: Interactions, n_last: int = 2):
    """Each user's latest ``n_last`` interactions held out (the sequential protocol)."""
    counts = np.bincount(data.users, minlength=data.n_users)
    position = np.arange(data.nnz) - np.repeat(np.cumsum(counts) - counts, counts)
    test = position >= np.repeat(counts, counts) - n_last
    return data.select(~test), data.select(test).binary


@pytest.fixture(scope="module")
def holdouts(synthetic):
    """Per protocol: (train, truth, MostPopular's recall@10). Sequence models are judged on
    the protocol they are built for (next items by time), the others on a random holdout."""
    out = {}
    for name, split in (("random", random_holdout), ("last", last_items_holdout)):
        train, truth = split(synthetic)
        base = make_model("most_popular", "cpu").fit(train)
        out[name] = (train, truth, recall_at(base, truth))
    return out


@pytest.mark.parametrize("key", [k for k in MODEL_KEYS if k not in STRUCTURE_EXEMPT])
def test_recovers_planted_structure(key, holdouts):
    train, truth, popular = holdouts["last" if get_model(key).uses_sequences else "random"]
    model = make_model(key, "cpu").fit(train)
    recall = recall_at(model, truth)
    assert recall > popular * 1.2 + 0.02, f"{key}: recall@10 {recall:.3f} vs popular {popular:.3f}"
    if key not in CLUSTER_FOLD_EXEMPT:
        _assert_folds_in_an_added_cluster(key, model, train)


#: Models whose top 10 need not follow five added items of another cluster, with the reason.
CLUSTER_FOLD_EXEMPT: dict[str, str] = {
    # measured: 0 -> 0 cluster items over ten users; the remove/re-add check still covers it
    "twotower": "its user tower reads the segment attribute, which is the planted cluster",
}


def _assert_folds_in_an_added_cluster(key: str, model: Recommender, train: Interactions) -> None:
    """What if a user of cluster a watched five items of cluster b? Folded in through the
    model's own score_history (recsys_core.whatif), cluster b's other items move up into the
    top 10 (summed over ten users: single users may not move)."""
    # planted: an item's first category is its cluster's genre, a user's segment its cluster
    item_cluster = np.array([int(c[0].removeprefix("Genre")) for c in train.item_categories()])
    user_cluster = np.array([int(s.removeprefix("S")) for s in train.user_table["segment"]])
    n_clusters = int(item_cluster.max()) + 1
    counts = np.zeros(2, dtype=np.int64)  # cluster-b items in the top 10, before and after
    for user in range(0, train.n_users, train.n_users // 10):
        b = (user_cluster[user] + 1) % n_clusters
        add = search_items(train, f"(Genre{b})", exclude=user_history(train, user))[:5]
        result = what_if(model, train, user, add=add, k=10)
        assert result.reads_history, f"{key}: the edited history did not change any score"
        for n, frame in enumerate((result.before, result.after)):
            items = frame["item_index"].to_numpy()
            counts[n] += (item_cluster[items] == b).sum() - np.isin(items, add).sum()
    before, after = counts.tolist()
    assert after >= before + 5, f"{key}: cluster items in the top 10: {before} -> {after}"


#: Models whose scores do not depend on the history (no fold-in): what-if edits say so.
HISTORY_BLIND = {"random", "most_popular"}


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_what_if_remove_and_re_add_restores_the_top_k(key, fitted, small_synthetic):
    model, data = fitted[key], small_synthetic
    user = int(np.argmax(data.user_activity))
    latest = user_history(data, user)[-1:]
    same = what_if(model, data, user, add=latest, remove=latest, k=10)
    assert same.after["item_index"].tolist() == same.before["item_index"].tolist()
    np.testing.assert_allclose(same.after["score"], same.before["score"], rtol=1e-5, atol=1e-6)
    assert not same.changed and not len(same.entered) and not len(same.left)
    add = search_items(data, "", exclude=user_history(data, user))[:3]
    edited = what_if(model, data, user, add=add, k=10)
    assert edited.reads_history == (key not in HISTORY_BLIND)
    if key in HISTORY_BLIND:  # said plainly; the list only loses the items now in the history
        assert any("has no fold-in" in note for note in edited.notes)
        kept = edited.before[~edited.before["item_index"].isin(add)]["score"].to_numpy()
        np.testing.assert_array_equal(edited.after["score"].to_numpy()[: len(kept)], kept)


def test_exempt_and_fast_keys_are_registered():
    # a typo in these tables would silently skip a check
    assert set(STRUCTURE_EXEMPT) <= set(MODELS)
    assert set(FAST_CONFIGS) <= set(MODELS)
    assert set(FOLD_IN_AGREEMENT) <= set(MODELS)
    assert HISTORY_BLIND <= set(MODELS)
    assert set(CLUSTER_FOLD_EXEMPT) <= set(MODELS)
