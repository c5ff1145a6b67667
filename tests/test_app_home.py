"""AppTest: the router and the Home page (sidebar, datasets table, the one-click sample)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120)


def test_home_on_an_empty_workspace(app_workspace):
    at = _app().run()
    assert not at.exception
    assert at.title[0].value.startswith("Recsys Explorer")
    assert any("No dataset yet" in i.value for i in at.info)
    assert any(str(app_workspace.root) in c.value for c in at.sidebar.caption)
    assert any("No worker" in c.value for c in at.sidebar.caption)  # autostart is off in tests
    assert not at.error


def test_load_sample_makes_it_the_active_dataset(app_workspace):
    at = _app().run()
    at.button(key="load_sample").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("movielens-small" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert list(table["name"]) == ["movielens-small"]
    assert table["users"].iloc[0] > 0
    picker = at.sidebar.selectbox(key="active_dataset")
    assert picker.value == table["id"].iloc[0]
    # A second click is idempotent: still one dataset.
    at.button(key="load_sample").click().run()
    assert len(at.dataframe[0].value) == 1


def test_recent_runs_name_their_dataset_and_metric(app_workspace):
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames
    from recsys_core.jobs import api

    interactions, items, _ = make_frames(SyntheticConfig(n_users=40, n_items=30, n_clusters=3))
    info = import_frames(app_workspace, interactions, name="toy", source="t", items=items)
    run_id = api.submit(app_workspace, {"dataset": info.id, "model": "ease"})
    api.run_inline(app_workspace, run_id)
    at = _app().run()
    assert not at.exception
    runs = at.dataframe[-1].value
    assert list(runs["dataset"]) == ["toy"]
    assert 0 < runs["ndcg@10"].iloc[0] <= 1
