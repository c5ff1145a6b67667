"""``runs``, ``worker`` and ``recommend`` commands.

::

    python -m recsys_core runs submit DATASET --model ease [--param l2=500] [--split random]
        [--test-ratio 0.2] [--split-seed 0] [--balance pop_norm=0.5] [--device auto] [--seed 0]
        [--group NAME] [--label TEXT] [--wait] [--json]
    python -m recsys_core runs list [--status done] [--dataset D] [--group G] [--json]
    python -m recsys_core runs show RUN [--json]
    python -m recsys_core runs cancel RUN | retry RUN | delete RUN | events RUN [--json]
    python -m recsys_core worker [--cpu-slots 1] [--task-slots 1] [--once] [--poll 0.5]
        [--executor local|ray]
    python -m recsys_core recommend RUN --user U [--k 10] [--json]

Split options are generated from ``SplitSpec``'s fields (``--test-ratio``, ``--valid-ratio``,
...; the split's seed is ``--split-seed`` so that it never clashes with the model's ``--seed``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from recsys_core.cli.main import print_json, workspace_of
from recsys_core.errors import ConfigError

#: SplitSpec fields whose natural flag would clash with a run option.
_RENAMED = {"seed": "split-seed", "k": "split-k", "protocol": "split"}


def add_split_flags(p: argparse.ArgumentParser) -> None:
    """One ``--FIELD`` flag per SplitSpec field (``dest=split__FIELD``), shared by every command
    that makes a split: submit, sweep, tune."""
    for spec in _split_fields():
        flag = "--" + _RENAMED.get(spec.name, spec.name.replace("_", "-"))
        extra = {"choices": list(spec.choices)} if spec.choices else {}
        p.add_argument(
            flag,
            dest=f"split__{spec.name}",
            default=None,
            metavar="VALUE",
            help=f"split: {spec.help} (default {spec.default!r})",
            **extra,
        )


def _split_fields() -> list[Any]:
    try:
        from recsys_core.config import describe
        from recsys_core.split_spec import SplitSpec
    except ImportError:  # the split module failing must not take the other commands down
        return []
    return describe(SplitSpec)


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="queue, watch, cancel and retry training runs")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    p = rsub.add_parser("submit", help="queue a run (the worker executes it)")
    p.add_argument("dataset", help="dataset id or name")
    p.add_argument(
        "--model", required=True, help="model registry key, e.g. most_popular, itemknn, ease"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="model hyperparameter, repeatable",
    )
    p.add_argument(
        "--balance",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="BalanceConfig option, repeatable (e.g. neg_alpha=0.5)",
    )
    add_split_flags(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="model seed (default 0)")
    p.add_argument("--group", default=None, help="sweep/group name")
    p.add_argument("--label", default=None, help="free-text label")
    p.add_argument(
        "--wait",
        action="store_true",
        help="start a worker if none is alive and wait until the run ends",
    )
    p.add_argument("--timeout", type=float, default=None, help="with --wait: give up after S s")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_submit)

    p = rsub.add_parser("list", help="list runs, newest first")
    p.add_argument("--status", action="append", default=None, help="filter, repeatable")
    p.add_argument("--dataset", default=None)
    p.add_argument("--group", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = rsub.add_parser("show", help="a run's status, progress, metrics and error")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)

    for name, helptext, func in (
        ("cancel", "cancel a queued or running run", _cancel),
        ("retry", "queue a finished/failed run's spec again", _retry),
    ):
        p = rsub.add_parser(name, help=helptext)
        p.add_argument("run")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    p = rsub.add_parser("delete", help="remove a finished run, its events and its files")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_delete)

    p = rsub.add_parser("events", help="a run's progress events")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_events)

    p = sub.add_parser("worker", help="execute queued runs and tasks (one worker per workspace)")
    p.add_argument("--cpu-slots", type=int, default=1, help="CPU runs at a time (default 1)")
    p.add_argument("--task-slots", type=int, default=1, help="background tasks at a time")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between idle queue checks")
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default=None,
        help="where runs execute (default: $RECSYS_EXPLORER_EXECUTOR, the workspace setting, "
        "else local); ray uses $RAY_ADDRESS or starts a local Ray instance",
    )
    p.set_defaults(func=_worker)

    p = sub.add_parser("recommend", help="top-k items of a finished run for one user")
    p.add_argument("run")
    p.add_argument("--user", required=True, help="raw user id")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_recommend)


def _pairs(pairs: list[str], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"{what} {pair!r}: expected NAME=VALUE, e.g. {what[2:]} l2=500")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _submit(args: argparse.Namespace) -> int:
    from recsys_core.jobs import api
    from recsys_core.jobs.spec import RunSpec

    ws = workspace_of(args)
    split = {
        key.removeprefix("split__"): value
        for key, value in vars(args).items()
        if key.startswith("split__") and value is not None
    }
    spec = RunSpec(
        dataset=args.dataset,
        model=args.model,
        split=split,
        config=_pairs(args.param, "--param"),
        balance=_pairs(args.balance, "--balance"),
        device=args.device,
        seed=args.seed,
        group=args.group,
        label=args.label,
    )
    run_id = api.submit(ws, spec)
    if not args.wait:
        if args.json:
            print_json({"id": run_id, "status": "queued"})
        else:
            print(run_id)
        return 0
    api.ensure_worker(ws)
    if not args.json:
        print(f"{run_id} queued; waiting", flush=True)
    record = api.wait(ws, run_id, timeout=args.timeout)
    _print_record(ws, record, as_json=args.json)
    return 0 if record.status == "done" else 1


def _list(args: argparse.Namespace) -> int:
    from recsys_core.data.catalog import get_dataset, list_datasets
    from recsys_core.jobs import api

    ws = workspace_of(args)
    records = api.list_runs(
        ws,
        dataset=get_dataset(ws, args.dataset).id if args.dataset else None,
        status=args.status,
        group=args.group,
        model=args.model,
        limit=args.limit,
    )
    if args.json:
        print_json([r.to_dict() for r in records])
        return 0
    if not records:
        print("no runs")
        return 0
    names = {info.id: info.name for info in list_datasets(ws)}
    print(f"{'id':24} {'status':11} {'model':14} {'dataset':18} {'progress':>8}  device")
    for r in records:
        dataset = names.get(r.spec.dataset, r.spec.dataset)[:18]
        print(
            f"{r.id:24} {r.status:11} {r.spec.model:14} {dataset:18} "
            f"{r.progress:8.0%}  {r.device_used or '-'}"
        )
    return 0


def _summary(ws: Any, record: Any) -> dict[str, Any]:
    """A run's record plus its aggregate metrics when it finished."""
    from recsys_core.jobs.artifacts import RunArtifacts

    out = record.to_dict()
    out["metrics"] = None
    if record.status == "done":
        try:
            out["metrics"] = RunArtifacts(ws, record.id).metrics().get("aggregate")
        except (KeyError, OSError, ValueError):
            out["metrics"] = None
    return out


