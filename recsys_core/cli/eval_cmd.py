"""Evaluation commands: ``evaluate`` (models x split -> metrics table) and ``bench``.

Examples::

    python -m recsys_core evaluate movielens-small --split random --model ease --param l2=500
    python -m recsys_core evaluate ratings.csv --split predefined --split-file split.csv \\
        --model most_popular --model ease --param ease.l2=500 --k 10 20 --json
    python -m recsys_core evaluate shop --split leave_last --model itemknn --save-recs recs.csv
    python -m recsys_core bench --models most_popular,itemknn,ease
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_core.cli.main import print_json, workspace_of
from recsys_core.errors import ConfigError

if TYPE_CHECKING:  # numpy and pandas load when a command runs, not when the parser is built
    import pandas as pd


def register(subparsers: Any) -> None:
    """Add ``evaluate`` and ``bench`` to the top-level parser."""
    from recsys_core.split_spec import PROTOCOLS

    p = subparsers.add_parser(
        "evaluate",
        help="fit models on a split and print full-ranking metrics with 95%% CIs",
        description="Split a dataset, fit each --model on the training part (valid part for "
        "early stopping), rank all items for every test user excluding what they have seen, "
        "and print the metrics with bootstrap confidence intervals.",
    )
    p.add_argument("dataset", help="workspace dataset name or id, or a file to import first")
    p.add_argument("--split", choices=PROTOCOLS, default="random", help="protocol (random)")
    p.add_argument("--split-file", help="predefined split file (user, item, part columns)")
    p.add_argument("--test-ratio", type=float, default=0.2, help="test share (0.2)")
    p.add_argument("--valid-ratio", type=float, default=0.1, help="validation share (0.1)")
    p.add_argument("--last-k", type=int, default=1, help="leave_last: test items per user (1)")
    p.add_argument("--valid-k", type=int, default=1, help="leave_last: valid items per user (1)")
    p.add_argument("--target-ratio", type=float, default=0.2, help="users: share to predict")
    p.add_argument("--cutoff", type=int, default=0, help="temporal: unix-time cutoff (0 = auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the models (0)")
    p.add_argument(
        "--model", action="append", required=True, help="registry key; repeat for several"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="[MODEL.]NAME=VALUE",
        help="hyperparameter, e.g. l2=500 (one model) or ease.l2=500; repeatable",
    )
    p.add_argument("--k", type=int, nargs="+", default=[10, 20], help="cut-offs (10 20)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--sampled", type=int, default=0, help="also sampled metrics with N negatives")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--save-recs", metavar="FILE", help="write each test user's top-k as CSV")
    p.set_defaults(func=cmd_evaluate)

    b = subparsers.add_parser(
        "bench",
        help="benchmark models (accuracy, fit time, memory), ingest and evaluation speed",
        description="Every rating a positive, full ranking, test ranking excluding train and "
        "valid items, early stopping on valid NDCG@10 where a model has it.",
    )
    from recsys_core.sample import BENCH_PROTOCOLS, SAMPLE_RATINGS, SAMPLE_SPLIT_FILE

    b.add_argument("--dataset", default=str(SAMPLE_RATINGS), help="interaction file")
    b.add_argument(
        "--split",
        choices=BENCH_PROTOCOLS,
        default="fixed",
        help="fixed (the split file, default), random 80/10/10, or leave_last (each user's "
        "last interaction by time; RecBole's sequential protocol)",
    )
    b.add_argument(
        "--split-file",
        default=str(SAMPLE_SPLIT_FILE),
        help="predefined split file; 'none' = random 80/10/10",
    )
    b.add_argument("--models", help="comma-separated registry keys (default: the reference set)")
    b.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="MODEL.NAME=VALUE",
        help="hyperparameter override, e.g. ease.l2=500",
    )
    b.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.add_argument("--skip-ingest", action="store_true", help="skip the 1M-row ingest figure")
    b.add_argument("--ingest-rows", type=int, default=1_000_000, help="rows of the ingest CSV")
    b.add_argument(
        "--skip-eval-speed", action="store_true", help="skip the 6,000 x 3,700 evaluation figure"
    )
    b.add_argument(
        "--scale",
        choices=("tall", "wide"),
        help="instead: the pipeline at real-world size (tall: 20M interactions, 138k users, "
        "27k items; wide: 5M, 200k users, 300k items), one table of stages",
    )
    b.add_argument("--scale-factor", type=float, default=1.0, help="shrink the shape (--scale)")
    b.add_argument(
        "--max-gb", type=float, default=10.0, help="memory a fit may plan to use (--scale)"
    )
    b.add_argument(
        "--max-fit-minutes", type=float, default=30.0, help="refuse longer fits (--scale)"
    )
    b.set_defaults(func=cmd_bench)


# ----- parameters ------------------------------------------------------------------------------
def split_params(pairs: list[str], models: list[str]) -> dict[str, list[str]]:
    """Route ``--param`` values to models: ``model.name=value``, or ``name=value`` with one model.

    Raises
    ------
    ConfigError
        For an unqualified parameter with several models, or a prefix naming no chosen model.
    """
    routed: dict[str, list[str]] = {m: [] for m in models}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE, e.g. l2=500")
        name, value = pair.split("=", 1)
        if "." in name:
            model, field = name.split(".", 1)
            if model not in routed:
                raise ConfigError(
                    f"--param {pair!r}: {model!r} is not one of the chosen models {models}"
                )
            routed[model].append(f"{field}={value}")
        elif len(models) == 1:
            routed[models[0]].append(pair)
        else:
            raise ConfigError(
                f"--param {pair!r}: several models are chosen; write MODEL.{name}=VALUE"
            )
    return routed


def _configs(pairs: list[str], models: list[str]) -> dict[str, Any]:
    from recsys_core.config import parse_params
    from recsys_core.models import get_model

    routed = split_params(pairs, models)
    return {m: parse_params(get_model(m).Config, routed[m]) for m in models}


# ----- evaluate --------------------------------------------------------------------------------
def _load(args: argparse.Namespace) -> tuple[str, Any]:
    from recsys_core.data.store import get_dataset, import_file, load_dataset

    ws = workspace_of(args)
    path = Path(args.dataset).expanduser()
    if path.exists():
        info = import_file(ws, path)
    else:
        info = get_dataset(ws, args.dataset)
    return info.name, load_dataset(ws, info.id)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recsys_core.evaluate import evaluate
    from recsys_core.memory import memory_guard
    from recsys_core.models import get_model
    from recsys_core.split import SplitSpec, make_split

    models = list(dict.fromkeys(args.model))
    configs = _configs(args.param, models)  # fail on a bad parameter before loading data
    if args.split_file and args.split != "predefined":
        raise ConfigError("--split-file needs --split predefined")
    name, data = _load(args)
    spec = SplitSpec(
        protocol=args.split,
        test_ratio=args.test_ratio,
        valid_ratio=args.valid_ratio,
        k=args.last_k,
        valid_k=args.valid_k,
        target_ratio=args.target_ratio,
        cutoff=args.cutoff,
        split_file=str(Path(args.split_file).expanduser().resolve()) if args.split_file else "",
        seed=args.seed,
    )
    split = make_split(data, spec)
    ks = tuple(sorted(set(args.k)))
    results = []
    for key in models:
        cls = get_model(key)
        model = cls(configs[key], device=args.device, seed=args.seed)
        start = time.perf_counter()
        train = split.train
        what = f"fitting {key} on {train.n_users:,} users x {train.n_items:,} items"
        with memory_guard(what, model.device):
            model.fit(train, valid=split.valid)
        fit_seconds = time.perf_counter() - start
        report = evaluate(model, split, ks=ks, sampled=args.sampled or None, seed=args.seed)
        results.append((key, model, fit_seconds, report))
        if args.save_recs:
            target = _recs_path(Path(args.save_recs), key, len(models))
            write_recs(target, data, report, k=max(ks))
    if args.json:
        from recsys_core.config import config_to_dict

        print_json(
            {
                "dataset": name,
                "split": spec.to_dict(),
                "split_description": split.description,
                "models": [
                    {
                        "model": key,
                        "config": config_to_dict(model.config),
                        "device": str(model.device),
                        "fit_seconds": fit_seconds,
                        **report.to_dict(),
                    }
                    for key, model, fit_seconds, report in results
                ],
            }
        )
        return 0
    print(f"dataset {name}: {data.n_users:,} users, {data.n_items:,} items, {data.nnz:,} rows")
    print(split.description)
    for k in ks:
        print()
        print(metrics_table(results, k).to_string())
    print()
    print(summary_table(results, ks[0]).to_string())
    for note in results[0][3].notes:
        print(f"note: {note}")
    return 0


def metrics_table(results: list[tuple[str, Any, float, Any]], k: int) -> pd.DataFrame:
    import pandas as pd

    """Model rows x accuracy-metric columns at cut-off ``k``, cells ``value [ci_low, ci_high]``."""
    from recsys_core.metrics import METRICS

    rows = {}
    for key, _model, _fit_seconds, report in results:
        row: dict[str, str] = {}
        for metric in METRICS:
            name = f"{metric}@{k}"
            lo, hi = report.ci[name]
            row[name] = f"{report.aggregate[name]:.4f} [{lo:.3f}, {hi:.3f}]"
        rows[key] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def summary_table(results: list[tuple[str, Any, float, Any]], k: int) -> pd.DataFrame:
    import pandas as pd

    """Model rows x beyond-accuracy metrics at ``k``, fit and evaluation seconds, device."""
    rows = {}
    for key, model, fit_seconds, report in results:
        row: dict[str, str] = {}
        for extra in ("coverage", "tail_coverage", "avg_popularity", "novelty", "diversity"):
            if f"{extra}@{k}" in report.aggregate:
                row[f"{extra}@{k}"] = f"{report.aggregate[f'{extra}@{k}']:.3f}"
        row["fit s"] = f"{fit_seconds:.2f}"
        row["eval s"] = f"{report.seconds:.2f}"
        row["device"] = str(model.device)
        rows[key] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _recs_path(path: Path, key: str, n_models: int) -> Path:
    return path if n_models == 1 else path.with_name(f"{path.stem}.{key}{path.suffix or '.csv'}")


def write_recs(path: Path, data: Any, report: Any, *, k: int) -> Path:
    """CSV of every test user's top-``k``: columns user, item, rank (1 = best), score, with raw
    ids, so anyone can recompute the metrics independently."""
    import numpy as np
    import pandas as pd

    items = report.recs_items[:, :k]
    scores = report.recs_scores[:, :k]
    users = report.test_users.repeat(items.shape[1])
    flat = items.ravel()
    keep = flat >= 0
    frame = pd.DataFrame(
        {
            "user": data.user_ids[users[keep]],
            "item": data.item_ids[flat[keep]],
            "rank": np.tile(np.arange(1, items.shape[1] + 1), items.shape[0])[keep],
            "score": scores.ravel()[keep],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


# ----- bench -----------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    if args.scale:
        return _bench_scale(args)
    from recsys_core.bench import default_models, run_bench
    from recsys_core.config import config_to_dict

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    models = models or default_models()
    configs = {m: config_to_dict(c) for m, c in _configs(args.param, models).items()}
    split_file = None if str(args.split_file).lower() in ("", "none") else args.split_file

    def on_row(row: Any) -> None:
        if not args.json:
            print(_bench_line(row.to_dict()), flush=True)

    if not args.json:
        print(_bench_header())
    out = run_bench(
        dataset=args.dataset,
        split_file=split_file,
        protocol=args.split,
        models=models,
        configs=configs,
        device=args.device,
        ingest=not args.skip_ingest,
        ingest_rows=args.ingest_rows,
        eval_speed=not args.skip_eval_speed,
        seed=args.seed,
        on_row=on_row,
    )
    if args.json:
        print_json(out)
        return 0
    print(f"data: {out['data']}; {out['split']}")
    if out.get("ingest"):
        ing = out["ingest"]
        print(
            f"ingest: {int(ing.get('rows', 0)):,} rows read, validated, encoded in "
            f"{ing.get('ingest_s', float('nan')):.2f} s"
        )
    if out.get("eval_speed"):
        ev = out["eval_speed"]
        print(
            f"evaluation: all {int(ev['users']):,} users x {int(ev['items']):,} items "
            f"({int(ev['interactions']):,} interactions) in {ev['eval_seconds']:.2f} s "
            f"(ranking + accuracy metrics {ev['ranking_seconds']:.2f} s; "
            f"{ev['eval_cpu_seconds']:.2f} CPU s on {int(ev['threads'])} threads) "
            f"on {out['device']}"
        )
    return 0


def _bench_scale(args: argparse.Namespace) -> int:
    from recsys_core.bench_scale import HEADER, format_row, run_scale_bench

    if not args.json:
        print(f"bench --scale {args.scale}: load average {', '.join(_load_average())}", flush=True)
        print(HEADER, flush=True)
    out = run_scale_bench(
        workspace_of(args),
        args.scale,
        scale=args.scale_factor,
        max_gb=args.max_gb,
        max_fit_minutes=args.max_fit_minutes,
        on_row=None if args.json else lambda row: print(format_row(row), flush=True),
    )
    if args.json:
        print_json(out)
    else:
        print(f"data: {out['data']}; load average at the end {', '.join(_load_average())}")
    return 0


def _load_average() -> list[str]:
    import os

    return [f"{x:.1f}" for x in os.getloadavg()]


def _bench_header() -> str:
    return (
        f"{'model':<14}{'NDCG@10':>9}{'Recall@10':>10}{'Hit@10':>8}{'fit s':>9}{'s/epoch':>9}"
        f"{'peak MB':>9}  {'device':<7}{'peer NDCG':>10}{'peer s':>8}"
    )


def _bench_line(row: dict[str, Any]) -> str:
    per_epoch = row["seconds_per_epoch"]
    peer = row.get("peer") or {}
    epoch_text = f"{per_epoch:.2f}" if per_epoch else "-"
    peer_ndcg = f"{peer['ndcg@10']:.4f}" if peer else "-"
    peer_wall = f"{peer['wall_seconds']:.1f}" if peer else "-"
    return (
        f"{row['model']:<14}{row['ndcg@10']:>9.4f}{row['recall@10']:>10.4f}{row['hit@10']:>8.4f}"
        f"{row['fit_seconds']:>9.2f}{epoch_text:>9}{row['peak_memory_mb']:>9.0f}  "
        f"{row['device']:<7}{peer_ndcg:>10}{peer_wall:>8}"
    )
