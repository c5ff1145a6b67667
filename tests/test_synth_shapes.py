"""The large synthetic shapes (tall, wide) hold their statistics when scaled down."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys_core.cli.main import main
from recsys_core.data.synth_shapes import (
    SHAPES,
    ensure_shape,
    generate_chunks,
    shape_config,
    user_clusters,
)
from recsys_core.errors import ConfigError


def _gini(counts: np.ndarray) -> float:
    s = np.sort(counts.astype(float))
    n = len(s)
    return float(1 - 2 * np.sum(np.cumsum(s) / s.sum()) / n + 1 / n)


@pytest.fixture(scope="module")
def tall_small():
    cfg = shape_config("tall", 0.01, chunk_users=500)  # 1,380 users, 2,700 items, 200k rows
    return cfg, pd.concat(list(generate_chunks(cfg)), ignore_index=True)


def test_tall_scaled_keeps_size_and_tails(tall_small):
    cfg, frame = tall_small
    assert len(frame) == cfg.n_interactions
    assert not frame.duplicated(["userId", "movieId"]).any()
    per_user = frame.groupby("userId").size()
    assert len(per_user) == cfg.n_users and per_user.min() >= cfg.min_per_user
    assert per_user.max() > 5 * per_user.median()  # heavy-tailed activity
    assert per_user.mean() == pytest.approx(145, rel=0.01)  # MovieLens-20M's mean
    per_item = frame.groupby("movieId").size()
    assert _gini(per_item.to_numpy()) > 0.4  # popularity concentrated in a head
    # time order within each user, and ratings on MovieLens's half-star scale
    assert (frame.groupby("userId")["timestamp"].diff().dropna() > 0).all()
    assert set(frame["rating"].unique()) <= {x / 2 for x in range(1, 11)}


def test_chunks_bound_memory_by_users(tall_small):
    cfg, _ = tall_small
    chunks = list(generate_chunks(cfg))
    assert len(chunks) == -(-cfg.n_users // cfg.chunk_users)
    for n, chunk in enumerate(chunks):
        users = chunk["userId"].to_numpy() - 1
        assert users.min() >= n * cfg.chunk_users and users.max() < (n + 1) * cfg.chunk_users


def test_planted_clusters_are_there(tall_small):
    cfg, frame = tall_small
    user_c = user_clusters(cfg)[frame["userId"].to_numpy() - 1]
    item_c = (frame["movieId"].to_numpy() - 1) % cfg.n_clusters
    own = pd.Series(user_c == item_c).groupby(frame["userId"].to_numpy()).mean()
    # far above the 1 / n_clusters of no structure (heavy users overflow their cluster)
    assert own.median() > 0.5 * cfg.in_cluster
    liked = frame["rating"].to_numpy() >= 4
    assert np.mean(liked[user_c == item_c]) > 0.9 and np.mean(liked[user_c != item_c]) < 0.1


def test_clusters_are_learnable(tall_small):
    """Co-occurrence recovers the planted clusters: items of one cluster are far more similar
    (cosine of their user columns) to each other than to items of other clusters."""
    import scipy.sparse as sp

    cfg, frame = tall_small
    x = sp.csr_matrix(
        (np.ones(len(frame)), (frame["userId"] - 1, frame["movieId"] - 1)),
        shape=(cfg.n_users, cfg.n_items),
    )
    norms = np.sqrt(np.asarray(x.sum(axis=0))).ravel() + 1e-9
    cos = (x.T @ x).toarray() / norms[:, None] / norms[None, :]
    np.fill_diagonal(cos, np.nan)
    cluster = np.arange(cfg.n_items) % cfg.n_clusters
    same = cluster[:, None] == cluster[None, :]
    assert np.nanmean(cos[same]) > 2 * np.nanmean(cos[~same])


def test_wide_scaled_most_items_rare():
    cfg = shape_config("wide", 0.005)
    frame = pd.concat(list(generate_chunks(cfg)), ignore_index=True)
    assert len(frame) == cfg.n_interactions
    assert not frame.duplicated(["userId", "movieId"]).any()
    per_item = np.bincount(frame["movieId"].to_numpy() - 1, minlength=cfg.n_items)
    assert np.mean(per_item < 5) > 0.6  # most items rare
    per_user = frame.groupby("userId").size()
    assert per_user.max() > 10 * per_user.median()


def test_full_shapes_are_the_reference_sizes():
    assert (SHAPES["tall"].n_interactions, SHAPES["tall"].n_users, SHAPES["tall"].n_items) == (
        20_000_000,
        138_000,
        27_000,
    )
    assert (SHAPES["wide"].n_interactions, SHAPES["wide"].n_users, SHAPES["wide"].n_items) == (
        5_000_000,
        200_000,
        300_000,
    )


def test_impossible_sizes_are_refused():
    with pytest.raises(ConfigError, match="min_per_user"):
        shape_config("tall", n_users=1000, n_interactions=100)
    with pytest.raises(ConfigError, match="max_user_share"):
        shape_config("tall", n_users=10, n_items=100, n_interactions=900)
    with pytest.raises(ConfigError, match="unknown shape"):
        shape_config("round")


def test_files_cached_and_parquet_equal_to_csv(tmp_path):
    cfg = shape_config("wide", 0.001)
    first = ensure_shape(cfg, tmp_path / "w", parquet=True)
    assert not first["cached"]
    again = ensure_shape(cfg, tmp_path / "w", parquet=True)
    assert again["cached"] and again["rows"] == first["rows"]
    csv = pd.read_csv(first["files"]["interactions.csv"])
    parquet = pd.read_parquet(first["files"]["interactions.parquet"])
    pd.testing.assert_frame_equal(csv, parquet, check_dtype=False)
    items = pd.read_csv(first["files"]["items.csv"])
    assert list(items.columns) == ["movieId", "title", "genres"] and len(items) == cfg.n_items
    other = ensure_shape(shape_config("wide", 0.001, seed=1), tmp_path / "w")
    assert not other["cached"]  # another config is regenerated, not reused


def test_cli_synth_shape_writes_and_imports(workspace, tmp_path, capsys):
    out = tmp_path / "tall"
    code = main(
        ["synth", "--shape", "tall", "--scale", "0.001", "--out", str(out), "--import", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 20_000 and (out / "interactions.csv").exists()
    assert result["dataset"]["n_interactions"] == 20_000
