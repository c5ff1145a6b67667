"""The dataset store: imports into the workspace, the catalog, and loading back.

Layout of one dataset (``<workspace>/datasets/<id>/``)::

    interactions.parquet   user, item, value[, timestamp, event, split] with typed raw ids
    items.parquet          item side table (item id column + title/categories/text/...)
    users.parquet          user side table
    meta.json              the catalog row, for humans and for recovery

Imports are all-or-nothing: files are written to a temporary folder inside ``datasets/``,
then the catalog row is inserted and the folder renamed into place within one SQLite
transaction, so a failed import leaves the store exactly as it was.

Re-importing the same content with the same options is recognised by a sha256 content hash
(file bytes + side files + split file + options) and returns the existing dataset with
``already_imported=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.data.catalog import (
    DatasetInfo,
    find_by_hash,
    get_dataset,
    info_of_row,
    list_datasets,
)
from recsys_core.data.columns import ITEM, USER
from recsys_core.data.importer import (
    ImportOptions,
    ImportResult,
    build,
    check_source,
    prepare_side_table,
    read_source,
)
from recsys_core.data.interactions import Interactions
from recsys_core.data.privacy import pseudonym_key, pseudonymise_result
from recsys_core.data.readers import RawData, data_name, hash_path, read_table_path
from recsys_core.errors import DataError, NotFoundError
from recsys_core.sample import SAMPLE_DIR, SAMPLE_RATINGS, SAMPLE_SPLIT_FILE
from recsys_core.workspace import Workspace

INTERACTIONS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"
META_FILE = "meta.json"
#: Id vocabularies of an appended version (recsys_core.data.versions): the parent's ids first,
#: so indices stay valid across versions. A plain import has none (ids are sorted).
USER_VOCAB_FILE = "vocab_users.parquet"
ITEM_VOCAB_FILE = "vocab_items.parquet"
SAMPLE_NAME = "movielens-small"
#: Demo defaults of the bundled sample: items with fewer than 5 ratings are dropped (iterated
#: k-core), leaving about 3,650 movies, so that every model, EASE included, trains in seconds.
SAMPLE_OPTIONS = {"min_item_interactions": 5}
_CACHE_SIZE = 4
_cache: OrderedDict[tuple[str, float], Interactions] = OrderedDict()


# ---------------------------------------------------------------------------------------------
# imports
# ---------------------------------------------------------------------------------------------
def import_file(
    ws: Workspace,
    path: str | Path,
    *,
    name: str | None = None,
    options: ImportOptions | None = None,
    items: str | Path | None = None,
    users: str | Path | None = None,
) -> DatasetInfo:
    """Import a file, folder or zip (any supported layout) into the workspace.

    Parameters
    ----------
    ws : the workspace.
    path : CSV / TSV / Parquet / MovieLens / RecBole file, a folder, or a zip of those.
    name : display name; default: the file (or MovieLens folder) name, made unique.
    options : mapping, policies, filters and limits (defaults: :class:`ImportOptions`).
    items, users : optional side-table files (override tables found next to the data).

    Raises
    ------
    DataError
        For any unusable input; the store is left unchanged.
    """
    path = Path(path).expanduser()
    options = options or ImportOptions()
    # Refused before hashing: a device or FIFO would hash forever, a huge folder for minutes.
    for source in (path, items, users, options.split_file or None):
        if source is not None:
            check_source(Path(source).expanduser(), options)
    digest = _content_hash([path, items, users], options)
    if (existing := find_by_hash(ws, digest)) is not None:
        return existing
    raw = read_source(path, options)
    side = {
        kind: read_table_path(
            Path(p).expanduser(), encoding=options.encoding, max_bytes=options.max_bytes
        )
        for kind, p in (("items", items), ("users", users))
        if p is not None
    }
    result = build(raw, options, items=side.get("items"), users=side.get("users"))
    default = path.parent.name if path.name in ("u.data", "ratings.dat", "ratings.csv") else None
    stem = Path(data_name(path.name)).stem  # ratings.csv.gz -> ratings
    return _store(ws, result, name or default or stem, str(path.name), digest, options, name)


def import_bytes(
    ws: Workspace,
    data: bytes,
    filename: str,
    *,
    name: str | None = None,
    options: ImportOptions | None = None,
) -> DatasetInfo:
    """Import uploaded bytes (``filename`` tells the format: .csv, .tsv, .parquet, .zip...)."""
    options = options or ImportOptions()
    check_upload_size(data, filename, options)
    safe_name = Path(filename).name or "upload.csv"
    digest = _hash_bytes(data, options)
    if (existing := find_by_hash(ws, digest)) is not None:
        return existing
    with tempfile.TemporaryDirectory(prefix="recsys-upload-") as tmp:
        target = Path(tmp) / safe_name
        target.write_bytes(data)
        raw = read_source(target, options, display_name=safe_name)
        result = build(raw, options)
    stem = Path(data_name(safe_name)).stem
    return _store(ws, result, name or stem, safe_name, digest, options, name)


def import_frames(
    ws: Workspace,
    interactions: pd.DataFrame,
    *,
    name: str,
    source: str,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    options: ImportOptions | None = None,
) -> DatasetInfo:
    """Import in-memory frames (e.g. :func:`recsys_core.data.synthetic.make_frames`)."""
    options = options or ImportOptions()
    digest = hashlib.sha256(
        pd.util.hash_pandas_object(interactions, index=False).to_numpy().tobytes()
        + json.dumps(config_to_dict(options), sort_keys=True).encode()
    ).hexdigest()
    if (existing := find_by_hash(ws, digest)) is not None:
        return existing
    # A filtered frame keeps its old index; the importer builds columns on a fresh RangeIndex,
    # so the index is reset first (otherwise rows past the new length read as missing ids).
    frame = interactions.reset_index(drop=True)
    raw = RawData(frame, items, users, "frames", [], header_lines=0, source=source)
    result = build(raw, options)
    return _store(ws, result, name, source, digest, options, name)


def import_sample(ws: Workspace, *, full: bool = False) -> DatasetInfo:
    """Import the bundled MovieLens ml-latest-small sample (idempotent).

    Demo defaults: ``min_item_interactions=5`` (iterated k-core), which keeps 610 users and
    about 3,650 of the 9,724 movies so every model trains in seconds on a CPU. Titles, genres,
    year and tags come along as the item table, and ``split_random_80_10_10.csv`` is attached as
    the predefined split labels (``Interactions.labels``). ``full=True`` imports every rating
    unfiltered as ``movielens-small-full`` (exactly the data the fixed split was made on).
    """
    ratings = SAMPLE_RATINGS
    if not ratings.exists():
        raise NotFoundError(
            f"the bundled sample is missing at {SAMPLE_DIR}; restore sample_data/ from the "
            "repository"
        )
    values = {} if full else dict(SAMPLE_OPTIONS)
    split_file = SAMPLE_SPLIT_FILE
    if split_file.exists():
        values["split_file"] = str(split_file)
    options = config_from_dict(ImportOptions, values)
    digest = _content_hash([SAMPLE_DIR], options)
    name = SAMPLE_NAME + ("-full" if full else "")
    existing = find_by_hash(ws, digest)
    if existing is None:
        # The sample may have been imported from another checkout (different paths).
        try:
            found = get_dataset(ws, name)
            if found.source == "sample":
                existing = replace(found, already_imported=True)
        except NotFoundError:
            pass
    if existing is not None:
        return existing
    result = build(read_source(ratings, options), options)
    return _store(ws, result, name, "sample", digest, options, name)


# ---------------------------------------------------------------------------------------------
# catalog
# ---------------------------------------------------------------------------------------------
def dataset_dir(ws: Workspace, ref: str) -> Path:
    """The folder of a dataset."""
    return ws.datasets_dir / get_dataset(ws, ref).id


def load_dataset(ws: Workspace, ref: str) -> Interactions:
    """The encoded dataset (cached in-process by id and file modification time)."""
    info = get_dataset(ws, ref)
    folder = ws.datasets_dir / info.id
    stamp = max(
        (p.stat().st_mtime for p in folder.glob("*.parquet")),
        default=0.0,
    )
    key = (info.id, stamp)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    frame, items, users = load_frames(ws, info.id)
    user_vocab, item_vocab = (
        pd.read_parquet(folder / f)["id"].to_numpy() if (folder / f).exists() else None
        for f in (USER_VOCAB_FILE, ITEM_VOCAB_FILE)
    )
    data = Interactions.from_frame(
        frame, item_table=items, user_table=users, user_ids=user_vocab, item_ids=item_vocab
    )
    _cache[key] = data
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return data


def load_frames(
    ws: Workspace, ref: str
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """The stored frames: interactions, items (indexed by item id), users (by user id)."""
    folder = dataset_dir(ws, ref)
    if not (folder / INTERACTIONS_FILE).exists():
        raise NotFoundError(
            f"dataset {ref!r} has no data files in {folder}; delete it and import it again"
        )
    frame = pd.read_parquet(folder / INTERACTIONS_FILE)
    items = _read_side(folder / ITEMS_FILE, ITEM)
    users = _read_side(folder / USERS_FILE, USER)
    return frame, items, users


def rename_dataset(ws: Workspace, ref: str, new_name: str) -> DatasetInfo:
    """Give a dataset a new unique name."""
    new_name = _check_name(new_name)
    info = get_dataset(ws, ref)
    with ws.transaction() as conn:
        clash = conn.execute(
            "SELECT id FROM datasets WHERE name = ? AND id != ?", (new_name, info.id)
        ).fetchone()
        if clash is not None:
            raise DataError(
                f"a dataset named {new_name!r} already exists",
                where="dataset names",
                fix="choose another name, or delete the other dataset first",
            )
        conn.execute("UPDATE datasets SET name = ? WHERE id = ?", (new_name, info.id))
    _write_meta(ws, get_dataset(ws, info.id))
    return get_dataset(ws, info.id)


def delete_dataset(ws: Workspace, ref: str) -> None:
    """Remove a dataset's catalog row and its folder."""
    info = get_dataset(ws, ref)
    folder = ws.datasets_dir / info.id
    trash = ws.datasets_dir / f".trash-{info.id}-{uuid.uuid4().hex[:6]}"
    with ws.transaction() as conn:
        conn.execute("DELETE FROM datasets WHERE id = ?", (info.id,))
        if folder.exists():
            folder.rename(trash)  # inside the transaction: a failed rename rolls back the row
    shutil.rmtree(trash, ignore_errors=True)
    for key in [k for k in _cache if k[0] == info.id]:
        del _cache[key]


