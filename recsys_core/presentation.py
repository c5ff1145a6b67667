"""The core of demo mode: the data at a glance, one honest comparison, "why this item" cards.

Demo mode shows stakeholders finished work; it never trains and never writes to the catalog.
Everything here reads stored runs: their metrics, their saved models and cached explanations.

"Why this item" cards: for one user, their most recent history, their top recommendations
under a finished run, and for each recommendation the (up to) three history items or features
that contributed most, in plain words, with the explanation engine's own efficiency check
(base value + the sum of all contributions = the model's score).

Where the explanations come from (decided once, here):

- a cached explanation (``<run>/explain/<user>__<item>__score_k10.json``, written by
  :func:`precompute_cards` — ``python -m recsys_core demo-cards RUN`` — or by the Explain page's
  background task) is always used first;
- otherwise it is computed on the spot only on the *fast path*, the same rule as the Explain
  page: any non-deep model, or a deep model with at most :data:`FAST_HISTORY` history items
  (milliseconds to a second once shap is warm). A deep model with a longer history and no cached
  explanation gets a card that says so and names the command that precomputes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_core.errors import ConfigError
from recsys_core.explain import (
    explain,
    explanation_path,
    finished_run,
    history_source,
    top_k,
    user_history,
)

if TYPE_CHECKING:
    from recsys_core.models.base import Recommender
    from recsys_core.split import Split
    from recsys_core.workspace import Workspace

#: User segments a demo picks from: by training activity, or any at random.
DEMO_SEGMENTS = ("typical", "cold", "heavy", "random")
#: Deep models explain histories up to this long on the spot (the Explain page's rule).
FAST_HISTORY = 30
#: The explanation a card reads: the raw score, ranks cut at 10 (the Explain page's default).
CARD_TARGET, CARD_K = "score", 10


# ----- the data at a glance ---------------------------------------------------------------------
def data_glance(info: Any) -> dict[str, Any]:
    """Headline numbers of a dataset from its catalog entry (no loading): users, items,
    interactions, density and interactions per user."""
    cells = max(info.n_users * info.n_items, 1)
    return {
        "users": info.n_users,
        "items": info.n_items,
        "interactions": info.n_interactions,
        "density": info.n_interactions / cells,
        "per_user": info.n_interactions / max(info.n_users, 1),
    }


def glance_sentence(info: Any, popularity: np.ndarray) -> str:
    """One plain sentence about the data, e.g. "610 people, 9,724 movies; the most popular
    10% of items receive 58% of all interactions"."""
    pop = np.sort(np.asarray(popularity, dtype=np.float64))[::-1]
    head = max(1, int(round(0.1 * len(pop))))
    share = pop[:head].sum() / max(pop.sum(), 1.0)
    return (
        f"{info.n_users:,} users interacted {info.n_interactions:,} times with {info.n_items:,} "
        f"items; the most popular 10% of items receive {share:.0%} of all interactions, so a "
        "good recommender must do better than suggesting what everybody already knows."
    )


# ----- how the models compare ---------------------------------------------------------------------
def comparison_sentence(table: pd.DataFrame, metric: str) -> str:
    """One sentence naming the best run by ``metric`` and saying plainly whether the runner-up's
    95% confidence interval overlaps it.

    ``table``: :func:`~recsys_core.viz.runs.leaderboard_table` of the runs.
    """
    from recsys_core.viz.runs import LOWER_IS_BETTER, metric_base

    if table.empty or metric not in table.columns:
        raise ConfigError(f"no run has the metric {metric!r}; pick another metric")
    lower = metric_base(metric) in LOWER_IS_BETTER
    ranked = table.sort_values(metric, ascending=lower).reset_index(drop=True)
    best = ranked.iloc[0]

    def ci(row: pd.Series) -> str:
        lo, hi = row.get(f"{metric} lo"), row.get(f"{metric} hi")
        if pd.isna(lo) or pd.isna(hi):
            return f"{row[metric]:.3f}"
        return f"{row[metric]:.3f} (95% CI {lo:.3f}–{hi:.3f})"

    text = f"On {metric}, {best['label']} does best: {ci(best)}"
    if len(ranked) < 2:
        return text + ". It is the only finished run, so there is nothing to compare it with yet."
    second = ranked.iloc[1]
    text += f"; next is {second['label']}: {ci(second)}. "
    bounds = [best.get(f"{metric} lo"), best.get(f"{metric} hi")]
    bounds += [second.get(f"{metric} lo"), second.get(f"{metric} hi")]
    if any(pd.isna(b) for b in bounds):
        return text + "These runs stored no confidence intervals: how sure the gap is is unknown."
    overlap = bounds[0] <= bounds[3] and bounds[2] <= bounds[1]
    if overlap:
        return text + (
            "Their intervals overlap: with this test set the difference could be chance."
        )
    return text + "Their intervals do not overlap: the lead is larger than the test set's noise."


