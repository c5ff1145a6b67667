"""Large synthetic logs with real-world shapes, generated in chunks and written as CSV/Parquet.

:mod:`recsys_core.data.synthetic` builds small in-memory datasets for tests and demos; this
module builds the reference shapes of the scale benchmark (issue 12) without ever holding the
whole log in memory:

- ``tall``: MovieLens-20M's shape, 20,000,000 interactions, 138,000 users, 27,000 items;
- ``wide``: a shop's shape, 5,000,000 interactions, 200,000 users, 300,000 items, most rare.

What is planted (so that models have something to learn, and the tails look real):

- user activity follows a power law: lengths are ``min_per_user`` plus a Lomax (Pareto II)
  excess with tail exponent ``user_alpha``, scaled to ``n_interactions`` in total and capped at
  ``max_user_share`` of the catalogue;
- item popularity follows a power law: item j has weight ``(rank + 1) ** -item_alpha`` within
  its taste cluster (rank = j // n_clusters), so each cluster has its own head and tail;
- taste clusters: a user draws a share ``in_cluster`` of their items from their own cluster,
  the rest from the whole catalogue by popularity; an item's first genre is its cluster's;
- no duplicate (user, item) pairs: draws are made with replacement, de-duplicated per user and
  topped up for the users left short; a heavy user whose cluster runs out is topped up from
  the whole catalogue, by popularity then uniformly (a few rounds; the result can fall short
  of ``n_interactions`` by a hair);
- time order that carries signal: a user's items arrive in a cluster-cyclic order shifted by a
  per-user phase (as in :mod:`recsys_core.data.synthetic`), at exponential gaps from a
  per-user start within ``span_days``.

Memory: one chunk of ``chunk_users`` users is generated, written and dropped at a time; the
item tables (a few floats per item) are the only state kept across chunks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.config import param, validate
from recsys_core.errors import ConfigError

#: Column names of the written files: MovieLens's, so that the importer detects them.
USER_COL, ITEM_COL, RATING_COL, TIME_COL = "userId", "movieId", "rating", "timestamp"
TOPUP_ROUNDS = 9
CLUSTER_ROUNDS = 3  # rounds that keep the in-cluster share
UNIFORM_ROUND = 6
EPOCH_START = 1_262_304_000  # 2010-01-01


@dataclass(frozen=True)
class ShapeConfig:
    """Size and tails of a large synthetic log (see the module docstring)."""

    n_users: int = param(138_000, "number of users", low=2, high=100_000_000)
    n_items: int = param(27_000, "number of items", low=2, high=100_000_000)
    n_interactions: int = param(
        20_000_000, "number of distinct (user, item) interactions", low=2, high=2_000_000_000
    )
    user_alpha: float = param(
        1.6, "tail exponent of user activity (Pareto; smaller = heavier tail)", low=0.5, high=10
    )
    item_alpha: float = param(
        1.2, "power-law exponent of item popularity within a cluster (0 = flat)", low=0, high=5
    )
    min_per_user: int = param(20, "fewest interactions of a user", low=1, high=100_000)
    max_user_share: float = param(
        0.3, "most interactions of a user, as a share of the catalogue", low=0.001, high=0.9
    )
    n_clusters: int = param(20, "number of taste clusters (= genres)", low=1, high=10_000)
    in_cluster: float = param(0.8, "share of a user's items from their cluster", low=0, high=1)
    span_days: int = param(3650, "days the timestamps span", low=1, high=36_500)
    chunk_users: int = param(20_000, "users generated per chunk (bounds memory)", low=1)
    seed: int = param(0, "random seed", low=0)

    def __post_init__(self) -> None:
        validate(self)
        if self.n_interactions < self.n_users * self.min_per_user:
            raise ConfigError(
                f"n_interactions: {self.n_interactions:,} is fewer than n_users x min_per_user "
                f"= {self.n_users * self.min_per_user:,}; lower min_per_user or add interactions"
            )
        cap = self.n_users * max(self.min_per_user, int(self.max_user_share * self.n_items))
        if self.n_interactions > cap:
            raise ConfigError(
                f"n_interactions: {self.n_interactions:,} do not fit in {self.n_users:,} users "
                f"x at most {self.max_user_share:.0%} of {self.n_items:,} items each; raise "
                "max_user_share or n_items"
            )

    def scaled(self, factor: float) -> ShapeConfig:
        """The same shape scaled down for tests and quick trials: users and interactions times
        ``factor`` (the mean history is kept), items times ``sqrt(factor)`` (so the catalogue
        share a user covers grows only by ``1 / sqrt(factor)``); tails and clusters kept."""
        return dataclasses.replace(
            self,
            n_users=max(2, round(self.n_users * factor)),
            n_items=max(2 * self.n_clusters, round(self.n_items * factor**0.5)),
            n_interactions=max(2, round(self.n_interactions * factor)),
        )


#: The two reference shapes of the scale benchmark.
SHAPES: dict[str, ShapeConfig] = {
    # MovieLens-20M: 20.0M ratings, 138,493 users (each >= 20), 26,744 movies; mean 144 and
    # median 68 ratings per user, the busiest user 9,254 (a third of the catalogue).
    "tall": ShapeConfig(),
    # A shop: 5M interactions of 200k users over 300k items; most users short, most items rare.
    "wide": ShapeConfig(
        n_users=200_000,
        n_items=300_000,
        n_interactions=5_000_000,
        user_alpha=1.3,
        item_alpha=1.1,
        min_per_user=5,
        max_user_share=0.01,
        n_clusters=50,
        in_cluster=0.7,
        span_days=730,
    ),
}


def shape_config(name: str, scale: float = 1.0, **overrides: object) -> ShapeConfig:
    """The named shape, scaled by ``scale`` and with fields overridden (None values ignored)."""
    if name not in SHAPES:
        raise ConfigError(f"shape: unknown shape {name!r}; choose one of {sorted(SHAPES)}")
    base = SHAPES[name] if scale == 1.0 else SHAPES[name].scaled(scale)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **changes) if changes else base


# ----- the generator ---------------------------------------------------------------------------
class _Catalogue:
    """Per-item tables: cluster, popularity weight and the cumulative distributions to draw
    from (one per cluster, laid side by side at offsets 0, 1, ..., k-1, then the global one
    at offset k), so one ``searchsorted`` draws every interaction of a chunk."""

    def __init__(self, cfg: ShapeConfig):
        k, n = cfg.n_clusters, cfg.n_items
        self.cluster = np.arange(n) % k
        self.weight = 1.0 / (np.arange(n) // k + 1.0) ** cfg.item_alpha
        order = np.argsort(self.cluster, kind="stable")  # items grouped by cluster
        cdf = np.empty(2 * n)
        for c in range(k):  # loop over clusters, not items
            members = order[self.cluster[order] == c]
            start = int(np.searchsorted(self.cluster[order], c))
            w = np.cumsum(self.weight[members])
            cdf[start : start + len(members)] = c + w / w[-1]
        w_all = np.cumsum(self.weight)
        cdf[n:] = k + w_all / w_all[-1]
        self.cdf = cdf
        self.item_of = np.concatenate([order, np.arange(n)])
        self.k = k
        self.cluster_sizes = np.bincount(self.cluster, minlength=k)

    def draw(self, rng: np.random.Generator, clusters: np.ndarray) -> np.ndarray:
        """One item per entry of ``clusters`` (a cluster id, or k for the whole catalogue)."""
        pos = np.searchsorted(self.cdf, clusters + rng.random(len(clusters)), side="left")
        return self.item_of[np.minimum(pos, len(self.cdf) - 1)]


def user_lengths(cfg: ShapeConfig, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: ``min_per_user`` + a Lomax excess, summing to n_interactions."""
    cap = max(cfg.min_per_user, int(cfg.max_user_share * cfg.n_items))
    excess_total = cfg.n_interactions - cfg.n_users * cfg.min_per_user
    raw = rng.pareto(cfg.user_alpha, size=cfg.n_users)
    lengths = np.full(cfg.n_users, float(cfg.min_per_user))
    for _ in range(20):  # rescale, cap, repeat: the capped users' excess goes to the others
        free = lengths < cap
        missing = cfg.n_interactions - lengths.sum()
        if missing <= 0.5 or not free.any():
            break
        lengths[free] += raw[free] / max(raw[free].sum(), 1e-12) * missing
        lengths = np.minimum(lengths, cap)
    out = np.floor(lengths).astype(np.int64)
    # Hand out the rounding remainder one by one to the users furthest below their share.
    rest = int(min(cfg.n_interactions - out.sum(), (cap - out).sum()))
    if rest > 0 and excess_total > 0:
        gap = np.where(out < cap, lengths - out, -1.0)
        out[np.argsort(-gap, kind="stable")[:rest]] += 1
    return out


