"""Bootstrap intervals, paired tests and segment tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.errors import DataError
from recsys_core.stats import (
    activity_segments,
    bootstrap_ci,
    bootstrap_means,
    holm,
    paired_table,
    paired_tests,
    segment_table,
)


def test_bootstrap_ci_covers_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = rng.normal(0.3, 0.1, size=100)
    big = rng.normal(0.3, 0.1, size=10_000)
    lo, hi = bootstrap_ci(small, seed=1)
    assert lo < small.mean() < hi
    # Standard error 0.01 -> a 95% interval about 0.04 wide.
    assert 0.02 < hi - lo < 0.06
    lo_b, hi_b = bootstrap_ci(big, seed=1)
    assert lo_b < big.mean() < hi_b
    assert hi_b - lo_b < (hi - lo) / 5


def test_bootstrap_is_seeded_and_columnwise():
    rng = np.random.default_rng(2)
    values = rng.random((200, 3))
    values[::7, 1] = np.nan  # NaN entries are left out of their column only
    a = bootstrap_ci(values, seed=5)
    b = bootstrap_ci(values, seed=5)
    assert a == b
    assert len(a) == 3
    col1 = values[:, 1]
    assert a[1][0] < np.nanmean(col1) < a[1][1]
    means = bootstrap_means(values, n_resamples=50, seed=0)
    assert means.shape == (50, 3)
    assert not np.isnan(means).any()


def test_bootstrap_rejects_bad_level():
    with pytest.raises(DataError, match="confidence level"):
        bootstrap_ci(np.ones(3), level=1.5)


def test_paired_tests_identical_arrays():
    a = np.array([0.1, 0.5, 0.2, 0.9])
    out = paired_tests(a, a.copy())
    assert out["t_pvalue"] == 1.0
    assert out["wilcoxon_pvalue"] == 1.0
    assert out["mean_diff"] == 0.0
    assert out["cohens_d"] == 0.0


def test_paired_tests_shifted_arrays_give_small_p():
    rng = np.random.default_rng(4)
    b = rng.random(300)
    a = b + 0.05 + rng.normal(0, 0.02, size=300)
    out = paired_tests(a, b)
    assert out["mean_diff"] == pytest.approx(0.05, abs=0.01)
    assert out["t_pvalue"] < 1e-6
    assert out["wilcoxon_pvalue"] < 1e-6
    assert out["cohens_d"] > 1.0
    # Reversed order flips the sign of the difference and the effect size.
    rev = paired_tests(b, a)
    assert rev["cohens_d"] == pytest.approx(-out["cohens_d"])


def test_paired_tests_noise_is_not_significant():
    rng = np.random.default_rng(8)
    a = rng.random(200)
    b = a + rng.normal(0, 0.05, size=200)
    b = b - (b - a).mean()  # zero mean difference
    assert paired_tests(a, b)["t_pvalue"] > 0.5


def test_paired_tests_length_mismatch():
    with pytest.raises(DataError, match="same users"):
        paired_tests(np.ones(3), np.ones(4))


def test_activity_segments_quartiles():
    activity = np.arange(1, 101)
    labels = activity_segments(activity, 4)
    assert len(set(labels)) == 4
    assert labels[0].startswith("Q1: 1-") and labels[-1].endswith("-100")
    # Users in the same bucket have contiguous activity ranges.
    assert (labels[:20] == labels[0]).all()


def test_segment_table_means_per_group():
    frame = pd.DataFrame({"ndcg@10": [0.0, 0.2, 1.0, 0.8], "hit@10": [0.0, 1.0, 1.0, 1.0]})
    groups = np.array(["low", "low", "high", "high"], dtype=object)
    table = segment_table(frame, groups, kind="user activity", n_resamples=200)
    row = table[(table.segment == "high") & (table.metric == "ndcg@10")].iloc[0]
    assert row["mean"] == pytest.approx(0.9)
    assert row["n_users"] == 2
    assert row["ci_low"] <= 0.9 <= row["ci_high"]
    assert set(table.kind) == {"user activity"}
    with pytest.raises(DataError, match="group labels"):
        segment_table(frame, groups[:3])


# ----- Holm correction over the metrics tested ----------------------------------------------------
def test_holm_matches_the_hand_computed_step_down():
    # sorted: 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> running max 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    out = holm([0.02, np.nan, 0.01])
    np.testing.assert_allclose(out, [0.02, np.nan, 0.02])  # NaN is not a test: m = 2
    assert holm([]).shape == (0,)


def _with_t(z: np.ndarray, t: float) -> np.ndarray:
    """Differences whose paired t statistic is exactly ``t`` (z: mean 0, sd 1)."""
    return z + t / np.sqrt(len(z))


def test_paired_table_marks_significance_after_the_correction():
    rng = np.random.default_rng(0)
    n = 200
    z = rng.normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    base = rng.random(n)
    diffs = {"big": _with_t(z, 10.0), "edge": _with_t(z, 2.2), "none1": z, "none2": -z}
    a = pd.DataFrame({k: base + d for k, d in diffs.items()})
    b = pd.DataFrame({k: base for k in diffs})
    table = paired_table(a, b).set_index("metric")
    assert 0.01 < table.loc["edge", "t_pvalue"] < 0.05  # significant alone...
    assert table.loc["edge", "t_pvalue_holm"] == pytest.approx(3 * table.loc["edge", "t_pvalue"])
    assert not table.loc["edge", "significant"]  # ...but not among four metrics
    assert table.loc["big", "significant"]
    assert not table.loc[["none1", "none2"], "significant"].any()
    assert {"wilcoxon_pvalue_holm", "cohens_d"} <= set(table.columns)
