"""Home: what the tool is for, the workspace's datasets, the one-click sample, recent runs."""

from __future__ import annotations

import streamlit as st

import ui
import ui_access
import ui_demo

st.title("Recsys Explorer")
st.markdown(
    "Load interaction data, train recommenders in the background, and compare them honestly: "
    "with confidence intervals, long-tail trade-offs, embeddings maps and explanations."
)
ws = ui.workspace()
infos = ui.list_datasets()

left, right = st.columns([2, 1])
with right:
    if st.button(
        "Load the MovieLens sample", type="primary", icon=":material/movie:", key="load_sample"
    ):
        ui_demo.refuse_writes("importing the sample")
        from recsys_core.data.store import import_sample

        with ui.guard("loading the sample"), st.spinner("Importing MovieLens ml-latest-small…"):
            ui_access.require_analyst()
            info = import_sample(ws)
            ui.set_active_dataset(info.id)
            st.session_state["home_notice"] = (
                f"Loaded **{info.name}**: {info.n_users:,} users × {info.n_items:,} items."
            )
            st.rerun()
    st.caption("610 users rating 9,724 movies (GroupLens, non-commercial research licence).")
with left:
    if notice := st.session_state.pop("home_notice", None):
        st.success(notice)
    st.metric("Datasets in this workspace", len(infos))

st.subheader("Datasets")
if infos:
    st.dataframe(ui.datasets_frame(infos), hide_index=True, width="stretch")
else:
    st.info("No dataset yet: click **Load the MovieLens sample**, or import a file on Data.")

st.subheader("Recent runs")
with ui.guard("listing runs"):
    from recsys_core.jobs import api

    records = api.list_runs(ws)[:10]
    if records:
        st.dataframe(ui.runs_frame(records, with_dataset=True), hide_index=True, width="stretch")
    else:
        st.caption("No runs yet: queue some on the Train page.")
