"""Cold-item evaluation (recsys_core.cold_items): the split holds items out whole, the metrics
match a hand computation, and side features beat ids on items unseen in training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core.cold_items import cold_item_metrics, cold_item_split
from recsys_core.data.interactions import Interactions
from recsys_core.models import get_model
from recsys_core.models.content import ContentBased


class _Fixed:
    """A stand-in model whose scores are a fixed row for every user."""

    uses_sequences = False

    def __init__(self, row):
        self.row = torch.as_tensor(row, dtype=torch.float32)

    def score_history(self, history, sequences=None):
        return self.row.repeat(history.shape[0], 1)


def test_metrics_match_a_hand_computation():
    frame = pd.DataFrame(
        {"user": ["a", "a", "b", "b", "b"], "item": ["x", "y", "x", "z", "w"], "value": 1.0}
    )
    data = Interactions.from_frame(frame)  # items sorted: w x y z
    train = data.select(np.isin(data.items, [1]))  # x seen
    test = data.select(~np.isin(data.items, [1]))
    cold = np.array([0, 2, 3])  # w, y, z
    # ranking of cold items for everyone: z, w, y
    out = cold_item_metrics(_Fixed([2.0, 9.0, 1.0, 3.0]), train, test, cold, k=2)
    # a: truth {y} -> no hit in top 2; b: truth {w, z} -> both hit, ideal
    assert out["cold_users"] == 2 and out["cold_items"] == 3
    assert out["cold_hit@2"] == pytest.approx(0.5)
    assert out["cold_recall@2"] == pytest.approx(0.5)
    assert out["cold_ndcg@2"] == pytest.approx(0.5)


def test_side_features_rank_unseen_items_where_ids_cannot(synthetic):
    train, test, cold = cold_item_split(synthetic, 0.2, seed=1)
    assert train.item_popularity[cold].sum() == 0
    assert test.nnz == np.isin(synthetic.items, cold).sum()
    content = cold_item_metrics(ContentBased(device="cpu").fit(train), train, test, cold)
    popular_model = get_model("most_popular")(device="cpu").fit(train)
    popular = cold_item_metrics(popular_model, train, test, cold)
    assert content["cold_ndcg@10"] > popular["cold_ndcg@10"] + 0.1, (content, popular)
