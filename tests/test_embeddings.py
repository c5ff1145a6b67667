"""Embedding maps: faithfulness on planted clusters, sampling, caching, alignment, bad inputs."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from recsys_core import embeddings as emb
from recsys_core.errors import Cancelled, ConfigError, DataError, NotFoundError


def blobs(n: int = 400, d: int = 32, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` well-separated Gaussian blobs in ``d`` dimensions with some local structure.

    Points sit on a 3-D latent inside each blob (plus small noise), so a point's nearest
    neighbours are well defined and a faithful map can keep them.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    centres = rng.normal(size=(k, d)) * 8.0
    basis = rng.normal(size=(k, 3, d))
    latent = rng.normal(size=(n, 3))
    x = (
        centres[labels]
        + np.einsum("nl,nld->nd", latent, basis[labels])
        + 0.05 * rng.normal(size=(n, d))
    )
    return x.astype(np.float32), labels


def _label_purity(coords: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each point's k nearest map neighbours that share its planted label."""
    idx, _ = emb.knn(coords, coords, k, metric="euclidean", exclude_self=True)
    return float((labels[idx] == labels[:, None]).mean())


@pytest.fixture(scope="module")
def planted_map():
    """One UMAP of 400 planted points (the first UMAP call in a process compiles, ~20 s)."""
    x, labels = blobs()
    return x, labels, emb.project(x, metric="euclidean", seed=0)


# ----- engine on plain arrays -------------------------------------------------------------------
def test_planted_clusters_are_preserved(planted_map):
    x, labels, result = planted_map
    assert result.coords.shape == (400, 2) and result.coords.dtype == np.float32
    assert np.isfinite(result.coords).all()
    assert result.random_baseline == pytest.approx(10 / 399)
    # Neighbours survive far above what a random layout keeps, and clusters stay apart.
    assert result.knn_preservation > 8 * result.random_baseline
    assert result.trustworthiness > 0.9
    assert _label_purity(result.coords, labels) > 0.95
    assert not result.sampled and result.n_fit == 400 and result.n_transformed == 0
    assert "all 400 points" in result.sampling_note


def test_random_layout_scores_near_baseline(planted_map):
    x, _, result = planted_map
    rng = np.random.default_rng(1)
    shuffled = emb.knn_preservation(x, rng.normal(size=(400, 2)), metric="euclidean")
    assert shuffled < 3 * result.random_baseline < result.knn_preservation


def test_sampling_beyond_max_fit_is_reported_and_transform_is_faithful():
    x, labels = blobs(n=600, seed=3)
    steps = []
    result = emb.project(
        x, metric="cosine", max_fit=300, seed=2, progress=lambda s, m: steps.append(m["fraction"])
    )
    assert result.sampled and result.n_fit == 300 and result.n_transformed == 300
    assert len(np.unique(result.fit_index)) == 300
    assert any("sample of 300 of 600" in note for note in result.notes)
    assert "300" in result.sampling_note and "transform" in result.sampling_note
    # Transformed points land inside their own planted cluster.
    rest = np.setdiff1d(np.arange(600), result.fit_index)
    idx, _ = emb.knn(result.coords[rest], result.coords[result.fit_index], 10)
    assert (labels[result.fit_index][idx] == labels[rest][:, None]).mean() > 0.95
    assert result.knn_preservation > 5 * result.random_baseline
    assert steps == sorted(steps) and steps[-1] == 1.0
    summary = result.summary()
    assert summary["sampled"] is True and summary["n_transformed"] == 300
    json.dumps(summary)  # JSON-ready


def test_same_seed_same_map():
    x, _ = blobs(n=120, seed=5)
    a = emb.project(x, seed=4, n_epochs=50)
    b = emb.project(x, seed=4, n_epochs=50)
    np.testing.assert_array_equal(a.coords, b.coords)


def test_bad_inputs_give_clear_messages():
    x, _ = blobs(n=50)
    bad = x.copy()
    bad[[3, 7, 9]] = np.nan
    bad[11, 0] = np.inf
    ids = [f"item{i}" for i in range(50)]
    with pytest.raises(DataError, match=r"4 of 50 embedding rows contain NaN") as info:
        emb.project(bad, ids=ids)
    assert "item3, item7, item9, item11" in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(DataError, match="at least 5 points; got 3"):
        emb.project(x[:3])
    with pytest.raises(DataError, match="2-D array"):
        emb.project(x[0])
    zero = x.copy()
    zero[2] = 0.0
    with pytest.raises(DataError, match="1 of 50 embedding rows are all zeros"):
        emb.project(zero, metric="cosine")
    with pytest.raises(ConfigError, match="metric"):
        emb.project(x, metric="manhattan")
    with pytest.raises(ConfigError, match="n_neighbors"):
        emb.MapOptions(n_neighbors=1)


