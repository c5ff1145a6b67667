"""Deleting a dataset completely: nothing of it stays in the workspace.

A dataset reaches further than its folder: runs trained on it (weights, metrics, per-user
rows, recommendations, cached explanations and UMAP maps all live in the run's folder),
background tasks about it or its runs, rolling evaluations, Optuna studies on it, and the later
versions appended from it (which hold its interactions). :func:`delete_dataset` removes all of
them, catalog rows included, with SQLite's ``secure_delete`` on (deleted rows are overwritten
with zeros, not left in free pages) and a WAL checkpoint afterwards, so no id or raw value of
the dataset survives in any file of the workspace.

Anything still queued or running on the dataset is refused first (cancel it, then delete).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from recsys_core.data import store
from recsys_core.errors import ConfigError
from recsys_core.workspace import Workspace


@dataclass
class Footprint:
    """What deleting a dataset removes (ids), for the confirmation and the report."""

    datasets: list[str] = field(default_factory=list)  # the dataset and its later versions
    runs: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    rolling: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """``"2 dataset versions, 3 runs, 1 background task, 0 rolling evaluations, 1 study"``."""
        counts = (
            (len(self.datasets), "dataset version", "dataset versions"),
            (len(self.runs), "run", "runs"),
            (len(self.tasks), "background task", "background tasks"),
            (len(self.rolling), "rolling evaluation", "rolling evaluations"),
            (len(self.studies), "study", "studies"),
        )
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts)


def footprint(ws: Workspace, ref: str) -> Footprint:
    """Everything that belongs to dataset ``ref`` (and to the versions appended from it)."""
    info = store.get_dataset(ws, ref)
    found = Footprint(datasets=_with_descendants(ws, info.id))
    wanted = set(found.datasets)
    with ws.connect() as conn:
        marks = ",".join("?" * len(wanted))
        found.runs = [
            r[0] for r in conn.execute(f"SELECT id FROM runs WHERE dataset IN ({marks})", [*wanted])
        ]
        needles = wanted | set(found.runs)
        found.tasks = [
            row[0]
            for row in conn.execute("SELECT id, payload_json FROM tasks")
            if any(n in row[1] for n in needles)
        ]
    from recsys_core import rolling

    found.rolling = [p["name"] for p in rolling.list_results(ws) if p["dataset"] in wanted]
    found.studies = _studies_on(ws, wanted)
    return found


def delete_dataset(ws: Workspace, ref: str) -> Footprint:
    """Delete dataset ``ref``, its later versions and everything made from them.

    Raises
    ------
    ConfigError
        When a run or task on it is still queued or running (nothing is deleted then).
    """
    found = footprint(ws, ref)
    _refuse_active(ws, found)
    if found.studies:
        _drop_studies(ws, set(found.studies))
    with ws.connect() as conn:
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, column, ids in (
                ("events", "run_id", found.runs),
                ("runs", "id", found.runs),
                ("tasks", "id", found.tasks),
                ("datasets", "id", found.datasets),
            ):
                conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in ids])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    folders = [ws.runs_dir / r for r in found.runs] + [ws.root / "tasks" / t for t in found.tasks]
    folders += [ws.datasets_dir / d for d in found.datasets]
    from recsys_core import rolling

    folders += [rolling.results_dir(ws, name) for name in found.rolling]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    for key in [k for k in store._cache if k[0] in found.datasets]:
        del store._cache[key]
    return found


def _with_descendants(ws: Workspace, dataset_id: str) -> list[str]:
    children: dict[str, list[str]] = {}
    for info in store.list_datasets(ws):
        parent = (info.report.get("version") or {}).get("parent")
        if parent:
            children.setdefault(parent, []).append(info.id)
    out, todo = [], [dataset_id]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def _refuse_active(ws: Workspace, found: Footprint) -> None:
    from recsys_core.jobs.spec import ACTIVE

    with ws.connect() as conn:
        busy = [
            row[0]
            for table, ids in (("runs", found.runs), ("tasks", found.tasks))
            for row in conn.execute(
                f"SELECT id, status FROM {table} WHERE id IN ({','.join('?' * len(ids))})", ids
            )
            if row[1] in ACTIVE
        ]
    if busy:
        raise ConfigError(
            f"{len(busy)} run(s) or task(s) on this dataset are still queued or running "
            f"({', '.join(busy[:5])}); cancel them (Train page, or `python -m recsys_core runs "
            "cancel ID`), then delete the dataset"
        )


def _studies_on(ws: Workspace, datasets: set[str]) -> list[str]:
    from recsys_core import studies

    if not (ws.root / "studies" / studies.JOURNAL).exists() or not studies.optuna_available():
        return []
    optuna = studies.import_optuna()
    found = []
    for summary in optuna.get_all_study_summaries(studies.storage(ws)):
        spec: Any = summary.user_attrs.get("spec") or {}
        if spec.get("dataset") in datasets:
            found.append(summary.study_name)
    return found


def _drop_studies(ws: Workspace, names: set[str]) -> None:
    """Rewrite the Optuna journal without ``names``: a journal only appends, so a deleted
    study's trials would stay in the file; the others are copied into a fresh journal."""
    from recsys_core import studies

    optuna = studies.import_optuna()
    journal = ws.root / "studies" / studies.JOURNAL
    old = studies.storage(ws)
    keep = [s.study_name for s in optuna.get_all_study_summaries(old) if s.study_name not in names]
    fresh = journal.with_name(journal.name + ".new")
    fresh.unlink(missing_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(fresh))
    target = optuna.storages.JournalStorage(backend)
    for name in keep:
        optuna.copy_study(from_study_name=name, from_storage=old, to_storage=target)
    if keep:
        fresh.replace(journal)
    else:
        fresh.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
    for lock in journal.parent.glob(journal.name + ".lock*"):
        shutil.rmtree(lock, ignore_errors=True) if lock.is_dir() else lock.unlink()
