"""AppTest: demo mode (issue 15) routes to the Demo page only, is read-only at every write
action, tells the story from stored runs, and never trains."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HOSTILE_TITLE, route_through_app
from streamlit.testing.v1 import AppTest

import ui
from recsys_core.data.store import list_datasets
from recsys_core.jobs import api

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
DEMO_TITLE = "Recommendations, explained"


@pytest.fixture()
def demo_env(finished_runs, monkeypatch):
    """The finished runs' workspace for AppTest, routed, with demo mode off by default."""
    ws, info, runs = finished_runs
    route_through_app(monkeypatch)
    monkeypatch.setenv("RECSYS_EXPLORER_HOME", str(ws.root))
    monkeypatch.delenv("RECSYS_EXPLORER_MODE", raising=False)
    return ws, info, runs


def _counts(ws) -> tuple[int, int, int]:
    return len(api.list_runs(ws)), len(api.list_tasks(ws)), len(list_datasets(ws))


def _only_the_demo_page(at: AppTest) -> None:
    assert [t.value for t in at.title] == [DEMO_TITLE]
    with pytest.raises(ValueError, match=r"Known pages: \[.*pages/demo\.py'\]"):
        at.switch_page("pages/train.py")


def test_server_demo_mode_tells_the_story_and_never_trains(demo_env, monkeypatch):
    ws, info, _ = demo_env
    monkeypatch.setenv("RECSYS_EXPLORER_MODE", "demo")
    before = _counts(ws)
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    _only_the_demo_page(at)
    assert [h.value for h in at.header] == [
        "1 · The data at a glance", "2 · How the models compare", "3 · Why this item?",
    ]  # fmt: skip
    assert [m.value for m in at.metric] == [f"{info.n_users:,}", f"{info.n_items:,}",
                                            f"{info.n_interactions:,}"]  # fmt: skip
    sentence = at.text[1].value
    assert sentence.startswith("On ndcg@10, itemknn does best:") and "95% CI" in sentence
    card = next(h.proto.body for h in at.get("html") if 'class="card"' in h.proto.body)
    assert "Adds up" in card and "Does not add up" not in card
    assert HOSTILE_TITLE not in card  # a title with markup is shown as text
    # No switch to leave, no executor or worker controls; nothing queued, imported or started.
    assert not at.sidebar.toggle and not at.sidebar.get("popover")
    assert any("Demo mode, read-only" in c.value for c in at.sidebar.caption)
    at.radio(key="demo.segment").set_value("cold").run()
    at.button(key="demo.next").click().run()
    assert not at.exception and not at.error
    # The analyst chooses the runs the demo shows: with one run left, the cards use it alone.
    runs = next(m for m in at.multiselect if m.key.startswith("demo.runs."))
    keep = runs.value[-1]
    runs.set_value([keep]).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="demo.run").options == [at.selectbox(key="demo.run").format_func(keep)]
    assert _counts(ws) == before


def test_viewer_role_and_analyst_switch(demo_env, monkeypatch):
    from argon2 import PasswordHasher, profiles

    from recsys_core import access

    ws = demo_env[0]
    # A viewer signed in on an app that needs a login (on 127.0.0.1 everyone is an analyst).
    monkeypatch.setattr(access, "_HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))
    access.add_account(ws, "vic", "a viewer's password", "viewer")
    try:
        monkeypatch.setenv(access.ENV_REQUIRE_LOGIN, "1")
        at = AppTest.from_file(APP, default_timeout=300)
        at.session_state["username"] = "vic"  # what the login form sets
        at.run()
        assert at.session_state["role"] == "viewer"
        _only_the_demo_page(at)
        assert not at.sidebar.toggle  # a viewer cannot leave demo mode
        monkeypatch.delenv(access.ENV_REQUIRE_LOGIN)
    finally:
        access.remove_account(ws, "vic")

    at = AppTest.from_file(APP, default_timeout=300).run()
    assert [t.value for t in at.title] == ["Recsys Explorer"]  # an analyst starts on Home
    at.sidebar.toggle(key="demo_mode").set_value(True).run()
    _only_the_demo_page(at)
    at.sidebar.toggle(key="demo_mode").set_value(False).run()
    at.switch_page("pages/train.py").run()
    assert [t.value for t in at.title] == ["Train"]


@pytest.mark.parametrize(
    ("page", "button", "action"),
    [("home", "load_sample", "importing the sample"), ("train", "train.submit", "queueing runs")],
)
def test_write_actions_refused_at_the_action(demo_env, monkeypatch, page, button, action):
    """Even a page reached without the router (not only hidden pages) refuses to write."""
    ws, info, _ = demo_env
    monkeypatch.setenv("RECSYS_EXPLORER_MODE", "demo")
    before = _counts(ws)
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.session_state[ui.KEY_DATASET] = info.id
    at.run()
    at.button(key=button).click().run()
    assert any(f"Demo mode is read-only: {action} is not available" in e.value for e in at.error)
    assert not at.success
    assert _counts(ws) == before
