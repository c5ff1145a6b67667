"""AppTest: the Explain page on a finished run (real model, real explanations)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_explain import make_finished_run

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/explain.py"
#: Every item's title: markup that must render literally (issue 15).
HOSTILE = "**bold** [link](http://x) <b>{}</b>"


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(PAGE)
    return at.run()


@pytest.fixture()
def explain_app(app_workspace):
    run_id, queued = make_finished_run(app_workspace, title=HOSTILE)
    return app_workspace, run_id


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_page_explains_a_recommendation(explain_app):
    ws, run_id = explain_app
    at = _page()
    assert not at.exception, at.exception
    assert not _errors(at)
    assert at.title[0].value == "Explain"
    assert at.selectbox(key="explain.run").value == run_id
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Efficiency"] == "holds"
    assert metrics["Rank"] == "1"
    assert float(metrics["Faithfulness"]) >= 0.0  # ItemKNN is additive: deletion is optimal
    assert at.success[0].value.startswith("Recommended because")
    # The titles in the sentence are escaped: literal text, no bold, link or HTML.
    assert r"you watched \*\*bold\*\* \[link\](http:" in at.success[0].value
    assert r"\<b\>" in at.success[0].value and "<b>" not in at.success[0].value
    assert len(at.dataframe) >= 3  # history, top-k, held-out items

    # explain the rank instead of the score
    at.radio(key="explain.target").set_value("rank").run()
    assert not at.exception and not _errors(at)
    assert at.success[0].value.startswith("In your top 10")

    # what if: remove one history item and re-rank (the before/after table appears)
    remove = at.multiselect(key="explain.remove")
    remove.select(remove.options[0]).run()
    assert not at.exception and not _errors(at)
    assert any({"before", "after", "status"} <= set(df.value.columns) for df in at.dataframe)
    remove.unselect(remove.options[0]).run()

    # another explained item keeps the checks
    first = at.selectbox(key="explain.item").value
    at.selectbox(key="explain.item").select_index(1).run()
    assert at.selectbox(key="explain.item").value != first
    assert not at.exception and not _errors(at)
    assert {m.label: m.value for m in at.metric}["Efficiency"] == "holds"


def _sentence(at: AppTest) -> str:
    """The explanation's plain-language sentence (the what-if summary is a success box too)."""
    return next(s.value for s in at.success if s.value.startswith(("Recommended", "In your")))


def _diff_table(at: AppTest):
    return next(df.value for df in at.dataframe if {"before", "after"} <= set(df.value.columns))


def test_adding_items_by_title_changes_the_top_k_and_the_explanation(explain_app):
    at = _page()
    explained = _sentence(at)
    top = list(at.selectbox(key="explain.item").options)
    # Search by title, then pick three matches that are not recommended already.
    at.text_input(key="explain.add_query").input("bold").run()  # every title holds it
    add = at.multiselect(key="explain.add")
    assert 0 < len(add.options) <= 50  # the page offers matches, never the whole catalogue
    labels = [o for o in add.options if o.split(" · ")[0] not in top]
    for label in labels[:3]:
        at.multiselect(key="explain.add").select(label).run()
    assert not at.exception and not _errors(at)
    assert len(at.multiselect(key="explain.add").value) == 3  # the picks survive the reruns
    table = _diff_table(at)
    assert set(table["status"]) - {"unchanged"}, table  # the top-k moved
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Entered the top 10"]) == (table["status"] == "entered").sum()
    assert any("Explaining the edited history: 3 item(s) added" in c.value for c in at.caption)
    assert {m.label: m.value for m in at.metric}["Efficiency"] == "holds"
    assert _sentence(at) != explained or at.selectbox(key="explain.item").options != top
    # Another user: the edit is forgotten.
    other = next(o for o in ("u1", "u2") if f"User {o}" != at.subheader[0].value)
    at.text_input(key="explain.search").input(other).run()
    assert not at.multiselect(key="explain.add").value
    assert not at.exception and not _errors(at)


def test_page_reports_an_unknown_user(explain_app):
    at = _page()
    at.text_input(key="explain.search").input("nobody").run()
    assert not at.exception
    assert any("unknown user id 'nobody'" in e for e in _errors(at))


def test_page_without_finished_runs(app_workspace):
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames

    inter, items, users = make_frames(SyntheticConfig(n_users=30, n_items=20))
    import_frames(app_workspace, inter, name="synth", source="synthetic", items=items, users=users)
    at = _page()
    assert not at.exception
    assert any("No finished run" in i.value for i in at.info)


def test_a_reload_keeps_run_user_and_item_from_the_url(explain_app):
    from recsys_core.jobs.artifacts import RunArtifacts

    ws, run_id = explain_app
    at = _page()
    first_user = at.subheader[0].value
    split = RunArtifacts(ws, run_id).split()
    data = split.fold_in if split.fold_in is not None else split.train
    other = next(
        str(data.user_ids[u]) for u in split.test_users if f"User {data.user_ids[u]}" != first_user
    )
    at.text_input(key="explain.search").input(other).run()
    at.selectbox(key="explain.item").select_index(2).run()
    assert not at.exception and not _errors(at)
    params = dict(at.query_params)
    assert params["run"] == run_id and params["user"] == other and params.get("item")
    item = at.selectbox(key="explain.item").value
    # A reload is a new session with only the URL: it lands on the same run, user and item.
    again = AppTest.from_file(APP, default_timeout=120)
    again.query_params.update(params)
    again.run()
    again.switch_page(PAGE).run()
    assert not again.exception and not _errors(again)
    assert again.selectbox(key="explain.run").value == run_id
    assert again.selectbox(key="explain.item").value == item
    assert again.subheader[0].value == f"User {params['user']}"
