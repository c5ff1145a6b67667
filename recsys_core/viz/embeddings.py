"""Figures of the Embeddings page: WebGL scatter maps, user overlays, side-by-side comparisons.

Pure functions: a :func:`recsys_core.embeddings.point_table` frame (columns ``x``, ``y``,
``id``, ``title`` and colour columns) in, a plotly figure out. WebGL (``go.Scattergl``) keeps
100k points interactive in the browser.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

#: Categories beyond this many (by size) are drawn together as "other".
MAX_CATEGORIES = 20
PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Set2
OTHER_COLOUR = "#c8c8c8"
#: Fixed colours for the labels the app uses everywhere, so maps agree with other pages.
FIXED_COLOURS = {
    "head": "#d62728",
    "mid": "#ff7f0e",
    "tail": "#1f77b4",
    "hit": "#2ca02c",
    "miss": "#d62728",
    "not tested": "#c8c8c8",
    "(none)": "#c8c8c8",
}
#: Marker of each overlay kind (history, recommendations, test items, interests).
OVERLAY_STYLE = {
    "history": {"symbol": "circle-open", "color": "#222222", "size": 10, "name": "history"},
    "recommended": {"symbol": "diamond", "color": "#9467bd", "size": 11, "name": "recommended"},
    "test": {"symbol": "x", "color": "#e377c2", "size": 12, "name": "test (held out)"},
}
HOVER_COLUMNS = ("title", "id", "popularity", "activity", "categories")


def is_numeric(table: pd.DataFrame, colour: str | None) -> bool:
    """True when ``colour`` is a numeric column (drawn with a colour scale, not a legend)."""
    return (
        colour is not None
        and colour in table.columns
        and pd.api.types.is_numeric_dtype(table[colour])
        and not pd.api.types.is_bool_dtype(table[colour])
    )


def category_colours(values: pd.Series | np.ndarray) -> dict[str, str]:
    """A stable colour per category: fixed ones for known labels, then the palette by name.

    Sorting by name (not by frequency) gives a category the same colour in two runs' maps.
    """
    names = sorted({str(v) for v in pd.Series(values).dropna().unique()})
    colours: dict[str, str] = {}
    free = iter(PALETTE * (1 + len(names) // len(PALETTE)))
    for name in names:
        colours[name] = FIXED_COLOURS.get(name) or next(free)
    colours["other"] = OTHER_COLOUR
    return colours


def _labels(table: pd.DataFrame, colour: str, limit: int = MAX_CATEGORIES) -> pd.Series:
    """Category label per point, the smallest categories beyond ``limit`` folded into "other"."""
    labels = table[colour].astype(object).where(table[colour].notna(), "(none)").astype(str)
    counts = labels.value_counts()
    if len(counts) > limit:
        keep = set(counts.index[:limit])
        labels = labels.where(labels.isin(keep), "other")
    return labels


def _hover(table: pd.DataFrame) -> tuple[np.ndarray, str]:
    """customdata [n, c] and a hovertemplate naming title, id, popularity and categories."""
    columns = [c for c in HOVER_COLUMNS if c in table.columns]
    data = table[columns].astype(object).fillna("").to_numpy()
    lines = [f"<b>%{{customdata[{columns.index('title')}]}}</b>"] if "title" in columns else []
    lines += [f"{c}: %{{customdata[{i}]}}" for i, c in enumerate(columns) if c != "title"]
    return data, "<br>".join(lines) + "<extra></extra>"


def _point_traces(
    table: pd.DataFrame,
    colour: str | None,
    colours: dict[str, str] | None,
    *,
    marker_size: float,
    show_legend: bool = True,
) -> list[go.Scattergl]:
    """The map's base traces: one per category, or one with a colour scale for numbers."""
    size = marker_size
    if colour is None or colour not in table.columns:
        data, template = _hover(table)
        marker = {"size": size, "color": "#1f77b4", "opacity": 0.7}
        return [
            go.Scattergl(
                x=table["x"], y=table["y"], mode="markers", marker=marker, name="points",
                customdata=data, hovertemplate=template, showlegend=False,
            )
        ]  # fmt: skip
    if is_numeric(table, colour):
        data, template = _hover(table)
        values = table[colour].astype(float)
        marker = {
            "size": size, "color": values, "colorscale": "Viridis", "opacity": 0.8,
            "colorbar": {"title": {"text": colour}, "thickness": 12},
        }  # fmt: skip
        return [
            go.Scattergl(
                x=table["x"], y=table["y"], mode="markers", marker=marker, name=colour,
                customdata=data, hovertemplate=template, showlegend=False,
            )
        ]  # fmt: skip
    labels = _labels(table, colour)
    colours = colours or category_colours(labels)
    traces = []
    order = labels.value_counts().index  # biggest first, so small groups are drawn on top
    for name in order:
        part = table[labels.to_numpy() == name]
        data, template = _hover(part)
        traces.append(
            go.Scattergl(
                x=part["x"], y=part["y"], mode="markers", name=str(name), legendgroup=str(name),
                showlegend=show_legend,
                marker={"size": size, "color": colours.get(str(name), OTHER_COLOUR),
                        "opacity": 0.75},
                customdata=data, hovertemplate=template,
            )
        )  # fmt: skip
    return traces


