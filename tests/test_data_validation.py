"""Bad input: one DataError naming problem, place and fix; nothing stored changes."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_core.data.importer import ImportOptions
from recsys_core.data.store import import_bytes, import_file, list_datasets
from recsys_core.errors import DataError

GOOD = b"user,item,rating,timestamp\na,x,4,100\nb,y,3,200\n"


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


def _snapshot(ws) -> tuple:
    infos = list_datasets(ws)
    folders = sorted(p.name for p in ws.datasets_dir.iterdir())
    return [(i.id, i.name, i.n_interactions) for i in infos], folders


CASES = [
    ("empty.csv", b"", {}, ["empty"]),
    ("blank.csv", b"   \n\n", {}, ["empty"]),
    ("header.csv", b"user,item\n", {}, ["no data rows"]),
    ("noitem.csv", b"user,thing\na,1\n", {}, ["no item column", "thing", "--map item="]),
    ("amb.csv", b"user,user_id,item\na,b,c\n", {}, ["ambiguous", "user_id", "--map user="]),
    ("nulls.csv", b"user,item\na,x\n,y\nb,z\n,w\n", {}, ["empty", "lines 3, 5", "'user'"]),
    (
        "ratings.csv",
        b"user,item,rating\na,x,4\nb,y,five\nc,z,3\n",
        {},
        ["not numbers", "five", "line 3", "'rating'"],
    ),
    (
        "ts.csv",
        b"user,item,timestamp\na,x,2020-01-01\nb,y,yesterday\n",
        {},
        ["could not be parsed", "yesterday", "line 3", "ISO 8601"],
    ),
    ("sep.tsv", b"user,item\na,x\nb,y\n", {}, ["single column", "','"]),
    (
        "semi.csv",
        b"user;item\na;x\nb;y\n",
        {"separator": ","},
        ["single column", "';'", "separator"],
    ),
    ("latin.csv", "user,item\nRen\xe9,x\n".encode("latin-1"), {}, ["UTF-8", "line 2", "latin-1"]),
    ("image.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, {}, ["PNG", "CSV"]),
    ("blob.csv", b"user,item\n\x00\x01\x02", {}, ["binary", "NUL"]),
    (
        "evil.zip",
        _zip({"../../escape.csv": GOOD}),
        {},
        ["outside the archive", "relative paths"],
    ),
    (
        "bomb.zip",
        _zip({"big.csv": b"user,item\n" + b"a,b\n" * 400_000}),
        {"max_file_mb": 1.0},
        ["size limit", "max_file_mb"],
    ),
    ("big.csv", GOOD * 1, {"max_file_mb": 0.00001}, ["over the limit", "max_file_mb"]),
    (
        "sheet.csv",
        _zip({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<x/>"}),
        {},
        ["Excel", "CSV"],
    ),
    ("nofile.zip", _zip({"readme.md": b"hello"}), {}, ["no data file"]),
    (
        "split.csv",
        b"user,item,split\na,x,train\nb,y,holdout\n",
        {"mapping": {"split": "split"}},
        ["train, valid or test", "holdout"],
    ),
    ("ragged.csv", b"user,item\na,x\nb,y,z,w\n", {}, ["could not be parsed"]),
    ("eu.csv", b"user;item;rating\na;x;4,5\n", {}, ["not numbers", "decimal comma"]),
    ("inf.csv", b"user,item,rating\na,x,inf\n", {}, ["not numbers"]),
    ("filtered.csv", GOOD, {"min_user_interactions": 5}, ["no interactions are left"]),
    ("dup.csv", b"a,a,item\n1,2,3\n", {}, ["twice"]),
]


@pytest.mark.parametrize("filename, payload, options, needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_data_error_and_changes_nothing(
    workspace, filename, payload, options, needles
):
    import_bytes(workspace, GOOD, "good.csv")
    before = _snapshot(workspace)
    with pytest.raises(DataError) as caught:
        import_bytes(workspace, payload, filename, options=ImportOptions(**options))
    message = str(caught.value)
    for needle in needles:
        assert needle in message, message
    assert "Fix:" in message
    assert _snapshot(workspace) == before


def test_missing_path_and_taken_name(workspace, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        import_file(workspace, tmp_path / "nope.csv")
    import_bytes(workspace, GOOD, "good.csv", name="shop")
    with pytest.raises(DataError, match="already exists"):
        import_bytes(workspace, GOOD.replace(b"b,y", b"c,y"), "other.csv", name="shop")
    assert [i.name for i in list_datasets(workspace)] == ["shop"]


def test_mapping_to_a_missing_column(workspace):
    options = ImportOptions(mapping={"user": "customer"})
    with pytest.raises(DataError, match="customer"):
        import_bytes(workspace, GOOD, "g.csv", options=options)


def test_headerless_file_is_explained(workspace):
    with pytest.raises(DataError, match="no header"):
        import_bytes(workspace, b"1,2,3\n4,5,6\n", "raw.csv")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payload=st.one_of(
        st.binary(max_size=300),
        st.text(alphabet="ab,;|\t\n\"'01.:-Tx ", max_size=300).map(str.encode),
        st.lists(
            st.tuples(st.sampled_from(["a", "1", "", "007", "x y"]), st.text(max_size=5)),
            max_size=8,
        ).map(lambda rows: ("user,item\n" + "\n".join(f"{u},{i}" for u, i in rows)).encode()),
    ),
    filename=st.sampled_from(["f.csv", "f.tsv", "f.parquet", "f.zip", "u.data", "f.txt"]),
)
def test_fuzz_only_data_errors(workspace, payload, filename):
    try:
        import_bytes(workspace, payload, filename)
    except DataError:
        pass
