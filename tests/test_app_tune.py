"""AppTest: the executor line in the sidebar and the Tune page."""

from __future__ import annotations

from pathlib import Path

import pytest
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


# ----- the Tune page -------------------------------------------------------------------------
@pytest.fixture()
def tuned_ws(app_workspace):
    """The app workspace with a small dataset (the active one) and a finished 3-trial study."""
    pytest.importorskip("optuna")
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames
    from recsys_core.jobs import api
    from recsys_core.studies import StudySpec, parse_space, run_study

    inter, items, _ = make_frames(
        SyntheticConfig(n_users=80, n_items=50, n_clusters=4, mean_history=10)
    )
    info = import_frames(app_workspace, inter, name="tiny", source="test", items=items)
    space, _ = parse_space("ease", [])

    def inline() -> None:
        for record in api.list_runs(app_workspace, status="queued"):
            api.run_inline(app_workspace, record.id, device="cpu")

    spec = StudySpec(
        name="tiny-ease", dataset=info.id, model="ease", space=space, trials=3, sampler="random"
    )
    run_study(app_workspace, spec, tick=inline, poll=0.01)
    return app_workspace


def _tune_page() -> AppTest:
    at = _app().run()
    return at.switch_page("pages/tune.py").run()


def test_tune_page_shows_a_finished_study_and_keeps_the_best(tuned_ws):
    from recsys_core.jobs import api

    at = _tune_page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="tune.show").value == "tiny-ease"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Trials"] == "3" and labels["Best valid ndcg@10"] != "–"
    assert len(at.get("plotly_chart")) >= 3  # history, parallel coordinates, slices
    paired = at.dataframe[-1].value
    assert "ndcg@10" in set(paired["metric"]) and "t_pvalue" in paired.columns
    at.text_input(key="tune.label").input("ease tuned").run()
    at.button(key="tune.keep").click().run()
    assert any("ease tuned" in s.value for s in at.success)
    assert [r.label for r in api.list_runs(tuned_ws) if r.label == "ease tuned"]


def test_start_study_from_the_builder_queues_a_study_task(tuned_ws):
    from recsys_core.jobs import api

    at = _tune_page()
    at.selectbox(key="tune.model").select("ease").run()
    at.number_input(key="tune.trials").set_value(2).run()
    assert not at.warning  # NDCG@10, the per-epoch curve: the pruner can act
    at.selectbox(key="tune.objective").select("gini@20").run()
    assert at.selectbox(key="tune.dir.gini@20").value == "minimize"  # the metric's own direction
    assert any("Pruning is off with this objective" in w.value for w in at.warning)
    at.button(key="tune.start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    tasks = api.list_tasks(tuned_ws, kind="study")
    assert len(tasks) == 1
    spec = tasks[0].payload["spec"]
    assert spec["model"] == "ease" and spec["trials"] == 2 and "l2" in spec["space"]
    assert (spec["objective"], spec["direction"]) == ("gini@20", "minimize")


def test_tune_page_without_optuna_says_what_to_install(app_workspace, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_optuna(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("No module named 'optuna'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    at = _tune_page()
    assert not at.exception
    assert any("requirements-optional.txt" in e.value for e in at.error)
