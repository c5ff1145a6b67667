"""Figure and table builders of the Train and Compare pages (pure functions, no Streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.errors import DataError
from recsys_core.viz.palette import PALETTE, model_color, model_colors
from recsys_core.viz.runs import (
    curves_frame,
    leaderboard_bars,
    leaderboard_table,
    metric_columns,
    pareto_front,
    per_user_scatter,
    segment_bars,
    segments_frame,
    split_key,
    tradeoff_scatter,
    training_curves,
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


def test_segments_frame_and_bars():
    record = {"kind": "user activity", "metric": "ndcg@10", "n_users": 5}
    segments = {
        "A": [
            record | {"segment": "Q1", "mean": 0.1, "ci_low": 0.0, "ci_high": 0.2},
            record | {"segment": "Q2", "mean": 0.3, "ci_low": 0.2, "ci_high": 0.5},
        ],
        "B": [
            record | {"segment": "Q1", "mean": 0.2, "ci_low": None, "ci_high": None},
            record
            | {
                "segment": "Q1",
                "kind": "item popularity",
                "mean": 0.4,
                "ci_low": 0.3,
                "ci_high": 0.5,
            },
        ],
        "C": [],
    }
    frame = segments_frame(segments, {"A": "ease", "B": "ease"})
    assert len(frame) == 4 and set(frame["run"]) == {"A", "B"}
    fig = segment_bars(frame, "ndcg@10", "user activity")
    assert [t.name for t in fig.data] == ["A", "B"]
    assert [t.marker.pattern.shape for t in fig.data] == ["", "/"]  # same model, told apart
    assert list(fig.data[0].error_y.array) == pytest.approx([0.1, 0.2])
    assert list(fig.data[1].error_y.array) == [0.0]  # a missing CI draws no whisker
    assert len(segment_bars(frame, "ndcg@10", "item popularity").data) == 1
    assert segments_frame({}, {}).empty


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
