"""Demo: a read-only, guided story of finished runs for people who do not train models.

The data at a glance, how the models compare (one chart, one sentence, the uncertainty said
plainly), and "why this item" cards. Everything comes from stored runs and cached explanations
(see :mod:`recsys_core.presentation` for when a card's explanation may be computed on the spot);
nothing here trains, queues or writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

import ui
import ui_demo
from recsys_core.explain import finished_run
from recsys_core.jobs import api
from recsys_core.presentation import (
    DEMO_SEGMENTS,
    comparison_sentence,
    demo_users,
    glance_sentence,
    why_card,
)
from recsys_core.report import card_html, cards_report, compare_report, run_entry
from recsys_core.viz.runs import leaderboard_bars, leaderboard_table, metric_columns, split_key
from recsys_core.workspace import Workspace


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(root: str, run_id: str):  # noqa: ANN202 - a Recommender, read-only once loaded
    return finished_run(Workspace(Path(root)), run_id).model()


@st.cache_data(show_spinner="Preparing the card…", max_entries=64)
def _card(root: str, run_id: str, segment: str, pick: int):  # noqa: ANN202 - a WhyCard
    split = ui.run_split(root, run_id)
    users = demo_users(split, segment, n=8, seed=pick)
    if not len(users):
        return None
    user = int(users[pick % len(users)]) if segment != "random" else int(users[0])
    ws = Workspace(Path(root))
    return why_card(ws, run_id, split, _model(root, run_id), user, segment=segment)


ui_demo.large_type()
st.title("Recommendations, explained")
st.markdown(
    "A short tour of what our recommenders learned: the data, how the models compare, and why "
    "a given person gets a given recommendation. Read-only: nothing here trains or changes."
)
ws = ui.workspace()
info = ui.active_dataset()
if info is None:
    st.stop()
root = str(ws.root)
with ui.guard("reading runs", stop=True):
    runs = api.list_runs(ws, dataset=info.id, status="done")
if not runs:
    st.info(
        "No finished run on this dataset yet. Demo mode only shows finished runs and never "
        "trains: an analyst trains some first (Train page, or `python -m recsys_core runs "
        "submit DATASET --model ease --wait`), then opens the demo again."
    )
    st.stop()

# ----- 1 · the data at a glance ---------------------------------------------------------------
st.header("1 · The data at a glance")
with ui.guard("loading the data", stop=True):
    data = ui.load_dataset(root, info.id, info.content_hash)
c1, c2, c3 = st.columns(3)
c1.metric("People", f"{info.n_users:,}")
c2.metric("Items", f"{info.n_items:,}")
c3.metric("Interactions", f"{info.n_interactions:,}")
st.text(glance_sentence(info, data.item_popularity))

# ----- 2 · how the models compare -----------------------------------------------------------
st.header("2 · How the models compare")
groups: dict[str, list] = {}
for record in runs:
    groups.setdefault(split_key(record.spec.dataset, record.spec.split), []).append(record)
# One fair comparison: the runs of one split (by default the split with the most runs); the
# analyst chooses which of them the demo shows before presenting.
split_keys = sorted(groups, key=lambda key: -len(groups[key]))
with st.expander("Runs shown in this demo", expanded=False):
    chosen_split = st.selectbox(
        "Split", split_keys, key="demo.split",
        format_func=lambda key: f"{groups[key][0].spec.split.get('protocol', 'default')} split, "
        f"{len(groups[key])} finished runs",
    )  # fmt: skip
    options = {r.id: r for r in groups[chosen_split]}
    picked = st.multiselect(
        "Runs", list(options), default=list(options), key=f"demo.runs.{chosen_split}",
        format_func=lambda r: f"{options[r].spec.label or options[r].spec.model} · {r[-6:]}",
        help="The comparison, the report and the cards use these runs only.",
    )  # fmt: skip
records = [options[r] for r in picked]
if not records:
    st.info("No run chosen: pick at least one under \"Runs shown in this demo\".")
    st.stop()
with ui.guard("loading metrics", stop=True):
    entries = [run_entry(record, ui.run_metrics(root, record.id)) for record in records]
    table = leaderboard_table(entries)
    available = metric_columns(table)
metric = "ndcg@10" if "ndcg@10" in available else available[0]
st.plotly_chart(leaderboard_bars(table, metric), key="demo.bars", width="stretch")
st.text(comparison_sentence(table, metric))
st.caption(
    f"{metric}: how high the items each person went on to choose appear in their top 10 "
    "(1 = always first). Whiskers are 95% confidence intervals: where they overlap, this test "
    "set cannot tell the models apart."
)
if len(records) >= 2:
    st.download_button(
        "Comparison report (HTML, opens offline)",
        lambda: compare_report(ws, [r.id for r in records]).html(),
        f"comparison-{info.name}.html", mime="text/html", key="demo.report",
        icon=":material/download:",
    )  # fmt: skip

# ----- 3 · why this item --------------------------------------------------------------------
st.header("3 · Why this item?")
best = table.sort_values(metric, ascending=False)["run"].iloc[0]
by_id = {r.id: r for r in records}
left, mid, right = st.columns([2, 3, 1])
run_id = left.selectbox(
    "Model", list(by_id), index=list(by_id).index(best), key="demo.run",
    format_func=lambda r: f"{by_id[r].spec.label or by_id[r].spec.model} · {r[-6:]}",
)  # fmt: skip
segment = mid.radio(
    "Person", DEMO_SEGMENTS, horizontal=True, key="demo.segment",
    help="cold: few interactions; typical: around the median; heavy: the most active tenth",
)  # fmt: skip
if right.button("Another person", key="demo.next", icon=":material/casino:"):
    st.session_state["demo.pick"] = int(np.random.default_rng().integers(1 << 30))
with ui.guard("preparing the card", stop=True):
    card = _card(root, run_id, segment, st.session_state.get("demo.pick", 0))
if card is None:
    st.info(f"No {segment} test user in this run's split; pick another kind of person.")
    st.stop()
st.html(card_html(card))  # every user string escaped
st.caption(
    "Each reason is one item of the person's history and how much it adds to the model's "
    "score (Shapley values of the real model). The check line is the model's own proof that "
    "the explanation is complete: baseline + all contributions = the score."
)
st.download_button(
    "This card (HTML, opens offline)", lambda: cards_report(ws, [card]).html(),
    f"why-{run_id}-{card.user_id}.html", mime="text/html", key="demo.card",
    icon=":material/download:",
)  # fmt: skip