def test_tiny_input_lowers_neighbours_and_maps():
    x, _ = blobs(n=8, k=2)
    result = emb.project(x, n_neighbors=15, n_epochs=20)
    assert result.coords.shape == (8, 2) and np.isfinite(result.coords).all()
    assert any("n_neighbors lowered from 15 to 7" in note for note in result.notes)


def test_exact_knn_matches_brute_force():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(40, 16)).astype(np.float32)
    idx, dist = emb.knn(queries, base, 7, metric="euclidean", block_bytes=4 * 300 * 9)
    full = np.linalg.norm(queries[:, None, :] - base[None, :, :], axis=2)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1)[:, :7])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :7], rtol=1e-4, atol=1e-4)
    self_idx, _ = emb.knn(base, base, 5, exclude_self=True)
    assert not (self_idx == np.arange(300)[:, None]).any()


def test_procrustes_recovers_a_rotated_scaled_reflected_copy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 2)).astype(np.float32)
    ids_a = np.array([f"i{i}" for i in range(200)], dtype=object)
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    reflect = np.array([[1.0, 0.0], [0.0, -1.0]])
    # Map b: a shuffled subset plus 20 points a lacks, rotated, reflected, scaled and moved.
    order = rng.permutation(200)[:150]
    extra = rng.normal(size=(20, 2))
    b_true = np.vstack([a[order], extra])
    b = (b_true @ rot @ reflect) * 3.5 + np.array([10.0, -4.0])
    ids_b = np.concatenate([ids_a[order], [f"new{i}" for i in range(20)]])
    aligned = emb.align(a, ids_a, b, ids_b)
    np.testing.assert_allclose(aligned, b_true, atol=1e-4)
    with pytest.raises(DataError, match="share 2 ids"):
        emb.align(a, ids_a, b[:2], ids_a[:2])


def test_colourings_and_neighbours(planted_map):
    x, labels, _ = planted_map
    clusters = emb.kmeans_clusters(x, k=5, metric="euclidean", seed=0)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(labels, clusters) > 0.95
    idx, sim = emb.nearest_neighbors(x, 0, k=10, metric="cosine")
    assert 0 not in idx and len(idx) == 10 and (np.diff(sim) <= 1e-6).all()
    assert (labels[idx] == labels[0]).all()
    with pytest.raises(NotFoundError, match="outside"):
        emb.nearest_neighbors(x, 400)
    pop = np.array([100, 50, 30, 10, 5, 3, 1, 1])
    assert list(emb.popularity_bucket(pop)) == ["head", "mid", "mid", "tail"] + ["tail"] * 4
    per_user = pd.DataFrame({"hit@10": [1.0, 0.0]}, index=[2, 0])
    assert list(emb.hit_labels(per_user, 4)) == ["miss", "not tested", "hit", "not tested"]
    with pytest.raises(DataError, match="hit@5"):
        emb.hit_labels(per_user, 4, k=5)


def test_similarity_vectors_keep_neighbourhoods():
    # Two blocks of items that co-occur only within their block.
    block = np.kron(np.eye(2), np.ones((10, 10))).astype(np.float32)
    vecs = emb.similarity_vectors(block, dim=8)
    assert vecs.shape == (20, 8)
    idx, _ = emb.nearest_neighbors(vecs, 0, k=5)
    assert (idx < 10).all()


def test_place_puts_a_copy_of_a_fitted_point_next_to_it(planted_map):
    x, _, result = planted_map
    placed = emb.place(x[[5]], x, result.coords, metric="euclidean", n_neighbors=15)
    spread = np.linalg.norm(result.coords.max(axis=0) - result.coords.min(axis=0))
    assert np.linalg.norm(placed[0] - result.coords[5]) < 0.1 * spread