def _marker_size(n: int) -> float:
    """Smaller markers for bigger maps so clusters stay readable."""
    return float(np.clip(9.0 - 1.2 * np.log10(max(n, 1)), 2.5, 7.0))


def overlay_traces(overlay: pd.DataFrame | None, interests: np.ndarray | None = None) -> list:
    """Highlight traces: a user's history, recommendations and test items; interest stars.

    Parameters
    ----------
    overlay : :func:`recsys_core.embeddings.user_overlay` frame (kind, title, id, x, y, rank).
    interests : float32 [K, 2] a multi-interest model's interests placed on the map.
    """
    traces: list = []
    if overlay is not None and len(overlay):
        for kind, style in OVERLAY_STYLE.items():
            part = overlay[overlay["kind"] == kind]
            if not len(part):
                continue
            rank = part["rank"].to_numpy()
            text = [f"#{int(r)}" if np.isfinite(r) else "" for r in rank]
            traces.append(
                go.Scattergl(
                    x=part["x"], y=part["y"], mode="markers", name=style["name"],
                    marker={"symbol": style["symbol"], "size": style["size"],
                            "color": style["color"], "line": {"width": 2,
                                                              "color": style["color"]}},
                    customdata=np.column_stack([part["title"], part["id"], text]),
                    hovertemplate=f"<b>%{{customdata[0]}}</b><br>id: %{{customdata[1]}}<br>"
                    f"{style['name']} %{{customdata[2]}}<extra></extra>",
                )
            )  # fmt: skip
    if interests is not None and len(interests):
        labels = [f"interest {i + 1}" for i in range(len(interests))]
        traces.append(
            go.Scattergl(
                x=interests[:, 0], y=interests[:, 1], mode="markers+text", name="interests",
                text=labels, textposition="top center",
                marker={"symbol": "star", "size": 18, "color": "#ffbf00",
                        "line": {"width": 1.5, "color": "#333333"}},
                hovertemplate="%{text}<extra></extra>",
            )
        )  # fmt: skip
    return traces


#: Most titles written next to ringed points: more pile up into an unreadable heap.
MAX_FOCUS_LABELS = 4


