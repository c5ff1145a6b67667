"""Figures of the data health report (pure: a :class:`HealthReport` in, a plotly figure out).

Each builder works on ``HealthReport.series`` and returns a ``plotly.graph_objects.Figure``;
when the data lacks what a figure shows (no ratings, no time) the figure says so in place
instead of being empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from recsys_core.data.health import HEAD_SHARE, HealthReport

ACCENT = "#2E91E5"
MUTED = "#B2828D"


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        height=340,
        showlegend=False,
    )
    return fig


def _unavailable(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "")


def popularity_curve(report: HealthReport) -> go.Figure:
    """Long-tail curve: interactions per item by popularity rank (log y), head shaded.

    The head is the most popular items that together make up 80% of interactions.
    """
    counts = np.asarray(report.series["item_popularity"], dtype=np.int64)
    if counts.size == 0 or counts.sum() == 0:
        return _unavailable("Item popularity (long tail)", "no interactions")
    ranks = np.arange(1, len(counts) + 1)
    head = int(round(report.stats.get("head_item_share", 0.0) * len(counts)))
    fig = go.Figure(
        go.Scattergl(
            x=ranks,
            y=np.maximum(counts, 1),
            mode="lines",
            line={"color": ACCENT},
            hovertemplate="rank %{x}: %{y} interactions<extra></extra>",
        )
    )
    if head > 0:
        fig.add_vrect(
            x0=0.5,
            x1=head + 0.5,
            fillcolor=ACCENT,
            opacity=0.12,
            line_width=0,
            annotation_text=f"head: {head:,} items = {HEAD_SHARE:.0%} of interactions",
            annotation_position="top right",
        )
    # Ticks at powers of ten only: plotly's default log ticks read "5, 10, 2, 5, 100, 2".
    fig.update_yaxes(type="log", dtick=1, tickformat=",d")
    # Ranks start at 1; autorange pads a line plot into negative ranks that do not exist.
    fig.update_xaxes(range=[0.5, len(counts) + 0.5])
    return _layout(fig, "Item popularity (long tail)", "item rank", "interactions (log)")


def user_activity_histogram(report: HealthReport) -> go.Figure:
    """Histogram of interactions per user on log-spaced bins (cold users < 5 highlighted)."""
    counts = np.asarray(report.series["user_activity"], dtype=np.int64)
    if counts.size == 0:
        return _unavailable("User activity", "no users")
    top = max(int(counts.max()), 1)
    edges = np.unique(np.round(np.logspace(0, np.log10(top + 1), 30)).astype(np.int64))
    if edges[-1] <= top:
        edges = np.append(edges, top + 1)
    hist, _ = np.histogram(counts, bins=edges)
    left, right = edges[:-1], edges[1:] - 1
    labels = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(left, right, strict=True)]
    colors = [MUTED if b < 5 else ACCENT for b in right]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=hist,
            marker_color=colors,
            hovertemplate="%{x} interactions: %{y} users<extra></extra>",
        )
    )
    return _layout(fig, "User activity", "interactions per user", "users")


def rating_histogram(report: HealthReport) -> go.Figure:
    """Bar chart of how often each rating value occurs (a note when the data is implicit)."""
    ratings = report.series.get("ratings")
    if ratings is None or len(ratings) <= 1:
        return _unavailable("Ratings", "no ratings: every interaction counts as one event")
    labels = [f"{v:g}" for v in ratings["value"]]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=ratings["count"],
            marker_color=ACCENT,
            hovertemplate="rating %{x}: %{y} interactions<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    return _layout(fig, "Rating distribution", "rating", "interactions")


def interactions_over_time(report: HealthReport) -> go.Figure:
    """Interactions per day, month or year (a note when the data has no timestamps)."""
    frame = report.series.get("over_time")
    if frame is None or len(frame) == 0:
        return _unavailable("Interactions over time", "no timestamps in this dataset")
    unit = report.series.get("time_unit") or "period"
    fig = go.Figure(
        go.Bar(
            x=frame["period"],
            y=frame["interactions"],
            marker_color=ACCENT,
            hovertemplate="%{x}: %{y} interactions<extra></extra>",
        )
    )
    return _layout(fig, f"Interactions per {unit}", unit, "interactions")


#: What each import role means to the analyst (mapping dropdowns, the import report).
ROLE_LABELS = {
    "user": "User id",
    "item": "Item id",
    "value": "Rating or value",
    "timestamp": "Timestamp",
    "event": "Event type",
    "split": "Split (train/valid/test)",
}


def import_report_table(
    report: Mapping[str, Any], split_labels: Sequence[Any] | np.ndarray | None = None
) -> pd.DataFrame:
    """The import report as a two-column table (``what``, ``value``) an analyst can read.

    Parameters
    ----------
    report : ``DatasetInfo.report`` (format, rows read, columns, duplicates, filters, side
        tables, sizes; notes and warnings are left to the page, which shows them as notes).
    split_labels : the dataset's predefined split label per interaction, when it has a split
        column: adds the train/valid/test counts.
    """
    rows: list[tuple[str, str]] = []

    def add(what: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            rows.append((what, f"{value:,}" if isinstance(value, int) else str(value)))

    add("Format", report.get("format"))
    add("Source", report.get("source"))
    add("Rows read", report.get("rows_read"))
    columns = report.get("columns") or {}
    add(
        "Columns used",
        ", ".join(f"{ROLE_LABELS.get(r, r)} ← {c}" for r, c in columns.items() if c),
    )
    add("Timestamps", report.get("timestamp_unit"))
    dup = report.get("duplicates") or {}
    if dup:
        add(
            "Repeated user-item rows",
            f"{dup.get('rows_removed', 0):,} removed from {dup.get('pairs_affected', 0):,} "
            f"pairs (kept: {dup.get('policy', '?')})",
        )
    add("Rows removed by filters", report.get("filtered_rows"))
    for kind, side in (report.get("side") or {}).items():
        text = f"{side.get('rows', 0):,} rows, {side.get('matched', 0):,} matched"
        if side.get("unmatched_count"):
            examples = ", ".join(map(str, side.get("unmatched_examples", [])[:3]))
            text += f", {side['unmatched_count']:,} without interactions (e.g. {examples})"
        if side.get("columns"):
            text += f"; columns: {', '.join(map(str, side['columns']))}"
        add(f"Side table: {kind}", text)
    add("Users", report.get("n_users"))
    add("Items", report.get("n_items"))
    add("Interactions", report.get("n_interactions"))
    if split_labels is not None and len(split_labels):
        counts = pd.Series(np.asarray(split_labels, dtype=object)).value_counts()
        order = [p for p in ("train", "valid", "test") if p in counts.index]
        order += [p for p in counts.index if p not in order]
        add("Split column", " · ".join(f"{p} {int(counts[p]):,}" for p in order))
    return pd.DataFrame(rows, columns=["what", "value"])


def health_figures(report: HealthReport) -> dict[str, go.Figure]:
    """All four figures keyed by name, in display order."""
    return {
        "popularity": popularity_curve(report),
        "user_activity": user_activity_histogram(report),
        "ratings": rating_histogram(report),
        "over_time": interactions_over_time(report),
    }


__all__ = [
    "ROLE_LABELS",
    "health_figures",
    "import_report_table",
    "interactions_over_time",
    "popularity_curve",
    "rating_histogram",
    "user_activity_histogram",
]
