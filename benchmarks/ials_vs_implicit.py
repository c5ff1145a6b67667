"""Our iALS beside implicit's ALS (the model zoo issue's reference), fit time and NDCG@10.

implicit is not a dependency of the product: install it in an environment of its own and pass
that interpreter, e.g.

    python3 -m venv /tmp/implvenv
    /tmp/implvenv/bin/pip install --only-binary=:all: implicit
    .venv/bin/python benchmarks/ials_vs_implicit.py --implicit-python /tmp/implvenv/bin/python

Both libraries fit the training part of the bundled sample's fixed split with the same factors,
iterations and CPU threads (implicit's defaults otherwise, ours likewise). Each round starts a
fresh process per library that fits ``--fits`` times, so first-fit costs count for both, and
the rounds alternate the libraries so that a noisy machine slows both alike. NDCG@10 comes from
our evaluator for both (full ranking, train and valid items excluded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_core.bench import (  # noqa: E402
    DEFAULT_DATASET,
    DEFAULT_SPLIT_FILE,
    bench_split_spec,
    load_bench_data,
)
from recsys_core.evaluate import evaluate  # noqa: E402
from recsys_core.split import Split, make_split  # noqa: E402

IMPLICIT_FITS = """
import json, sys, time
import numpy as np, scipy.sparse as sp
from threadpoolctl import threadpool_limits
from implicit.cpu.als import AlternatingLeastSquares
path, factors, iterations, threads, fits, out = sys.argv[1:7]
x = sp.load_npz(path).tocsr().astype(np.float32)
times = []
with threadpool_limits(1, "blas"):  # implicit's own advice: its threads, single-threaded BLAS
    for _ in range(int(fits)):
        model = AlternatingLeastSquares(
            factors=int(factors), iterations=int(iterations), random_state=0,
            num_threads=int(threads),
        )
        start = time.perf_counter()
        model.fit(x, show_progress=False)
        times.append(time.perf_counter() - start)
np.savez(out, users=model.user_factors, items=model.item_factors)
print(json.dumps(times))
"""

OUR_FITS = """
import json, sys, time
import numpy as np, torch
dataset, split_file, factors, iterations, threads, fits, root, out = sys.argv[1:9]
sys.path.insert(0, root)
from recsys_core.bench import bench_split_spec, load_bench_data
from recsys_core.models.ials import IALS, IALSConfig
from recsys_core.split import make_split
torch.set_num_threads(int(threads))
split = make_split(load_bench_data(dataset), bench_split_spec("fixed", split_file, 0))
times = []
for _ in range(int(fits)):
    model = IALS(IALSConfig(factors=int(factors), iterations=int(iterations)), device="cpu")
    start = time.perf_counter()
    model.fit(split.train)
    times.append(time.perf_counter() - start)
np.savez(out, users=model.user_embeddings(), items=model.item_embeddings())
print(json.dumps(times))
"""


class _Factors:
    """Just enough of a Recommender for :func:`evaluate`: scores = users @ items.T."""

    uses_sequences = False
    device = torch.device("cpu")

    def __init__(self, name: str, path: Path) -> None:
        arrays = np.load(path)
        self.name = name
        self.users = torch.as_tensor(arrays["users"], dtype=torch.float32)
        self.items = torch.as_tensor(arrays["items"], dtype=torch.float32)
        self.n_items_ = len(self.items)

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        return self.users[torch.as_tensor(users)] @ self.items.T


def _run(command: list[str]) -> list[float]:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_implicit(python: str) -> None:
    """Fail with the install command when ``python`` cannot import implicit."""
    probe = [python, "-c", "import implicit, threadpoolctl"]
    try:
        ok = subprocess.run(probe, capture_output=True).returncode == 0
    except FileNotFoundError:
        ok = False
    if not ok:
        raise SystemExit(
            f"--implicit-python {python}: cannot import implicit there; create an environment "
            "with `python3 -m venv /tmp/implvenv && /tmp/implvenv/bin/pip install "
            "--only-binary=:all: implicit` and pass /tmp/implvenv/bin/python"
        )


def side_by_side(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Alternate the two libraries ``args.rounds`` times; fit times and NDCG@10 per library."""
    check_implicit(args.implicit_python)
    split: Split = make_split(
        load_bench_data(args.dataset), bench_split_spec("fixed", args.split_file, 0)
    )
    shared = [str(args.factors), str(args.iterations), str(args.threads), str(args.fits)]
    times: dict[str, list[float]] = {"implicit": [], "ours": []}
    firsts: dict[str, list[float]] = {"implicit": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="ials-vs-implicit-") as tmp:
        train = Path(tmp) / "train.npz"
        sp.save_npz(train, sp.csr_matrix(split.train.binary, dtype=np.float32))
        outputs = {name: Path(tmp) / f"{name}.npz" for name in times}
        commands = {
            "implicit": [
                args.implicit_python,
                "-c",
                IMPLICIT_FITS,
                str(train),
                *shared,
                str(outputs["implicit"]),
            ],
            "ours": [
                sys.executable,
                "-c",
                OUR_FITS,
                str(args.dataset),
                str(args.split_file),
                *shared,
                str(ROOT),
                str(outputs["ours"]),
            ],
        }
        for _ in range(args.rounds):
            for name, command in commands.items():
                fits = _run(command)
                times[name] += fits
                firsts[name].append(fits[0])
                print(f"{name:9s} fits " + " ".join(f"{t:.3f}" for t in fits), flush=True)
        ndcg = {
            name: evaluate(_Factors(name, path), split, ks=(10,), n_resamples=10).aggregate[
                "ndcg@10"
            ]
            for name, path in outputs.items()
        }
    return {
        name: {
            "ndcg@10": ndcg[name],
            "median_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "max_s": max(times[name]),
            "first_fit_median_s": statistics.median(firsts[name]),
            "fits": len(times[name]),
        }
        for name in times
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--implicit-python", required=True, help="interpreter that has implicit")
    parser.add_argument("--dataset", default=str(DEFAULT_DATASET))
    parser.add_argument("--split-file", default=str(DEFAULT_SPLIT_FILE))
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fits", type=int, default=3, help="fits per process")
    results = side_by_side(parser.parse_args(argv))
    print(
        f"{'library':9s} {'NDCG@10':>8s} {'median s':>9s} {'min s':>7s} {'max s':>7s} "
        f"{'first fit s':>12s} fits"
    )
    for name, r in results.items():
        print(
            f"{name:9s} {r['ndcg@10']:8.4f} {r['median_s']:9.3f} {r['min_s']:7.3f} "
            f"{r['max_s']:7.3f} {r['first_fit_median_s']:12.3f} {r['fits']:4d}"
        )
    return results


if __name__ == "__main__":
    main()
