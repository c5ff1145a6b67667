"""Tests of the SHAP explanation engine (recsys_core.explain)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_core.config import param, validate
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import Cancelled, ConfigError, DataError, NotFoundError
from recsys_core.explain import counterfactual, explain, user_history
from recsys_core.models import MODELS
from recsys_core.models.base import ProgressFn, Recommender, dense_rows


# ----- small models defined here so the engine is tested against the bare contract -------------
@dataclass(frozen=True)
class CoocConfig:
    shrink: float = param(1.0, "shrinkage of the cosine similarity", low=0.0)
    power: float = param(1.0, "score = (history @ S) ** power (1 = linear)", low=0.5, high=3.0)

    def __post_init__(self) -> None:
        validate(self)


class Cooc(Recommender):
    """Item-item cosine co-occurrence; ``power != 1`` makes it non-additive in the history."""

    name = "test_cooc"
    family = "cf"
    Config = CoocConfig

    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        x = train.binary
        co = (x.T @ x).toarray().astype(np.float32)
        norms = np.sqrt(np.diag(co)) + self.config.shrink
        np.fill_diagonal(co, 0.0)
        self.sim_ = torch.as_tensor(co / norms[:, None] / norms[None, :], device=self.device)
        self.pop_ = torch.as_tensor(train.item_popularity / train.n_users, device=self.device)

    def score_history(self, history: sp.csr_matrix, sequences: Sequences | None = None):
        s = dense_rows(history, self.device) @ self.sim_
        return s.clamp_min(0) ** self.config.power + 0.01 * self.pop_.float()


class RecencyCooc(Cooc):
    """Sequence model: history items weighted by recency (reads ``sequences``), with attention."""

    name = "test_recency"
    uses_sequences = True

    def score_history(self, history: sp.csr_matrix, sequences: Sequences | None = None):
        padded = torch.as_tensor(sequences.padded(5, -1), device=self.device)
        weights = 0.5 ** torch.arange(4, -1, -1, device=self.device, dtype=torch.float32)
        present = (padded >= 0).float() * weights
        rows = self.sim_[padded.clamp_min(0)]  # [b, 5, n_items]
        return (present[:, :, None] * rows).sum(1)

    def attention_weights(self, sequences: Sequences, max_len: int | None = None) -> np.ndarray:
        padded = sequences.padded(5, -1)
        w = np.where(padded >= 0, 0.5 ** np.arange(4, -1, -1), 0.0)
        return w / w.sum(axis=1, keepdims=True)


class SideCooc(Cooc):
    """Cooc plus one user attribute and one item feature, exposed through the explain hooks."""

    name = "test_side"

    def explain_side_features(self, user: int, item: int) -> list[tuple[str, str]]:
        return [("segment", "user"), ("genre", "item")]

    def score_history_masked(self, history, sequences, *, user, item, side_mask):
        mask = torch.as_tensor(side_mask, dtype=torch.float32, device=self.device)
        base = self.score_history(history, sequences)
        return base + 0.3 * mask[:, :1] + 0.1 * mask[:, 1:2] * base


def _fit(cls: type[Recommender], data: Interactions, **config) -> Recommender:
    return cls(cls.Config(**config), device="cpu").fit(data)


def _user_with_history(data: Interactions, low: int, high: int) -> int:
    lengths = np.array([len(user_history(data, u)) for u in range(data.n_users)])
    return int(np.flatnonzero((lengths >= low) & (lengths <= high))[0])


def _top_item(model: Recommender, user: int) -> int:
    items, _ = model.recommend(np.array([user]), k=1)
    return int(items[0, 0])


# ----- planted dependence ----------------------------------------------------------------------
def planted(seed: int = 0) -> tuple[Interactions, int, int, int]:
    """Item 0 is (almost) only ever consumed together with item 1; everything else is noise.

    Returns the data, the target item, the planted cause and a user who has the cause (and
    five noise items) but not the target.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = 300, 40
    rows = []
    for u in range(n_users):  # tiny fixture builder, not a hot path
        items = list(rng.choice(np.arange(2, n_items), size=6, replace=False))
        if rng.random() < 0.5:
            items.append(1)
            if rng.random() < 0.9:
                items.append(0)
        rows += [(f"u{u}", f"i{i}", t) for t, i in enumerate(items)]
    probe = n_users
    rows += [(f"u{probe}", f"i{i}", t) for t, i in enumerate([5, 9, 1, 17, 23, 30])]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    data = Interactions.from_frame(frame)
    return data, data.item_index("i0"), data.item_index("i1"), data.user_index(f"u{probe}")


