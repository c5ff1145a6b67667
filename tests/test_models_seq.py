"""Sequence models (SASRec, GRU4Rec): time order matters, windows are right, losses behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_core.balance import BalanceConfig
from recsys_core.config import config_from_dict
from recsys_core.data.interactions import Sequences
from recsys_core.errors import ConfigError
from recsys_core.models import get_model
from recsys_core.training.sequences import WindowBatches, windows

SEQ_MODELS = ("sasrec", "gru4rec")
FAST = {"epochs": 6, "batch_size": 32, "max_len": 20}


def _fit(key, data, **overrides):
    cls = get_model(key)
    return cls(config_from_dict(cls.Config, {**FAST, **overrides}), device="cpu").fit(data)


@pytest.fixture(scope="module")
def fitted(synthetic):
    models = {key: _fit(key, synthetic) for key in SEQ_MODELS}
    models["itemknn"] = get_model("itemknn")(device="cpu").fit(synthetic)
    return models


def _shuffled(seqs: Sequences, seed: int = 0) -> Sequences:
    """Same items per row, order permuted within each row (vectorised)."""
    rng = np.random.default_rng(seed)
    row = np.repeat(np.arange(seqs.n_rows), seqs.lengths)
    order = np.lexsort((rng.random(len(seqs.items)), row))
    return Sequences(seqs.indptr, seqs.items[order])


@pytest.mark.parametrize("key", SEQ_MODELS)
def test_time_order_changes_sequence_model_scores(key, fitted, synthetic):
    users = np.arange(20)
    seqs = synthetic.sequences.rows(users)
    hist = synthetic.binary[users]
    model = fitted[key]
    ordered = model.score_history(hist, seqs).numpy()
    shuffled = model.score_history(hist, _shuffled(seqs)).numpy()
    assert not np.allclose(ordered, shuffled, atol=1e-4)


def test_time_order_does_not_change_itemknn(fitted, synthetic):
    users = np.arange(20)
    seqs = synthetic.sequences.rows(users)
    hist = synthetic.binary[users]
    model = fitted["itemknn"]
    np.testing.assert_allclose(
        model.score_history(hist, seqs).numpy(),
        model.score_history(hist, _shuffled(seqs)).numpy(),
        atol=1e-6,
    )


def test_windows_are_consecutive_and_right_aligned():
    seqs = Sequences.from_lists([[1, 2, 3, 4, 5], [7, 8]])
    ends = np.array([4, 7])  # absolute exclusive ends: row 0 up to item 4, row 1 up to 8
    out = windows(seqs, ends, 4, pad=-1)
    np.testing.assert_array_equal(out, [[1, 2, 3, 4], [-1, -1, 7, 8]])


def test_window_batches_cover_users_with_two_items():
    seqs = Sequences.from_lists([[1, 2, 3], [4], [5, 6], []])
    batches = WindowBatches(
        seqs, max_len=3, batch_size=8, pad=9, device=torch.device("cpu"), seed=0
    )
    (batch,) = list(batches.epoch())
    inputs, targets = batch.inputs, batch.targets
    assert inputs.shape == (2, 3) and targets.shape == (2, 3)
    # targets are the inputs shifted by one: the next item at every position
    np.testing.assert_array_equal(inputs[:, 1:].numpy(), targets[:, :-1].numpy())
    assert set(targets[:, -1].tolist()) <= {2, 3, 6}
    assert batch.taste is None


def test_taste_items_come_from_the_users_own_history():
    seqs = Sequences.from_lists([[1, 2, 3], [4, 5]])
    batches = WindowBatches(
        seqs, max_len=2, batch_size=8, pad=9, device=torch.device("cpu"), seed=0, taste_items=50
    )
    (batch,) = list(batches.epoch())
    for row in range(2):
        history = {1, 2, 3} if batch.targets[row, -1].item() in (2, 3) else {4, 5}
        assert set(batch.taste[row].tolist()) <= history


def test_sasrec_attention_weights_are_a_distribution(fitted, synthetic):
    seqs = synthetic.sequences.rows(np.arange(5))
    weights = fitted["sasrec"].attention_weights(seqs)
    assert weights.shape == (5, fitted["sasrec"].config.max_len)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)
    assert (weights >= 0).all()


@pytest.mark.parametrize(("key", "loss"), [("sasrec", "sampled"), ("gru4rec", "bpr_max")])
def test_sampled_losses_train_and_honour_popularity_negatives(key, loss, small_synthetic):
    balance = BalanceConfig(neg_sampler="popularity", neg_alpha=0.75)
    cls = get_model(key)
    model = cls(
        config_from_dict(cls.Config, {**FAST, "epochs": 2, "loss": loss, "n_sampled": 16}),
        device="cpu",
        balance=balance,
    ).fit(small_synthetic)
    assert np.isfinite(model.curves_["loss"]).all()


@pytest.mark.parametrize("key", SEQ_MODELS)
def test_negative_options_rejected_with_full_softmax(key, small_synthetic):
    cls = get_model(key)
    model = cls(
        config_from_dict(cls.Config, FAST), device="cpu", balance=BalanceConfig(n_negatives=5)
    )
    with pytest.raises(ConfigError, match=key):
        model.fit(small_synthetic)


def test_sasrec_heads_must_divide_hidden():
    with pytest.raises(ConfigError, match="n_heads"):
        get_model("sasrec").Config(hidden=64, n_heads=3)