def focus_trace(
    table: pd.DataFrame,
    ids: list[str],
    name: str = "selected",
    *,
    max_labels: int = MAX_FOCUS_LABELS,
) -> go.Scattergl:
    """A ring around the points whose raw id is in ``ids`` (a searched item, a picked user).

    Only the first ``max_labels`` of ``ids`` (the searched item, then its nearest neighbours)
    get their title written on the map, shortened, and each on the side facing the middle of
    the map, so labels of points near an edge are not cut off or stacked along it; every ring
    still names its point on hover.
    """
    wanted = [str(i) for i in ids]
    part = table[table["id"].isin(wanted)]
    priority = part["id"].map({i: n for n, i in enumerate(wanted)}).to_numpy()
    titles = part["title"].astype(str).to_numpy()
    short = np.array([t if len(t) <= 28 else t[:27] + "…" for t in titles], dtype=object)
    text = np.where(priority < max_labels, short, "")
    return go.Scattergl(
        x=part["x"], y=part["y"], mode="markers+text", name=name, text=text,
        textposition=label_positions(part["x"], part["y"], table["x"], table["y"]),
        marker={"symbol": "circle-open", "size": 20, "color": "#000000", "line": {"width": 3}},
        customdata=titles, hovertemplate="<b>%{customdata}</b><extra></extra>",
    )  # fmt: skip


def label_positions(
    x: pd.Series | np.ndarray,
    y: pd.Series | np.ndarray,
    all_x: pd.Series | np.ndarray,
    all_y: pd.Series | np.ndarray,
) -> list[str]:
    """Plotly text positions pointing from each point towards the middle of the map.

    A point in the right half gets its label on its left, one in the top half below it, so a
    label never runs off the plot's edge (where UMAP maps put their outlying clusters).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mid_x = (np.nanmin(all_x) + np.nanmax(all_x)) / 2 if len(all_x) else 0.0
    mid_y = (np.nanmin(all_y) + np.nanmax(all_y)) / 2 if len(all_y) else 0.0
    vertical = np.where(y > mid_y, "bottom", "top")
    horizontal = np.where(x > mid_x, "left", "right")
    return list(np.char.add(np.char.add(vertical, " "), horizontal))


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0},
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"itemsizing": "constant", "title": {"text": ""}},
        plot_bgcolor="white",
        hoverlabel={"align": "left"},
    )
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, title=None)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, title=None)
    return fig


def map_figure(
    table: pd.DataFrame,
    colour: str | None = None,
    *,
    title: str = "",
    overlay: pd.DataFrame | None = None,
    interests: np.ndarray | None = None,
    focus: list[str] | None = None,
    height: int = 620,
) -> go.Figure:
    """A WebGL scatter of a map, coloured by ``colour``, with optional highlights on top.

    Parameters
    ----------
    table : point table (``x``, ``y``, ``id``, ``title`` and colour columns), one row a point.
    colour : a column: categorical (legend, stable colours) or numeric (colour scale).
    overlay, interests : see :func:`overlay_traces`. focus : raw ids to ring.
    """
    fig = go.Figure(_point_traces(table, colour, None, marker_size=_marker_size(len(table))))
    for trace in overlay_traces(overlay, interests):
        fig.add_trace(trace)
    if focus:
        fig.add_trace(focus_trace(table, focus))
    return _layout(fig, title, height)


def side_by_side_figure(
    left: pd.DataFrame,
    right: pd.DataFrame,
    colour: str | None = None,
    *,
    titles: tuple[str, str] = ("", ""),
    focus: list[str] | None = None,
    height: int = 560,
) -> go.Figure:
    """Two maps next to each other with the same colouring (right already aligned to left).

    Categories get one colour across both panels and one legend entry (legend groups).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.03)
    colours = None
    if colour is not None and colour in left.columns and not is_numeric(left, colour):
        both = pd.concat([_labels(left, colour), _labels(right, colour)])
        colours = category_colours(both)
    for col, (table, legend) in enumerate(((left, True), (right, False)), start=1):
        size = _marker_size(len(table))
        for trace in _point_traces(table, colour, colours, marker_size=size, show_legend=legend):
            if col == 2 and getattr(trace.marker, "colorbar", None) is not None:
                trace.marker.showscale = False
            fig.add_trace(trace, row=1, col=col)
        if focus:
            trace = focus_trace(table, focus)
            trace.showlegend = col == 1
            fig.add_trace(trace, row=1, col=col)
    return _layout(fig, "", height)


__all__ = [
    "category_colours",
    "focus_trace",
    "is_numeric",
    "label_positions",
    "map_figure",
    "overlay_traces",
    "side_by_side_figure",
]
