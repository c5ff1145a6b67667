"""Demo mode in the app: when it is on, the sidebar switch, and the read-only guard.

Demo mode (issue 15) is a read-only presentation of finished runs. It is on when any of:

- the server was started with ``RECSYS_EXPLORER_MODE=demo`` (``make demo``);
- a viewer is logged in (``st.session_state["role"] == "viewer"``, set by the login);
- an analyst turned on the sidebar switch (session key ``"demo_mode"``).

In demo mode ``app.py`` routes to the Demo page only, and every write action (import, queue,
cancel, retry, delete, rename, settings, background tasks) calls :func:`refuse_writes` first,
which stops the script with an error: hiding the other pages is not the only defence.
"""

from __future__ import annotations

import os

import streamlit as st

ENV_MODE = "RECSYS_EXPLORER_MODE"
KEY_DEMO = "demo_mode"
KEY_ROLE = "role"
VIEWER = "viewer"


def forced_by_server() -> bool:
    """True when ``$RECSYS_EXPLORER_MODE`` is ``demo`` (case and spaces ignored)."""
    return os.environ.get(ENV_MODE, "").strip().lower() == "demo"


def is_viewer() -> bool:
    """True when the logged-in account is a viewer (demo mode only)."""
    return st.session_state.get(KEY_ROLE) == VIEWER


def demo_locked() -> bool:
    """Demo mode that the session cannot leave: set by the server or by a viewer login."""
    return forced_by_server() or is_viewer()


def is_demo_mode() -> bool:
    """True in demo mode: server setting, viewer role, or the analyst's sidebar switch."""
    return demo_locked() or bool(st.session_state.get(KEY_DEMO, False))


def sidebar_switch() -> None:
    """The analyst's "Demo mode" switch (sidebar), or a caption when the mode is locked."""
    if demo_locked():
        why = "this server runs in demo mode" if forced_by_server() else "viewer account"
        st.caption(f":material/slideshow: Demo mode, read-only ({why})")
        return
    st.toggle(
        "Demo mode",
        key=KEY_DEMO,
        help="A read-only presentation for stakeholders: only the Demo page, larger type, "
        "nothing can be imported, queued, cancelled, deleted or changed.",
    )


def refuse_writes(action: str) -> None:
    """Stop the script with an error when ``action`` (e.g. "importing data") is attempted in
    demo mode; do nothing otherwise. Call it first thing in every write action."""
    if is_demo_mode():
        st.error(
            f"Demo mode is read-only: {action} is not available. Fix: an analyst turns demo "
            "mode off in the sidebar (a viewer account or a demo server cannot).",
            icon=":material/lock:",
        )
        st.stop()


def demo_pages() -> dict[str, list]:
    """The navigation of demo mode: the Demo page alone."""
    return {"Demo": [st.Page("pages/demo.py", title="Demo", icon=":material/slideshow:",
                             default=True)]}  # fmt: skip


#: Larger type for presenting (fixed CSS, no user data in it).
LARGE_TYPE_CSS = """
<style>
[data-testid="stMain"] p, [data-testid="stMain"] li { font-size: 1.25rem; line-height: 1.55; }
[data-testid="stMain"] h1 { font-size: 2.8rem; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 1.9rem; }
[data-testid="stMetricValue"] { font-size: 2.4rem; }
.card { border: 1px solid #d6dbe4; border-radius: 10px; padding: 1rem 1.4rem;
        background: #F2F5FA; font-size: 1.2rem; }
.card .check { color: #2C7A2C; } .card .fail { color: #B22222; }
</style>
"""


def large_type() -> None:
    """Apply :data:`LARGE_TYPE_CSS` to the page."""
    st.html(LARGE_TYPE_CSS)


__all__ = [
    "ENV_MODE",
    "KEY_DEMO",
    "KEY_ROLE",
    "VIEWER",
    "demo_locked",
    "demo_pages",
    "forced_by_server",
    "is_demo_mode",
    "is_viewer",
    "large_type",
    "refuse_writes",
    "sidebar_switch",
]
