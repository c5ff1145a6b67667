"""Ingest benchmark: write a synthetic CSV, then time read + validate + encode.

Used by ``python -m recsys_core bench``; tests never assert on these times.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.data.importer import ImportOptions, build, read_source


def write_benchmark_csv(path: Path, n_rows: int, *, seed: int = 0) -> Path:
    """A MovieLens-like CSV (userId, movieId, rating, timestamp) with ``n_rows`` rows.

    Users and items are Zipf-ish so the id vocabularies look like real data
    (about n_rows / 100 users and n_rows / 50 items).
    """
    rng = np.random.default_rng(seed)
    n_users = max(n_rows // 100, 2)
    n_items = max(n_rows // 50, 2)
    users = rng.integers(1, n_users + 1, size=n_rows)
    items = np.minimum(rng.zipf(1.3, size=n_rows), n_items)
    frame = pd.DataFrame(
        {
            "userId": users,
            "movieId": items,
            "rating": rng.integers(1, 11, size=n_rows) / 2.0,
            "timestamp": 1_500_000_000 + rng.integers(0, 10**8, size=n_rows),
        }
    )
    frame.to_csv(path, index=False)
    return path


def ingest_benchmark(n_rows: int = 1_000_000, workdir: str | Path = ".") -> dict[str, float]:
    """Seconds to write, read, validate and encode an ``n_rows``-row CSV.

    Parameters
    ----------
    n_rows : rows of the generated CSV.
    workdir : folder for the temporary CSV (removed afterwards).

    Returns
    -------
    dict with ``rows``, ``write_s`` (untimed setup, for reference), ``read_s`` (parse to raw
    string columns), ``validate_encode_s`` (mapping, typing, duplicates, encoding into
    Interactions) and ``ingest_s`` (read + validate + encode: the figure to quote).
    """
    path = Path(workdir) / f"bench_ingest_{n_rows}.csv"
    start = time.perf_counter()
    write_benchmark_csv(path, n_rows)
    written = time.perf_counter()
    try:
        options = ImportOptions()
        raw = read_source(path, options)
        read = time.perf_counter()
        result = build(raw, options)
        done = time.perf_counter()
    finally:
        path.unlink(missing_ok=True)
    return {
        "rows": float(n_rows),
        "interactions": float(result.data.nnz),
        "write_s": written - start,
        "read_s": read - written,
        "validate_encode_s": done - read,
        "ingest_s": done - written,
    }


__all__ = ["ingest_benchmark", "write_benchmark_csv"]
