"""File formats: sniff what a file or folder is and read it into raw frames.

Readers return :class:`RawData`: the interaction frame exactly as in the file (text formats keep
every column as strings, so ids such as ``"007"`` are never reinterpreted before the importer
decides their type) plus optional item and user side frames. Column mapping, validation and
encoding happen in :mod:`recsys_core.data.importer`.

Supported layouts
-----------------
- CSV / TSV (separator sniffed from the header line unless given), Parquet, Excel ``.xlsx``
  (first or chosen sheet, cells read as text, through openpyxl), any of the text formats
  gzip-compressed (``.csv.gz``; decompressed while counting against the size limit).
- MovieLens as distributed: ``u.data`` + ``u.item`` + ``u.user`` (100K), ``ratings.dat`` +
  ``movies.dat`` + ``users.dat`` with ``::`` (1M/10M), ``ratings.csv`` + ``movies.csv`` [+
  ``tags.csv``] with headers (latest / latest-small).
- RecBole atomic files: ``*.inter`` / ``*.item`` / ``*.user`` with ``name:type`` headers, in a
  folder or as single files (the types are stripped wherever every header has one).
- A folder or ``.zip`` holding any of these (or one data file plus optional ``items.*`` /
  ``users.*`` tables, or a predefined split as separate ``*train*`` / ``*valid*`` / ``*test*``
  files, which become one frame with a ``split`` column). Zips are extracted safely: member
  paths may not escape the folder and the expanded size is capped (zip bombs are refused while
  streaming, not trusted from headers).

Safety: only regular files are opened (devices, FIFOs and sockets are refused from ``stat``),
every read is bounded by the size limit while it streams, and a line longer than
:data:`MAX_LINE_MB` is refused as soon as it is seen. Formats we do not read (``.xls``, JSON,
other compressors and archives) are refused with the file's name and how to convert it.

Encoding policy: generic files must be UTF-8 (a BOM is accepted); other bytes raise a
:class:`DataError` naming the line and telling the user to re-save as UTF-8 or pass
``encoding="latin-1"``. The MovieLens 100K/1M side files are Latin-1 as distributed, so those
readers fall back to Latin-1 and say so in the notes.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import zipfile
import zlib
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
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
RECBOLE_SUFFIXES = {".inter", ".item", ".user"}
#: A line longer than this is not a row of a table: the file is refused while it streams (a
#: 200 MB single-line file used to reach pyarrow whole and fail with a block-size error).
MAX_LINE_MB = 16
MAX_LINE_BYTES = MAX_LINE_MB * 2**20
#: Bytes read per step when streaming a file; at most MAX_LINE_BYTES (see _scan_lines).
_CHUNK = 4 * 2**20
#: Formats analysts have that we do not read, with what they are and how to convert them.
UNSUPPORTED_SUFFIXES = {
    ".xls": (
        "an old Excel (.xls) workbook",
        "open it in Excel or LibreOffice and save it as .xlsx or as CSV UTF-8, then import that",
    ),
    ".ods": (
        "an OpenDocument spreadsheet",
        "save it as .xlsx or as CSV UTF-8 (File > Save as), then import that",
    ),
    ".json": (
        "JSON",
        'convert it to CSV, e.g. python -c "import pandas as pd; '
        "pd.read_json('FILE').to_csv('FILE.csv', index=False)\", then import the CSV",
    ),
    ".jsonl": (
        "JSON lines",
        'convert it to CSV, e.g. python -c "import pandas as pd; '
        "pd.read_json('FILE', lines=True).to_csv('FILE.csv', index=False)\"",
    ),
    ".bz2": ("bzip2-compressed", "decompress it (bunzip2 FILE), or recompress it as .gz or .zip"),
    ".xz": ("xz-compressed", "decompress it (unxz FILE), or recompress it as .gz or .zip"),
    ".zst": ("zstd-compressed", "decompress it (unzstd FILE), or recompress it as .gz or .zip"),
    ".7z": ("a 7-Zip archive", "re-pack the files as a .zip"),
    ".rar": ("a RAR archive", "re-pack the files as a .zip"),
    ".tar": ("a tar archive", "re-pack the files as a .zip"),
    ".tgz": ("a gzipped tar archive", "re-pack the files as a .zip"),
}
UNSUPPORTED_SUFFIXES[".ndjson"] = UNSUPPORTED_SUFFIXES[".jsonl"]
#: Extensions an upload widget should accept (without dots): what we read, and what we refuse
#: with a conversion hint, so the page shows that hint instead of the browser's bare refusal.
UPLOAD_TYPES = sorted(
    {s.lstrip(".") for s in TEXT_SUFFIXES | PARQUET_SUFFIXES | EXCEL_SUFFIXES | {".tab"}}
    | {"gz", "zip"}
    | {s.lstrip(".") for s in UNSUPPORTED_SUFFIXES}
)
_RECBOLE_HEADER = re.compile(r"^([^:]+):(token|token_seq|float|float_seq)$")
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
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) or other Office document"),
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
# reading files safely: regular files only, bounded while streaming
# ---------------------------------------------------------------------------------------------
def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def check_regular(path: Path, name: str | None = None) -> os.stat_result:
    """``stat`` of ``path``, refusing anything but a regular file or a folder, before opening it.

    Devices, FIFOs and sockets report a size of 0, so a size check alone lets ``/dev/zero``
    stream forever and a FIFO block forever; ``stat`` never opens them.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataError(
            "the file does not exist", where=str(path), fix="check the path and try again"
        ) from None
    except OSError as error:
        raise DataError(
            f"the file cannot be read ({error.strerror or error})",
            where=str(path),
            fix="check the path and its permissions",
        ) from None
    if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
        return info
    raise DataError(
        f"{name or path.name} is a {_special_kind(info.st_mode)}, not a regular file or a "
        "folder (reading it could block or never end)",
        where=str(path),
        fix="save the data to a regular file (CSV, TSV, Parquet, .xlsx, .gz or .zip) and "
        "import that",
    )