#: Registered models that learn the planted clusters in a short fit (the faithfulness check).
PLANTED_MODELS = ["itemknn", "ease", "ials", "rp3beta"]


def test_planted_models_are_registered():
    # A renamed or removed model must fail here, not silently leave the faithfulness check.
    assert set(PLANTED_MODELS) <= set(MODELS)


def _short(cls: type[Recommender]) -> Recommender:
    """Default config with a short fit where the model trains for epochs."""
    names = {f.name for f in dataclasses.fields(cls.Config)}
    short = {"epochs": 2, "iterations": 3, "foldin_steps": 5}
    overrides = {k: v for k, v in short.items() if k in names}
    if "components" in names:
        # A fusion fits each component with its default config (SASRec: up to 200 epochs, two
        # minutes of a busy CI core); test_sequence_window explains one with a short SASRec.
        overrides["components"] = ("ease", "itemknn")
    return cls(cls.Config(**overrides), device="cpu", seed=0)


@pytest.mark.parametrize("key", ["test_cooc", *PLANTED_MODELS])
def test_planted_cause_gets_largest_attribution(key):
    data, target, cause, probe = planted()
    model = Cooc(device="cpu").fit(data) if key == "test_cooc" else _short(MODELS[key]).fit(data)
    exp = explain(model, data, probe, target, n_random=3)
    names = [f.items[0] for f in exp.features]
    assert names[int(np.argmax(exp.attributions))] == cause
    assert exp.efficient


# ----- efficiency over the registry and the test models -------------------------------------------
@pytest.mark.parametrize("key", sorted(MODELS))
def test_efficiency_for_every_registered_model(key, small_synthetic):
    model = _short(MODELS[key]).fit(small_synthetic)
    user = _user_with_history(small_synthetic, 5, 6)  # 2^6 coalitions: fast for fold-in models
    item = _top_item(model, user)
    for target in ("score", "rank"):
        exp = explain(model, small_synthetic, user, item, target=target, k=5, n_random=2)
        assert exp.method == "exact"
        assert exp.efficient, (key, target, exp.efficiency_gap, exp.tolerance)
        assert np.isfinite(exp.attributions).all()
        json.dumps(exp.to_dict())


@pytest.mark.parametrize("cls", [Cooc, RecencyCooc, SideCooc])
@pytest.mark.parametrize("method", ["exact", "permutation", "kernel"])
def test_efficiency_every_method(cls, method, small_synthetic):
    model = _fit(cls, small_synthetic, power=2.0)
    user = _user_with_history(small_synthetic, 6, 10)
    exp = explain(model, small_synthetic, user, _top_item(model, user), method=method, n_random=2)
    assert exp.method == method
    assert exp.efficient, (exp.efficiency_gap, exp.tolerance)
    # base value is the model's output for an empty history
    empty = sp.csr_matrix((1, small_synthetic.n_items), dtype=np.float32)
    if cls is not SideCooc:
        seqs = Sequences(np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.int32))
        base = float(model.score_history(empty, seqs)[0, exp.item])
        assert exp.base_value == pytest.approx(base, abs=1e-6)


def test_side_features_are_players(small_synthetic):
    model = _fit(SideCooc, small_synthetic)
    user = _user_with_history(small_synthetic, 4, 8)
    exp = explain(model, small_synthetic, user, _top_item(model, user))
    kinds = [f.kind for f in exp.features]
    assert kinds[-2:] == ["user", "item"]
    # the segment adds a constant 0.3 whatever else is present: its Shapley value is 0.3
    assert exp.attributions[-2] == pytest.approx(0.3, rel=1e-4)


