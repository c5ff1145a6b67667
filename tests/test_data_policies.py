"""Implicit threshold, duplicate policies, k-core, side tables and predefined splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.data.importer import ImportOptions, build
from recsys_core.data.readers import RawData
from recsys_core.data.store import attach_side_table, import_bytes, import_file, load_dataset
from recsys_core.errors import DataError

DUPS = (
    b"user,item,rating,timestamp\n"
    b"a,x,1,300\n"  # a-x three times: latest (t=300) has rating 1
    b"a,x,5,100\n"
    b"a,x,3,200\n"
    b"a,y,2,10\n"
    b"b,x,4,50\n"
    b"b,x,2,60\n"
)


def _value(data, user, item) -> float:
    u, i = data.user_index(user), data.item_index(item)
    return float(data.matrix[u, i])


@pytest.mark.parametrize(
    "policy, ax, bx",
    [("last", 1.0, 2.0), ("max", 5.0, 4.0), ("sum", 9.0, 6.0), ("count", 3.0, 2.0)],
)
def test_duplicate_policies_and_counts(workspace, policy, ax, bx):
    info = import_bytes(workspace, DUPS, "d.csv", options=ImportOptions(duplicates=policy))
    data = load_dataset(workspace, info.id)
    assert data.nnz == 3
    assert _value(data, "a", "x") == ax and _value(data, "b", "x") == bx
    assert _value(data, "a", "y") == (1.0 if policy == "count" else 2.0)
    assert info.report["duplicates"] == {"policy": policy, "rows_removed": 3, "pairs_affected": 2}


def test_last_without_time_uses_file_order(workspace):
    payload = b"user,item,rating\na,x,1\na,x,4\n"
    data = load_dataset(workspace, import_bytes(workspace, payload, "n.csv").id)
    assert _value(data, "a", "x") == 4.0


def test_positive_threshold(workspace):
    info = import_bytes(
        workspace,
        DUPS,
        "t.csv",
        options=ImportOptions(positive_threshold=3.0, duplicates="max"),
    )
    assert info.report["threshold"] == {"threshold": 3.0, "rows_removed": 3}
    data = load_dataset(workspace, info.id)
    assert sorted(data.values.tolist()) == [4.0, 5.0]
    assert info.report["filtered_rows"] == 3


def test_iterated_k_core():
    # u3 has 1 item; removing it drops item i3 below 2, which drops u2 below 2 in turn.
    frame = pd.DataFrame(
        {
            "user": ["u1", "u1", "u2", "u2", "u3", "u4", "u4"],
            "item": ["i1", "i2", "i1", "i3", "i3", "i1", "i2"],
        }
    )
    options = ImportOptions(min_user_interactions=2, min_item_interactions=2)
    result = build(RawData(frame, header_lines=0, source="frame"), options)
    kept = set(zip(result.frame["user"], result.frame["item"], strict=True))
    assert kept == {("u1", "i1"), ("u1", "i2"), ("u4", "i1"), ("u4", "i2")}
    assert result.report["kcore"]["rows_removed"] == 3
    assert result.report["kcore"]["users_removed"] == 2
    assert result.report["kcore"]["items_removed"] == 1
    assert result.report["kcore"]["iterations"] >= 2
    counts_user = np.bincount(result.data.users)
    counts_item = np.bincount(result.data.items)
    assert counts_user.min() >= 2 and counts_item.min() >= 2


def test_side_tables_with_unmatched_ids_and_embeddings(workspace, tmp_path):
    (tmp_path / "inter.csv").write_text("user_id,item_id\n1,007\n2,007\n2,8\n")
    (tmp_path / "items.csv").write_text(
        "item_id,title,genres,description,year,embedding\n"
        '007,Bond,"Action|Spy",a spy film,1962,"0.1 0.2 0.3"\n'
        '8,Eight,Drama,,2001,"[1, 2, 3]"\n'
        '9,Nine,Drama,,1999,"0 0 1"\n'
    )
    (tmp_path / "users.csv").write_text("user_id,segment,age\n1,gold,30\n2,silver,41\n5,x,20\n")
    info = import_file(
        workspace,
        tmp_path / "inter.csv",
        items=tmp_path / "items.csv",
        users=tmp_path / "users.csv",
    )
    data = load_dataset(workspace, info.id)
    table = data.item_table
    bond = data.item_index("007")
    assert table["title"].iloc[bond] == "Bond"
    assert table["categories"].iloc[bond] == "Action|Spy"
    assert table["text"].iloc[bond] == "a spy film"
    assert table["year"].iloc[bond] == 1962.0
    np.testing.assert_allclose(table["embedding"].iloc[bond], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(table["embedding"].iloc[data.item_index("8")], [1, 2, 3])
    assert data.user_table["segment"].tolist() == ["gold", "silver"]
    assert data.user_table["age"].tolist() == [30.0, 41.0]
    side = info.report["side"]
    assert side["items"]["unmatched_count"] == 1 and side["items"]["unmatched_examples"] == ["9"]
    assert side["users"]["unmatched_examples"] == [5]
    assert any("have no interaction" in w for w in info.report["warnings"])


def test_embedding_dimension_mismatch_is_an_error(workspace, tmp_path):
    (tmp_path / "inter.csv").write_text("user,item\na,x\n")
    (tmp_path / "items.csv").write_text('item,embedding\nx,"1 2"\ny,"1 2 3"\n')
    with pytest.raises(DataError, match="different lengths"):
        import_file(workspace, tmp_path / "inter.csv", items=tmp_path / "items.csv")


def test_attach_side_table_later(workspace, tmp_path):
    info = import_bytes(workspace, b"user,item\na,x\nb,y\n", "s.csv")
    report = attach_side_table(
        workspace, info.name, b"item,title,category\nx,Ex,A|B\nq,Q,C\n", "items", "items.csv"
    )
    assert report["matched"] == 1 and report["unmatched_examples"] == ["q"]
    assert report["ids_without_side_row"] == 1
    data = load_dataset(workspace, info.id)
    assert data.item_titles().tolist() == ["Ex", "y"]
    assert data.item_categories() == [["A", "B"], []]
    pd.DataFrame({"user": ["a"], "country": ["FR"]}).to_parquet(tmp_path / "users.parquet")
    attach_side_table(workspace, info.id, tmp_path / "users.parquet", "users")
    country = load_dataset(workspace, info.id).user_table["country"]
    assert country.iloc[0] == "FR" and pd.isna(country.iloc[1])


def test_predefined_split_file(workspace, tmp_path):
    (tmp_path / "r.csv").write_text("userId,movieId,rating\n1,1,4\n1,2,3\n2,1,5\n")
    (tmp_path / "split.csv").write_text("userId,movieId,part\n1,1,test\n1,2,train\n2,1,valid\n")
    options = ImportOptions(split_file=str(tmp_path / "split.csv"))
    data = load_dataset(workspace, import_file(workspace, tmp_path / "r.csv", options=options).id)
    labels = dict(zip(zip(data.users, data.items, strict=True), data.labels, strict=True))
    assert labels[(data.user_index(1), data.item_index(1))] == "test"
    assert labels[(data.user_index(2), data.item_index(1))] == "valid"
    (tmp_path / "short.csv").write_text("userId,movieId,part\n1,1,test\n")
    with pytest.raises(DataError, match="no label"):
        import_file(
            workspace,
            tmp_path / "r.csv",
            options=ImportOptions(split_file=str(tmp_path / "short.csv")),
        )


def test_parquet_side_table_with_list_columns(workspace, tmp_path):
    info = import_bytes(workspace, b"user,item\na,1\nb,2\n", "l.csv")
    pd.DataFrame(
        {
            "item": [1, 2],
            "embedding": [np.array([1.0, 2.0]), np.array([3.0, 4.0])],
            "tags": [["funny", "short"], ["long"]],
            "genres": [["A", "B"], ["C"]],
        }
    ).to_parquet(tmp_path / "items.parquet")
    attach_side_table(workspace, info.id, tmp_path / "items.parquet", "items")
    table = load_dataset(workspace, info.id).item_table
    assert table["text"].tolist() == ["funny short", "long"]
    assert table["categories"].tolist() == ["A|B", "C"]
    np.testing.assert_allclose(np.stack(table["embedding"].to_list()), [[1, 2], [3, 4]])


@pytest.mark.parametrize("span", [10, 2**61])
def test_group_order_matches_lexsort(span):
    from recsys_core.data.importer import _group_order

    rng = np.random.default_rng(span % 97)
    key = rng.integers(0, 20, size=500)
    stamps = rng.integers(0, span, size=500, dtype=np.int64)
    np.testing.assert_array_equal(_group_order(key, stamps), np.lexsort((stamps, key)))
    np.testing.assert_array_equal(_group_order(key, None), np.argsort(key, kind="stable"))
