"""Relations between users (follows, friends, household): import, validation and health.

A relation table has one row per edge: a source user, a target user, and optionally a type
(``follows``, ``friend``, ...) and a weight. It is validated like the other side tables:

- endpoints that are not users of the dataset are reported (counts and examples) and dropped;
- self-loops (a user related to themself) are counted and dropped;
- repeated edges are counted and merged (weights summed, the first type kept); for an
  undirected table ``a-b`` and ``b-a`` are the same edge.

It is stored beside the dataset's files as ``relations.parquet`` (raw ids) with
``relations.json`` (directed or not, the validation report). :func:`relation_health` gives the
size, the degree distribution and how often related users share items, against random pairs of
users (the homophily the social models rely on).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.interactions import Interactions
from recsys_core.errors import DataError

RELATIONS_FILE = "relations.parquet"
RELATIONS_META = "relations.json"
SOURCE_NAMES = ("source", "src", "from", "follower", "user", "user_id", "userid", "u")
TARGET_NAMES = ("target", "dst", "to", "followee", "friend", "related", "other", "v")
TYPE_NAMES = ("type", "relation", "kind", "label")
WEIGHT_NAMES = ("weight", "strength", "w", "value")


@dataclass(frozen=True, eq=False)
class Relations:
    """Validated relations of one dataset, by dense user index.

    Attributes
    ----------
    source, target : int32 [m] user indices of each edge (for undirected tables each edge once).
    weight : float32 [m]. types : object [m] or None.
    directed : whether ``source -> target`` differs from ``target -> source``.
    n_users : number of users of the dataset.
    """

    source: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    types: np.ndarray | None
    directed: bool
    n_users: int

    @property
    def n_edges(self) -> int:
        return len(self.source)

    def matrix(self) -> sp.csr_matrix:
        """float32 CSR [n_users, n_users]: row u holds the users u relates to (both ways when
        undirected), valued by weight."""
        src, dst, w = self.source, self.target, self.weight
        if not self.directed:
            src, dst, w = np.r_[src, dst], np.r_[dst, src], np.r_[w, w]
        m = sp.csr_matrix((w, (src, dst)), shape=(self.n_users, self.n_users), dtype=np.float32)
        m.sum_duplicates()
        return m


def _pick(columns: list[str], given: str | None, names: tuple[str, ...], role: str) -> str | None:
    if given:
        if given not in columns:
            raise DataError(
                f"the relation table has no column {given!r} (columns: {columns})",
                where=f"relations, {role} column",
                fix=f"name one of {columns} as the {role} column",
            )
        return given
    lowered = {c.lower().strip(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def prepare_relations(
    table: pd.DataFrame,
    data: Interactions,
    *,
    directed: bool = True,
    source: str | None = None,
    target: str | None = None,
    type_column: str | None = None,
    weight: str | None = None,
) -> tuple[Relations, dict[str, Any]]:
    """Validate a raw relation table against ``data``'s users; returns (relations, report).

    Columns are detected from common names (``source``/``target``, ``follower``/``followee``,
    ...) or given. The report counts rows, unknown endpoints (with examples), self-loops,
    repeated edges and the edges kept; it names the columns used.
    """
    columns = [str(c) for c in table.columns]
    table = table.set_axis(columns, axis=1)
    src_col = _pick(columns, source, SOURCE_NAMES, "source")
    dst_col = _pick(columns, target, TARGET_NAMES, "target")
    if src_col is None or dst_col is None or src_col == dst_col:
        if len(columns) >= 2 and source is None and target is None:
            src_col, dst_col = columns[0], columns[1]
        else:
            raise DataError(
                f"cannot tell the source and target columns apart in {columns}",
                where="relation table",
                fix="name them with source= and target= (CLI --source/--target)",
            )
    type_col = _pick(columns, type_column, TYPE_NAMES, "type")
    weight_col = _pick(columns, weight, WEIGHT_NAMES, "weight")
    lookup = pd.Index(np.asarray(data.user_ids).astype(str))
    raw_src = table[src_col].astype(str).str.strip().to_numpy(dtype=object)
    raw_dst = table[dst_col].astype(str).str.strip().to_numpy(dtype=object)
    src = lookup.get_indexer(raw_src)
    dst = lookup.get_indexer(raw_dst)
    unknown = (src < 0) | (dst < 0)
    unknown_ids = pd.unique(np.r_[raw_src[src < 0], raw_dst[dst < 0]])
    w = np.ones(len(table), dtype=np.float32)
    if weight_col is not None:
        w = pd.to_numeric(table[weight_col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            raise DataError(
                f"{int(bad.sum())} relation weights are missing, not numbers or not positive "
                f"(first at row {int(np.flatnonzero(bad)[0]) + 2} of the file)",
                where=f"relation table, column {weight_col!r}",
                fix="give every edge a positive weight, or leave the weight column out",
            )
        w = w.astype(np.float32)
    self_loop = ~unknown & (src == dst)
    keep = ~unknown & ~self_loop
    frame = pd.DataFrame({"s": src[keep], "t": dst[keep], "w": w[keep]})
    if not directed:  # one orientation per pair
        lo, hi = np.minimum(frame["s"], frame["t"]), np.maximum(frame["s"], frame["t"])
        frame["s"], frame["t"] = lo, hi
    if type_col is not None:
        frame["type"] = table[type_col].astype(object).to_numpy()[keep]
    grouped = frame.groupby(["s", "t"], sort=True)
    merged = grouped.agg({"w": "sum", **({"type": "first"} if type_col else {})}).reset_index()
    relations = Relations(
        source=merged["s"].to_numpy(np.int32),
        target=merged["t"].to_numpy(np.int32),
        weight=merged["w"].to_numpy(np.float32),
        types=merged["type"].to_numpy(object) if type_col else None,
        directed=directed,
        n_users=data.n_users,
    )
    report = {
        "rows": int(len(table)),
        "columns": {"source": src_col, "target": dst_col, "type": type_col, "weight": weight_col},
        "directed": bool(directed),
        "unknown_rows": int(unknown.sum()),
        "unknown_ids": int(len(unknown_ids)),
        "unknown_examples": [str(x) for x in unknown_ids[:5]],
        "self_loops": int(self_loop.sum()),
        "duplicates_merged": int(keep.sum() - len(merged)),
        "edges": relations.n_edges,
    }
    if relations.n_edges == 0:
        raise DataError(
            f"no relation is left after validation ({report['unknown_rows']} rows name unknown "
            f"users, e.g. {report['unknown_examples'][:3]}; {report['self_loops']} self-loops)",
            where="relation table",
            fix="use the same user ids as the interactions",
        )
    return relations, report


def relation_health(
    relations: Relations, data: Interactions, *, n_random: int = 20_000, seed: int = 0
) -> dict[str, Any]:
    """Size, degree distribution and item sharing of related users against random pairs.

    ``share_items`` is the share of related pairs with at least one item in common;
    ``random_share_items`` the same for ``n_random`` random pairs of distinct users; their
    mean Jaccard overlaps likewise. Degrees count both directions for undirected tables.
    """
    m = relations.matrix()
    out_deg = np.diff(m.indptr)
    in_deg = np.bincount(m.indices, minlength=data.n_users)
    x = data.binary
    rng = np.random.default_rng(seed)
    pairs = np.c_[relations.source, relations.target]
    if len(pairs) > n_random:
        pairs = pairs[rng.choice(len(pairs), n_random, replace=False)]
    a = rng.integers(0, data.n_users, n_random)
    b = (a + rng.integers(1, max(data.n_users, 2), n_random)) % data.n_users
    related = _overlap(x, pairs[:, 0], pairs[:, 1])
    random = _overlap(x, a, b)
    q = [0.0, 0.5, 0.9, 0.99, 1.0]
    quantiles = np.quantile(out_deg, q).tolist()
    return {
        "edges": relations.n_edges,
        "directed": relations.directed,
        "users_with_relations": int(((out_deg + in_deg) > 0).sum()),
        "out_degree_quantiles": dict(zip(map(str, q), quantiles, strict=True)),
        "mean_out_degree": float(out_deg.mean()),
        "degree_counts": np.bincount(np.minimum(out_deg, 50)).tolist(),
        "share_items": float((related > 0).mean()),
        "random_share_items": float((random > 0).mean()),
        "mean_jaccard": float(related.mean()),
        "random_mean_jaccard": float(random.mean()),
    }


def _overlap(x: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 [len(a)] Jaccard overlap of the item sets of users a[i] and b[i] (vectorised)."""
    common = np.asarray(x[a].multiply(x[b]).sum(axis=1)).ravel()
    sizes = np.diff(x.indptr)
    union = sizes[a] + sizes[b] - common
    return np.where(union > 0, common / np.maximum(union, 1), 0.0)