# ----- picking users ------------------------------------------------------------------------------
def demo_users(split: Split, segment: str, *, n: int = 5, seed: int = 0) -> np.ndarray:
    """Up to ``n`` test users (dense indices) with a history, from ``segment``.

    ``"cold"``: at most the 20th percentile of training activity; ``"typical"``: between the
    40th and 60th; ``"heavy"``: at least the 90th; ``"random"``: any test user, shuffled by
    ``seed``. Users are sorted by activity within a segment (most typical first), except random.
    """
    if segment not in DEMO_SEGMENTS:
        raise ConfigError(f"segment {segment!r} is not known; choose one of {DEMO_SEGMENTS}")
    users = np.unique(np.asarray(split.test_users, dtype=np.int64))
    activity = _visible_activity(split, users)
    keep = activity > 0
    users, activity = users[keep], activity[keep]
    if not len(users):
        return users
    if segment == "random":
        return np.random.default_rng(seed).permutation(users)[:n]
    lo, hi = {"cold": (0, 20), "typical": (40, 60), "heavy": (90, 100)}[segment]
    low, high = np.percentile(activity, [lo, hi])
    inside = (activity >= low) & (activity <= high)
    middle = np.median(activity[inside]) if inside.any() else 0.0
    picked = users[inside][np.argsort(np.abs(activity[inside] - middle), kind="stable")]
    return picked[:n]


def _visible_activity(split: Split, users: np.ndarray) -> np.ndarray:
    """History length of each user in the part of the split that holds it (history_source)."""
    train = split.train.user_activity
    activity = np.where(users < len(train), train[np.minimum(users, len(train) - 1)], 0)
    if split.fold_in is not None:
        fold = split.fold_in.user_activity
        inside = users < len(fold)
        folded = np.where(inside, fold[np.minimum(users, len(fold) - 1)], 0)
        activity = np.where(folded > 0, folded, activity)
    return activity.astype(np.int64)


# ----- cards --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CardItem:
    """One recommendation on a card.

    ``reasons``: up to three plain sentences, largest contribution first. ``check``: the
    efficiency check in words; ``adds_up`` whether base + contributions = score held.
    ``explained`` is False when no explanation was cached and none could be made fast.
    """

    rank: int
    item_id: str
    title: str
    score: float
    reasons: tuple[str, ...]
    check: str
    adds_up: bool
    explained: bool
    base_value: float = float("nan")
    contributions: float = float("nan")
    efficiency_gap: float = float("nan")


@dataclass(frozen=True)
class WhyCard:
    """A user's "why this item" card under one run (see the module docstring)."""

    run_id: str
    model: str
    user_id: str
    segment: str
    history_size: int
    recent_history: tuple[str, ...]
    recommendations: tuple[CardItem, ...]

    @property
    def heading(self) -> str:
        return (
            f"User {self.user_id} ({self.segment}, {self.history_size} items in their history) "
            f"· {self.model}"
        )

    @property
    def adds_up(self) -> bool:
        """Every explained recommendation passed the efficiency check."""
        return all(r.adds_up for r in self.recommendations if r.explained)


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "\u2212") + f"{abs(value):.3g}"


def reason_text(feature: dict[str, Any]) -> str:
    """One contribution in plain words, e.g. "You watched “Heat” (adds +0.21 to the score)"."""
    name, kind, value = str(feature["name"]), feature["kind"], float(feature["attribution"])
    effect = f"({'adds' if value >= 0 else 'takes'} {_signed(value)} to the score)"
    if kind == "history":
        return f"You watched “{name}” {effect}"
    if kind == "group":
        return f"Your older history, {name} {effect}"
    if kind == "user":
        attribute, sep, val = name.removeprefix("user: ").partition("=")
        return f"Your {attribute} is {val} {effect}" if sep else f"Your {attribute} {effect}"
    return f"Its own {name.removeprefix('item ').replace(': ', ' ', 1)} {effect}"


