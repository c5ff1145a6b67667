"""``tune`` command: an Optuna study whose trials are ordinary runs.

::

    python -m recsys_core tune DATASET --model ials [--trials 30] [--timeout S]
        [--space name=lo:hi[:log]] [--param name=value] [--name STUDY] [--objective ndcg@10]
        [--direction maximize|minimize] [--sampler tpe|random|grid]
        [--pruner median|halving|none] [--parallel N] [--executor local|ray] [--device auto]
        [--seed 0] [split options] [--json]
    python -m recsys_core tune --show STUDY [--json]

With a live worker the trials queue for it; otherwise (or with ``--executor``) this process
serves the workspace as its worker while the study runs (``--parallel`` runs at once).
A study of an existing ``--name`` is extended by ``--trials`` more trials.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from recsys_core.cli.main import print_json, workspace_of
from recsys_core.cli.runs_cmd import _pairs, add_split_flags
from recsys_core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="hyperparameter search (Optuna); trials are ordinary runs")
    p.add_argument("dataset", nargs="?", help="dataset id or name")
    p.add_argument("--model", help="model registry key, e.g. ials, ease, itemknn")
    p.add_argument("--trials", type=int, default=20, help="new trials to run (default 20)")
    p.add_argument("--timeout", type=float, default=None, help="stop asking after seconds")
    p.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="NAME=LO:HI[:log]",
        help="narrow, add (NAME=LO:HI[:log|:lin], NAME=A|B) or fix (NAME=VALUE) a field; "
        "default: the ranges the model declares",
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="fixed hyperparameter"
    )
    p.add_argument("--name", default=None, help="study name (default: DATASET-MODEL-tune)")
    p.add_argument(
        "--objective",
        default="ndcg@10",
        metavar="METRIC@K",
        help="validation metric to optimise: ndcg, recall, precision, map, mrr, hit, coverage, "
        "tail_coverage, tail_share, avg_popularity, gini, novelty, personalisation or diversity "
        "at 5, 10 or 20 (default ndcg@10); pruning acts only with ndcg@10, the per-epoch curve",
    )
    p.add_argument(
        "--direction",
        choices=("maximize", "minimize"),
        default=None,
        help="default: the metric's own (minimise avg_popularity and gini, maximise the rest)",
    )
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random", "grid"))
    p.add_argument("--pruner", default="median", choices=("median", "halving", "none"))
    p.add_argument("--parallel", type=int, default=1, help="trials executing at once")
    p.add_argument("--executor", choices=("local", "ray"), default=None, help="where runs go")
    add_split_flags(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="model and sampler seed (default 0)")
    p.add_argument("--show", metavar="STUDY", help="print an existing study and exit")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_tune)


def _tune(args: argparse.Namespace) -> int:
    from recsys_core import studies
    from recsys_core.data.store import get_dataset
    from recsys_core.jobs import api

    ws = workspace_of(args)
    if args.show:
        _print(studies.summarise(ws, args.show), studies.trials_frame(ws, args.show), args.json)
        return 0
    if not args.dataset or not args.model:
        raise ConfigError(
            "tune: DATASET and --model are required, e.g. `tune movielens-small --model ials`"
        )
    dataset = get_dataset(ws, args.dataset)
    space, fixed = studies.parse_space(args.model, args.space)
    fixed = {**_pairs(args.param, "--param"), **fixed}
    split = {
        key.removeprefix("split__"): value
        for key, value in vars(args).items()
        if key.startswith("split__") and value is not None
    }
    spec = studies.StudySpec(
        name=args.name or f"{dataset.name}-{args.model}-tune",
        dataset=dataset.id,
        model=args.model,
        space=space,
        fixed=fixed,
        split=split,
        trials=args.trials,
        timeout=args.timeout,
        objective=args.objective,
        direction=args.direction,
        sampler=args.sampler,
        pruner=args.pruner,
        parallel=args.parallel,
        seed=args.seed,
        device=args.device,
    )
    progress = None if args.json else _printer()
    if not args.json:
        print(f"{spec.name}: {spec.direction} validation {spec.objective}; {spec.pruning_note}")
    if api.worker_alive(ws) and args.executor is None:
        summary = studies.run_study(ws, spec, progress=progress)
    else:
        from recsys_core.jobs.executor import make_executor
        from recsys_core.jobs.worker import Worker

        worker = Worker(ws, cpu_slots=spec.parallel, executor=make_executor(ws, args.executor))
        with worker.serving():
            summary = studies.run_study(ws, spec, tick=worker.tick, progress=progress)
            # the defaults run may still be queued behind the last trials: finish it too
            defaults = summary.get("defaults", {}).get("run")
            while defaults and api.get_run(ws, defaults).is_active:
                worker.tick()
                time.sleep(0.2)
        summary = studies.summarise(ws, spec.name)
    _print(summary, studies.trials_frame(ws, spec.name), args.json)
    return 0


def _printer():  # noqa: ANN202
    last = [""]

    def progress(fraction: float, message: str = "") -> None:
        if message != last[0]:
            last[0] = message
            print(f"  {message}", flush=True)

    return progress


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def _print(summary: dict[str, Any], frame: Any, as_json: bool) -> None:
    if as_json:
        trials = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        print_json({**summary, "trial_table": trials})
        return
    spec = summary["spec"]
    print(
        f"study {summary['study']}: {spec['model']} on {spec['dataset']}, {summary['trials']}; "
        f"{spec.get('direction') or 'maximize'} validation {spec['objective']}; "
        f"{summary.get('pruning', '')}"
    )
    columns = [c for c in frame.columns if c != "error"]
    rows = [[_cell(v) for v in row] for row in frame[columns].itertuples(index=False)]
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows, strict=True)]
    for line in [columns, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
    objective = f"valid {spec['objective']}"
    shown = dict.fromkeys(("ndcg@10", spec["objective"]))
    for key in ("best", "defaults"):
        part = summary.get(key)
        if not part:
            continue
        tests = ""
        for metric in shown:
            value = (part.get("test") or {}).get(metric)
            ci = (part.get("ci") or {}).get(metric)
            ci_text = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci and None not in ci else ""
            tests += f" test {metric} {_cell(value)}{ci_text}"
        params = f" params {part['params']}" if "params" in part else ""
        ci = part.get(f"{objective} ci")
        valid = _cell(part.get(objective)) + (
            f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci and None not in ci else ""
        )
        print(f"{key}: run {part['run']} {objective} {valid}{tests}{params}")
