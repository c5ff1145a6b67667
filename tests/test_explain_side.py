"""Side features as SHAP players: user attributes and item side features of the two-tower and
content models (recsys_core.explain's optional hooks), from the engine to the CLI and figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_explain import _explainable_pair, _top_item, _user_with_history, make_finished_run
from test_models_side import FAST_TT, categories_only_data

from recsys_core.data.interactions import Interactions
from recsys_core.explain import counterfactual, explain, top_k, user_history
from recsys_core.models import get_model
from recsys_core.models.base import Recommender
from recsys_core.models.content import ContentBased, ContentConfig
from recsys_core.models.twotower import TwoTower, TwoTowerConfig

SHORT_TT = TwoTowerConfig(epochs=3, batch_size=256, dim=16, hidden=32)
TINY_TT_RUN = {"epochs": 2, "batch_size": 256, "dim": 16, "hidden": 32}


@pytest.fixture(scope="module")
def tower(small_synthetic):
    return TwoTower(SHORT_TT, device="cpu").fit(small_synthetic)


@pytest.fixture(scope="module")
def content(small_synthetic):
    return ContentBased(device="cpu").fit(small_synthetic)


def _kinds(exp) -> list[str]:
    return [f.kind for f in exp.features]


def _attribution(exp, name: str) -> float:
    return float(exp.attributions[[f.name for f in exp.features].index(name)])


# ----- the hooks --------------------------------------------------------------------------------
def test_two_tower_names_the_users_attributes_and_the_items_features(tower, small_synthetic):
    data = small_synthetic
    user = _user_with_history(data, 5, 6)
    item = _top_item(tower, user)
    side = tower.explain_side_features(user, item)
    names = [n for n, _ in side]
    # user attributes first, by raw value; then one player per category of the item and block
    assert [k for _, k in side] == ["user"] * 2 + ["item"] * (len(side) - 2)
    assert set(names[:2]) == {
        f"user: segment={data.user_table['segment'].iloc[user]}",
        f"user: age={data.user_table['age'].iloc[user]}",
    }
    cats = {f"item category: {c}" for c in data.item_categories()[item]}
    assert set(names[2:]) == cats | {"item text", "item numeric features"}


def test_two_tower_masking_moves_only_the_explained_item(tower, small_synthetic):
    user = _user_with_history(small_synthetic, 5, 6)
    item = _top_item(tower, user)
    n_side = len(tower.explain_side_features(user, item))
    hist = tower.history_[[user] * 4]
    masks = np.ones((4, n_side), dtype=bool)
    masks[1, 2:] = False  # every item feature removed
    masks[2, :2] = False  # every user attribute removed
    masks[3, :] = False
    scores = tower.score_history_masked(hist, None, user=user, item=item, side_mask=masks).numpy()
    real = tower.score_users(np.array([user])).numpy()[0]
    bare = tower.score_history(hist[:1]).numpy()[0]  # no attributes
    others = np.arange(tower.n_items_) != item
    np.testing.assert_allclose(scores[0], real, atol=1e-5)  # all present = the real scores
    np.testing.assert_allclose(scores[1, others], real[others], atol=1e-5)
    np.testing.assert_allclose(scores[2, others], bare[others], atol=1e-5)
    assert abs(scores[1, item] - real[item]) > 1e-4  # the item's features matter to it
    with pytest.raises(Exception, match="side_mask has shape"):
        tower.score_history_masked(hist, None, user=user, item=item, side_mask=masks[:, :1])


def test_content_masks_the_item_vector_and_keeps_the_prior(content, small_synthetic):
    user = _user_with_history(small_synthetic, 5, 6)
    item = _top_item(content, user)
    side = content.explain_side_features(user, item)
    assert {k for _, k in side} == {"item"} and "item text" in [n for n, _ in side]
    hist = content.history_[[user] * 2]
    masks = np.array([[True] * len(side), [False] * len(side)])
    scores = content.score_history_masked(hist, None, user=user, item=item, side_mask=masks)
    real = content.score_history(hist[:1])[0]
    torch.testing.assert_close(scores[0], real, atol=1e-6, rtol=1e-5)
    others = torch.arange(content.n_items_) != item
    torch.testing.assert_close(scores[1, others], real[others])
    assert float(scores[1, item]) == 0.0  # no feature left: a zero item vector


def test_side_features_survive_save_and_load(tower, content, small_synthetic, tmp_path):
    user = _user_with_history(small_synthetic, 5, 6)
    for model in (tower, content):
        item = _top_item(model, user)
        loaded = Recommender.load(model.save(tmp_path / model.name), device="cpu")
        side = model.explain_side_features(user, item)
        assert loaded.explain_side_features(user, item) == side
        masks = np.random.default_rng(0).random((6, len(side))) < 0.5
        hist = model.history_[[user] * 6]
        kwargs = {"user": user, "item": item, "side_mask": masks}
        torch.testing.assert_close(
            loaded.score_history_masked(hist, None, **kwargs),
            model.score_history_masked(hist, None, **kwargs),
        )


# ----- (a) efficiency with side features ----------------------------------------------------------
@pytest.mark.parametrize("which", ["tower", "content"])
@pytest.mark.parametrize("target", ["score", "rank"])
def test_efficiency_with_side_features(which, target, request, small_synthetic):
    model = request.getfixturevalue(which)
    user = _user_with_history(small_synthetic, 5, 6)
    item = _top_item(model, user)
    exp = explain(model, small_synthetic, user, item, target=target, k=5, n_random=2)
    assert exp.method == "exact" and exp.efficient, (exp.efficiency_gap, exp.tolerance)
    assert exp.base_value + exp.attributions.sum() == pytest.approx(exp.output, abs=exp.tolerance)
    side_kinds = {k for k in _kinds(exp) if k in ("user", "item")}
    assert side_kinds == ({"user", "item"} if which == "tower" else {"item"})
    assert any("side features" in note for note in exp.notes)
    # the explained score is the model's real one, the one the page's top-k list shows
    recs = top_k(model, small_synthetic, user, k=1)
    assert recs["item_index"].iloc[0] == item and exp.rank == 1
    assert exp.score == pytest.approx(float(recs["score"].iloc[0]), abs=1e-5)
    if which == "content":  # nothing present: empty profile, zero item vector
        assert exp.base_value == pytest.approx(0.0, abs=1e-7) or target == "rank"
    json.dumps(exp.to_dict())


def test_counterfactual_ranks_with_the_users_attributes(tower, small_synthetic):
    user = _user_with_history(small_synthetic, 5, 6)
    history = user_history(small_synthetic, user)
    cf = counterfactual(tower, small_synthetic, user, history[:1], k=5)
    real = tower.score_users(np.array([user])).numpy()[0]
    real[history] = -np.inf
    assert list(cf.before_items) == list(np.argsort(-real, kind="stable")[:5])


# ----- (b), (c) planted side features -------------------------------------------------------------
def test_two_tower_category_of_a_cold_item_explains_its_score():
    """Taste is a genre carried only by categories; a cold item of the user's genre is scored
    from its category alone, which must be the largest attribution (and the wrong genre's
    category must pull a wrong-genre item down)."""
    data, cold, user_genre = categories_only_data()
    train = data.select(~cold)
    tower = TwoTower(FAST_TT, device="cpu").fit(train)
    genre = np.array([int(c[1:]) for c in train.item_table["categories"]])
    cold_items = np.flatnonzero(train.item_popularity == 0)
    user = 0
    g = int(user_genre[user])
    scores = tower.score_users(np.array([user])).numpy()[0]
    mine = cold_items[genre[cold_items] == g]
    other = cold_items[genre[cold_items] != g]
    best, worst = int(mine[np.argmax(scores[mine])]), int(other[np.argmin(scores[other])])
    exp = explain(tower, train, user, best, n_random=2)
    assert exp.efficient
    top = exp.features[int(np.argmax(exp.attributions))]
    assert (top.name, top.kind) == (f"item category: G{g}", "item")
    history = exp.attributions[np.array(_kinds(exp)) == "history"]
    assert _attribution(exp, f"item category: G{g}") > 2 * history.max()
    assert exp.sentence().startswith(f"Recommended because of its category G{g} (+")
    away = explain(tower, train, user, worst, n_random=0)
    assert _attribution(away, f"item category: G{genre[worst]}") < 0


def attribute_data(seed: int = 0) -> tuple[Interactions, int]:
    """Taste is the user's segment, which no history shows.

    Items 0-9 are liked by segment A, 10-19 by segment B; items 20-24 everyone has. Each of 300
    users has the five shared items and one item of their segment, so the history left when a
    liked item is the target says nothing: only the segment predicts it. ``age`` is noise. The
    probe user (segment A) has the shared items only. Returns (data, probe user).
    """
    rng = np.random.default_rng(seed)
    n_users = 300
    segment = np.where(np.arange(n_users + 1) % 2 == 0, "A", "B")
    rows = [(f"u{u}", f"i{i}") for u in range(n_users + 1) for i in range(20, 25)]
    liked = rng.integers(0, 10, n_users) + np.where(segment[:n_users] == "A", 0, 10)
    rows += [(f"u{u}", f"i{i}") for u, i in enumerate(liked)]
    users = pd.DataFrame(
        {"segment": segment, "age": rng.integers(18, 70, n_users + 1)},
        index=pd.Index([f"u{u}" for u in range(n_users + 1)], name="user"),
    )
    frame = pd.DataFrame(rows, columns=["user", "item"]).assign(value=1.0)
    data = Interactions.from_frame(frame, user_table=users)
    return data, data.user_index(f"u{n_users}")


def test_two_tower_planted_user_attribute_gets_the_attribution():
    """The segment pushes up every item of the user's segment and down every other one; the
    noise attribute (age) moves nothing much."""
    data, probe = attribute_data()
    cfg = TwoTowerConfig(epochs=30, batch_size=64, dim=32, hidden=64)
    tower = TwoTower(cfg, device="cpu").fit(data)
    segment, age = {}, {}
    for side, items in (("A", range(10)), ("B", range(10, 20))):
        exps = [explain(tower, data, probe, data.item_index(f"i{i}"), n_random=0) for i in items]
        assert all(e.efficient for e in exps)
        segment[side] = np.array([_attribution(e, "user: segment=A") for e in exps])
        age[side] = np.array([e.attributions[-1] for e in exps])
        assert all(e.features[-1].name.startswith("user: age=") for e in exps)
    assert segment["A"].min() > 0 > segment["B"].mean()
    gap = segment["A"].mean() - segment["B"].mean()
    assert gap > 0.04 and abs(age["A"].mean() - age["B"].mean()) < gap / 4


# ----- (d) models without side features -----------------------------------------------------------
def test_models_without_side_features_report_none(small_synthetic):
    user = _user_with_history(small_synthetic, 5, 6)
    bare_tower = TwoTower(
        TwoTowerConfig(
            epochs=1, batch_size=256, dim=8, hidden=16, use_item_features=False,
            use_user_features=False,
        ),
        device="cpu",
    ).fit(small_synthetic)  # fmt: skip
    only_text = ContentBased(ContentConfig(w_categories=0, w_numeric=0), device="cpu").fit(
        small_synthetic
    )
    for model in (get_model("itemknn")(device="cpu").fit(small_synthetic), bare_tower):
        exp = explain(model, small_synthetic, user, _top_item(model, user), n_random=0)
        assert set(_kinds(exp)) <= {"history", "group"} and exp.efficient
        assert not any("side features" in note for note in exp.notes)
    exp = explain(only_text, small_synthetic, user, _top_item(only_text, user), n_random=0)
    assert [f.name for f in exp.features if f.kind != "history"] == ["item text"]


# ----- (e) the CLI's JSON, the figures -----------------------------------------------------------
def test_cli_json_and_waterfall_carry_side_features(workspace, capsys):
    from recsys_core.cli.main import main
    from recsys_core.viz.explain import SIDE, waterfall

    run_id, _ = make_finished_run(workspace, "twotower", TINY_TT_RUN)
    art, split, data, user, recs = _explainable_pair(workspace, run_id)
    args = ["--workspace", str(workspace.root), "explain", run_id, "--json"]
    args += ["--user", str(data.user_ids[user]), "--item", recs["item"].iloc[0]]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    side = [f for f in payload["features"] if f["kind"] in ("user", "item")]
    assert {f["kind"] for f in side} == {"user", "item"} and payload["efficient"]
    assert all(f["items"] == [] and f["name"].startswith(f["kind"]) for f in side)
    assert payload["rank"] == 1  # the CLI ranks as the page's top-k list does
    assert main(args[:-5] + args[-4:]) == 0  # the same without --json: a table with kinds
    text = capsys.readouterr().out
    assert " user " in text and "side features at their neutral value" in text

    fig = waterfall(payload, max_rows=50)
    ticks = list(fig.layout.yaxis.ticktext)
    assert ticks[0].startswith("base (empty history, side features neutral)")
    coloured = [t for t in ticks if t.startswith(f'<span style="color:{SIDE}">')]
    assert len(coloured) == len(side)


def test_explain_page_shows_side_features(app_workspace):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    run_id, _ = make_finished_run(app_workspace, "twotower", TINY_TT_RUN)
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=120).run()
    at.switch_page("pages/explain.py")
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.selectbox(key="explain.run").value == run_id
    assert {m.label: m.value for m in at.metric}["Efficiency"] == "holds"
    side = next(df.value for df in at.dataframe if "kind" in df.value.columns)
    assert set(side["kind"]) == {"user", "item"} and len(side) >= 3
    assert any("Side features" in m.value for m in at.markdown)
