"""Data commands: import, import-sample, datasets (list/rename/delete), profile, synth.

Examples::

    python -m recsys_core import ratings.csv --name shop --map user=customer --min-item 5
    python -m recsys_core import-sample
    python -m recsys_core datasets --json
    python -m recsys_core datasets rename shop shop-2024
    python -m recsys_core profile movielens-small
    python -m recsys_core synth --users 1000 --items 500 --name demo
"""

from __future__ import annotations

import argparse
from typing import Any

from recsys_core.cli.main import print_json, workspace_of


def register(subparsers: Any) -> None:
    """Add the data commands to the top-level parser."""
    p = subparsers.add_parser(
        "import",
        help="import an interaction file, folder or zip into the workspace",
        description="Import CSV/TSV/Parquet, Excel .xlsx, gzip-compressed text (.csv.gz, "
        ".tsv.gz), MovieLens (100K, 1M, latest), RecBole atomic files or a zip of them. "
        "Columns are detected from common names; override with --map.",
    )
    p.add_argument("file", help="the file, folder or .zip to import")
    p.add_argument("--name", help="dataset name (default: from the file name)")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ROLE=COLUMN",
        help="column for a role (user, item, value, timestamp, event, split); repeatable; "
        "an empty COLUMN turns a role off",
    )
    p.add_argument("--threshold", type=float, default=0.0, help="keep rows with value >= X")
    p.add_argument(
        "--duplicates",
        choices=("last", "max", "sum", "count"),
        default="last",
        help="policy for repeated (user, item) rows (default: last)",
    )
    p.add_argument("--min-user", type=int, default=0, help="minimum interactions per user")
    p.add_argument("--min-item", type=int, default=0, help="minimum interactions per item")
    p.add_argument("--items", help="item side table (CSV/TSV/Parquet/.xlsx/.gz, RecBole .item)")
    p.add_argument("--users", help="user side table (CSV/TSV/Parquet/.xlsx/.gz, RecBole .user)")
    p.add_argument("--split-file", help="file assigning train/valid/test per (user, item)")
    p.add_argument("--separator", help="field separator (default: detected), e.g. ';' or tab")
    p.add_argument("--encoding", default="utf-8", help="utf-8 (default), latin-1 or cp1252")
    p.add_argument("--max-mb", type=float, default=500.0, help="file size limit in MB")
    p.add_argument(
        "--sheet", default="", help="Excel: sheet name or number (1 = first, the default)"
    )
    p.add_argument(
        "--max-id-length",
        type=int,
        default=1024,
        help="refuse user/item ids longer than this many characters (default 1024)",
    )
    p.add_argument(
        "--drop-column",
        action="append",
        default=[],
        metavar="COL",
        help="drop this column from every table before anything is stored (personal data); "
        "repeatable",
    )
    p.add_argument(
        "--pseudonymise",
        action="store_true",
        help="store keyed hashes (HMAC-SHA256, key kept in the workspace) instead of user ids",
    )
    p.add_argument("--json", action="store_true", help="print the dataset entry as JSON")
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("import-sample", help="import the bundled MovieLens sample")
    p.add_argument("--full", action="store_true", help="every rating, no demo filter")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_import_sample)

    p = subparsers.add_parser("datasets", help="list, rename or delete datasets")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_datasets)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    rename = actions.add_parser("rename", help="rename a dataset")
    rename.add_argument("old", help="current name or id")
    rename.add_argument("new", help="new name")
    rename.set_defaults(func=cmd_rename)
    delete = actions.add_parser(
        "delete",
        help="delete a dataset, its later versions, and their runs, tasks, studies and files",
    )
    delete.add_argument("dataset", help="name or id")
    delete.set_defaults(func=cmd_delete)

    p = subparsers.add_parser("profile", help="print a dataset's health report")
    p.add_argument("dataset", help="name or id")
    p.add_argument("--json", action="store_true", help="print stats and warnings as JSON")
    p.set_defaults(func=cmd_profile)

    p = subparsers.add_parser(
        "synth",
        help="import a synthetic dataset with planted structure, or write a large one",
        description="Without --shape: a small in-memory dataset imported into the workspace. "
        "With --shape tall|wide (or --interactions): a large log with power-law tails, "
        "generated in chunks and written as CSV (and Parquet with --parquet) to --out; "
        "--import also imports it. Size and tail flags override the shape's values.",
    )
    p.add_argument("--users", type=int, help="number of users (default 300, or the shape's)")
    p.add_argument("--items", type=int, help="number of items (default 200, or the shape's)")
    p.add_argument("--clusters", type=int, help="number of taste clusters (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--name", help="dataset name (default: synthetic-<users>x<items>)")
    p.add_argument("--shape", choices=("tall", "wide"), help="a reference shape (files on disk)")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the shape (e.g. 0.01)")
    p.add_argument("--interactions", type=int, help="number of distinct interactions")
    p.add_argument("--user-alpha", type=float, help="user activity tail exponent (Pareto)")
    p.add_argument("--item-alpha", type=float, help="item popularity power-law exponent")
    p.add_argument("--min-per-user", type=int, help="fewest interactions of a user")
    p.add_argument("--out", help="folder for the files (default: <workspace>/synth/<shape>)")
    p.add_argument("--parquet", action="store_true", help="also write Parquet copies")
    p.add_argument("--import", dest="do_import", action="store_true", help="import the CSV")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=cmd_synth)


