"""Figures and tables of training runs: leaderboard, trade-off, segments, per-user, curves.

Pure functions (data in, figure or frame out) so the Train and Compare pages stay thin and every
chart can be tested without Streamlit. Colours come from :mod:`recsys_core.viz.palette`, so a
model keeps its colour across pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recsys_core.errors import DataError
from recsys_core.viz.palette import model_color

#: Metrics where a smaller value is the better one (the rest are "higher is better").
LOWER_IS_BETTER = frozenset({"avg_popularity", "gini"})

RUN = "run"
MODEL = "model"
LABEL = "label"


def metric_base(metric: str) -> str:
    """``"ndcg@10"`` -> ``"ndcg"``."""
    return metric.split("@", 1)[0]


def split_key(dataset: str, split: Mapping[str, Any]) -> str:
    """A canonical key for "same dataset and same split spec" (JSON with sorted keys).

    Runs are only ranked together when this key is equal: metrics measured on different test
    sets are not comparable, so a leaderboard never mixes them.
    """
    return json.dumps({"dataset": dataset, "split": dict(split)}, sort_keys=True, default=str)


def leaderboard_table(entries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per finished run with every metric, its 95% CI bounds, fit time and device.

    Parameters
    ----------
    entries : one mapping per run with keys ``run`` (id), ``model`` (registry key), ``label``
        (display name), ``device``, ``fit_seconds`` (float or None), ``aggregate``
        (``{"ndcg@10": 0.31, ...}``) and ``ci`` (``{"ndcg@10": [lo, hi], ...}``, may be empty).

    Returns
    -------
    DataFrame with columns ``run, label, model, device, fit_s`` then for each metric ``m`` (in
    first-seen order) ``m``, ``m lo``, ``m hi``; one row per entry, in the given order.
    """
    rows = []
    metrics: dict[str, None] = {}
    for entry in entries:
        aggregate = dict(entry.get("aggregate") or {})
        ci = dict(entry.get("ci") or {})
        row: dict[str, Any] = {
            RUN: entry["run"],
            LABEL: entry.get("label") or entry["model"],
            MODEL: entry["model"],
            "device": entry.get("device") or "",
            "fit_s": entry.get("fit_seconds"),
        }
        for name, value in aggregate.items():
            metrics.setdefault(name, None)
            row[name] = float(value) if value is not None else np.nan
            bounds = ci.get(name)
            row[f"{name} lo"] = float(bounds[0]) if bounds is not None else np.nan
            row[f"{name} hi"] = float(bounds[1]) if bounds is not None else np.nan
        rows.append(row)
    columns = [RUN, LABEL, MODEL, "device", "fit_s"]
    for name in metrics:
        columns += [name, f"{name} lo", f"{name} hi"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["fit_s"] = pd.to_numeric(frame["fit_s"], errors="coerce")
    return frame


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The metric names (``"ndcg@10"`` ...) present in a :func:`leaderboard_table`."""
    return [c for c in table.columns if "@" in c and not c.endswith((" lo", " hi"))]


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point beats on both axes (both maximised).

    A point is on the front when no other point has ``x' >= x`` and ``y' >= y`` with at least
    one strict. Sorting by x descending (ties: y descending) and keeping points whose y exceeds
    the running maximum of the points before them gives the front in O(n log n).

    Parameters
    ----------
    x, y : float arrays [n]; NaN points are never on the front.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise DataError(
            f"pareto_front: x has shape {x.shape} but y has {y.shape}",
            fix="pass one x and one y per run",
        )
    mask = np.zeros(x.shape, dtype=bool)
    valid = np.flatnonzero(~(np.isnan(x) | np.isnan(y)))
    if valid.size == 0:
        return mask
    order = valid[np.lexsort((-y[valid], -x[valid]))]
    ys = y[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(ys)[:-1]))
    mask[order[ys > best_before]] = True
    return mask


def _hover(table: pd.DataFrame) -> list[str]:
    return [f"{label} ({run})" for label, run in zip(table[LABEL], table[RUN], strict=True)]


def leaderboard_bars(table: pd.DataFrame, metric: str) -> go.Figure:
    """Horizontal bars of ``metric`` per run, best first, with 95% CI error bars.

    Parameters
    ----------
    table : output of :func:`leaderboard_table`.
    metric : a metric column, e.g. ``"ndcg@10"``.
    """
    if metric not in table.columns:
        raise DataError(
            f"metric {metric!r} is not in the leaderboard",
            fix=f"choose one of {metric_columns(table)}",
        )
    # Best first: descending unless smaller is better (e.g. average recommended popularity).
    lower_is_better = metric_base(metric) in LOWER_IS_BETTER
    data = table.sort_values(metric, ascending=lower_is_better, na_position="last")
    value = data[metric].to_numpy(dtype=float)
    lo = data[f"{metric} lo"].to_numpy(dtype=float)
    hi = data[f"{metric} hi"].to_numpy(dtype=float)
    fig = go.Figure(
        go.Bar(
            y=data[LABEL] + " · " + data[RUN].astype(str).str[-6:],
            x=value,
            orientation="h",
            marker_color=[model_color(m) for m in data[MODEL]],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": np.nan_to_num(hi - value),
                "arrayminus": np.nan_to_num(value - lo),
            },
            hovertext=_hover(data),
        )
    )
    fig.update_layout(
        xaxis_title=f"{metric} (95% CI)",
        yaxis={"autorange": "reversed"},
        height=max(240, 40 * len(data) + 100),
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        showlegend=False,
    )
    return fig


def tradeoff_scatter(table: pd.DataFrame, x: str, y: str) -> go.Figure:
    """Accuracy (``y``) against a long-tail measure (``x``), Pareto front marked and joined.

    The front treats each axis as "higher is better" unless the metric is in
    :data:`LOWER_IS_BETTER` (e.g. average recommended popularity), in which case it is negated.
    """
    for name in (x, y):
        if name not in table.columns:
            raise DataError(
                f"metric {name!r} is not in the leaderboard",
                fix=f"choose one of {metric_columns(table)}",
            )
    xs = table[x].to_numpy(dtype=float)
    ys = table[y].to_numpy(dtype=float)
    sx = -1.0 if metric_base(x) in LOWER_IS_BETTER else 1.0
    sy = -1.0 if metric_base(y) in LOWER_IS_BETTER else 1.0
    front = pareto_front(sx * xs, sy * ys)
    fig = go.Figure()
    for model, part in table.groupby(MODEL, sort=False):
        idx = part.index.to_numpy()
        on = front[table.index.get_indexer(idx)]
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=part[y],
                mode="markers+text",
                text=part[LABEL],
                textposition="top center",
                name=str(model),
                marker={
                    "color": model_color(str(model)),
                    "size": np.where(on, 16, 11),
                    "symbol": np.where(on, "star", "circle"),
                    "line": {"width": 1, "color": "#333"},
                },
                hovertext=_hover(part),
            )
        )
    if front.any():
        order = np.argsort(xs[front])
        fig.add_trace(
            go.Scatter(
                x=xs[front][order],
                y=ys[front][order],
                mode="lines",
                line={"dash": "dash", "color": "#888"},
                name="Pareto front",
            )
        )
    fig.update_layout(
        xaxis_title=x, yaxis_title=y, height=420, margin={"l": 10, "r": 10, "t": 30, "b": 40}
    )
    return fig


def segments_frame(
    segments: Mapping[str, Sequence[Mapping[str, Any]]], models: Mapping[str, str]
) -> pd.DataFrame:
    """Stack the runs' segment tables (``metrics.json["segments"]``) into one long frame.

    Parameters
    ----------
    segments : ``{run label: records}`` where each record has ``kind`` (e.g. ``"user
        activity"``, ``"item popularity"``), ``segment``, ``metric``, ``n_users``, ``mean``,
        ``ci_low``, ``ci_high`` (see :func:`recsys_core.stats.segment_table`).
    models : ``{run label: model key}`` for colours.

    Returns
    -------
    DataFrame with columns ``run, model, kind, segment, metric, n_users, mean, ci_low,
    ci_high``.
    """
    columns = ["kind", "segment", "metric", "n_users", "mean", "ci_low", "ci_high"]
    blocks = [
        pd.DataFrame(list(records), columns=columns).assign(run=run, model=models.get(run, run))
        for run, records in segments.items()
        if records
    ]
    if not blocks:
        return pd.DataFrame(columns=[RUN, MODEL, *columns])
    frame = pd.concat(blocks, ignore_index=True)
    for name in ("mean", "ci_low", "ci_high"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame[[RUN, MODEL, *columns]]


def segment_bars(segments: pd.DataFrame, metric: str, kind: str) -> go.Figure:
    """Grouped bars of ``metric`` per segment of one ``kind``, runs side by side, 95% CIs.

    Parameters
    ----------
    segments : output of :func:`segments_frame`.
    metric : e.g. ``"ndcg@10"``.
    kind : e.g. ``"user activity"`` or ``"item popularity"``.
    """
    data = segments[(segments["metric"] == metric) & (segments["kind"] == kind)]
    # Two runs of the same model share a colour; a hatch pattern tells them apart.
    runs = data[[RUN, MODEL]].drop_duplicates(RUN)
    nth_of_model = runs.groupby(MODEL, sort=False).cumcount().to_numpy()
    patterns = dict(zip(runs[RUN], nth_of_model, strict=True))
    fig = go.Figure()
    for run, part in data.groupby(RUN, sort=False):
        model = str(part[MODEL].iloc[0])
        mean = part["mean"].to_numpy(dtype=float)
        fig.add_trace(
            go.Bar(
                x=part["segment"].astype(str),
                y=mean,
                name=str(run),
                marker_color=model_color(model),
                marker_pattern_shape=("", "/", ".", "x", "+", "-")[patterns[run] % 6],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": np.nan_to_num(part["ci_high"].to_numpy(dtype=float) - mean),
                    "arrayminus": np.nan_to_num(mean - part["ci_low"].to_numpy(dtype=float)),
                },
                customdata=part["n_users"],
                hovertemplate="%{x}: %{y:.4f} (%{customdata} users)",
            )
        )
    fig.update_layout(
        barmode="group",
        title=f"{metric} by {kind}",
        yaxis_title=metric,
        height=360,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
    )
    return fig


def per_user_scatter(
    a: pd.Series, b: pd.Series, *, label_a: str, label_b: str, metric: str
) -> go.Figure:
    """One point per test user: run A's ``metric`` against run B's, with the diagonal.

    Points above the diagonal are users B serves better. Users missing from either run are
    dropped (they cannot be paired).
    """
    both = pd.concat({"a": a, "b": b}, axis=1, join="inner").dropna()
    better_b = int((both["b"] > both["a"]).sum())
    better_a = int((both["a"] > both["b"]).sum())
    top = float(np.nanmax(both.to_numpy())) if len(both) else 1.0
    fig = go.Figure(
        [
            go.Scattergl(
                x=both["a"],
                y=both["b"],
                mode="markers",
                marker={"size": 6, "opacity": 0.5, "color": "#2E91E5"},
                text=[f"user {u}" for u in both.index],
                name="users",
            ),
            go.Scatter(
                x=[0, top],
                y=[0, top],
                mode="lines",
                line={"dash": "dot", "color": "#888"},
                name="equal",
            ),
        ]
    )
    fig.update_layout(
        xaxis_title=f"{metric}: {label_a}",
        yaxis_title=f"{metric}: {label_b}",
        title=f"{better_b} users better with {label_b}, {better_a} with {label_a}, "
        f"{len(both) - better_a - better_b} tied",
        height=440,
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
    )
    return fig


def curves_frame(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Training-progress events as a frame with one row per event and numeric columns.

    Accepts flat events (``{"step": 3, "epoch": 1, "loss": 0.5}``) or events whose numbers sit
    under a ``"metrics"`` key; non-numeric fields are dropped.
    """
    rows = []
    for event in events:
        row: dict[str, float] = {}
        flat = dict(event)
        nested = flat.pop("metrics", None)
        if isinstance(nested, Mapping):
            flat.update(nested)
        for key, value in flat.items():
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, bool
            ):
                row[key] = float(value)
        rows.append(row)
    return pd.DataFrame(rows)


def has_curves(events: Iterable[Mapping[str, Any]]) -> bool:
    """True when the events hold a loss or validation value to plot.

    Closed-form models (EASE, ItemKNN) report progress without either; their runs show a note
    instead of two empty plots.
    """
    frame = curves_frame(events)
    columns = [c for c in frame.columns if c == "loss" or str(c).startswith("valid")]
    return bool(columns) and bool(frame[columns].notna().any().any())


def training_curves(events: Iterable[Mapping[str, Any]], title: str = "") -> go.Figure:
    """Loss (left) and validation metrics (right) against epoch, or step when no epochs.

    Parameters
    ----------
    events : progress events of one run (see :func:`curves_frame`).
    """
    frame = curves_frame(events)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation"))
    if frame.empty:
        fig.update_layout(height=260, title=title or None)
        return fig
    x_name = "epoch" if "epoch" in frame.columns and frame["epoch"].notna().any() else "step"
    if x_name not in frame.columns:
        frame[x_name] = np.arange(len(frame), dtype=float)
    if "loss" in frame.columns:
        part = frame.dropna(subset=["loss"])
        fig.add_trace(
            go.Scatter(x=part[x_name], y=part["loss"], mode="lines+markers", name="loss"),
            row=1,
            col=1,
        )
    for column in [c for c in frame.columns if c.startswith("valid")]:
        part = frame.dropna(subset=[column])
        fig.add_trace(
            go.Scatter(x=part[x_name], y=part[column], mode="lines+markers", name=column),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text=x_name)
    fig.update_layout(height=280, title=title or None, margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig


__all__ = [
    "LOWER_IS_BETTER",
    "curves_frame",
    "has_curves",
    "leaderboard_bars",
    "leaderboard_table",
    "metric_base",
    "metric_columns",
    "pareto_front",
    "per_user_scatter",
    "segment_bars",
    "segments_frame",
    "split_key",
    "training_curves",
    "tradeoff_scatter",
]
