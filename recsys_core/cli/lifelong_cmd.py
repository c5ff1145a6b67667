"""Data that keeps arriving: ``append`` a batch to a dataset (a new version), ``update`` a
finished run with it, and ``rolling`` evaluation over time windows."""

from __future__ import annotations

import argparse
from typing import Any

from recsys_core.cli.main import print_json, workspace_of


def register(subparsers: Any) -> None:
    """Add the lifelong-learning commands to the top-level parser."""
    p = subparsers.add_parser(
        "append",
        help="append new interactions to a dataset, as a new version",
        description="Read FILE exactly as `import` does (the dataset's column mapping, threshold "
        "and duplicate policy) and store the union as a new version of DATASET; the old "
        "version and its runs stay as they are. New users and items are reported.",
    )
    p.add_argument("dataset", help="dataset id or name to extend")
    p.add_argument("file", help="the file, folder or .zip with the new interactions")
    p.add_argument("--name", help="name of the new version (default: <name>-v<number>)")
    p.add_argument("--items", help="item side table for new items (CSV/TSV/Parquet)")
    p.add_argument("--users", help="user side table for new users (CSV/TSV/Parquet)")
    p.add_argument("--json", action="store_true", help="print the new version's entry as JSON")
    p.set_defaults(func=cmd_append)


def cmd_append(args: argparse.Namespace) -> int:
    from recsys_core.data.versions import append_file, version_of

    info = append_file(
        workspace_of(args),
        args.dataset,
        args.file,
        name=args.name,
        items=args.items,
        users=args.users,
    )
    if args.json:
        print_json(info.to_dict())
        return 0
    v = version_of(info)
    added = v["added"]
    verb = "already appended as" if info.already_imported else "appended as"
    print(f"{verb} {info.name!r} ({info.id}), version {v['number']} of {v['root']}")
    print(
        f"  +{added['interactions']:,} interactions, {added['new_users']:,} new users, "
        f"{added['new_items']:,} new items ({added['touched_users']:,} users and "
        f"{added['touched_items']:,} items touched)"
    )
    print(f"  now {info.n_users:,} users, {info.n_items:,} items, {info.n_interactions:,} rows")
    if added["new_users"]:
        print(f"  new users e.g. {added['new_user_examples']}")
    if added["new_items"]:
        print(f"  new items e.g. {added['new_item_examples']}")
    return 0
