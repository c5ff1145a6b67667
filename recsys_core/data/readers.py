"""File formats: sniff what a file or folder is and read it into raw frames.

Readers return :class:`RawData`: the interaction frame exactly as in the file (text formats keep
every column as strings, so ids such as ``"007"`` are never reinterpreted before the importer
decides their type) plus optional item and user side frames. Column mapping, validation and
encoding happen in :mod:`recsys_core.data.importer`.

Supported layouts
-----------------
- CSV / TSV (separator sniffed from the header line unless given), Parquet.
- MovieLens as distributed: ``u.data`` + ``u.item`` + ``u.user`` (100K), ``ratings.dat`` +
  ``movies.dat`` + ``users.dat`` with ``::`` (1M/10M), ``ratings.csv`` + ``movies.csv`` [+
  ``tags.csv``] with headers (latest / latest-small).
- RecBole atomic files: ``*.inter`` / ``*.item`` / ``*.user`` with ``name:type`` headers.
- A folder or ``.zip`` holding any of these (or one data file plus optional ``items.*`` /
  ``users.*`` tables, or a predefined split as separate ``*train*`` / ``*valid*`` / ``*test*``
  files, which become one frame with a ``split`` column). Zips are extracted safely: member
  paths may not escape the folder and the expanded size is capped (zip bombs are refused while
  streaming, not trusted from headers).

Encoding policy: generic files must be UTF-8 (a BOM is accepted); other bytes raise a
:class:`DataError` naming the line and telling the user to re-save as UTF-8 or pass
``encoding="latin-1"``. The MovieLens 100K/1M side files are Latin-1 as distributed, so those
readers fall back to Latin-1 and say so in the notes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recsys_core.data.columns import CATEGORIES, ITEM, TEXT, TIMESTAMP, TITLE, USER, VALUE
from recsys_core.errors import DataError

#: Separators tried when sniffing a text file's header line (tab first: it is never in a name).
SEPARATORS = ("\t", ",", ";", "|")
SEPARATOR_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", "::": "'::'"}
TEXT_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".dat", ".data", ".inter", ".item", ".user"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
#: Values read as missing in text files (kept short on purpose: an id such as "None" survives).
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NULL", "null"]

_MAGIC = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PAR1", "parquet"),
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"SQLite format 3", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office document"),
)

ML100K_GENRES = (
    "unknown|Action|Adventure|Animation|Children's|Comedy|Crime|Documentary|Drama|Fantasy|"
    "Film-Noir|Horror|Musical|Mystery|Romance|Sci-Fi|Thriller|War|Western"
).split("|")


@dataclass
class RawData:
    """What a reader found, before mapping and validation.

    Attributes
    ----------
    interactions : raw interaction frame [n_rows, n_columns]; text formats give string columns.
    items, users : raw side frames or None.
    fmt : a short name of the detected layout (``"csv"``, ``"movielens-100k"``, ...).
    notes : what the reader decided on the user's behalf (separator, encoding fallbacks).
    header_lines : lines before the first data row in the interaction file (for row numbers).
    source : the file name the interaction frame came from (for messages).
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    fmt: str = "csv"
    notes: list[str] = field(default_factory=list)
    header_lines: int = 1
    source: str = ""


