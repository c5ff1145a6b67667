"""Recsys Explorer: the router (page config, session defaults, shared sidebar, navigation).

Run with ``streamlit run app.py`` (``make run`` also imports the sample and starts the worker).
Pages live in ``pages/``; each owner adds exactly one ``st.Page`` line below.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
import ui_demo

st.set_page_config(
    page_title="Recsys Explorer",
    # A local file: a :material/...: icon makes the browser fetch the favicon from a font host.
    page_icon=str(Path(__file__).resolve().parent / "assets" / "icon.png"),
    layout="wide",
    initial_sidebar_state="expanded",
)
ui.init_session()

PAGES = {
    "Explore": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/database:"),
        st.Page("pages/demo.py", title="Demo", icon=":material/slideshow:"),
    ],
    "Model": [
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/leaderboard:"),
        st.Page("pages/explain.py", title="Explain", icon=":material/lightbulb:"),
        st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        st.Page("pages/balance.py", title="Balance", icon=":material/balance:"),
        st.Page("pages/tune.py", title="Tune", icon=":material/tune:"),
        st.Page("pages/timeline.py", title="Timeline", icon=":material/timeline:"),
        # Embeddings, Explain and Balance pages: their owners add one st.Page line each here.
    ],
}
# Demo mode (server setting, viewer login or the analyst's switch) routes to the Demo page only.
navigation = st.navigation(ui_demo.demo_pages() if ui_demo.is_demo_mode() else PAGES)


def _sidebar() -> None:
    """Workspace, active dataset, worker state and active run, shared by every page.

    In demo mode: the dataset picker and the switch only (no worker start, no settings).
    """
    ws = ui.workspace()
    with st.sidebar:
        ui_demo.sidebar_switch()
        if ui_demo.is_demo_mode():
            ui.sidebar_dataset_picker()
            return
        st.caption(f"Workspace: `{ws.root}`")
        ui.sidebar_dataset_picker()
        with ui.guard("worker"):
            ui.worker_status(ws)
        with ui.guard("executor"):
            ui.executor_picker(ws)
        run_id = st.session_state.get(ui.KEY_RUN)
        if run_id:
            st.caption(f"Active run: `{run_id}`")


_sidebar()
navigation.run()