def _chunk_pairs(
    cfg: ShapeConfig,
    cat: _Catalogue,
    lengths: np.ndarray,
    user_cluster: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (local user, item) pairs for one chunk: ``lengths[u]`` per user where possible."""
    n = cfg.n_items
    users = np.empty(0, np.int64)
    items = np.empty(0, np.int64)
    want = lengths.copy()
    for round_ in range(TOPUP_ROUNDS):
        # Oversample a little (more each round) so de-duplication rarely leaves users short.
        draw = np.ceil(want * (1.1 + 0.5 * round_)).astype(np.int64)
        u = np.repeat(np.arange(len(lengths)), draw)
        if round_ < UNIFORM_ROUND:
            # A user whose cluster is exhausted keeps falling short: later rounds lean on the
            # whole catalogue, and the last ones draw uniformly (the heaviest users only).
            own = rng.random(len(u)) < cfg.in_cluster / max(1, round_ - CLUSTER_ROUNDS + 2)
            new_items = cat.draw(rng, np.where(own, user_cluster[u], cat.k))
        else:
            new_items = rng.integers(0, n, size=len(u))
        keys = np.concatenate([users * n + items, u * n + new_items])
        # keep the earlier pairs first, then new ones in draw order, dropping repeats
        uniq, first = np.unique(keys, return_index=True)
        keys = uniq[np.argsort(first, kind="stable")]
        u_all = keys // n
        # at most lengths[u] per user: rank each pair within its user, keep ranks < length
        order = np.argsort(u_all, kind="stable")
        u_sorted = u_all[order]
        starts = np.searchsorted(u_sorted, np.arange(len(lengths)))
        rank = np.empty(len(keys), np.int64)
        rank[order] = np.arange(len(keys)) - starts[u_sorted]
        keys = keys[rank < lengths[u_all]]
        users, items = keys // n, keys % n
        want = lengths - np.bincount(users, minlength=len(lengths))
        if not want.any():
            break
    return users, items


def generate_chunks(cfg: ShapeConfig) -> Iterator[pd.DataFrame]:
    """Interaction frames (userId, movieId, rating, timestamp; integer ids from 1), one per
    chunk of ``cfg.chunk_users`` users, each sorted by user then time."""
    rng = np.random.default_rng(cfg.seed)
    cat = _Catalogue(cfg)
    lengths = user_lengths(cfg, rng)
    user_cluster = rng.integers(0, cfg.n_clusters, size=cfg.n_users)
    phase = rng.integers(0, cfg.n_items, size=cfg.n_users)
    span = cfg.span_days * 86_400
    for lo in range(0, cfg.n_users, cfg.chunk_users):
        hi = min(lo + cfg.chunk_users, cfg.n_users)
        crng = np.random.default_rng([cfg.seed, lo])  # each chunk reproducible on its own
        u, i = _chunk_pairs(cfg, cat, lengths[lo:hi], user_cluster[lo:hi], crng)
        # time order: by (user, cluster-cyclic position shifted by the user's phase)
        key = (i - phase[lo + u]) % cfg.n_items
        order = np.lexsort((key, u))
        u, i = u[order], i[order]
        counts = np.bincount(u, minlength=hi - lo)
        first = np.cumsum(counts) - counts  # each user's first row
        # a per-user start and a mean gap so that the user's whole history fits in the span
        start = crng.integers(0, span // 2, size=hi - lo)
        mean_gap = (span - start) / np.maximum(counts, 1) / 1.5
        gaps = crng.exponential(1.0, size=len(u)) * mean_gap[u] + 1.0
        csum = np.cumsum(gaps)
        offset = np.repeat(csum[first[counts > 0]] - gaps[first[counts > 0]], counts[counts > 0])
        ts = EPOCH_START + start[u] + (csum - offset).astype(np.int64)
        liked = cat.cluster[i] == user_cluster[lo + u]
        rating = np.where(liked, crng.integers(8, 11, len(u)), crng.integers(2, 8, len(u))) / 2
        yield pd.DataFrame(
            {
                USER_COL: (lo + u + 1).astype(np.int64),
                ITEM_COL: (i + 1).astype(np.int64),
                RATING_COL: rating.astype(np.float32),
                TIME_COL: ts.astype(np.int64),
            }
        )


_WORDS = np.array(
    "silent river broken crown last night golden city hidden garden winter road lost empire "
    "paper moon iron heart wild shore distant star quiet storm red horizon".split()
)


def item_frame(cfg: ShapeConfig) -> pd.DataFrame:
    """movieId, title ("Golden River (2003)") and pipe-separated genres (the cluster's first)."""
    rng = np.random.default_rng([cfg.seed, 7])
    n = cfg.n_items
    cluster = np.arange(n) % cfg.n_clusters
    genres = np.array([f"Genre{c}" for c in range(cfg.n_clusters)], dtype=object)
    first = pd.Series(_WORDS[rng.integers(0, len(_WORDS), n)]).str.capitalize()
    second = pd.Series(_WORDS[rng.integers(0, len(_WORDS), n)]).str.capitalize()
    year = pd.Series(1950 + rng.integers(0, 70, n)).astype(str)
    title = first + " " + second + " " + pd.Series(np.arange(1, n + 1)).astype(str)
    extra = genres[rng.integers(0, cfg.n_clusters, n)]
    return pd.DataFrame(
        {
            ITEM_COL: np.arange(1, n + 1, dtype=np.int64),
            "title": title + " (" + year + ")",
            "genres": pd.Series(genres[cluster]) + "|" + pd.Series(extra),
        }
    )


def user_clusters(cfg: ShapeConfig) -> np.ndarray:
    """The planted cluster of each user (index = userId - 1), as :func:`generate_chunks` draws
    it (same seed, same order of draws)."""
    rng = np.random.default_rng(cfg.seed)
    user_lengths(cfg, rng)
    return rng.integers(0, cfg.n_clusters, size=cfg.n_users)


def write_shape(
    cfg: ShapeConfig,
    folder: str | Path,
    *,
    parquet: bool = False,
    progress: object = None,
) -> dict[str, object]:
    """Write ``interactions.csv`` and ``items.csv`` (and ``.parquet`` copies when ``parquet``)
    into ``folder``, chunk by chunk, with pyarrow's streaming writers.

    ``progress(rows_written, total)`` is called after each chunk when given.
    Returns ``{"folder", "files": {name: path}, "rows", "users", "items"}``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"interactions.csv": folder / "interactions.csv", "items.csv": folder / "items.csv"}
    if parquet:
        files["interactions.parquet"] = folder / "interactions.parquet"
        files["items.parquet"] = folder / "items.parquet"
    tmp = {name: path.with_name(path.name + ".part") for name, path in files.items()}
    csv_writer = pq_writer = None
    rows = 0
    try:
        for frame in generate_chunks(cfg):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if csv_writer is None:
                csv_writer = pacsv.CSVWriter(tmp["interactions.csv"], table.schema)
                if parquet:
                    pq_writer = pq.ParquetWriter(tmp["interactions.parquet"], table.schema)
            csv_writer.write_table(table)
            if pq_writer is not None:
                pq_writer.write_table(table)
            rows += len(frame)
            if callable(progress):
                progress(rows, cfg.n_interactions)
    finally:
        for writer in (csv_writer, pq_writer):
            if writer is not None:
                writer.close()
    items = pa.Table.from_pandas(item_frame(cfg), preserve_index=False)
    pacsv.write_csv(items, tmp["items.csv"])
    if parquet:
        pq.write_table(items, tmp["items.parquet"])
    for name, path in files.items():  # in place only once complete
        tmp[name].replace(path)
    return {
        "folder": str(folder),
        "files": {name: str(path) for name, path in files.items()},
        "rows": rows,
        "users": cfg.n_users,
        "items": cfg.n_items,
    }


SHAPE_FILE = "shape.json"


def ensure_shape(
    cfg: ShapeConfig, folder: str | Path, *, parquet: bool = False, progress: object = None
) -> dict[str, object]:
    """:func:`write_shape` unless ``folder`` already holds this exact shape (same config in its
    ``shape.json``, every file present): the benchmark's cache. Adds ``"cached": bool``."""
    import json

    folder = Path(folder)
    marker = folder / SHAPE_FILE
    wanted = dataclasses.asdict(cfg)
    names = ["interactions.csv", "items.csv"] + (
        ["interactions.parquet", "items.parquet"] if parquet else []
    )
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("config") == wanted and all((folder / n).exists() for n in names):
            files = {n: str(folder / n) for n in names}
            return {**saved["result"], "files": files, "cached": True}
    marker.unlink(missing_ok=True)
    result = write_shape(cfg, folder, parquet=parquet, progress=progress)
    marker.write_text(json.dumps({"config": wanted, "result": result}, indent=2))
    return {**result, "cached": False}
