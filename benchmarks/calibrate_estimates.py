"""Measure fit time and peak memory of every registered model on synthetic data, next to the
pre-flight estimate (``recsys_core.estimate``): the measurements its calibration constants
come from.

    python benchmarks/calibrate_estimates.py --users 3000 --items 2000 --history 50 [--json]

Epoch-based models are fitted for one epoch (``epochs=1``; the estimate scales by epochs),
each in a fresh process (so the RSS growth is the model's own, not memory an earlier fit left
mapped). Prints one line per model: wall and CPU seconds of the fit, its peak RSS growth, the
estimate, and the ratios. On a busy machine compare the CPU seconds (the estimate is of an
otherwise idle machine: CPU seconds of one thread / ``THREAD_SPEEDUP``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import torch

EPOCH_FIELDS = ("epochs",)


def measure(key: str, users: int, items: int, history: float, threads: int) -> dict:
    """Fit ``key`` once (one epoch) in this process; its figures and its estimate."""
    from recsys_core.bench import peak_memory
    from recsys_core.config import config_from_dict
    from recsys_core.data.synthetic import SyntheticConfig, make_synthetic
    from recsys_core.estimate import DataShape, estimate_model
    from recsys_core.estimate_models import THREAD_SPEEDUP
    from recsys_core.models import MODELS

    torch.set_num_threads(threads)
    data = make_synthetic(
        SyntheticConfig(n_users=users, n_items=items, n_clusters=20, mean_history=history)
    )
    shape = DataShape(data.n_users, data.n_items, data.nnz, data.n_users)
    cls = MODELS[key]
    fields = set(cls.Config.__dataclass_fields__)
    overrides = {f: 1 for f in EPOCH_FIELDS if f in fields}
    config = config_from_dict(cls.Config, overrides)
    model = cls(config, device="cpu", seed=0)
    with peak_memory(torch.device("cpu")) as mem:
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(data)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    est = estimate_model(key, config, shape, "cpu")
    return {
        "model": key,
        "users": data.n_users,
        "items": data.n_items,
        "nnz": data.nnz,
        "config": overrides,
        "threads": threads,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_mb": round(mem["mb"], 1),
        "est_seconds": round(est.fit_seconds, 3),
        "cpu_ratio": round(cpu / THREAD_SPEEDUP / max(est.fit_seconds, 1e-9), 2),
        "est_peak_mb": round(est.peak_bytes / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--history", type=float, default=50.0)
    parser.add_argument("--models", help="comma-separated keys (default: every model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from recsys_core.models import MODELS

    keys = args.models.split(",") if args.models else [k for k in MODELS if k != "fusion"]
    rows = []
    spawn = multiprocessing.get_context("spawn")
    for key in keys:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            row = pool.submit(measure, key, args.users, args.items, args.history, args.threads)
            row = row.result()
        rows.append(row)
        if not args.json:
            print(
                f"{key:<15} {row['seconds']:8.2f} s wall {row['cpu_seconds']:8.2f} s CPU "
                f"(est {row['est_seconds']:8.2f}, CPU/est x{row['cpu_ratio']:5.2f})  "
                f"{row['peak_mb']:8.1f} MB (est {row['est_peak_mb']:8.1f})",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
