"""Streamlit glue of access control: the login gate, the sign-in page, logout, the write check.

The rules live in :mod:`recsys_core.access`; this module turns them into pages and widgets.
``app.py`` calls :func:`gate` before it builds the navigation: an anonymous visitor of an
exposed app gets a navigation holding the sign-in page alone (every URL leads there), and an
app exposed without any account gets a page holding the message that says how to add one.
"""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from recsys_core import access
from recsys_core.viz.markdown import md
from recsys_core.workspace import Workspace

#: Session-state keys the rest of the app reads (the demo mode reads KEY_ROLE == "viewer").
KEY_ROLE = "role"
KEY_USERNAME = "username"


@st.cache_resource(show_spinner=False)
def _limiter() -> access.LoginLimiter:
    # One limiter for the whole server process: failures count across sessions and tabs.
    return access.LoginLimiter()


def bind_address() -> str | None:
    """The address Streamlit serves on (``server.address``; None = every interface)."""
    return st.get_option("server.address")


def gate(ws: Workspace) -> StreamlitPage | None:
    """Decide who this session is; returns a navigation to run instead of the app's, or None.

    On 127.0.0.1 every session is an analyst. Exposed, a signed-in session keeps its role
    while its account exists (a removed account is signed out at its next rerun).
    """
    address = bind_address()
    if not access.login_required(address):
        st.session_state[KEY_ROLE] = access.ANALYST
        st.session_state.setdefault(KEY_USERNAME, "")
        return None
    if not access.has_accounts(ws):
        st.session_state["access.message"] = access.no_account_message(address)
        return _only(_no_account_page, "Set up accounts")
    name = st.session_state.get(KEY_USERNAME)
    role = access.role_of(ws, name) if name else None
    if role is None:
        for key in (KEY_ROLE, KEY_USERNAME):
            st.session_state.pop(key, None)
        return _only(login_page, "Sign in")
    st.session_state[KEY_ROLE] = role
    return None


def _only(page: object, title: str) -> StreamlitPage:
    return st.navigation(
        [st.Page(page, title=title, icon=":material/lock:", default=True)], position="hidden"
    )


def _no_account_page() -> None:
    st.title("Recsys Explorer")
    st.error(st.session_state.get("access.message", ""), icon=":material/lock:")


def login_page() -> None:
    """The sign-in form (the only page an anonymous visitor of an exposed app gets)."""
    from ui import workspace

    st.title("Recsys Explorer")
    st.markdown("Sign in with the account an analyst made for you.")
    with st.form("access.login"):
        name = st.text_input("User name", key="access.name")
        password = st.text_input("Password", type="password", key="access.password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            role = access.authenticate(workspace(), name, password, _limiter())
        except access.AccessError as error:
            st.error(md(error), icon=":material/lock:")
            return
        # A fresh session state: nothing of an earlier visitor of this tab survives the login.
        st.session_state.clear()
        st.session_state[KEY_USERNAME] = name.strip()
        st.session_state[KEY_ROLE] = role
        st.rerun()


def sidebar_account() -> None:
    """"Signed in as NAME (role)" and the logout button; nothing on 127.0.0.1."""
    name = st.session_state.get(KEY_USERNAME)
    if not name:
        return
    st.caption(f":material/person: Signed in as **{md(name)}** ({st.session_state.get(KEY_ROLE)})")
    if st.button("Log out", key="access.logout", icon=":material/logout:"):
        st.session_state.clear()
        st.rerun()


def is_analyst() -> bool:
    """True when this session may write (import, train, delete, settings)."""
    return st.session_state.get(KEY_ROLE) == access.ANALYST


def require_analyst() -> None:
    """Raise :class:`~recsys_core.access.AccessError` unless this session is an analyst's.

    Call it first inside a page's ``ui.guard`` block of any write, so a viewer who reached
    the widget gets the refusal as an error.
    """
    access.require_analyst(st.session_state.get(KEY_ROLE))
