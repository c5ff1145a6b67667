"""Why was item i recommended to user u? SHAP attributions of one recommendation, checked.

The explanation is of the real model, not of a surrogate: every coalition of features is scored
by the fitted model itself through :meth:`Recommender.score_history`, with the user's history
reduced to the items present in the coalition (time order kept, so sequence models see a
plausible shorter sequence). Shapley values are computed with ``shap``:

- exact Shapley values (``shap.explainers.Exact``, all 2^M coalitions) for M <= ``max_exact``
  features;
- ``shap.PermutationExplainer`` beyond (antithetic permutations; each permutation telescopes
  from the empty to the full history, so efficiency holds exactly, whatever the sample size);
- ``shap.KernelExplainer`` on request (``method="kernel"``; efficiency is enforced as a
  constraint of its weighted regression);
- above ``max_features`` history items the least recent ones are grouped into a few features
  that mean something: by category when the item table has categories ("12 older Comedy
  items"), else by time period ("9 items from 2000-07 to 2000-09"), which keeps the cost
  bounded on long histories;
- a model that reads only the latest items (a sequence model's window, see
  :class:`recsys_core.models.base.ReadsRecentItems`) is explained over those items: older ones
  cannot change its score.

Features are presence indicators: 1 = the history item is in the history, 0 = removed. The
background is the empty history, so the base value is the model's output for a user with no
history (for most models: popularity-like scores) and, by the efficiency property of Shapley
values, ``base + sum(attributions) == output`` (Lundberg & Lee 2017, eq. 5 "local accuracy").
That equality is checked and reported with a stated tolerance.

Targets
-------
``"score"``: the item's raw score. ``"rank"``: the item's margin over the k-th best score of the
other eligible items, recomputed for every masked history, so a positive output means "in the
top k" and the attributions answer "why is it in the top k".

Side features (optional model hooks)
------------------------------------
Models that read user attributes or item side features (two-tower, content models) may expose
them to the explainer with two methods; when both exist, each named feature becomes one more
player of the game (present = its real value, removed = the model's neutral value):

``explain_side_features(user: int, item: int) -> list[tuple[str, str]]``
    ``(name, kind)`` per maskable feature, kind ``"user"`` or ``"item"``. Names read
    ``"user: <attribute>=<value>"`` and ``"item <what>[: <value>]"`` ("user: age=25", "item
    category: Comedy", "item text"): the plain-language sentence turns them into "your age 25",
    "its category Comedy", "its text".
``score_history_masked(history, sequences, *, user: int, item: int, side_mask) -> Tensor``
    like ``score_history`` for a batch of histories of ``user``, with ``side_mask`` a bool
    array [batch, n_side] saying which side features are present. Only the explained item's
    column may depend on the item's features: the rank target reads the other items too.

With every side feature present the scores are the model's real ones for the user (a two-tower
user tower reads the user's attributes), so :func:`top_k` and :func:`counterfactual` score
through the hook too and agree with the explanation. The base value then has the history empty
and every side feature at its neutral value. Two-tower (user attributes, item side features) and
content-based (item side features) models implement the hooks.

Faithfulness
------------
A deletion curve removes the features in attribution order (largest first) and records the
item's score and rank after each removal; the same is done for ``n_random`` seeded random
orders. The normalised area under each score curve is reported (lower = the score falls
faster); ``faithfulness = auc_random - auc_attribution`` is positive when the explanation points
at what really drives the score (Samek et al. 2017, "region perturbation" / deletion metric).

Only the history of the data given is used: pass the training interactions of the run (or the
fold-in part for held-out users).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import ConfigError, DataError, NotFoundError
from recsys_core.models.base import Recommender, history_window

if TYPE_CHECKING:
    from recsys_core.split import Split
    from recsys_core.workspace import Workspace

TARGETS = ("score", "rank")
METHODS = ("auto", "exact", "permutation", "kernel")
FEATURE_KINDS = ("history", "group", "user", "item")
#: Feature kinds that are side features (user attributes, the item's own features), not history.
SIDE_KINDS = ("user", "item")

#: ``progress(step, metrics)`` with metrics ``{"evals": n, "evals_total": N}``; may raise
#: :class:`recsys_core.errors.Cancelled`, which propagates out of :func:`explain`.
ExplainProgress = Callable[[int, dict[str, float]], None]

# Masked histories scored per ``score_history`` call: bounded by the dense [rows, n_items]
# score block it produces (~16M floats = 64 MB).
_SCORE_BLOCK = 1 << 24


# ----- results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Feature:
    """One player of the Shapley game.

    Attributes
    ----------
    name : display name (item title, "12 older Comedy items", "user: segment").
    kind : ``"history"`` (one history item), ``"group"`` (several older history items),
        ``"user"`` (a user attribute) or ``"item"`` (a side feature of the explained item).
    items : item indices the feature stands for (empty for side features).
    item_ids : the raw ids of those items, as strings.
    """

    name: str
    kind: str
    items: tuple[int, ...] = ()
    item_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Faithfulness:
    """Deletion curves of one explanation.

    Attributes
    ----------
    order : feature indices in removal order (largest attribution first), length M.
    scores, ranks : float64 / int64 [M + 1] the item's score and rank (1 = best) after removing
        the first t features of ``order`` (t = 0..M).
    random_scores, random_ranks : float64 [M + 1] the means over ``n_random`` random orders.
    auc_attribution, auc_random : normalised areas under the score curves, x = share of
        features removed in [0, 1], y = (score - empty score) / (full score - empty score).
    faithfulness : ``auc_random - auc_attribution`` (> 0: the attribution order hurts faster).
    n_random : number of random orders averaged.
    """

    order: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    random_scores: np.ndarray
    random_ranks: np.ndarray
    auc_attribution: float
    auc_random: float
    faithfulness: float
    n_random: int


@dataclass(frozen=True)
class Explanation:
    """The attributions of one recommendation, with their checks.

    Attributes
    ----------
    model : registry key of the explained model.
    user, item : dense indices; ``user_id`` / ``item_id`` / ``item_title`` for display.
    target : ``"score"`` or ``"rank"``; ``k`` the cut-off of the rank target.
    features : the M players; ``attributions`` float64 [M] their Shapley values.
    base_value : output with every feature removed (empty history, side features neutral).
    output : explained output with every feature present (score, or margin for ``"rank"``).
    score : the model's real score of the item for the full history; ``rank`` its 1-based rank
        among items the user has not seen.
    efficiency_gap : ``|base_value + sum(attributions) - output|``; ``tolerance`` the bound it
        is checked against; ``efficient`` whether it holds.
    method : ``"exact"``, ``"permutation"`` or ``"kernel"``; ``n_evals`` masked histories scored.
    faithfulness : deletion curves and their areas.
    attention : float64 [n_history] attention weight per history item (oldest first, NaN where
        the model's window did not reach) for attention models, else None. It is attention,
        not attribution; ``attention_spearman`` is the rank correlation between the two over
        the individually explained history items.
    seconds : wall time of the explanation.
    """

    model: str
    user: int
    item: int
    user_id: str
    item_id: str
    item_title: str
    target: str
    k: int
    features: list[Feature]
    attributions: np.ndarray
    base_value: float
    output: float
    score: float
    rank: int
    efficiency_gap: float
    tolerance: float
    efficient: bool
    method: str
    n_evals: int
    faithfulness: Faithfulness
    history: np.ndarray = field(repr=False)  # the items the model reads, oldest first
    attention: np.ndarray | None = None
    attention_spearman: float | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def frame(self) -> pd.DataFrame:
        """One row per feature: name, kind, raw ids, attribution; largest |attribution| first."""
        frame = pd.DataFrame(
            {
                "feature": [f.name for f in self.features],
                "kind": [f.kind for f in self.features],
                "item_ids": ["|".join(f.item_ids) for f in self.features],
                "attribution": self.attributions,
            }
        )
        order = np.argsort(-np.abs(self.attributions), kind="stable")
        return frame.iloc[order].reset_index(drop=True)

    def sentence(self, n_positive: int = 3, n_negative: int = 2) -> str:
        """Plain-language summary naming items by title, e.g.

        "Recommended because you watched A (+0.21) and B (+0.15); C pulled it down (−0.03)."
        """
        return explanation_sentence(self, n_positive=n_positive, n_negative=n_negative)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of everything (arrays as lists)."""
        faith = self.faithfulness
        return {
            "model": self.model,
            "user": self.user,
            "item": self.item,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "item_title": self.item_title,
            "target": self.target,
            "k": self.k,
            "features": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "items": list(f.items),
                    "item_ids": list(f.item_ids),
                    "attribution": float(a),
                }
                for f, a in zip(self.features, self.attributions, strict=True)
            ],
            "base_value": self.base_value,
            "output": self.output,
            "score": self.score,
            "rank": self.rank,
            "efficiency_gap": self.efficiency_gap,
            "tolerance": self.tolerance,
            "efficient": self.efficient,
            "method": self.method,
            "n_evals": self.n_evals,
            "faithfulness": {
                "order": faith.order.tolist(),
                "scores": faith.scores.tolist(),
                "ranks": faith.ranks.tolist(),
                "random_scores": faith.random_scores.tolist(),
                "random_ranks": faith.random_ranks.tolist(),
                "auc_attribution": faith.auc_attribution,
                "auc_random": faith.auc_random,
                "faithfulness": faith.faithfulness,
                "n_random": faith.n_random,
            },
            "history": self.history.tolist(),
            "attention": None if self.attention is None else _nan_to_none(self.attention),
            "attention_spearman": self.attention_spearman,
            "sentence": self.sentence(),
            "seconds": self.seconds,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Counterfactual:
    """Top-k before and after removing some history items.

    Attributes
    ----------
    removed : item indices removed from the history.
    before_items, before_scores : int64 / float32 [k] the top-k with the full history.
    after_items, after_scores : int64 / float32 [k] the top-k without the removed items.
    table : one row per item of the new top-k: item (raw id), title, score, new_rank,
        old_rank (its full-catalogue rank with the whole history), change (old_rank - new_rank;
        positive = moved up), new_in_top_k (it was not in the old top-k).
    """

    removed: np.ndarray
    before_items: np.ndarray
    before_scores: np.ndarray
    after_items: np.ndarray
    after_scores: np.ndarray
    table: pd.DataFrame


