"""Demo mode's core (recsys_core.presentation): cards add up, users by segment, honest sentences,
and nothing trains or is queued."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.cli.main import main
from recsys_core.explain import explanation_path, finished_run, history_source, user_history
from recsys_core.jobs import api
from recsys_core.presentation import (
    CARD_K,
    CARD_TARGET,
    comparison_sentence,
    demo_users,
    fast_path,
    precompute_cards,
    reason_text,
    why_card,
)


@pytest.fixture(scope="module")
def itemknn(finished_runs):
    ws, _, runs = finished_runs
    art = finished_run(ws, runs["itemknn"])
    return ws, runs["itemknn"], art.split(), art.model()


def _counts(ws) -> tuple[int, int]:
    return len(api.list_runs(ws)), len(api.list_tasks(ws))


def test_cards_add_up_name_three_reasons_and_never_train(itemknn, tmp_path):
    ws, run_id, split, model = itemknn
    before, cache = _counts(ws), ws.runs_dir / run_id / "explain"
    cached = sorted(cache.glob("*.json")) if cache.exists() else []
    user = int(demo_users(split, "heavy", n=1)[0])
    card = why_card(ws, run_id, split, model, user, segment="heavy", n_recs=2)
    assert _counts(ws) == before  # no run queued, no task started
    assert len(card.recommendations) == 2 and card.adds_up
    data = history_source(split, user)
    history = user_history(data, user)
    titles = data.item_titles()
    assert card.recent_history[0] == titles[history[-1]]  # the most recent first
    for rec in card.recommendations:
        assert rec.explained and 1 <= len(rec.reasons) <= 3
        assert rec.base_value + rec.contributions == pytest.approx(rec.score, rel=1e-4, abs=1e-6)
        assert rec.check.startswith("Adds up") and f"{rec.score:.4g}" in rec.check
        # The reasons are history items of this user, strongest first.
        named = [r.split("“", 1)[1].split("”", 1)[0] for r in rec.reasons]
        assert set(named) <= set(titles[history])
        amounts = [float(r.rsplit("adds ", 1)[1].split(" ", 1)[0].replace("+", "")) for r in
                   rec.reasons]  # fmt: skip
        assert amounts == sorted(amounts, reverse=True)
    # A card is read-only: it wrote nothing into the run's explanation cache.
    assert (sorted(cache.glob("*.json")) if cache.exists() else []) == cached


def test_precomputed_cards_are_read_back_without_computing(itemknn):
    ws, run_id, split, model = itemknn
    cards = precompute_cards(ws, run_id, segments=("cold",), per_segment=1, n_recs=2)
    (card,) = cards
    user = int(demo_users(split, "cold", n=1)[0])
    for rec in card.recommendations:
        assert explanation_path(ws, run_id, card.user_id, rec.item_id, CARD_TARGET, CARD_K).exists()
    again = why_card(ws, run_id, split, model, user, segment="cold", n_recs=2, compute="none")
    assert again.recommendations == card.recommendations
    # Nothing cached for another user and computing forbidden: the card says how to fix it.
    other = int(demo_users(split, "heavy", n=1)[0])
    bare = why_card(ws, run_id, split, model, other, segment="heavy", n_recs=1, compute="none")
    assert not bare.recommendations[0].explained
    assert f"demo-cards {run_id}" in bare.recommendations[0].check


def test_cli_demo_cards_and_cards_report(finished_runs, tmp_path, capsys):
    ws, _, runs = finished_runs
    code = main(["--workspace", str(ws.root), "demo-cards", runs["itemknn"], "--per-segment",
                 "1", "--recs", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and out.count("adds up") == 3 and "CHECK FAILED" not in out
    page = tmp_path / "cards.html"
    code = main(["--workspace", str(ws.root), "report", "--cards", runs["itemknn"], "--out",
                 str(page), "--recs", "1"])  # fmt: skip
    assert code == 0
    assert page.read_text().count('<div class="card">') == 3  # typical, cold, heavy


def test_demo_users_by_segment(finished_runs):
    ws, _, runs = finished_runs
    split = finished_run(ws, runs["itemknn"]).split()
    activity = split.train.user_activity
    cold, typical, heavy = (demo_users(split, s, n=50) for s in ("cold", "typical", "heavy"))
    assert len(cold) and len(typical) and len(heavy)
    assert activity[cold].max() <= activity[typical].min()
    assert activity[typical].max() <= activity[heavy].min()
    assert set(demo_users(split, "random", n=500).tolist()) <= set(split.test_users.tolist())
    assert not np.array_equal(demo_users(split, "random", n=20, seed=1),
                              demo_users(split, "random", n=20, seed=2))  # fmt: skip
    with pytest.raises(Exception, match="not known"):
        demo_users(split, "vip")


def _table(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"run": n, "label": n, "model": n, "ndcg@10": m, "ndcg@10 lo": lo, "ndcg@10 hi": hi}
         for n, m, lo, hi in rows]
    )  # fmt: skip


def test_comparison_sentence_says_the_uncertainty_plainly():
    apart = comparison_sentence(_table([("a", 0.2, 0.18, 0.22), ("b", 0.4, 0.37, 0.43)]), "ndcg@10")
    assert apart.startswith("On ndcg@10, b does best: 0.400 (95% CI 0.370–0.430)")
    assert "do not overlap" in apart
    close = comparison_sentence(_table([("a", 0.30, 0.25, 0.35), ("b", 0.32, 0.27, 0.37)]),
                                "ndcg@10")  # fmt: skip
    assert "overlap: with this test set the difference could be chance" in close
    alone = comparison_sentence(_table([("a", 0.3, 0.2, 0.4)]), "ndcg@10")
    assert "only finished run" in alone


def test_reason_text_and_fast_path(itemknn):
    _, _, _, model = itemknn
    assert reason_text({"name": "Heat", "kind": "history", "attribution": 0.25}) == (
        "You watched “Heat” (adds +0.25 to the score)"
    )
    assert reason_text({"name": "user: age=30", "kind": "user", "attribution": -0.1}) == (
        "Your age is 30 (takes \u22120.1 to the score)"
    )
    assert fast_path(model, 10_000)  # a non-deep model is always fast

    class Deep:
        family = "deep"

    assert fast_path(Deep(), 30) and not fast_path(Deep(), 31)
