"""AppTest: the login gate of an exposed app (sign-in only, viewers' pages, logout, no account)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from recsys_core import access

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PASSWORD = "correct horse battery"


@pytest.fixture()
def exposed(app_workspace, monkeypatch):
    """An app that requires a login (as when bound off 127.0.0.1), with cheap Argon2 hashes."""
    from argon2 import PasswordHasher, profiles

    monkeypatch.setattr(access, "_HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))
    monkeypatch.setenv(access.ENV_REQUIRE_LOGIN, "1")
    return app_workspace


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="access.name").input(name)
    at.text_input(key="access.password").input(password)
    return at.button[0].click().run()


def test_no_account_shows_only_how_to_add_one(exposed):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert len(at.error) == 1 and "users add NAME --role analyst" in at.error[0].value
    assert not at.sidebar.selectbox and not at.text_input and not at.button


def test_anonymous_sees_a_login_form_only_then_roles_decide_the_pages(exposed):
    access.add_account(exposed, "ana", PASSWORD, "analyst")
    access.add_account(exposed, "vic", PASSWORD, "viewer")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert not at.sidebar.selectbox and not at.sidebar.caption  # nothing of the workspace
    _sign_in(at, "vic", "wrong password")
    assert "wrong user name or password" in at.error[0].value
    assert at.session_state["access.name"] == "vic"
    assert "role" not in at.session_state

    _sign_in(at, "vic", PASSWORD)
    assert not at.exception
    assert at.session_state["role"] == "viewer" and at.session_state["username"] == "vic"
    assert any("Signed in as **vic** (viewer)" in c.value for c in at.sidebar.caption)
    assert not any("Workspace" in c.value for c in at.sidebar.caption)
    # The viewer's navigation holds the Demo page alone (demo mode): Data is not reachable.
    with pytest.raises(ValueError, match=r"Known pages: \[[^,]*demo\.py'\]"):
        at.switch_page("pages/data.py")

    at.button(key="access.logout").click().run()
    assert "role" not in at.session_state and "username" not in at.session_state
    assert [t.label for t in at.text_input] == ["User name", "Password"]

    _sign_in(at, "ana", PASSWORD)
    assert at.session_state["role"] == "analyst"
    at.switch_page("pages/data.py").run()
    assert not at.exception
    assert at.title[0].value == "Data"
    # A removed account is signed out at its next rerun.
    access.remove_account(exposed, "ana")
    at.run()
    assert [t.label for t in at.text_input] == ["User name", "Password"]


def test_local_app_needs_no_login(app_workspace, monkeypatch):
    monkeypatch.delenv(access.ENV_REQUIRE_LOGIN, raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert at.session_state["role"] == "analyst"
    assert at.title[0].value.startswith("Recsys Explorer") and not at.text_input
