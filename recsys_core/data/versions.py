"""Dataset versions: append new interactions to a stored dataset without breaking old runs.

An append reads the new file exactly as an import does (same readers, column mapping, id
typing, threshold and duplicate policy of the parent, :mod:`recsys_core.data.importer`) and
stores the union as a *new* dataset with its own id whose catalog report records its parent::

    report["version"] = {"parent": parent id, "root": first version's id, "number": 2,
                         "added": {"interactions", "new_users", "new_items", ...}}

The parent is never modified, so every run trained on it still loads and evaluates exactly as
before. The child stores its id vocabularies (``vocab_users.parquet``, ``vocab_items.parquet``):
the parent's ids first, in the parent's order, then the new ids, so user ``u`` and item ``i`` of
the parent keep their indices in every later version (what :func:`recsys_core.updates.update`
relies on to extend a fitted model instead of refitting it).

Two import steps are deliberately not applied to the appended batch: the k-core filter (a user
or item new this week has few interactions by definition; dropping it would hide exactly the
cold start an update must handle) and the predefined split file (appended rows carry the split
label ``train`` when the parent has a split column, so its valid/test parts stay the same).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.data import store
from recsys_core.data.columns import EVENT, ITEM, SPLIT, TIMESTAMP, USER, VALUE
from recsys_core.data.importer import ImportOptions, build, read_source, resolve_duplicates
from recsys_core.data.privacy import pseudonym_key, pseudonymise_result
from recsys_core.data.readers import hash_path, read_table
from recsys_core.errors import DataError
from recsys_core.workspace import Workspace

#: Duplicate policy across versions: a pair already stored and seen again in the batch.
#: ``count`` becomes ``sum`` because both sides already hold counts.
_CROSS_POLICY = {"last": "last", "max": "max", "sum": "sum", "count": "sum"}


def version_of(info: store.DatasetInfo) -> dict[str, Any]:
    """The version record of a catalog entry (``number`` 1 and no parent for an import)."""
    found = info.report.get("version")
    if found:
        return dict(found)
    return {"parent": None, "root": info.id, "number": 1, "added": {}}


def list_versions(ws: Workspace, ref: str) -> list[store.DatasetInfo]:
    """Every version of ``ref``'s lineage (same root), oldest first."""
    root = version_of(store.get_dataset(ws, ref))["root"]
    return [i for i in store.list_datasets(ws) if version_of(i)["root"] == root]


def versions_frame(ws: Workspace, ref: str) -> pd.DataFrame:
    """One row per version of ``ref``'s lineage: what each added (for the Data page and CLI)."""
    rows = []
    for info in list_versions(ws, ref):
        v = version_of(info)
        added = v.get("added", {})
        rows.append(
            {
                "version": v["number"],
                "name": info.name,
                "id": info.id,
                "parent": v["parent"] or "",
                "created": pd.Timestamp(info.created_at, unit="s").strftime("%Y-%m-%d %H:%M"),
                "interactions": info.n_interactions,
                "added interactions": added.get("interactions", info.n_interactions),
                "new users": added.get("new_users", info.n_users),
                "new items": added.get("new_items", info.n_items),
                "source": info.source,
            }
        )
    return pd.DataFrame(rows)


