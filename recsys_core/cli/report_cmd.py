"""``report`` and ``demo-cards`` commands: offline HTML reports, and the demo's cached cards.

::

    python -m recsys_core report RUN --out FILE.html [--png-dir DIR]
    python -m recsys_core report --compare RUN RUN ... --out FILE.html [--metric M] [--png-dir DIR]
    python -m recsys_core report --cards RUN --out FILE.html [--per-segment 1] [--recs 3]
    python -m recsys_core demo-cards RUN [--per-segment 2] [--recs 3] [--device auto]

A report is one HTML file with plotly.js and all data inlined: it opens from disk with no
network (see :mod:`recsys_core.report`). ``--png-dir`` also writes every figure as a PNG (needs
the optional kaleido and a Chromium). ``demo-cards`` explains the demo's "why this item" cards
of a run now and stores them in the run's cache, so demo mode never waits on a deep model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recsys_core.cli.main import print_json, workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="one offline HTML report of a run, a comparison of runs, or why-cards",
        description="Write a self-contained HTML report (plotly.js and data inlined).",
    )
    p.add_argument("run", nargs="?", help="a finished run id (one-run report)")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="compare these finished runs")
    p.add_argument("--cards", metavar="RUN", help="why-this-item cards of a finished run")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--png-dir", help="also write each figure as a PNG here (needs kaleido)")
    p.add_argument("--metric", help="comparison metric (default ndcg@10)")
    p.add_argument("--title", help="the report's title")
    p.add_argument("--per-segment", type=int, default=1, help="--cards: users per segment")
    p.add_argument("--recs", type=int, default=3, help="--cards: recommendations per card")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run_report_cmd)

    p = sub.add_parser(
        "demo-cards",
        help="precompute the demo's why-this-item cards of a run into its cache",
        description="Explain the demo's cards (typical, cold and heavy users) of run RUN now.",
    )
    p.add_argument("run", help="a finished run id")
    p.add_argument("--per-segment", type=int, default=2, help="users per segment (default 2)")
    p.add_argument("--recs", type=int, default=3, help="recommendations per card (default 3)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_demo_cards)


def _build(args: argparse.Namespace, ws):  # noqa: ANN001, ANN202 - Workspace -> Report
    from recsys_core import report
    from recsys_core.errors import ConfigError

    chosen = [bool(args.run), bool(args.compare), bool(args.cards)]
    if sum(chosen) != 1:
        raise ConfigError("report: give exactly one of RUN, --compare RUN RUN ... or --cards RUN")
    if args.compare:
        return report.compare_report(ws, args.compare, metric=args.metric, title=args.title)
    if args.run:
        return report.run_report(ws, args.run, title=args.title)
    from recsys_core.presentation import precompute_cards

    cards = precompute_cards(ws, args.cards, per_segment=args.per_segment, n_recs=args.recs)
    return report.cards_report(ws, cards, title=args.title)


def run_report_cmd(args: argparse.Namespace) -> int:
    from recsys_core.viz.export import png_unavailable

    if args.png_dir and (missing := png_unavailable()):
        print(f"error: --png-dir: {missing}", file=sys.stderr)
        return 2
    ws = workspace_of(args)
    built = _build(args, ws)
    written = built.write(Path(args.out), png_dir=Path(args.png_dir) if args.png_dir else None)
    if args.json:
        print_json(written)
    else:
        print(f"wrote {written['html']} ({written['figures']} figures, opens offline)")
        for path in written.get("png", []):
            print(f"wrote {path}")
    return 0


def run_demo_cards(args: argparse.Namespace) -> int:
    from recsys_core.presentation import precompute_cards

    ws = workspace_of(args)
    cards = precompute_cards(
        ws, args.run, per_segment=args.per_segment, n_recs=args.recs, device=args.device
    )
    summary = [
        {"user": c.user_id, "segment": c.segment, "recommendations": len(c.recommendations),
         "adds_up": c.adds_up}
        for c in cards
    ]  # fmt: skip
    if args.json:
        print_json(summary)
    else:
        for row in summary:
            check = "adds up" if row["adds_up"] else "CHECK FAILED"
            print(f"user {row['user']} ({row['segment']}): {row['recommendations']} cards, {check}")
    return 0