def _print_record(ws: Any, record: Any, *, as_json: bool) -> None:
    summary = _summary(ws, record)
    if as_json:
        print_json(summary)
        return
    spec = record.spec
    print(f"run {record.id}: {record.status}  ({spec.model} on {spec.dataset}, seed {spec.seed})")
    print(
        f"  progress {record.progress:.0%}"
        + (f", eta {record.eta_seconds:.0f} s" if record.eta_seconds else "")
    )
    if record.device_used:
        print(f"  device {record.device_used}")
    if record.started_at:
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started_at))
        print(f"  started {start}" + (f", took {record.duration:.1f} s" if record.duration else ""))
    if summary["metrics"]:
        shown = {k: v for k, v in summary["metrics"].items() if k.endswith("@10")}
        for key, value in shown.items():
            print(f"  {key:22} {value:.4f}" if isinstance(value, float) else f"  {key} {value}")
    if record.error:
        print(f"  error: {record.error}")
    if record.log_tail:
        print("  last log lines:")
        for line in record.log_tail.splitlines()[-10:]:
            print(f"    {line}")


def _show(args: argparse.Namespace) -> int:
    from recsys_core.jobs import api

    ws = workspace_of(args)
    _print_record(ws, api.get_run(ws, args.run), as_json=args.json)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from recsys_core.jobs import api

    status = api.cancel(workspace_of(args), args.run)
    if args.json:
        print_json({"id": args.run, "status": status})
    else:
        print(f"{args.run}: {status}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    from recsys_core.jobs import api

    new_id = api.retry(workspace_of(args), args.run)
    if args.json:
        print_json({"id": new_id, "retry_of": args.run, "status": "queued"})
    else:
        print(new_id)
    return 0


def _delete(args: argparse.Namespace) -> int:
    from recsys_core.jobs import api

    api.delete_run(workspace_of(args), args.run)
    if args.json:
        print_json({"id": args.run, "deleted": True})
    else:
        print(f"{args.run}: deleted")
    return 0


def _events(args: argparse.Namespace) -> int:
    from recsys_core.jobs import api

    rows = api.events(workspace_of(args), args.run)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        extras = {k: v for k, v in row.items() if k not in ("ts", "step", "progress", "eta")}
        text = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in extras.items()
            if v is not None
        )
        print(f"step {row['step']}: {text}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    import logging

    from recsys_core.jobs.worker import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return serve(
        workspace_of(args),
        cpu_slots=args.cpu_slots,
        task_slots=args.task_slots,
        poll=args.poll,
        once=args.once,
        executor=args.executor,
    )


def _recommend(args: argparse.Namespace) -> int:
    from recsys_core.jobs.recommend import recommend_for

    rows = recommend_for(workspace_of(args), args.run, args.user, k=args.k)
    if args.json:
        print_json({"run": args.run, "user": args.user, "items": rows})
        return 0
    for row in rows:
        print(f"{row['rank']:3d}. {row['title']}  [{row['item']}]  {row['score']:.4f}")
    return 0