def card_item(exp: dict[str, Any], *, rank: int, n_reasons: int = 3) -> CardItem:
    """A :class:`CardItem` from an explanation dict (``Explanation.to_dict()``)."""
    features = sorted(exp["features"], key=lambda f: -float(f["attribution"]))
    top = [f for f in features if float(f["attribution"]) > 0][:n_reasons] or features[:1]
    total = float(sum(float(f["attribution"]) for f in exp["features"]))
    base, output, gap = float(exp["base_value"]), float(exp["output"]), float(exp["efficiency_gap"])
    holds = bool(exp["efficient"])
    check = (
        f"{'Adds up' if holds else 'Does not add up'}: baseline {base:.3g} "
        f"{_signed(total)} from all {len(features)} contributions = {base + total:.4g}; the "
        f"model's score is {output:.4g} (gap {gap:.1g})."
    )
    return CardItem(
        rank=rank, item_id=str(exp["item_id"]), title=str(exp["item_title"]),
        score=float(exp["score"]), reasons=tuple(reason_text(f) for f in top), check=check,
        adds_up=holds, explained=True, base_value=base, contributions=total,
        efficiency_gap=gap,
    )  # fmt: skip


def fast_path(model: Recommender, history_size: int) -> bool:
    """True when an uncached explanation may be computed on the spot (module docstring)."""
    return model.family != "deep" or history_size <= FAST_HISTORY


def why_card(
    ws: Workspace,
    run_id: str,
    split: Split,
    model: Recommender,
    user: int,
    *,
    segment: str = "random",
    n_recs: int = 3,
    n_recent: int = 5,
    compute: str = "fast",
    store: bool = False,
) -> WhyCard:
    """The card of dense user ``user`` under finished run ``run_id`` (never trains).

    Parameters
    ----------
    split, model : the run's split and loaded model (callers cache them).
    n_recs : recommendations on the card; ``n_recent`` most recent history items shown.
    compute : which uncached explanations to compute: ``"fast"`` (the fast path only),
        ``"all"`` (:func:`precompute_cards`) or ``"none"`` (cached ones only).
    store : write computed explanations to the run's cache (:func:`precompute_cards`); the
        demo page never does, it stays read-only.
    """
    data = history_source(split, user)
    history = user_history(data, user)
    titles = data.item_titles()
    recent = tuple(str(titles[i]) for i in history[::-1][:n_recent])
    recs = top_k(model, data, user, k=n_recs)
    user_id = str(data.user_ids[user])
    if compute not in ("fast", "all", "none"):
        raise ConfigError(f"compute={compute!r}: use 'fast', 'all' or 'none'")
    allowed = compute == "all" or (compute == "fast" and fast_path(model, len(history)))
    items = []
    for row in recs.itertuples():
        path = explanation_path(ws, run_id, user_id, row.item, CARD_TARGET, CARD_K)
        exp = json.loads(path.read_text()) if path.exists() else None
        if exp is None and allowed:
            exp = explain(model, data, user, int(row.item_index), target=CARD_TARGET,
                          k=CARD_K).to_dict()  # fmt: skip
            if store:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(exp))
        if exp is None:
            items.append(_unexplained(row, run_id, len(history)))
        else:
            items.append(card_item(exp, rank=int(row.rank)))
    return WhyCard(
        run_id=run_id, model=model.name, user_id=user_id, segment=segment,
        history_size=len(history), recent_history=recent, recommendations=tuple(items),
    )  # fmt: skip


def _unexplained(row: Any, run_id: str, n_history: int) -> CardItem:
    return CardItem(
        rank=int(row.rank), item_id=str(row.item), title=str(row.title), score=float(row.score),
        reasons=(),
        check=(
            f"Not explained yet: a {n_history}-item history under a deep model takes a while. "
            f"Precompute it with `python -m recsys_core demo-cards {run_id}`."
        ),
        adds_up=False, explained=False,
    )  # fmt: skip


def precompute_cards(
    ws: Workspace,
    run_id: str,
    *,
    segments: Sequence[str] = ("typical", "cold", "heavy"),
    per_segment: int = 2,
    n_recs: int = 3,
    device: str = "auto",
) -> list[WhyCard]:
    """Explain the demo's cards of a finished run now and store them in the run's cache.

    For each segment, the first ``per_segment`` users of :func:`demo_users` get their top
    ``n_recs`` explained (every history length, deep models included) and written where the
    demo page and the Explain page read them. Returns the cards.
    """
    art = finished_run(ws, run_id)
    split = art.split()
    model = art.model(device=device)
    cards = []
    for segment in segments:
        for user in demo_users(split, segment, n=per_segment):
            cards.append(
                why_card(ws, run_id, split, model, int(user), segment=segment, n_recs=n_recs,
                         compute="all", store=True)  # fmt: skip
            )
    return cards


__all__ = [
    "CARD_K",
    "CARD_TARGET",
    "DEMO_SEGMENTS",
    "FAST_HISTORY",
    "CardItem",
    "WhyCard",
    "card_item",
    "comparison_sentence",
    "data_glance",
    "demo_users",
    "fast_path",
    "glance_sentence",
    "precompute_cards",
    "reason_text",
    "why_card",
]
