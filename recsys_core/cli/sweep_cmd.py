"""``sweep`` command: queue a balance sweep and, with ``--wait``, print one row per point.

::

    python -m recsys_core sweep DATASET --model bpr [--split random] [--test-ratio 0.2]
        --grid neg_alpha=0,0.5,1 --grid ips_beta=0,0.5 [--param epochs=20]
        [--balance n_negatives=4] [--no-baseline] [--cpu-slots 2] [--wait] [--json]
    python -m recsys_core sweep --show GROUP [--json]

Without ``--wait`` it prints the sweep's group id. With ``--wait`` it waits for the live worker,
or runs a worker in this process (``--cpu-slots`` runs at a time) when none is alive.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from recsys_core.cli.main import print_json, workspace_of
from recsys_core.cli.runs_cmd import _pairs, add_split_flags
from recsys_core.errors import ConfigError

#: Columns printed per point (accuracy first, then the long-tail figures).
_PRINTED = (
    ("ndcg@10", "ndcg@10"),
    ("recall@10", "recall@10"),
    ("tail_coverage@10", "tail_cov"),
    ("avg_popularity@10", "avg_pop"),
    ("gini@10", "gini"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="balance sweep: one model and split, one or two balance options over a grid",
    )
    p.add_argument("dataset", nargs="?", help="dataset id or name")
    p.add_argument("--model", help="model registry key, e.g. bpr, ials, ease")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="OPTION=V1,V2,...",
        help="balance option and its values, once or twice (e.g. neg_alpha=0,0.5,1)",
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="model hyperparameter"
    )
    p.add_argument(
        "--balance",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="base balance option shared by every point",
    )
    add_split_flags(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="model seed (default 0)")
    p.add_argument(
        "--no-baseline", action="store_true", help="do not add the default-balance baseline run"
    )
    p.add_argument("--group", default=None, help="name of the sweep (default: a new id)")
    p.add_argument("--wait", action="store_true", help="wait and print one row per point")
    p.add_argument(
        "--cpu-slots",
        type=int,
        default=1,
        help="with --wait and no live worker: runs executed at the same time (default 1)",
    )
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after seconds")
    p.add_argument("--show", metavar="GROUP", help="print an existing sweep's table and exit")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from recsys_core import sweeps

    ws = workspace_of(args)
    if args.show:
        frame = sweeps.collect_sweep(ws, args.show)
        _print_table(args.show, frame, as_json=args.json)
        return 0
    if not args.dataset or not args.model or not args.grid:
        raise ConfigError(
            "sweep: DATASET, --model and at least one --grid are required, e.g. "
            "`sweep movielens-small --model bpr --grid neg_alpha=0,0.5,1`"
        )
    split = {
        key.removeprefix("split__"): value
        for key, value in vars(args).items()
        if key.startswith("split__") and value is not None
    }
    group = sweeps.submit_sweep(
        ws,
        args.dataset,
        args.model,
        sweeps.parse_grid(args.grid),
        split=split,
        config=_pairs(args.param, "--param"),
        balance=_pairs(args.balance, "--balance"),
        device=args.device,
        seed=args.seed,
        baseline=not args.no_baseline,
        group=args.group,
    )
    if not args.wait:
        if args.json:
            print_json({"group": group, "status": "queued"})
        else:
            print(group)
        return 0
    if not args.json:
        print(f"sweep {group} queued; waiting", flush=True)
    frame = sweeps.wait_sweep(ws, group, cpu_slots=args.cpu_slots, timeout=args.timeout)
    _print_table(group, frame, as_json=args.json)
    return 0 if (frame["status"] == "done").all() else 1


def _options(frame: Any) -> list[str]:
    from dataclasses import fields

    from recsys_core.balance import BalanceConfig

    names = {f.name for f in fields(BalanceConfig)}
    return [c for c in frame.columns if c in names]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _print_table(group: str, frame: Any, *, as_json: bool) -> None:
    if as_json:
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        print_json({"group": group, "points": records})
        return
    options = _options(frame)
    header = ["point", *options, "status", *(short for _, short in _PRINTED), "run"]
    rows = []
    for _, row in frame.iterrows():
        name = "baseline" if row["baseline"] else ""
        cells = [name, *(_cell(row[o]) for o in options), row["status"]]
        cells += [_cell(float(row[m])) for m, _ in _PRINTED]
        rows.append([*cells, row["run_id"]])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"sweep {group}")
    for line in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
    failed = frame[frame["status"] != "done"]
    for _, row in failed.iterrows():
        print(f"{row['run_id']}: {row['status']}" + (f" ({row['error']})" if row["error"] else ""))
