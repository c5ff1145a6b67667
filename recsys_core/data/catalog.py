"""The dataset catalog: which datasets the workspace holds, read from its SQLite catalog.

Only the standard library: listing datasets (the CLI's ``datasets``, ``runs list``, the
sidebar) must not wait for pandas or torch to load. :mod:`recsys_core.data.store` writes
the entries; this module reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from recsys_core.errors import NotFoundError
from recsys_core.workspace import Workspace


@dataclass(frozen=True)
class DatasetInfo:
    """A catalog entry.

    Attributes
    ----------
    id : stable id (folder name under ``datasets/``).
    name : unique, renameable display name.
    source : where it came from (file name, "sample", "synthetic ...").
    content_hash : sha256 of the imported bytes and options (dedupe key).
    created_at : unix seconds.
    n_users, n_items, n_interactions : sizes after filtering.
    options : the :class:`ImportOptions` used, as a dict.
    report : the import report (rows read, duplicates, filtered rows, side tables, warnings).
    already_imported : True when an import call found this dataset already stored.
    """

    id: str
    name: str
    source: str
    content_hash: str
    created_at: float
    n_users: int
    n_items: int
    n_interactions: int
    options: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    already_imported: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the entry."""
        return {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "content_hash": self.content_hash,
            "created_at": self.created_at,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": self.n_interactions,
            "options": self.options,
            "report": self.report,
            "already_imported": self.already_imported,
        }


def list_datasets(ws: Workspace) -> list[DatasetInfo]:
    """Every dataset, oldest first."""
    ws.ensure()
    with ws.connect() as conn:
        rows = conn.execute("SELECT * FROM datasets ORDER BY created_at, id").fetchall()
    return [info_of_row(row) for row in rows]


def get_dataset(ws: Workspace, ref: str) -> DatasetInfo:
    """A dataset by id or name.

    Raises
    ------
    NotFoundError
        Naming the known datasets.
    """
    ws.ensure()
    with ws.connect() as conn:
        row = conn.execute(
            "SELECT * FROM datasets WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1",
            (str(ref), str(ref), str(ref)),
        ).fetchone()
        if row is None:
            names = [r[0] for r in conn.execute("SELECT name FROM datasets ORDER BY name")]
    if row is None:
        known = ", ".join(names[:10]) or "none yet (import one first)"
        raise NotFoundError(f"no dataset named or with id {ref!r}; known datasets: {known}")
    return info_of_row(row)


def info_of_row(row: Any) -> DatasetInfo:
    summary = json.loads(row["summary_json"])
    return DatasetInfo(
        id=row["id"],
        name=row["name"],
        source=row["source"],
        content_hash=row["content_hash"],
        created_at=row["created_at"],
        n_users=int(summary.get("n_users", 0)),
        n_items=int(summary.get("n_items", 0)),
        n_interactions=int(summary.get("n_interactions", 0)),
        options=json.loads(row["options_json"]),
        report=summary.get("report", {}),
    )


def find_by_hash(ws: Workspace, digest: str) -> DatasetInfo | None:
    ws.ensure()
    with ws.connect() as conn:
        row = conn.execute(
            "SELECT * FROM datasets WHERE content_hash = ? ORDER BY created_at LIMIT 1", (digest,)
        ).fetchone()
    return None if row is None else replace(info_of_row(row), already_imported=True)