# ----- the engine -------------------------------------------------------------------------------
class _Game:
    """Scores coalitions of features for one (user, item) through the model, batched.

    ``masks`` are bool [b, M]: column j says whether feature j is present. History features
    come first (time order), then side features.
    """

    def __init__(
        self,
        model: Recommender,
        user: int,
        item: int,
        history: np.ndarray,
        feature_of_item: np.ndarray,
        n_features: int,
        n_side: int,
        exclude: np.ndarray,
        k: int,
        progress: ExplainProgress | None,
        evals_total: int,
    ) -> None:
        self.model = model
        self.user = user
        self.item = item
        self.history = history  # int64 [n_h] oldest first
        self.feature_of_item = feature_of_item  # int64 [n_h] -> feature column
        self.n_features = n_features
        self.n_side = n_side
        self.k = k
        self.exclude = torch.as_tensor(exclude, dtype=torch.long, device=model.device)
        self.n_items = model.n_items_
        self.chunk = max(1, _SCORE_BLOCK // max(self.n_items, 1))
        self.progress = progress
        self.evals = 0
        self.evals_total = evals_total

    def evaluate(
        self, masks: np.ndarray, *, ranks: bool = True, margins: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score, rank and top-k margin of the item under each coalition.

        ``ranks`` / ``margins`` False skip those (they cost a pass over [b, n_items] each; the
        Shapley estimators need only one of the three) and return zeros in their place.

        Returns
        -------
        scores : float64 [b] the item's score; ranks : int64 [b] its 1-based rank among the
        user's unseen items; margins : float64 [b] score minus the k-th best other score.
        """
        masks = np.asarray(masks, dtype=bool)
        out_s, out_r, out_m = [], [], []
        for start in range(0, len(masks), self.chunk):
            s, r, m = self._evaluate_chunk(masks[start : start + self.chunk], ranks, margins)
            out_s.append(s)
            out_r.append(r)
            out_m.append(m)
            self.evals += len(s)
            if self.progress is not None:
                self.progress(self.evals, {"evals": self.evals, "evals_total": self.evals_total})
        if not out_s:
            return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(out_s), np.concatenate(out_r), np.concatenate(out_m)

    def _evaluate_chunk(
        self, masks: np.ndarray, want_ranks: bool, want_margins: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Which history items each row keeps; np.nonzero walks row-major, so within a row the
        # kept items stay in time order (the sequence a sequence model reads).
        present = masks[:, self.feature_of_item]  # [b, n_h]
        rows, cols = np.nonzero(present)
        indptr = np.zeros(len(masks) + 1, dtype=np.int64)
        np.cumsum(present.sum(axis=1), out=indptr[1:])
        items = self.history[cols].astype(np.int32)
        sequences = Sequences(indptr, items)
        history = sp.csr_matrix(
            (np.ones(len(items), dtype=np.float32), items.copy(), indptr.copy()),
            shape=(len(masks), self.n_items),
        )
        history.sort_indices()
        b = len(masks)
        with torch.no_grad():
            if self.n_side:
                side_mask = masks[:, self.n_features - self.n_side :]
                scores = self.model.score_history_masked(  # type: ignore[attr-defined]
                    history, sequences, user=self.user, item=self.item, side_mask=side_mask
                )
            else:
                scores = self.model.score_history(history, sequences)
            scores = scores.float()
            own = scores[:, self.item].clone()
            ranks = np.zeros(b, dtype=np.int64)
            margins = np.zeros(b)
            if want_ranks:
                # index_fill copies: the model's output may share memory with its state.
                others = scores.index_fill(1, self.exclude, float("-inf"))
                ranks = (1 + (others > own[:, None]).sum(dim=1)).cpu().numpy()
            if want_margins:
                # The k-th best non-excluded item is among the top k + |exclude| of all items:
                # take those and skip the excluded ones, without copying the score matrix.
                top = torch.topk(scores, min(self.k + len(self.exclude), self.n_items), dim=1)
                valid = ~torch.isin(top.indices, self.exclude)
                kth_pos = ((valid.cumsum(dim=1) == self.k) & valid).float().argmax(dim=1)
                kth = top.values.gather(1, kth_pos[:, None])[:, 0]
                margins = (own - kth).cpu().double().numpy()
        return own.cpu().double().numpy(), ranks.astype(np.int64), margins


def explain(
    model: Recommender,
    data: Interactions,
    user: int,
    item: int,
    *,
    target: str = "score",
    k: int = 10,
    method: str = "auto",
    max_exact: int = 12,
    max_features: int = 50,
    nsamples: int | None = None,
    n_random: int = 10,
    seed: int = 0,
    progress: ExplainProgress | None = None,
) -> Explanation:
    """Shapley attributions of ``model``'s score (or top-k margin) of ``item`` for ``user``.

    Parameters
    ----------
    model : a fitted Recommender.
    data : interactions holding the user's history (the run's train part, or fold-in).
    user, item : dense indices into ``data``'s vocabularies.
    target : ``"score"`` (raw score) or ``"rank"`` (margin over the k-th best other item).
    k : cut-off of the rank target and of the ranks reported.
    method : ``"auto"`` (exact up to ``max_exact`` features, permutation beyond), ``"exact"``,
        ``"permutation"`` or ``"kernel"``.
    max_exact : largest number of features explained exactly (2^M model evaluations).
    max_features : most history features; older items beyond are grouped into one feature.
    nsamples : evaluation budget of the sampling explainers (default: 10 antithetic
        permutations, i.e. ``10 * (2M + 1)``, for permutation; ``2M + 2048`` for kernel).
    n_random : random deletion orders averaged for the faithfulness baseline.
    seed : seed of the sampling explainers and of the random orders.
    progress : optional ``progress(step, {"evals", "evals_total"})``; may raise Cancelled.

    Returns
    -------
    Explanation

    Raises
    ------
    NotFoundError : unknown user or item index.
    DataError : the user has an empty history, or the item is already in it.
    ConfigError : an invalid target, method or size option.
    """
    import shap  # imported here: heavy, and only this function needs it

    started = time.perf_counter()
    _check_options(target, method, k, max_exact, max_features, nsamples, n_random)
    user, item = _check_indices(model, data, user, item)
    history = user_history(data, user)
    where = f"user {data.user_ids[user]!r} (index {user})"
    if len(history) == 0:
        raise DataError(
            "this user has no history to explain a recommendation from",
            where=where,
            fix="pick a user with at least one training interaction",
        )
    if item in set(history.tolist()):
        raise DataError(
            f"item {data.item_ids[item]!r} is already in this user's history, so it is never "
            "recommended to them",
            where=where,
            fix="pick an item from the user's recommendations (not one they have seen)",
        )
    eligible = model.n_items_ - len(history) - 1
    if eligible < 1:
        raise DataError(
            "the user has seen every other item, so there is no ranking to explain",
            where=where,
            fix="pick a user with a shorter history",
        )
    k = min(int(k), eligible)

    # The players are the history items the model reads: a sequence model reads only its
    # latest window (the one truncation rule, SequenceModel.window), so older items cannot
    # change its score and are left out; every item the user saw stays excluded from ranks.
    seen = history
    window = history_window(model)
    if window is not None and len(history) > window:
        history = history[-window:]
    features, feature_of_item = _history_features(data, user, history, max_features)
    n_grouped = int(sum(len(f.items) for f in features if f.kind == "group"))
    side = _side_features(model, user, item)
    features.extend(Feature(name, kind) for name, kind in side)
    n_features = len(features)

    if method == "auto":
        method = "exact" if n_features <= max_exact else "permutation"
    if method == "exact" and n_features > 20:
        raise ConfigError(
            f"explain: method 'exact' needs 2^{n_features} model evaluations; use "
            "'permutation' or lower max_features (at most 20 features for exact)"
        )
    if nsamples is None:
        nsamples = 10 * (2 * n_features + 1) if method != "kernel" else 2 * n_features + 2048
    budget = {"exact": 2**n_features, "permutation": nsamples, "kernel": nsamples}[method]
    evals_total = budget + 1 + (n_random + 1) * (n_features + 1)

    exclude = np.union1d(seen, [item]).astype(np.int64)
    game = _Game(
        model, user, item, history, feature_of_item, n_features, len(side), exclude, k,
        progress, evals_total,
    )  # fmt: skip
    column = 2 if target == "rank" else 0

    def f(x: np.ndarray) -> np.ndarray:
        masks = np.asarray(x) > 0.5
        return game.evaluate(masks, ranks=False, margins=target == "rank")[column]

    full = np.ones((1, n_features))
    empty = np.zeros((1, n_features))
    rng_state = np.random.get_state()  # shap's permutation explainer reseeds numpy globally
    try:
        if method == "exact":
            explainer = shap.explainers.Exact(f, shap.maskers.Independent(empty))
            result = explainer(full, max_evals=budget + 1, silent=True)
            values, base = result.values[0], float(np.ravel(result.base_values)[0])
        elif method == "permutation":
            nsamples = max(nsamples, 2 * n_features + 1)
            explainer = shap.PermutationExplainer(f, shap.maskers.Independent(empty), seed=seed)
            result = explainer(full, max_evals=nsamples, silent=True)
            values, base = result.values[0], float(np.ravel(result.base_values)[0])
        else:
            explainer = shap.KernelExplainer(f, empty, seed=seed)
            values = np.ravel(explainer.shap_values(full, nsamples=nsamples, silent=True))
            base = float(np.ravel(explainer.expected_value)[0])
    finally:
        np.random.set_state(rng_state)
    attributions = np.asarray(values, dtype=np.float64).reshape(n_features)

    full_s, full_r, full_m = (a[0] for a in game.evaluate(np.ones((1, n_features), dtype=bool)))
    output = float(full_m if target == "rank" else full_s)
    gap = abs(base + float(attributions.sum()) - output)
    # Relative tolerance: float32 scores carry ~1e-7 relative error per evaluation and the
    # estimators sum at most a few thousand of them.
    tolerance = 1e-4 * max(abs(output), abs(base), float(np.abs(attributions).sum()), 1e-3)

    faith = _deletion_curves(game, attributions, n_random, seed)
    attention, spearman, notes = _attention(model, data, user, history, features, attributions)
    if side:
        kinds = sorted({kind for _, kind in side}, key=SIDE_KINDS.index)
        what = " and ".join({"user": "user attributes", "item": "item features"}[k] for k in kinds)
        notes.append(
            f"{len(side)} side features ({what}) are explained beside the history; the base "
            "value has each at the model's neutral value"
        )
    if len(history) < len(seen):
        notes.append(
            f"the model reads only the latest {len(history)} of the user's {len(seen)} history "
            "items (its window), so older ones cannot change this score and are not explained"
        )
    if n_grouped:
        n_groups = sum(f.kind == "group" for f in features)
        notes.append(
            f"the {n_grouped} least recent history items are explained in {n_groups} groups "
            f"(more than max_features={max_features} items): "
            + "; ".join(f.name for f in features if f.kind == "group")
        )
    return Explanation(
        model=model.name,
        user=user,
        item=item,
        user_id=str(data.user_ids[user]),
        item_id=str(data.item_ids[item]),
        item_title=str(data.item_titles()[item]),
        target=target,
        k=k,
        features=features,
        attributions=attributions,
        base_value=base,
        output=output,
        score=float(full_s),
        rank=int(full_r),
        efficiency_gap=float(gap),
        tolerance=float(tolerance),
        efficient=bool(gap <= tolerance),
        method=method,
        n_evals=game.evals,
        faithfulness=faith,
        history=history,
        attention=attention,
        attention_spearman=spearman,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )


#: Most groups the least recent history items are explained in (long histories).
MAX_GROUPS = 5


def _history_features(
    data: Interactions, user: int, history: np.ndarray, max_features: int
) -> tuple[list[Feature], np.ndarray]:
    """The history players and, per history position, the index of its feature.

    Up to ``max_features`` features: the latest items one by one and, when the history is
    longer, the least recent ones in at most :data:`MAX_GROUPS` groups that mean something
    (:func:`_older_groups`), so a sentence names real reasons instead of "110 older items".
    Groups come first, then single items oldest first.
    """
    titles = data.item_titles()
    n_h = len(history)
    groups: list[tuple[str, np.ndarray]] = []
    n_single = n_h
    if n_h > max_features:
        n_groups = min(MAX_GROUPS, max_features - 1)
        n_single = max_features - n_groups
        # Fewer groups than budgeted (the older items span few categories) leave room for more
        # single items; the group count cannot grow as the older part shrinks, so this settles.
        for _ in range(MAX_GROUPS):
            groups = _older_groups(data, user, history[: n_h - n_single], n_groups)
            if len(groups) + n_single >= max_features:
                break
            n_single = max_features - len(groups)
    older = history[: n_h - n_single]
    features: list[Feature] = []
    feature_of_item = np.empty(n_h, dtype=np.int64)
    position = {int(it): p for p, it in enumerate(history.tolist())}
    for name, members in groups:
        feature_of_item[[position[int(it)] for it in members]] = len(features)
        features.append(
            Feature(
                name,
                "group",
                tuple(int(x) for x in members),
                tuple(str(x) for x in data.item_ids[members]),
            )
        )
    single = history[len(older) :]
    feature_of_item[len(older) :] = len(features) + np.arange(len(single))
    for it in single:
        features.append(Feature(str(titles[it]), "history", (int(it),), (str(data.item_ids[it]),)))
    return features, feature_of_item


def _older_groups(
    data: Interactions, user: int, older: np.ndarray, n_groups: int
) -> list[tuple[str, np.ndarray]]:
    """Split the least recent history items ``older`` (oldest first) into named groups.

    By category when the item table has categories: each item joins its category that is most
    common among ``older`` (so a Comedy|Romance item joins the larger of the two), the
    ``n_groups - 1`` largest categories are kept and the rest pooled as "other". Otherwise by
    time period: ``n_groups`` consecutive runs of equal size, named by their date range (or by
    their position in the history when there are no timestamps). Every item is in exactly one
    group, so the groups' attributions still add up to the score (efficiency).
    """
    n_groups = max(1, min(n_groups, len(older)))
    cats = data.item_categories()
    if cats is not None and any(cats[i] for i in older):
        lists = [cats[i] or ["uncategorised"] for i in older]
        counts = pd.Series([c for row in lists for c in row]).value_counts()
        rank = {c: r for r, c in enumerate(sorted(counts.index, key=lambda c: (-counts[c], c)))}
        label = np.array([min(row, key=rank.__getitem__) for row in lists], dtype=object)
        sizes = pd.Series(label).value_counts()
        order = sorted(sizes.index, key=lambda c: (-sizes[c], c))
        if len(order) > n_groups:
            kept = set(order[: n_groups - 1])
            label = np.where(np.isin(label, list(kept)), label, "other")
            order = [c for c in order if c in kept] + ["other"]
        groups = []
        for cat in order:
            members = older[label == cat]
            what = "other older item" if cat == "other" else f"older {cat} item"
            groups.append((f"{len(members)} {what}{'s' if len(members) > 1 else ''}", members))
        return groups
    chunks = [c for c in np.array_split(np.arange(len(older)), n_groups) if len(c)]
    times = _item_times(data, user, older)
    groups = []
    for chunk in chunks:
        members = older[chunk]
        if times is not None:
            first, last = times[chunk].min(), times[chunk].max()
            span = first if first == last else f"{first} to {last}"
            noun = "items" if len(members) > 1 else "item"
            groups.append((f"{len(members)} {noun} from {span}", members))
        else:
            where = f"history #{chunk[0] + 1}\u2013{chunk[-1] + 1}"
            noun = "items" if len(members) > 1 else "item"
            groups.append((f"{len(members)} older {noun} ({where})", members))
    return groups


def _item_times(data: Interactions, user: int, items: np.ndarray) -> np.ndarray | None:
    """When the user interacted with each of ``items``, as text at a resolution that tells the
    periods apart ("2003", "2000-07", "2000-07-14" or "2000-07-14 18:05" by the span), or None
    without time."""
    if data.timestamps is None:
        return None
    rows = np.flatnonzero(data.users == user)
    latest = pd.Series(data.timestamps[rows], index=data.items[rows]).groupby(level=0).max()
    seconds = latest.reindex(items).to_numpy()
    span_days = (np.nanmax(seconds) - np.nanmin(seconds)) / 86400 if len(seconds) else 0.0
    fmt = (
        "%Y"
        if span_days > 3 * 365
        else "%Y-%m"
        if span_days > 90
        else "%Y-%m-%d"
        if span_days > 2
        else "%Y-%m-%d %H:%M"
    )
    stamps = pd.to_datetime(seconds, unit="s", utc=True)
    return np.asarray(stamps.strftime(fmt), dtype=object)


def _deletion_curves(
    game: _Game, attributions: np.ndarray, n_random: int, seed: int
) -> Faithfulness:
    """Attribution-ordered and random-ordered deletion curves, all scored in one batch."""
    m = len(attributions)
    order = np.argsort(-attributions, kind="stable")
    rng = np.random.default_rng(seed)
    orders = np.vstack([order[None, :], np.argsort(rng.random((n_random, m)), axis=1)])
    # masks[o, t, j]: feature j still present after removing the first t features of order o.
    position = np.empty_like(orders)
    np.put_along_axis(position, orders, np.arange(m)[None, :].repeat(len(orders), 0), axis=1)
    steps = np.arange(m + 1)[None, :, None]
    masks = position[:, None, :] >= steps  # [n_orders, m + 1, m]
    scores, ranks, _ = game.evaluate(masks.reshape(-1, m), margins=False)
    scores = scores.reshape(len(orders), m + 1)
    ranks = ranks.reshape(len(orders), m + 1)
    full, empty = scores[0, 0], scores[0, -1]
    span = full - empty
    norm = (scores - empty) / (span if abs(span) > 1e-12 else 1.0)
    x = np.linspace(0.0, 1.0, m + 1)
    aucs = np.trapezoid(norm, x, axis=1) if hasattr(np, "trapezoid") else np.trapz(norm, x, axis=1)
    auc_attr = float(aucs[0])
    auc_rand = float(aucs[1:].mean()) if n_random else auc_attr
    return Faithfulness(
        order=order,
        scores=scores[0],
        ranks=ranks[0],
        random_scores=scores[1:].mean(axis=0) if n_random else scores[0],
        random_ranks=ranks[1:].mean(axis=0) if n_random else ranks[0].astype(np.float64),
        auc_attribution=auc_attr,
        auc_random=auc_rand,
        faithfulness=auc_rand - auc_attr,
        n_random=n_random,
    )


def _attention(
    model: Recommender,
    data: Interactions,
    user: int,
    history: np.ndarray,
    features: list[Feature],
    attributions: np.ndarray,
) -> tuple[np.ndarray | None, float | None, list[str]]:
    """Attention over the history (attention models only) and its agreement with attribution."""
    notes: list[str] = []
    if not hasattr(model, "attention_weights"):
        return None, None, notes
    from scipy.stats import spearmanr

    seqs = Sequences(np.array([0, len(history)], dtype=np.int64), history.astype(np.int32))
    with torch.no_grad():
        weights = model.attention_weights(seqs)  # type: ignore[attr-defined]
    weights = np.asarray(
        weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else weights,
        dtype=np.float64,
    ).reshape(-1)
    # Weights are over the latest-last padded window: align them with the newest items.
    attention = np.full(len(history), np.nan)
    n = min(len(weights), len(history))
    if n:
        attention[len(history) - n :] = weights[len(weights) - n :]
    item_attr = {
        f.items[0]: a for f, a in zip(features, attributions, strict=True) if f.kind == "history"
    }
    pairs = [
        (attention[i], item_attr[int(it)])
        for i, it in enumerate(history)
        if int(it) in item_attr and np.isfinite(attention[i])
    ]
    spearman = None
    if len(pairs) >= 3:
        a, b = np.array(pairs).T
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            spearman = float(spearmanr(a, b).statistic)
    if spearman is None:
        notes.append("attention/attribution agreement needs 3+ items with varying values")
    if n < len(history):
        notes.append(f"the model attends to the latest {n} items only; older ones show NaN")
    return attention, spearman, notes


def _side_features(model: Recommender, user: int, item: int) -> list[tuple[str, str]]:
    if not (hasattr(model, "explain_side_features") and hasattr(model, "score_history_masked")):
        return []
    side = [(str(n), str(kind)) for n, kind in model.explain_side_features(user, item)]  # type: ignore[attr-defined]
    for name, kind in side:
        if kind not in SIDE_KINDS:
            raise ConfigError(
                f"{model.name}.explain_side_features: feature {name!r} has kind {kind!r}; "
                "expected 'user' or 'item'"
            )
    return side


def _real_scores(
    model: Recommender, history: sp.csr_matrix, sequences: Sequences, user: int
) -> torch.Tensor:
    """float32 [b, n_items] scores of histories of ``user`` with every side feature present.

    Those are the real scores of every item whichever item the hook is told about, so item 0
    stands in; models without side features score the history alone.
    """
    side = _side_features(model, user, 0)
    with torch.no_grad():
        if not side:
            return model.score_history(history, sequences).float()
        mask = np.ones((history.shape[0], len(side)), dtype=bool)
        return model.score_history_masked(  # type: ignore[attr-defined]
            history, sequences, user=user, item=0, side_mask=mask
        ).float()


def _check_options(
    target: str,
    method: str,
    k: int,
    max_exact: int,
    max_features: int,
    nsamples: int | None,
    n_random: int,
) -> None:
    if target not in TARGETS:
        raise ConfigError(f"explain: target {target!r} is not allowed; choose one of {TARGETS}")
    if method not in METHODS:
        raise ConfigError(f"explain: method {method!r} is not allowed; choose one of {METHODS}")
    if int(k) < 1:
        raise ConfigError(f"explain: k must be at least 1, got {k}")
    if not 1 <= int(max_exact) <= 20:
        raise ConfigError(f"explain: max_exact must be in [1, 20], got {max_exact}")
    if int(max_features) < 2:
        raise ConfigError(f"explain: max_features must be at least 2, got {max_features}")
    if nsamples is not None and int(nsamples) < 1:
        raise ConfigError(f"explain: nsamples must be positive, got {nsamples}")
    if int(n_random) < 0:
        raise ConfigError(f"explain: n_random must be >= 0, got {n_random}")


def _check_indices(model: Recommender, data: Interactions, user: Any, item: Any) -> tuple[int, int]:
    model._check_fitted()
    if data.n_items != model.n_items_:
        raise DataError(
            f"the data has {data.n_items} items but the model was fitted on {model.n_items_}",
            fix="pass the interactions of the run the model was trained on",
        )
    user, item = int(user), int(item)
    if not 0 <= user < data.n_users:
        raise NotFoundError(
            f"unknown user index {user}: this dataset has users 0..{data.n_users - 1}; "
            "look the raw id up with Interactions.user_index"
        )
    if not 0 <= item < data.n_items:
        raise NotFoundError(
            f"unknown item index {item}: this dataset has items 0..{data.n_items - 1}; "
            "look the raw id up with Interactions.item_index"
        )
    return user, item


def user_history(data: Interactions, user: int) -> np.ndarray:
    """int64 [n] the user's distinct history items, oldest first.

    A repeated item is placed at its latest occurrence, which is what recency-aware models
    weigh.
    """
    seqs = data.sequences
    items = seqs.items[seqs.indptr[user] : seqs.indptr[user + 1]].astype(np.int64)
    _, last_from_end = np.unique(items[::-1], return_index=True)
    return items[np.sort(len(items) - 1 - last_from_end)]


# ----- counterfactual ---------------------------------------------------------------------------
def counterfactual(
    model: Recommender,
    data: Interactions,
    user: int,
    remove: Sequence[int],
    k: int = 10,
) -> Counterfactual:
    """The user's top-k before and after removing ``remove`` from their history.

    Items of the original history (removed ones included: the user did consume them) stay
    excluded from both rankings, so the two lists are comparable.

    Raises
    ------
    NotFoundError : unknown user. DataError : an item to remove is not in the history.
    """
    user, _ = _check_indices(model, data, user, 0)
    history = user_history(data, user)
    remove = np.unique(np.asarray(list(remove), dtype=np.int64))
    missing = np.setdiff1d(remove, history)
    if len(missing):
        raise DataError(
            f"items {[str(x) for x in data.item_ids[missing]]} are not in the user's history",
            where=f"user {data.user_ids[user]!r}",
            fix="choose items to remove from the user's history",
        )
    keep = history[~np.isin(history, remove)]
    seqs = Sequences(
        np.array([0, len(history), len(history) + len(keep)], dtype=np.int64),
        np.concatenate([history, keep]).astype(np.int32),
    )
    hist = seqs.to_csr(model.n_items_)
    scores = _real_scores(model, hist, seqs, user)
    seen = torch.as_tensor(history, dtype=torch.long, device=scores.device)
    scores = scores.index_fill(1, seen, float("-inf"))
    k = max(1, min(int(k), model.n_items_ - len(history)))
    top = torch.topk(scores, k, dim=1)
    items = top.indices.cpu().numpy()
    values = top.values.cpu().numpy()
    # Full-catalogue ranks under both histories, to say how far each new item moved.
    order = torch.argsort(scores, dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(
        1, order, torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order)
    )
    ranks = ranks.cpu().numpy()
    titles = data.item_titles()
    after = items[1]
    table = pd.DataFrame(
        {
            "item": data.item_ids[after].astype(str),
            "title": titles[after],
            "score": values[1],
            "new_rank": np.arange(1, k + 1),
            "old_rank": ranks[0, after],
        }
    )
    table["change"] = table["old_rank"] - table["new_rank"]
    table["new_in_top_k"] = ~np.isin(after, items[0])
    return Counterfactual(remove, items[0], values[0], items[1], values[1], table)


# ----- plain language ---------------------------------------------------------------------------
def _fmt(value: float) -> str:
    sign = "+" if value >= 0 else "\u2212"
    mag = abs(value)
    text = f"{mag:.2f}" if mag >= 0.01 else f"{mag:.2g}"
    return sign + text


def _phrase(feature: Feature) -> str:
    """A feature as the subject of a sentence: a title, "your age 25", "its category Comedy"
    (side-feature names follow the convention of the module docstring)."""
    if feature.kind == "user":
        attribute, sep, value = feature.name.removeprefix("user: ").partition("=")
        return f"your {attribute} {value}" if sep else f"your {attribute}"
    if feature.kind == "item":
        return "its " + feature.name.removeprefix("item ").replace(": ", " ", 1)
    return feature.name


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def explanation_sentence(exp: Explanation, n_positive: int = 3, n_negative: int = 2) -> str:
    """The plain-language summary of :meth:`Explanation.sentence`."""
    a = exp.attributions
    scale = max(float(np.abs(a).max()) if len(a) else 0.0, 1e-12)
    # Ignore attributions that are numerically nothing next to the largest one.
    pos = [i for i in np.argsort(-a, kind="stable") if a[i] > 1e-6 * scale][:n_positive]
    neg = [i for i in np.argsort(a, kind="stable") if a[i] < -1e-6 * scale][:n_negative]
    head = f"In your top {exp.k}" if exp.target == "rank" else "Recommended"
    if exp.target == "rank" and exp.output <= 0:
        # A negative margin: the item is outside the top k, so "because" would mislead.
        head = f"Not in your top {exp.k} (margin {_fmt(exp.output)})"
        text = head
        if pos:
            names = _join([f"{_phrase(exp.features[i])} ({_fmt(a[i])})" for i in pos])
            text += f": {names} pushed it up"
        if neg:
            names = _join([f"{_phrase(exp.features[i])} ({_fmt(a[i])})" for i in neg])
            text += f"{';' if pos else ':'} {names} held it back"
        return text + "."
    if not pos:
        side = any(f.kind in SIDE_KINDS for f in exp.features)
        empty, what = (
            ("history and no side features", "your history or its features")
            if side
            else ("history", "your history")
        )
        text = (
            f"{head} mostly on its baseline ({_fmt(exp.base_value)}, the score with no {empty}); "
            f"nothing in {what} pushes it up"
        )
    else:
        history_pos = [i for i in pos if exp.features[i].kind in ("history", "group")]
        side_pos = [i for i in pos if i not in history_pos]
        reasons = []
        if history_pos:
            reasons.append(
                "you watched "
                + _join([f"{_phrase(exp.features[i])} ({_fmt(a[i])})" for i in history_pos])
            )
        if side_pos:
            reasons.append(
                "of " + _join([f"{_phrase(exp.features[i])} ({_fmt(a[i])})" for i in side_pos])
            )
        if side_pos and history_pos and side_pos[0] == pos[0]:
            reasons.reverse()  # the strongest reason first
        # "because you watched A (+0.21) and because of its category Comedy (+0.10)"
        text = f"{head} because " + " and because ".join(reasons)
    if neg:
        names = _join([f"{_phrase(exp.features[i])} ({_fmt(a[i])})" for i in neg])
        text += f"; {names} pulled it down"
    return text + "."


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


# ----- runs: the page, the CLI and the worker explain finished runs through these ----------------
#: User segments the page samples users from (see :func:`segment_users`).
USER_SEGMENTS = ("any", "cold", "heavy")
EXPLAIN_DIR = "explain"


def history_source(split: Split, user: int) -> Interactions:
    """The part of ``split`` that holds ``user``'s visible history.

    For the held-out-users protocol test users are absent from train and their visible history
    is ``fold_in``; for every other protocol it is ``train``.
    """
    fold_in = split.fold_in
    if fold_in is not None and 0 <= user < fold_in.n_users and fold_in.user_activity[user] > 0:
        return fold_in
    return split.train


def finished_run(ws: Workspace, run_id: str) -> Any:
    """``RunArtifacts`` of ``run_id``; NotFoundError naming the status when it has not finished."""
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.jobs.spec import DONE

    art = RunArtifacts(ws, run_id)
    status = art.record.status
    if status != DONE:
        raise NotFoundError(
            f"run {run_id} is {status}, so it has no saved model to explain; "
            + (
                "wait for it to finish (see the Train page or `python -m recsys_core runs`)"
                if art.record.is_active
                else "pick a finished run, or retry this one"
            )
        )
    return art


def explain_run(
    ws: Workspace,
    run_id: str,
    user_id: object,
    item_id: object,
    *,
    device: str = "auto",
    progress: ExplainProgress | None = None,
    **options: Any,
) -> Explanation:
    """Explain finished run ``run_id``'s recommendation of ``item_id`` to ``user_id`` (raw ids).

    ``options`` are :func:`explain`'s keyword arguments (target, k, method, max_exact,
    max_features, nsamples, n_random, seed).

    Raises
    ------
    NotFoundError : unknown run, run not finished, unknown user or item id.
    DataError : empty history, item already seen (see :func:`explain`).
    """
    art = finished_run(ws, run_id)
    split = art.split()
    data = art.dataset()
    user = data.user_index(user_id)
    item = data.item_index(item_id)
    model = art.model(device=device)
    return explain(model, history_source(split, user), user, item, progress=progress, **options)


def explanation_path(
    ws: Workspace, run_id: str, user_id: object, item_id: object, target: str, k: int
) -> Path:
    """Where the background task stores this explanation's JSON, under the run's ``explain/``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{user_id}__{item_id}__{target}_k{int(k)}")
    return ws.runs_dir / run_id / EXPLAIN_DIR / f"{safe}.json"


