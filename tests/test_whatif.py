"""What-if edits of a user's history (recsys_core.whatif): the edit rules, the re-ranking, the
search, errors, and the background explanation of an edited history. The registry-wide checks
(every model folds an added cluster in; remove-and-re-add restores the top-k) live in
``test_model_contract.py``, on its shared fits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys_core.errors import DataError, NotFoundError
from recsys_core.explain import top_k, user_history
from recsys_core.models import get_model
from recsys_core.whatif import (
    edit_history,
    item_indices,
    item_labels,
    search_items,
    what_if,
)


@pytest.fixture(scope="module")
def ease(small_synthetic):
    cls = get_model("ease")
    return cls(cls.Config(l2=50.0), device="cpu").fit(small_synthetic)


def _user(data, n: int = 6) -> int:
    lengths = np.array([len(user_history(data, u)) for u in range(data.n_users)])
    return int(np.flatnonzero(lengths >= n)[0])


def test_edit_appends_added_items_as_the_most_recent(small_synthetic):
    data = small_synthetic
    user = _user(data)
    history = user_history(data, user)
    new = search_items(data, "", exclude=history)[:2]
    edited = edit_history(data, user, add=new[::-1], remove=history[:2])
    # Removed items leave wherever they were; added ones come last, in the order given.
    assert user_history(edited, user).tolist() == [*history[2:], new[1], new[0]]
    assert edited.n_items == data.n_items and edited.n_users == data.n_users
    assert edited.timestamps[-1] > edited.timestamps[-3]  # after every kept item
    assert edited.user_table is data.user_table  # side features keyed by the same indices


def test_edit_errors_name_the_problem_and_the_fix(ease, small_synthetic):
    data = small_synthetic
    user = _user(data)
    history = user_history(data, user)
    unseen = int(search_items(data, "", exclude=history)[0])
    with pytest.raises(NotFoundError, match=r"unknown item id\(s\) \['nope'\].*search the items"):
        item_indices(data, ["nope", data.item_ids[0]])
    with pytest.raises(NotFoundError, match="unknown item index"):
        what_if(ease, data, user, add=[data.n_items])
    with pytest.raises(NotFoundError, match="unknown user index"):
        what_if(ease, data, data.n_users, add=[unseen])
    with pytest.raises(DataError, match="already in the user's history.*remove them first"):
        what_if(ease, data, user, add=[int(history[0])])
    with pytest.raises(DataError, match="not in the user's history"):
        what_if(ease, data, user, remove=[unseen])
    # Removing and adding the same item is allowed: it moves the item to the end.
    moved = edit_history(data, user, add=[int(history[0])], remove=[int(history[0])])
    assert user_history(moved, user).tolist() == [*history[1:], history[0]]


def test_before_is_the_pages_top_k_and_the_table_accounts_for_every_change(ease, small_synthetic):
    data = small_synthetic
    user = _user(data)
    history = user_history(data, user)
    add = search_items(data, "", exclude=history)[:3]  # popular: likely in the top-k before
    result = what_if(ease, data, user, add=add, remove=history[:1], k=5)
    page = top_k(ease, data, user, k=5)
    assert result.before["item_index"].tolist() == page["item_index"].tolist()
    assert result.added.tolist() == sorted(add.tolist())
    assert result.removed.tolist() == history[:1].tolist()
    table = result.table
    assert set(table["item_index"]) == set(result.before["item_index"]) | set(
        result.after["item_index"]
    )
    assert (table["status"] == "entered").sum() == len(result.entered)
    assert (table["status"] == "left").sum() == len(result.left)
    # An added item that was recommended left the list because it is now in the history.
    gone = table[table["item_index"].isin(add) & table["before"].notna()]
    assert len(gone) and (gone["status"] == "left").all() and gone["after"].isna().all()
    assert (gone["why"] == "added to the history").all()
    both = table.dropna(subset=["before", "after"])
    assert (both["move"] == both["before"] - both["after"]).all()
    assert "left" in result.summary() and result.changed


def test_search_is_bounded_case_insensitive_and_popular_first(small_synthetic):
    data = small_synthetic
    hits = search_items(data, "genre1)", limit=4)
    titles = data.item_titles()[hits]
    assert len(hits) == 4 and all("(Genre1)" in t for t in titles)
    pop = data.item_popularity[hits]
    assert (np.diff(pop) <= 0).all()
    assert len(search_items(data, "")) == min(50, data.n_items)
    assert not len(search_items(data, "no such title"))
    assert hits[0] not in search_items(data, "genre1)", exclude=hits[:1])
    assert item_labels(data, hits[:1])[0] == f"{titles[0]} · {data.item_ids[hits[0]]}"


def test_background_explanation_of_an_edited_history(workspace):
    from test_explain import make_finished_run

    from recsys_core.explain import finished_run, history_source
    from recsys_core.jobs.tasks import TASKS
    from recsys_core.whatif import edited_explanation_path

    run_id, _ = make_finished_run(workspace)
    art = finished_run(workspace, run_id)
    split = art.split()
    user = int(split.test_users[0])
    data = history_source(split, user)
    history = user_history(data, user)
    add = search_items(data, "", exclude=history)[:2]
    model = art.model(device="cpu")
    result = what_if(model, data, user, add=add, remove=history[-1:], k=5)
    item = int(result.after["item_index"].iloc[0])
    ids = {
        "user": str(data.user_ids[user]),
        "item": str(data.item_ids[item]),
        "add": [str(data.item_ids[i]) for i in add],
        "remove": [str(data.item_ids[history[-1]])],
    }
    fractions: list[float] = []
    out = TASKS["explain_edited"](
        workspace,
        {"run": run_id, **ids, "k": 5, "n_random": 2},
        lambda fraction, message="": fractions.append(fraction),
    )
    path = edited_explanation_path(
        workspace, run_id, ids["user"], ids["item"], "score", 5, ids["add"], ids["remove"]
    )
    assert out["path"] == str(path) and fractions and fractions[-1] == pytest.approx(1.0)
    stored = json.loads(path.read_text())
    assert stored["rank"] == 1 and stored["efficient"]
    assert {f["items"][0] for f in stored["features"]} == set(result.history.tolist())
    other = edited_explanation_path(
        workspace, run_id, ids["user"], ids["item"], "score", 5, ids["add"][::-1], ids["remove"]
    )
    assert other != path  # the order of added items is part of the edit
