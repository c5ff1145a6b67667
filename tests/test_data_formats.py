"""Every supported layout reads into the same dataset; ids and timestamps round-trip."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from recsys_core.data.importer import ImportOptions, preview
from recsys_core.data.store import import_bytes, import_file, load_dataset

CSV = "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.0,200\n2,10,5.0,150\n3,30,1.0,50\n"


def _triples(data) -> set[tuple]:
    frame = data.to_frame()
    return set(zip(frame["user"], frame["item"], frame["value"], strict=True))


EXPECTED = {(1, 10, 4.0), (1, 20, 3.0), (2, 10, 5.0), (3, 30, 1.0)}


def test_csv_detects_columns_and_keeps_int_ids(workspace, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(CSV)
    info = import_file(workspace, path)
    data = load_dataset(workspace, info.id)
    assert _triples(data) == EXPECTED
    assert data.user_ids.dtype.kind == "i" and data.item_ids.dtype.kind == "i"
    assert info.report["columns"] == {
        "user": "userId",
        "item": "movieId",
        "value": "rating",
        "timestamp": "timestamp",
    }
    assert sorted(data.timestamps.tolist()) == [50, 100, 150, 200]


@pytest.mark.parametrize("sep, suffix", [("\t", ".tsv"), (";", ".csv"), ("|", ".txt")])
def test_delimited_variants(workspace, tmp_path, sep, suffix):
    path = tmp_path / f"r{suffix}"
    path.write_text(CSV.replace(",", sep))
    data = load_dataset(workspace, import_file(workspace, path).id)
    assert _triples(data) == EXPECTED


def test_parquet_keeps_types(workspace, tmp_path):
    frame = pd.DataFrame(
        {"user_id": ["007", "7", "a"], "item_id": [1, 2, 3], "score": [1.0, 2.0, 3.0]}
    )
    frame.to_parquet(tmp_path / "x.parquet")
    data = load_dataset(workspace, import_file(workspace, tmp_path / "x.parquet").id)
    assert sorted(data.user_ids.tolist()) == ["007", "7", "a"]
    assert sorted(data.item_ids.tolist()) == [1, 2, 3]


def test_string_ids_with_leading_zeros_round_trip(workspace, tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("user,item\n007,0042\n7,42\n-3,x1\n")
    data = load_dataset(workspace, import_file(workspace, path).id)
    assert set(data.user_ids.tolist()) == {"007", "7", "-3"}
    assert set(data.item_ids.tolist()) == {"0042", "42", "x1"}
    assert data.user_index("007") != data.user_index("7")
    assert data.values.tolist() == [1.0, 1.0, 1.0]


def test_negative_and_plain_int_ids_stay_ints(workspace, tmp_path):
    path = tmp_path / "ints.csv"
    path.write_text("uid,iid\n-3,0\n12,5\n")
    data = load_dataset(workspace, import_file(workspace, path).id)
    assert sorted(data.user_ids.tolist()) == [-3, 12]
    assert sorted(data.item_ids.tolist()) == [0, 5]


@pytest.mark.parametrize(
    "stamps, expected",
    [
        (["1600000000", "1600000060"], [1600000000, 1600000060]),
        (["1600000000000", "1600000060500"], [1600000000, 1600000060]),
        (["2020-09-13T12:26:40Z", "2020-09-13 12:27:40"], [1600000000, 1600000060]),
        (["2020-09-13T14:26:40+02:00", "2020-09-13T12:27:40.000"], [1600000000, 1600000060]),
    ],
)
def test_timestamp_forms_normalise_to_seconds(workspace, tmp_path, stamps, expected):
    path = tmp_path / "t.csv"
    path.write_text(f"user,item,ts\na,x,{stamps[0]}\na,y,{stamps[1]}\n")
    data = load_dataset(workspace, import_file(workspace, path).id)
    assert sorted(data.timestamps.tolist()) == expected


def test_event_and_split_columns(workspace, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("user,item,event,split\na,x,click,train\na,y,buy,Test\nb,x,click,validation\n")
    data = load_dataset(workspace, import_file(workspace, path).id)
    assert sorted(data.events.tolist()) == ["buy", "click", "click"]
    assert sorted(data.labels.tolist()) == ["test", "train", "valid"]


def test_movielens_100k_layout(workspace, tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text(
        "1\t10\t4\t881250949\n2\t10\t3\t891717742\n1\t20\t5\t878887116\n"
    )
    flags_a = "|".join(["0", "1", "0"] + ["0"] * 16)
    flags_b = "|".join(["0", "0", "0", "0", "0", "1"] + ["0"] * 13)
    (folder / "u.item").write_bytes(
        f"10|Mis\xe9rables (1995)|01-Jan-1995||http://x|{flags_a}\n"
        f"20|Comedy Film (1994)|01-Jan-1994||http://y|{flags_b}\n".encode("latin-1")
    )
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    info = import_file(workspace, folder / "u.data")
    data = load_dataset(workspace, info.id)
    assert info.report["format"] == "movielens-100k"
    assert data.nnz == 3 and data.n_users == 2
    table = data.item_table
    assert table["title"].tolist() == ["Misérables (1995)", "Comedy Film (1994)"]
    assert table["categories"].tolist() == ["Action", "Comedy"]
    assert table["year"].tolist() == [1995.0, 1994.0]
    assert data.user_table["occupation"].tolist() == ["technician", "other"]


def test_movielens_1m_layout_in_a_zip(workspace, tmp_path):
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::10::5::978300760\n2::20::3::978302109\n")
        zf.writestr("ml-1m/movies.dat", "10::Heat (1995)::Action|Crime\n20::Up (2009)::Animation\n")
        zf.writestr("ml-1m/users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    info = import_file(workspace, archive)
    data = load_dataset(workspace, info.id)
    assert info.report["format"] == "movielens-1m"
    assert _triples(data) == {(1, 10, 5.0), (2, 20, 3.0)}
    assert data.item_table["categories"].tolist() == ["Action|Crime", "Animation"]
    assert data.item_table["year"].tolist() == [1995.0, 2009.0]
    assert data.user_table["gender"].tolist() == ["F", "M"]


def test_movielens_latest_layout_with_tags(workspace, tmp_path):
    (tmp_path / "ratings.csv").write_text(CSV)
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n20,Up (2009),'
        "(no genres listed)\n30,Z (1969),Drama\n99,Unrated (2001),Drama\n"
    )
    (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,10,tense,1\n2,10,long,2\n")
    info = import_file(workspace, tmp_path / "ratings.csv")
    data = load_dataset(workspace, info.id)
    assert info.name == tmp_path.name
    table = data.item_table
    assert table["title"].iloc[data.item_index(10)] == "Heat, The (1995)"
    assert table["categories"].iloc[data.item_index(20)] == ""
    assert "tense" in table["text"].iloc[data.item_index(10)]
    side = info.report["side"]["items"]
    assert side["unmatched_count"] == 1 and side["unmatched_examples"] == [99]


def test_recbole_atomic_files(workspace, tmp_path):
    (tmp_path / "shop.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti1\t4\t100\nu2\ti1\t5\t200\nu1\ti2\t3\t300\n"
    )
    (tmp_path / "shop.item").write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
        "i1\tThe Film\tAction Drama\ni2\tOther\tComedy\n"
    )
    archive = tmp_path / "shop.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "shop.inter", "shop.inter")
        zf.write(tmp_path / "shop.item", "shop.item")
    info = import_file(workspace, archive)
    data = load_dataset(workspace, info.id)
    assert info.report["format"] == "recbole"
    assert data.nnz == 3 and sorted(data.user_ids.tolist()) == ["u1", "u2"]
    assert data.item_table["categories"].tolist() == ["Action|Drama", "Comedy"]
    assert data.item_table["title"].tolist() == ["The Film", "Other"]


def test_zip_with_data_file_and_side_tables(workspace, tmp_path):
    buffer = tmp_path / "bundle.zip"
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("events.csv", "customer,product\nc1,p1\nc2,p1\nc2,p2\n")
        zf.writestr("items.csv", "product,name,price\np1,Lamp,10\np2,Desk,99.5\np3,Sofa,300\n")
    data_bytes = buffer.read_bytes()
    info = import_bytes(workspace, data_bytes, "bundle.zip")
    data = load_dataset(workspace, info.id)
    assert data.n_items == 2
    assert data.item_table["title"].tolist() == ["Lamp", "Desk"]
    assert data.item_table["price"].tolist() == [10.0, 99.5]
    assert info.report["side"]["items"]["unmatched_examples"] == ["p3"]


def test_mapping_override(workspace, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b,c\nx,1,5\ny,2,3\n")
    options = ImportOptions(mapping={"user": "a", "item": "b", "value": "c"})
    data = load_dataset(workspace, import_file(workspace, path, options=options).id)
    assert sorted(data.values.tolist()) == [3.0, 5.0]
    assert np.array_equal(np.sort(data.item_ids), [1, 2])


def test_preview_reports_detection_without_storing(workspace, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("user,uid,item,stars\na,1,x,5\nb,2,y,4\n")
    seen = preview(path)
    assert seen["columns"] == ["user", "uid", "item", "stars"] and seen["rows"] == 2
    assert seen["detected"] == {} and "ambiguous" in seen["problem"]
    fixed = preview(path, ImportOptions(mapping={"user": "uid"}))
    assert fixed["problem"] is None
    assert fixed["detected"] == {"user": "uid", "item": "item", "value": "stars"}
    assert list(workspace.datasets_dir.iterdir()) == []


def test_predefined_split_as_separate_files(workspace, tmp_path):
    archive = tmp_path / "parts.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("shop_train.csv", "user,item\na,x\na,y\nb,x\n")
        zf.writestr("shop_valid.csv", "user,item\nb,y\n")
        zf.writestr("shop_test.csv", "user,item\na,z\n")
        zf.writestr("items.csv", "item,title\nx,X\n")
    info = import_file(workspace, archive)
    data = load_dataset(workspace, info.id)
    labels = data.to_frame().set_index(["user", "item"])["split"].to_dict()
    assert labels == {
        ("a", "x"): "train",
        ("a", "y"): "train",
        ("b", "x"): "train",
        ("b", "y"): "valid",
        ("a", "z"): "test",
    }
    assert data.item_titles()[data.item_index("x")] == "X"


def test_recbole_benchmark_split_files(workspace, tmp_path):
    header = "user_id:token\titem_id:token\n"
    (tmp_path / "ml.train.inter").write_text(header + "1\t1\n1\t2\n")
    (tmp_path / "ml.test.inter").write_text(header + "1\t3\n")
    data = load_dataset(workspace, import_file(workspace, tmp_path).id)
    assert sorted(data.labels.tolist()) == ["test", "train", "train"]


def test_incomplete_split_files_are_explained(workspace, tmp_path):
    from recsys_core.errors import DataError

    (tmp_path / "train.csv").write_text("user,item\na,x\n")
    (tmp_path / "valid.csv").write_text("user,item\na,y\n")
    with pytest.raises(DataError, match="one train and one test"):
        import_file(workspace, tmp_path)
