"""One truncation rule for every path that scores a sequence (issue 19, item 1).

A user whose history is longer than a sequence model's window must get the same top-k from
``recommend(user)``, from ``recommend_history`` / ``score_history`` with the full history, and
from the explanation engine (the Explain page's top-10 and the explained rank). Parametrised
over every model of the registry that reads sequences, so a new sequence model is covered, and
one without a fast recipe here fails instead of being skipped.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_core.config import config_from_dict
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.explain import explain, top_k, user_history
from recsys_core.models import MODELS, get_model
from recsys_core.models.base import Recommender, history_window
from recsys_core.models.fusion import Fusion, FusionConfig
from recsys_core.models.sequential import SequenceModel

WINDOW = 6
FAST = {"epochs": 2, "batch_size": 64, "max_len": WINDOW, "hidden": 16}
# shap's exact explainer compiles with numba on first use (~30 s); permutation does not
CHEAP = {"method": "permutation", "nsamples": 60, "n_random": 0}


def _reads_sequences(key: str) -> bool:
    # instance attribute: a fusion reads sequences when one of its components does
    return bool(get_model(key)(device="cpu").uses_sequences)


SEQUENCE_MODELS = [key for key in sorted(MODELS) if _reads_sequences(key)]


def test_the_registry_has_sequence_models():
    assert {"sasrec", "gru4rec", "multiinterest", "fusion"} <= set(SEQUENCE_MODELS)


def _fast(key: str, data: Interactions) -> Recommender:
    cls = get_model(key)
    if issubclass(cls, SequenceModel):
        return cls(config_from_dict(cls.Config, FAST), device="cpu").fit(data)
    if cls is Fusion:
        # A fusion fits its components with their default configs (hundreds of epochs); compose
        # one from fast fitted components instead, as Fusion._load_state does from a save.
        fusion = Fusion(FusionConfig(components=("sasrec", "itemknn")), device="cpu")
        fusion.n_users_, fusion.n_items_ = data.n_users, data.n_items
        fusion.history_ = data.binary.tocsr()
        fusion.sequences_ = data.sequences
        fusion.components_ = [_fast("sasrec", data), get_model("itemknn")(device="cpu").fit(data)]
        fusion.weights_ = np.array([0.6, 0.4], dtype=np.float32)
        fusion.active_ = np.array([True, True])
        fusion.skipped_ = []
        return fusion
    pytest.fail(f"no fast recipe for sequence model {key!r}: add one to _fast")


@pytest.fixture(scope="module")
def long_user(synthetic) -> int:
    lengths = synthetic.sequences.lengths
    user = int(np.flatnonzero(lengths >= 2 * WINDOW)[0])
    seq = synthetic.sequences.rows(np.array([user])).items
    # the bug this guards against showed only when time order differs from index order
    assert not np.array_equal(seq, np.sort(seq))
    return user


@pytest.mark.parametrize("key", SEQUENCE_MODELS)
def test_long_history_ranks_the_same_on_every_path(key, synthetic, long_user):
    model = _fast(key, synthetic)
    user, k = long_user, 10
    rec_items, rec_scores = model.recommend(np.array([user]), k=k)

    seqs = synthetic.sequences.rows(np.array([user]))
    hist_items, hist_scores = model.recommend_history(synthetic.binary[[user]], seqs, k=k)
    np.testing.assert_array_equal(hist_items, rec_items)
    np.testing.assert_allclose(hist_scores, rec_scores, rtol=1e-5, atol=1e-5)

    # the Explain page's top-10
    page = top_k(model, synthetic, user, k=k)
    np.testing.assert_array_equal(page["item_index"].to_numpy(), rec_items[0])
    np.testing.assert_allclose(page["score"].to_numpy(), rec_scores[0], rtol=1e-5, atol=1e-5)

    # the explanation of the #1 and #4 items says the same score and rank
    for rank in (1, 4):
        item = int(rec_items[0, rank - 1])
        exp = explain(model, synthetic, user, item, max_features=10, **CHEAP)
        assert exp.rank == rank
        assert exp.score == pytest.approx(float(rec_scores[0, rank - 1]), rel=1e-5, abs=1e-5)
        assert exp.efficient


@pytest.mark.parametrize("key", [k for k in SEQUENCE_MODELS if k != "fusion"])
def test_sequence_models_read_the_latest_window_only(key, synthetic, long_user):
    model = _fast(key, synthetic)
    assert history_window(model) == WINDOW
    seqs = synthetic.sequences.rows(np.array([long_user]))
    full = model.score_history(seqs.to_csr(model.n_items_), seqs)
    latest = seqs.latest(WINDOW)
    assert latest.items.tolist() == seqs.items[-WINDOW:].tolist()
    cut = model.score_history(latest.to_csr(model.n_items_), latest)
    torch.testing.assert_close(full, cut)
    # the explanation's players are the items the model reads
    item = int(model.recommend(np.array([long_user]), k=1)[0][0, 0])
    exp = explain(model, synthetic, long_user, item, max_features=WINDOW, **CHEAP)
    assert [f.items[0] for f in exp.features] == seqs.items[-WINDOW:].tolist()
    assert any(f"latest {WINDOW}" in note for note in exp.notes)
    if hasattr(model, "attention_weights"):
        assert model.attention_weights(seqs).shape == (1, WINDOW)


def test_to_csr_leaves_the_time_order_alone():
    seqs = Sequences.from_lists([[5, 3, 9, 1], [2, 0]])
    before = seqs.items.copy()
    seqs.to_csr(10)
    np.testing.assert_array_equal(seqs.items, before)


def test_latest_and_padded_cut_the_same_way():
    seqs = Sequences.from_lists([[5, 3, 9, 1], [], [2], [7, 8, 4]])
    latest = seqs.latest(3)
    ends = zip(latest.indptr, latest.indptr[1:], strict=False)
    rows = [latest.items[a:b].tolist() for a, b in ends]
    assert rows == [[3, 9, 1], [], [2], [7, 8, 4]]
    np.testing.assert_array_equal(
        seqs.padded(3, -1), [[3, 9, 1], [-1, -1, -1], [-1, -1, 2], [7, 8, 4]]
    )


@pytest.mark.parametrize("key", [k for k in SEQUENCE_MODELS if k != "fusion"])
def test_recommend_history_needs_the_time_order(key, small_synthetic):
    from recsys_core.errors import ConfigError

    cls = get_model(key)
    model = cls(config_from_dict(cls.Config, {**FAST, "epochs": 1}), device="cpu")
    model.fit(small_synthetic)
    with pytest.raises(ConfigError, match="sequences"):
        model.recommend_history(small_synthetic.binary[[0]])
    assert len(user_history(small_synthetic, 0))
