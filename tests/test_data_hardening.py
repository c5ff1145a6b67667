"""Importer hardening (issue 20): special files, size limits before reading, '::' headers,
Excel and gzip, huge lines, huge ids; and RecBole single files (issue 19, item 2)."""

from __future__ import annotations

import gzip
import os
import signal
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from recsys_core.cli.main import main
from recsys_core.data import store
from recsys_core.data.importer import ImportOptions, preview
from recsys_core.data.store import attach_side_table, import_bytes, import_file, load_dataset
from recsys_core.errors import DataError

CSV = "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.0,200\n2,10,5.0,150\n3,30,1.0,50\n"
EXPECTED = {(1, 10, 4.0), (1, 20, 3.0), (2, 10, 5.0), (3, 30, 1.0)}


def _triples(data) -> set[tuple]:
    frame = data.to_frame()
    return set(zip(frame["user"], frame["item"], frame["value"], strict=True))


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``.

    SIGALRM interrupts a blocking open() of a FIFO or an endless read of /dev/zero in the main
    thread; the handler's exception propagates out of the interrupted call.
    """

    def expire(signum, frame):  # noqa: ARG001 - signal handler signature
        raise TimeoutError(f"still running after {seconds} s: the importer hung")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _run(capsys, workspace, *args: str) -> tuple[int, str, str]:
    code = main(["--workspace", str(workspace.root), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ----- 1. special files ----------------------------------------------------------------------
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_dev_zero_is_refused_before_reading(workspace, capsys):
    with deadline(10):
        with pytest.raises(DataError, match="character device"):
            import_file(workspace, "/dev/zero")
        with pytest.raises(DataError, match="character device"):
            preview(Path("/dev/zero"))
        code, _, err = _run(capsys, workspace, "import", "/dev/zero")
    assert code == 2 and "not a regular file" in err and "Fix:" in err


def test_fifo_is_refused_without_blocking(workspace, tmp_path):
    fifo = tmp_path / "ratings.csv"
    os.mkfifo(fifo)
    with deadline(10):
        with pytest.raises(DataError, match="FIFO"):
            import_file(workspace, fifo)
        with pytest.raises(DataError, match="FIFO"):
            preview(fifo)
    assert store.list_datasets(workspace) == []


def test_fifo_inside_a_folder_is_refused_without_blocking(workspace, tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "ratings.csv").write_text(CSV)
    os.mkfifo(folder / "items.csv")
    with deadline(10), pytest.raises(DataError, match="FIFO") as error:
        import_file(workspace, folder)
    assert "items.csv" in str(error.value)


def test_reads_are_bounded_while_streaming_not_only_by_stat(tmp_path, monkeypatch):
    """A file that grows past the limit after stat (or reports a wrong size) is still refused."""
    from recsys_core.data.readers import read_path

    path = tmp_path / "r.csv"
    path.write_bytes(CSV.encode() * 20_000)  # ~1.5 MB
    with pytest.raises(DataError, match="larger than the size limit"):
        read_path(path, max_bytes=2**20)
    assert len(read_path(path, max_bytes=4 * 2**20)) == len(CSV) * 20_000


# ----- 2. folder sizes summed before hashing --------------------------------------------------
def test_folder_over_the_limit_is_refused_before_hashing(workspace, tmp_path, monkeypatch):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "ratings.csv").write_text(CSV)
    for i in range(3):
        (folder / f"blob{i}.bin").write_bytes(b"\0" * 400_000)

    def no_hash(*args, **kwargs):
        raise AssertionError("the folder was hashed (every byte read) before its size check")

    monkeypatch.setattr(store, "hash_path", no_hash)
    with pytest.raises(DataError, match="over the limit of 1 MB"):
        import_file(workspace, folder, options=ImportOptions(max_file_mb=1))


# ----- 3. '::' with a header ------------------------------------------------------------------
@pytest.mark.parametrize("flags", [["--separator", "::"], []])
def test_double_colon_with_a_header(workspace, tmp_path, capsys, flags):
    path = tmp_path / "c.dat"
    path.write_text("user::item::rating\n1::10::4\n2::11::3\n")
    code, out, err = _run(capsys, workspace, "import", str(path), *flags)
    assert code == 0, err
    data = load_dataset(workspace, store.list_datasets(workspace)[0].id)
    assert _triples(data) == {(1, 10, 4.0), (2, 11, 3.0)}


# ----- 4. Excel and gzip ----------------------------------------------------------------------
def _workbook(path: Path) -> None:
    frame = pd.read_csv(pd.io.common.StringIO(CSV))
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        pd.DataFrame({"about": ["ratings are on the next sheet"]}).to_excel(
            writer, sheet_name="Read me", index=False
        )
        frame.to_excel(writer, sheet_name="ratings", index=False)


@pytest.mark.parametrize("sheet", ["ratings", "2"])
def test_xlsx_chosen_sheet(workspace, tmp_path, sheet):
    path = tmp_path / "shop.xlsx"
    _workbook(path)
    info = import_file(workspace, path, options=ImportOptions(sheet=sheet))
    assert _triples(load_dataset(workspace, info.id)) == EXPECTED
    assert info.report["format"] == "xlsx"


def test_xlsx_first_sheet_by_default_upload_and_cli(workspace, tmp_path, capsys):
    path = tmp_path / "plain.xlsx"
    pd.read_csv(pd.io.common.StringIO(CSV)).to_excel(path, index=False, engine="openpyxl")
    info = import_bytes(workspace, path.read_bytes(), "plain.xlsx")
    assert _triples(load_dataset(workspace, info.id)) == EXPECTED
    two = tmp_path / "two.xlsx"
    _workbook(two)
    code, _, err = _run(capsys, workspace, "import", str(two), "--sheet", "nope")
    assert code == 2 and "no sheet 'nope'" in err and "ratings" in err


@pytest.mark.parametrize("suffix, sep", [(".csv.gz", ","), (".tsv.gz", "\t")])
def test_gzip_text_by_path_and_upload(workspace, tmp_path, suffix, sep):
    data = gzip.compress(CSV.replace(",", sep).encode())
    path = tmp_path / f"ratings{suffix}"
    path.write_bytes(data)
    info = import_file(workspace, path)
    assert _triples(load_dataset(workspace, info.id)) == EXPECTED
    assert info.name == "ratings"
    info = import_bytes(workspace, data, f"upload{suffix}", options=ImportOptions(duplicates="max"))
    assert _triples(load_dataset(workspace, info.id)) == EXPECTED


def test_gzip_bomb_is_refused_while_decompressing(workspace, tmp_path):
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(CSV.encode() + b"9,9,1,1\n" * 400_000))  # 3 MB expanded
    with pytest.raises(DataError, match="expands past the size limit"):
        import_file(workspace, path, options=ImportOptions(max_file_mb=1))


@pytest.mark.parametrize(
    "filename, content, says",
    [
        ("book.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "save it as .xlsx"),
        ("events.json", b'[{"user": 1, "item": 2}]', "pd.read_json('events.json')"),
    ],
)
def test_unsupported_formats_name_the_file_and_the_conversion(
    workspace, filename, content, says, capsys, tmp_path
):
    with pytest.raises(DataError) as error:
        import_bytes(workspace, content, filename)
    message = str(error.value)
    assert filename in message and says in message and "recsys-" not in message
    path = tmp_path / filename
    path.write_bytes(content)
    code, _, err = _run(capsys, workspace, "import", str(path))
    assert code == 2 and filename in err and says in err


def test_office_zip_refusal_names_the_upload_not_a_temp_folder(workspace):
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<document/>")
    with pytest.raises(DataError) as error:
        import_bytes(workspace, buffer.getvalue(), "notes.docx")
    assert "Where: notes.docx" in str(error.value) and "recsys-" not in str(error.value)


# ----- 5. a single huge line ------------------------------------------------------------------
def test_single_huge_line_is_named_with_little_memory(workspace, tmp_path):
    line = b"1,10," + b"7" * (40 * 2**20)  # a 40 MB line, no line break
    path = tmp_path / "dump.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ratings.csv", b"user,item,rating\n" + line)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"line 2 is longer than 16 MB") as error:
            import_file(workspace, path, options=ImportOptions(max_file_mb=100))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "one row per line" in str(error.value)
    assert peak < 30 * 2**20, f"peak {peak / 2**20:.0f} MB to refuse a 40 MB line"
    gz = tmp_path / "dump.csv.gz"
    gz.write_bytes(gzip.compress(b"user,item\n1,2\n" + line, compresslevel=1))
    with pytest.raises(DataError, match=r"line 3 is longer than 16 MB"):
        import_file(workspace, gz, options=ImportOptions(max_file_mb=100))


def test_lines_longer_than_a_parser_block_still_parse(workspace, tmp_path):
    """A 2 MB note in one row (pyarrow's default block is 1 MB) is read, not refused."""
    path = tmp_path / "notes.csv"
    path.write_text("user,item,note\n1,10," + "n" * (2 * 2**20) + "\n2,11,short\n")
    info = import_file(workspace, path)
    assert info.n_interactions == 2


# ----- 8. huge ids ----------------------------------------------------------------------------
def test_ids_longer_than_the_limit_are_refused_with_the_row(workspace, tmp_path, capsys):
    path = tmp_path / "ids.csv"
    path.write_text(f"user,item\nu1,i1\n{'x' * 100_000},i2\nu2,i1\n")
    with pytest.raises(DataError, match="longer than 1,024 characters") as error:
        import_file(workspace, path)
    assert "line 3" in str(error.value) and "max_id_length" in str(error.value)
    code, _, err = _run(capsys, workspace, "import", str(path), "--max-id-length", "200000")
    assert code == 0, err


# ----- issue 19, item 2: RecBole single files -------------------------------------------------
INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir\n"
    "377\tHeavyweights\t1994\tChildren Comedy\n"
)