# ---------------------------------------------------------------------------------------------
def _options(args: argparse.Namespace):  # noqa: ANN202 - ImportOptions, imported lazily
    from recsys_core.config import config_from_dict
    from recsys_core.data.importer import ImportOptions

    values: dict[str, Any] = {
        "mapping": tuple(args.map),
        "positive_threshold": args.threshold,
        "duplicates": args.duplicates,
        "min_user_interactions": args.min_user,
        "min_item_interactions": args.min_item,
        "encoding": args.encoding,
        "max_file_mb": args.max_mb,
        "sheet": args.sheet,
        "max_id_length": args.max_id_length,
        "drop_columns": tuple(args.drop_column),
        "pseudonymise": args.pseudonymise,
    }
    if args.separator:
        values["separator"] = args.separator
    if args.split_file:
        values["split_file"] = args.split_file
    return config_from_dict(ImportOptions, values)


def _print_info(info: Any) -> None:
    if info.already_imported:
        print(f"already imported as {info.name!r} ({info.id}); nothing changed")
    else:
        print(f"imported {info.name!r} ({info.id})")
    print(f"  {info.n_users:,} users, {info.n_items:,} items, {info.n_interactions:,} interactions")
    report = info.report
    if "rows_read" in report:
        print(f"  rows read: {report['rows_read']:,}; format: {report.get('format')}")
    dup = report.get("duplicates", {})
    if dup.get("rows_removed"):
        print(f"  duplicates: {dup['rows_removed']:,} rows resolved by policy {dup['policy']!r}")
    if report.get("filtered_rows"):
        print(f"  filtered rows: {report['filtered_rows']:,}")
    for note in report.get("notes", []):
        print(f"  note: {note}")
    for warning in report.get("warnings", []):
        print(f"  warning: {warning}")


def cmd_import(args: argparse.Namespace) -> int:
    from recsys_core.data.store import import_file

    info = import_file(
        workspace_of(args),
        args.file,
        name=args.name,
        options=_options(args),
        items=args.items,
        users=args.users,
    )
    if args.json:
        print_json(info.to_dict())
    else:
        _print_info(info)
    return 0


