"""Rolling evaluation: no test interaction reaches training; strategies differ on planted drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core import rolling
from recsys_core.data.interactions import Interactions
from recsys_core.errors import ConfigError

DAY = 86_400


@pytest.fixture(scope="module")
def drifting() -> Interactions:
    """Catalogue drift: before day 50 users draw from items 0-39, after it from new items
    40-79 (same four taste clusters, item ``j`` in cluster ``j % 4``)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(240):
        cluster = u % 4
        for _ in range(16):
            t = int(rng.integers(0, 100 * DAY))
            base = 0 if t < 50 * DAY else 40
            item = base + cluster + 4 * int(rng.integers(0, 10))
            rows.append((f"u{u}", f"i{item:02d}", 1.0, t))
    frame = pd.DataFrame(rows, columns=["user", "item", "value", "timestamp"])
    frame = frame.drop_duplicates(["user", "item"])
    return Interactions.from_frame(frame)


def test_cut_points_by_time_and_count():
    ts = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 99])
    by_time = rolling.cut_points(ts, 2, "time", 0.5)
    assert by_time.tolist() == [50, 75, 100]
    by_count = rolling.cut_points(ts, 2, "count", 0.5)
    assert by_count.tolist() == [5, 7, 100]
    with pytest.raises(Exception, match="fewer windows"):
        rolling.cut_points(np.zeros(10, dtype=np.int64), 3, "time", 0.5)


def test_windows_exclude_seen_items_and_cold_users(drifting):
    spec = rolling.RollingSpec(models=("ease",), windows=4, initial=0.4)
    for window in rolling.make_windows(drifting, spec):
        assert window.train.timestamps.max() < window.start <= window.test.timestamps.min()
        assert window.test.timestamps.max() < window.end
        seen = window.train.binary[window.test.users, window.test.items]
        assert np.asarray(seen).ravel().sum() == 0
        assert (window.train.user_activity[window.test.users] > 0).all()
    assert 0 < rolling.make_windows(drifting, spec)[1].cold_item_share  # new items arrive


def test_no_test_interaction_reaches_training_and_strategies_differ(drifting, monkeypatch):
    import recsys_core.evaluate as evaluate_module
    import recsys_core.updates as updates_module
    from recsys_core.models.base import Recommender

    real_fit, real_update = Recommender.fit, updates_module.update_model
    real_evaluate = evaluate_module.evaluate
    checked = []

    def fit(self, train, **kwargs):
        out = real_fit(self, train, **kwargs)
        out.seen_until_ = int(train.timestamps.max())
        return out

    def update(model, train, *args, **kwargs):
        out = real_update(model, train, *args, **kwargs)
        out.seen_until_ = int(train.timestamps.max())
        return out

    def evaluate(model, split, **kwargs):
        first_test = int(split.test.timestamps.min())
        assert model.seen_until_ < first_test, "a test interaction was trained on"
        assert int(split.fold_in.timestamps.max()) < first_test, "a test interaction was scored"
        checked.append(first_test)
        return real_evaluate(model, split, **kwargs)

    monkeypatch.setattr(Recommender, "fit", fit)
    monkeypatch.setattr(updates_module, "update_model", update)
    monkeypatch.setattr(evaluate_module, "evaluate", evaluate)
    spec = rolling.RollingSpec(
        models=("ease", "most_popular"),
        strategies=("frozen", "update", "retrain", "sliding"),
        windows=4,
        initial=0.4,
        window_size=1,
        configs=("ease.l2=10",),
        n_resamples=50,
    )
    seen = []
    results = rolling.run_rolling(drifting, spec, lambda f, m="": seen.append(f))
    assert len(checked) == 2 * 4 * 4 and seen[-1] == 1.0
    ease = results[results["model"] == "ease"].pivot_table(
        index="window", columns="strategy", values="ndcg@10"
    )
    late = ease.loc[[3, 4]].mean()
    # frozen never saw the new items; retraining (and EASE's update, a refit) did
    assert late["retrain"] > late["frozen"] + 0.1
    assert late["update"] == pytest.approx(late["retrain"], abs=1e-6)
    assert late["sliding"] > late["frozen"] + 0.1
    assert {"ndcg@10_lo", "ndcg@10_hi", "cold_item_share", "train_seconds"} <= set(results)
    assert (
        results.loc[results["strategy"] == "frozen", "train_seconds"][results["window"] > 1] == 0
    ).all()


def test_ranking_flips():
    rows = [
        {"model": m, "strategy": "retrain", "window": w, "ndcg@10": v}
        for m, values in (("a", [0.3, 0.1, 0.2]), ("b", [0.2, 0.2, 0.1]))
        for w, v in zip((1, 2, 3), values, strict=True)
    ]
    flips = rolling.ranking_flips(pd.DataFrame(rows), "ndcg@10")
    assert flips[["window", "leader", "trailer"]].values.tolist() == [[2, "b", "a"], [3, "a", "b"]]


def test_spec_validation():
    with pytest.raises(ConfigError, match="strategies"):
        rolling.RollingSpec(strategies=("never",))
    with pytest.raises(Exception, match="unknown model"):
        rolling.RollingSpec(models=("nope",))
    assert rolling.RollingSpec(models="ials, ease").models == ("ials", "ease")


def test_task_and_cli_store_results(workspace, drifting, capsys):
    import json

    from recsys_core.cli.main import main
    from recsys_core.data import store
    from recsys_core.jobs.tasks import TASKS

    info = store.import_frames(workspace, drifting.to_frame(), name="drift", source="test")
    spec = {"models": ["most_popular"], "strategies": ["frozen", "retrain"], "windows": 2}
    steps = []
    out = TASKS["rolling"](
        workspace, {"dataset": "drift", "spec": spec}, lambda f, m="": steps.append(f)
    )
    assert out["rows"] == 4 and steps[-1] == 1.0
    stored = rolling.list_results(workspace, info.id)
    assert len(stored) == 1 and rolling.results_frame(stored[0])["window"].max() == 2
    argv = ["--workspace", str(workspace.root), "rolling", "drift", "--model", "most_popular"]
    assert main([*argv, "--windows", "2", "--strategies", "frozen,update", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["strategy"] for r in rows} == {"frozen", "update"}
    assert len(rolling.list_results(workspace, info.id)) == 2


def test_timeline_figure_marks_flips():
    from recsys_core.viz.timeline import summary_table, timeline_figure

    rows = [
        {
            "model": m,
            "strategy": s,
            "window": w,
            "start": 1_500_000_000 + w * DAY,
            "ndcg@10": v + (0.01 if s == "retrain" else 0),
            "ndcg@10_lo": v - 0.02,
            "ndcg@10_hi": v + 0.02,
            "train_seconds": 0.5 * w,
            "cold_item_share": 0.1,
        }
        for m, values in (("ease", [0.3, 0.1, 0.2]), ("ials", [0.2, 0.2, 0.1]))
        for s in ("frozen", "retrain")
        for w, v in zip((1, 2, 3), values, strict=True)
    ]
    results = pd.DataFrame(rows)
    fig = timeline_figure(results)
    names = [t.name for t in fig.data]
    assert "ranking flips" in names and "ease · retrain" in names
    flips = next(t for t in fig.data if t.name == "ranking flips")
    assert len(flips.x) == 2 and "ials overtakes ease" in flips.hovertext[0]
    table = summary_table(results)
    assert len(table) == 4 and table["training s"].iloc[0] == pytest.approx(3.0)
