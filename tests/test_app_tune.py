"""AppTest: the executor line in the sidebar and the Tune page."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120)


def test_sidebar_shows_the_workspace_executor(app_workspace, monkeypatch):
    from recsys_core.jobs.store import set_setting

    monkeypatch.delenv("RECSYS_EXPLORER_EXECUTOR", raising=False)
    at = _app().run()
    assert not at.exception
    assert any("Executor: **local** (default)" in c.value for c in at.sidebar.caption)
    set_setting(app_workspace, "executor", "ray")
    at.run()
    assert any("Executor: **ray** (workspace)" in c.value for c in at.sidebar.caption)
    monkeypatch.setenv("RECSYS_EXPLORER_EXECUTOR", "local")
    at.run()
    assert any("Executor: **local** (environment)" in c.value for c in at.sidebar.caption)
