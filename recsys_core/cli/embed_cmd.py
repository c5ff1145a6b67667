"""``embed`` command: the UMAP map of a finished run's items or users.

::

    python -m recsys_core embed RUN [--what items|users] [--metric cosine|euclidean]
        [--neighbors 15] [--min-dist 0.1] [--seed 0] [--max-fit 20000] [--epochs 0]
        [--out FILE.csv] [--json]

Writes the coordinates (raw id, title, x, y) to ``--out`` when given, and prints the
faithfulness figures, what UMAP was fitted on and the seconds taken. The map is cached in the
run's ``umap/`` folder, so running it again with the same options is instant.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from recsys_core.cli.main import print_json, workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    from recsys_core.config import describe
    from recsys_core.map_options import METRICS, WHAT, MapOptions

    defaults = {spec.name: spec.default for spec in describe(MapOptions)}
    p = sub.add_parser(
        "embed",
        help="UMAP map of a finished run's item or user embeddings (cached in the run folder)",
        description="Project run RUN's item or user vectors to 2-D with UMAP and measure how "
        "faithful the map is (k-NN preservation@10, trustworthiness).",
    )
    p.add_argument("run", help="run id (see `runs list --status done`)")
    p.add_argument("--what", choices=WHAT, default="items", help="map items or users")
    p.add_argument("--metric", choices=METRICS, default=defaults["metric"])
    p.add_argument(
        "--neighbors", type=int, default=defaults["n_neighbors"], help="UMAP n_neighbors"
    )
    p.add_argument("--min-dist", type=float, default=defaults["min_dist"], help="UMAP min_dist")
    p.add_argument("--seed", type=int, default=defaults["seed"])
    p.add_argument(
        "--max-fit",
        type=int,
        default=defaults["max_fit"],
        help="fit UMAP on at most this many points (a seeded sample) and transform the rest",
    )
    p.add_argument(
        "--epochs", type=int, default=defaults["n_epochs"], help="UMAP epochs (0 = default)"
    )
    p.add_argument("--out", help="write the coordinates to this CSV file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)

    b = sub.add_parser(
        "embed-bench",
        help="time a UMAP map of N synthetic D-dimensional embeddings (warm process)",
        description="Benchmark the map engine on planted synthetic embeddings: seconds, CPU "
        "seconds and faithfulness. UMAP's one-off compilation is done first and reported apart.",
    )
    b.add_argument("--n", type=int, default=100_000, help="number of vectors (default 100000)")
    b.add_argument("--dim", type=int, default=64, help="their dimension (default 64)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.set_defaults(func=run_bench)


def run(args: argparse.Namespace) -> int:
    from recsys_core.embeddings import MapOptions, coordinates_frame, point_table, run_map
    from recsys_core.jobs.artifacts import RunArtifacts

    ws = workspace_of(args)
    options = MapOptions(
        metric=args.metric,
        n_neighbors=args.neighbors,
        min_dist=args.min_dist,
        seed=args.seed,
        max_fit=args.max_fit,
        n_epochs=args.epochs,
    )
    result = run_map(ws, args.run, args.what, options)
    summary = result.summary() | {"run_id": args.run, "what": args.what, "out": None}
    if args.out:
        table = point_table(RunArtifacts(ws, args.run).dataset(), result, args.what)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        coordinates_frame(table)[["id", "title", "x", "y"]].to_csv(out, index=False)
        summary["out"] = str(out)
    if args.json:
        print_json(summary)
        return 0
    faith = result.faithfulness
    trust = faith["trustworthiness@10"]
    origin = "cached" if result.cached else "computed"
    print(f"Run {args.run}: map of {result.n_points:,} {args.what} ({result.source})")
    print(
        f"  k-NN preservation@10 {faith['knn_preservation@10']:.3f} "
        f"(random layout: {faith['random_baseline@10']:.3f}); "
        f"trustworthiness@10 {'n/a' if math.isnan(trust) else f'{trust:.3f}'}"
    )
    print(f"  {result.sampling_note}")
    print(f"  {result.seconds:.1f} s ({origin})")
    for note in result.notes:
        print(f"  note: {note}")
    if summary["out"]:
        print(f"  coordinates written to {summary['out']}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from recsys_core.embeddings import bench

    figures = bench(args.n, args.dim, seed=args.seed)
    if args.json:
        print_json(figures)
        return 0
    faith = figures["faithfulness"]
    print(f"Map of {figures['n_points']:,} x {figures['dim']} synthetic embeddings")
    print(
        f"  {figures['seconds']:.1f} s wall, {figures['cpu_seconds']:.1f} s CPU "
        f"(UMAP compilation before it: {figures['warmup_seconds']:.1f} s)"
    )
    print(
        f"  fitted on {figures['n_fit']:,}, transformed {figures['n_transformed']:,}; "
        f"k-NN preservation@10 {faith['knn_preservation@10']:.3f} "
        f"(random {faith['random_baseline@10']:.5f}), "
        f"trustworthiness@10 {faith['trustworthiness@10']:.3f}"
    )
    return 0
