"""Benchmarks behind ``python -m recsys_core bench``: accuracy and speed per model, ingest speed
and evaluation speed. Figures are printed, never asserted in tests (wall time depends on the
machine).

Protocol of the model rows (the reference protocol of the model-zoo issue): every rating is a
positive, full ranking over all items, the test ranking excludes each user's train and valid
items, and models with early stopping use the valid part themselves.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys_core.data.interactions import Interactions
from recsys_core.device import resolve_device
from recsys_core.errors import ConfigError, NotFoundError
from recsys_core.sample import BENCH_PROTOCOLS, SAMPLE_RATINGS, SAMPLE_SPLIT_FILE
from recsys_core.split import Split, SplitSpec, make_split

DEFAULT_DATASET = SAMPLE_RATINGS
DEFAULT_SPLIT_FILE = SAMPLE_SPLIT_FILE

#: Peer figures on ml-latest-small with the fixed 80/10/10 split (model-zoo issue, 2-core CPU):
#: model key -> (peer, NDCG@10, Recall@10, peer wall seconds).
REFERENCE: dict[str, tuple[str, float, float, float]] = {
    "most_popular": ("plain training counts", 0.1275, 0.0842, 1.0),
    "itemknn": ("RecBole ItemKNN", 0.2317, 0.1663, 7.5),
    "ease": ("RecBole EASE", 0.2770, 0.1959, 45.8),
    "bpr": ("RecBole BPR", 0.1785, 0.1331, 315.6),
    "multvae": ("RecBole MultiVAE", 0.2067, 0.1591, 455.3),
    "neumf": ("RecBole NeuMF", 0.1639, 0.1246, 538.1),
    "lightgcn": ("RecBole LightGCN", 0.1988, 0.1430, 243.6),
    "ials": ("implicit 0.7.3 ALS", 0.2125, 0.1747, 4.1),
}


@dataclass
class BenchRow:
    """One model's figures."""

    model: str
    ndcg: float
    recall: float
    hit: float
    fit_seconds: float
    seconds_per_epoch: float | None
    epochs: int
    peak_memory_mb: float
    device: str
    eval_seconds: float
    peer: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ndcg@10": self.ndcg,
            "recall@10": self.recall,
            "hit@10": self.hit,
            "fit_seconds": self.fit_seconds,
            "seconds_per_epoch": self.seconds_per_epoch,
            "epochs": self.epochs,
            "peak_memory_mb": self.peak_memory_mb,
            "device": self.device,
            "eval_seconds": self.eval_seconds,
            "peer": self.peer,
        }


@contextlib.contextmanager
def peak_memory(device: torch.device, interval: float = 0.02) -> Iterator[dict[str, float]]:
    """Measure the peak memory growth (MB) of the block: CUDA max allocated on CUDA devices,
    else the process RSS sampled every ``interval`` seconds by a background thread (psutil)."""
    out: dict[str, float] = {"mb": 0.0}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        try:
            yield out
        finally:
            torch.cuda.synchronize(device)
            out["mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return
    import psutil

    proc = psutil.Process(os.getpid())
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], proc.memory_info().rss)
        out["mb"] = (peak[0] - base) / 2**20


