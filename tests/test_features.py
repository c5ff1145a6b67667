"""Item and user side-information features (recsys_core.data.features)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recsys_core.data.features import (
    MAX_LEVELS,
    item_feature_blocks,
    user_feature_matrix,
    user_feature_table,
)
from recsys_core.data.interactions import Interactions
from recsys_core.errors import DataError


def _tiny(item_table: pd.DataFrame | None, user_table: pd.DataFrame | None = None):
    frame = pd.DataFrame({"user": ["a", "a", "b", "c"], "item": [1, 2, 2, 3]})
    return Interactions.from_frame(frame, item_table=item_table, user_table=user_table)


def test_blocks_of_synthetic(synthetic):
    blocks = item_feature_blocks(synthetic, text_dims=8)
    assert set(blocks) == {"categories", "text", "numeric"}
    for block in blocks.values():
        assert block.dtype == np.float32 and block.shape[0] == synthetic.n_items
        assert np.isfinite(block).all()
    assert blocks["text"].shape[1] <= 8
    # the planted genre is the first category: every item has it or an extra one
    cats = blocks["categories"]
    assert set(np.unique(cats)) <= {0.0, 1.0}
    assert (cats.sum(1) >= 1).all() and (cats.sum(1) <= 2).all()


def test_categories_multi_hot_exact():
    items = pd.DataFrame(
        {"categories": ["Action|Comedy", "Comedy", None]}, index=pd.Index([1, 2, 3])
    )
    cats = item_feature_blocks(_tiny(items))["categories"]
    # columns are sorted category names: Action, Comedy
    np.testing.assert_array_equal(cats, [[1, 1], [0, 1], [0, 0]])


def test_numeric_standardised_and_missing_at_mean():
    items = pd.DataFrame({"year": [1990.0, 2000.0, np.nan], "flat": [3, 3, 3]}, index=[1, 2, 3])
    num = item_feature_blocks(_tiny(items))["numeric"]
    assert num.shape == (3, 2)
    np.testing.assert_allclose(num[:2, 0], [-1.0, 1.0], atol=1e-6)
    assert num[2, 0] == 0.0  # missing -> the mean
    np.testing.assert_array_equal(num[:, 1], 0.0)  # a constant column carries nothing


def test_embedding_block_and_bad_lengths():
    items = pd.DataFrame(
        {"embedding": [np.array([1.0, 0.0]), None, np.array([0.5, 0.5])]}, index=[1, 2, 3]
    )
    emb = item_feature_blocks(_tiny(items))["embedding"]
    np.testing.assert_array_equal(emb, [[1.0, 0.0], [0.0, 0.0], [0.5, 0.5]])
    bad = pd.DataFrame({"embedding": [np.ones(2), np.ones(3), None]}, index=[1, 2, 3])
    with pytest.raises(DataError, match="different lengths"):
        item_feature_blocks(_tiny(bad))


def test_text_similar_items_are_close():
    items = pd.DataFrame(
        {
            "title": ["space war", "space war returns", "cooking show"],
            "text": ["stars galaxy", "stars galaxy empire", "kitchen recipes"],
        },
        index=[1, 2, 3],
    )
    text = item_feature_blocks(_tiny(items), text_dims=2)["text"]
    unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    sims = unit @ unit.T
    assert sims[0, 1] > sims[0, 2] + 0.5


def test_no_item_table_gives_no_blocks(synthetic):
    assert item_feature_blocks(replace(synthetic, item_table=None)) == {}
    with pytest.raises(DataError, match="text_dims"):
        item_feature_blocks(synthetic, text_dims=0)


def test_user_features(synthetic):
    matrix, names = user_feature_table(synthetic)
    assert matrix.dtype == np.float32 and matrix.shape == (synthetic.n_users, len(names))
    assert "age" in names
    segs = [i for i, n in enumerate(names) if n.startswith("segment=")]
    assert len(segs) == 5
    np.testing.assert_array_equal(matrix[:, segs].sum(1), 1.0)  # one-hot
    seg_of_user = synthetic.user_table["segment"].to_numpy()
    picked = np.array(names, dtype=object)[np.array(segs)][matrix[:, segs].argmax(1)]
    np.testing.assert_array_equal(picked, "segment=" + seg_of_user.astype(object))
    age = matrix[:, names.index("age")]
    assert abs(age.mean()) < 1e-5 and abs(age.std() - 1) < 1e-4
    np.testing.assert_array_equal(user_feature_matrix(synthetic), matrix)


def test_user_features_cap_levels_and_empty():
    n = MAX_LEVELS + 10
    frame = pd.DataFrame({"user": np.arange(n), "item": np.zeros(n, dtype=int)})
    users = pd.DataFrame({"zip": [f"z{i}" for i in range(n)]}, index=np.arange(n))
    data = Interactions.from_frame(frame, user_table=users)
    matrix, names = user_feature_table(data)
    assert matrix.shape == (n, MAX_LEVELS + 1) and names[-1] == "zip=other"
    np.testing.assert_array_equal(matrix.sum(1), 1.0)
    assert user_feature_matrix(replace(data, user_table=None)).shape == (n, 0)