def cmd_import_sample(args: argparse.Namespace) -> int:
    from recsys_core.data.store import import_sample

    info = import_sample(workspace_of(args), full=args.full)
    if not args.quiet:
        _print_info(info)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from recsys_core.data.catalog import list_datasets

    infos = list_datasets(workspace_of(args))
    if args.json:
        print_json([info.to_dict() for info in infos])
        return 0
    if not infos:
        print("no datasets yet: run `python -m recsys_core import-sample` or `import FILE`")
        return 0
    width = max(len(i.name) for i in infos)
    print(
        f"{'name':<{width}}  {'id':<13}  {'users':>9}  {'items':>9}  {'interactions':>12}  source"
    )
    for i in infos:
        print(
            f"{i.name:<{width}}  {i.id:<13}  {i.n_users:>9,}  {i.n_items:>9,}  "
            f"{i.n_interactions:>12,}  {i.source}"
        )
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from recsys_core.data.store import rename_dataset

    info = rename_dataset(workspace_of(args), args.old, args.new)
    print(f"renamed {args.old!r} to {info.name!r} ({info.id})")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from recsys_core.data.store import get_dataset
    from recsys_core.purge import delete_dataset

    ws = workspace_of(args)
    info = get_dataset(ws, args.dataset)
    found = delete_dataset(ws, info.id)
    print(f"deleted {info.name!r} ({info.id}): {found.summary()}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from recsys_core.data.health import profile
    from recsys_core.data.store import get_dataset, load_dataset

    ws = workspace_of(args)
    info = get_dataset(ws, args.dataset)
    report = profile(load_dataset(ws, info.id), info.report)
    if args.json:
        print_json({"dataset": info.name, "stats": report.stats, "warnings": report.warnings})
        return 0
    s = report.stats
    print(f"{info.name} ({info.id})")
    rows = [
        ("users", f"{s['n_users']:,}"),
        ("items", f"{s['n_items']:,}"),
        ("interactions", f"{s['n_interactions']:,}"),
        ("density", f"{s['density']:.4%}"),
        (
            "per user min/median/p90/max",
            f"{s['user_min']} / {s['user_median']:g} / {s['user_p90']:g} / {s['user_max']}",
        ),
        (
            "per item min/median/p90/max",
            f"{s['item_min']} / {s['item_median']:g} / {s['item_p90']:g} / {s['item_max']}",
        ),
        ("cold users (< 5)", f"{s['cold_user_share']:.1%}"),
        ("popularity Gini", f"{s['gini']:.3f}"),
        ("items making 80% of interactions", f"{s['head_item_share']:.1%}"),
        (
            "ratings",
            f"{s['rating_min']:g}..{s['rating_max']:g} (mean {s['rating_mean']:.2f})"
            if s["has_ratings"]
            else "implicit (no ratings)",
        ),
        (
            "time span",
            f"{s['time_start'][:10]} .. {s['time_end'][:10]} ({s['time_span_days']:.0f} days)"
            if s["has_time"]
            else "no timestamps",
        ),
        ("duplicates removed", f"{s['duplicates_removed']:,}"),
        ("filtered rows", f"{s['filtered_rows']:,}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    if args.shape or args.interactions:
        return _synth_shape(args)
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames

    users, items_n = args.users or 300, args.items or 200
    clusters = args.clusters or 5
    config = SyntheticConfig(n_users=users, n_items=items_n, n_clusters=clusters, seed=args.seed)
    interactions, items, users_frame = make_frames(config)
    name = args.name or f"synthetic-{users}x{items_n}"
    info = import_frames(
        workspace_of(args),
        interactions,
        items=items,
        users=users_frame,
        name=name,
        source=f"synthetic users={users} items={items_n} clusters={clusters} seed={args.seed}",
    )
    _print_info(info)
    return 0


def _synth_shape(args: argparse.Namespace) -> int:
    """``synth --shape``: write the large log in chunks (cached by config), optionally import."""
    from pathlib import Path

    from recsys_core.data.synth_shapes import ensure_shape, shape_config

    cfg = shape_config(
        args.shape or "tall",
        args.scale,
        n_users=args.users,
        n_items=args.items,
        n_clusters=args.clusters,
        n_interactions=args.interactions,
        user_alpha=args.user_alpha,
        item_alpha=args.item_alpha,
        min_per_user=args.min_per_user,
        seed=args.seed,
    )
    ws = workspace_of(args)
    label = args.name or f"{args.shape or 'custom'}" + (
        f"-x{args.scale:g}" if args.scale != 1.0 else ""
    )
    folder = Path(args.out) if args.out else ws.root / "synth" / f"{label}-s{args.seed}"

    def progress(rows: int, total: int) -> None:
        if not args.json:
            print(f"  {rows:,} / {total:,} rows written", flush=True)

    result = ensure_shape(cfg, folder, parquet=args.parquet, progress=progress)
    if args.do_import:
        from recsys_core.data.store import import_file

        files = result["files"]
        info = import_file(ws, files["interactions.csv"], name=label, items=files["items.csv"])
        result["dataset"] = info.to_dict() if args.json else info.name
        if not args.json:
            _print_info(info)
    if args.json:
        print_json(result)
        return 0
    state = "reused" if result["cached"] else "wrote"
    print(
        f"{state} {result['rows']:,} interactions of {cfg.n_users:,} users x {cfg.n_items:,} "
        f"items in {result['folder']}"
    )
    for path in result["files"].values():
        print(f"  {path}")
    return 0