def _too_large(name: str, max_bytes: int, expanded: bool) -> DataError:
    verb = "expands past" if expanded else "is larger than"
    return DataError(
        f"the file {verb} the size limit of {max_bytes / 2**20:g} MB",
        where=name,
        fix="raise max_file_mb (CLI: --max-mb) or import a smaller file",
    )


def _scan_lines(chunk: bytes | bytearray, n: int, since: int) -> int:
    """Bytes since the last line break after ``chunk[:n]``, given ``since`` before it.

    Lines wholly inside a chunk are at most ``_CHUNK <= MAX_LINE_BYTES`` long, so only the
    line that runs across chunk boundaries needs counting. A lone ``\\r`` counts as a break.
    Lines are not counted here (``count`` would cost more than the read): the line number is
    worked out only for the refusal.
    """
    last = max(chunk.rfind(b"\n", 0, n), chunk.rfind(b"\r", 0, n))
    if last == -1:
        return since + n
    breaks = [i for i in (chunk.find(b"\n", 0, n), chunk.find(b"\r", 0, n)) if i != -1]
    return max(since + min(breaks), n - last - 1)


def _long_line(line: int, name: str) -> DataError:
    return DataError(
        f"line {line:,} is longer than {MAX_LINE_MB} MB: the file is not one row per line (it "
        "may be a single JSON document, a binary dump, or text without line breaks)",
        where=name,
        fix="check that this is the interaction table exported as CSV or TSV with one row per "
        "line; convert JSON to CSV first",
    )


def _line_at(handle: io.BufferedReader, offset: int) -> int:
    """1-based number of the line that starts at byte ``offset`` of a file."""
    handle.seek(0)
    lines = 0
    while offset > 0 and (chunk := handle.read(min(_CHUNK, offset))):
        lines += chunk.count(b"\n")
        offset -= len(chunk)
    return lines + 1


