"""AppTest: the Balance page (imbalance previews, sweep builder, sweep results, open a point)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from recsys_core import sweeps
from recsys_core.jobs import api

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/balance.py"


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page(PAGE).run()


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


@pytest.fixture()
def balance_app(app_workspace):
    """A skewed synthetic dataset with a finished two-point ItemKNN pop_norm sweep."""
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames

    interactions, items, _ = make_frames(
        SyntheticConfig(n_users=80, n_items=60, n_clusters=4, mean_history=10, zipf=1.5)
    )
    info = import_frames(app_workspace, interactions, name="skewed", source="t", items=items)
    split = {"protocol": "random", "test_ratio": 0.2, "seed": 0}
    group = sweeps.submit_sweep(
        app_workspace, info.id, "itemknn", {"pop_norm": [0.0, 1.0]}, split=split
    )
    for record in api.list_runs(app_workspace, group=group):  # in-process, no worker needed
        api.run_inline(app_workspace, record.id)
    return app_workspace, info, group


def test_balance_page_before_training_builder_and_results(balance_app):
    ws, info, group = balance_app
    at = _page()
    assert not at.exception, at.exception
    assert not _errors(at), _errors(at)
    assert at.title[0].value == "Balance"

    # before training: the imbalance and the chosen option's effect on the training data
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Interactions on head items"].endswith("%")
    assert int(metrics["Interactions on head items"].rstrip("%")) > 20  # the planted skew
    at.selectbox(key="balance.pre.resample").set_value("upsample_tail").run()
    assert not at.exception and not _errors(at)
    charts = {c.proto.id for c in at.get("plotly_chart")}
    assert len(charts) >= 5  # 3 previews + trade-off + segments (+ recommendation popularity)

    # sweep results: the finished sweep is listed with both points and the baseline marked
    assert at.selectbox(key="balance.results.group").value == group
    table = at.dataframe[0].value
    assert table["status"].tolist() == ["done", "done"]
    assert table["baseline"].tolist() == [True, False]
    at.selectbox(key="balance.x").set_value("avg_popularity@10").run()
    assert not at.exception and not _errors(at)

    # sweep builder: only honoured options are offered, the rest explained
    at.selectbox(key="balance.model").set_value("ease").run()
    options = at.multiselect(key="balance.options.ease")
    assert options.options == ["Popularity normalisation (pop_norm)"]
    assert options.value == ["pop_norm"]
    assert any("ease does not use neg_alpha" in m.value for m in at.markdown)
    at.selectbox(key="balance.model").set_value("bpr").run()
    assert "Popularity exponent α (neg_alpha)" in at.multiselect(key="balance.options.bpr").options

    # queue a sweep from the builder (ItemKNN, two pop_norm values)
    at.selectbox(key="balance.model").set_value("itemknn").run()
    at.text_input(key="balance.grid.itemknn.pop_norm").set_value("0.5,1").run()
    # Before queueing: how many runs (two points and the baseline) and roughly how long.
    (estimate,) = [c.value for c in at.caption if "runs** (the baseline included)" in c.value]
    assert estimate.startswith("**3 runs**") and "about" in estimate
    assert at.button(key="balance.submit").label == "Queue sweep (3 runs)"
    assert at.slider(key="balance.pre.alpha").label == "Popularity exponent α (neg_alpha)"
    at.button(key="balance.submit").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    new_group = at.session_state["balance.group"]
    labels = sorted(r.label for r in api.list_runs(ws, group=new_group))
    assert labels == ["baseline", "pop_norm=0.5", "pop_norm=1.0"]

    # a bad grid value is shown as an error naming the option, nothing queued
    before = len(api.list_runs(ws))
    at.text_input(key="balance.grid.itemknn.pop_norm").set_value("0,7").run()
    at.button(key="balance.submit").click().run()
    assert any("pop_norm" in e for e in _errors(at))
    assert len(api.list_runs(ws)) == before


def test_open_a_sweep_point_in_explain(balance_app):
    ws, info, group = balance_app
    at = _page()
    points = sweeps.collect_sweep(ws, group)
    target = points["run_id"].iloc[1]
    at.selectbox(key="balance.open.run").set_value(target).run()
    at.button(key="balance.open.Explain").click().run()
    assert not at.exception, at.exception
    assert at.session_state["active_run"] == target
    assert at.session_state["explain.run"] == target
    assert at.title[0].value == "Explain"