def attach_side_table(
    ws: Workspace,
    ref: str,
    path_or_bytes: str | Path | bytes,
    kind: str = "items",
    filename: str | None = None,
) -> dict[str, Any]:
    """Replace a dataset's item or user side table with a new file; returns the match report.

    Parameters
    ----------
    path_or_bytes : a file path, or uploaded bytes (then ``filename`` gives the format).
    kind : ``"items"`` or ``"users"``.

    Returns
    -------
    dict with rows, matched, unmatched_count, unmatched_examples, ids_without_side_row.
    """
    if kind not in ("items", "users"):
        raise DataError(
            f"unknown side table kind {kind!r}", where="attach_side_table", fix="use items or users"
        )
    info = get_dataset(ws, ref)
    if isinstance(path_or_bytes, bytes):
        label = Path(filename or "upload.csv").name or "upload.csv"
        with tempfile.TemporaryDirectory(prefix="recsys-side-") as tmp:
            # A file under its own name, so .xlsx, .gz and RecBole .item files read as on disk.
            target = Path(tmp) / label
            target.write_bytes(path_or_bytes)
            table = read_table_path(target, label, max_bytes=ImportOptions().max_bytes)
    else:
        source = Path(path_or_bytes).expanduser()
        label = filename or source.name
        check_source(source, ImportOptions(), name=label)
        table = read_table_path(source, label, max_bytes=ImportOptions().max_bytes)
    frame, _, _ = load_frames(ws, info.id)
    id_kind = ITEM if kind == "items" else USER
    side, report = prepare_side_table(table, id_kind, frame[id_kind], f"{kind} table {label}")
    folder = ws.datasets_dir / info.id
    target = folder / (ITEMS_FILE if kind == "items" else USERS_FILE)
    tmp = folder / f".{target.name}.{uuid.uuid4().hex[:6]}"
    _write_side(side, id_kind, tmp)
    new_report = dict(info.report)
    new_report.setdefault("side", {})[kind] = report
    try:
        with ws.transaction() as conn:
            conn.execute(
                "UPDATE datasets SET summary_json = ? WHERE id = ?",
                (json.dumps(_summary(info, new_report), default=_plain), info.id),
            )
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_meta(ws, get_dataset(ws, info.id))
    return report


