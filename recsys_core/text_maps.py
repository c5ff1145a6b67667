"""The items' text seen beside what a model learned: clusters of the text vectors and their map.

The Embeddings page colours a run's item map (behaviour) by clusters of the items' *text*
vectors, and draws the text map beside it: where the two agree, the model learned what the text
says; where a text cluster is scattered over the behaviour map, people treat those look-alike
items differently. Text vectors are the dataset's stored ``text_embedding`` column
(``embed-text``), else the TF-IDF + SVD of titles and tags (the offline default, labelled so).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from recsys_core.data.features import item_feature_blocks
from recsys_core.data.interactions import Interactions
from recsys_core.data.text_embeddings import TextEmbeddingInfo, text_vectors
from recsys_core.embeddings import MapOptions, MapResult, kmeans_clusters, point_table, project

TEXT_CLUSTER = "text cluster"


def text_source(
    data: Interactions, info: TextEmbeddingInfo | None = None
) -> tuple[np.ndarray, str] | None:
    """float32 [n_items, d] text vectors and where they come from, or None without any text.

    ``info`` (from :func:`recsys_core.data.text_embeddings.text_embedding_info`) names the
    stored model in the label.
    """
    stored = text_vectors(data)
    if stored is not None:
        what = info.label if info is not None else "stored item text embeddings"
        return stored, f"item text embeddings ({what})"
    block = item_feature_blocks(data).get("text")
    if block is None:
        return None
    return block, "TF-IDF + SVD of titles and tags (offline default; run embed-text for a model)"


def with_text_items(vectors: np.ndarray) -> np.ndarray:
    """int64 indices of the items that have a text vector (a non-zero row)."""
    return np.flatnonzero((np.abs(vectors) > 0).any(axis=1)).astype(np.int64)


def text_clusters(
    vectors: np.ndarray, index: np.ndarray, k: int = 8, *, seed: int = 0
) -> np.ndarray:
    """object [len(index)] ``"text cluster N"`` of the items ``index`` (``"no text"`` for items
    without a vector); spherical k-means over the items that have text."""
    index = np.asarray(index, dtype=np.int64)
    have = with_text_items(vectors)
    labels = np.full(len(vectors), "no text", dtype=object)
    if len(have):
        found = kmeans_clusters(vectors[have], k, metric="cosine", seed=seed)
        labels[have] = np.char.add(f"{TEXT_CLUSTER} ", found.astype(str)).astype(object)
    return labels[index]


def text_map(
    data: Interactions, vectors: np.ndarray, source: str, options: MapOptions | None = None
) -> MapResult:
    """UMAP map (cosine) of the items that have a text vector; ``index`` holds their indices."""
    keep = with_text_items(vectors)
    options = replace(options or MapOptions(), metric="cosine")
    result = project(vectors[keep], options=options, ids=data.item_ids[keep], source=source)
    return replace(result, index=keep, fit_index=keep[result.fit_index])


def text_map_table(
    data: Interactions, result: MapResult, clusters: np.ndarray
) -> Any:  # a DataFrame, as point_table
    """:func:`recsys_core.embeddings.point_table` of the text map with its ``text cluster``
    column (``clusters`` is per item of the dataset, as from :func:`text_clusters` over all)."""
    table = point_table(data, result, "items")
    table[TEXT_CLUSTER] = np.asarray(clusters, dtype=object)[result.index]
    return table


__all__ = [
    "TEXT_CLUSTER",
    "text_clusters",
    "text_map",
    "text_map_table",
    "text_source",
    "with_text_items",
]
