"""Self-contained HTML reports of finished runs: a comparison, one run, or "why" cards.

A report is one HTML file that opens from disk with no network: plotly.js is inlined once (not
per figure), every figure's data sits in the page, and no ``<script src>``, ``<link href>``,
font or image points outside the file. Its header says what produced it: the dataset and its
version, the split (protocol and seed), the runs' seeds and the code version. Every string that
came from a user (titles, ids, labels, column names) is escaped with :func:`html.escape`, so a
title like ``<script>`` shows as text. PNG copies of the figures go through
:func:`recsys_core.viz.export.write_pngs` (optional kaleido).

``python -m recsys_core report RUN --out FILE.html`` and
``report --compare RUN RUN ... --out FILE.html`` (``--png-dir DIR``) build them from the shell;
the Compare, Train and Demo pages offer the same files as downloads.
"""

from __future__ import annotations

import datetime as _dt
import html
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recsys_core.errors import ConfigError
from recsys_core.viz.export import figure_div, plotly_script, write_pngs

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from recsys_core.presentation import WhyCard
    from recsys_core.workspace import Workspace


# ----- the document ---------------------------------------------------------------------------
@dataclass
class Report:
    """A report being assembled: a title, provenance lines, then blocks of HTML in order.

    ``figures`` maps a figure's id to the figure, in order of appearance (for PNG export).
    Add content with :meth:`heading`, :meth:`text`, :meth:`table`, :meth:`figure`, :meth:`raw`.
    """

    title: str
    provenance: list[tuple[str, str]] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    figures: dict[str, go.Figure] = field(default_factory=dict)

    def heading(self, text: str) -> None:
        self.blocks.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, *, css: str = "") -> None:
        """A paragraph of plain text (escaped)."""
        cls = f' class="{html.escape(css)}"' if css else ""
        self.blocks.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, frame: pd.DataFrame, *, floats: str = "{:.4f}") -> None:
        """A table; cells and headers are escaped by pandas."""
        self.blocks.append(
            frame.to_html(
                index=False, escape=True, border=0, classes="data", na_rep="—",
                float_format=floats.format,
            )  # fmt: skip
        )

    def figure(self, fig: go.Figure, caption: str = "") -> None:
        """A figure (drawn from inline data) and a one-line caption saying how to read it."""
        div_id = f"figure-{len(self.figures) + 1}"
        self.figures[div_id] = fig
        self.blocks.append(f'<div class="figure">{figure_div(fig, div_id)}</div>')
        if caption:
            self.text(caption, css="caption")

    def raw(self, fragment: str) -> None:
        """HTML built by this module from escaped parts (never from user strings directly)."""
        self.blocks.append(fragment)

    def html(self) -> str:
        """The whole document: one inline plotly.js, then the header and the blocks."""
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self.provenance
        )
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            # No network at all: scripts and styles only from this file, images only inline.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
            "img-src data: blob:; font-src data:\">"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style>"
            f"{plotly_script()}</head><body>"
            f"<h1>{html.escape(self.title)}</h1>"
            f'<table class="provenance">{rows}</table>'
            + "\n".join(self.blocks)
            + "</body></html>\n"
        )

    def write(self, out: Path, *, png_dir: Path | None = None) -> dict[str, Any]:
        """Write the HTML to ``out`` (and PNGs to ``png_dir``); returns what was written."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.html(), encoding="utf-8")
        written: dict[str, Any] = {"html": str(out), "figures": len(self.figures)}
        if png_dir is not None:
            written["png"] = [str(p) for p in write_pngs(self.figures, Path(png_dir))]
        return written


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1F2430;padding:0 1rem}
h1{font-size:1.8rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table.data,table.provenance{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
table.data th,table.data td,table.provenance th,table.provenance td{padding:.25rem .6rem;
border-bottom:1px solid #eee;text-align:left}
table.provenance th{color:#555;font-weight:600}
.caption{color:#555;font-size:.9rem}.figure{min-height:300px}
.card{border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0;background:#F2F5FA}
.check{color:#2C7A2C}.fail{color:#B22222}
"""


