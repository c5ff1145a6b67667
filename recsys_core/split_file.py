"""Reading a predefined split file: user, item and part columns matched to a dataset's rows.

The ``predefined`` protocol of :mod:`recsys_core.split` labels every interaction from such a
file (CSV, TSV, RecBole ``.inter`` or Parquet); this module finds the columns, refuses a pair
given two parts and rows the file does not label, and returns the labels in the data's order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.data.interactions import Interactions
from recsys_core.errors import DataError

_USER_NAMES = ("userid", "user_id", "user", "uid", "users", "customer_id", "visitorid")
_ITEM_NAMES = ("movieid", "itemid", "item_id", "item", "iid", "items", "product_id", "movie_id")
_PART_NAMES = ("part", "split", "set", "fold", "subset", "label", "partition")


def _detect(columns: list[str], given: str | None, names: tuple[str, ...], what: str) -> str:
    if given:
        if given not in columns:
            raise DataError(
                f"column {given!r} for the {what} is not in the split file",
                where=f"columns {columns}",
                fix=f"pass one of {columns}",
            )
        return given
    plain = {c.split(":")[0].strip().lower(): c for c in columns}  # RecBole 'user_id:token'
    for name in names:
        if name in plain:
            return plain[name]
    raise DataError(
        f"cannot tell which column of the split file holds the {what}",
        where=f"columns {columns}",
        fix=f"name it one of {list(names[:3])} or pass the {what} column explicitly",
    )


def load_split_file(
    data: Interactions,
    path: str | Path,
    user_col: str | None = None,
    item_col: str | None = None,
    part_col: str | None = None,
) -> np.ndarray:
    """Read a split file (user, item, part rows) and label each interaction of ``data``.

    The file is joined to the data on raw user and item ids (compared as text, so ``1`` and
    ``"1"`` match). Columns are detected from common names (``userId``/``user_id``/``user``,
    ``movieId``/``item_id``/``item``, ``part``/``split``/``set``) unless given.

    Returns
    -------
    object ndarray [data.nnz] of ``"train"``/``"valid"``/``"test"``, aligned with the
    interaction rows.

    Raises
    ------
    DataError
        Unreadable file, undetectable columns, a pair listed twice with different parts, or
        interactions of the data that the file does not label.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "split file not found", where=str(path), fix="check the path to the split file"
        )
    sep = "\t" if path.suffix.lower() in (".tsv", ".inter") else None
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c", dtype=str)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot read the split file ({exc})",
            where=str(path),
            fix="give a CSV/TSV/Parquet with user, item and part columns",
        ) from None
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    ucol = _detect(columns, user_col, _USER_NAMES, "user id")
    icol = _detect(columns, item_col, _ITEM_NAMES, "item id")
    pcol = _detect(columns, part_col, _PART_NAMES, "part (train/valid/test)")
    file_keys = pd.MultiIndex.from_arrays(
        [frame[ucol].astype(str).str.strip(), frame[icol].astype(str).str.strip()]
    )
    parts = frame[pcol].astype(str).str.strip().str.lower().to_numpy()
    dup = file_keys.duplicated(keep=False)
    if dup.any():
        conflicting = pd.Series(parts[dup]).groupby(file_keys[dup]).nunique()
        if (conflicting > 1).any():
            key = conflicting.index[np.argmax(conflicting.to_numpy() > 1)]
            raise DataError(
                "a user-item pair is assigned to different parts in the split file",
                where=f"{path.name}: user {key[0]!r}, item {key[1]!r}",
                fix="give each user-item pair one part",
            )
        keep = ~file_keys.duplicated(keep="first")
        file_keys, parts = file_keys[keep], parts[keep]
    data_keys = pd.MultiIndex.from_arrays(
        [
            pd.Series(data.user_ids[data.users]).astype(str).to_numpy(),
            pd.Series(data.item_ids[data.items]).astype(str).to_numpy(),
        ]
    )
    pos = file_keys.get_indexer(data_keys)
    missing = pos < 0
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"{int(missing.sum())} interaction(s) of the dataset are not in the split file",
            where=f"{path.name}: user {data_keys[row][0]!r}, item {data_keys[row][1]!r}",
            fix="use the split file made for this dataset (same ids, same rows)",
        )
    return parts[pos].astype(object)