# ---------------------------------------------------------------------------------------------
# internals
# ---------------------------------------------------------------------------------------------
def _store(
    ws: Workspace,
    result: ImportResult,
    base_name: str,
    source: str,
    digest: str,
    options: ImportOptions,
    explicit_name: str | None,
) -> DatasetInfo:
    ws.ensure()
    if options.pseudonymise:  # before a byte is written: only pseudonyms reach the disk
        result = pseudonymise_result(result, pseudonym_key(ws))
    dataset_id = "ds-" + uuid.uuid4().hex[:10]
    tmp = ws.datasets_dir / f".tmp-{dataset_id}"
    tmp.mkdir(parents=True)
    try:
        result.frame.to_parquet(tmp / INTERACTIONS_FILE, index=False)
        if result.items is not None:
            _write_side(result.items, ITEM, tmp / ITEMS_FILE)
        if result.users is not None:
            _write_side(result.users, USER, tmp / USERS_FILE)
        info = commit_dataset(
            ws,
            tmp,
            digest=digest,
            base_name=base_name,
            explicit=explicit_name is not None,
            source=source,
            shape=(result.data.n_users, result.data.n_items, result.data.nnz),
            options=options,
            report=result.report,
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def commit_dataset(
    ws: Workspace,
    tmp: Path,
    *,
    digest: str,
    base_name: str,
    explicit: bool,
    source: str,
    shape: tuple[int, int, int],
    options: Any,
    report: dict[str, Any],
) -> DatasetInfo:
    """Register the dataset folder written at ``tmp`` (``.tmp-<id>``) and move it into place in
    one transaction: all-or-nothing, for an import and an appended version alike.

    ``shape`` is (users, items, interactions). When another process stored the same content
    (``digest``) since the caller's first look, that dataset is returned with
    ``already_imported=True`` and ``tmp`` is removed. The caller removes ``tmp`` if this raises.
    """
    dataset_id = tmp.name.removeprefix(".tmp-")
    with ws.transaction() as conn:
        row = conn.execute(
            "SELECT * FROM datasets WHERE content_hash = ? LIMIT 1", (digest,)
        ).fetchone()
        if row is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            return replace(info_of_row(row), already_imported=True)
        n_users, n_items, n_interactions = shape
        info = DatasetInfo(
            id=dataset_id,
            name=_unique_name(conn, _check_name(base_name), explicit),
            source=source,
            content_hash=digest,
            created_at=time.time(),
            n_users=n_users,
            n_items=n_items,
            n_interactions=n_interactions,
            options=config_to_dict(options),
            report=report,
        )
        conn.execute(
            "INSERT INTO datasets (id, name, content_hash, source, created_at, options_json, "
            "summary_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                info.id,
                info.name,
                info.content_hash,
                info.source,
                info.created_at,
                json.dumps(info.options),
                json.dumps(_summary(info, info.report), default=_plain),
            ),
        )
        tmp.rename(ws.datasets_dir / dataset_id)
    _write_meta(ws, info)
    return info