def test_exact_and_permutation_agree_on_small_case(small_synthetic):
    model = _fit(Cooc, small_synthetic, power=2.0)  # non-additive: permutation is an estimate
    user = _user_with_history(small_synthetic, 6, 8)
    item = _top_item(model, user)
    exact = explain(model, small_synthetic, user, item, method="exact", n_random=0)
    perm = explain(
        model, small_synthetic, user, item, method="permutation", nsamples=2000, n_random=0
    )
    scale = np.abs(exact.attributions).max()
    assert np.abs(exact.attributions - perm.attributions).max() < 0.05 * scale
    # additive model: a single antithetic permutation is already exact
    linear = _fit(Cooc, small_synthetic)
    a = explain(linear, small_synthetic, user, item, method="exact", n_random=0)
    b = explain(linear, small_synthetic, user, item, method="permutation", nsamples=1, n_random=0)
    np.testing.assert_allclose(a.attributions, b.attributions, atol=1e-5)


def test_long_history_groups_older_items_by_category(synthetic):
    model = _fit(Cooc, synthetic)
    user = int(np.argmax(synthetic.user_activity))
    history = user_history(synthetic, user)
    assert len(history) > 12
    exp = explain(model, synthetic, user, _top_item(model, user), max_features=8, n_random=2)
    assert len(exp.features) == 8
    groups = [f for f in exp.features if f.kind == "group"]
    singles = [f for f in exp.features if f.kind == "history"]
    # the least recent items, in groups that name a category, each item in exactly one group
    assert 2 <= len(groups) <= 5 and exp.features[: len(groups)] == groups
    assert len(singles) == 8 - len(groups)  # groups the categories do not fill go to items
    older = history[: len(history) - len(singles)]
    assert sorted(i for g in groups for i in g.items) == sorted(older.tolist())
    cats = synthetic.item_categories()
    for g in groups:
        if "other older item" not in g.name:
            genre = g.name.split()[2]  # "N older Genre3 items"
            assert g.name == f"{len(g.items)} older {genre} item" + "s" * (len(g.items) > 1)
            assert all(genre in cats[i] for i in g.items)
    assert [f.items[0] for f in singles] == history[-len(singles) :].tolist()
    # efficiency holds exactly with the groups as players
    assert exp.method == "exact" and exp.efficient
    assert exp.base_value + exp.attributions.sum() == pytest.approx(exp.output, abs=1e-4)
    assert any("least recent" in note and "groups" in note for note in exp.notes)
    assert "older items (" not in exp.sentence()


def test_long_history_without_categories_groups_by_time_period(synthetic):
    bare = Interactions(
        user_ids=synthetic.user_ids,
        item_ids=synthetic.item_ids,
        users=synthetic.users,
        items=synthetic.items,
        values=synthetic.values,
        timestamps=synthetic.timestamps,
    )
    model = _fit(Cooc, bare)
    user = int(np.argmax(bare.user_activity))
    history = user_history(bare, user)
    exp = explain(model, bare, user, _top_item(model, user), max_features=8, n_random=0)
    groups = [f for f in exp.features if f.kind == "group"]
    assert len(groups) == 5
    # consecutive periods, oldest first, named by their month range
    assert [i for g in groups for i in g.items] == history[: len(history) - 3].tolist()
    named = [re.fullmatch(r"\d+ items? from ([\d: -]+?)( to [\d: -]+)?", g.name) for g in groups]
    assert all(named) and len({m.group(1) for m in named}) > 1  # periods told apart
    assert exp.efficient


def test_sequence_model_keeps_time_order(small_synthetic):
    model = _fit(RecencyCooc, small_synthetic)
    user = _user_with_history(small_synthetic, 7, 12)
    exp = explain(model, small_synthetic, user, _top_item(model, user))
    assert exp.efficient
    # the recency model ignores all but the latest 5 items: older ones get (almost) nothing
    # once the five newest are present, but they do matter when newer ones are removed
    assert exp.attention is not None
    assert np.isnan(exp.attention[: len(exp.history) - 5]).all()
    assert exp.attention_spearman is not None and -1.0 <= exp.attention_spearman <= 1.0


