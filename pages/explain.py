"""Explain: why a finished run recommends an item to a user (SHAP attributions, checked)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import streamlit as st

import ui
import ui_access
import ui_demo
from recsys_core.explain import (
    SIDE_KINDS,
    USER_SEGMENTS,
    explain,
    explanation_path,
    finished_run,
    held_out_frame,
    history_frame,
    history_source,
    segment_users,
    top_k,
    user_history,
)
from recsys_core.jobs import api
from recsys_core.presentation import why_card
from recsys_core.report import cards_report
from recsys_core.viz.explain import attention_heatmap, deletion_curve, waterfall
from recsys_core.viz.export import standalone_html
from recsys_core.viz.markdown import md
from recsys_core.whatif import (
    SEARCH_LIMIT,
    edit_history,
    edited_explanation_path,
    item_labels,
    search_items,
    what_if,
)
from recsys_core.workspace import Workspace

#: Histories longer than this are explained by the worker for deep models (seconds, not ms).
BACKGROUND_OVER = 30


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(root: str, run_id: str):  # noqa: ANN202 - a Recommender, read-only once loaded
    return finished_run(Workspace(Path(root)), run_id).model()


@st.cache_data(show_spinner="Explaining…", max_entries=64)
def _explain(
    root: str, run_id: str, user: int, item: int, target: str, k: int,
    add: tuple[int, ...] = (), remove: tuple[int, ...] = (),
) -> dict:  # fmt: skip
    split = ui.run_split(root, run_id)
    model = _model(root, run_id)
    data = history_source(split, user)
    if add or remove:  # the what-if edit: the same rules as the re-ranking (recsys_core.whatif)
        data = edit_history(data, user, add=add, remove=remove)
    return explain(model, data, user, item, target=target, k=k).to_dict()


@st.cache_data(show_spinner=False, max_entries=256)
def _search(root: str, run_id: str, query: str, exclude: tuple[int, ...]) -> list[int]:
    """At most SEARCH_LIMIT matches: the page never ships the whole catalogue."""
    return search_items(ui.run_split(root, run_id).train, query, exclude=exclude).tolist()


def _task_key(kind: str, payload: dict) -> str:
    """The session key of a background task, by its payload (another user or item, another
    task: switching while one runs never polls the stale one)."""
    text = json.dumps([kind, payload], sort_keys=True)
    return "explain.task." + hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_label(record) -> str:  # noqa: ANN001 - a RunRecord
    return f"{record.spec.label or record.spec.model} · {record.id}"


st.title("Explain")
st.markdown(
    "Why was this item recommended to this user? Shapley attributions of the real model's "
    "score over the user's history, checked for efficiency and for faithfulness."
)
ws, info, runs = ui.finished_runs_or_stop()
root = str(ws.root)
by_id = {r.id: r for r in runs}
ui.restore_from_url("explain.run", ui.URL_RUN, by_id)  # a reload or shared link: same view
run_id = st.selectbox(
    "Run", list(by_id), format_func=lambda r: _run_label(by_id[r]), key="explain.run"
)
ui.set_url(**{ui.URL_RUN: run_id})
with ui.guard("loading the run", stop=True):
    split = ui.run_split(root, run_id)
    model = _model(root, run_id)

# ----- the user ---------------------------------------------------------------------------------
pool_data = split.fold_in if split.fold_in is not None else split.train
left, mid, right = st.columns([2, 2, 1])
segment = left.radio(
    "Users", USER_SEGMENTS, horizontal=True, key="explain.segment",
    help="cold: the least active fifth; heavy: the most active tenth",
)  # fmt: skip
pool = np.intersect1d(segment_users(pool_data, segment), split.test_users)
if not len(pool):
    st.info(f"No {segment} test user in this split; pick another segment.")
    st.stop()
search = mid.text_input("Search a user by id", key="explain.search", placeholder="e.g. 42")
if right.button("Random user", key="explain.random", icon=":material/casino:"):
    st.session_state["explain.user"] = str(np.random.default_rng().choice(pool))
if (url_user := ui.url_value(ui.URL_USER)) and "explain.user" not in st.session_state:
    with ui.guard("finding the user from the link"):
        st.session_state["explain.user"] = str(pool_data.user_index(url_user))
user = None
with ui.guard("finding the user"):
    if search.strip():
        user = pool_data.user_index(search.strip())
if user is None:
    chosen = st.session_state.get("explain.user")
    user = int(chosen) if chosen is not None and int(chosen) in set(pool.tolist()) else int(pool[0])
data = history_source(split, user)
if not len(user_history(data, user)):
    st.error(
        f"User {md(data.user_ids[user])} has no history in this run's training data, so there is "
        "nothing to explain. Fix: search another user or pick one at random."
    )
    st.stop()
st.subheader(f"User {md(data.user_ids[user])}")
ui.set_url(**{ui.URL_USER: data.user_ids[user]})

k = 10
with ui.guard("ranking", stop=True):
    recs = top_k(model, data, user, k=k)
history = history_frame(data, user)
held = held_out_frame(split, user, recs["item_index"].to_numpy())
c1, c2 = st.columns(2)
c1.markdown(f"**History** ({len(history)} items, oldest first)")
c1.dataframe(history, hide_index=True, height=260)
c2.markdown(f"**Top {k}** for this history, and the held-out test items")
recs_view = recs.assign(test=np.where(recs["item_index"].isin(held["item_index"]), "hit", ""))
c2.dataframe(recs_view.drop(columns="item_index"), hide_index=True, height=180)
c2.dataframe(held.drop(columns="item_index"), hide_index=True, height=120)

# ----- what if: edit the history ---------------------------------------------------------------
st.subheader("What if?")
st.caption(
    "Take items out of this user's history or add new ones (they come last, as the most "
    "recent); the model folds the edited history in through its own score_history, and the "
    "top-k below and the explanation follow at once."
)
if st.session_state.get("explain.edit_for") != [run_id, user]:  # another user or run: no edit
    for key in ("explain.remove", "explain.add", "explain.add_query"):
        st.session_state.pop(key, None)
    st.session_state["explain.edit_for"] = [run_id, user]
hist_items = user_history(data, user)
e1, e2, e3 = st.columns([2, 1, 2])
hist_labels = dict(zip(hist_items.tolist(), item_labels(data, hist_items), strict=True))
removed = e1.multiselect(
    "Remove from the history", list(hist_labels), format_func=lambda i: hist_labels[i],
    key="explain.remove",
)  # fmt: skip
query = e2.text_input("Find items to add", key="explain.add_query", placeholder="title or id")
kept = np.setdiff1d(hist_items, removed)
chosen = [int(i) for i in st.session_state.get("explain.add", [])]
options = list(dict.fromkeys(chosen + _search(root, run_id, query, tuple(kept.tolist()))))
add_labels = dict(zip(options, item_labels(data, options), strict=True))
added = e3.multiselect(
    "Add to the history", options, format_func=lambda i: add_labels[i], key="explain.add",
    placeholder="Pick from the matches",
    help=f"Offers the {SEARCH_LIMIT} most popular items matching the search (the most popular "
    "ones when it is empty); added items come last, in the order picked.",
)  # fmt: skip
whatif = None
if removed or added:
    with ui.guard("re-ranking the edited history", stop=True):
        whatif = what_if(model, data, user, add=added, remove=removed, k=k)
    moved = whatif.table["status"].isin(["moved up", "moved down"]).sum()
    w1, w2, w3 = st.columns(3)
    w1.metric(f"Entered the top {k}", len(whatif.entered))
    w2.metric(f"Left the top {k}", len(whatif.left))
    w3.metric("Moved within it", int(moved))
    for note in whatif.notes:
        st.info(note)
    (st.success if whatif.changed else st.info)(whatif.summary())
    st.dataframe(whatif.table.drop(columns="item_index"), hide_index=True, key="explain.diff")
    st.caption(
        f"before / after: the rank with the original and with the edited history (blank: in "
        f"that history, so never recommended); move = before − after, positive = moved up. "
        f"Items that left the top {k} are listed last."
    )
edit = {"add": tuple(int(i) for i in added), "remove": tuple(int(i) for i in removed)}

# ----- the explanation ------------------------------------------------------------------------
shown = whatif.after if whatif is not None else recs
titles = dict(zip(shown["item_index"], shown["title"], strict=True))
a, b = st.columns([3, 1])
ui.restore_from_url("explain.item", ui.URL_ITEM, titles, lambda i: str(data.item_ids[i]))
item = a.selectbox(
    "Recommended item to explain", list(titles), format_func=lambda i: f"{titles[i]}",
    key="explain.item",
)  # fmt: skip
ui.set_url(**{ui.URL_ITEM: data.item_ids[item]})
target = b.radio(
    "Explain", ["score", "rank"], key="explain.target", horizontal=True,
    help=f"rank: the item's margin over the #{k} item, i.e. why it is in the top {k}",
)  # fmt: skip

n_history = len(whatif.history) if whatif is not None else len(history)
long_job = model.family == "deep" and n_history > BACKGROUND_OVER
exp: dict | None = None
if long_job:
    user_id, item_id = data.user_ids[user], data.item_ids[item]
    kind, path = "explain", explanation_path(ws, run_id, user_id, item_id, target, k)
    payload = {"run": run_id, "user": str(user_id), "target": target}
    payload |= {"item": str(item_id), "k": k}
    if whatif is not None:
        add_ids = [str(data.item_ids[i]) for i in edit["add"]]
        remove_ids = [str(data.item_ids[i]) for i in edit["remove"]]
        kind, payload = "explain_edited", payload | {"add": add_ids, "remove": remove_ids}
        path = edited_explanation_path(ws, run_id, user_id, item_id, target, k, add_ids, remove_ids)
    if path.exists():
        exp = json.loads(path.read_text())
    else:
        st.info(
            f"A {n_history}-item history under a deep model takes a while: the worker "
            "explains it in the background."
        )
        task_key = _task_key(kind, payload)
        if st.button("Explain in the background", key="explain.submit"):
            ui_demo.refuse_writes("starting a background explanation")
            with ui.guard("submitting"):  # an identical queued or running task is reused
                ui_access.require_analyst()
                st.session_state[task_key] = api.submit_task(ws, kind, payload)
        # After a reload the session has forgotten the task; the catalog has not.
        task_id = api.find_task(ws, kind, payload) or st.session_state.get(task_key)
        task = api.get_task(ws, task_id) if task_id else None
        if task is not None and task.payload == payload:
            was_active = task.is_active

            @st.fragment(run_every=2 if was_active else None)  # polls only a live task
            def _poll() -> None:
                task = api.get_task(ws, task_id)
                if was_active and not task.is_active:
                    st.rerun()  # finished: the full page shows the explanation or the outcome
                if task.status == "cancelled":
                    st.info("Explanation cancelled.", icon=":material/block:")
                elif task.error:
                    st.error(md(task.error))
                else:
                    st.progress(task.progress, text=task.message or task.status)

            _poll()
        st.stop()
else:
    with ui.guard("explaining", stop=True):
        exp = _explain(root, run_id, user, int(item), target, k, **edit)
if whatif is not None:
    st.caption(
        f"Explaining the edited history: {len(whatif.added)} item(s) added, "
        f"{len(whatif.removed)} removed ({len(whatif.history)} items)."
    )

faith = exp["faithfulness"]
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Score", f"{exp['score']:.4g}", help="the model's real score of the item")
m2.metric("Rank", exp["rank"], help="among items the user has not seen")
m3.metric(
    "Base value", f"{exp['base_value']:.4g}",
    help="output with an empty history (and side features, if any, at their neutral value)",
)  # fmt: skip
m4.metric(
    "Efficiency", "holds" if exp["efficient"] else "fails",
    help=f"|base + Σ attributions − output| = {exp['efficiency_gap']:.2g} "
    f"(tolerance {exp['tolerance']:.2g}); {exp['method']} Shapley, {exp['seconds']:.2f} s",
)  # fmt: skip
m5.metric(
    "Faithfulness", f"{faith['faithfulness']:+.2f}",
    help="deletion-curve area of random orders minus that of the attribution order; "
    "> 0 means removing the top-attributed items hurts the score faster than random removals",
)  # fmt: skip
st.success(md(exp["sentence"]))
fig = waterfall(exp)
st.plotly_chart(fig, key="explain.waterfall")
st.caption(
    "Read from the base value (no history) down to the model's output: green bars push the "
    "item up, red bars pull it down; the bars add up exactly to the output. Labels in purple "
    "are side features: the user's attributes and the item's own features."
)
side = [f for f in exp["features"] if f["kind"] in SIDE_KINDS]
if side:
    st.markdown("**Side features** (removed = the model's neutral value)")
    st.dataframe(
        [{"kind": f["kind"], "feature": f["name"], "attribution": f["attribution"]} for f in side],
        hide_index=True,
    )
for note in exp["notes"]:
    st.caption(f"Note: {md(note)}")
g1, g2 = st.columns(2)
g1.plotly_chart(deletion_curve(exp), key="explain.deletion")
g1.caption(
    "Removing history items in attribution order should drop the score faster than random "
    "orders (solid line below the dashed one)."
)
heat = attention_heatmap(exp)
if heat is not None:
    g2.plotly_chart(heat, key="explain.attention")
    g2.caption(
        "The history items with the largest attribution or attention (up to 15, oldest at the "
        "top), each scaled to its largest value. Attention is what the model looks at, not what "
        "drives its score; the Spearman figure says how far the two agree over the whole history."
    )

d1, d2, d3 = st.columns(3)
name = f"explain_{run_id}_{exp['user_id']}_{exp['item_id']}"
d1.download_button(
    "Explanation (JSON)", json.dumps(exp, indent=2), f"{name}.json", "application/json",
    key="explain.download_json", icon=":material/download:",
)  # fmt: skip
d2.download_button(
    "Figure (HTML)", lambda: standalone_html(fig), f"{name}.html", "text/html",
    key="explain.download_html", icon=":material/download:",
)  # fmt: skip
d3.download_button(
    "Why-card (HTML)",
    lambda: cards_report(ws, [why_card(ws, run_id, split, model, user, segment=segment)]).html(),
    f"why_{run_id}_{exp['user_id']}.html", "text/html", key="explain.download_card",
    icon=":material/download:", help="this user's top 3, each with its three strongest reasons",
)  # fmt: skip

# ----- the same user and item under a second run -------------------------------------------------
others = [r for r in runs if r.id != run_id]
if others:
    st.subheader("Under another run")
    other = st.selectbox(
        "Second run", [None] + [r.id for r in others], key="explain.other",
        format_func=lambda r: "—" if r is None else _run_label(by_id[r]),
    )  # fmt: skip
    if other:
        with ui.guard("explaining under the second run"):
            other_split = ui.run_split(root, other)
            other_data = history_source(other_split, user)
            if other_data.n_items != data.n_items or other_data.n_users != data.n_users:
                raise ValueError("the two runs use different datasets; pick a run on this one")
            second = _explain(root, other, user, int(item), target, k, **edit)
            s1, s2 = st.columns(2)
            s1.markdown(f"**{by_id[run_id].spec.model}**: {md(exp['sentence'])}")
            s1.plotly_chart(fig, key="explain.compare_left")
            s2.markdown(f"**{by_id[other].spec.model}**: {md(second['sentence'])}")
            s2.plotly_chart(waterfall(second), key="explain.compare_right")
