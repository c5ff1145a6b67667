"""Figures of the Explain page: pure plotly builders over ``Explanation.to_dict()``.

They take the JSON form of an explanation (what :meth:`recsys_core.explain.Explanation.to_dict`
returns and what the background task stores), so a live result and a cached one draw the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from recsys_core.explain import SIDE_KINDS
from recsys_core.viz.palette import model_color

UP = "#2CA02C"  # pushes the item up
DOWN = "#D62728"  # pulls it down
NEUTRAL = "#7F7F7F"
SIDE = "#9467BD"  # labels of side features (user attributes, the item's own features)


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        template="plotly_white",
    )
    return fig


def waterfall(exp: Mapping[str, Any], max_rows: int = 15) -> go.Figure:
    """Waterfall from the base value (empty history) to the explained output.

    Bars are the ``max_rows`` largest attributions by magnitude; the rest are summed into one
    "N other features" bar, so the bars always add up exactly to the output (efficiency). Side
    features (user attributes, the item's own features) have their labels in ``SIDE`` colour
    and start with "user"/"item".

    Parameters
    ----------
    exp : ``Explanation.to_dict()``.
    max_rows : most feature bars drawn.
    """
    features = list(exp["features"])
    values = np.array([f["attribution"] for f in features], dtype=np.float64)
    order = np.argsort(-np.abs(values), kind="stable")
    shown, rest = order[:max_rows], order[max_rows:]
    has_side = any(f["kind"] in SIDE_KINDS for f in features)
    labels = ["base (empty history, side features neutral)" if has_side else "base (empty history)"]
    measures = ["absolute"]
    ys = [float(exp["base_value"])]
    hover = [
        "output with every history item removed"
        + (" and every side feature at its neutral value" if has_side else "")
    ]
    side_labels = set()
    for i in shown:
        f = features[i]
        label = _short(_label(f))
        labels.append(label)
        measures.append("relative")
        ys.append(float(values[i]))
        if f["kind"] in SIDE_KINDS:
            side_labels.add(label)
            what = "user attribute" if f["kind"] == "user" else "side feature of the item"
            hover.append(f"{what}: {f['name']}")
        else:
            hover.append(f"{f['kind']}: {', '.join(f['item_ids'][:5]) or f['name']}")
    if len(rest):
        labels.append(f"{len(rest)} other features")
        measures.append("relative")
        ys.append(float(values[rest].sum()))
        hover.append("sum of the smaller attributions")
    what = f"margin over #{exp['k']}" if exp["target"] == "rank" else "score"
    labels.append(what)
    measures.append("total")
    ys.append(float(exp["base_value"] + values.sum()))
    hover.append(f"model's {what}: {exp['output']:.4g}")
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=labels,
            x=ys,
            measure=measures,
            hovertext=hover,
            increasing={"marker": {"color": UP}},
            decreasing={"marker": {"color": DOWN}},
            totals={"marker": {"color": model_color(str(exp["model"]))}},
            connector={"line": {"color": "#BBBBBB"}},
        )
    )
    ticks = [f'<span style="color:{SIDE}">{t}</span>' if t in side_labels else t for t in labels]
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=labels, ticktext=ticks)
    fig.update_xaxes(title=what)
    title = f"Why {_short(str(exp['item_title']), 50)}? ({exp['model']}, {exp['method']} Shapley)"
    return _layout(fig, title, height=120 + 28 * len(labels))


def _label(feature: Mapping[str, Any]) -> str:
    """The bar label: side features start with their kind ("user: age=25", "item text")."""
    name, kind = str(feature["name"]), feature["kind"]
    if kind in SIDE_KINDS and not name.startswith(kind):
        return f"{kind} · {name}"
    return name


def deletion_curve(exp: Mapping[str, Any]) -> go.Figure:
    """The item's score as features are removed: attribution order vs random orders."""
    faith = exp["faithfulness"]
    steps = np.arange(len(faith["scores"]))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=faith["scores"],
            mode="lines+markers",
            name=f"largest attribution first (AUC {faith['auc_attribution']:.2f})",
            line={"color": model_color(str(exp["model"]))},
            customdata=faith["ranks"],
            hovertemplate="removed %{x}: score %{y:.4g}, rank %{customdata}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=faith["random_scores"],
            mode="lines",
            name=f"mean of {faith['n_random']} random orders (AUC {faith['auc_random']:.2f})",
            line={"color": NEUTRAL, "dash": "dash"},
            customdata=np.round(np.asarray(faith["random_ranks"], dtype=float), 1),
            hovertemplate="removed %{x}: score %{y:.4g}, mean rank %{customdata}<extra></extra>",
        )
    )
    fig.update_xaxes(title="features removed")
    fig.update_yaxes(title="item score")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return _layout(fig, f"Deletion test (faithfulness {faith['faithfulness']:+.2f})", 360)