def check_upload_size(data: bytes, filename: str, options: ImportOptions) -> None:
    """Refuse an upload over ``options.max_file_mb`` (imports and appended versions alike)."""
    if len(data) > options.max_bytes:
        raise DataError(
            f"the upload is {len(data) / 2**20:.1f} MB, over the limit of "
            f"{options.max_file_mb:g} MB",
            where=filename,
            fix="raise max_file_mb or upload a smaller file",
        )


def _check_name(name: str) -> str:
    name = str(name).strip()
    if not name:
        raise DataError("a dataset name cannot be empty", where="name", fix="give a name")
    return name


def _unique_name(conn: Any, name: str, explicit: bool) -> str:
    taken = {row[0] for row in conn.execute("SELECT name FROM datasets")}
    if name not in taken:
        return name
    if explicit:
        raise DataError(
            f"a dataset named {name!r} already exists",
            where="dataset names",
            fix="choose another name (CLI: --name), or delete or rename the existing one",
        )
    number = 2
    while f"{name}-{number}" in taken:
        number += 1
    return f"{name}-{number}"


def _summary(info: DatasetInfo, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "n_users": info.n_users,
        "n_items": info.n_items,
        "n_interactions": info.n_interactions,
        "report": report,
    }


#: Options added after datasets were stored: left out of the hash at their defaults, so a
#: re-import of the same file is still recognised as already imported.
_NEW_OPTION_DEFAULTS = {
    "sheet": "", "max_id_length": 1024, "drop_columns": [], "pseudonymise": False
}


