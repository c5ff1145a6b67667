"""Embedding maps: 2-D UMAP projections of what a model learned, measured and cached.

The pipeline, for ``n`` vectors of dimension ``d``:

1. exact k nearest neighbours in the embedding (blocked BLAS products, so 2 cores handle
   100k x 64 in seconds; UMAP's own NN-descent is single-threaded once a seed is fixed);
2. UMAP (McInnes, Healy & Melville 2018, arXiv:1802.03426) fitted on all points, or on a seeded
   sample of ``max_fit`` points when there are more, from those precomputed neighbours;
3. the points left out of the fit are *transformed*: placed at the membership-weighted mean of
   their fitted neighbours' coordinates, with the same fuzzy membership strengths UMAP's
   ``transform`` uses for its initialisation (eq. 7 of the paper: ``exp(-(d - rho) / sigma)``).
   UMAP's transform then runs extra optimisation epochs that cost ~100 s for 80k points on
   2 cores and barely move the points at map scale, so we stop after the initialisation;
4. faithfulness: k-NN preservation@10 (share of each point's 10 nearest neighbours in the
   embedding that stay among its 10 nearest on the map, averaged over a seeded sample of query
   points against all points) and scikit-learn's trustworthiness on a sample.

:func:`run_map` does this for a finished run's item or user vectors and caches the result in
``<run dir>/umap/`` keyed by the options, so a second view does no UMAP work. Models without
embeddings (ItemKNN, EASE, RP3beta) are mapped from their item-item similarity instead.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.data.columns import CATEGORIES, TITLE
from recsys_core.errors import ConfigError, DataError, NotFoundError
from recsys_core.map_options import WHAT, MapOptions

if TYPE_CHECKING:
    from recsys_core.data.interactions import Interactions
    from recsys_core.workspace import Workspace

#: ``progress(step, metrics)`` with ``metrics["fraction"]`` in [0, 1] (same shape as training).
ProgressFn = Callable[[int, dict[str, float]], None]

#: Fewer points than this cannot make a meaningful neighbourhood graph.
MIN_POINTS = 5
#: Maps with more points than this are computed as a background job by the page.
INLINE_LIMIT = 5_000
#: Neighbours used by the faithfulness figures.
FAITHFULNESS_K = 10
#: Query points sampled for k-NN preservation, and points sampled for trustworthiness.
PRESERVATION_QUERIES = 2_000
TRUSTWORTHINESS_SAMPLE = 1_000
#: Dimension of the vectors built from an item-item similarity matrix.
SIMILARITY_DIM = 64
CACHE_DIR = "umap"
CACHE_VERSION = 1

SOURCE_ITEMS = "item embeddings"
SOURCE_USERS = "user embeddings"
SOURCE_SIMILARITY = "from item-item similarity"
SOURCE_USER_MEAN = "users as the mean of their training items' embeddings"
SOURCE_USER_SIMILARITY = "users as the mean of their training items' similarity vectors"


@dataclass(frozen=True, eq=False)
class MapResult:
    """A 2-D map of ``n`` vectors and how faithful it is.

    Attributes
    ----------
    coords : float32 [n, 2] map coordinates, row r for vector ``index[r]``.
    index : int64 [n] which rows of the source vectors are on the map (all of them for
        :func:`project`; :func:`run_map` leaves out items with no similarity at all).
    knn_preservation : k-NN preservation@10 in [0, 1]; a random map scores ``random_baseline``.
    trustworthiness : scikit-learn trustworthiness@10 in [0, 1] on a sample (NaN if too few).
    random_baseline : ``10 / (n - 1)``, what a random layout scores on k-NN preservation.
    n_fit, n_transformed : points UMAP was fitted on, and points placed by the transform.
    seconds : wall time of the computation (of the original one, for a cached result).
    options : the :class:`MapOptions` used.
    source : where the vectors came from (e.g. ``"item embeddings"`` or
        ``"from item-item similarity"``).
    notes : sentences for the reader (sampling, points left out, clipped options).
    fit_index : int64 [n_fit] rows of the source vectors UMAP was fitted on (for placing new
        vectors, e.g. a user's interests, with :func:`place`).
    cached : True when read back from the run's cache.
    """

    coords: np.ndarray
    index: np.ndarray
    knn_preservation: float
    trustworthiness: float
    random_baseline: float
    n_fit: int
    n_transformed: int
    seconds: float
    options: MapOptions
    source: str = "vectors"
    notes: tuple[str, ...] = ()
    fit_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cached: bool = False

    @property
    def n_points(self) -> int:
        return int(len(self.coords))

    @property
    def sampled(self) -> bool:
        """True when UMAP saw only a sample and the other points were transformed."""
        return self.n_transformed > 0

    @property
    def faithfulness(self) -> dict[str, float]:
        """The faithfulness figures by name (``knn_preservation@10``, ``trustworthiness@10``)."""
        k = FAITHFULNESS_K
        return {
            f"knn_preservation@{k}": self.knn_preservation,
            f"trustworthiness@{k}": self.trustworthiness,
            f"random_baseline@{k}": self.random_baseline,
        }

    @property
    def sampling_note(self) -> str:
        """One sentence on what UMAP was fitted on."""
        if not self.sampled:
            return f"UMAP was fitted on all {self.n_points:,} points."
        return (
            f"UMAP was fitted on a seeded sample of {self.n_fit:,} of {self.n_points:,} points; "
            f"the other {self.n_transformed:,} were placed by transform from their nearest "
            "fitted neighbours."
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no coordinates)."""
        return {
            "n_points": self.n_points,
            "n_fit": self.n_fit,
            "n_transformed": self.n_transformed,
            "sampled": self.sampled,
            "seconds": round(float(self.seconds), 3),
            "source": self.source,
            "options": config_to_dict(self.options),
            "faithfulness": {k: _finite_or_none(v) for k, v in self.faithfulness.items()},
            "notes": list(self.notes),
            "cached": self.cached,
        }


# ----- input checks ---------------------------------------------------------------------------
def check_vectors(
    vectors: np.ndarray, *, ids: Sequence[Any] | np.ndarray | None = None, metric: str = "cosine"
) -> np.ndarray:
    """Validate ``vectors`` [n, d] and return them as C-contiguous float32.

    Raises
    ------
    DataError
        when the array is not 2-D, has fewer than ``MIN_POINTS`` rows, holds NaN/inf (the
        message counts the rows and names the first ids), or, for the cosine metric, has rows of
        zero length (cosine distance is undefined for them).
    """
    x = np.asarray(vectors)
    if x.ndim != 2 or x.shape[1] < 1:
        raise DataError(
            f"embedding vectors must be a 2-D array [n, d]; got shape {x.shape}",
            fix="pass one row per item or user",
        )
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"embedding vectors must be numeric; got dtype {x.dtype}")
    n = x.shape[0]
    if n < MIN_POINTS:
        raise DataError(
            f"a map needs at least {MIN_POINTS} points; got {n}",
            fix="map a dataset with more items or users",
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} of {n} embedding rows contain NaN or infinite values",
            where=f"rows for ids {_first_ids(bad, ids)}",
            fix="retrain the model (a diverged run yields NaN weights; lower the learning rate)",
        )
    if metric == "cosine":
        zero = ~(np.abs(x) > 0).any(axis=1)
        if zero.any():
            raise DataError(
                f"{int(zero.sum())} of {n} embedding rows are all zeros, so their cosine "
                "distance is undefined",
                where=f"rows for ids {_first_ids(zero, ids)}",
                fix="use metric='euclidean', or drop those rows before mapping",
            )
    return x


