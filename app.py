"""Recsys Explorer: the router (page config, session defaults, shared sidebar, navigation).

Run with ``streamlit run app.py`` (``make run`` also imports the sample and starts the worker).
Pages live in ``pages/``; each owner adds exactly one ``st.Page`` line below.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

import ui
import ui_access
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


def _navigation() -> StreamlitPage:
    """The sign-in page for an anonymous visitor of an exposed app; in demo mode (server
    setting, a viewer's login, or the analyst's switch) the Demo page alone; else every page."""
    blocked = ui_access.gate(ui.workspace())
    if blocked is not None:
        return blocked
    return st.navigation(ui_demo.demo_pages() if ui_demo.is_demo_mode() else PAGES)


navigation = _navigation()


def _sidebar() -> None:
    """Workspace, active dataset, worker state and active run, shared by every page.

    In demo mode: the dataset picker and the switch only (no worker start, no settings).
    """
    ws = ui.workspace()
    with st.sidebar:
        ui_access.sidebar_account()
        ui_demo.sidebar_switch()  # a caption instead for a viewer or a demo server
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


if ui_access.KEY_ROLE in st.session_state:
    _sidebar()
navigation.run()
