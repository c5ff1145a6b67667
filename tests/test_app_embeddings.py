"""AppTest: the Embeddings page on finished runs (real models, real UMAP maps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_embeddings import make_run

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/embeddings.py"


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(PAGE)
    return at.run()


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _traces(at: AppTest, index: int = 0) -> list[dict]:
    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    return spec["data"]


@pytest.fixture()
def maps_app(app_workspace):
    ials = make_run(app_workspace, "ials", {"factors": 16, "iterations": 4})
    knn = make_run(app_workspace, "itemknn")
    return app_workspace, ials, knn


def test_map_with_a_user_highlighted_and_a_comparison(maps_app):
    ws, ials, knn = maps_app
    at = _page()
    assert not at.exception, at.exception
    assert not _errors(at), _errors(at)
    assert at.title[0].value == "Embeddings"
    run = at.selectbox(key="maps.run")
    run.select(ials).run()
    assert not at.exception and not _errors(at), _errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["k-NN preservation@10"]) > 0.1
    assert metrics["Points"] == "80"
    names = {t.get("name") for t in _traces(at)}
    assert {"Genre0", "Genre1"} <= names  # coloured by genre by default

    # clusters of the items' text vectors colour the behaviour map; the text map sits beside it
    at.selectbox(key="maps.colour").select("text cluster").run()
    assert any(str(t.get("name")).startswith("text cluster") for t in _traces(at))
    at.toggle(key="maps.text").set_value(True).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert len(at.get("plotly_chart")) == 2
    assert any("TF-IDF + SVD" in c.value and "offline default" in c.value for c in at.caption)
    at.toggle(key="maps.text").set_value(False).run()
    at.selectbox(key="maps.colour").select("genre").run()

    # a user: history, recommendations and test items get their own markers
    user = at.selectbox(key="maps.user")
    picked = user.options[1].removeprefix("user ")
    user.select(picked).run()
    assert not at.exception and not _errors(at), _errors(at)
    names = {t.get("name") for t in _traces(at)}
    assert {"history", "recommended", "test (held out)"} <= names
    assert any(c.value.startswith(f"User {picked}:") for c in at.caption)

    # colour by popularity bucket, search an item, compare with the ItemKNN run
    at.selectbox(key="maps.colour").select("popularity bucket").run()
    at.text_input(key="maps.search").input("Item 1 (").run()
    assert not at.exception and not _errors(at), _errors(at)
    assert {"head", "tail"} <= {t.get("name") for t in _traces(at)}
    assert "similarity" in at.dataframe[0].value.columns and len(at.dataframe[0].value) == 10
    at.selectbox(key="maps.compare").select(knn).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert len(at.get("plotly_chart")) == 2
    assert any("Procrustes" in c.value for c in at.caption)
    # clusters come from each run's own vectors: the right map's are matched to the left's
    # and the caption says how far they agree
    at.selectbox(key="maps.colour").select("cluster").run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any("keep their cluster" in c.value for c in at.caption)
    left_names = {t.get("name") for t in _traces(at, 0)} - {"selected"}
    right_names = {t.get("name") for t in _traces(at, 1)} - {"selected"}
    assert right_names <= left_names | {f"cluster {i}" for i in range(8, 16)}

    # the users map, second view from the cache
    at.radio(key="maps.what").set_value("users").run()
    assert not at.exception and not _errors(at), _errors(at)
    assert {m.label: m.value for m in at.metric}["Points"] == "120"
    assert "test result" in at.selectbox(key="maps.colour").options
    # the item search and its neighbours table belong to the item map only
    assert not any(w.key == "maps.search" for w in at.text_input)
    assert not any("Nearest neighbours" in m.value for m in at.markdown)
    assert len(at.dataframe) == 0


def test_big_map_goes_to_the_worker(maps_app, monkeypatch):
    from recsys_core import embeddings as emb
    from recsys_core.jobs import api
    from recsys_core.jobs.tasks import TASKS

    ws, ials, knn = maps_app
    monkeypatch.setattr(emb, "INLINE_LIMIT", 10)  # every map counts as big
    at = _page()
    at.selectbox(key="maps.run").select(knn).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any("computes it in the background" in i.value for i in at.info)
    assert any("No worker is running" in w.value for w in at.warning)
    tasks = api.list_tasks(ws, kind="umap")
    assert len(tasks) == 1 and tasks[0].payload["run_id"] == knn
    # what the worker would do, then the page finds the cached map
    TASKS["umap"](ws, tasks[0].payload, lambda fraction, message="": None)
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any("from item-item similarity" in c.value for c in at.caption)
    assert len(api.list_tasks(ws, kind="umap")) == 1  # not submitted twice


def test_page_without_finished_runs(app_workspace):
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames

    inter, items, users = make_frames(SyntheticConfig(n_users=30, n_items=20))
    import_frames(app_workspace, inter, name="synth", source="synthetic", items=items, users=users)
    at = _page()
    assert not at.exception
    assert any("No finished run" in i.value for i in at.info)
