"""AppTest: the Train page (queue runs from generated forms, worker finishes them, cancel,
retry, a failure explained)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.jobs import api

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture()
def synthetic_ws(app_workspace):
    """The app workspace holding a small synthetic dataset with planted taste clusters."""
    from recsys_core.data.store import import_frames

    interactions, items, users = make_frames(
        SyntheticConfig(n_users=80, n_items=60, n_clusters=4, mean_history=10)
    )
    import_frames(app_workspace, interactions, name="synthetic", source="test", items=items)
    return app_workspace


def _train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page("pages/train.py").run()


def test_forms_come_from_the_config_dataclasses(synthetic_ws):
    from recsys_core.config import describe
    from recsys_core.models import MODELS

    at = _train_page()
    assert not at.exception
    assert at.multiselect(key="train.models").value == ["ease", "itemknn"]
    for key in ("ease", "itemknn"):
        for spec in describe(MODELS[key].Config):
            widget = at.get("number_input") + at.get("selectbox") + at.get("checkbox")
            assert any(w.key == f"train.cfg.{key}.{spec.name}" for w in widget), spec.name
    # One-sentence explanation of the chosen split protocol.
    assert any("hidden for testing" in c.value for c in at.caption)
    # Balance options a model does not honour are shown but disabled.
    ease_balance = [w for w in at.get("number_input") if w.key.startswith("train.bal.ease.")]
    assert ease_balance and any(w.disabled for w in ease_balance)


def test_submit_two_models_and_see_them_done(synthetic_ws):
    at = _train_page()
    at.button(key="train.submit").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("Queued 2 run(s)" in s.value for s in at.success)
    records = api.list_runs(synthetic_ws)
    assert sorted(r.spec.model for r in records) == ["ease", "itemknn"]
    assert {r.status for r in records} == {"queued"}
    for record in records:  # in-process, as a worker's child would run them
        api.run_inline(synthetic_ws, record.id)
    at.run()  # a reload: everything on the page comes from the catalog
    assert not at.exception
    statuses = list(at.dataframe[-1].value["status"])
    assert len(statuses) == 2 and all(s.endswith("done") for s in statuses), statuses
    assert any("Fit" in c.value for c in at.caption)


def test_cancel_retry_and_failure_explained(synthetic_ws):
    at = _train_page()
    at.multiselect(key="train.models").set_value(["most_popular"])
    at.selectbox(key="train.split.protocol").set_value("predefined").run()
    at.button(key="train.submit").click().run()
    (run_id,) = [r.id for r in api.list_runs(synthetic_ws)]
    at.run()
    at.button(key=f"train.cancel.{run_id}").click().run()
    assert api.get_run(synthetic_ws, run_id).status == "cancelled"
    at.run()  # the panel's next poll lists the run as finished, with a retry button
    at.button(key=f"train.retry.{run_id}").click().run()
    retried = [r for r in api.list_runs(synthetic_ws) if r.id != run_id]
    assert len(retried) == 1 and retried[0].status == "queued"
    # The dataset has no predefined split labels, so the retried run fails with a reason.
    api.run_inline(synthetic_ws, retried[0].id)
    assert api.get_run(synthetic_ws, retried[0].id).status == "failed"
    at.run()
    at.selectbox(key="train.details").set_value(retried[0].id).run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("failed:")
    assert "Traceback" not in at.error[0].value


def test_invalid_hyperparameter_is_refused_with_its_reason(synthetic_ws):
    at = _train_page()
    at.multiselect(key="train.models").set_value(["ease", "neumf"]).run()
    at.text_input(key="train.cfg.neumf.mlp_layers").input("128, lots").run()
    at.button(key="train.submit").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "mlp_layers" in at.error[0].value
    assert api.list_runs(synthetic_ws) == []  # all or nothing: EASE was not queued either


def test_running_run_shows_progress_eta_and_live_curves(synthetic_ws):
    from recsys_core.jobs import store
    from recsys_core.jobs.spec import RunSpec

    run_id = api.submit(synthetic_ws, RunSpec(dataset="synthetic", model="bpr"))
    assert store.claim_specific(synthetic_ws, run_id, "test-worker", "cpu")
    events = [
        {
            "ts": 1.0 + e,
            "step": e,
            "metrics": {"epoch": e, "loss": 1.0 / e, "valid_ndcg@10": 0.1 * e},
        }
        for e in (1, 2, 3)
    ]
    store.add_events(synthetic_ws, run_id, events, progress=0.3, eta=20.0)
    at = _train_page()
    assert not at.exception
    (bar,) = at.get("progress")
    assert bar.proto.value == 30 and "ETA 20 s" in bar.proto.text
    (chart,) = at.get("plotly_chart")
    traces = json.loads(chart.proto.spec)["data"]
    assert {t["name"] for t in traces} == {"loss", "valid_ndcg@10"}
    at.button(key=f"train.cancel.{run_id}").click().run()
    assert api.get_run(synthetic_ws, run_id).status == "cancelling"  # the worker finishes it


# ----- issue 19: split fields, cancel, metric column, curves, polling, the URL ---------------
def _split_ws(workspace):
    from recsys_core.data.store import import_frames

    interactions, items, _ = make_frames(
        SyntheticConfig(n_users=80, n_items=60, n_clusters=4, mean_history=10)
    )
    parts = ["train"] * 8 + ["valid", "test"]
    interactions["split"] = [parts[i % len(parts)] for i in range(len(interactions))]
    return import_frames(workspace, interactions, name="with-split", source="test", items=items)


def test_split_options_follow_the_protocol_and_a_split_column(app_workspace):
    _split_ws(app_workspace)
    at = _train_page()
    assert not at.exception
    # The dataset has a split column, so "predefined" is preselected; it reads only split_file.
    assert at.selectbox(key="train.split.protocol").value == "predefined"
    keys = {w.key for w in at.get("number_input") + at.get("text_input") if w.key}
    split_keys = {k for k in keys if k.startswith("train.split.")}
    assert split_keys == {"train.split.split_file"}, split_keys
    at.selectbox(key="train.split.protocol").set_value("leave_last").run()
    keys = {w.key for w in at.get("number_input") + at.get("text_input") if w.key}
    assert {k for k in keys if k.startswith("train.split.")} == {
        "train.split.k",
        "train.split.valid_k",
    }


def test_finished_table_has_the_metric_cancel_is_not_an_error_and_ease_has_no_empty_plot(
    synthetic_ws,
):
    done = api.submit(synthetic_ws, {"dataset": "synthetic", "model": "ease"})
    api.run_inline(synthetic_ws, done)
    cancelled = api.submit(synthetic_ws, {"dataset": "synthetic", "model": "most_popular"})
    api.cancel(synthetic_ws, cancelled)
    at = _train_page()
    assert not at.exception
    table = at.dataframe[-1].value
    row = table.set_index("id").loc[done]
    assert 0 < row["ndcg@10"] <= 1
    at.selectbox(key="train.details").set_value(done).run()
    assert not at.get("plotly_chart")  # EASE fits in one step: a note, not two empty plots
    assert any("no training curve" in c.value for c in at.caption)
    at.selectbox(key="train.details").set_value(cancelled).run()
    assert not at.error
    assert any(i.value.startswith("Cancelled at your request") for i in at.info)


def test_only_active_runs_poll_and_the_url_keeps_dataset_and_run(app_workspace, monkeypatch):
    import streamlit as st

    from recsys_core.data.store import import_frames
    from recsys_core.jobs import store

    intervals: list = []
    real = st.fragment

    def recording(*args, **kwargs):
        intervals.append(kwargs.get("run_every"))
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "fragment", recording)
    interactions, items, _ = make_frames(SyntheticConfig(n_users=40, n_items=30, n_clusters=3))
    first = import_frames(app_workspace, interactions, name="uploaded", source="t", items=items)
    import_frames(app_workspace, interactions.iloc[:-5], name="sample", source="t", items=items)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["dataset"] = first.id  # a reload or a shared link on the older dataset
    at.run()
    intervals.clear()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert at.sidebar.selectbox(key="active_dataset").value == first.id
    assert at.query_params.get("dataset") == first.id
    assert intervals == [None, None]  # nothing active: neither the sidebar nor the panel polls
    run_id = api.submit(app_workspace, {"dataset": first.id, "model": "bpr"})
    assert store.claim_specific(app_workspace, run_id, "test-worker", "cpu")
    intervals.clear()
    at.run()
    assert intervals == [2.0, 2.0]  # sidebar and panel refresh while a run is active
    assert any(run_id in m.value for m in at.markdown)  # the running run stays in the panel


def test_running_card_shows_the_early_stop_range_and_no_blank_curves(synthetic_ws):
    from recsys_core.jobs import store

    sasrec = api.submit(synthetic_ws, {"dataset": "synthetic", "model": "bpr"})
    ease = api.submit(synthetic_ws, {"dataset": "synthetic", "model": "ease"})
    for run_id in (sasrec, ease):
        assert store.claim_specific(synthetic_ws, run_id, "test-worker", "cpu")
    metrics = {"epoch": 18.0, "epochs_total": 200.0, "loss": 0.5, "valid_ndcg@10": 0.2}
    metrics |= {"eta_low": 20.0, "eta_high": 1820.0, "stop_epoch": 20.0, "stop_epoch_min": 20.0}
    store.add_events(
        synthetic_ws, sasrec, [{"ts": 1.0, "step": 1, "metrics": metrics}], progress=0.09, eta=20.0
    )
    store.add_events(  # a closed-form fit reports progress, never a loss
        synthetic_ws, ease, [{"ts": 1.0, "step": 1, "metrics": {"elapsed_s": 1.0}}], progress=0.5,
        eta=None,
    )  # fmt: skip
    at = _train_page()
    assert not at.exception
    texts = [bar.proto.text for bar in at.get("progress")]
    wanted = ("up to 30 min", "early stop expected near epoch 20")
    assert any(all(w in t for w in wanted) for t in texts), texts
    assert len(at.get("plotly_chart")) == 1  # the BPR curves only; no blank box for EASE


def test_texts_speak_to_the_analyst_not_the_developer(synthetic_ws):
    from recsys_core.models import MODELS

    at = _train_page()
    at.multiselect(key="train.models").set_value(sorted(MODELS)).run()
    assert not at.exception
    shown = [c.value for c in at.caption] + [m.value for m in at.markdown]
    for phrase in ("docstring", "shared trainer"):
        assert not [t for t in shown if phrase in t], phrase
    # Messages in the page sources: no package names or code pointers for the analyst to decode.
    root = Path(APP).parent
    for source in [root / "app.py", root / "ui.py", *sorted((root / "pages").glob("*.py"))]:
        text = source.read_text()
        assert "needs the kaleido package" not in text and "(see module docstring)" not in text