# ---------------------------------------------------------------------------------------------
# sniffing
# ---------------------------------------------------------------------------------------------
def sniff_binary(head: bytes) -> str | None:
    """The kind of binary content ``head`` starts with, or None when it looks like text."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if b"\x00" in head[:65536]:
        return "binary data (it contains NUL bytes)"
    return None


def sniff_separator(header_line: str, suffix: str) -> str:
    """Separator of a delimited text file from its extension and header line."""
    if suffix in (".tsv", ".tab", ".inter", ".item", ".user"):
        return "\t"
    if "::" in header_line:
        return "::"
    counts = {sep: header_line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda s: (counts[s], s == ","))
    return best if counts[best] > 0 else ","


def _decode_check(data: bytes, name: str, encoding: str) -> str:
    """Decode ``data`` strictly; a failure names the line and says how to fix it."""
    try:
        return data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"the file is not valid {encoding} text (byte 0x{data[error.start]:02x} "
            f"at offset {error.start})",
            where=f"{name}, line {line}",
            fix="re-save the file as UTF-8, or import it with encoding='latin-1' "
            "(CLI: --encoding latin-1)",
        ) from None


# ---------------------------------------------------------------------------------------------
# delimited text and parquet
# ---------------------------------------------------------------------------------------------
def read_delimited(
    data: bytes,
    name: str,
    *,
    separator: str | None = None,
    encoding: str = "utf-8",
    column_names: list[str] | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Read delimited text with every column as strings (pyarrow's multithreaded parser).

    Parameters
    ----------
    data : the file's bytes.
    name : file name for messages; its suffix guides the separator.
    separator : forced separator; None sniffs it from the header line.
    encoding : ``"utf-8"`` (strict) or another Python codec name such as ``"latin-1"``.
    column_names : names for a headerless file; None means the first line is the header.
    notes : list that receives the decisions taken (e.g. the sniffed separator).

    Returns
    -------
    DataFrame [n_rows, n_columns] of ``str`` columns (missing values are NaN).
    """
    kind = sniff_binary(data[:65536])
    if kind is not None:
        raise DataError(
            f"the file is {kind}, not delimited text",
            where=name,
            fix="export the data as CSV, TSV or Parquet (or a .zip of them) and import that",
        )
    text = _decode_check(data, name, encoding)
    if not text.strip():
        raise DataError(
            "the file is empty", where=name, fix="choose a file with a header and data rows"
        )
    first_line = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    suffix = Path(name).suffix.lower()
    sep = separator or sniff_separator(first_line, suffix)
    if notes is not None and separator is None and column_names is None:
        notes.append(f"separator: {SEPARATOR_NAMES.get(sep, repr(sep))} (detected)")
    if len(sep) > 1:
        # pyarrow only splits on one byte; '::' (MovieLens 1M) becomes a unit separator.
        text = text.replace(sep, "\x1f")
        sep = "\x1f"
    if column_names is None:
        header = next(csv.reader([first_line.lstrip("\ufeff")], delimiter=sep))
        names = [h.strip() for h in header]
        skip = 1
    else:
        names, skip = list(column_names), 0
    _check_header(names, first_line, name, sep, separator)
    if encoding == "utf-8" and sep != "\x1f":
        body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data  # already valid UTF-8
    else:
        body = text.encode("utf-8")
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=NULL_VALUES,
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        message = str(error).split("\n")[0]
        raise DataError(
            f"the file could not be parsed as {SEPARATOR_NAMES.get(sep, repr(sep))}-separated "
            f"text: {message}",
            where=name,
            fix="check that every row has the same number of fields as the header and that "
            "quotes are balanced",
        ) from None
    frame = table.to_pandas()
    if frame.empty:
        raise DataError(
            "the file has a header but no data rows",
            where=name,
            fix="choose a file with at least one interaction row",
        )
    return frame


def _check_header(
    names: list[str], first_line: str, name: str, sep: str, forced: str | None
) -> None:
    """Refuse duplicated header names and single-column files split by another separator."""
    if len(names) == 1:
        others = [s for s in SEPARATORS + ("::",) if s != sep and s in first_line]
        if others:
            found = others[0]
            raise DataError(
                f"the file has a single column {first_line[:60]!r}, which contains "
                f"{SEPARATOR_NAMES[found]}s: the separator is probably {found!r}, not "
                f"{SEPARATOR_NAMES.get(sep, repr(sep))}",
                where=f"{name}, header line",
                fix=f"import with separator={found!r} (CLI: --separator {found!r})",
            )
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DataError(
                f"the header names column {n!r} twice",
                where=f"{name}, header line",
                fix="give every column a distinct name",
            )
        seen.add(n)


def read_parquet_bytes(data: bytes, name: str) -> pd.DataFrame:
    """Read a Parquet file from bytes with its stored types (ids keep their type)."""
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001 - pyarrow raises many types for corrupt files
        raise DataError(
            f"the Parquet file could not be read ({type(error).__name__}: {error})",
            where=name,
            fix="re-export the file as Parquet, or as CSV",
        ) from None
    if frame.empty:
        raise DataError("the Parquet file has no rows", where=name, fix="choose a non-empty file")
    return frame


