"""Figures of the data health report (pure: a :class:`HealthReport` in, a plotly figure out).

Each builder works on ``HealthReport.series`` and returns a ``plotly.graph_objects.Figure``;
when the data lacks what a figure shows (no ratings, no time) the figure says so in place
instead of being empty.
"""

from __future__ import annotations

import numpy as np
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
    fig.update_yaxes(type="log")
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


def health_figures(report: HealthReport) -> dict[str, go.Figure]:
    """All four figures keyed by name, in display order."""
    return {
        "popularity": popularity_curve(report),
        "user_activity": user_activity_histogram(report),
        "ratings": rating_histogram(report),
        "over_time": interactions_over_time(report),
    }


__all__ = [
    "health_figures",
    "interactions_over_time",
    "popularity_curve",
    "rating_histogram",
    "user_activity_histogram",
]