def _first_ids(mask: np.ndarray, ids: Sequence[Any] | np.ndarray | None, limit: int = 5) -> str:
    rows = np.flatnonzero(mask)[:limit]
    names = [str(ids[r]) for r in rows] if ids is not None else [str(r) for r in rows]
    more = ", ..." if mask.sum() > limit else ""
    return ", ".join(names) + more


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


# ----- nearest neighbours (exact, blocked BLAS) ------------------------------------------------
def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """Rows scaled to unit length for cosine (then 1 - dot is the cosine distance)."""
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return x


def knn(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    metric: str = "euclidean",
    exclude_self: bool = False,
    block_bytes: int = 64 * 2**20,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each query row among the ``base`` rows.

    Blocked matrix products and ``torch.topk`` (multi-threaded, no full sort) on the CPU: for
    100k queries against 20k points in 64-D this takes seconds, where NN-descent with a fixed
    seed runs single-threaded.

    Parameters
    ----------
    queries : float32 [q, d] (already unit-normalised when ``metric="cosine"``).
    base : float32 [m, d] (same preparation).
    k : neighbours per query (clipped to the number of candidates).
    metric : ``"cosine"`` (distance 1 - cos) or ``"euclidean"``.
    exclude_self : queries are rows ``0..q-1`` of ``base``; drop each one's own row.
    block_bytes : memory for one block of the [q, m] distance matrix.

    Returns
    -------
    indices : int64 [q, k] base rows, nearest first.
    distances : float32 [q, k] their distances.
    """
    import torch

    m = base.shape[0]
    k = int(min(k, m - 1 if exclude_self else m))
    block = max(1, block_bytes // (4 * max(m, 1)))
    b = torch.from_numpy(np.ascontiguousarray(base, dtype=np.float32))
    b_sq = None if metric == "cosine" else (b * b).sum(dim=1)
    out_idx = np.empty((queries.shape[0], k), dtype=np.int64)
    out_dist = np.empty((queries.shape[0], k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, queries.shape[0], block):  # blocks bound memory; BLAS works
            q = torch.from_numpy(np.ascontiguousarray(queries[start : start + block], np.float32))
            rows = torch.arange(len(q))
            if metric == "cosine":
                # Rank by similarity q.b directly: one pass fewer over the block than 1 - q.b.
                sims = q @ b.T
                if exclude_self:
                    sims[rows, start + rows] = float("-inf")
                values, indices = torch.topk(sims, k, dim=1, largest=True, sorted=True)
                dist = 1.0 - values
            else:
                # |q|^2 is constant per row, so rank by |b|^2 - 2 q.b and add |q|^2 afterwards.
                partial = torch.addmm(b_sq[None, :], q, b.T, alpha=-2.0)
                if exclude_self:
                    partial[rows, start + rows] = float("inf")
                values, indices = torch.topk(partial, k, dim=1, largest=False, sorted=True)
                dist = values + (q * q).sum(dim=1, keepdim=True)
            out_idx[start : start + len(q)] = indices.numpy()
            out_dist[start : start + len(q)] = dist.numpy()
    np.maximum(out_dist, 0.0, out=out_dist)  # round-off can make tiny negatives
    if metric == "euclidean":
        np.sqrt(out_dist, out=out_dist)
    return out_idx, out_dist


# ----- faithfulness ---------------------------------------------------------------------------
def knn_preservation(
    vectors: np.ndarray,
    coords: np.ndarray,
    *,
    k: int = FAITHFULNESS_K,
    metric: str = "cosine",
    n_queries: int = PRESERVATION_QUERIES,
    seed: int = 0,
) -> float:
    """Share of each point's ``k`` nearest neighbours in the embedding that stay among its
    ``k`` nearest on the map, averaged over a seeded sample of ``n_queries`` points.

    Neighbours are searched among *all* points, so the sample only adds sampling noise
    (standard error below 0.01 for 2,000 queries), not bias. A random layout scores about
    ``k / (n - 1)``.

    Parameters
    ----------
    vectors : [n, d] the embedding. coords : [n, 2] the map.
    """
    x = _prepare(np.ascontiguousarray(vectors, dtype=np.float32), metric)
    y = np.ascontiguousarray(coords, dtype=np.float32)
    n = x.shape[0]
    k = int(min(k, n - 1))
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
    # Put the queries first so exclude_self can drop their own rows.
    order = np.concatenate([queries, np.setdiff1d(np.arange(n), queries)])
    high, _ = knn(x[queries], x[order], k, metric=metric, exclude_self=True)
    low, _ = knn(y[queries], y[order], k, metric="euclidean", exclude_self=True)
    # Overlap of two k-sets per row, vectorised as a [q, k, k] comparison.
    overlap = (high[:, :, None] == low[:, None, :]).any(axis=2).sum(axis=1)
    return float(overlap.mean() / k)


def trustworthiness_sample(
    vectors: np.ndarray,
    coords: np.ndarray,
    *,
    k: int = FAITHFULNESS_K,
    metric: str = "cosine",
    n_sample: int = TRUSTWORTHINESS_SAMPLE,
    seed: int = 0,
) -> float:
    """scikit-learn trustworthiness (Venna & Kaski 2001) on a seeded sample of points.

    Penalises points that are neighbours on the map but not in the embedding; 1 is perfect.
    Returns NaN when there are too few points (it needs ``k < n_sample / 2``).
    """
    from sklearn.manifold import trustworthiness

    n = len(vectors)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n_sample, n), replace=False))
    k = int(min(k, len(rows) // 2 - 1))
    if k < 1:
        return float("nan")
    return float(
        trustworthiness(
            np.asarray(vectors, dtype=np.float64)[rows],
            np.asarray(coords, dtype=np.float64)[rows],
            n_neighbors=k,
            metric=metric,
        )
    )


# ----- UMAP -----------------------------------------------------------------------------------
def _fit_umap(
    x: np.ndarray,
    knn_indices: np.ndarray,
    knn_dists: np.ndarray,
    options: MapOptions,
    sampled: bool = False,
) -> np.ndarray:
    """Fit UMAP on ``x`` [m, d] from its precomputed neighbours; return float32 [m, 2].

    A separate function so tests can count how often UMAP really runs.
    """
    import warnings

    import umap

    n_neighbors = knn_indices.shape[1]
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=options.min_dist,
        metric=options.metric,
        random_state=options.seed,
        # UMAP's own default is 500 epochs up to 10k points and 200 above; a sample of a
        # bigger set gets 200 too (measured: no better k-NN preservation at 2.5x the time).
        n_epochs=options.n_epochs or (200 if sampled else None),
        precomputed_knn=(knn_indices, knn_dists),
        # Spectral initialisation needs a few points per component; random is safe when tiny.
        init="spectral" if len(x) > 2 * n_neighbors + 2 else "random",
    )
    with warnings.catch_warnings():
        # Expected and irrelevant here: "n_jobs overridden by setting random_state" and
        # "precomputed_knn has no search index" (we place new points ourselves).
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        coords = reducer.fit_transform(x)
    return np.asarray(coords, dtype=np.float32)


def _membership_weights(dists: np.ndarray, n_neighbors: int) -> np.ndarray:
    """UMAP's fuzzy membership strengths of each query's neighbours (rows sum to 1).

    Same smoothing as ``umap.UMAP.transform`` (local connectivity 1 - 1 = 0 for new points).
    """
    from umap.umap_ import smooth_knn_dist

    d = dists.astype(np.float32)
    sigmas, rhos = smooth_knn_dist(d, float(n_neighbors), local_connectivity=0.0)
    w = np.exp(-np.maximum(d - rhos[:, None], 0.0) / np.maximum(sigmas[:, None], 1e-12))
    w = np.where(np.isfinite(w), w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    uniform = np.full_like(w, 1.0 / w.shape[1])
    return np.where(total > 0, w / np.maximum(total, 1e-30), uniform).astype(np.float32)


def place(
    new_vectors: np.ndarray,
    fit_vectors: np.ndarray,
    fit_coords: np.ndarray,
    *,
    metric: str = "cosine",
    n_neighbors: int = 15,
) -> np.ndarray:
    """Transform: put new vectors on an existing map near their nearest fitted points.

    Parameters
    ----------
    new_vectors : [q, d] vectors to place (e.g. the transformed rest, or a user's interests).
    fit_vectors : [m, d] the vectors UMAP was fitted on. fit_coords : [m, 2] their coordinates.

    Returns
    -------
    float32 [q, 2]: the membership-weighted mean of the ``n_neighbors`` nearest fitted points'
    coordinates (UMAP's transform initialisation).
    """
    q = _prepare(np.ascontiguousarray(new_vectors, dtype=np.float32), metric)
    base = _prepare(np.ascontiguousarray(fit_vectors, dtype=np.float32), metric)
    k = int(min(n_neighbors, len(base)))
    idx, dist = knn(q, base, k, metric=metric)
    w = _membership_weights(dist, k)
    coords = np.asarray(fit_coords, dtype=np.float32)
    return np.einsum("qk,qkc->qc", w, coords[idx]).astype(np.float32)


def project(
    vectors: np.ndarray,
    *,
    metric: str = "cosine",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    max_fit: int = 10_000,
    n_epochs: int = 0,
    options: MapOptions | None = None,
    ids: Sequence[Any] | np.ndarray | None = None,
    source: str = "vectors",
    progress: ProgressFn | None = None,
) -> MapResult:
    """UMAP map of ``vectors`` [n, d] with its faithfulness figures.

    Parameters
    ----------
    vectors : [n, d] float vectors (one per item or user), finite.
    metric, n_neighbors, min_dist, seed, max_fit, n_epochs : see :class:`MapOptions`
        (ignored when ``options`` is given).
    ids : raw ids of the rows, used only to name bad rows in error messages.
    source : label of where the vectors come from, kept on the result.
    progress : ``progress(step, {"fraction": f})`` between stages.

    Returns
    -------
    MapResult with ``coords`` float32 [n, 2].

    Raises
    ------
    DataError : NaN/inf rows, fewer than 5 points, zero rows under the cosine metric.
    ConfigError : an option out of range.
    """
    if options is None:
        options = MapOptions(
            metric=metric,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            seed=seed,
            max_fit=max_fit,
            n_epochs=n_epochs,
        )
    report = progress or (lambda step, metrics: None)
    started = time.perf_counter()
    x = check_vectors(vectors, ids=ids, metric=options.metric)
    n = len(x)
    notes: list[str] = []
    k = min(options.n_neighbors, n - 1)
    if k < options.n_neighbors:
        notes.append(f"n_neighbors lowered from {options.n_neighbors} to {k} for {n} points.")

    rng = np.random.default_rng(options.seed)
    if n > options.max_fit:
        fit_rows = np.sort(rng.choice(n, size=options.max_fit, replace=False))
    else:
        fit_rows = np.arange(n)
    prepared = _prepare(x, options.metric)
    fit_x = prepared[fit_rows]
    report(1, {"fraction": 0.05})

    # UMAP's graph includes each point as its own first neighbour (distance 0).
    idx, dist = knn(fit_x, fit_x, k, metric=options.metric, exclude_self=True)
    self_col = np.arange(len(fit_x), dtype=np.int64)[:, None]
    knn_indices = np.hstack([self_col, idx])[:, :k]
    knn_dists = np.hstack([np.zeros_like(dist[:, :1]), dist])[:, :k]
    report(2, {"fraction": 0.15})

    fit_coords = _fit_umap(fit_x, knn_indices, knn_dists, options, len(fit_rows) < n)
    report(3, {"fraction": 0.7})

    coords = np.empty((n, 2), dtype=np.float32)
    coords[fit_rows] = fit_coords
    rest = np.setdiff1d(np.arange(n), fit_rows)
    if len(rest):
        coords[rest] = place(
            prepared[rest], fit_x, fit_coords, metric=options.metric, n_neighbors=k
        )
        notes.append(
            f"UMAP was fitted on a seeded sample of {len(fit_rows):,} of {n:,} points (max_fit); "
            f"the other {len(rest):,} were placed by transform."
        )
    report(4, {"fraction": 0.85})

    preservation = knn_preservation(prepared, coords, metric=options.metric, seed=options.seed)
    trust = trustworthiness_sample(prepared, coords, metric=options.metric, seed=options.seed)
    report(5, {"fraction": 1.0})
    return MapResult(
        coords=coords,
        index=np.arange(n, dtype=np.int64),
        knn_preservation=preservation,
        trustworthiness=trust,
        random_baseline=min(1.0, FAITHFULNESS_K / max(n - 1, 1)),
        n_fit=int(len(fit_rows)),
        n_transformed=int(len(rest)),
        seconds=time.perf_counter() - started,
        options=options,
        source=source,
        notes=tuple(notes),
        fit_index=fit_rows.astype(np.int64),
    )


# ----- vectors for models without embeddings --------------------------------------------------
def similarity_vectors(
    similarity: np.ndarray | sp.spmatrix, *, dim: int = SIMILARITY_DIM, seed: int = 0
) -> np.ndarray:
    """float32 [n_items, <=dim] item vectors from an item-item similarity (or weight) matrix.

    Two items get close vectors when they have similar neighbourhoods: we symmetrise
    ``(S + S^T) / 2`` (EASE's B and ItemKNN's column-normalised S are not symmetric) and keep
    its rank-``dim`` truncated SVD, row r = ``U[r] * sigma`` (the best rank-``dim``
    approximation of the rows, Eckart-Young). Rows of items without any similarity are zero.
    """
    from sklearn.decomposition import TruncatedSVD

    s = sp.csr_matrix(similarity, dtype=np.float32) if sp.issparse(similarity) else None
    if s is not None:
        sym = ((s + s.T) * 0.5).tocsr()
        sym.setdiag(0.0)  # self-similarity carries no neighbourhood information
        sym.eliminate_zeros()
    else:
        dense = np.asarray(similarity, dtype=np.float32)
        sym = (dense + dense.T) * 0.5
        np.fill_diagonal(sym, 0.0)
    n = sym.shape[0]
    components = int(min(dim, n - 1))
    if components < 2:
        raise DataError(
            f"an item-item similarity of {n} items is too small to map",
            fix="map a dataset with more items",
        )
    svd = TruncatedSVD(n_components=components, algorithm="randomized", random_state=seed)
    return svd.fit_transform(sym).astype(np.float32)


def _history_mean(history: sp.csr_matrix, item_vectors: np.ndarray) -> np.ndarray:
    """[n_users, d] mean of each user's history rows of ``item_vectors`` (zero when empty)."""
    counts = np.asarray(history.sum(axis=1)).ravel()
    sums = history.astype(np.float32) @ item_vectors
    return (sums / np.maximum(counts, 1.0)[:, None]).astype(np.float32)


def source_vectors(ws: Workspace, run_id: str, what: str = "items") -> tuple[np.ndarray, str]:
    """The vectors a map of run ``run_id`` is drawn from, and a label saying where they come from.

    Items: the run's item embeddings; for models without any (ItemKNN, EASE, RP3beta), vectors
    from the model's item-item similarity (:func:`similarity_vectors`). Users: the run's user
    embeddings; otherwise each user's mean training item vector.

    Returns
    -------
    vectors : float32 [n_items or n_users, d].
    source : e.g. ``"item embeddings"`` or ``"from item-item similarity"``.

    Raises
    ------
    ConfigError : ``what`` is not ``"items"`` or ``"users"``.
    NotFoundError : the run does not exist or has not finished.
    DataError : the run's model learned neither embeddings nor an item-item similarity.
    """
    from recsys_core.jobs.artifacts import RunArtifacts

    if what not in WHAT:
        raise ConfigError(f"what: {what!r} is not allowed; choose one of {list(WHAT)}")
    art = RunArtifacts(ws, run_id)
    if what == "users":
        users = art.user_embeddings()
        if users is not None:
            return users.astype(np.float32), SOURCE_USERS
    items = art.item_embeddings()
    source = SOURCE_ITEMS
    model = None
    if items is None:
        model = art.model(device="cpu")
        similarity = getattr(model, "item_similarity", None)
        if similarity is None:
            raise DataError(
                f"run {run_id} has no embeddings to map: model {model.name!r} learns neither "
                "item/user embeddings nor an item-item similarity",
                where=f"runs/{run_id}",
                fix="pick a run of a model that has them (e.g. bpr, ials, lightgcn, multvae for "
                "embeddings; itemknn, ease, rp3beta for similarity maps)",
            )
        items = similarity_vectors(similarity(), seed=0)
        source = SOURCE_SIMILARITY
    if what == "items":
        return items.astype(np.float32), source
    model = model or art.model(device="cpu")
    label = SOURCE_USER_MEAN if source == SOURCE_ITEMS else SOURCE_USER_SIMILARITY
    return _history_mean(model.history_, items), label


# ----- cached maps of a run -------------------------------------------------------------------
def cache_paths(ws: Workspace, run_id: str, what: str, options: MapOptions) -> tuple[Path, Path]:
    """``(<run>/umap/<what>-<key>.npz, .json)`` where the map with these options is cached."""
    stem = f"{what}-{options.key()}-v{CACHE_VERSION}"
    folder = ws.runs_dir / run_id / CACHE_DIR
    return folder / f"{stem}.npz", folder / f"{stem}.json"


def load_cached(ws: Workspace, run_id: str, what: str, options: MapOptions) -> MapResult | None:
    """The cached map of run ``run_id`` with ``options``, or None when it was never computed."""
    npz_path, json_path = cache_paths(ws, run_id, what, options)
    if not (npz_path.exists() and json_path.exists()):
        return None
    meta = json.loads(json_path.read_text())
    with np.load(npz_path) as arrays:
        coords, index, fit_index = arrays["coords"], arrays["index"], arrays["fit_index"]
    faith = meta["faithfulness"]
    k = FAITHFULNESS_K
    return MapResult(
        coords=coords.astype(np.float32),
        index=index.astype(np.int64),
        knn_preservation=_nan_if_none(faith[f"knn_preservation@{k}"]),
        trustworthiness=_nan_if_none(faith[f"trustworthiness@{k}"]),
        random_baseline=_nan_if_none(faith[f"random_baseline@{k}"]),
        n_fit=int(meta["n_fit"]),
        n_transformed=int(meta["n_transformed"]),
        seconds=float(meta["seconds"]),
        options=options,
        source=meta["source"],
        notes=tuple(meta["notes"]),
        fit_index=fit_index.astype(np.int64),
        cached=True,
    )


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def run_map(
    ws: Workspace,
    run_id: str,
    what: str = "items",
    options: MapOptions | dict[str, Any] | None = None,
    *,
    progress: ProgressFn | None = None,
) -> MapResult:
    """The map of a finished run's items or users, computed once and cached in its folder.

    The first call projects :func:`source_vectors` with :func:`project` and writes
    ``<run dir>/umap/<what>-<options hash>.npz`` (coordinates) and ``.json`` (faithfulness,
    sampling, timing, source); later calls with the same options only read those files.

    Parameters
    ----------
    ws, run_id : the workspace and a finished run.
    what : ``"items"`` or ``"users"``.
    options : :class:`MapOptions` or a dict of its fields (defaults when None).
    progress : ``progress(step, {"fraction": f})``.

    Returns
    -------
    MapResult whose ``index`` holds the item (or user) indices on the map: rows with all-zero
    vectors under the cosine metric (e.g. items without any similarity) are left out, and a
    note says how many.
    """
    if not isinstance(options, MapOptions):
        options = config_from_dict(MapOptions, options)
    cached = load_cached(ws, run_id, what, options)
    if cached is not None:
        return cached
    vectors, source = source_vectors(ws, run_id, what)
    keep = np.arange(len(vectors), dtype=np.int64)
    notes: list[str] = []
    if options.metric == "cosine":
        nonzero = (np.abs(vectors) > 0).any(axis=1)
        if not nonzero.all():
            keep = np.flatnonzero(nonzero).astype(np.int64)
            notes.append(
                f"{int((~nonzero).sum()):,} {what} with an all-zero vector (no similarity or no "
                "history) are not on the map."
            )
    result = project(vectors[keep], options=options, source=source, progress=progress)
    result = MapResult(
        coords=result.coords,
        index=keep,
        knn_preservation=result.knn_preservation,
        trustworthiness=result.trustworthiness,
        random_baseline=result.random_baseline,
        n_fit=result.n_fit,
        n_transformed=result.n_transformed,
        seconds=result.seconds,
        options=options,
        source=source,
        notes=tuple(notes) + result.notes,
        fit_index=keep[result.fit_index],
    )
    _write_cache(ws, run_id, what, result)
    return result


def _write_cache(ws: Workspace, run_id: str, what: str, result: MapResult) -> None:
    """Write the npz then the json (its presence marks a complete entry), each atomically."""
    npz_path, json_path = cache_paths(ws, run_id, what, result.options)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz_path.with_name(f".{npz_path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, coords=result.coords, index=result.index, fit_index=result.fit_index)
    os.replace(tmp, npz_path)
    tmp_json = json_path.with_name(f".{json_path.name}.{os.getpid()}.tmp")
    meta = result.summary() | {"run_id": run_id, "what": what, "cached": False}
    tmp_json.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_json, json_path)


def map_in_background(n_points: int) -> bool:
    """True when a map of ``n_points`` takes more than a few seconds (the page submits a job)."""
    return n_points > INLINE_LIMIT


def map_size(ws: Workspace, run_id: str, what: str = "items") -> int:
    """How many points a map of the run's items or users has (without loading any model)."""
    from recsys_core.jobs.artifacts import RunArtifacts

    art = RunArtifacts(ws, run_id)
    return int(art.dataset().n_items if what == "items" else art.dataset().n_users)


def umap_task(ws: Workspace, payload: dict[str, Any], progress: Callable[..., None]) -> dict:
    """Background task ``"umap"``: payload ``{"run_id", "what", "options"}``.

    Computes (or finds) the cached map and returns its summary; the page then reads the cache.
    ``progress(fraction, message)`` may raise Cancelled between stages.
    """
    unknown = sorted(set(payload) - {"run_id", "what", "options"})
    if "run_id" not in payload or unknown:
        raise ConfigError(
            f"umap task: payload needs 'run_id' (and optional 'what', 'options'); "
            f"got keys {sorted(payload)}"
        )
    # The message names the stage that starts after each progress step.
    # After progress step s, the stage named stages[s] starts.
    stages = {1: "nearest neighbours", 2: "UMAP", 3: "transform", 4: "faithfulness", 5: "done"}

    def relay(step: int, metrics: dict[str, float]) -> None:
        progress(float(metrics.get("fraction", 0.0)), stages.get(step, "done"))

    run_id = str(payload["run_id"])
    what = str(payload.get("what", "items"))
    result = run_map(ws, run_id, what, payload.get("options"), progress=relay)
    npz_path, json_path = cache_paths(ws, run_id, what, result.options)
    return result.summary() | {"run_id": run_id, "what": what, "coords": str(npz_path)}


# ----- benchmark ------------------------------------------------------------------------------
def planted_vectors(
    n: int, dim: int = 64, *, clusters: int = 50, latent: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic embeddings with planted structure, like a trained model's.

    ``clusters`` Gaussian clusters in a ``latent``-dimensional space, mapped into ``dim``
    dimensions by a random linear map plus small isotropic noise (learned embeddings have a low
    intrinsic dimension).

    Returns
    -------
    vectors : float32 [n, dim]. labels : int64 [n] planted cluster of each vector.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, size=n)
    centres = rng.normal(size=(clusters, latent)) * 4.0
    z = centres[labels] + rng.normal(size=(n, latent))
    mix = rng.normal(size=(latent, dim))
    vectors = z @ mix + 0.1 * rng.normal(size=(n, dim))
    return vectors.astype(np.float32), labels.astype(np.int64)


def bench(n: int = 100_000, dim: int = 64, *, seed: int = 0) -> dict[str, Any]:
    """Time :func:`project` end to end on :func:`planted_vectors` in a warm process.

    A 2,000-point map first compiles UMAP's numba code (~20 s once per process), so the figure
    is what the worker and the app see after their first map. Returns the map summary plus
    ``cpu_seconds`` (all threads) and ``warmup_seconds``.
    """
    warm_started = time.perf_counter()
    warm, _ = planted_vectors(min(2_000, n), dim, seed=seed + 1)
    project(warm, seed=seed)
    warmup = time.perf_counter() - warm_started
    vectors, _ = planted_vectors(n, dim, seed=seed)
    cpu = time.process_time()
    result = project(vectors, seed=seed)
    out = result.summary()
    out.update(
        {
            "dim": dim,
            "cpu_seconds": round(time.process_time() - cpu, 3),
            "warmup_seconds": round(warmup, 3),
        }
    )
    return out


# ----- alignment ------------------------------------------------------------------------------
def align(
    coords_a: np.ndarray,
    ids_a: Sequence[Any] | np.ndarray,
    coords_b: np.ndarray,
    ids_b: Sequence[Any] | np.ndarray,
) -> np.ndarray:
    """``coords_b`` moved onto map a by a similarity transform fitted on the shared ids.

    Orthogonal Procrustes (Schönemann 1966; ``scipy.linalg.orthogonal_procrustes``) gives the
    rotation/reflection R minimising ``||(B - mean_b) R s - (A - mean_a)||_F`` on the shared
    points; the optimal scale is ``s = trace(Sigma) / ||B - mean_b||_F^2``. Reflections are
    allowed because UMAP maps have no handedness.

    Parameters
    ----------
    coords_a : [n_a, 2] the reference map. ids_a : [n_a] ids of its points.
    coords_b : [n_b, 2] the map to move. ids_b : [n_b] ids of its points.

    Returns
    -------
    float32 [n_b, 2] aligned coordinates of every point of b (shared or not).

    Raises
    ------
    DataError : fewer than 3 shared ids.
    """
    from scipy.linalg import orthogonal_procrustes

    a = np.asarray(coords_a, dtype=np.float64)
    b = np.asarray(coords_b, dtype=np.float64)
    index_a = pd.Index(np.asarray(ids_a))
    pos_a = index_a.get_indexer(np.asarray(ids_b))
    shared = pos_a >= 0
    if shared.sum() < 3:
        raise DataError(
            f"the two maps share {int(shared.sum())} ids; alignment needs at least 3",
            fix="compare two runs on the same dataset",
        )
    pa, pb = a[pos_a[shared]], b[shared]
    mean_a, mean_b = pa.mean(axis=0), pb.mean(axis=0)
    ca, cb = pa - mean_a, pb - mean_b
    rotation, sigma_sum = orthogonal_procrustes(cb, ca)
    norm_b = float((cb**2).sum())
    scale = sigma_sum / norm_b if norm_b > 0 else 1.0
    return ((b - mean_b) @ rotation * scale + mean_a).astype(np.float32)


# ----- colourings and neighbours ----------------------------------------------------------------
def popularity_bucket(popularity: np.ndarray, cuts: tuple[float, float] = (0.5, 0.8)) -> np.ndarray:
    """object [n_items] ``"head"``/``"mid"``/``"tail"`` by cumulative share of interactions.

    The same cut points as the evaluation's segments (:func:`recsys_core.metrics.
    popularity_buckets`): head items hold the first half of interactions, tail items the last 20%.
    """
    from recsys_core.metrics import popularity_buckets

    names = np.array(["head", "mid", "tail"], dtype=object)
    return names[popularity_buckets(np.asarray(popularity), cuts)]


def activity_bucket(activity: np.ndarray, n_buckets: int = 4) -> np.ndarray:
    """object [n_users] activity quartile labels (e.g. ``"Q1: 2-11"``), as in the evaluation."""
    from recsys_core.stats import activity_segments

    return activity_segments(np.asarray(activity), n_buckets)


def kmeans_clusters(
    vectors: np.ndarray, k: int = 8, *, metric: str = "cosine", seed: int = 0
) -> np.ndarray:
    """int64 [n] k-means cluster of each vector in the *embedding* (not on the map).

    Unit-normalised first under the cosine metric (spherical k-means). Mini-batch k-means above
    20k points keeps it to a second or two.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = _prepare(np.ascontiguousarray(vectors, dtype=np.float32), metric)
    k = int(max(1, min(k, len(x))))
    if len(x) > 20_000:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=3)
    return model.fit_predict(x).astype(np.int64)


def match_clusters(
    left_ids: Sequence[Any] | np.ndarray,
    left_labels: Sequence[Any] | np.ndarray,
    right_ids: Sequence[Any] | np.ndarray,
    right_labels: Sequence[Any] | np.ndarray,
) -> tuple[np.ndarray, float]:
    """Rename the right map's clusters after the left map's, so a colour means one group.

    k-means runs on each run's own vectors, so "cluster 3" on one map and on another are
    unrelated groups. Clusters are matched one to one by the points both maps share (the
    Hungarian assignment maximising the shared points; ``scipy.optimize.linear_sum_assignment``),
    and each right cluster takes the name of its left partner; right clusters left without a
    partner (more clusters on the right) keep a name no left cluster uses.

    Returns
    -------
    labels : object [len(right_ids)] the right map's renamed cluster labels.
    agreement : share of the shared points whose cluster name is the same on both maps (1 =
        the two runs group the shared points identically; NaN when no point is shared).
    """
    from scipy.optimize import linear_sum_assignment

    left = pd.Series(np.asarray(left_labels, dtype=object), index=pd.Index(left_ids).astype(str))
    right_labels = np.asarray(right_labels, dtype=object)
    right = pd.Series(right_labels, index=pd.Index(right_ids).astype(str))
    shared = left.index.intersection(right.index)
    left_names = sorted(set(left.tolist()), key=str)
    right_names = sorted(set(right.tolist()), key=str)
    counts = pd.crosstab(
        pd.Categorical(right.loc[shared].to_numpy(), categories=right_names),
        pd.Categorical(left.loc[shared].to_numpy(), categories=left_names),
        dropna=False,
    ).to_numpy()
    rows, cols = linear_sum_assignment(-counts) if counts.size else ([], [])
    rename = {right_names[r]: left_names[c] for r, c in zip(rows, cols, strict=True)}
    spare = (f"cluster {len(left_names) + i}" for i in range(len(right_names)))
    for name in right_names:
        if name not in rename:
            rename[name] = next(n for n in spare if n not in left_names)
    renamed = pd.Series(right_labels, dtype=object).map(rename).to_numpy(dtype=object)
    if not len(shared):
        return renamed, float("nan")
    same = pd.Series(renamed, index=right.index).loc[shared].to_numpy() == left.loc[shared]
    return renamed, float(np.mean(same))


def hit_labels(per_user: pd.DataFrame, n_users: int, k: int = 10) -> np.ndarray:
    """object [n_users] ``"hit"`` / ``"miss"`` (a test item in the top ``k`` or not), or
    ``"not tested"`` for users without test items.

    Parameters
    ----------
    per_user : the run's per-user metrics (index = user index, column ``hit@k``).
    """
    column = f"hit@{k}"
    if column not in per_user.columns:
        raise DataError(
            f"the run's per-user metrics have no {column!r} column",
            where=f"columns {list(per_user.columns)[:8]}",
            fix="re-run the evaluation with k in its cut-offs",
        )
    labels = np.full(n_users, "not tested", dtype=object)
    rows = per_user.index.to_numpy(dtype=np.int64)
    labels[rows] = np.where(per_user[column].to_numpy() > 0, "hit", "miss")
    return labels


def nearest_neighbors(
    vectors: np.ndarray, item: int, k: int = 10, *, metric: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows to row ``item`` in the embedding (itself excluded).

    Returns
    -------
    indices : int64 [k] rows, nearest first.
    similarity : float32 [k] cosine similarity (metric cosine) or negative euclidean distance.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if not 0 <= int(item) < len(x):
        raise NotFoundError(f"row {item} is outside the {len(x)} embedding rows")
    prepared = _prepare(x, metric)
    idx, dist = knn(prepared[[int(item)]], prepared, int(k) + 1, metric=metric)
    keep = idx[0] != int(item)
    idx, dist = idx[0][keep][:k], dist[0][keep][:k]
    score = 1.0 - dist if metric == "cosine" else -dist
    return idx.astype(np.int64), score.astype(np.float32)


# ----- tables the page draws from ---------------------------------------------------------------
def find_items(data: Interactions, query: str, limit: int = 20) -> np.ndarray:
    """int64 indices of items whose title or raw id contains ``query`` (case-insensitive)."""
    text = query.strip()
    if not text:
        return np.zeros(0, dtype=np.int64)
    titles = pd.Series(data.item_titles(), dtype=object).astype(str)
    ids = pd.Series(data.item_ids, dtype=object).astype(str)
    hit = titles.str.contains(text, case=False, regex=False) | (ids == text)
    found = np.flatnonzero(hit.to_numpy())
    # Exact id matches first, then by popularity so the film people mean comes first.
    order = np.lexsort((-data.item_popularity[found], ~(ids.to_numpy()[found] == text)))
    return found[order][:limit].astype(np.int64)


def neighbours_frame(
    vectors: np.ndarray, data: Interactions, item: int, k: int = 10, *, metric: str = "cosine"
) -> pd.DataFrame:
    """Nearest neighbours of ``item`` in the embedding as a table (rank, id, title, similarity,
    popularity, categories)."""
    idx, score = nearest_neighbors(vectors, item, k, metric=metric)
    titles = data.item_titles()
    frame = pd.DataFrame(
        {
            "rank": np.arange(1, len(idx) + 1),
            "id": data.item_ids[idx].astype(str),
            "title": titles[idx],
            "similarity" if metric == "cosine" else "-distance": np.round(score, 4),
            "popularity": data.item_popularity[idx],
        }
    )
    if data.item_table is not None and CATEGORIES in data.item_table.columns:
        frame["categories"] = data.item_table[CATEGORIES].to_numpy(dtype=object)[idx]
    return frame


def numeric_attributes(table: pd.DataFrame | None) -> list[str]:
    """Numeric side columns that can colour a map (booleans and ids left out)."""
    if table is None:
        return []
    return [
        c for c in table.columns
        if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
    ]  # fmt: skip


def point_table(
    data: Interactions,
    result: MapResult,
    what: str = "items",
    *,
    per_user: pd.DataFrame | None = None,
    clusters: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per point on the map with what hover texts and colourings need.

    Items: ``index, id, title, x, y, popularity, popularity bucket, categories, genre`` (first
    category) and numeric item attributes. Users: ``index, id, title`` (the id), ``x, y,
    activity, activity bucket``, ``test result`` (when ``per_user`` is given) and user side
    columns. ``cluster`` is added when ``clusters`` [n_points] is given.
    """
    index = result.index
    frame = pd.DataFrame({"index": index, "x": result.coords[:, 0], "y": result.coords[:, 1]})
    if what == "items":
        frame["id"] = data.item_ids[index].astype(str)
        frame["title"] = data.item_titles()[index]
        frame["popularity"] = data.item_popularity[index]
        frame["popularity bucket"] = popularity_bucket(data.item_popularity)[index]
        table = data.item_table
        if table is not None and CATEGORIES in table.columns:
            cats = table[CATEGORIES].fillna("").astype(str).to_numpy(dtype=object)[index]
            frame["categories"] = cats
            first = pd.Series(cats, dtype=object).str.split("|", n=1).str[0]
            frame["genre"] = first.replace("", "(none)").to_numpy(dtype=object)
        side = table
    else:
        frame["id"] = data.user_ids[index].astype(str)
        frame["title"] = "user " + frame["id"]
        frame["activity"] = data.user_activity[index]
        frame["activity bucket"] = activity_bucket(data.user_activity)[index]
        if per_user is not None:
            frame["test result"] = hit_labels(per_user, data.n_users)[index]
        side = data.user_table
    if side is not None:
        for column in side.columns:
            if column in (TITLE, CATEGORIES) or column in frame.columns:
                continue
            values = side[column]
            if pd.api.types.is_numeric_dtype(values) or values.nunique(dropna=True) <= 30:
                frame[column] = values.to_numpy()[index]
    if clusters is not None:
        frame["cluster"] = np.char.add("cluster ", np.asarray(clusters).astype(str))
    return frame


def colour_options(table: pd.DataFrame) -> list[str]:
    """Columns of a :func:`point_table` a map can be coloured by, the most telling first."""
    preferred = [
        "genre", "popularity bucket", "cluster", "activity bucket", "test result", "popularity",
        "activity",
    ]  # fmt: skip
    skip = {"index", "x", "y", "id", "title", "categories"}
    extra = [c for c in table.columns if c not in skip and c not in preferred]
    return [c for c in preferred if c in table.columns] + extra


def user_overlay(
    split: Any, recs: pd.DataFrame | None, user: int, data: Interactions, result: MapResult,
    *, k: int = 10,
) -> pd.DataFrame:  # fmt: skip
    """A user's history, top-``k`` recommendations and test items, placed on an item map.

    Parameters
    ----------
    split : the run's :class:`~recsys_core.split.Split` (history = fold-in rows for held-out
        users, else train; test items from ``split.test``).
    recs : the run's ``recs.parquet`` frame (``user_index``, ``item_index``, ``rank``), or None.
    user : user index. data : the dataset (titles). result : the item map.

    Returns
    -------
    DataFrame with columns ``kind`` (``history``/``recommended``/``test``), ``index``, ``id``,
    ``title``, ``x``, ``y``, ``rank`` (recommendations only); items not on the map are dropped.
    """
    history_src = split.train
    fold_in = getattr(split, "fold_in", None)
    if fold_in is not None and user < fold_in.n_users and fold_in.binary[user].nnz:
        history_src = fold_in
    if not 0 <= int(user) < history_src.n_users:
        raise NotFoundError(f"user index {user} is not in this dataset")
    parts = [("history", history_src.binary[int(user)].indices, None)]
    if recs is not None and len(recs):
        mine = recs[recs["user_index"] == int(user)].sort_values("rank").head(k)
        parts.append(("recommended", mine["item_index"].to_numpy(), mine["rank"].to_numpy()))
    parts.append(("test", split.test.binary[int(user)].indices, None))
    position = pd.Index(result.index).get_indexer(
        np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts])
    )
    kinds = np.concatenate([np.full(len(p[1]), p[0], dtype=object) for p in parts])
    ranks = np.concatenate(
        [np.asarray(p[2], dtype=float) if p[2] is not None else np.full(len(p[1]), np.nan)
         for p in parts]
    )  # fmt: skip
    items = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts])
    on_map = position >= 0
    titles = data.item_titles()
    return pd.DataFrame(
        {
            "kind": kinds[on_map],
            "index": items[on_map],
            "id": data.item_ids[items[on_map]].astype(str),
            "title": titles[items[on_map]],
            "x": result.coords[position[on_map], 0],
            "y": result.coords[position[on_map], 1],
            "rank": ranks[on_map],
        }
    )


