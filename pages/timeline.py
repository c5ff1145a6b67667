"""Timeline: rolling evaluation over time windows (frozen vs update vs retrain vs sliding)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
import ui_access
import ui_demo
from recsys_core import rolling
from recsys_core.config import config_to_dict
from recsys_core.jobs import api
from recsys_core.models import MODELS
from recsys_core.viz.markdown import md
from recsys_core.viz.timeline import summary_table, timeline_figure

st.title("Timeline")
st.markdown(
    "How fast do models go stale as data keeps arriving, and does updating them keep up with "
    "retraining? Each window is tested with models that only learned from the past."
)
ws = ui.workspace()
info = ui.active_dataset()
if info is None:
    st.info("Load a dataset first (Home: **Load the MovieLens sample**).")
    st.stop()

# ----- start a rolling evaluation ---------------------------------------------------------------
with st.expander("Start a rolling evaluation", expanded=not rolling.list_results(ws, info.id)):
    left, right = st.columns(2)
    models = left.multiselect("Models", sorted(MODELS), ["ials", "ease"], key="tl.models")
    strategies = left.multiselect(
        "Strategies", list(rolling.STRATEGIES), ["frozen", "update", "retrain"], key="tl.strat"
    )
    windows = right.slider("Windows", 2, 12, 6, key="tl.windows")
    cut = right.radio(
        "Cut",
        ["time", "count"],
        horizontal=True,
        key="tl.cut",
        help="equal time spans, or equal numbers of interactions per window",
    )
    initial = right.slider(
        "Share of the data before the first window", 0.1, 0.9, 0.5, 0.05, key="tl.initial"
    )
    size = right.number_input("Sliding: windows of data trained on", 1, 12, 2, key="tl.size")
    if st.button("Start", type="primary", key="tl.start", disabled=not (models and strategies)):
        ui_demo.refuse_writes("starting a rolling evaluation")
        with ui.guard("rolling evaluation"):
            ui_access.require_analyst()
            spec = rolling.RollingSpec(
                models=tuple(models),
                strategies=tuple(strategies),
                windows=windows,
                cut=cut,
                initial=initial,
                window_size=int(size),
            )
            payload = {"dataset": info.id, "spec": config_to_dict(spec)}
            st.session_state["tl.task"] = api.submit_task(ws, "rolling", payload)

if task_id := st.session_state.get("tl.task"):
    if not api.worker_alive(ws):
        st.warning(
            "No worker is running, so the evaluation waits in the queue. Fix: start one with "
            "`python -m recsys_core worker` (or `make run`)."
        )

    @st.fragment(run_every=2)
    def _poll() -> None:
        task = api.get_task(ws, task_id)
        st.progress(task.progress, text=task.message or task.status)
        if task.status == "done":
            st.session_state.pop("tl.task", None)
            st.rerun()
        elif task.error or task.status in ("failed", "cancelled", "interrupted"):
            st.error(f"The rolling evaluation {task.status}: {md(task.error or 'no detail')}.")
            st.session_state.pop("tl.task", None)

    _poll()

# ----- results ------------------------------------------------------------------------------------
stored = rolling.list_results(ws, info.id)
if not stored:
    st.info("No rolling evaluation of this dataset yet: start one above.")
    st.stop()
by_name = {p["name"]: p for p in stored}


def _label(name: str) -> str:
    payload = by_name[name]
    when = pd.Timestamp(payload["created_at"], unit="s")
    models = ", ".join(payload["spec"]["models"])
    return f"{models} · {payload['spec']['windows']} windows · {when:%Y-%m-%d %H:%M}"


name = st.selectbox("Evaluation", list(by_name), key="tl.pick", format_func=_label)
results = rolling.results_frame(by_name[name])
metrics = [c for c in results.columns if "@" in c and not c.endswith(("_lo", "_hi"))]
metric = st.selectbox(
    "Metric", metrics, index=metrics.index("ndcg@10") if "ndcg@10" in metrics else 0
)
table = summary_table(results, metric)
best = table.sort_values(f"mean {metric}", ascending=False).iloc[0]
row = st.columns(3)
row[0].metric(
    f"Best mean {metric}",
    f"{best[f'mean {metric}']:.4f}",
    f"{best['model']} · {best['strategy']}",
    delta_color="off",
)
row[1].metric("Windows", int(results["window"].max()))
row[2].metric("Cold items in the windows", f"{100 * results['cold_item_share'].mean():.0f}%")
st.plotly_chart(timeline_figure(results, metric), key="tl.figure", width="stretch")
st.caption(
    "Top: the metric of each model (colour) and strategy (line style) per window, with 95% "
    "CIs; ▼ marks a window where two models swap places. Bottom: seconds spent training."
)
st.dataframe(table, hide_index=True, width="stretch")
flips = rolling.ranking_flips(results, metric)
if len(flips):
    st.dataframe(flips, hide_index=True, width="stretch")
with st.expander("Every window"):
    st.dataframe(results, hide_index=True, width="stretch")
