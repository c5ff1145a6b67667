"""AppTest: the Compare page (leaderboard with CIs per split, trade-off, segments, paired test)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.jobs import api
from recsys_core.jobs.spec import RunSpec

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _compare_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page("pages/compare.py").run()


def test_two_finished_runs_ranked_and_paired(app_workspace):
    from recsys_core.data.store import import_frames

    interactions, items, _ = make_frames(
        SyntheticConfig(n_users=80, n_items=60, n_clusters=4, mean_history=10)
    )
    info = import_frames(app_workspace, interactions, name="synthetic", source="t", items=items)
    split = {"protocol": "random", "test_ratio": 0.2, "seed": 0}
    for model in ("most_popular", "itemknn"):
        api.submit(app_workspace, RunSpec(dataset=info.id, model=model, split=split))
    # A run on another split: listed apart, never ranked with the two above.
    other = dict(split, seed=1)
    api.submit(app_workspace, RunSpec(dataset=info.id, model="random", split=other))
    for record in api.list_runs(app_workspace):  # in-process: no child start-up per run
        api.run_inline(app_workspace, record.id)
    assert {r.status for r in api.list_runs(app_workspace)} == {"done"}

    at = _compare_page()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("never ranked together" in c.value for c in at.caption)
    assert "· 2 runs" in at.selectbox(key="compare.split").options[0]  # biggest split first
    board = at.dataframe[0].value
    assert sorted(board["model"]) == ["itemknn", "most_popular"]
    assert {"ndcg@10", "recall@20", "tail_coverage@10", "fit_s", "device"} <= set(board.columns)
    # Personalised neighbours beat the popularity baseline on planted clusters.
    ranked = board.sort_values("ndcg@10", ascending=False)["model"].tolist()
    assert ranked[0] == "itemknn"
    at.toggle(key="compare.ci").set_value(True).run()
    board = at.dataframe[0].value
    assert (board["ndcg@10 lo"] <= board["ndcg@10"]).all()
    assert (board["ndcg@10"] <= board["ndcg@10 hi"]).all()
    # Charts: leaderboard bars, trade-off, two segment views, per-user scatter.
    assert len(at.get("plotly_chart")) == 5
    tests = at.dataframe[1].value
    assert "ndcg@10" in set(tests["metric"])
    assert {"t_pvalue", "wilcoxon_pvalue", "cohens_d"} <= set(tests.columns)
    assert tests["t_pvalue"].between(0, 1).all()
    # Significance is marked after a Holm correction for the number of metrics, and said so.
    assert {"t_pvalue_holm", "wilcoxon_pvalue_holm", "significant"} <= set(tests.columns)
    assert (tests["t_pvalue_holm"] >= tests["t_pvalue"]).all()
    assert set(tests["significant"]) <= {"yes", "no"}
    assert any(f"Holm-corrected for the {len(tests)} metrics" in c.value for c in at.caption)
    # Filtering to one model leaves one run and explains why no paired test is shown.
    at.multiselect[0].set_value(["itemknn"]).run()
    assert len(at.dataframe[0].value) == 1
    assert any("at least two runs" in i.value for i in at.info)
    # The other split holds the random run alone.
    at.selectbox(key="compare.split").select_index(1).run()
    assert list(at.dataframe[0].value["model"]) == ["random"]


def test_active_run_opens_on_its_split_as_run_a(app_workspace):
    """A run opened from another page (e.g. a Balance sweep point) is preselected here: its
    split, although not the biggest, and the run itself as run A of the paired test."""
    from recsys_core.data.store import import_frames

    interactions, _, _ = make_frames(SyntheticConfig(n_users=60, n_items=40, n_clusters=3))
    info = import_frames(app_workspace, interactions, name="synthetic", source="t")
    big = {"protocol": "random", "test_ratio": 0.2, "seed": 0}
    small = dict(big, seed=3)
    for model in ("most_popular", "random", "itemknn"):
        api.submit(app_workspace, RunSpec(dataset=info.id, model=model, split=big))
    api.submit(app_workspace, RunSpec(dataset=info.id, model="most_popular", split=small))
    active = api.submit(app_workspace, RunSpec(dataset=info.id, model="random", split=small))
    for record in api.list_runs(app_workspace):
        api.run_inline(app_workspace, record.id)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.session_state["active_run"] = active
    at = at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert '"seed": 3' in at.selectbox(key="compare.split").value
    run_a = [s for s in at.selectbox if s.label == "Run A"][0]
    assert run_a.value.endswith(active[-6:])