def explain_task(
    ws: Workspace, payload: dict[str, Any], progress: Callable[..., None]
) -> dict[str, Any]:
    """Background task ``"explain"`` (``recsys_core.jobs.tasks.TASKS``) for long histories.

    ``payload``: ``run``, ``user``, ``item`` (raw ids) and optional :func:`explain` options.
    ``progress(fraction, message)`` is the worker's; it may raise Cancelled. Writes the
    explanation's JSON to :func:`explanation_path` and returns its headline numbers.
    """
    payload = dict(payload)
    missing = sorted({"run", "user", "item"} - set(payload))
    if missing:
        raise ConfigError(f"explain task: payload lacks {missing}; give run, user and item ids")
    run_id, user_id, item_id = payload.pop("run"), payload.pop("user"), payload.pop("item")
    device = payload.pop("device", "auto")
    report = task_progress(progress)
    exp = explain_run(ws, run_id, user_id, item_id, device=device, progress=report, **payload)
    return save_explanation(exp, explanation_path(ws, run_id, user_id, item_id, exp.target, exp.k))


def task_progress(progress: Callable[..., None]) -> ExplainProgress:
    """:func:`explain`'s progress callback reporting to a worker's ``progress(fraction, text)``."""

    def report(step: int, metrics: dict[str, float]) -> None:
        total = max(metrics["evals_total"], 1.0)
        progress(
            min(1.0, metrics["evals"] / total),
            f"{int(metrics['evals'])} of ~{int(total)} masked histories scored",
        )

    return report


