"""Figure and table builders of the Train and Compare pages (pure functions, no Streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.errors import DataError
from recsys_core.viz.palette import PALETTE, model_color, model_colors
from recsys_core.viz.runs import (
    activity_buckets,
    curves_frame,
    leaderboard_bars,
    leaderboard_table,
    metric_columns,
    pareto_front,
    per_user_scatter,
    segment_bars,
    split_key,
    tradeoff_scatter,
    training_curves,
    user_segment_frame,
)


def _entries():
    return [
        {
            "run": "r1",
            "model": "ease",
            "label": "EASE",
            "device": "cpu",
            "fit_seconds": 1.5,
            "aggregate": {"ndcg@10": 0.30, "tail_coverage@10": 0.10},
            "ci": {"ndcg@10": [0.28, 0.33], "tail_coverage@10": [0.1, 0.1]},
        },
        {
            "run": "r2",
            "model": "itemknn",
            "label": None,
            "device": "cpu",
            "fit_seconds": None,
            "aggregate": {"ndcg@10": 0.25, "tail_coverage@10": 0.30},
            "ci": {},
        },
        {
            "run": "r3",
            "model": "most_popular",
            "label": "pop",
            "device": "cpu",
            "fit_seconds": 0.1,
            "aggregate": {"ndcg@10": 0.20, "tail_coverage@10": 0.05},
            "ci": {},
        },
    ]


def test_leaderboard_table_columns_and_ci():
    table = leaderboard_table(_entries())
    assert list(table["run"]) == ["r1", "r2", "r3"]
    assert table.loc[1, "label"] == "itemknn"  # missing label falls back to the model key
    assert metric_columns(table) == ["ndcg@10", "tail_coverage@10"]
    assert table.loc[0, "ndcg@10 lo"] == pytest.approx(0.28)
    assert np.isnan(table.loc[1, "ndcg@10 hi"])
    assert np.isnan(table.loc[1, "fit_s"])


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.random(40), rng.random(40)
    x[3] = np.nan
    mask = pareto_front(x, y)
    for i in range(40):
        if np.isnan(x[i]):
            assert not mask[i]
            continue
        dominated = np.any((x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i])))
        assert mask[i] == (not dominated)
    with pytest.raises(DataError, match="shape"):
        pareto_front(np.zeros(2), np.zeros(3))


def test_tradeoff_marks_front_and_bars_sorted():
    table = leaderboard_table(_entries())
    fig = tradeoff_scatter(table, "tail_coverage@10", "ndcg@10")
    front = [t for t in fig.data if t.name == "Pareto front"]
    assert len(front) == 1
    assert sorted(front[0].x) == [0.10, 0.30]  # popularity run is dominated by EASE
    bars = leaderboard_bars(table, "ndcg@10")
    assert list(bars.data[0].x) == [0.30, 0.25, 0.20]
    assert bars.data[0].marker.color[0] == model_color("ease")
    with pytest.raises(DataError, match="not in the leaderboard"):
        leaderboard_bars(table, "recall@99")


def test_palette_is_stable_per_model():
    assert model_color("ease") == model_color("ease")
    assert model_color("never-registered") in PALETTE
    assert set(model_colors(["a", "b", "a"])) == {"a", "b"}


def test_split_key_ignores_key_order():
    assert split_key("d", {"protocol": "random", "seed": 0}) == split_key(
        "d", {"seed": 0, "protocol": "random"}
    )
    assert split_key("d", {"seed": 0}) != split_key("d", {"seed": 1})


def test_activity_buckets_and_segments():
    activity = np.array([1, 2, 3, 4, 5, 6, 7, 100])
    labels = activity_buckets(activity, 4)
    assert labels[0].startswith("Q1") and labels[-1].startswith("Q4")
    per_user = {
        "A": pd.DataFrame({"ndcg@10": np.linspace(0, 1, 8)}, index=np.arange(8)),
        "B": pd.DataFrame({"ndcg@10": np.ones(4)}, index=np.arange(4, 8)),
    }
    seg = user_segment_frame(per_user, {"A": "ease", "B": "ease"}, activity)
    top_b = seg[(seg["run"] == "B") & (seg["bucket"] == labels[-1])]
    assert top_b["value"].item() == 1.0
    assert seg.groupby("run")["users"].sum().to_dict() == {"A": 8, "B": 4}
    fig = segment_bars(seg, "ndcg@10")
    assert [t.marker.pattern.shape for t in fig.data] == ["", "/"]  # same model, told apart
    with pytest.raises(DataError, match="outside"):
        user_segment_frame({"A": per_user["A"]}, {}, activity[:4])


def test_per_user_scatter_counts():
    a = pd.Series([0.0, 0.5, 1.0, 0.2], index=[0, 1, 2, 3])
    b = pd.Series([0.1, 0.5, 0.0], index=[0, 1, 2])
    fig = per_user_scatter(a, b, label_a="A", label_b="B", metric="ndcg@10")
    assert fig.layout.title.text.startswith("1 users better with B, 1 with A, 1 tied")


def test_training_curves_from_flat_and_nested_events():
    events = [
        {"step": 1, "epoch": 1, "loss": 0.9, "note": "x"},
        {"step": 2, "metrics": {"epoch": 2, "loss": 0.5, "valid_ndcg@10": 0.2}},
    ]
    frame = curves_frame(events)
    assert "note" not in frame.columns
    assert frame["loss"].tolist() == [0.9, 0.5]
    fig = training_curves(events)
    assert {t.name for t in fig.data} == {"loss", "valid_ndcg@10"}
    assert len(training_curves([]).data) == 0