# ----- faithfulness ----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["test_cooc", *PLANTED_MODELS])
def test_attribution_order_deletion_beats_random(key, synthetic):
    model = _fit(Cooc, synthetic) if key == "test_cooc" else _short(MODELS[key]).fit(synthetic)
    user = _user_with_history(synthetic, 15, 30)
    exp = explain(model, synthetic, user, _top_item(model, user), n_random=10)
    f = exp.faithfulness
    assert f.auc_attribution < f.auc_random
    assert f.faithfulness == pytest.approx(f.auc_random - f.auc_attribution)
    assert f.scores[0] == pytest.approx(exp.score, rel=1e-6)
    assert f.scores[-1] == pytest.approx(f.random_scores[-1])  # both end at the empty history
    assert f.ranks[0] == exp.rank
    assert (np.diff(f.ranks) >= 0).mean() > 0.5  # removing supporting items pushes it down


# ----- rank target, counterfactual, text --------------------------------------------------------
def test_rank_target_explains_margin_over_kth(small_synthetic):
    model = _fit(Cooc, small_synthetic)
    user = _user_with_history(small_synthetic, 4, 10)
    items, scores = model.recommend(np.array([user]), k=6)
    exp = explain(model, small_synthetic, user, int(items[0, 0]), target="rank", k=5)
    # the k-th best among the *other* items is the 6th overall when the item is first
    assert exp.output == pytest.approx(float(scores[0, 0] - scores[0, 5]), abs=1e-5)
    assert exp.output > 0 and exp.rank == 1
    assert exp.efficient
    assert exp.sentence().startswith("In your top 5 because you watched")
    # an item outside the top 5 gets a negative margin and says so
    outside = explain(model, small_synthetic, user, int(items[0, 5]), target="rank", k=5)
    assert outside.output <= 0 and outside.rank == 6 and outside.efficient
    assert outside.sentence().startswith("Not in your top 5 (margin ")


def test_counterfactual_removing_the_cause_drops_the_item():
    data, target, cause, probe = planted()
    model = Cooc(device="cpu").fit(data)
    before = model.recommend(np.array([probe]), k=3)[0][0]
    assert before[0] == target
    cf = counterfactual(model, data, probe, [cause], k=3)
    np.testing.assert_array_equal(cf.before_items, before)
    assert list(cf.table.columns[:5]) == ["item", "title", "score", "new_rank", "old_rank"]
    assert (cf.table["change"] == cf.table["old_rank"] - cf.table["new_rank"]).all()
    assert not set(cf.after_items) & set(user_history(data, probe).tolist())

    # removing the planted cause lowers the target's score more than removing any other item
    def target_score(removed: int) -> float:
        full = counterfactual(model, data, probe, [removed], k=data.n_items)
        return float(full.after_scores[list(full.after_items).index(target)])

    drops = {int(h): target_score(int(h)) for h in user_history(data, probe)}
    assert min(drops, key=drops.get) == cause


def test_sentence_names_titles_and_signs(small_synthetic):
    model = _fit(Cooc, small_synthetic)
    user = _user_with_history(small_synthetic, 4, 10)
    exp = explain(model, small_synthetic, user, _top_item(model, user))
    text = exp.sentence()
    best = exp.features[int(np.argmax(exp.attributions))].name
    assert text.startswith("Recommended because you watched ")
    assert best in text and best.startswith("Item ")
    frame = exp.frame()
    assert frame["attribution"].abs().is_monotonic_decreasing


# ----- bad input -------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(small_synthetic):
    data = small_synthetic
    model = _fit(Cooc, data)
    user = _user_with_history(data, 4, 10)
    seen = int(user_history(data, user)[0])
    with pytest.raises(NotFoundError, match="unknown user index"):
        explain(model, data, data.n_users + 5, 0)
    with pytest.raises(NotFoundError, match="unknown item index"):
        explain(model, data, user, -1)
    with pytest.raises(DataError, match="already in this user's history"):
        explain(model, data, user, seen)
    with pytest.raises(ConfigError, match="target"):
        explain(model, data, user, _top_item(model, user), target="why")
    with pytest.raises(DataError, match="not in the user's history"):
        counterfactual(model, data, user, [_top_item(model, user)])
    # a user whose history is empty in the data given (e.g. all held out)
    emptied = data.select(data.users != user)
    with pytest.raises(DataError, match="no history"):
        explain(model, emptied, user, 0)