def bench_model(
    key: str,
    split: Split,
    *,
    config: dict[str, Any] | None = None,
    device: str = "auto",
    seed: int = 0,
    with_peer: bool = True,
) -> BenchRow:
    """Fit model ``key`` on ``split.train`` (valid for early stopping), evaluate NDCG/Recall/Hit@10.

    ``with_peer``: attach the peer's reference figures (they hold for the fixed split only).

    Seconds per epoch come from the model's ``epoch_seconds_`` when it records them, else from
    the fit time divided by the number of progress events that carry an ``"epoch"``.
    """
    from recsys_core.config import config_from_dict
    from recsys_core.evaluate import evaluate
    from recsys_core.models import get_model

    cls = get_model(key)
    dev = resolve_device(device)
    model = cls(config_from_dict(cls.Config, config or {}), device=dev, seed=seed)
    epochs: list[float] = []

    def progress(step: int, metrics: dict[str, float]) -> None:
        if "epoch" in metrics:
            epochs.append(float(metrics["epoch"]))

    with peak_memory(dev) as mem:
        start = time.perf_counter()
        model.fit(split.train, valid=split.valid, progress=progress)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        fit_seconds = time.perf_counter() - start
    report = evaluate(model, split, ks=(10,), n_resamples=200)
    recorded = getattr(model, "epoch_seconds_", None)
    n_epochs = int(getattr(model, "n_epochs_run_", len(set(epochs))))
    if recorded:
        per_epoch: float | None = float(np.mean(recorded))
    elif epochs:
        per_epoch = fit_seconds / len(epochs)
    else:
        per_epoch = None
    peer = {}
    if with_peer and key in REFERENCE:
        name, p_ndcg, p_recall, p_wall = REFERENCE[key]
        peer = {"name": name, "ndcg@10": p_ndcg, "recall@10": p_recall, "wall_seconds": p_wall}
    return BenchRow(
        model=key,
        ndcg=report.aggregate["ndcg@10"],
        recall=report.aggregate["recall@10"],
        hit=report.aggregate["hit@10"],
        fit_seconds=fit_seconds,
        seconds_per_epoch=per_epoch,
        epochs=n_epochs,
        peak_memory_mb=mem["mb"],
        device=str(dev),
        eval_seconds=report.seconds,
        peer=peer,
    )


def eval_speed_benchmark(
    n_users: int = 6000,
    n_items: int = 3700,
    *,
    mean_history: float = 200.0,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, float]:
    """Seconds to evaluate all users of a synthetic ``n_users x n_items`` dataset (ML-1M shape:
    about 1M interactions) with a random-scores model: full ranking, train and valid excluded,
    every metric at k = 5, 10, 20 with bootstrap CIs, segments and beyond-accuracy metrics.

    Returns ``{"users", "items", "interactions", "eval_seconds", "eval_cpu_seconds",
    "threads", "ranking_seconds"}`` where ``ranking_seconds`` is the scoring + top-k + accuracy
    part alone and ``eval_cpu_seconds`` the process CPU time (all torch threads together).
    """
    from recsys_core.data.synthetic import SyntheticConfig, make_synthetic
    from recsys_core.evaluate import evaluate
    from recsys_core.models import get_model

    # Flatter popularity and weaker clusters than the defaults, so that about 0.9M distinct
    # interactions survive de-duplication (MovieLens-1M has 1.0M on 6,040 x 3,706).
    data = make_synthetic(
        SyntheticConfig(
            n_users=n_users,
            n_items=n_items,
            n_clusters=20,
            mean_history=mean_history,
            zipf=0.6,
            in_cluster=0.6,
            seed=seed,
        )
    )
    split = make_split(data, SplitSpec(protocol="random", test_ratio=0.1, valid_ratio=0.1))
    model = get_model("random")(device=device, seed=seed).fit(split.train)
    evaluate(model, split, ks=(10,), n_resamples=10)  # warm-up (allocator, kernels)
    timings: dict[str, float] = {}

    def progress(done: int, metrics: dict[str, float]) -> None:
        if metrics.get("eval_fraction") == 1.0:
            timings["ranked"] = time.perf_counter()

    start, cpu_start = time.perf_counter(), time.process_time()
    report = evaluate(model, split, ks=(5, 10, 20), progress=progress)
    total = time.perf_counter() - start
    # CPU seconds of this process (all threads): on a shared machine wall time also counts
    # waiting for a core, CPU time does not.
    cpu = time.process_time() - cpu_start
    return {
        "users": float(len(report.test_users)),
        "items": float(data.n_items),
        "interactions": float(data.nnz),
        "eval_seconds": total,
        "eval_cpu_seconds": cpu,
        "threads": float(torch.get_num_threads()),
        "ranking_seconds": timings.get("ranked", start + total) - start,
    }


