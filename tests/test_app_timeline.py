"""AppTest: the Timeline page (start a rolling evaluation, then read its curves)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _timeline_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page("pages/timeline.py").run()


def test_start_rolling_then_show_timeline(app_workspace):
    from recsys_core.data import store
    from recsys_core.data.synthetic import SyntheticConfig, make_frames
    from recsys_core.jobs import api
    from recsys_core.jobs.tasks import TASKS

    frame, _, _ = make_frames(SyntheticConfig(n_users=60, n_items=40, n_clusters=4))
    store.import_frames(app_workspace, frame, name="shop", source="test")
    at = _timeline_page()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("No rolling evaluation" in i.value for i in at.info)
    at.multiselect(key="tl.models").set_value(["most_popular", "itemknn"])
    at.slider(key="tl.windows").set_value(3)
    at.button(key="tl.start").click().run()
    assert not at.error, [e.value for e in at.error]
    tasks = api.list_tasks(app_workspace)
    assert [t.kind for t in tasks] == ["rolling"]
    assert tasks[0].payload["spec"]["models"] == ["most_popular", "itemknn"]
    # the worker's part, done here: run the task as the worker would
    TASKS["rolling"](app_workspace, tasks[0].payload, lambda f, m="": None)
    at = _timeline_page()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(m.label.startswith("Best mean ndcg@10") for m in at.metric)
    charts = at.get("plotly_chart")
    assert charts, "the timeline figure is drawn"
    summary = at.dataframe[0].value
    assert set(summary["strategy"]) == {"frozen", "update", "retrain"}
    assert set(summary["model"]) == {"most_popular", "itemknn"}