def test_progress_and_cancellation(small_synthetic):
    model = _fit(Cooc, small_synthetic)
    user = _user_with_history(small_synthetic, 4, 10)
    item = _top_item(model, user)
    seen: list[dict] = []
    explain(model, small_synthetic, user, item, progress=lambda s, m: seen.append(m))
    assert seen and seen[-1]["evals"] <= seen[-1]["evals_total"]

    def stop(step: int, metrics: dict) -> None:
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        explain(model, small_synthetic, user, item, progress=stop)


# ----- runs: explain_run, the background task, the CLI ------------------------------------------
def make_finished_run(
    ws, model: str = "itemknn", config: dict | None = None, title: str | None = None
) -> tuple[str, str]:
    """A synthetic dataset and one finished run of ``model`` (``config``) on it, in-process;
    ``title`` (with ``{}`` for the item id) renames every item.

    Returns (finished run id, a second run id left queued).
    """
    import time

    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames
    from recsys_core.jobs import api, store
    from recsys_core.jobs.runner import execute_run
    from recsys_core.jobs.spec import DONE, RUNNING

    inter, items, users = make_frames(SyntheticConfig(n_users=80, n_items=60, mean_history=12))
    if title is not None:
        items = items.assign(title=[title.format(i) for i in items["item"]])
    info = import_frames(ws, inter, name="synth", source="synthetic", items=items, users=users)
    spec = {"dataset": info.id, "model": model, "split": {"protocol": "leave_last"}}
    spec["config"] = config or {}
    run_id = api.submit(ws, spec)
    queued = api.submit(ws, spec)
    store.update_run(ws, run_id, status=RUNNING, started_at=time.time())
    execute_run(ws, run_id, lambda step, metrics: None, lambda: False)
    store.update_run(ws, run_id, status=DONE, finished_at=time.time(), progress=1.0)
    return run_id, queued


@pytest.fixture()
def finished(workspace):
    run_id, queued = make_finished_run(workspace)
    return workspace, run_id, queued


def _explainable_pair(ws, run_id):
    from recsys_core.explain import finished_run, history_source, top_k

    art = finished_run(ws, run_id)
    split = art.split()
    user = int(split.test_users[0])
    data = history_source(split, user)
    recs = top_k(art.model(device="cpu"), data, user, k=5)
    return art, split, data, user, recs


def test_explain_run_task_and_page_helpers(finished):
    from recsys_core.explain import (
        explain_run,
        explain_task,
        explanation_path,
        held_out_frame,
        history_frame,
        segment_users,
    )

    ws, run_id, queued = finished
    art, split, data, user, recs = _explainable_pair(ws, run_id)
    user_id, item_id = str(data.user_ids[user]), recs["item"].iloc[0]
    exp = explain_run(ws, run_id, user_id, item_id, device="cpu", n_random=3)
    assert exp.model == "itemknn" and exp.efficient and exp.rank == 1
    assert exp.user_id == user_id and exp.item_id == item_id

    fractions: list[float] = []
    result = explain_task(
        ws,
        {"run": run_id, "user": user_id, "item": item_id, "target": "rank", "k": 5},
        lambda fraction, message="": fractions.append(fraction),
    )
    path = explanation_path(ws, run_id, user_id, item_id, "rank", 5)
    assert result["path"] == str(path) and path.parent.name == "explain"
    stored = json.loads(path.read_text())
    assert stored["target"] == "rank" and stored["efficient"] and stored["sentence"]
    assert fractions and 0 < fractions[-1] <= 1.0

    hist = history_frame(data, user)
    assert len(hist) == len(user_history(data, user))
    assert list(hist.columns) == ["item", "title", "categories", "time"]
    assert hist["time"].is_monotonic_increasing
    held = held_out_frame(split, user, recs["item_index"].to_numpy())
    assert len(held) >= 1 and set(held["result"]) <= {"hit", "miss"}
    cold, heavy = segment_users(data, "cold"), segment_users(data, "heavy")
    assert data.user_activity[cold].max() <= data.user_activity[heavy].min()
    with pytest.raises(ConfigError, match="segment"):
        segment_users(data, "vip")