def attention_heatmap(exp: Mapping[str, Any], max_items: int = 15) -> go.Figure | None:
    """Attention (not attribution) beside attribution for the history items that matter most.

    A long history (50 items) as one column each is an unreadable grey block, so only the
    ``max_items`` items with the largest scaled |attribution| or attention are drawn, half
    chosen by each (whichever has more to offer fills the rest), one row per item named by its
    full title, oldest at the top. Each measure is scaled to its largest absolute value over the
    whole history so the two are comparable by eye; the cells print the scaled values; the
    Spearman rank agreement (over all items) is in the title. None when the model has no
    attention.
    """
    attention = exp.get("attention")
    if attention is None:
        return None
    items = [int(i) for i in exp["history"]]
    by_item = {f["items"][0]: f["attribution"] for f in exp["features"] if f["kind"] == "history"}
    names = {f["items"][0]: f["name"] for f in exp["features"] if f["kind"] == "history"}
    attr = np.array([by_item.get(i, np.nan) for i in items], dtype=np.float64)
    att = np.array([np.nan if a is None else a for a in attention], dtype=np.float64)
    scaled = []
    for row in (att, attr):
        scale = np.nanmax(np.abs(row)) if np.isfinite(row).any() else 1.0
        scaled.append(row / (scale if scale > 0 else 1.0))
    keep = _strongest(np.abs(scaled[1]), np.abs(scaled[0]), max_items)
    labels = [_short(str(names.get(items[j], items[j])), 48) for j in keep]
    # disambiguate equal (cut) titles: plotly would merge rows with the same category label
    seen: dict[str, int] = {}
    for n, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        labels[n] = label if seen[label] == 1 else f"{label} ({seen[label]})"
    z = np.vstack([scaled[0][keep], scaled[1][keep]]).T  # [rows, 2]
    text = np.where(np.isfinite(z), np.char.mod("%+.2f", np.nan_to_num(z)), "–")
    position = np.array([[f"#{j + 1} of {len(items)}"] * 2 for j in keep])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=["attention (not attribution)", "Shapley attribution"],
            y=labels,
            colorscale="RdBu",
            zmid=0.0,
            text=text,
            texttemplate="%{text}",
            customdata=position,
            hovertemplate="%{y} (history %{customdata}): %{z:.2f} scaled<extra>%{x}</extra>",
            colorbar={"title": "scaled"},
        )
    )
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_xaxes(side="top")
    rho = exp.get("attention_spearman")
    agreement = f"Spearman {rho:+.2f}" if rho is not None else "agreement n/a"
    shown = f"top {len(keep)} of {len(items)} items" if len(keep) < len(items) else "history"
    title = f"Attention vs attribution, {shown} ({agreement})"
    return _layout(fig, title, height=150 + 26 * len(keep))


def _strongest(attribution: np.ndarray, attention: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` items, half the strongest by each measure (NaN = weakest), the
    rest filled by whichever is strongest next; returned in history (time) order."""
    if len(attribution) <= n:
        return np.arange(len(attribution))
    rank_attr = np.argsort(-np.nan_to_num(attribution, nan=-1.0), kind="stable")
    rank_att = np.argsort(-np.nan_to_num(attention, nan=-1.0), kind="stable")
    chosen = list(dict.fromkeys([*rank_attr[: n - n // 2], *rank_att[: n // 2]]))
    for j in (x for pair in zip(rank_attr, rank_att, strict=True) for x in pair):
        if len(chosen) >= n:
            break
        if j not in chosen:
            chosen.append(j)
    return np.sort(np.asarray(chosen[:n], dtype=np.int64))


__all__ = ["SIDE", "attention_heatmap", "deletion_curve", "waterfall"]