def read_table(
    data: bytes,
    name: str,
    *,
    separator: str | None = None,
    encoding: str = "utf-8",
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Read one tabular file (Parquet by suffix or magic bytes, else delimited text)."""
    if Path(name).suffix.lower() in PARQUET_SUFFIXES or data[:4] == b"PAR1":
        return read_parquet_bytes(data, name)
    return read_delimited(data, name, separator=separator, encoding=encoding, notes=notes)


# ---------------------------------------------------------------------------------------------
# zip
# ---------------------------------------------------------------------------------------------
def safe_extract(archive: Path | bytes, dest: Path, *, max_bytes: int, name: str) -> Path:
    """Extract a zip into ``dest`` refusing path traversal, links and bombs.

    The expanded size is counted while streaming (the sizes in the zip's headers can lie), and
    extraction stops as soon as it passes ``max_bytes``.
    """
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(
            f"the zip archive is damaged ({error})", where=name, fix="re-create the zip file"
        ) from None
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    with zf:
        members = zf.infolist()
        if sum(m.file_size for m in members) > max_bytes:
            raise DataError(
                f"the zip expands to more than the size limit of {max_bytes / 2**20:.0f} MB",
                where=name,
                fix="import a smaller archive, or raise max_file_mb",
            )
        for member in members:
            target = (dest / member.filename).resolve()
            if member.filename.startswith(("/", "\\")) or not target.is_relative_to(dest):
                raise DataError(
                    f"the zip entry {member.filename!r} points outside the archive's folder",
                    where=name,
                    fix="re-create the zip with relative paths only (no '..' or absolute paths)",
                )
            if (member.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(
                    f"the zip entry {member.filename!r} is a symbolic link",
                    where=name,
                    fix="re-create the zip with plain files only",
                )
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise DataError(
                                f"the zip expands past the size limit of "
                                f"{max_bytes / 2**20:.0f} MB (a zip bomb or a very large archive)",
                                where=f"{name}, entry {member.filename!r}",
                                fix="import a smaller archive, or raise max_file_mb",
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as error:
                raise DataError(
                    f"the zip entry {member.filename!r} could not be read ({error})",
                    where=name,
                    fix="re-create the zip without encryption, using deflate or no compression",
                ) from None
    return dest


# ---------------------------------------------------------------------------------------------
# folders: MovieLens, RecBole, plain files
# ---------------------------------------------------------------------------------------------
def _find(folder: Path, filename: str) -> Path | None:
    hits = sorted(
        (p for p in folder.rglob(filename) if "__MACOSX" not in p.parts and p.is_file()),
        key=lambda p: len(p.parts),
    )
    return hits[0] if hits else None


def _read_latin1_fallback(path: Path, notes: list[str], **kwargs: object) -> pd.DataFrame:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        return read_delimited(data, path.name, **kwargs)  # type: ignore[arg-type]
    except UnicodeDecodeError:
        notes.append(f"{path.name}: read as Latin-1 (MovieLens distributes it in that encoding)")
        return read_delimited(data, path.name, encoding="latin-1", **kwargs)  # type: ignore[arg-type]


def _year_from_title(titles: pd.Series) -> pd.Series:
    """MovieLens titles end in "(1995)": the release year as a float (NaN where absent)."""
    return pd.to_numeric(titles.str.extract(r"\((\d{4})\)\s*$", expand=False), errors="coerce")


def _read_ml100k(path: Path, notes: list[str]) -> RawData:
    folder = path.parent
    inter = read_delimited(
        path.read_bytes(), path.name, separator="\t", column_names=[USER, ITEM, VALUE, TIMESTAMP]
    )
    items = users = None
    if (item_path := folder / "u.item").exists():
        genres = list(ML100K_GENRES)
        if (genre_path := folder / "u.genre").exists():
            listed = [
                line.split("|")[0]
                for line in genre_path.read_text("latin-1").splitlines()
                if "|" in line
            ]
            genres = listed or genres
        names = [ITEM, TITLE, "release_date", "video_release_date", "imdb_url", *genres]
        raw = _read_latin1_fallback(item_path, notes, separator="|", column_names=names)
        flags = raw[genres].astype("float64").fillna(0.0).astype(np.int64)
        # flags @ "Genre|" concatenates the names of the flagged genres, vectorised.
        joined = flags.dot(pd.Series([g + "|" for g in genres], index=genres).astype(object))
        items = pd.DataFrame(
            {
                ITEM: raw[ITEM],
                TITLE: raw[TITLE],
                CATEGORIES: joined.str.rstrip("|").replace("unknown", ""),
                "year": pd.to_numeric(raw["release_date"].str[-4:], errors="coerce"),
            }
        )
    if (user_path := folder / "u.user").exists():
        users = _read_latin1_fallback(
            user_path,
            notes,
            separator="|",
            column_names=[USER, "age", "gender", "occupation", "zip_code"],
        )
    return RawData(inter, items, users, "movielens-100k", notes, header_lines=0, source=path.name)


def _read_ml1m(path: Path, notes: list[str]) -> RawData:
    folder = path.parent
    inter = read_delimited(
        path.read_bytes(), path.name, separator="::", column_names=[USER, ITEM, VALUE, TIMESTAMP]
    )
    items = users = None
    if (movie_path := folder / "movies.dat").exists():
        raw = _read_latin1_fallback(
            movie_path, notes, separator="::", column_names=[ITEM, TITLE, CATEGORIES]
        )
        items = raw.assign(year=_year_from_title(raw[TITLE]))
    if (user_path := folder / "users.dat").exists():
        users = _read_latin1_fallback(
            user_path,
            notes,
            separator="::",
            column_names=[USER, "gender", "age", "occupation", "zip_code"],
        )
    return RawData(inter, items, users, "movielens-1m", notes, header_lines=0, source=path.name)


def _read_ml_latest(path: Path, notes: list[str]) -> RawData:
    folder = path.parent
    inter = read_delimited(path.read_bytes(), path.name, notes=notes)
    items = None
    if (movie_path := folder / "movies.csv").exists():
        raw = read_delimited(movie_path.read_bytes(), movie_path.name)
        items = pd.DataFrame(
            {
                ITEM: raw["movieId"] if "movieId" in raw else raw.iloc[:, 0],
                TITLE: raw.get("title"),
                CATEGORIES: raw.get("genres"),
            }
        )
        items["year"] = _year_from_title(items[TITLE].fillna(""))
        if (tag_path := folder / "tags.csv").exists():
            tags = read_delimited(tag_path.read_bytes(), tag_path.name)
            if {"movieId", "tag"} <= set(tags.columns):
                text = tags.dropna(subset=["tag"]).groupby("movieId")["tag"].agg(" ; ".join)
                items[TEXT] = items[ITEM].map(text)
                notes.append(f"item text: {len(tags):,} tags from tags.csv")
    return RawData(inter, items, None, "movielens-latest", notes, source=path.name)


def _read_recbole(path: Path, notes: list[str]) -> RawData:
    """RecBole atomic files: tab-separated, headers ``name:type`` (token, float, token_seq...)."""
    inter = _recbole_frame(path)
    stem = path.with_suffix("")
    items = (
        _recbole_frame(stem.with_suffix(".item"), side=True)
        if stem.with_suffix(".item").exists()
        else None
    )
    users = (
        _recbole_frame(stem.with_suffix(".user"), side=True)
        if stem.with_suffix(".user").exists()
        else None
    )
    return RawData(inter, items, users, "recbole", notes, source=path.name)


def _recbole_frame(path: Path, *, side: bool = False) -> pd.DataFrame:
    frame = read_delimited(path.read_bytes(), path.name, separator="\t")
    renamed = {}
    for column in frame.columns:
        base, _, kind = column.partition(":")
        renamed[column] = base
        if side and kind == "token_seq":
            lowered = base.lower()
            if any(w in lowered for w in ("class", "genre", "categor", "tag")):
                # token_seq is space-separated; categories are "A|B" inside recsys_core.
                frame[column] = frame[column].str.split().str.join("|")
    return frame.rename(columns=renamed)


_SIDE_STEMS = {"items": "items", "item": "items", "movies": "items", "products": "items"}
_SIDE_STEMS |= {"users": "users", "user": "users"}


_PART_NAMES = {
    "train": "train", "training": "train",
    "valid": "valid", "validation": "valid", "val": "valid", "dev": "valid",
    "test": "test", "testing": "test",
}  # fmt: skip


def _split_part(path: Path) -> str | None:
    """ "train" / "valid" / "test" when a file name says which part it is (``ml.train.inter``,
    ``test.csv``, ``shop_valid.parquet``), else None."""
    match = re.search(r"(?:^|[._-])([a-z]+)$", path.stem.lower())
    return _PART_NAMES.get(match.group(1)) if match else None


def _split_files(paths: list[Path], folder: Path) -> dict[Path, str] | None:
    """Files forming a predefined split (train and test, optionally valid), or None."""
    parts = {p: _split_part(p) for p in paths}
    if not any(parts.values()):
        return None
    labelled = {p: part for p, part in parts.items() if part}
    found = sorted(set(labelled.values()))
    if len(labelled) != len(paths) or not {"train", "test"} <= set(found):
        raise DataError(
            f"files look like a predefined split but do not form one: "
            f"{ {p.name: part for p, part in parts.items()} }",
            where=folder.name,
            fix="provide one train and one test file (and optionally one valid file), "
            "or a single file with a split column",
        )
    if len(found) != len(labelled):
        raise DataError(
            f"several files claim the same split part: {[p.name for p in labelled]}",
            where=folder.name,
            fix="keep one file per part (train, valid, test)",
        )
    return labelled


def _concat_parts(
    frames: dict[Path, pd.DataFrame], parts: dict[Path, str], notes: list[str]
) -> pd.DataFrame:
    """One frame of every part with a ``split`` column naming where each row came from."""
    columns = [list(f.columns) for f in frames.values()]
    if any(c != columns[0] for c in columns):
        raise DataError(
            f"the split files have different columns: {[', '.join(c) for c in columns]}",
            where=", ".join(p.name for p in frames),
            fix="give the train, valid and test files the same header",
        )
    labelled = [f.assign(split=parts[p]) for p, f in frames.items()]
    notes.append(
        "predefined split from separate files: "
        + ", ".join(f"{p.name} -> {parts[p]}" for p in frames)
    )
    return pd.concat(labelled, ignore_index=True)


def read_folder(folder: Path, *, separator: str | None, encoding: str) -> RawData:
    """Detect the layout of a folder (extracted zip or a directory) and read it."""
    notes: list[str] = []
    if (folder / "[Content_Types].xml").exists():
        raise DataError(
            "the file is an Excel or other Office document, not delimited text or a zip of data",
            where=folder.name,
            fix="save the sheet as CSV (File > Save as > CSV UTF-8) and import that",
        )
    for filename, reader in (
        ("u.data", _read_ml100k),
        ("ratings.dat", _read_ml1m),
        ("ratings.csv", _read_ml_latest),
    ):
        if (hit := _find(folder, filename)) is not None:
            return reader(hit, notes)
    inters = sorted(p for p in folder.rglob("*.inter") if "__MACOSX" not in p.parts)
    if inters and _split_files(inters, folder) is not None:
        parts = _split_files(inters, folder)
        frame = _concat_parts({p: _recbole_frame(p) for p in parts}, parts, notes)
        item_files = sorted(folder.rglob("*.item"))
        user_files = sorted(folder.rglob("*.user"))
        items = _recbole_frame(item_files[0], side=True) if item_files else None
        users = _recbole_frame(user_files[0], side=True) if user_files else None
        source = ", ".join(p.name for p in parts)
        return RawData(frame, items, users, "recbole", notes, header_lines=0, source=source)
    if inters:
        return _read_recbole(inters[0], notes)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and "__MACOSX" not in p.parts
        and not p.name.startswith(".")
        and p.suffix.lower() in TEXT_SUFFIXES | PARQUET_SUFFIXES
    )
    side = {_SIDE_STEMS[p.stem.lower()]: p for p in files if p.stem.lower() in _SIDE_STEMS}
    main = [p for p in files if p.stem.lower() not in _SIDE_STEMS]
    if not main:
        raise DataError(
            "no data file (CSV, TSV, Parquet, MovieLens or RecBole) was found in the archive",
            where=folder.name,
            fix="put the interaction file (e.g. ratings.csv) in the zip",
        )
    parts = _split_files(main, folder) if len(main) > 1 else None
    if parts is not None:
        frames = {
            p: read_table(p.read_bytes(), p.name, separator=separator, encoding=encoding)
            for p in parts
        }
        tables = {
            kind: read_table(p.read_bytes(), p.name, encoding=encoding) for kind, p in side.items()
        }
        return RawData(
            _concat_parts(frames, parts, notes),
            tables.get("items"),
            tables.get("users"),
            "csv",
            notes,
            header_lines=0,
            source=", ".join(p.name for p in parts),
        )
    if len(main) > 1:
        raise DataError(
            f"several candidate interaction files: {[p.name for p in main][:6]}",
            where=folder.name,
            fix="keep one interaction file (side tables may be named items.* and users.*)",
        )
    inter_path = main[0]
    frame = read_table(
        inter_path.read_bytes(),
        inter_path.name,
        separator=separator,
        encoding=encoding,
        notes=notes,
    )
    tables = {
        kind: read_table(p.read_bytes(), p.name, encoding=encoding) for kind, p in side.items()
    }
    fmt = "parquet" if inter_path.suffix.lower() in PARQUET_SUFFIXES else "csv"
    return RawData(
        frame, tables.get("items"), tables.get("users"), fmt, notes, source=inter_path.name
    )


def is_movielens_name(name: str) -> bool:
    """True for the interaction file names of the MovieLens layouts (siblings are read too)."""
    return Path(name).name in ("u.data", "ratings.dat", "ratings.csv")


def hash_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, sorted)."""
    digest = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            digest.update(str(p.relative_to(path)).encode())
            digest.update(p.read_bytes())
    else:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def remove_tree(path: Path) -> None:
    """Delete a temporary folder, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)