def _options_bytes(options: ImportOptions) -> bytes:
    values = config_to_dict(options)
    for key, default in _NEW_OPTION_DEFAULTS.items():
        if values.get(key) == default:
            values.pop(key, None)
    if options.split_file:
        # Hash the split file's content, not its path, so checkouts agree.
        values["split_file"] = hash_path(Path(options.split_file), max_bytes=options.max_bytes)
    return json.dumps(values, sort_keys=True).encode()


def _content_hash(paths: list[str | Path | None], options: ImportOptions) -> str:
    digest = hashlib.sha256()
    for p in paths:
        if p is None:
            digest.update(b"-")
            continue
        path = Path(p).expanduser()
        if not path.exists():
            raise DataError("the file does not exist", where=str(path), fix="check the path")
        digest.update(hash_path(path, max_bytes=options.max_bytes).encode())
    digest.update(_options_bytes(options))
    return digest.hexdigest()


def _hash_bytes(data: bytes, options: ImportOptions) -> str:
    inner = hashlib.sha256(data).hexdigest()
    return hashlib.sha256(inner.encode() + b"-" + b"-" + _options_bytes(options)).hexdigest()


def _write_side(table: pd.DataFrame, id_kind: str, path: Path) -> None:
    frame = table.reset_index()
    frame = frame.rename(columns={frame.columns[0]: id_kind})
    frame.to_parquet(path, index=False)


def _read_side(path: Path, id_kind: str) -> pd.DataFrame | None:
    if not path.exists():
        return None
    return pd.read_parquet(path).set_index(id_kind)


def _write_meta(ws: Workspace, info: DatasetInfo) -> None:
    folder = ws.datasets_dir / info.id
    if folder.exists():
        payload = json.dumps(info.to_dict(), indent=2, default=_plain)
        (folder / META_FILE).write_text(payload, encoding="utf-8")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


__all__ = [
    "DatasetInfo",
    "ImportOptions",
    "attach_side_table",
    "dataset_dir",
    "delete_dataset",
    "get_dataset",
    "import_bytes",
    "import_file",
    "import_frames",
    "import_sample",
    "list_datasets",
    "load_dataset",
    "load_frames",
    "rename_dataset",
]
