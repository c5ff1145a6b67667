"""Relations between users (recsys_core.data.relations): validation counts, storage and the
health figures, on synthetic data with planted follows (recsys_core.data.synthetic_social)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.data import store
from recsys_core.data.relations import (
    attach_relations,
    load_relations,
    prepare_relations,
    relation_health,
)
from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.data.synthetic_social import plant_follows
from recsys_core.errors import DataError


@pytest.fixture(scope="module")
def social():
    inter, items, users = make_frames(SyntheticConfig(n_users=120, n_items=80, mean_history=10))
    inter, relations = plant_follows(inter, users, seed=0)
    from recsys_core.data.interactions import Interactions

    data = Interactions.from_frame(inter, item_table=items.set_index("item"))
    return data, relations, users


def test_validation_counts_unknown_ids_self_loops_and_duplicates(social):
    data, _, _ = social
    raw = pd.DataFrame(
        {
            "follower": ["u0", "u0", "u1", "u2", "nobody", "u3", "u4"],
            "followee": ["u1", "u1", "u0", "u2", "u1", "ghost", "u5"],
            "strength": [1, 2, 1, 1, 1, 1, 3],
        }
    )
    rel, report = prepare_relations(raw, data, directed=True)
    assert report["columns"] == {
        "source": "follower", "target": "followee", "type": None, "weight": "strength"
    }  # fmt: skip
    assert report["unknown_rows"] == 2 and set(report["unknown_examples"]) == {"nobody", "ghost"}
    assert report["self_loops"] == 1 and report["duplicates_merged"] == 1
    assert report["edges"] == rel.n_edges == 3  # u0->u1 (weight 3), u1->u0, u4->u5
    m = rel.matrix()
    u0, u1 = data.user_index("u0"), data.user_index("u1")
    assert m[u0, u1] == 3.0 and m[u1, u0] == 1.0
    und, report = prepare_relations(raw, data, directed=False)
    assert report["duplicates_merged"] == 2 and und.n_edges == 2  # u0-u1 once
    assert und.matrix()[u1, u0] == und.matrix()[u0, u1] == 4.0
    with pytest.raises(DataError, match="not positive"):
        prepare_relations(raw.assign(strength=[1, 0, 1, 1, 1, 1, 1]), data)
    with pytest.raises(DataError, match="no relation is left"):
        prepare_relations(raw.iloc[[3, 4]], data)


def test_planted_follows_show_in_the_health_figures(social):
    data, relations, _ = social
    rel, _ = prepare_relations(relations, data)
    health = relation_health(rel, data)
    assert health["edges"] == rel.n_edges and health["mean_out_degree"] > 2
    assert sum(health["degree_counts"]) == data.n_users
    # related users share items far more often than random pairs (homophily + influence)
    assert health["mean_jaccard"] > 2 * health["random_mean_jaccard"]
    assert health["share_items"] > health["random_share_items"]


def test_attach_stores_and_loads_back(workspace, social, tmp_path):
    data, relations, _ = social
    inter = data.to_frame()
    info = store.import_frames(workspace, inter, name="social", source="test")
    path = tmp_path / "follows.csv"
    relations.to_csv(path, index=False)
    report = attach_relations(workspace, info.id, path, directed=True)
    assert report["edges"] > 0 and report["health"]["edges"] == report["edges"]
    loaded = load_relations(
        store.dataset_dir(workspace, info.id), store.load_dataset(workspace, info.id)
    )
    assert loaded.n_edges == report["edges"] and loaded.directed
    assert set(np.unique(loaded.types)) == {"follows"}


def test_cli_attaches_and_prints_the_health(workspace, social, tmp_path, capsys):
    from recsys_core.cli.main import main

    data, relations, _ = social
    info = store.import_frames(workspace, data.to_frame(), name="social-cli", source="test")
    path = tmp_path / "friends.csv"
    relations.rename(columns={"source": "a", "target": "b"}).to_csv(path, index=False)
    argv = ["--workspace", str(workspace.root), "relations", info.id, str(path), "--undirected"]
    assert main([*argv, "--source", "a", "--target", "b"]) == 0
    out = capsys.readouterr().out
    assert "undirected relations" in out and "random pairs" in out
    assert main([*argv, "--source", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
