"""``explain`` command: why did a finished run recommend an item to a user?

::

    python -m recsys_core explain RUN --user U --item I [--target score|rank] [--k 10]
        [--method auto|exact|permutation|kernel] [--max-features 50] [--nsamples N]
        [--device auto] [--json]

Prints the attributions (raw ids and titles; side features with kind ``user`` or ``item``), the
base value, the score, the efficiency gap and the faithfulness figure; ``--json`` prints
``Explanation.to_dict()``, whose features carry the same ``kind``.
"""

from __future__ import annotations

import argparse

from recsys_core.cli.main import print_json, workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="SHAP attributions of one recommendation of a finished run",
        description="Explain why run RUN recommends item I to user U (raw ids).",
    )
    p.add_argument("run", help="run id (see `runs list --status done`)")
    p.add_argument("--user", required=True, help="raw user id")
    p.add_argument("--item", required=True, help="raw item id (one the user has not seen)")
    p.add_argument(
        "--target",
        choices=("score", "rank"),
        default="score",
        help="explain the raw score, or the margin over the k-th best item (default score)",
    )
    p.add_argument("--k", type=int, default=10, help="top-k cut-off of the rank target")
    p.add_argument(
        "--method",
        choices=("auto", "exact", "permutation", "kernel"),
        default="auto",
        help="Shapley estimator (auto: exact up to 12 features, permutation beyond)",
    )
    p.add_argument(
        "--max-features", type=int, default=50, help="older history items beyond are grouped"
    )
    p.add_argument("--nsamples", type=int, default=None, help="budget of sampling explainers")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling and random orders")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--top", type=int, default=15, help="rows of attributions to print")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recsys_core.explain import SIDE_KINDS, explain_run

    ws = workspace_of(args)
    exp = explain_run(
        ws,
        args.run,
        args.user,
        args.item,
        device=args.device,
        target=args.target,
        k=args.k,
        method=args.method,
        max_features=args.max_features,
        nsamples=args.nsamples,
        seed=args.seed,
    )
    if args.json:
        print_json(exp.to_dict())
        return 0
    what = f"margin over the #{exp.k} item" if exp.target == "rank" else "score"
    print(
        f"Run {args.run} ({exp.model}): item {exp.item_id} {exp.item_title!r} "
        f"for user {exp.user_id}"
    )
    print(f"  rank {exp.rank}, score {exp.score:.6g}; explained output: {what} = {exp.output:.6g}")
    n_side = sum(f.kind in SIDE_KINDS for f in exp.features)
    neutral = f", {n_side} side features at their neutral value" if n_side else ""
    print(f"  base value (empty history{neutral}) {exp.base_value:.6g}")
    check = "holds" if exp.efficient else "FAILS"
    print(
        f"  efficiency: |base + sum - output| = {exp.efficiency_gap:.3g} "
        f"(tolerance {exp.tolerance:.3g}) {check}; method {exp.method}, "
        f"{exp.n_evals} masked histories, {exp.seconds:.2f} s"
    )
    f = exp.faithfulness
    print(
        f"  faithfulness: deletion AUC {f.auc_attribution:.3f} by attribution vs "
        f"{f.auc_random:.3f} random (n={f.n_random}); gap {f.faithfulness:+.3f} "
        "(> 0: the attributions point at what drives the score)"
    )
    if exp.attention_spearman is not None:
        print(
            f"  attention (not attribution) vs attribution Spearman: {exp.attention_spearman:+.2f}"
        )
    frame = exp.frame().head(args.top)
    width = max([len("feature")] + [len(str(n)) for n in frame["feature"]])
    width = min(width, 48)
    print(f"\n  {'attribution':>12}  {'kind':<8} {'feature':<{width}}  item ids")
    for row in frame.itertuples(index=False):
        ids = row.item_ids if len(row.item_ids) <= 40 else row.item_ids[:37] + "..."
        print(
            f"  {row.attribution:>+12.5g}  {row.kind:<8} {str(row.feature)[:width]:<{width}}  {ids}"
        )
    if len(exp.features) > args.top:
        print(f"  ... {len(exp.features) - args.top} more (use --top or --json)")
    for note in exp.notes:
        print(f"  note: {note}")
    print(f"\n{exp.sentence()}")
    return 0