# ----- runs: cache, sources, task, CLI -----------------------------------------------------------
def make_run(ws, model: str, config: dict | None = None, dataset: str | None = None) -> str:
    """A finished run of ``model`` on a small synthetic dataset, executed in-process."""
    from recsys_core.data.store import import_frames, list_datasets
    from recsys_core.data.synthetic import SyntheticConfig, make_frames
    from recsys_core.jobs import api, store
    from recsys_core.jobs.runner import execute_run
    from recsys_core.jobs.spec import DONE, RUNNING

    if dataset is None:
        existing = [d for d in list_datasets(ws) if d.name == "synth"]
        if existing:
            dataset = existing[0].id
        else:
            inter, items, users = make_frames(
                SyntheticConfig(n_users=120, n_items=80, mean_history=12)
            )
            info = import_frames(
                ws, inter, name="synth", source="synthetic", items=items, users=users
            )
            dataset = info.id
    spec = {
        "dataset": dataset,
        "model": model,
        "split": {"protocol": "leave_last"},
        "config": config or {},
        "device": "cpu",
    }
    run_id = api.submit(ws, spec)
    store.update_run(ws, run_id, status=RUNNING, started_at=time.time())
    execute_run(ws, run_id, lambda step, metrics: None, lambda: False)
    store.update_run(ws, run_id, status=DONE, finished_at=time.time(), progress=1.0)
    return run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An iALS run (embeddings) and an ItemKNN run (similarity) shared by the module's tests;
    each test uses its own map options, so every cache entry starts empty."""
    from recsys_core.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("maps") / "ws").ensure()
    ials = make_run(ws, "ials", {"factors": 16, "iterations": 4})
    knn = make_run(ws, "itemknn")
    return ws, ials, knn


def test_run_map_is_cached_and_second_call_does_no_umap_work(runs, monkeypatch):
    ws, ials, _ = runs
    calls = []
    real = emb._fit_umap

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(emb, "_fit_umap", counting)
    options = {"n_neighbors": 10, "n_epochs": 100}
    first = emb.run_map(ws, ials, "items", options)
    assert len(calls) == 1 and not first.cached
    assert first.source == emb.SOURCE_ITEMS and first.coords.shape == (80, 2)
    npz, meta = emb.cache_paths(ws, ials, "items", emb.MapOptions(**options))
    assert npz.exists() and meta.exists() and npz.parent.name == "umap"
    second = emb.run_map(ws, ials, "items", emb.MapOptions(**options))
    assert len(calls) == 1 and second.cached
    np.testing.assert_array_equal(first.coords, second.coords)
    np.testing.assert_array_equal(first.fit_index, second.fit_index)
    assert second.knn_preservation == pytest.approx(first.knn_preservation)
    # Other options are another cache entry; users are mapped from user embeddings.
    users = emb.run_map(ws, ials, "users", options)
    assert len(calls) == 2 and users.source == emb.SOURCE_USERS and users.n_points == 120


def test_similarity_map_users_overlay_and_task(runs):
    from recsys_core.jobs.artifacts import RunArtifacts

    ws, ials, knn = runs
    fractions: list[float] = []
    summary = emb.umap_task(
        ws,
        {"run_id": knn, "what": "items", "options": {"n_epochs": 60}},
        lambda fraction, message="": fractions.append(fraction),
    )
    assert summary["source"] == emb.SOURCE_SIMILARITY and fractions[-1] == 1.0
    result = emb.run_map(ws, knn, "items", {"n_epochs": 60})
    assert result.cached and result.source == "from item-item similarity"
    art = RunArtifacts(ws, knn)
    data, split, recs = art.dataset(), art.split(), art.recs()
    table = emb.point_table(data, result, "items", clusters=np.zeros(result.n_points, int))
    assert {"genre", "popularity bucket", "cluster"} <= set(emb.colour_options(table))
    assert {"id", "title", "popularity", "categories"} <= set(table.columns)
    user = int(split.test_users[0])
    overlay = emb.user_overlay(split, recs, user, data, result)
    assert set(overlay["kind"]) == {"history", "recommended", "test"}
    assert (overlay.loc[overlay["kind"] == "recommended", "rank"] >= 1).all()
    assert len(overlay[overlay["kind"] == "recommended"]) == 10
    # users of a similarity model: the mean of their items' similarity vectors
    vectors, source = emb.source_vectors(ws, knn, "users")
    assert source == emb.SOURCE_USER_SIMILARITY and vectors.shape[0] == data.n_users
    with pytest.raises(ConfigError, match="run_id"):
        emb.umap_task(ws, {"what": "items"}, lambda f, m="": None)

    def cancel(fraction, message=""):
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        emb.umap_task(ws, {"run_id": knn, "options": {"seed": 9}}, cancel)


def test_run_without_embeddings_says_so(workspace):
    run_id = make_run(workspace, "most_popular")
    with pytest.raises(DataError, match="has no embeddings to map") as info:
        emb.run_map(workspace, run_id, "items")
    assert "most_popular" in str(info.value) and "ials" in str(info.value)
    with pytest.raises(NotFoundError):
        emb.run_map(workspace, "r-missing", "items")
    with pytest.raises(ConfigError, match="what"):
        emb.source_vectors(workspace, run_id, "genres")


def test_interest_points_land_near_their_items(planted_map):
    x, _, result = planted_map

    class MultiInterest:
        def user_interests(self, users: np.ndarray) -> np.ndarray:
            return x[[[10, 200]]]  # [1, 2, d]: two interests equal to items 10 and 200

    points = emb.interest_points(MultiInterest(), 0, x, result)
    spread = np.linalg.norm(result.coords.max(axis=0) - result.coords.min(axis=0))
    assert points.shape == (2, 2)
    assert np.linalg.norm(points - result.coords[[10, 200]], axis=1).max() < 0.1 * spread
    assert emb.interest_points(object(), 0, x, result) is None


def test_cli_writes_coordinates_and_prints_faithfulness(runs, tmp_path, capsys):
    from recsys_core.cli.main import main

    ws, ials, _ = runs
    out = tmp_path / "coords.csv"
    argv = ["--workspace", str(ws.root), "embed", ials, "--what", "items", "--neighbors", "10"]
    code = main(argv + ["--min-dist", "0.2", "--out", str(out), "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert (
        payload["faithfulness"]["knn_preservation@10"]
        > payload["faithfulness"]["random_baseline@10"]
    )
    assert payload["seconds"] >= 0 and payload["out"] == str(out)
    frame = pd.read_csv(out)
    assert list(frame.columns[:4]) == ["id", "title", "x", "y"] and len(frame) == 80
    # Plain text output, from the cache this time.
    assert main(argv + ["--min-dist", "0.2"]) == 0
    text = capsys.readouterr().out
    assert "k-NN preservation@10" in text and "cached" in text
    assert main(["--workspace", str(ws.root), "embed", "r-nope"]) == 2
    assert "r-nope" in capsys.readouterr().err


def test_bench_command_reports_seconds_and_faithfulness(capsys):
    from recsys_core.cli.main import main

    assert main(["embed-bench", "--n", "300", "--dim", "8", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["n_points"] == 300 and figures["dim"] == 8
    assert figures["cpu_seconds"] > 0 and figures["seconds"] > 0
    faith = figures["faithfulness"]
    assert faith["knn_preservation@10"] > 5 * faith["random_baseline@10"]


# ----- side-by-side clusters and focus labels (issue 19, item 13) -------------------------------
def test_match_clusters_renames_the_right_map_after_the_left():
    from recsys_core.embeddings import match_clusters

    rng = np.random.default_rng(0)
    ids = np.arange(120).astype(str)
    group = rng.integers(0, 4, 120)
    left = np.char.add("cluster ", group.astype(str))
    # the right run finds the same groups under other numbers, in another point order, and
    # has 20 points of its own
    perm = np.array([2, 0, 3, 1])
    right_ids = np.concatenate([ids[::-1], np.arange(200, 220).astype(str)])
    numbers = np.concatenate([perm[group][::-1], np.zeros(20, int)])
    right = np.char.add("cluster ", numbers.astype(str))
    renamed, agreement = match_clusters(ids, left, right_ids, right)
    assert agreement == 1.0
    np.testing.assert_array_equal(renamed[:120][::-1], left)
    # a fifth right cluster has no left partner: it gets a name no left cluster has
    extra = right.copy()
    extra[:10] = "cluster 9"
    renamed, agreement = match_clusters(ids, left, right_ids, extra)
    assert agreement == pytest.approx(110 / 120)
    assert not set(renamed[:10]) & set(left)


def test_focus_labels_are_few_and_point_inwards():
    from recsys_core.viz.embeddings import MAX_FOCUS_LABELS, focus_trace

    n = 40
    table = pd.DataFrame(
        {
            "id": [str(i) for i in range(n)],
            "title": [f"A Long Title Of Item Number {i} (2001)" for i in range(n)],
            "x": np.linspace(-10, 10, n),
            "y": np.linspace(-5, 5, n),
        }
    )
    ids = ["39", "0", "20", "5", "6", "7", "8", "9", "10", "11"]  # searched item first
    trace = focus_trace(table, ids)
    text = dict(zip(table[table["id"].isin(ids)]["id"], trace.text, strict=True))
    assert sum(bool(t) for t in trace.text) == MAX_FOCUS_LABELS
    assert text["39"] and text["0"] and not text["11"]  # the searched item is labelled
    assert all(len(t) <= 28 for t in trace.text)
    pos = dict(zip(table[table["id"].isin(ids)]["id"], trace.textposition, strict=True))
    assert pos["39"] == "bottom left"  # top-right corner: label below and to the left
    assert pos["0"] == "top right"  # bottom-left corner
