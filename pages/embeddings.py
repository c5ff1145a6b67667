"""Embeddings: UMAP maps of what a finished run learned, linked to users and recommendations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

import ui
import ui_demo
from recsys_core import embeddings as emb
from recsys_core import text_maps
from recsys_core.config import config_to_dict
from recsys_core.data.text_embeddings import text_embedding_info
from recsys_core.jobs import api
from recsys_core.jobs.artifacts import RunArtifacts
from recsys_core.map_options import METRICS, WHAT
from recsys_core.models import MODELS
from recsys_core.viz.embeddings import map_figure, side_by_side_figure
from recsys_core.viz.export import figure_png, png_unavailable, standalone_html
from recsys_core.viz.markdown import md
from recsys_core.workspace import Workspace

NO_USER = "—"
#: Test users offered in the picker (the search box reaches every other user).
USER_CHOICES = 1_000
N_CLUSTERS = 8


# ----- cached loaders (read-only results keyed by ids and options) ------------------------------
@st.cache_resource(show_spinner=False, max_entries=16)
def _cached_map(root: str, run_id: str, what: str, options_json: str) -> emb.MapResult | None:
    options = emb.MapOptions(**json.loads(options_json))
    return emb.load_cached(Workspace(Path(root)), run_id, what, options)


@st.cache_resource(show_spinner="Computing the map (UMAP)…", max_entries=16)
def _computed_map(root: str, run_id: str, what: str, options_json: str) -> emb.MapResult:
    return emb.run_map(Workspace(Path(root)), run_id, what, json.loads(options_json))


@st.cache_resource(show_spinner="Loading the run's vectors…", max_entries=8)
def _vectors(root: str, run_id: str, what: str) -> tuple[np.ndarray, str]:
    return emb.source_vectors(Workspace(Path(root)), run_id, what)


@st.cache_resource(show_spinner="Loading the run…", max_entries=8)
def _artifacts(root: str, run_id: str) -> RunArtifacts:
    return RunArtifacts(Workspace(Path(root)), run_id)


@st.cache_resource(show_spinner="Rebuilding the split…", max_entries=8)
def _split(root: str, run_id: str):  # noqa: ANN202 - a Split, read-only
    return _artifacts(root, run_id).split()


@st.cache_data(show_spinner=False, max_entries=16)
def _recs(root: str, run_id: str):  # noqa: ANN202 - a DataFrame
    return _artifacts(root, run_id).recs()


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(root: str, run_id: str):  # noqa: ANN202 - a Recommender, read-only once loaded
    return _artifacts(root, run_id).model(device="cpu")


@st.cache_data(show_spinner="Clustering…", max_entries=16)
def _table(root: str, run_id: str, what: str, options_json: str):  # noqa: ANN202
    result = emb.run_map(Workspace(Path(root)), run_id, what, json.loads(options_json))
    vectors, _ = _vectors(root, run_id, what)
    metric = result.options.metric
    clusters = emb.kmeans_clusters(vectors[result.index], N_CLUSTERS, metric=metric)
    per_user = ui.run_per_user(root, run_id) if what == "users" else None
    data = _artifacts(root, run_id).dataset()
    return emb.point_table(data, result, what, per_user=per_user, clusters=clusters)


@st.cache_resource(show_spinner="Clustering the item texts…", max_entries=4)
def _text(root: str, run_id: str, stamp: float):  # noqa: ANN202 - (vectors, source, clusters)
    art = _artifacts(root, run_id)
    info = text_embedding_info(Workspace(Path(root)), art.record.spec.dataset)
    found = text_maps.text_source(art.dataset(), info)
    if found is None:
        return None
    vectors, source = found
    return vectors, source, text_maps.text_clusters(vectors, np.arange(len(vectors)), N_CLUSTERS)


@st.cache_resource(show_spinner="Computing the text map (UMAP)…", max_entries=4)
def _text_map(root: str, run_id: str, stamp: float, options_json: str):  # noqa: ANN202
    vectors, source, clusters = _text(root, run_id, stamp)
    data = _artifacts(root, run_id).dataset()
    options = emb.MapOptions(**json.loads(options_json))
    result = text_maps.text_map(data, vectors, source, options)
    return result, text_maps.text_map_table(data, result, clusters)


def _run_label(record) -> str:  # noqa: ANN001 - a RunRecord
    return f"{record.spec.label or record.spec.model} · {record.id}"


def _map(run_id: str, what: str, options: emb.MapOptions, *, slot: str) -> emb.MapResult | None:
    """The map from the cache, computed inline when small, else by the worker (None meanwhile)."""
    options_json = json.dumps(config_to_dict(options), sort_keys=True)
    # Only ask the cached loader once the files exist, so it never remembers a miss.
    if emb.cache_paths(ws, run_id, what, options)[1].exists():
        cached = _cached_map(root, run_id, what, options_json)
        if cached is not None:
            return cached
    size = emb.map_size(ws, run_id, what)
    if not emb.map_in_background(size):
        return _computed_map(root, run_id, what, options_json)
    task_key = f"maps.task.{run_id}.{what}.{options.key()}"
    if task_key not in st.session_state:
        payload = {"run_id": run_id, "what": what, "options": config_to_dict(options)}
        ui_demo.refuse_writes("starting a background map")
        st.session_state[task_key] = api.submit_task(ws, "umap", payload)
    task_id = st.session_state[task_key]
    st.info(
        f"{size:,} {what} is a big map: the worker computes it in the background "
        f"({slot}); it appears here when ready, and is cached for next time."
    )
    if not api.worker_alive(ws):
        st.warning(
            "No worker is running, so the map job waits in the queue. Fix: start one with "
            "`python -m recsys_core worker` (or `make run`)."
        )

    @st.fragment(run_every=2)
    def _poll() -> None:
        task = api.get_task(ws, task_id)
        st.progress(task.progress, text=task.message or task.status)
        if task.status == "done":
            st.rerun()
        elif task.error or task.status in ("failed", "cancelled", "interrupted"):
            st.error(f"The map job {task.status}: {md(task.error or 'no detail')}. Fix: retry it.")
            st.session_state.pop(task_key, None)

    _poll()
    return None


st.title("Embeddings")
st.markdown(
    "Where a model puts items and users: a UMAP map of its learned vectors, to see its clusters "
    "and long tail, and where a user's history, recommendations and test items sit."
)
ws, info, runs = ui.finished_runs_or_stop()
root = str(ws.root)
by_id = {r.id: r for r in runs}

c1, c2, c3 = st.columns([3, 1, 2])
run_id = c1.selectbox(
    "Run", list(by_id), format_func=lambda r: _run_label(by_id[r]), key="maps.run"
)
what = c2.radio("Map", WHAT, horizontal=True, key="maps.what")
with c3.expander("Map options"):
    metric = st.selectbox("Metric", METRICS, key="maps.metric")
    neighbours = st.slider("Neighbours", 5, 100, 15, key="maps.neighbors")
    min_dist = st.slider("Min distance", 0.0, 0.99, 0.1, step=0.05, key="maps.min_dist")
    seed = int(st.number_input("Seed", 0, 10_000, 0, key="maps.seed"))
with ui.guard("map options", stop=True):
    options = emb.MapOptions(metric=metric, n_neighbors=neighbours, min_dist=min_dist, seed=seed)
options_json = json.dumps(config_to_dict(options), sort_keys=True)

with ui.guard("computing the map", stop=True):
    result = _map(run_id, what, options, slot="left")
if result is None:
    st.stop()
with ui.guard("preparing the map", stop=True):
    table = _table(root, run_id, what, options_json)
    art = _artifacts(root, run_id)
    data = art.dataset()

# Items also get the cluster of their *text* vectors (stored embed-text vectors, else TF-IDF).
text = None
if what == "items":
    with ui.guard("item text clusters"):
        text_stamp = getattr(text_embedding_info(ws, by_id[run_id].spec.dataset), "created_at", 0.0)
        text = _text(root, run_id, text_stamp)
    if text is not None:
        table = table.copy()
        table[text_maps.TEXT_CLUSTER] = text[2][table["index"].to_numpy()]

# ----- controls: colour, user, item search, comparison -----------------------------------------
k1, k2, k3, k4 = st.columns([2, 2, 2, 2])
colour = k1.selectbox("Colour by", emb.colour_options(table), key="maps.colour")
split = _split(root, run_id)
test_users = np.asarray(split.test_users)[:USER_CHOICES]
user_ids = [str(u) for u in data.user_ids[test_users]]
user_choice = k2.selectbox(
    "Highlight a user", [NO_USER, *user_ids], key="maps.user",
    format_func=lambda u: u if u == NO_USER else f"user {u}",
    help="a test user of this run: their history, top-10 and held-out items on the item map",
)  # fmt: skip
# Item search and its neighbours table are about items: the users map has no place for them.
query = (
    k3.text_input("Search an item by title", key="maps.search", placeholder="e.g. Toy Story")
    if what == "items"
    else ""
)
others = [r for r in by_id if r != run_id]
compare = k4.selectbox(
    "Compare with", [NO_USER, *others], key="maps.compare",
    format_func=lambda r: r if r == NO_USER else _run_label(by_id[r]),
)  # fmt: skip

overlay = interests = None
focus: list[str] = []
user = None
if user_choice != NO_USER:
    with ui.guard("highlighting the user"):
        user = data.user_index(user_choice)
        if what == "items":
            overlay = emb.user_overlay(split, _recs(root, run_id), user, data, result)
            model_cls = MODELS.get(by_id[run_id].spec.model)
            if model_cls is not None and hasattr(model_cls, "user_interests"):
                vectors, _ = _vectors(root, run_id, "items")
                interests = emb.interest_points(_model(root, run_id), user, vectors, result)
        else:
            focus = [user_choice]

neighbours_table = None
matches = emb.find_items(data, query) if query.strip() else np.zeros(0, dtype=np.int64)
if query.strip() and not len(matches):
    st.warning(f"No item title contains {md(repr(query))}; try a shorter part of the title.")
if len(matches):
    item_titles = data.item_titles()
    item = st.selectbox(
        "Matching items", matches.tolist(), key="maps.item",
        format_func=lambda i: f"{item_titles[i]} ({data.item_ids[i]})",
    )  # fmt: skip
    with ui.guard("finding neighbours"):
        item_vectors, _ = _vectors(root, run_id, "items")
        neighbours_table = emb.neighbours_frame(
            item_vectors, data, int(item), 10, metric=options.metric
        )
        focus = [str(data.item_ids[int(item)]), *neighbours_table["id"].tolist()]

# ----- the map and its faithfulness ------------------------------------------------------------
title = f"{what.capitalize()} of {_run_label(by_id[run_id])}"
fig = map_figure(table, colour, title=title, overlay=overlay, interests=interests, focus=focus)
left, right = st.columns([4, 1])
with right:
    st.metric(
        "k-NN preservation@10", f"{result.knn_preservation:.2f}",
        help="share of each point's 10 nearest neighbours in the embedding that stay among its "
        f"10 nearest on the map; a random layout scores {result.random_baseline:.3f}",
    )  # fmt: skip
    trust = result.trustworthiness
    st.metric(
        "Trustworthiness@10", "n/a" if np.isnan(trust) else f"{trust:.2f}",
        help="1 = no false neighbours on the map (scikit-learn, on a sample of points)",
    )  # fmt: skip
    st.metric("Points", f"{result.n_points:,}")
    st.caption(f"Source: {md(result.source)}.")
    st.caption(result.sampling_note)
    origin = "from the cache" if result.cached else "just computed"
    st.caption(f"UMAP took {result.seconds:.1f} s ({origin}).")
    for note in result.notes:
        if "sample of" not in note:
            st.caption(f"ℹ️ {md(note)}")
with left:
    st.plotly_chart(fig, key="maps.figure")
    if result.source == emb.SOURCE_SIMILARITY:
        st.caption(
            "This model has no embeddings: the map is drawn from its item-item similarity "
            "(items close together are recommended in each other's place)."
        )
    st.caption(
        f"Each point is one of the run's {what}, coloured by {colour}; nearby points have "
        "similar vectors. Distances between far-apart clusters mean little on a UMAP map."
    )
if overlay is not None:
    counts = overlay["kind"].value_counts()
    st.caption(
        f"User {md(user_choice)}: ○ {counts.get('history', 0)} history items, "
        f"◆ {counts.get('recommended', 0)} of the top 10, ✕ {counts.get('test', 0)} held-out "
        "test items" + (f", ★ {len(interests)} interests" if interests is not None else "") + "."
    )
if neighbours_table is not None:
    chosen = data.item_titles()[int(item)]
    st.markdown(f"**Nearest neighbours of {md(chosen)}** in the embedding (circled on the map)")
    st.dataframe(neighbours_table, hide_index=True)

if text is not None and st.toggle("Show the text map beside it", key="maps.text"):
    with ui.guard("the text map"):
        text_result, text_table = _text_map(root, run_id, text_stamp, options_json)
        text_table = text_table.copy()
        aligned = emb.align(result.coords, table["id"], text_result.coords, text_table["id"])
        text_table["x"], text_table["y"] = aligned[:, 0], aligned[:, 1]
        text_colour = colour if colour in text_table.columns else text_maps.TEXT_CLUSTER
        st.plotly_chart(
            side_by_side_figure(
                table, text_table, text_colour, focus=focus,
                titles=("Behaviour: " + _run_label(by_id[run_id]), "Item text"),
            ),
            key="maps.text_figure",
        )  # fmt: skip
        st.caption(
            f"Left: what the model learned; right: the items' text ({text[1]}), rotated onto "
            f"the left map; coloured by {text_colour}. A text cluster that stays together on "
            "the left means the model learned what the text says; one scattered over the left "
            f"map means people treat those look-alikes differently. Text map k-NN "
            f"preservation@10: {text_result.knn_preservation:.2f}."
        )

# ----- downloads -------------------------------------------------------------------------------
stem = f"map_{run_id}_{what}"
d1, d2, d3 = st.columns(3)
d1.download_button(
    "Coordinates (CSV)", emb.coordinates_frame(table).to_csv(index=False), f"{stem}.csv",
    mime="text/csv", key="maps.csv",
)  # fmt: skip
d2.download_button(
    "Figure (HTML)", lambda: standalone_html(fig), f"{stem}.html", mime="text/html", key="maps.html"
)
# Rendered on click only: kaleido starts a Chromium for it (seconds), so not on every rerun.
if (missing := png_unavailable()) is None and result.n_points <= 20_000:
    d3.download_button(
        "Figure (PNG)", lambda: figure_png(fig), f"{stem}.png", mime="image/png", key="maps.png"
    )
else:
    d3.caption(
        f"PNG download is not available here ({missing or 'over 20,000 points'}): save a PNG "
        "with the camera icon in the chart's toolbar, or download the HTML."
    )

# ----- side by side ----------------------------------------------------------------------------
if compare != NO_USER:
    st.subheader("Side by side")
    with ui.guard("comparing", stop=True):
        other = _map(compare, what, options, slot="right")
        if other is None:
            st.stop()
        other_table = _table(root, compare, what, options_json).copy()
        aligned = emb.align(result.coords, table["id"], other.coords, other_table["id"])
        other_table["x"], other_table["y"] = aligned[:, 0], aligned[:, 1]
        agreement = None
        if "cluster" in table.columns and "cluster" in other_table.columns:
            other_table["cluster"], agreement = emb.match_clusters(
                table["id"], table["cluster"], other_table["id"], other_table["cluster"]
            )
    shared_colour = colour if colour in other_table.columns else None
    panel_titles = (_run_label(by_id[run_id]), _run_label(by_id[compare]))
    st.plotly_chart(
        side_by_side_figure(table, other_table, shared_colour, titles=panel_titles, focus=focus),
        key="maps.compare_figure",
    )
    s1, s2 = st.columns(2)
    s1.metric("k-NN preservation@10 (left)", f"{result.knn_preservation:.2f}")
    s2.metric("k-NN preservation@10 (right)", f"{other.knn_preservation:.2f}")
    clusters_note = (
        " Clusters are found in each run's own vectors, so the right map's clusters are "
        "renamed after the left cluster they share most points with: a cluster colour then "
        f"means the same group on both sides, and {agreement:.0%} of the shared points keep "
        "their cluster."
        if agreement is not None and np.isfinite(agreement)
        else ""
    )
    st.caption(
        f"The right map is rotated, scaled and moved (Procrustes on the {what} both maps share) "
        "so the same point sits in a comparable place; a category has the same colour on both "
        "sides." + clusters_note
    )
