"""``relations`` command: attach a user-user relation table to a dataset and read its health.

::

    python -m recsys_core relations DATASET FILE [--undirected] [--source COL] [--target COL]
        [--type COL] [--weight COL] [--json]

FILE is any table the importer reads (CSV, TSV, Parquet, .xlsx, .gz) with one row per edge.
Unknown user ids, self-loops and repeated edges are counted and dropped; the health figures
(degrees, how often related users share items against random pairs) are printed.
"""

from __future__ import annotations

import argparse

from recsys_core.cli.main import print_json, workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "relations",
        help="attach a user-user relation table (follows, friends) to a dataset",
        description="Validate a relation table against the dataset's users, store it, and "
        "print its health (size, degrees, item sharing of related users vs random pairs).",
    )
    p.add_argument("dataset", help="dataset name or id")
    p.add_argument("file", help="relation table: one row per edge (source, target[, type, weight])")
    p.add_argument(
        "--undirected", action="store_true", help="a-b and b-a are one edge (friends, household)"
    )
    for role in ("source", "target", "type", "weight"):
        p.add_argument(f"--{role}", help=f"{role} column (default: detected from common names)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recsys_core.data.relations import attach_relations

    report = attach_relations(
        workspace_of(args),
        args.dataset,
        args.file,
        directed=not args.undirected,
        source=args.source,
        target=args.target,
        type_column=args.type,
        weight=args.weight,
    )
    if args.json:
        print_json(report)
        return 0
    health = report["health"]
    kind = "directed" if report["directed"] else "undirected"
    print(f"Stored {report['edges']:,} {kind} relations from {report['rows']:,} rows")
    print(
        f"  dropped: {report['unknown_rows']:,} rows naming {report['unknown_ids']:,} unknown "
        f"users (e.g. {', '.join(report['unknown_examples'][:3]) or '-'}), "
        f"{report['self_loops']:,} self-loops; {report['duplicates_merged']:,} repeated edges "
        "merged (weights summed)"
    )
    q = health["out_degree_quantiles"]
    print(
        f"  {health['users_with_relations']:,} users have a relation; out-degree median "
        f"{q['0.5']:.0f}, 90% {q['0.9']:.0f}, max {q['1.0']:.0f} (mean "
        f"{health['mean_out_degree']:.2f})"
    )
    print(
        f"  related users share an item {health['share_items']:.0%} of the time (random pairs "
        f"{health['random_share_items']:.0%}); mean Jaccard {health['mean_jaccard']:.3f} vs "
        f"{health['random_mean_jaccard']:.3f}"
    )
    return 0
