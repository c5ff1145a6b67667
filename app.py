"""Recsys Explorer: the router (page config, session defaults, shared sidebar, navigation).

Run with ``streamlit run app.py`` (``make run`` also imports the sample and starts the worker).
Pages live in ``pages/``; each owner adds exactly one ``st.Page`` line below.
"""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

import ui
import ui_access

st.set_page_config(
    page_title="Recsys Explorer",
    page_icon=":material/explore:",
    layout="wide",
    initial_sidebar_state="expanded",
)
ui.init_session()

PAGES = {
    "Explore": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/database:"),
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
#: The pages a viewer account gets (read-only; every write also refuses viewers through
#: ui_access.require_analyst). The demo page replaces this list when demo mode lands.
VIEWER_PAGES = ("compare",)  # url paths of pages in PAGES


def _viewer_pages() -> list[StreamlitPage]:
    """The pages of PAGES named in VIEWER_PAGES (a viewer's whole navigation)."""
    return [page for group in PAGES.values() for page in group if page.url_path in VIEWER_PAGES]


def _navigation() -> StreamlitPage:
    """The sign-in page for an anonymous visitor of an exposed app, the viewer pages for a
    viewer, everything for an analyst (and for anyone on 127.0.0.1)."""
    blocked = ui_access.gate(ui.workspace())
    if blocked is not None:
        return blocked
    if ui_access.is_analyst():
        return st.navigation(PAGES)
    return st.navigation(_viewer_pages())


navigation = _navigation()


def _sidebar() -> None:
    """Workspace, active dataset, worker state and active run, shared by every page."""
    ws = ui.workspace()
    with st.sidebar:
        ui_access.sidebar_account()
        if not ui_access.is_analyst():
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