def bench_split_spec(protocol: str, split_file: str | Path | None, seed: int) -> SplitSpec:
    """The split of a bench run: the fixed file, random 80/10/10, or leave-last-out by time."""
    if protocol not in BENCH_PROTOCOLS:
        raise ConfigError(
            f"bench: split {protocol!r} is not allowed; choose one of {BENCH_PROTOCOLS}"
        )
    if protocol == "fixed" and split_file:
        return SplitSpec(protocol="predefined", split_file=str(split_file), seed=seed)
    if protocol == "leave_last":
        return SplitSpec(protocol="leave_last", k=1, valid_k=1, seed=seed)
    return SplitSpec(protocol="random", test_ratio=0.1, valid_ratio=0.1, seed=seed)


def load_bench_data(dataset: str | Path) -> Interactions:
    """Read and encode any file the importer reads (every rating kept as a positive, no filters),
    in a throw-away workspace so the user's workspace is not touched."""
    from recsys_core.data.store import import_file, load_dataset
    from recsys_core.workspace import Workspace

    path = Path(dataset)
    if not path.exists():
        raise NotFoundError(f"benchmark dataset not found: {path}; pass --dataset PATH")
    with tempfile.TemporaryDirectory(prefix="recsys-bench-") as tmp:
        ws = Workspace(Path(tmp)).ensure()
        info = import_file(ws, path)
        return load_dataset(ws, info.id)


def default_models() -> list[str]:
    """Registered models that have a reference row, in the reference table's order."""
    from recsys_core.models import MODELS

    return [key for key in REFERENCE if key in MODELS]


def run_bench(
    *,
    dataset: str | Path = DEFAULT_DATASET,
    split_file: str | Path | None = DEFAULT_SPLIT_FILE,
    protocol: str = "fixed",
    models: Sequence[str] | None = None,
    configs: dict[str, dict[str, Any]] | None = None,
    device: str = "auto",
    ingest: bool = True,
    ingest_rows: int = 1_000_000,
    eval_speed: bool = True,
    seed: int = 0,
    on_row: Any = None,
) -> dict[str, Any]:
    """Run every benchmark and return the figures (what ``bench --json`` prints).

    Parameters
    ----------
    dataset : interaction file (default: the bundled ml-latest-small ratings).
    split_file : predefined split (default: the fixed 80/10/10 split); None = random 80/10/10.
    protocol : ``"fixed"`` (the split file), ``"random"`` (80/10/10) or ``"leave_last"`` (each
        user's last interaction by time is the test, the one before it valid: RecBole's
        sequential protocol). The peer figures apply to ``"fixed"`` only.
    models : registry keys (default: :func:`default_models`).
    configs : per-model hyperparameter overrides.
    ingest : also time ingesting a generated ``ingest_rows``-row CSV.
    eval_speed : also time the 6,000 x 3,700 full evaluation.
    on_row : optional callback receiving each BenchRow as soon as it is measured.
    """
    from recsys_core.models import get_model

    keys = list(models) if models else default_models()
    for key in keys:
        get_model(key)  # fail before any work on an unknown key
    out: dict[str, Any] = {"dataset": str(dataset), "device": str(resolve_device(device))}
    if ingest:
        try:
            from recsys_core.data.bench import ingest_benchmark
        except ImportError:
            out["ingest"] = None
        else:
            with tempfile.TemporaryDirectory(prefix="recsys-ingest-") as tmp:
                out["ingest"] = ingest_benchmark(ingest_rows, workdir=tmp)
    if eval_speed:
        out["eval_speed"] = eval_speed_benchmark(device=device, seed=seed)
    data = load_bench_data(dataset)
    split = make_split(data, bench_split_spec(protocol, split_file, seed))
    out["split"] = split.description
    out["data"] = {"users": data.n_users, "items": data.n_items, "interactions": data.nnz}
    rows = []
    fixed = protocol == "fixed" and bool(split_file)
    for key in keys:
        config = (configs or {}).get(key)
        row = bench_model(key, split, config=config, device=device, seed=seed, with_peer=fixed)
        rows.append(row.to_dict())
        if on_row is not None:
            on_row(row)
    out["models"] = rows
    return out


__all__ = [
    "BENCH_PROTOCOLS",
    "REFERENCE",
    "BenchRow",
    "bench_model",
    "bench_split_spec",
    "default_models",
    "eval_speed_benchmark",
    "load_bench_data",
    "peak_memory",
    "run_bench",
]
