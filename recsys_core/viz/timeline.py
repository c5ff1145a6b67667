"""Figures of a rolling evaluation (:mod:`recsys_core.rolling`): metric and cost over time.

Pure builders: a results frame in, a plotly figure out. A model keeps its palette colour; a
strategy keeps its line style, so "EASE, retrain" reads the same in both panels.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recsys_core.rolling import ranking_flips
from recsys_core.viz.palette import model_color

DASHES = {"frozen": "dot", "update": "dash", "retrain": "solid", "sliding": "dashdot"}


def window_labels(results: pd.DataFrame) -> dict[int, str]:
    """``{window: "3 · from 2017-05-01"}`` for the x axis."""
    first = results.groupby("window")["start"].min()
    return {
        int(w): f"{int(w)} · from {pd.Timestamp(int(s), unit='s'):%Y-%m-%d}"
        for w, s in first.items()
    }


def timeline_figure(results: pd.DataFrame, metric: str = "ndcg@10") -> go.Figure:
    """Two panels sharing the window axis: ``metric`` per model and strategy with its 95% CI
    (error bars), and the seconds each spent training (fit, update or none) per window.

    A triangle above the metric panel marks every window where the order of two models flips
    relative to the window before (hover: who overtakes whom, under which strategy).
    """
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.68, 0.32],
        vertical_spacing=0.06,
        subplot_titles=(f"{metric} per window (95% CI)", "training seconds per window"),
    )
    labels = window_labels(results)
    for (model, strategy), part in results.groupby(["model", "strategy"], sort=True):
        part = part.sort_values("window")
        x = [labels[int(w)] for w in part["window"]]
        style = {"color": model_color(model), "dash": DASHES.get(strategy, "solid")}
        name = f"{model} · {strategy}"
        error = None
        if f"{metric}_lo" in part and f"{metric}_hi" in part:
            error = {
                "type": "data",
                "symmetric": False,
                "array": (part[f"{metric}_hi"] - part[metric]).clip(lower=0),
                "arrayminus": (part[metric] - part[f"{metric}_lo"]).clip(lower=0),
                "thickness": 1,
            }
        fig.add_trace(
            go.Scatter(
                x=x,
                y=part[metric],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                line=style,
                error_y=error,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=part["train_seconds"],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=False,
                line=style,
            ),
            row=2,
            col=1,
        )
    flips = ranking_flips(results, metric)
    if len(flips):
        top = float(results[f"{metric}_hi"].max() if f"{metric}_hi" in results else 0) or float(
            results[metric].max()
        )
        grouped = flips.groupby("window")
        fig.add_trace(
            go.Scatter(
                x=[labels[int(w)] for w, _ in grouped],
                y=[top * 1.05] * len(grouped),
                mode="markers",
                marker={"symbol": "triangle-down", "size": 13, "color": "#444"},
                name="ranking flips",
                hovertext=[
                    "<br>".join(
                        f"{r.strategy}: {r.leader} overtakes {r.trailer}" for r in g.itertuples()
                    )
                    for _, g in grouped
                ],
                hoverinfo="text",
            ),
            row=1,
            col=1,
        )
    fig.update_yaxes(title_text=metric, row=1, col=1)
    fig.update_yaxes(title_text="seconds", row=2, col=1)
    fig.update_xaxes(title_text="test window", row=2, col=1)
    fig.update_layout(height=620, margin={"t": 40, "b": 40}, legend={"orientation": "v"})
    return fig


def summary_table(results: pd.DataFrame, metric: str = "ndcg@10") -> pd.DataFrame:
    """One row per model and strategy: mean ``metric`` over windows, first and last window's
    value, total training seconds, and the windows' mean cold-item share."""
    grouped = results.sort_values("window").groupby(["model", "strategy"])
    return pd.DataFrame(
        {
            f"mean {metric}": grouped[metric].mean(),
            "first window": grouped[metric].first(),
            "last window": grouped[metric].last(),
            "training s": grouped["train_seconds"].sum(),
            "cold items": grouped["cold_item_share"].mean(),
        }
    ).reset_index()


__all__ = ["DASHES", "summary_table", "timeline_figure", "window_labels"]