def test_recbole_inter_upload_and_preview(workspace, tmp_path):
    path = tmp_path / "ml-100k.inter"
    path.write_text(INTER)
    seen = preview(path)
    assert seen["problem"] is None and seen["detected"]["user"] == "user_id"
    info = import_bytes(workspace, INTER.encode(), "ml-100k.inter")
    data = load_dataset(workspace, info.id)
    assert _triples(data) == {(196, 242, 3.0), (186, 302, 3.0), (196, 377, 1.0)}
    assert info.report["format"] == "recbole"


def test_recbole_single_file_by_path_takes_its_item_file(workspace, tmp_path, capsys):
    (tmp_path / "ml-100k.inter").write_text(INTER)
    (tmp_path / "ml-100k.item").write_text(ITEM)
    code, _, err = _run(capsys, workspace, "import", str(tmp_path / "ml-100k.inter"))
    assert code == 0, err
    data = load_dataset(workspace, store.list_datasets(workspace)[0].id)
    assert data.item_table is not None and "Crime|Film-Noir" in set(data.item_table["categories"])


@pytest.mark.parametrize("kind, filename", [("items", "ml-100k.item"), ("users", "ml-100k.user")])
def test_recbole_side_files_attach(workspace, tmp_path, kind, filename):
    info = import_bytes(workspace, INTER.encode(), "ml-100k.inter")
    table = ITEM if kind == "items" else "user_id:token\tage:token\n196\t49\n186\t39\n"
    report = attach_side_table(workspace, info.id, table.encode(), kind=kind, filename=filename)
    assert report["matched"] == (3 if kind == "items" else 2)
    path = tmp_path / filename
    path.write_text(table)
    report = attach_side_table(workspace, info.id, path, kind=kind)
    assert report["matched"] == (3 if kind == "items" else 2)