def interest_points(
    model: Any, user: int, vectors: np.ndarray, result: MapResult
) -> np.ndarray | None:
    """A multi-interest model's interest vectors of ``user`` placed on its item map.

    ``model.user_interests([user])`` [1, K, d] lives in the item-embedding space; each interest
    is placed like any transformed point (:func:`place`, from the fitted items).

    Returns
    -------
    float32 [K, 2], or None when the model has no ``user_interests``.
    """
    interests = getattr(model, "user_interests", None)
    if interests is None:
        return None
    vecs = np.asarray(interests(np.array([int(user)], dtype=np.int64)), dtype=np.float32)[0]
    if vecs.shape[-1] != vectors.shape[1]:
        raise DataError(
            f"the model's interest vectors have {vecs.shape[-1]} dimensions but its item "
            f"embeddings have {vectors.shape[1]}",
            fix="map the items of the same run the interests come from",
        )
    fit = result.fit_index
    coords_of = pd.Index(result.index).get_indexer(fit)
    return place(
        vecs, vectors[fit], result.coords[coords_of],
        metric=result.options.metric, n_neighbors=result.options.n_neighbors,
    )  # fmt: skip


def coordinates_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The downloadable coordinates: raw id, title, x, y (plus the colour columns)."""
    first = [c for c in ("id", "title", "x", "y") if c in table.columns]
    rest = [c for c in table.columns if c not in first and c != "index"]
    return table[first + rest]


__all__ = [
    "INLINE_LIMIT",
    "MapOptions",
    "MapResult",
    "activity_bucket",
    "align",
    "bench",
    "cache_paths",
    "check_vectors",
    "colour_options",
    "coordinates_frame",
    "find_items",
    "hit_labels",
    "interest_points",
    "kmeans_clusters",
    "match_clusters",
    "knn",
    "knn_preservation",
    "load_cached",
    "map_in_background",
    "map_size",
    "nearest_neighbors",
    "neighbours_frame",
    "numeric_attributes",
    "place",
    "planted_vectors",
    "point_table",
    "popularity_bucket",
    "project",
    "run_map",
    "similarity_vectors",
    "source_vectors",
    "trustworthiness_sample",
    "umap_task",
    "user_overlay",
]