# ----- provenance -----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe --always --dirty`` of the source tree, else the package version."""
    from recsys_core import __version__

    root = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root, capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return f"recsys_core {__version__}"
    described = done.stdout.strip()
    return f"recsys_core {__version__} ({described})" if described else f"recsys_core {__version__}"


def split_text(split: dict[str, Any]) -> str:
    """``"leave_last (seed 0, ...)"``: the protocol, its seed and the options away from their
    defaults (as the Compare page names splits)."""
    from recsys_core.config import describe
    from recsys_core.split import SplitSpec

    defaults = {spec.name: spec.default for spec in describe(SplitSpec)}
    split = dict(split or {})
    protocol = split.pop("protocol", "default")
    seed = split.pop("seed", 0)
    rest = ", ".join(
        f"{k}={v}" for k, v in sorted(split.items()) if k not in defaults or v != defaults[k]
    )
    return f"{protocol} (seed {seed}{', ' + rest if rest else ''})"


def provenance(ws: Workspace, records: Sequence[Any]) -> list[tuple[str, str]]:
    """Header lines: dataset and version, split, seeds, code version, when it was made."""
    from recsys_core.data.store import get_dataset
    from recsys_core.data.versions import version_of

    first = records[0].spec
    info = get_dataset(ws, first.dataset)
    version = version_of(info)
    seeds = sorted({int(r.spec.seed) for r in records})
    lines = [
        ("Dataset", f"{info.name} (id {info.id})"),
        ("Data version", f"version {version['number']} · content {info.content_hash[:12]}"),
        ("Split", split_text(first.split)),
        ("Model seed" + ("s" if len(seeds) > 1 else ""), ", ".join(map(str, seeds))),
        ("Runs", ", ".join(r.id for r in records)),
        ("Code version", code_version()),
        ("Generated", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    if info.options.get("pseudonymise") or info.report.get("pseudonymised"):
        lines.append(("User ids", "pseudonymised (keyed hash); raw ids are not shown"))
    return lines


def _finished(ws: Workspace, run_ids: Sequence[str]) -> list[Any]:
    from recsys_core.explain import finished_run

    return [finished_run(ws, run_id).record for run_id in run_ids]


def _run_label(record: Any) -> str:
    return f"{record.spec.label or record.spec.model} · {record.id}"


# ----- a comparison ---------------------------------------------------------------------------
TAIL_METRICS = ("tail_coverage", "coverage", "novelty", "avg_popularity", "diversity")


def compare_report(
    ws: Workspace, run_ids: Sequence[str], *, metric: str | None = None, title: str | None = None
) -> Report:
    """Leaderboard with 95% CIs, the long-tail trade-off, segments and paired tests of runs.

    Raises ConfigError when fewer than two runs are given or they were evaluated on different
    datasets or splits (their metrics would not be comparable).
    """
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.viz.runs import leaderboard_bars, leaderboard_table, metric_columns, split_key

    if len(set(run_ids)) < 2:
        raise ConfigError("report --compare needs at least two different finished runs")
    records = _finished(ws, list(dict.fromkeys(run_ids)))
    keys = {split_key(r.spec.dataset, r.spec.split) for r in records}
    if len(keys) > 1:
        raise ConfigError(
            "these runs were evaluated on different datasets or splits, so their metrics are "
            "not comparable; pick runs of one split (the Compare page groups them)"
        )
    arts = {r.id: RunArtifacts(ws, r.id) for r in records}
    metrics = {run_id: art.metrics() for run_id, art in arts.items()}
    table = leaderboard_table([run_entry(r, metrics[r.id]) for r in records])
    available = metric_columns(table)
    if not available:
        raise ConfigError("these runs stored no metrics; re-run their evaluation")
    metric = metric or ("ndcg@10" if "ndcg@10" in available else available[0])
    if metric not in available:
        raise ConfigError(f"metric {metric!r} is not in these runs; choose one of {available}")
    report = Report(title or f"Comparison of {len(records)} runs", provenance(ws, records))
    report.heading("Leaderboard")
    report.figure(
        leaderboard_bars(table, metric),
        "Bars are the mean over test users; whiskers are 95% bootstrap confidence intervals.",
    )
    report.table(leaderboard_text(table, metric))
    _tradeoff_section(report, table, metric, available)
    _segments_section(report, table, metrics, metric)
    _paired_section(report, table, arts, metric)
    return report


def leaderboard_text(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The leaderboard as text cells, best first by ``metric``: one ``mean [lo, hi]`` column
    per metric (95% CI), then fit time."""
    from recsys_core.viz.runs import metric_columns

    ranked = table.sort_values(metric, ascending=False)
    out = ranked[["label", "model", "run"]].copy()
    for name in metric_columns(table):
        lo, hi = ranked[f"{name} lo"], ranked[f"{name} hi"]
        out[name] = [
            f"{m:.4f}" + ("" if pd.isna(a) or pd.isna(b) else f" [{a:.4f}, {b:.4f}]")
            for m, a, b in zip(ranked[name], lo, hi, strict=True)
        ]
    out["fit (s)"] = ranked["fit_s"].map(lambda v: "—" if pd.isna(v) else f"{v:.1f}")
    return out


def run_entry(record: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """A finished run and its ``metrics.json`` as one entry of
    :func:`~recsys_core.viz.runs.leaderboard_table` (the Compare and Demo pages use it too)."""
    return {
        "run": record.id,
        "model": record.spec.model,
        "label": record.spec.label or record.spec.model,
        "device": record.device_used,
        "fit_seconds": record.fit_seconds,
        "aggregate": metrics.get("aggregate", {}),
        "ci": metrics.get("ci", {}),
    }


def _tradeoff_section(report: Report, table: pd.DataFrame, metric: str, available: list) -> None:
    from recsys_core.viz.runs import tradeoff_scatter

    tail = [m for m in available if m.split("@")[0] in TAIL_METRICS]
    if not tail:
        return
    # Prefer a long-tail metric at the same cut-off as the accuracy metric.
    cutoff = metric.partition("@")[2]
    tail.sort(key=lambda m: (m.partition("@")[2] != cutoff, TAIL_METRICS.index(m.split("@")[0])))
    report.heading("Accuracy versus long tail")
    report.figure(
        tradeoff_scatter(table, tail[0], metric),
        "Stars joined by the dashed line are the Pareto front: no other run is better on both "
        "axes at once.",
    )


def _segments_section(
    report: Report, table: pd.DataFrame, metrics: dict[str, dict], metric: str
) -> None:
    from recsys_core.viz.runs import segment_bars, segments_frame

    labels = {row.run: f"{row.label} · {row.run[-6:]}" for row in table.itertuples()}
    segments = segments_frame(
        {labels[run]: metrics[run].get("segments") or [] for run in table["run"]},
        {labels[row.run]: row.model for row in table.itertuples()},
    )
    report.heading("Segments")
    if segments.empty or metric not in set(segments["metric"]):
        report.text("These runs stored no segment breakdown of this metric.")
        return
    for kind in dict.fromkeys(segments["kind"]):
        report.figure(segment_bars(segments, metric, kind))
    report.text(
        "User activity: quartiles of training interactions per user. Item popularity: the "
        "ranking judged only on test items in the head, mid or tail. Whiskers: 95% CIs.",
        css="caption",
    )


def _paired_section(report: Report, table: pd.DataFrame, arts: dict, metric: str) -> None:
    from recsys_core.stats import paired_table

    ranked = table.sort_values(metric, ascending=False)
    best = ranked.iloc[0]
    per_user = {
        run: (lambda f: f[[c for c in f.columns if "@" in str(c)]].astype("float64"))(
            arts[run].per_user()
        )
        for run in ranked["run"]
    }
    report.heading("Paired tests against the best run")
    report.text(
        f"Each row tests the best run by {metric} ({best['label']} · {best['run']}) against "
        "another run on the test users both scored: paired t-test and Wilcoxon, Holm-corrected "
        "over the metrics; significant means the corrected t-test p is below 0.05."
    )
    for other in ranked.iloc[1:].itertuples():
        tests = paired_table(per_user[best["run"]], per_user[other.run], alpha=0.05)
        tests["significant"] = tests["significant"].map({True: "yes", False: "no"})
        pair = f"A = {best['label']} · {best['run']}, B = {other.label} · {other.run}"
        report.raw(f"<h3>{html.escape(pair)}</h3>")
        report.table(tests, floats="{:.4g}")


# ----- one run --------------------------------------------------------------------------------
def run_report(ws: Workspace, run_id: str, *, title: str | None = None) -> Report:
    """One run: its metrics with 95% CIs, training curves, and the embeddings map if cached."""
    from recsys_core.jobs import api
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.viz.runs import has_curves, training_curves

    (record,) = _finished(ws, [run_id])
    art = RunArtifacts(ws, run_id)
    metrics = art.metrics()
    report = Report(title or f"Run {_run_label(record)}", provenance(ws, [record]))
    report.heading("Metrics")
    ci = metrics.get("ci", {})
    rows = [
        {"metric": name, "mean": value, "95% CI low": (ci.get(name) or [None, None])[0],
         "95% CI high": (ci.get(name) or [None, None])[1]}
        for name, value in (metrics.get("aggregate") or {}).items()
    ]  # fmt: skip
    report.table(pd.DataFrame(rows, columns=["metric", "mean", "95% CI low", "95% CI high"]))
    report.text(
        f"Model {record.spec.model}; fit in {record.fit_seconds or 0:.1f} s on "
        f"{record.device_used or 'an unrecorded device'}. Hyperparameters: "
        + ", ".join(f"{k}={v}" for k, v in sorted(record.spec.config.items())),
        css="caption",
    )
    report.heading("Training curves")
    events = api.events(ws, run_id)
    if has_curves(events):
        report.figure(training_curves(events), "Loss (left) and validation metrics (right).")
    else:
        report.text("This model is fitted in closed form or reported no loss: no curves.")
    _map_section(report, ws, art)
    return report


def _map_section(report: Report, ws: Workspace, art: Any) -> None:
    from recsys_core import embeddings as emb
    from recsys_core.viz.embeddings import map_figure

    report.heading("Embeddings map")
    result = emb.load_cached(ws, art.run_id, "items", emb.MapOptions())
    if result is None:
        report.text(
            "No item map is cached for this run (default options): draw it on the Embeddings "
            f"page or with `python -m recsys_core embed {art.run_id}`, then export again."
        )
        return
    table = emb.point_table(art.dataset(), result, "items")
    colour = "genre" if "genre" in table.columns else "popularity bucket"
    report.figure(
        map_figure(table, colour, height=560),
        f"UMAP of the item vectors ({result.source}); k-NN preservation@10 "
        f"{result.knn_preservation:.2f} (a random map: {result.random_baseline:.3f}).",
    )


# ----- "why" cards ----------------------------------------------------------------------------
def cards_report(ws: Workspace, cards: Sequence[WhyCard], *, title: str | None = None) -> Report:
    """A set of "why this item" cards (see :mod:`recsys_core.presentation`), one run."""
    if not cards:
        raise ConfigError("no card to export; pick a user with recommendations first")
    records = _finished(ws, list(dict.fromkeys(c.run_id for c in cards)))
    report = Report(title or "Why these recommendations", provenance(ws, records))
    for card in cards:
        report.raw(card_html(card))
    return report


def card_html(card: WhyCard) -> str:
    """One card as HTML, every user string escaped."""
    esc = html.escape
    recent = ", ".join(card.recent_history) or "—"
    parts = [
        f'<div class="card"><h2>{esc(card.heading)}</h2>',
        f"<p><b>Recently:</b> {esc(recent)}</p>",
    ]
    for rec in card.recommendations:
        reasons = "".join(f"<li>{esc(r)}</li>" for r in rec.reasons) or "<li>—</li>"
        check = f'<p class="{"check" if rec.adds_up else "fail"}">{esc(rec.check)}</p>'
        parts.append(f"<h3>#{rec.rank} {esc(rec.title)}</h3><ul>{reasons}</ul>{check}")
    parts.append("</div>")
    return "".join(parts)


__all__ = [
    "Report",
    "card_html",
    "cards_report",
    "code_version",
    "leaderboard_text",
    "compare_report",
    "provenance",
    "run_entry",
    "run_report",
    "split_text",
]
