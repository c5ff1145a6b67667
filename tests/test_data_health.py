"""Health report numbers on a hand-made dataset, warnings with thresholds, and the figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys_core.data.health import head_share, profile
from recsys_core.data.interactions import Interactions
from recsys_core.metrics import gini
from recsys_core.viz.data import health_figures


@pytest.fixture()
def hand_made() -> Interactions:
    # 3 users x 4 items; item counts: i1=3, i2=2, i3=1, i4=1 (7 interactions).
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "a", "a", "b", "b", "c"],
            "item": ["i1", "i2", "i3", "i4", "i1", "i2", "i1"],
            "value": [5, 4, 3, 3, 5, 1, 4],
            "timestamp": [0, 86_400, 2 * 86_400, 2 * 86_400, 0, 86_400, 10 * 86_400],
        }
    )
    return Interactions.from_frame(frame)


def test_hand_computed_stats(hand_made):
    report = profile(
        hand_made, {"rows_read": 9, "duplicates": {"policy": "last", "rows_removed": 2}}
    )
    s = report.stats
    assert (s["n_users"], s["n_items"], s["n_interactions"]) == (3, 4, 7)
    assert s["density"] == pytest.approx(7 / 12)
    assert (s["user_min"], s["user_median"], s["user_max"]) == (1, 2.0, 4)
    assert s["user_p90"] == pytest.approx(np.percentile([4, 2, 1], 90))
    assert (s["item_min"], s["item_median"], s["item_max"]) == (1, 1.5, 3)
    assert s["cold_user_share"] == 1.0
    # Gini of (1, 1, 2, 3): sum (2i - n - 1) x / (n sum x) = (-3 - 1 + 2 + 9) / (4 * 7)
    assert s["gini"] == pytest.approx(7 / 28)
    # 80% of 7 = 5.6 interactions needs i1 + i2 + one more: 3 of 4 items
    assert s["head_item_share"] == pytest.approx(0.75)
    assert (s["rating_min"], s["rating_max"]) == (1.0, 5.0)
    assert s["time_span_days"] == pytest.approx(10.0)
    assert s["duplicates_removed"] == 2 and s["single_interaction_users"] == 1
    ratings = report.series["ratings"]
    assert dict(zip(ratings["value"], ratings["count"], strict=True)) == {1: 1, 3: 2, 4: 2, 5: 2}
    assert report.series["over_time"]["interactions"].sum() == 7
    assert report.series["time_unit"] == "day"
    json.dumps(report.to_dict())


def test_warnings_name_thresholds(hand_made):
    warnings = " ".join(profile(hand_made).warnings)
    assert "fewer than 1,000 interactions (7)" in warnings
    assert "100% of users have fewer than 5 interactions" in warnings
    assert "100% of items have fewer than 5 interactions" in warnings
    assert "only 4 items" in warnings
    no_time = Interactions.from_frame(pd.DataFrame({"user": ["a", "b"], "item": ["x", "x"]}))
    report = profile(no_time)
    assert any(w.startswith("timestamps missing") for w in report.warnings)
    assert report.stats["has_ratings"] is False


def test_gini_and_head_share_edges():
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    assert head_share(np.array([10, 0, 0, 0, 0])) == pytest.approx(0.2)
    assert gini(np.array([])) == 0.0


def test_synthetic_is_healthy(synthetic):
    report = profile(synthetic)
    assert report.stats["n_interactions"] == synthetic.nnz
    assert not any("fewer than 1,000" in w for w in report.warnings)


def test_figures(hand_made, synthetic):
    for data in (hand_made, synthetic):
        figures = health_figures(profile(data))
        assert list(figures) == ["popularity", "user_activity", "ratings", "over_time"]
        for figure in figures.values():
            assert len(figure.data) == 1
        hist = figures["user_activity"].data[0]
        assert int(np.sum(hist.y)) == data.n_users
        assert list(figures["popularity"].data[0].y)[0] == data.item_popularity.max()
    implicit = Interactions.from_frame(pd.DataFrame({"user": ["a"], "item": ["x"]}))
    figures = health_figures(profile(implicit))
    assert "no ratings" in figures["ratings"].layout.annotations[0].text
    assert "no timestamps" in figures["over_time"].layout.annotations[0].text


def test_popularity_axes_read_cleanly(synthetic):
    fig = health_figures(profile(synthetic))["popularity"]
    # Powers of ten only on the log axis, and no negative item ranks.
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1
    assert fig.layout.xaxis.range[0] > 0


def test_import_report_table_with_split_counts():
    from recsys_core.viz.data import import_report_table

    report = {
        "format": "csv",
        "rows_read": 1200,
        "columns": {"user": "user_id:token", "item": "item_id:token", "split": "part"},
        "duplicates": {"policy": "last", "rows_removed": 3, "pairs_affected": 2},
        "n_users": 40,
        "n_interactions": 1197,
    }
    labels = np.array(["train"] * 900 + ["valid"] * 100 + ["test"] * 197, dtype=object)
    table = import_report_table(report, labels).set_index("what")["value"]
    assert table["Rows read"] == "1,200"
    assert table["Columns used"].startswith("User id ← user_id:token")
    assert table["Split column"] == "train 900 · valid 100 · test 197"
    assert "3 removed from 2 pairs" in table["Repeated user-item rows"]
    assert "Split column" not in import_report_table(report).set_index("what").index
