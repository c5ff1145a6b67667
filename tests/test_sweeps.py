"""Balance sweeps: popularity correction buys long-tail coverage, sweeps through the worker,
validation up front, Pareto fronts, the before-training previews and the sweep figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys_core import imbalance, sweeps
from recsys_core.balance import BalanceConfig
from recsys_core.errors import ConfigError
from recsys_core.viz import balance as vb


@pytest.fixture(scope="module")
def skewed():
    """300 users x 200 items with a strong Zipf popularity skew, split 80/10/10 at random."""
    from recsys_core.data.synthetic import SyntheticConfig, make_synthetic
    from recsys_core.split import SplitSpec, make_split

    data = make_synthetic(SyntheticConfig(n_users=300, n_items=200, zipf=1.6, mean_history=15))
    return make_split(data, SplitSpec(protocol="random", test_ratio=0.2, seed=0))


def _tail_coverage(split, model: str, config: dict, balance: dict) -> float:
    from recsys_core.evaluate import evaluate
    from recsys_core.models import get_model

    cls = get_model(model)
    fitted = cls(cls.Config(**config), device="cpu", seed=0, balance=BalanceConfig(**balance))
    fitted.fit(split.train, valid=split.valid)
    return evaluate(fitted, split, ks=(10,)).aggregate["tail_coverage@10"]


def _assert_rises(values: list[float]) -> None:
    # "monotone within noise": no step down by more than 0.02, and a clear overall rise
    assert all(b >= a - 0.02 for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] > values[0] + 0.1, values


@pytest.mark.parametrize(
    ("model", "config", "settings"),
    [
        (
            "bpr",
            {"epochs": 15, "dim": 32},
            [{"neg_sampler": "popularity", "neg_alpha": a} for a in (0.0, 0.5, 1.0)],
        ),
        ("bpr", {"epochs": 15, "dim": 32}, [{"ips_beta": b} for b in (0.0, 0.5, 1.0)]),
        ("ials", {"factors": 32, "iterations": 5}, [{"ips_beta": b} for b in (0.0, 0.5, 1.0)]),
    ],
    ids=["bpr-neg_alpha", "bpr-ips_beta", "ials-ips_beta"],
)
def test_stronger_popularity_correction_raises_tail_coverage(skewed, model, config, settings):
    _assert_rises([_tail_coverage(skewed, model, config, s) for s in settings])


def test_unhonoured_option_rejected_naming_model_and_option():
    with pytest.raises(ConfigError, match=r"model 'ease'.*'neg_alpha'"):
        sweeps.check_sweep("ease", {"neg_alpha": [0.0, 1.0]})
    with pytest.raises(ConfigError, match=r"model 'bpr'.*'pop_norm'"):
        sweeps.check_sweep("bpr", {"pop_norm": [0.0, 0.5]})
    with pytest.raises(ConfigError, match="one or two"):
        sweeps.check_sweep("bpr", {"ips_beta": [0], "neg_alpha": [0], "focal_gamma": [0]})
    with pytest.raises(ConfigError, match="above the maximum"):
        sweeps.check_sweep("bpr", {"ips_beta": [0.0, 5.0]})
    with pytest.raises(ConfigError, match="resample=upsample_tail"):
        sweeps.check_sweep("bpr", {"resample_factor": [2.0, 4.0]})
    # neg_alpha acts only through the popularity sampler: the base gets it
    assert sweeps.check_sweep("bpr", {"neg_alpha": [0.0, 1.0]}) == {"neg_sampler": "popularity"}
    support = sweeps.option_support("ease")
    assert support["pop_norm"] is None and "ease does not use neg_alpha" in support["neg_alpha"]
    assert "neg_alpha" in sweeps.honoured_options("bpr")


def test_parse_grid_types_and_errors():
    grid = sweeps.parse_grid(["neg_alpha=0,0.5,1", "n_negatives=1,4,4", "resample=none"])
    assert grid == {"neg_alpha": [0.0, 0.5, 1.0], "n_negatives": [1, 4], "resample": ["none"]}
    with pytest.raises(ConfigError, match="unknown balance option 'alpha'"):
        sweeps.parse_grid(["alpha=1"])
    with pytest.raises(ConfigError, match="expected OPTION=V1,V2"):
        sweeps.parse_grid(["neg_alpha"])
    with pytest.raises(ConfigError, match="n_negatives: expected int"):
        sweeps.parse_grid(["n_negatives=1.5"])


def test_pareto_front_on_hand_made_points():
    points = pd.DataFrame(
        {
            "tail_coverage@10": [0.0, 0.1, 0.2, 0.1, 0.3, np.nan],
            "ndcg@10": [0.40, 0.38, 0.30, 0.30, 0.10, 0.50],
            "avg_popularity@10": [50.0, 40.0, 30.0, 45.0, 10.0, np.nan],
        }
    )
    # (0.1, 0.30) is dominated by (0.1, 0.38); the NaN row is never on the front
    front = sweeps.pareto_front(points)
    assert front.tolist() == [True, True, True, False, True, False]
    # lower average popularity is better: (45, 0.30) is dominated by (40, 0.38)
    low = sweeps.pareto_front(points, "avg_popularity@10", maximise_x=False)
    assert low.tolist() == [True, True, True, False, True, False]
    ties = pd.DataFrame({"tail_coverage@10": [0.1, 0.1], "ndcg@10": [0.2, 0.2]})
    assert sweeps.pareto_front(ties).tolist() == [True, True]  # equal points dominate nothing


def test_before_training_previews(skewed):
    data = skewed.train
    profile = imbalance.imbalance_profile(data, head_share=0.2)
    assert profile["positives_per_user"].sum() == data.nnz
    assert np.all(np.diff(profile["popularity"]) <= 0)  # most popular first
    assert profile["head"].sum() == round(0.2 * data.n_items)
    assert 0.5 < profile["head_interaction_share"] <= 1.0  # the planted skew
    assert 0.3 < profile["gini"] < 1.0
    flat = imbalance.imbalance_profile(data.select(np.zeros(data.nnz, bool)), 0.2)
    assert flat["gini"] == 0.0

    chosen = BalanceConfig(neg_sampler="popularity", neg_alpha=1.0)
    frame = imbalance.negative_buckets(data, chosen, n_buckets=5, n_draws=20_000)
    shares = frame.pivot(index="bucket", columns="source", values="share")
    assert np.allclose(shares.sum(axis=0), 1.0)
    top = shares.index[0]  # the most popular 20% of items
    # uniform negatives hit the head about in proportion to its size; alpha=1 far more often,
    # about as often as the positives do (P(i) proportional to popularity)
    assert abs(shares.loc[top, "uniform negatives"] - 0.2) < 0.05
    assert shares.loc[top, "chosen negatives"] > shares.loc[top, "uniform negatives"] + 0.2
    assert abs(shares.loc[top, "chosen negatives"] - shares.loc[top, "positives"]) < 0.1

    buckets = imbalance.popularity_bins(np.array([5, 1, 9, 0]), 2)
    assert buckets.tolist() == [0, 1, 0, 1]
    with pytest.raises(ConfigError, match="n_buckets"):
        imbalance.popularity_bins(np.array([1]), 0)


def test_sweep_through_the_worker_collect_and_cli(workspace, capsys):
    """A two-point grid queued as a group, executed by a worker run once (two CPU slots)."""
    from recsys_core.cli.main import main
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames
    from recsys_core.jobs import api

    interactions, items, _ = make_frames(
        SyntheticConfig(n_users=80, n_items=60, n_clusters=4, mean_history=10, zipf=1.5)
    )
    info = import_frames(workspace, interactions, name="skewed", source="t", items=items)
    split = {"protocol": "random", "test_ratio": 0.2, "seed": 0}
    with pytest.raises(ConfigError, match=r"'itemknn'.*'ips_beta'"):
        sweeps.submit_sweep(workspace, info.id, "itemknn", {"ips_beta": [0.0, 1.0]}, split=split)
    assert api.list_runs(workspace) == []  # refused before anything was queued

    # pop_norm=0 is the default: that point is the baseline, so no extra run is added
    group = sweeps.submit_sweep(
        workspace, info.id, "itemknn", {"pop_norm": [0.0, 1.0]}, split=split
    )
    runs = api.list_runs(workspace, group=group)
    assert len(runs) == 2 and {r.status for r in runs} == {"queued"}
    points = sweeps.wait_sweep(workspace, group, cpu_slots=2, timeout=300)
    assert list(points["status"]) == ["done", "done"], points[["status", "error"]]
    assert points["baseline"].tolist() == [True, False]
    assert points["pop_norm"].tolist() == [0.0, 1.0]
    expected = {"run_id", "label", *sweeps.METRICS, "ndcg@10 tail items", "ndcg@10 cold users"}
    assert expected <= set(points.columns)
    assert points[list(sweeps.METRICS)].notna().all().all()
    # dividing item columns by popularity moves recommendations away from the head
    assert points["avg_popularity@10"].iloc[1] < points["avg_popularity@10"].iloc[0]
    listing = sweeps.list_sweeps(workspace, dataset=info.id)
    assert listing[["group", "n_runs", "n_done"]].values.tolist() == [[group, 2, 2]]

    recs = imbalance.recommendation_buckets(
        workspace, list(points["run_id"]), names={points["run_id"][0]: "baseline"}, n_buckets=4
    )
    assert set(recs["source"]) == {"data", "baseline", points["run_id"][1]}
    assert np.allclose(recs.groupby("source")["share"].sum(), 1.0)

    assert main(["sweep", "--show", group, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["group"] == group and len(shown["points"]) == 2
    assert main(["sweep", "--show", group]) == 0
    table = capsys.readouterr().out
    assert "baseline" in table and "tail_cov" in table and points["run_id"][1] in table
    assert main(["sweep", info.id, "--model", "ease", "--grid", "neg_alpha=0,1"]) == 2
    assert "does not honour balance option 'neg_alpha'" in capsys.readouterr().err

    # baseline added when no grid point has the default options (queued only, not run)
    group2 = sweeps.submit_sweep(
        workspace, info.id, "itemknn", {"pop_norm": [0.5, 1.0]}, split=split
    )
    labels = sorted(r.label for r in api.list_runs(workspace, group=group2))
    assert labels == [sweeps.BASELINE_LABEL, "pop_norm=0.5", "pop_norm=1.0"]
    queued = sweeps.collect_sweep(workspace, group2)
    assert queued["baseline"].sum() == 1 and queued["ndcg@10"].isna().all()


def test_sweep_figures():
    points = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "baseline": [True, False, False],
            "neg_alpha": [0.0, 0.5, 1.0],
            "status": ["done", "done", "running"],
            "ndcg@10": [0.4, 0.35, np.nan],
            "tail_coverage@10": [0.0, 0.2, np.nan],
            "ndcg@10 head items": [0.5, 0.4, np.nan],
            "ndcg@10 tail items": [0.0, 0.1, np.nan],
        }
    )
    front = sweeps.pareto_front(points)
    fig = vb.tradeoff(points, front, options=["neg_alpha"])
    names = [t.name for t in fig.data]
    assert names[1:] == ["baseline (default balance)", "Pareto front"]
    assert names[0] == "setting (★ on the Pareto front)"
    # One meaning per symbol across pages: a star is the Pareto front (as on Compare), the
    # baseline a black diamond; labels are not clipped at the plot's edge.
    assert list(fig.data[0].marker.symbol) == ["star"]  # neg_alpha=0.5 is on the front
    assert fig.data[1].marker.symbol == "diamond" and fig.data[1].marker.color == vb.BASELINE
    assert fig.data[0].cliponaxis is False and fig.data[1].cliponaxis is False
    assert list(fig.data[0].text) == ["neg_alpha=0.5"]  # the running point is not drawn
    assert len(fig.data[2].x) == 2
    with pytest.raises(ValueError, match="front has 2 entries"):
        vb.tradeoff(points, front[:2])
    seg = vb.segment_effects(points.iloc[:2], options=["neg_alpha"])
    assert [t.name for t in seg.data] == ["baseline", "neg_alpha=0.5"]
    assert list(seg.data[0].x) == ["head items", "tail items"]
    with pytest.raises(ValueError, match="per-segment"):
        vb.segment_effects(points[["run_id", "baseline", "ndcg@10"]])
    curves = {"before": np.array([9, 4, 1]), "after": np.array([9, 8, 2]), "head": [1, 0, 0]}
    assert len(vb.popularity_curve(curves).data) == 2
    bars = vb.bucket_shares(
        pd.DataFrame({"bucket": ["0-50%"] * 2, "source": ["data", "x"], "share": [0.7, 0.3]}),
        title="t",
    )
    assert [t.name for t in bars.data] == ["data", "x"]
    recs = vb.bucket_shares(
        pd.DataFrame({"bucket": ["a"] * 3, "source": ["data", "baseline", "x"], "share": [1] * 3}),
        title="t",
    )
    assert recs.data[1].marker.color == vb.BASELINE  # black here too, not the next palette hue
    assert seg.data[0].marker.color == vb.BASELINE
    assert vb.positives_per_user(np.array([1, 2, 30])).data[0].type == "histogram"