def read_path(path: Path, name: str | None = None, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (gzip content decompressed), bounded as they stream.

    Parameters
    ----------
    path : the file; a device, FIFO or socket is refused before it is opened.
    name : file name for messages (default: ``path.name``).
    max_bytes : refuse the file as soon as more than this many (decompressed) bytes were read,
        whatever ``stat`` said; None reads without a limit.

    Text content is also refused as soon as one line passes :data:`MAX_LINE_MB`, so a huge
    single-line file costs one chunk of memory, not its size. A plain file is scanned through
    one reused buffer first, then read in one call (growing the result chunk by chunk cost
    2.4x the time of a bare read).
    """
    name = name or path.name
    info = check_regular(path, name)
    if stat.S_ISDIR(info.st_mode):
        raise DataError(
            "a folder was given where a file is expected", where=str(path), fix="give a file"
        )
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if gz:
            return _read_gzip(raw, name, max_bytes)
        buffer = bytearray(_CHUNK)
        total = since = 0
        text: bool | None = None
        while n := raw.readinto(buffer):
            total += n
            if max_bytes is not None and total > max_bytes:
                raise _too_large(name, max_bytes, expanded=False)
            if text is None:
                text = sniff_binary(bytes(buffer[: min(n, 65536)])) is None
            if text and (since := _scan_lines(buffer, n, since)) > MAX_LINE_BYTES:
                raise _long_line(_line_at(raw, total - since), name)
        raw.seek(0)
        data = raw.read() if max_bytes is None else raw.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # it grew since the scan
        raise _too_large(name, max_bytes, expanded=False)
    return data


def _read_gzip(raw: io.BufferedReader, name: str, max_bytes: int | None) -> bytes:
    """Decompress while counting: a gzip bomb stops at ``max_bytes``, a huge line at its limit."""
    out = bytearray()
    since = 0
    text: bool | None = None
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
            while chunk := handle.read(_CHUNK):
                if max_bytes is not None and len(out) + len(chunk) > max_bytes:
                    raise _too_large(name, max_bytes, expanded=True)
                if text is None:
                    text = sniff_binary(chunk[:65536]) is None
                if text and (since := _scan_lines(chunk, len(chunk), since)) > MAX_LINE_BYTES:
                    # the long line started before this chunk, inside what ``out`` holds
                    start = len(out) + len(chunk) - since
                    raise _long_line(out.count(b"\n", 0, start) + 1, name)
                out += chunk
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(
            f"the gzip file is damaged or truncated ({error})",
            where=name,
            fix="re-create it (gzip -k FILE) or import the uncompressed file",
        ) from None
    return out  # type: ignore[return-value]  # a bytearray: every reader accepts it


def data_name(name: str) -> str:
    """The name that tells a file's format: ``ratings.csv.gz`` -> ``ratings.csv``."""
    return name[:-3] if name.lower().endswith(".gz") and len(name) > 3 else name


def refuse_unsupported(name: str) -> None:
    """A clear refusal, naming the file and the conversion, for formats we do not read."""
    suffix = Path(data_name(name)).suffix.lower()
    if suffix in UNSUPPORTED_SUFFIXES:
        what, fix = UNSUPPORTED_SUFFIXES[suffix]
        raise DataError(
            f"{Path(name).name} is {what}, which the importer does not read",
            where=name,
            fix=fix.replace("FILE", Path(name).name),
        )


def read_excel(
    path: Path,
    name: str,
    *,
    sheet: str = "",
    max_bytes: int | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """One sheet of an .xlsx workbook, every column as strings (as a CSV would give).

    ``sheet`` is a sheet name or a 1-based number; empty means the first sheet. Read through
    openpyxl (via pandas), after checking the workbook's expanded size against ``max_bytes``.
    """
    check_regular(path, name)
    try:
        with zipfile.ZipFile(path) as zf:
            expanded = sum(m.file_size for m in zf.infolist())
    except (zipfile.BadZipFile, OSError):
        raise DataError(
            f"{name} is not a valid .xlsx workbook (it may be an old .xls file renamed)",
            where=name,
            fix="open it in Excel or LibreOffice and save it as .xlsx or as CSV UTF-8",
        ) from None
    if max_bytes is not None and expanded > max_bytes:
        raise _too_large(name, max_bytes, expanded=True)
    try:
        book = pd.ExcelFile(path, engine="openpyxl")
    except ImportError:
        raise DataError(
            "reading .xlsx files needs the openpyxl package, which is not installed",
            where=name,
            fix="pip install 'openpyxl>=3.1,<4', or save the sheet as CSV UTF-8 and import that",
        ) from None
    except Exception as error:  # noqa: BLE001 - openpyxl raises many types for bad workbooks
        raise DataError(
            f"the workbook could not be read ({type(error).__name__}: {error})",
            where=name,
            fix="open it in Excel or LibreOffice and save it again as .xlsx or as CSV UTF-8",
        ) from None
    with book:
        names = [str(n) for n in book.sheet_names]
        chosen = _choose_sheet(names, sheet, name)
        frame = pd.read_excel(
            book, sheet_name=chosen, dtype=str, keep_default_na=False, na_values=NULL_VALUES
        )
    if notes is not None:
        notes.append(f"sheet {chosen!r} of {len(names)} ({', '.join(names[:8])})")
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(
            "the sheet has no data rows",
            where=f"{name}, sheet {chosen!r}",
            fix="choose the sheet holding the interactions (CLI: --sheet NAME)",
        )
    return frame


def _choose_sheet(names: list[str], sheet: str, name: str) -> str:
    sheet = str(sheet or "").strip()
    if not sheet:
        return names[0]
    if sheet in names:
        return sheet
    if sheet.isdigit() and 1 <= int(sheet) <= len(names):
        return names[int(sheet) - 1]
    raise DataError(
        f"the workbook has no sheet {sheet!r}; its sheets are {names}",
        where=name,
        fix=f"give one of those names, or a number from 1 to {len(names)} (CLI: --sheet)",
    )


def read_table_path(
    path: Path,
    name: str | None = None,
    *,
    separator: str | None = None,
    encoding: str = "utf-8",
    notes: list[str] | None = None,
    max_bytes: int | None = None,
    sheet: str = "",
) -> pd.DataFrame:
    """Read one tabular file from disk: .xlsx, Parquet, delimited text, each optionally .gz.

    Every read is bounded by ``max_bytes`` as it streams; unsupported formats are refused
    with the file's name and how to convert it.
    """
    name = name or path.name
    refuse_unsupported(name)
    suffix = Path(data_name(name)).suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return read_excel(path, name, sheet=sheet, max_bytes=max_bytes, notes=notes)
    data = read_path(path, name, max_bytes=max_bytes)
    inner = data_name(name)
    if notes is not None and inner != name:
        notes.append(f"{name}: gzip-compressed, read as {inner}")
    if data[:4] == b"PK\x03\x04" and is_workbook(path):
        return read_excel(path, name, sheet=sheet, max_bytes=max_bytes, notes=notes)
    return read_table(data, inner, separator=separator, encoding=encoding, notes=notes)


def is_workbook(path: Path) -> bool:
    """Whether a zip file is an .xlsx workbook (whatever its name says)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return "xl/workbook.xml" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _read_bytes(path: Path) -> bytes:
    """A sibling file's bytes (regular files only; see :func:`read_path`)."""
    return read_path(path)


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
        # pyarrow only splits on one byte; '::' (MovieLens 1M) becomes a unit separator, in the
        # header line too (it used to be split on the original '::' line by '\x1f', giving one
        # column and a refusal that suggested the very separator given).
        text = text.replace(sep, "\x1f")
        first_line = first_line.replace(sep, "\x1f")
        sep = "\x1f"
    if column_names is None:
        header = next(csv.reader([first_line.lstrip("\ufeff")], delimiter=sep))
        names = [h.strip() for h in header]
        skip = 1
    else:
        names, skip = list(column_names), 0
    _check_header(names, first_line.replace("\x1f", "::"), name, sep, separator)
    if encoding == "utf-8" and sep != "\x1f":
        body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data  # already valid UTF-8
    else:
        body = text.encode("utf-8")
    try:
        table = _parse_csv(body, names, skip, sep)
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


def _parse_csv(body: bytes, names: list[str], skip: int, sep: str) -> pa.Table:
    """pyarrow's parser with string columns; retried with blocks that hold the longest line
    allowed when a row is longer than the default 1 MB block (pyarrow's "straddling object")."""

    def parse(block_size: int | None) -> pa.Table:
        read = pacsv.ReadOptions(column_names=names, skip_rows=skip)
        if block_size:
            read.block_size = block_size
        return pacsv.read_csv(
            io.BytesIO(body),
            read_options=read,
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=NULL_VALUES,
                strings_can_be_null=True,
            ),
        )

    try:
        return parse(None)
    except pa.ArrowInvalid as error:
        if "straddl" not in str(error):
            raise
        return parse(2 * MAX_LINE_BYTES)


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
    refuse_unsupported(name)
    if Path(name).suffix.lower() in PARQUET_SUFFIXES or data[:4] == b"PAR1":
        return read_parquet_bytes(data, name)
    frame = read_delimited(data, name, separator=separator, encoding=encoding, notes=notes)
    return recbole_columns(frame, name, notes)


def recbole_columns(
    frame: pd.DataFrame, name: str = "", notes: list[str] | None = None
) -> pd.DataFrame:
    """Strip RecBole's ``name:type`` headers (``user_id:token``, ``genre:token_seq``).

    Applied whenever every header has a RecBole type, whatever the file is called, so an
    uploaded ``ml-100k.inter`` or ``ml-100k.item`` reads like the folder does. ``token_seq``
    columns naming classes, genres, categories or tags become "A|B" category strings.
    """
    matches = [_RECBOLE_HEADER.match(str(c)) for c in frame.columns]
    if not matches or not all(matches):
        return frame
    renamed = {}
    for column, match in zip(frame.columns, matches, strict=True):
        base, kind = match.group(1), match.group(2)  # type: ignore[union-attr]
        renamed[column] = base
        if kind == "token_seq" and any(
            w in base.lower() for w in ("class", "genre", "categor", "tag")
        ):
            # token_seq is space-separated; categories are "A|B" inside recsys_core.
            frame[column] = frame[column].str.split().str.join("|")
    if notes is not None:
        notes.append(f"{name}: RecBole 'name:type' header read as {list(renamed.values())}")
    return frame.rename(columns=renamed)


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
    data = _read_bytes(path)
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
        _read_bytes(path), path.name, separator="\t", column_names=[USER, ITEM, VALUE, TIMESTAMP]
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
        _read_bytes(path), path.name, separator="::", column_names=[USER, ITEM, VALUE, TIMESTAMP]
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
    inter = read_delimited(_read_bytes(path), path.name, notes=notes)
    items = None
    if (movie_path := folder / "movies.csv").exists():
        raw = read_delimited(_read_bytes(movie_path), movie_path.name)
        items = pd.DataFrame(
            {
                ITEM: raw["movieId"] if "movieId" in raw else raw.iloc[:, 0],
                TITLE: raw.get("title"),
                CATEGORIES: raw.get("genres"),
            }
        )
        items["year"] = _year_from_title(items[TITLE].fillna(""))
        if (tag_path := folder / "tags.csv").exists():
            tags = read_delimited(_read_bytes(tag_path), tag_path.name)
            if {"movieId", "tag"} <= set(tags.columns):
                text = tags.dropna(subset=["tag"]).groupby("movieId")["tag"].agg(" ; ".join)
                items[TEXT] = items[ITEM].map(text)
                notes.append(f"item text: {len(tags):,} tags from tags.csv")
    return RawData(inter, items, None, "movielens-latest", notes, source=path.name)


def read_recbole(path: Path, notes: list[str]) -> RawData:
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
    frame = read_delimited(_read_bytes(path), path.name, separator="\t")
    if not all(_RECBOLE_HEADER.match(str(c)) for c in frame.columns):
        # a column without a type: strip what has one, keep the rest as named
        return frame.rename(columns={c: str(c).partition(":")[0] for c in frame.columns})
    return recbole_columns(frame, path.name)


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


def _data_suffix(path: Path) -> str:
    """``.csv`` for ``x.csv`` and ``x.csv.gz`` (what the content is, not how it is packed)."""
    return Path(data_name(path.name)).suffix.lower()


def _data_stem(path: Path) -> str:
    return Path(data_name(path.name)).stem.lower()


def read_folder(
    folder: Path,
    *,
    separator: str | None,
    encoding: str,
    name: str | None = None,
    max_bytes: int | None = None,
    sheet: str = "",
) -> RawData:
    """Detect the layout of a folder (extracted zip or a directory) and read it.

    ``name`` is what messages call the folder (an upload's file name rather than the temporary
    folder it was extracted to); ``max_bytes`` bounds each file read; ``sheet`` picks the
    sheet of an .xlsx data file.
    """
    notes: list[str] = []
    label = name or folder.name
    if (folder / "[Content_Types].xml").exists():
        raise DataError(
            f"{label} is a Word, PowerPoint or other Office document, not data",
            where=label,
            fix="save the table as .xlsx or as CSV UTF-8 and import that",
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
        return read_recbole(inters[0], notes)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and "__MACOSX" not in p.parts
        and not p.name.startswith(".")
        and _data_suffix(p) in TEXT_SUFFIXES | PARQUET_SUFFIXES | EXCEL_SUFFIXES
    )
    side = {_SIDE_STEMS[_data_stem(p)]: p for p in files if _data_stem(p) in _SIDE_STEMS}
    main = [p for p in files if _data_stem(p) not in _SIDE_STEMS]
    if not main:
        raise DataError(
            "no data file (CSV, TSV, Parquet, .xlsx, MovieLens or RecBole) was found in the "
            "archive",
            where=label,
            fix="put the interaction file (e.g. ratings.csv) in the zip",
        )

    def read(path: Path, **kwargs: object) -> pd.DataFrame:
        return read_table_path(
            path,
            encoding=encoding,
            max_bytes=max_bytes,
            **kwargs,  # type: ignore[arg-type]
        )

    parts = _split_files(main, folder) if len(main) > 1 else None
    if parts is not None:
        frames = {p: read(p, separator=separator, sheet=sheet) for p in parts}
        tables = {kind: read(p) for kind, p in side.items()}
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
            where=label,
            fix="keep one interaction file (side tables may be named items.* and users.*)",
        )
    inter_path = main[0]
    frame = read(inter_path, separator=separator, notes=notes, sheet=sheet)
    tables = {kind: read(p) for kind, p in side.items()}
    suffix = _data_suffix(inter_path)
    fmt = "parquet" if suffix in PARQUET_SUFFIXES else "xlsx" if suffix in EXCEL_SUFFIXES else "csv"
    return RawData(
        frame, tables.get("items"), tables.get("users"), fmt, notes, source=inter_path.name
    )


def is_movielens_name(name: str) -> bool:
    """True for the interaction file names of the MovieLens layouts (siblings are read too)."""
    return Path(name).name in ("u.data", "ratings.dat", "ratings.csv")


def hash_path(path: Path, *, max_bytes: int | None = None) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, sorted).

    Only regular files are read (a device or FIFO is refused before it is opened), streamed in
    chunks and refused as soon as more than ``max_bytes`` were hashed, whatever ``stat`` said.
    """
    digest = hashlib.sha256()
    total = 0

    def stream(file: Path) -> None:
        nonlocal total
        check_regular(file)
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise _too_large(path.name, max_bytes, expanded=False)
                digest.update(chunk)

    if stat.S_ISDIR(check_regular(path).st_mode):
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            digest.update(str(p.relative_to(path)).encode())
            stream(p)
    else:
        stream(path)
    return digest.hexdigest()


def remove_tree(path: Path) -> None:
    """Delete a temporary folder, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)