# ----- storage ----------------------------------------------------------------------------------
def save_relations(
    folder: Path, relations: Relations, data: Interactions, report: dict[str, Any]
) -> None:
    """Write ``relations.parquet`` (raw ids) and ``relations.json`` atomically in ``folder``."""
    frame = pd.DataFrame(
        {
            "source": data.user_ids[relations.source],
            "target": data.user_ids[relations.target],
            "weight": relations.weight,
        }
    )
    if relations.types is not None:
        frame["type"] = relations.types.astype(str)
    tag = uuid.uuid4().hex[:6]
    tmp = folder / f".{RELATIONS_FILE}.{tag}"
    meta_tmp = folder / f".{RELATIONS_META}.{tag}"
    try:
        frame.to_parquet(tmp, index=False)
        meta_tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
        os.replace(tmp, folder / RELATIONS_FILE)
        os.replace(meta_tmp, folder / RELATIONS_META)
    finally:
        tmp.unlink(missing_ok=True)
        meta_tmp.unlink(missing_ok=True)


def load_relations(folder: Path, data: Interactions) -> Relations | None:
    """The stored relations of the dataset in ``folder`` (None when it has none)."""
    path = folder / RELATIONS_FILE
    if not path.exists():
        return None
    report = json.loads((folder / RELATIONS_META).read_text(encoding="utf-8"))
    frame = pd.read_parquet(path)
    relations, _ = prepare_relations(
        frame, data, directed=bool(report.get("directed", True)),
        source="source", target="target", weight="weight",
        type_column="type" if "type" in frame.columns else None,
    )  # fmt: skip
    return relations


def attach_relations(
    ws: Any, ref: str, path: str | Path, *, directed: bool = True, **columns: str | None
) -> dict[str, Any]:
    """Read a relation file (any table format the importer reads), validate it against
    dataset ``ref`` and store it; returns the validation report with the health figures."""
    from recsys_core.data import store
    from recsys_core.data.importer import ImportOptions, check_source
    from recsys_core.data.readers import read_table_path

    source = Path(path).expanduser()
    check_source(source, ImportOptions(), name=source.name)
    table = read_table_path(source, source.name, max_bytes=ImportOptions().max_bytes)
    data = store.load_dataset(ws, ref)
    relations, report = prepare_relations(table, data, directed=directed, **columns)
    save_relations(store.dataset_dir(ws, ref), relations, data, report)
    return report | {"health": relation_health(relations, data)}


__all__ = [
    "RELATIONS_FILE",
    "Relations",
    "attach_relations",
    "load_relations",
    "prepare_relations",
    "relation_health",
    "save_relations",
]
