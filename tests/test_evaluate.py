"""evaluate(): full ranking with exclusions, per-user arrays, CIs, segments; the evaluate and
bench commands on synthetic data in a temporary workspace."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_core.bench import bench_model, eval_speed_benchmark
from recsys_core.cli.eval_cmd import split_params
from recsys_core.cli.main import main
from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.errors import ConfigError, DataError
from recsys_core.evaluate import evaluate, validation_ndcg
from recsys_core.models.popular import MostPopular, Random
from recsys_core.split import SplitSpec, make_split
from recsys_core.stats import paired_tests


@pytest.fixture(scope="module")
def split(synthetic):
    return make_split(synthetic, SplitSpec(protocol="random", test_ratio=0.2, valid_ratio=0.1))


@pytest.fixture(scope="module")
def popular_report(split):
    model = MostPopular(device="cpu").fit(split.train, valid=split.valid)
    return evaluate(model, split, ks=(5, 10, 20), n_resamples=300)


class Oracle(MostPopular):
    """Scores a fixed matrix of items highest (to plant what the ranking must do)."""

    name = "oracle_test"

    def __init__(self, favourite: sp.csr_matrix, **kwargs):
        super().__init__(**kwargs)
        self.favourite = favourite

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        base = super().score_users(users) / 1e6
        return base + torch.as_tensor(self.favourite[users].toarray(), dtype=torch.float32)


def test_most_popular_beats_random_on_the_long_tail(split, popular_report):
    rand = evaluate(Random(device="cpu", seed=1).fit(split.train), split, n_resamples=300)
    pop = popular_report
    assert pop.aggregate["ndcg@10"] > 3 * rand.aggregate["ndcg@10"]
    assert pop.ci["ndcg@10"][0] > rand.ci["ndcg@10"][1]  # intervals do not overlap
    test = paired_tests(pop.per_user["ndcg@10"], rand.per_user["ndcg@10"])
    assert test["t_pvalue"] < 1e-6 and test["wilcoxon_pvalue"] < 1e-6
    # Beyond accuracy: popularity concentrates exposure, random spreads it into the tail.
    assert pop.aggregate["avg_popularity@10"] > rand.aggregate["avg_popularity@10"]
    assert pop.aggregate["tail_coverage@10"] < rand.aggregate["tail_coverage@10"]
    assert pop.aggregate["novelty@10"] < rand.aggregate["novelty@10"]
    assert pop.aggregate["personalisation@10"] < 1.0


def test_report_shapes_and_keys(split, popular_report):
    rep = popular_report
    n = len(split.test_users)
    assert rep.recs_items.shape == (n, 100) and rep.recs_scores.shape == (n, 100)
    assert list(rep.per_user.index) == list(split.test_users)
    for key in (
        "ndcg@10",
        "recall@10",
        "precision@10",
        "map@10",
        "mrr@10",
        "hit@10",
        "coverage@10",
        "tail_coverage@10",
        "avg_popularity@10",
        "gini@10",
        "novelty@10",
        "diversity@10",
        "personalisation@10",
    ):
        assert key in rep.aggregate, key
    for key in ("ndcg@5", "recall@20", "hit@20"):
        assert key in rep.per_user.columns
        lo, hi = rep.ci[key]
        assert lo <= rep.aggregate[key] <= hi
    assert rep.aggregate["ndcg@10"] == pytest.approx(rep.per_user["ndcg@10"].mean())
    # Scores are sorted best first in every list.
    assert (np.diff(rep.recs_scores, axis=1) <= 0).all()
    json.dumps(rep.to_dict(), allow_nan=False)  # strict JSON-ready
    kinds = set(rep.segments["kind"])
    assert kinds == {"user activity", "item popularity"}
    pop_seg = rep.segments[rep.segments.kind == "item popularity"]
    assert set(pop_seg.segment) == {"head", "mid", "tail"}
    # MostPopular finds head truth items far better than tail ones.
    recall = pop_seg[pop_seg.metric == "recall@10"].set_index("segment")["mean"]
    assert recall["head"] > recall["tail"]


def test_no_excluded_item_is_recommended(split, popular_report):
    rep = popular_report
    excl = split.exclusion[rep.test_users]
    rows = np.repeat(np.arange(len(rep.test_users)), rep.recs_items.shape[1])
    flat = rep.recs_items.ravel()
    ok = flat >= 0
    assert not np.asarray(excl[rows[ok], flat[ok]]).any()
    assert any("validation" in note for note in rep.notes)


def test_valid_items_are_excluded_even_when_scored_highest(split):
    oracle = Oracle(split.valid.binary, device="cpu").fit(split.train, valid=split.valid)
    rep = evaluate(oracle, split, ks=(10,), n_resamples=50)
    valid = split.valid.binary[rep.test_users]
    rows = np.repeat(np.arange(len(rep.test_users)), rep.recs_items.shape[1])
    flat = rep.recs_items.ravel()
    assert not np.asarray(valid[rows, flat]).any()


def test_an_oracle_scores_perfectly(split):
    oracle = Oracle(split.test.binary, device="cpu").fit(split.train, valid=split.valid)
    rep = evaluate(oracle, split, ks=(10,), n_resamples=50)
    assert rep.aggregate["ndcg@10"] == pytest.approx(1.0)
    assert rep.aggregate["hit@10"] == pytest.approx(1.0)
    assert rep.aggregate["mrr@10"] == pytest.approx(1.0)


def test_metrics_match_an_independent_recount(split, popular_report):
    rep = popular_report
    truth = split.test.binary
    for row in range(0, len(rep.test_users), 37):
        u = rep.test_users[row]
        relevant = set(truth[u].indices.tolist())
        top = rep.recs_items[row, :10].tolist()
        hits = sum(i in relevant for i in top)
        assert rep.per_user.loc[u, "recall@10"] == pytest.approx(hits / len(relevant))
        assert rep.per_user.loc[u, "precision@10"] == pytest.approx(hits / 10)


def test_batching_does_not_change_results(split, popular_report):
    model = MostPopular(device="cpu").fit(split.train, valid=split.valid)
    small = evaluate(model, split, ks=(5, 10, 20), batch_size=7, n_resamples=300)
    pd.testing.assert_frame_equal(small.per_user, popular_report.per_user)
    assert small.aggregate == pytest.approx(popular_report.aggregate)


def test_held_out_users_are_scored_from_fold_in(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="users", test_ratio=0.2))

    class FoldInOnly(MostPopular):
        name = "fold_in_only_test"

        def score_users(self, users):
            raise AssertionError("held-out users must be scored through score_history")

    model = FoldInOnly(device="cpu").fit(split.train, valid=split.valid)
    rep = evaluate(model, split, ks=(10,), n_resamples=50)
    assert len(rep.test_users) == len(split.test_users)
    assert any("fold-in" in note for note in rep.notes)
    # Fold-in items are excluded from the held-out users' rankings.
    fold = split.fold_in.binary[rep.test_users]
    rows = np.repeat(np.arange(len(rep.test_users)), rep.recs_items.shape[1])
    assert not np.asarray(fold[rows, rep.recs_items.ravel()]).any()


def test_sampled_metrics_only_on_request(split, popular_report):
    assert not any(k.startswith("sampled_") for k in popular_report.aggregate)
    model = MostPopular(device="cpu").fit(split.train)
    rep = evaluate(model, split, ks=(10,), sampled={"n": 50, "strategy": "uniform"})
    again = evaluate(model, split, ks=(10,), sampled=(50, "uniform"))
    assert rep.aggregate["sampled_ndcg@10"] == again.aggregate["sampled_ndcg@10"]  # seeded
    # Ranking against 50 negatives is easier than against the full catalogue.
    assert rep.aggregate["sampled_hit@10"] > rep.aggregate["hit@10"]
    pop = evaluate(model, split, ks=(10,), sampled=(50, "popularity"))
    # Popular negatives are harder for a popularity model than uniform ones.
    assert pop.aggregate["sampled_ndcg@10"] < rep.aggregate["sampled_ndcg@10"]
    assert any("sampled" in note for note in rep.notes)
    with pytest.raises(ConfigError):
        evaluate(model, split, sampled=(10, "hardest"))


def test_validation_ndcg_matches_evaluate(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="random", valid_ratio=0.0))
    # Random scores have no ties, so top-10 and top-100 rankings agree on their first 10.
    model = Random(device="cpu", seed=3).fit(split.train)
    rep = evaluate(model, split, ks=(10,), n_resamples=50)
    assert validation_ndcg(model, split.train, split.test, k=10) == pytest.approx(
        rep.aggregate["ndcg@10"], rel=1e-5
    )
    sample = validation_ndcg(model, split.train, split.test, k=10, max_users=50)
    assert 0.0 <= sample <= 1.0


def test_nan_scores_are_ranked_last(split):
    class Broken(MostPopular):
        name = "broken_test"

        def score_users(self, users):
            scores = super().score_users(users)
            scores[:, :5] = float("nan")
            return scores

    rep = evaluate(Broken(device="cpu").fit(split.train), split, ks=(10,), n_resamples=20)
    assert not np.isin(rep.recs_items[:, :10], np.arange(5)).any()
    assert any("NaN" in note for note in rep.notes)


def test_item_count_mismatch_is_an_error(split, small_synthetic):
    model = MostPopular(device="cpu").fit(small_synthetic)
    with pytest.raises(DataError, match="items"):
        evaluate(model, split)


def test_evaluate_on_device(split, device):
    model = MostPopular(device=device).fit(split.train, valid=split.valid)
    rep = evaluate(model, split, ks=(10,), n_resamples=50)
    assert 0 < rep.aggregate["ndcg@10"] < 1


# ----- CLI ---------------------------------------------------------------------------------------
@pytest.fixture()
def synthetic_csv(tmp_path):
    inter, _, _ = make_frames(SyntheticConfig(n_users=120, n_items=80, mean_history=12))
    path = tmp_path / "ratings.csv"
    inter.to_csv(path, index=False)
    return path


def test_evaluate_cli_json_and_recs(workspace, synthetic_csv, tmp_path, capsys):
    recs = tmp_path / "recs.csv"
    argv = [
        "--workspace",
        str(workspace.root),
        "evaluate",
        str(synthetic_csv),
        "--split",
        "random",
        "--model",
        "most_popular",
        "--k",
        "5",
        "10",
        "--json",
        "--save-recs",
        str(recs),
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["models"][0]
    assert row["model"] == "most_popular" and row["fit_seconds"] >= 0
    assert 0 < row["aggregate"]["ndcg@10"] < 1
    assert len(row["ci"]["ndcg@10"]) == 2
    frame = pd.read_csv(recs)
    assert list(frame.columns) == ["user", "item", "rank", "score"]
    assert frame.groupby("user").size().max() == 10
    assert frame["user"].astype(str).str.startswith("u").all()  # raw ids
    # Recompute hit@10 from the CSV and the split, independently of evaluate().
    from recsys_core.data.store import list_datasets, load_dataset

    data = load_dataset(workspace, list_datasets(workspace)[0].id)
    split = make_split(data, SplitSpec())
    test = pd.DataFrame(
        {"user": data.user_ids[split.test.users], "item": data.item_ids[split.test.items]}
    )
    hits = frame.merge(test, on=["user", "item"]).groupby("user").size()
    hit_rate = (hits > 0).sum() / frame["user"].nunique()
    assert row["aggregate"]["hit@10"] == pytest.approx(hit_rate)


def test_evaluate_cli_table_and_errors(workspace, synthetic_csv, capsys):
    base = ["--workspace", str(workspace.root), "evaluate", str(synthetic_csv)]
    assert (
        main(
            [
                *base,
                "--split",
                "leave_last",
                "--model",
                "most_popular",
                "--model",
                "random",
                "--k",
                "10",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "most_popular" in text and "ndcg@10" in text and "fit s" in text
    # The dataset is now in the workspace: evaluate by name works too.
    from recsys_core.data.store import list_datasets

    name = list_datasets(workspace)[0].name
    assert (
        main(
            [
                "--workspace",
                str(workspace.root),
                "evaluate",
                name,
                "--model",
                "most_popular",
                "--k",
                "10",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main([*base, "--model", "no_such_model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main([*base, "--model", "most_popular", "--model", "random", "--param", "l2=5"]) == 2
    assert "MODEL." in capsys.readouterr().err


def test_split_params_routing():
    assert split_params(["ease.l2=5", "k=3"], ["ease"]) == {"ease": ["l2=5", "k=3"]}
    with pytest.raises(ConfigError, match="not one of"):
        split_params(["knn.k=3"], ["ease"])


def test_bench_pieces_on_small_data(split, workspace, synthetic_csv, capsys):
    row = bench_model("most_popular", split, device="cpu")
    assert 0 < row.ndcg < 1 and row.fit_seconds >= 0 and row.device == "cpu"
    assert row.peer["ndcg@10"] == pytest.approx(0.1275)
    speed = eval_speed_benchmark(200, 100, mean_history=10, device="cpu")
    assert speed["users"] > 0 and speed["eval_seconds"] > 0
    argv = [
        "--workspace",
        str(workspace.root),
        "bench",
        "--dataset",
        str(synthetic_csv),
        "--split-file",
        "none",
        "--models",
        "most_popular,random",
        "--skip-ingest",
        "--skip-eval-speed",
        "--device",
        "cpu",
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in out["models"]] == ["most_popular", "random"]
    assert out["models"][0]["ndcg@10"] > out["models"][1]["ndcg@10"]
    # RecBole's sequential protocol: one test item per user, by time; no peer figures there.
    leave_last = [*argv[:-1], "--split", "leave_last", "--json"]
    assert main(leave_last) == 0
    out = json.loads(capsys.readouterr().out)
    assert "last k interactions" in out["split"] and out["models"][0]["peer"] == {}


def test_score_blocks_stay_bounded_for_large_catalogues():
    from recsys_core.evaluate import SCORE_BLOCK_ELEMENTS, _batch_rows

    # 50k items: at most 2^25 scores (128 MB of float32) per block, whatever the user count.
    rows = _batch_rows(1024, 50_000)
    assert 1 <= rows < 1024 and rows * 50_000 <= SCORE_BLOCK_ELEMENTS
    assert _batch_rows(1024, 3_700) == 1024
    assert _batch_rows(1024, 10**9) == 1
