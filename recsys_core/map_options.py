"""How an embedding map is computed (UMAP's options), without loading numpy, umap or torch.

The command line builds its flags from :class:`MapOptions` before any command runs;
:mod:`recsys_core.embeddings` computes and caches the maps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from recsys_core.config import config_to_dict, param, validate

METRICS = ("cosine", "euclidean")
WHAT = ("items", "users")


@dataclass(frozen=True)
class MapOptions:
    """How a map is computed; the cache key of :func:`run_map` is a hash of these fields."""

    metric: str = param("cosine", "distance between embedding vectors", choices=METRICS)
    n_neighbors: int = param(
        15, "UMAP neighbourhood size: larger keeps more global structure", low=2, high=200
    )
    min_dist: float = param(
        0.1,
        "UMAP minimum distance between points on the map: smaller packs clusters tighter",
        low=0.0,
        high=1.0,
    )
    seed: int = param(0, "random seed (fixed seed = the same map every time)", low=0)
    max_fit: int = param(
        10_000,
        "UMAP is fitted on at most this many points (a seeded sample); the rest are transformed",
        low=100,
        high=1_000_000,
        log=True,
    )
    n_epochs: int = param(
        0,
        "UMAP optimisation epochs; 0 = UMAP's default (500 up to 10k points, 200 above)",
        low=0,
        high=2_000,
    )

    def __post_init__(self) -> None:
        validate(self)

    def key(self) -> str:
        """A short stable hash of the options (the cache file name)."""
        text = json.dumps(config_to_dict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]
