"""Figures of the Balance page (pure: arrays/frames in, a plotly figure out).

Before training: positives per user, the popularity curve before/after resampling with the
head/tail boundary, and the popularity of sampled negatives. After a sweep: accuracy against a
long-tail measure (baseline marked, Pareto front drawn), per-segment effects and the popularity
of recommendations against the data's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from recsys_core.errors import DataError
from recsys_core.viz.palette import PALETTE

ACCENT = "#2E91E5"
AFTER = "#E15F99"
BASELINE = "#222A2A"  # the baseline is this black in every chart of the page
FRONT = "#1CA71C"
#: Marker shapes shared with the Compare page: a star marks the Pareto front there and here.
FRONT_SYMBOL = "star"
BASELINE_SYMBOL = "diamond"
#: Plain-language name of each balance option, shown beside its field name (one setting, one
#: name everywhere: widgets, grid, tables).
OPTION_NAMES = {
    "neg_sampler": "negative sampler",
    "neg_alpha": "popularity exponent α",
    "n_negatives": "negatives per positive",
    "hard_pool": "hard-negative pool",
    "ips_beta": "inverse-propensity weight β",
    "pop_norm": "popularity normalisation",
    "focal_gamma": "focal-loss γ",
    "pos_weight": "positive weight",
    "user_cap": "cap per user",
    "resample": "resampling",
    "resample_factor": "resampling factor",
    "head_share": "head share of items",
    "positive_threshold": "positive threshold",
}


def option_label(name: str) -> str:
    """``"neg_alpha"`` -> ``"Popularity exponent α (neg_alpha)"``."""
    plain = OPTION_NAMES.get(name)
    return f"{plain[0].upper()}{plain[1:]} ({name})" if plain else name
#: Long-tail axes offered against accuracy, with their direction (True = higher is better).
TRADEOFF_AXES = {
    "tail_coverage@10": True,
    "coverage@10": True,
    "avg_popularity@10": False,
    "gini@10": False,
}
AXIS_TITLES = {
    "ndcg@10": "NDCG@10",
    "recall@10": "Recall@10",
    "tail_coverage@10": "long-tail coverage@10",
    "coverage@10": "catalogue coverage@10",
    "avg_popularity@10": "avg recommended popularity@10",
    "gini@10": "Gini of exposure@10 (lower = more even)",
}


def _layout(fig: go.Figure, title: str, x: str, y: str, *, legend: bool = True) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        height=360,
        showlegend=legend,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _need_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}",
            where=where,
            fix="pass the frame from recsys_core.sweeps (collect_sweep / *_buckets)",
        )


# ----- before training ---------------------------------------------------------------------------
def positives_per_user(counts: np.ndarray) -> go.Figure:
    """Histogram of positives per user (log y): how few users carry many interactions.

    ``counts`` : int [n_users] interactions per user.
    """
    counts = np.asarray(counts, dtype=np.int64)
    fig = go.Figure(
        go.Histogram(
            x=counts,
            nbinsx=min(60, max(int(counts.max(initial=1)), 1)),
            marker={"color": ACCENT},
            hovertemplate="%{x} positives: %{y} users<extra></extra>",
        )
    )
    fig.update_yaxes(type="log")
    median = float(np.median(counts)) if counts.size else 0.0
    return _layout(
        fig,
        f"Positives per user (median {median:g})",
        "positives of a user",
        "users (log)",
        legend=False,
    )


def popularity_curve(curves: dict[str, np.ndarray], *, title: str | None = None) -> go.Figure:
    """Interactions per item by popularity rank, before and after resampling, head shaded.

    ``curves`` is :func:`recsys_core.balance.resampled_popularity`'s output: ``before`` and
    ``after`` int [n_items] in the same item order (most popular first) and ``head`` bool
    [n_items] in that order. Identical curves (no resampling chosen) draw one line.
    """
    before = np.asarray(curves["before"], dtype=np.int64)
    after = np.asarray(curves["after"], dtype=np.int64)
    head = np.asarray(curves["head"], dtype=bool)
    ranks = np.arange(1, len(before) + 1)
    fig = go.Figure(
        go.Scattergl(
            x=ranks,
            y=np.maximum(before, 1),
            mode="lines",
            name="data",
            line={"color": ACCENT},
            hovertemplate="rank %{x}: %{y} interactions<extra>data</extra>",
        )
    )
    if not np.array_equal(before, after):
        fig.add_trace(
            go.Scattergl(
                x=ranks,
                y=np.maximum(after, 1),
                mode="lines",
                name="after resampling",
                line={"color": AFTER},
                hovertemplate="rank %{x}: %{y} interactions<extra>resampled</extra>",
            )
        )
    n_head = int(head.sum())
    if n_head:
        share = before[head].sum() / max(before.sum(), 1)
        fig.add_vrect(
            x0=0.5,
            x1=n_head + 0.5,
            fillcolor=ACCENT,
            opacity=0.08,
            line_width=0,
            annotation_text=f"head: {n_head} items, {share:.0%} of interactions",
            annotation_position="top right",
        )
    fig.update_yaxes(type="log")
    return _layout(
        fig, title or "Popularity curve (head shaded)", "item popularity rank", "interactions (log)"
    )


def bucket_shares(frame: pd.DataFrame, *, title: str) -> go.Figure:
    """Grouped bars: share per item-popularity bucket (most popular first), one bar per source.

    ``frame`` is long: ``bucket``, ``source``, ``share`` (from
    :func:`recsys_core.imbalance.negative_buckets` or
    :func:`recsys_core.imbalance.recommendation_buckets`).
    """
    _need_columns(frame, ("bucket", "source", "share"), "bucket_shares")
    fig = go.Figure()
    others = 0
    for source, part in frame.groupby("source", sort=False):
        if str(source) == "baseline":  # the same black as in the trade-off and segment charts
            colour = BASELINE
        else:
            colour, others = PALETTE[others % len(PALETTE)], others + 1
        fig.add_trace(
            go.Bar(
                x=part["bucket"],
                y=part["share"],
                name=str(source),
                marker={"color": colour},
                hovertemplate="%{x}: %{y:.1%}<extra>" + str(source) + "</extra>",
            )
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, title, "items by popularity (most popular bucket first)", "share")


# ----- after a sweep -----------------------------------------------------------------------------
def point_names(points: pd.DataFrame, options: Sequence[str]) -> list[str]:
    """One short name per sweep point: ``baseline`` or ``neg_alpha=0.5, ips_beta=0``."""
    names = []
    for _, row in points.iterrows():
        if bool(row.get("baseline", False)):
            names.append("baseline")
        else:
            names.append(", ".join(f"{o}={row[o]}" for o in options) or str(row["run_id"]))
    return names


def tradeoff(
    points: pd.DataFrame,
    front: np.ndarray,
    *,
    x: str = "tail_coverage@10",
    y: str = "ndcg@10",
    options: Sequence[str] = (),
) -> go.Figure:
    """Accuracy ``y`` against long-tail measure ``x``: one point per setting.

    The baseline (default balance) is a black diamond; settings on the Pareto front are stars
    (as on the Compare page), joined by a green line through the
    non-dominated points (``front``, bool [n_points], from :func:`recsys_core.sweeps.pareto_front`
    computed for the same axes and directions).
    """
    _need_columns(points, (x, y, "baseline"), "tradeoff")
    front = np.asarray(front, dtype=bool)
    if len(front) != len(points):
        raise DataError(
            f"front has {len(front)} entries for {len(points)} points",
            where="tradeoff",
            fix="compute pareto_front on the same points frame",
        )
    names = np.array(point_names(points, options), dtype=object)
    base = points["baseline"].to_numpy(dtype=bool)
    done = points[[x, y]].notna().all(axis=1).to_numpy()
    fig = go.Figure()
    others = done & ~base
    fig.add_trace(
        go.Scatter(
            x=points.loc[others, x],
            y=points.loc[others, y],
            mode="markers+text",
            text=names[others],
            textposition="top center",
            cliponaxis=False,  # labels of points at the edge stay readable
            name="setting (★ on the Pareto front)",
            marker={
                "size": np.where(front[others], 15, 11).tolist(),
                "symbol": np.where(front[others], FRONT_SYMBOL, "circle").tolist(),
                "color": ACCENT,
            },
            hovertemplate="%{text}<br>x %{x:.4f}<br>y %{y:.4f}<extra></extra>",
        )
    )
    if (done & base).any():
        fig.add_trace(
            go.Scatter(
                x=points.loc[done & base, x],
                y=points.loc[done & base, y],
                mode="markers+text",
                text=names[done & base],
                textposition="bottom center",
                cliponaxis=False,
                name="baseline (default balance)",
                marker={"size": 14, "symbol": BASELINE_SYMBOL, "color": BASELINE},
                hovertemplate="baseline<br>x %{x:.4f}<br>y %{y:.4f}<extra></extra>",
            )
        )
    on_front = points.loc[front & done].sort_values(x)
    if len(on_front):
        fig.add_trace(
            go.Scatter(
                x=on_front[x],
                y=on_front[y],
                mode="lines",
                name="Pareto front",
                line={"color": FRONT, "width": 2, "dash": "dot"},
                hoverinfo="skip",
            )
        )
    better = "higher" if TRADEOFF_AXES.get(x, True) else "lower"
    fig = _layout(
        fig,
        f"{AXIS_TITLES.get(y, y)} vs {AXIS_TITLES.get(x, x)} ({better} x is better)",
        AXIS_TITLES.get(x, x),
        AXIS_TITLES.get(y, y),
    )
    # Room for the labels around the outermost points (they are drawn outside the axes).
    fig.update_layout(margin={"l": 80, "r": 80, "t": 60, "b": 50})
    for axis, column in (("xaxis", x), ("yaxis", y)):
        values = points.loc[done, column].to_numpy(dtype=float)
        if len(values):
            low, high = float(values.min()), float(values.max())
            pad = 0.15 * (high - low) or 0.05 * abs(high) or 0.01
            fig.update_layout({axis: {"range": [low - pad, high + pad]}})
    return fig


def segment_effects(
    points: pd.DataFrame, *, options: Sequence[str] = (), metric: str = "ndcg@10"
) -> go.Figure:
    """Grouped bars: ``metric`` per segment (head/mid/tail items, cold/heavy users), one bar
    group per segment and one colour per sweep point (baseline first, in black)."""
    columns = [c for c in points.columns if c.startswith(f"{metric} ") and c != metric]
    if not columns:
        raise DataError(
            f"no per-segment {metric} columns in the sweep table",
            where="segment_effects",
            fix="wait for at least one sweep point to finish (segments come from its metrics)",
        )
    names = point_names(points, options)
    order = np.argsort(~points["baseline"].to_numpy(dtype=bool), kind="stable")
    fig = go.Figure()
    for rank, i in enumerate(order):
        row = points.iloc[i]
        colour = BASELINE if bool(row["baseline"]) else PALETTE[rank % len(PALETTE)]
        fig.add_trace(
            go.Bar(
                x=[c.removeprefix(f"{metric} ") for c in columns],
                y=[row[c] for c in columns],
                name=names[i],
                marker={"color": colour},
                hovertemplate="%{x}: %{y:.4f}<extra>" + names[i] + "</extra>",
            )
        )
    fig.update_layout(barmode="group")
    return _layout(fig, f"{AXIS_TITLES.get(metric, metric)} per segment", "segment", metric)


__all__ = [
    "OPTION_NAMES",
    "TRADEOFF_AXES",
    "bucket_shares",
    "option_label",
    "point_names",
    "popularity_curve",
    "positives_per_user",
    "segment_effects",
    "tradeoff",
]