def save_explanation(exp: Explanation, path: Path) -> dict[str, Any]:
    """Write ``exp``'s JSON to ``path`` (atomically); return the task's headline numbers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(exp.to_dict()))
    tmp.replace(path)
    return {
        "path": str(path),
        "efficient": exp.efficient,
        "efficiency_gap": exp.efficiency_gap,
        "faithfulness": exp.faithfulness.faithfulness,
        "seconds": exp.seconds,
    }


def segment_users(data: Interactions, segment: str) -> np.ndarray:
    """Users (dense indices) with a history in ``data`` belonging to ``segment``.

    ``"cold"``: the least active fifth of users (at most the 20th percentile of history length);
    ``"heavy"``: the most active tenth (at least the 90th percentile); ``"any"``: all.
    """
    if segment not in USER_SEGMENTS:
        raise ConfigError(f"segment {segment!r} is not known; choose one of {USER_SEGMENTS}")
    activity = data.user_activity
    active = activity > 0
    if segment == "any" or not active.any():
        return np.flatnonzero(active)
    if segment == "cold":
        return np.flatnonzero(active & (activity <= np.percentile(activity[active], 20)))
    return np.flatnonzero(active & (activity >= np.percentile(activity[active], 90)))


def history_frame(data: Interactions, user: int) -> pd.DataFrame:
    """The user's history, oldest first: item (raw id), title, categories, time (UTC or None)."""
    history = user_history(data, user)
    cats = data.item_categories()
    frame = pd.DataFrame(
        {
            "item": data.item_ids[history].astype(str),
            "title": data.item_titles()[history],
            "categories": [", ".join(cats[i]) for i in history] if cats is not None else "",
        }
    )
    if data.timestamps is not None:
        rows = np.flatnonzero(data.users == user)
        times = pd.Series(data.timestamps[rows], index=data.items[rows]).groupby(level=0).max()
        frame["time"] = pd.to_datetime(times.reindex(history).to_numpy(), unit="s", utc=True)
    return frame


