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

    p = subparsers.add_parser(
        "update",
        help="update a finished run with a later version of its dataset (an update run)",
        description="Queue a run whose model is the finished RUN updated with DATASET (a later "
        "version of RUN's dataset) by the model's update strategy, instead of trained again.",
    )
    p.add_argument("run", help="the finished run to update")
    p.add_argument("dataset", help="the later dataset version (id or name)")
    p.add_argument("--epochs", type=int, default=3, help="torch models: fine-tuning epochs")
    p.add_argument("--replay", type=float, default=1.0, help="old interactions per new one")
    p.add_argument("--sweeps", type=int, default=2, help="iALS: sweeps over touched rows")
    p.add_argument("--inline", action="store_true", help="execute here instead of the worker")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_update)

    p = subparsers.add_parser(
        "rolling",
        help="rolling evaluation over time windows: frozen vs update vs retrain vs sliding",
        description="Cut DATASET's timeline into windows; at each, models learn from the past "
        "only (per strategy) and are tested on the window. Results are stored in the "
        "workspace (the Timeline page reads them).",
    )
    p.add_argument("dataset", help="dataset id or name (needs timestamps)")
    p.add_argument("--model", action="append", required=True, help="model key, repeatable")
    p.add_argument("--windows", type=int, default=6, help="test windows (default 6)")
    p.add_argument(
        "--strategies",
        default="frozen,update,retrain",
        help="comma list of frozen, update, retrain, sliding",
    )
    p.add_argument("--cut", choices=("time", "count"), default="time", help="equal spans or counts")
    p.add_argument("--initial", type=float, default=0.5, help="share before the first window")
    p.add_argument("--window-size", type=int, default=2, help="sliding: windows trained on")
    p.add_argument("--param", action="append", default=[], metavar="MODEL.NAME=VALUE")
    p.add_argument(
        "--update",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="update settings, e.g. epochs=2",
    )
    p.add_argument("--k", type=int, default=10, help="metric cut-off (default 10)")
    p.add_argument("--device", default="auto")
    p.add_argument("--queue", action="store_true", help="run as a background task of the worker")
    p.add_argument("--json", action="store_true", help="print the result rows as JSON")
    p.set_defaults(func=cmd_rolling)


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


def cmd_update(args: argparse.Namespace) -> int:
    from recsys_core.jobs import api
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.updates import submit_update

    ws = workspace_of(args)
    settings = {"epochs": args.epochs, "replay": args.replay, "sweeps": args.sweeps}
    run_id = submit_update(ws, args.run, args.dataset, settings)
    if not args.inline:
        print_json({"run": run_id}) if args.json else print(f"queued update run {run_id}")
        return 0
    record = api.run_inline(ws, run_id)
    if record.status != "done":
        print(f"error: update run {run_id} {record.status}: {record.error}")
        return 2
    metrics = RunArtifacts(ws, run_id).metrics()
    parent = RunArtifacts(ws, args.run).metrics()
    out = {
        "run": run_id,
        "parent": args.run,
        "update": metrics["update"],
        "update_seconds": metrics["timing"]["fit_seconds"],
        "parent_fit_seconds": parent["timing"]["fit_seconds"],
        "ndcg@10": metrics["aggregate"].get("ndcg@10"),
        "parent_ndcg@10": parent["aggregate"].get("ndcg@10"),
    }
    if args.json:
        print_json(out)
        return 0
    u = out["update"]
    print(
        f"update run {run_id} ({u['strategy']}): {out['update_seconds']:.3f} s vs the parent's "
        f"fit {out['parent_fit_seconds']:.3f} s; {u['touched_users']:,} users and "
        f"{u['touched_items']:,} items touched, {u['new_users']:,} new users, "
        f"{u['new_items']:,} new items"
    )
    print(f"  NDCG@10 {out['ndcg@10']:.4f} (parent on its version: {out['parent_ndcg@10']:.4f})")
    return 0


def cmd_rolling(args: argparse.Namespace) -> int:
    import sys
    import time

    from recsys_core.config import config_to_dict
    from recsys_core.data.store import get_dataset, load_dataset
    from recsys_core.rolling import RollingSpec, ranking_flips, run_rolling, save_results

    ws = workspace_of(args)
    info = get_dataset(ws, args.dataset)
    spec = RollingSpec(
        models=tuple(args.model),
        strategies=args.strategies,
        windows=args.windows,
        cut=args.cut,
        initial=args.initial,
        window_size=args.window_size,
        k=args.k,
        configs=tuple(args.param),
        update=tuple(args.update),
        device=args.device,
    )
    if args.queue:
        from recsys_core.jobs import api

        task = api.submit_task(ws, "rolling", {"dataset": info.id, "spec": config_to_dict(spec)})
        print_json({"task": task}) if args.json else print(f"queued rolling task {task}")
        return 0

    def progress(fraction: float, message: str = "") -> None:
        print(f"[{100 * fraction:3.0f}%] {message}", file=sys.stderr, flush=True)

    results = run_rolling(load_dataset(ws, info.id), spec, progress)
    name = f"{info.id}-cli-{int(time.time())}"
    path = save_results(ws, name, info.id, spec, results)
    metric = f"ndcg@{spec.k}"
    if args.json:
        print_json({"name": name, "path": str(path), "rows": results.to_dict(orient="records")})
        return 0
    cols = [
        "model",
        "strategy",
        "window",
        "n_test_users",
        "cold_user_share",
        "cold_item_share",
        metric,
        f"{metric}_lo",
        f"{metric}_hi",
        "train_seconds",
    ]
    print(results[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    summary = results.groupby(["model", "strategy"]).agg(
        mean=(metric, "mean"), train_s=("train_seconds", "sum")
    )
    print(summary.to_string(float_format=lambda x: f"{x:.4f}"))
    flips = ranking_flips(results, metric)
    for row in flips.itertuples():
        print(f"flip: {row.strategy} window {row.window}: {row.leader} overtakes {row.trailer}")
    print(f"stored as {name} ({path})")
    return 0