def append_file(
    ws: Workspace,
    parent: str,
    path: str | Path,
    *,
    name: str | None = None,
    items: str | Path | None = None,
    users: str | Path | None = None,
    options: ImportOptions | None = None,
) -> store.DatasetInfo:
    """Append the interactions of a file (any importable format) to dataset ``parent``.

    Parameters
    ----------
    parent : id or name of the dataset to extend (it is not modified).
    path : CSV / TSV / Parquet file, folder or zip, read as :func:`store.import_file` reads it.
    name : name of the new version (default: ``<root name>-v<number>``).
    items, users : optional side tables; rows for ids new in this batch are added.
    options : read options; default: the parent's (mapping, threshold, duplicates, encoding).

    Returns
    -------
    DatasetInfo of the new version; ``already_imported`` when this batch was appended before.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError("the file does not exist", where=str(path), fix="check the path")
    info = store.get_dataset(ws, parent)
    options = _batch_options(info, options)
    extra = [hash_path(Path(p)) if p else "-" for p in (items, users)]
    digest = _digest(info, hash_path(path) + "".join(extra), options)
    if (existing := store.find_by_hash(ws, digest)) is not None:
        return existing
    raw = read_source(path, options)
    side = {
        kind: read_table(Path(p).read_bytes(), Path(p).name, encoding=options.encoding)
        for kind, p in (("items", items), ("users", users))
        if p is not None
    }
    return _append_raw(ws, info, raw, options, digest, name, path.name, side)


def append_bytes(
    ws: Workspace,
    parent: str,
    data: bytes,
    filename: str,
    *,
    name: str | None = None,
    options: ImportOptions | None = None,
) -> store.DatasetInfo:
    """Append uploaded bytes (``filename`` tells the format) to dataset ``parent``."""
    info = store.get_dataset(ws, parent)
    options = _batch_options(info, options)
    store.check_upload_size(data, filename, options)
    safe_name = Path(filename).name or "append.csv"
    digest = _digest(info, hashlib.sha256(data).hexdigest(), options)
    if (existing := store.find_by_hash(ws, digest)) is not None:
        return existing
    with tempfile.TemporaryDirectory(prefix="recsys-append-") as tmp:
        target = Path(tmp) / safe_name
        target.write_bytes(data)
        raw = read_source(target, options, display_name=safe_name)
        return _append_raw(ws, info, raw, options, digest, name, safe_name, {})


def append_frame(
    ws: Workspace,
    parent: str,
    frame: pd.DataFrame,
    *,
    name: str | None = None,
    items: pd.DataFrame | None = None,
    source: str = "frames",
) -> store.DatasetInfo:
    """Append an in-memory frame with raw columns (as :func:`store.import_frames` takes)."""
    from recsys_core.data.readers import RawData

    info = store.get_dataset(ws, parent)
    options = _batch_options(info, None)
    content = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    digest = _digest(info, hashlib.sha256(content).hexdigest(), options)
    if (existing := store.find_by_hash(ws, digest)) is not None:
        return existing
    raw = RawData(
        frame.reset_index(drop=True), items, None, "frames", [], header_lines=0, source=source
    )
    return _append_raw(ws, info, raw, options, digest, name, source, {})


# ---------------------------------------------------------------------------------------------
# internals
# ---------------------------------------------------------------------------------------------
def _batch_options(info: store.DatasetInfo, options: ImportOptions | None) -> ImportOptions:
    base = options or config_from_dict(ImportOptions, info.options)
    # No k-core and no split file on a batch: see the module docstring.
    return replace(base, min_user_interactions=0, min_item_interactions=0, split_file="")


def _digest(info: store.DatasetInfo, batch_hash: str, options: ImportOptions) -> str:
    payload = json.dumps(config_to_dict(options), sort_keys=True)
    text = f"append|{info.content_hash}|{batch_hash}|{payload}"
    return hashlib.sha256(text.encode()).hexdigest()


def _match_ids(new: pd.Series, old: np.ndarray, role: str, where: str) -> pd.Series:
    """Type the batch's ids like the parent's, so ``42`` and ``"42"`` are one id."""
    old_int = np.asarray(old).dtype.kind in "iu"
    if old_int and new.dtype.kind not in "iu":
        raise DataError(
            f"the {role} ids of the appended file are text (e.g. {new.iloc[0]!r}) but the "
            f"dataset's {role} ids are integers",
            where=where,
            fix=f"append a file whose {role} column holds the same kind of ids as the dataset",
        )
    if not old_int and new.dtype.kind in "iu":
        return new.astype(str)
    return new


def _append_raw(
    ws: Workspace,
    info: store.DatasetInfo,
    raw: Any,
    options: ImportOptions,
    digest: str,
    name: str | None,
    source: str,
    side: dict[str, pd.DataFrame],
) -> store.DatasetInfo:
    batch = build(raw, options, items=side.get("items"), users=side.get("users"))
    if options.pseudonymise:  # the parent's key and rule, so the batch's ids match the parent's
        batch = pseudonymise_result(batch, pseudonym_key(ws))
    old_frame, old_items, old_users = store.load_frames(ws, info.id)
    old = store.load_dataset(ws, info.id)
    new = batch.frame.copy()
    for role, vocab in ((USER, old.user_ids), (ITEM, old.item_ids)):
        new[role] = _match_ids(new[role], vocab, role, source)
    if (TIMESTAMP in old_frame) != (TIMESTAMP in new):
        has, lacks = (
            ("dataset", "appended file")
            if TIMESTAMP in old_frame
            else (
                "appended file",
                "dataset",
            )
        )
        raise DataError(
            f"the {has} has timestamps but the {lacks} has none",
            where=source,
            fix="append a file with the same columns as the dataset (user, item, value, timestamp)",
        )
    if SPLIT in old_frame:
        new[SPLIT] = "train"  # appended data trains; the parent's valid/test stay as they were
    new = new[[c for c in new.columns if c in old_frame.columns or c in (VALUE, EVENT)]]
    combined = pd.concat([old_frame, new], ignore_index=True)
    report: dict[str, Any] = {"source": source, "rows_read": batch.report.get("rows_read")}
    combined = resolve_duplicates(combined, _CROSS_POLICY[options.duplicates], report)
    user_vocab = _extend(old.user_ids, new[USER])
    item_vocab = _extend(old.item_ids, new[ITEM])
    new_users = user_vocab[old.n_users :]
    new_items = item_vocab[old.n_items :]
    v = version_of(info)
    number = 1 + max(version_of(i)["number"] for i in list_versions(ws, info.id))
    added = {
        "interactions": int(len(combined) - len(old_frame)),
        "rows_in_file": int(len(new)),
        "new_users": int(len(new_users)),
        "new_items": int(len(new_items)),
        "touched_users": int(new[USER].nunique()),
        "touched_items": int(new[ITEM].nunique()),
        "new_user_examples": [_plain(x) for x in new_users[:5]],
        "new_item_examples": [_plain(x) for x in new_items[:5]],
    }
    if TIMESTAMP in new and len(new):
        added["time_range"] = [int(new[TIMESTAMP].min()), int(new[TIMESTAMP].max())]
    report["version"] = {"parent": info.id, "root": v["root"], "number": number, "added": added}
    report["warnings"] = list(batch.report.get("warnings", []))
    root_name = store.get_dataset(ws, v["root"]).name if v["root"] != info.id else info.name
    return _store_version(
        ws,
        combined,
        user_vocab,
        item_vocab,
        _merge_side(old_items, batch.items),
        _merge_side(old_users, batch.users),
        base_name=name or f"{root_name}-v{number}",
        explicit=name is not None,
        source=f"append {source} to {info.name}",
        digest=digest,
        options=options,
        report=report,
    )


def _extend(old: np.ndarray, seen: pd.Series) -> np.ndarray:
    """``old`` followed by the ids of ``seen`` not in it (sorted, so reruns agree)."""
    old = np.asarray(old)
    fresh = pd.Index(pd.unique(seen)).difference(pd.Index(old)).to_numpy()
    if old.dtype.kind in "iu":
        return np.concatenate([old, fresh.astype(np.int64)])
    return np.concatenate([old.astype(object), fresh.astype(str).astype(object)])


def _merge_side(old: pd.DataFrame | None, new: pd.DataFrame | None) -> pd.DataFrame | None:
    """Parent's side rows, plus the batch's rows for ids the parent has no row for."""
    if new is None:
        return old
    if old is None:
        return new
    return pd.concat([old, new[~new.index.isin(old.index)]])


def _store_version(
    ws: Workspace,
    frame: pd.DataFrame,
    user_vocab: np.ndarray,
    item_vocab: np.ndarray,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
    *,
    base_name: str,
    explicit: bool,
    source: str,
    digest: str,
    options: ImportOptions,
    report: dict[str, Any],
) -> store.DatasetInfo:
    """Write the version's files to a temporary folder, then insert the catalog row and move
    the folder into place in one transaction (all-or-nothing, as an import)."""
    dataset_id = "ds-" + uuid.uuid4().hex[:10]
    tmp = ws.datasets_dir / f".tmp-{dataset_id}"
    tmp.mkdir(parents=True)
    try:
        frame.to_parquet(tmp / store.INTERACTIONS_FILE, index=False)
        pd.DataFrame({"id": user_vocab}).to_parquet(tmp / store.USER_VOCAB_FILE, index=False)
        pd.DataFrame({"id": item_vocab}).to_parquet(tmp / store.ITEM_VOCAB_FILE, index=False)
        if items is not None:
            store._write_side(items, ITEM, tmp / store.ITEMS_FILE)
        if users is not None:
            store._write_side(users, USER, tmp / store.USERS_FILE)
        info = store.commit_dataset(
            ws,
            tmp,
            digest=digest,
            base_name=base_name,
            explicit=explicit,
            source=source,
            shape=(len(user_vocab), len(item_vocab), len(frame)),
            options=options,
            report=report,
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


__all__ = [
    "append_bytes",
    "append_file",
    "append_frame",
    "list_versions",
    "version_of",
    "versions_frame",
]