def top_k(model: Recommender, data: Interactions, user: int, k: int = 10) -> pd.DataFrame:
    """The user's top-k for the history in ``data`` (history items excluded).

    Columns: rank, item (raw id), title, score, item_index.
    """
    user, _ = _check_indices(model, data, user, 0)
    history = user_history(data, user)
    seqs = Sequences(np.array([0, len(history)], dtype=np.int64), history.astype(np.int32))
    scores = _real_scores(model, seqs.to_csr(model.n_items_), seqs, user)
    seen = torch.as_tensor(history, dtype=torch.long, device=scores.device)
    scores = scores.index_fill(1, seen, float("-inf"))
    top = torch.topk(scores, max(1, min(int(k), model.n_items_ - len(history))), dim=1)
    items = top.indices[0].cpu().numpy()
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(items) + 1),
            "item": data.item_ids[items].astype(str),
            "title": data.item_titles()[items],
            "score": top.values[0].cpu().numpy(),
            "item_index": items,
        }
    )


def held_out_frame(split: Split, user: int, recommended: np.ndarray) -> pd.DataFrame:
    """The user's held-out test items, each marked hit (in ``recommended``) or miss."""
    test = split.test
    items = np.unique(test.items[test.users == user]).astype(np.int64)
    return pd.DataFrame(
        {
            "item": test.item_ids[items].astype(str),
            "title": test.item_titles()[items],
            "result": np.where(np.isin(items, recommended), "hit", "miss"),
            "item_index": items,
        }
    )


__all__ = [
    "FEATURE_KINDS",
    "SIDE_KINDS",
    "METHODS",
    "TARGETS",
    "Counterfactual",
    "Explanation",
    "Faithfulness",
    "Feature",
    "USER_SEGMENTS",
    "counterfactual",
    "explain",
    "explain_run",
    "explain_task",
    "explanation_path",
    "explanation_sentence",
    "finished_run",
    "held_out_frame",
    "history_frame",
    "history_source",
    "segment_users",
    "top_k",
    "user_history",
]