def test_explain_run_bad_inputs(finished):
    from recsys_core.explain import explain_run

    ws, run_id, queued = finished
    art, split, data, user, recs = _explainable_pair(ws, run_id)
    user_id = str(data.user_ids[user])
    with pytest.raises(NotFoundError, match="is queued"):
        explain_run(ws, queued, user_id, recs["item"].iloc[0])
    with pytest.raises(NotFoundError, match="unknown user id"):
        explain_run(ws, run_id, "nobody", recs["item"].iloc[0])
    with pytest.raises(NotFoundError, match="unknown item id"):
        explain_run(ws, run_id, user_id, "no-such-item")
    seen = str(data.item_ids[user_history(data, user)[0]])
    with pytest.raises(DataError, match="already in this user's history"):
        explain_run(ws, run_id, user_id, seen)


def test_cli_explain(finished, capsys):
    from recsys_core.cli.main import main

    ws, run_id, queued = finished
    art, split, data, user, recs = _explainable_pair(ws, run_id)
    args = ["--workspace", str(ws.root), "explain", run_id]
    args += ["--user", str(data.user_ids[user]), "--item", recs["item"].iloc[0]]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "efficiency:" in out and "holds" in out and "faithfulness:" in out
    assert "Recommended because" in out
    assert main([*args, "--json", "--target", "rank"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["target"] == "rank" and payload["efficient"]
    assert (
        main(["--workspace", str(ws.root), "explain", queued, "--user", "u1", "--item", "i1"]) == 2
    )
    assert "is queued" in capsys.readouterr().err


# ----- figures ---------------------------------------------------------------------------------
def test_figures_follow_the_explanation(synthetic):
    from recsys_core.viz.explain import attention_heatmap, deletion_curve, waterfall

    model = _fit(RecencyCooc, synthetic)
    user = _user_with_history(synthetic, 20, 40)
    exp = explain(model, synthetic, user, _top_item(model, user), n_random=4).to_dict()
    fig = waterfall(exp, max_rows=5)
    bars = fig.data[0]
    assert list(bars.measure) == ["absolute"] + ["relative"] * 6 + ["total"]
    assert bars.y[6] == f"{len(exp['features']) - 5} other features"
    # the relative bars add up from the base value to the output (efficiency, drawn)
    assert bars.x[0] + sum(bars.x[1:7]) == pytest.approx(exp["output"], abs=1e-4)
    curve = deletion_curve(exp)
    assert len(curve.data) == 2 and len(curve.data[0].y) == len(exp["features"]) + 1
    heat = attention_heatmap(exp)
    # one row per shown history item (at most 15), a column each for attention and attribution
    assert heat is not None and heat.data[0].z.shape == (min(15, len(exp["history"])), 2)
    assert "attention (not attribution)" in heat.data[0].x
    plain = explain(_fit(Cooc, synthetic), synthetic, user, exp["item"], n_random=0).to_dict()
    assert attention_heatmap(plain) is None


@pytest.mark.skipif("sasrec" not in MODELS, reason="SASRec is not registered")
def test_sasrec_attention_is_reported_beside_attribution(small_synthetic):
    model = _short(MODELS["sasrec"]).fit(small_synthetic)
    user = _user_with_history(small_synthetic, 5, 6)
    exp = explain(model, small_synthetic, user, _top_item(model, user), n_random=2)
    assert exp.efficient
    assert exp.attention is not None and exp.attention.shape == (len(exp.history),)
    assert np.isfinite(exp.attention).all() and exp.attention.min() >= 0
    # the rank correlation is reported whenever there are at least two history items to rank
    assert len(exp.history) >= 2 and exp.attention_spearman is not None
    assert np.isfinite(exp.attention_spearman)
