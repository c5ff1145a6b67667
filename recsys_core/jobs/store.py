"""The run store: rows of the ``runs``, ``events``, ``tasks`` and ``workers`` tables.

The tables are created by migration 2 of :mod:`recsys_core.workspace`. The runs table is the
single source of truth for a run's state: the API writes ``queued`` and ``cancelling``, the worker
claims (``running``) and finalises runs whose child died, the child writes events and its own
outcome. Every write is one short ``BEGIN IMMEDIATE`` transaction, and every status change is
guarded by the statuses it may come from (``... WHERE status IN (...)``), so two writers racing
on one row (a cancel against a claim, a finishing child against a recovering worker) can never
both win.

Columns of ``runs`` beyond the obvious: ``device`` (the spec's device preference, for claiming),
``heartbeat`` (last sign of life from the worker), ``worker_id`` / ``child_pid`` (who runs it),
``cancel_requested_at`` (when ``cancel`` was asked, the start of the 2-second bound),
``log_tail`` (last lines of ``log.txt`` on failure), ``retry_of`` (the run this one retries).
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from recsys_core.errors import NotFoundError
from recsys_core.jobs.spec import (
    ACTIVE,
    CANCELLING,
    QUEUED,
    RUNNING,
    RunRecord,
    RunSpec,
    TaskRecord,
)
from recsys_core.workspace import Workspace


def new_id(prefix: str) -> str:
    """A sortable, readable, unique id such as ``r-261122-204600-3fa9c1d2`` (UTC time + 32
    random bits, so ids made in the same second by several processes do not collide)."""
    return f"{prefix}-{time.strftime('%y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def _finite(value: Any) -> float | None:
    """A float for SQLite, or None for missing/NaN/inf values (JSON has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ----- runs ------------------------------------------------------------------------------------
def insert_run(
    conn: sqlite3.Connection, run_id: str, spec: RunSpec, *, retry_of: str | None = None
) -> None:
    """Insert a queued run (call inside a transaction)."""
    conn.execute(
        "INSERT INTO runs (id, dataset, model, device, spec_json, status, created_at, run_group,"
        " label, retry_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            spec.dataset,
            spec.model,
            spec.device,
            spec.to_json(),
            QUEUED,
            time.time(),
            spec.group,
            spec.label,
            retry_of,
        ),
    )


def run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        spec=RunSpec.from_dict(json.loads(row["spec_json"])),
        status=row["status"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        heartbeat=row["heartbeat"],
        progress=float(row["progress"] or 0.0),
        eta_seconds=row["eta_seconds"],
        device_used=row["device_used"],
        versions=_loads(row["versions_json"], {}),
        code_version=row["code_version"],
        fit_seconds=row["fit_seconds"],
        error=row["error"],
        traceback=row["traceback"],
        log_tail=row["log_tail"],
        retry_of=row["retry_of"],
    )


def fetch_run(conn: sqlite3.Connection, run_id: str) -> RunRecord:
    """The run ``run_id``; NotFoundError names the id and how to list runs."""
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFoundError(
            f"no run with id {run_id!r} in this workspace; "
            "list runs with `python -m recsys_core runs list`"
        )
    return run_from_row(row)


def run_status(ws: Workspace, run_id: str) -> str | None:
    """The run's status, or None when it does not exist (cheap: one indexed read)."""
    with ws.connect() as conn:
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


def update_run(
    ws: Workspace, run_id: str, *, allowed: Sequence[str] | None = None, **columns: Any
) -> bool:
    """Set ``columns`` on the run, only while its status is one of ``allowed`` (if given).

    Returns True when the row was updated, False when its status had already moved on.
    """
    if not columns:
        return False
    names = list(columns)
    sql = f"UPDATE runs SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
    params: list[Any] = [columns[n] for n in names] + [run_id]
    if allowed:
        sql += f" AND status IN ({', '.join('?' * len(allowed))})"
        params += list(allowed)
    with ws.transaction() as conn:
        return conn.execute(sql, params).rowcount == 1


def claim_run(
    ws: Workspace, worker_id: str, accepts: Any, *, lookahead: int = 500
) -> tuple[str, RunSpec, str] | None:
    """Atomically take the oldest queued run whose device this worker can serve now.

    Parameters
    ----------
    accepts : ``accepts(device_preference) -> str | None``: the concrete device the worker
        would give a run with that preference now (``"cpu"``, ``"cuda:0"``), or None when no
        slot fits it at the moment.

    Returns
    -------
    ``(run_id, spec, assigned_device)`` or None. The select and the guarded update run in one
    ``BEGIN IMMEDIATE`` transaction, so two claimers can never take the same run.
    """
    with ws.transaction() as conn:
        rows = conn.execute(
            "SELECT id, device FROM runs WHERE status = ? ORDER BY created_at, rowid LIMIT ?",
            (QUEUED, lookahead),
        ).fetchall()
        for row in rows:
            assigned = accepts(row["device"])
            if assigned is None:
                continue
            now = time.time()
            claimed = conn.execute(
                "UPDATE runs SET status = ?, started_at = ?, heartbeat = ?, worker_id = ?,"
                " device_used = ? WHERE id = ? AND status = ? RETURNING spec_json",
                (RUNNING, now, now, worker_id, assigned, row["id"], QUEUED),
            ).fetchone()
            if claimed is not None:
                return row["id"], RunSpec.from_dict(json.loads(claimed[0])), assigned
    return None


def claim_specific(ws: Workspace, run_id: str, worker_id: str, device: str) -> bool:
    """Atomically take one given queued run (for executing it in the calling process)."""
    now = time.time()
    with ws.transaction() as conn:
        row = conn.execute(
            "UPDATE runs SET status = ?, started_at = ?, heartbeat = ?, worker_id = ?,"
            " device_used = ? WHERE id = ? AND status = ? RETURNING id",
            (RUNNING, now, now, worker_id, device, run_id, QUEUED),
        ).fetchone()
    return row is not None


def add_events(
    ws: Workspace,
    run_id: str,
    events: Iterable[dict[str, Any]],
    *,
    progress: float | None,
    eta: float | None,
) -> None:
    """Append progress events and update the run's progress and ETA in one transaction.

    Each event is ``{"ts", "step", "metrics"}`` where ``metrics`` is the model's callback dict.
    """
    rows = []
    for event in events:
        metrics = {k: _finite(v) for k, v in event["metrics"].items()}
        rows.append(
            (
                run_id,
                event["ts"],
                int(event["step"]),
                metrics.get("epoch"),
                metrics.get("loss"),
                json.dumps(metrics),
                _finite(event.get("progress")),
                _finite(event.get("eta")),
            )
        )
    with ws.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (run_id, ts, step, epoch, loss, metrics_json, progress, eta)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if progress is not None:
            conn.execute(
                "UPDATE runs SET progress = ?, eta_seconds = ? WHERE id = ? AND status IN (?, ?)",
                (_finite(progress), _finite(eta), run_id, RUNNING, CANCELLING),
            )


def fetch_events(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """Events of a run in order, each ``{"ts", "step", "epoch", "loss", "progress", "eta",
    **metrics}``."""
    out = []
    for row in conn.execute(
        "SELECT ts, step, epoch, loss, metrics_json, progress, eta FROM events"
        " WHERE run_id = ? ORDER BY id",
        (run_id,),
    ):
        event = {"ts": row["ts"], "step": row["step"], "epoch": row["epoch"], "loss": row["loss"]}
        event.update((k, v) for k, v in json.loads(row["metrics_json"]).items() if k not in event)
        event["progress"] = row["progress"]
        event["eta"] = row["eta"]
        out.append(event)
    return out


# ----- tasks -----------------------------------------------------------------------------------
def task_from_row(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        kind=row["kind"],
        payload=json.loads(row["payload_json"]),
        status=row["status"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        progress=float(row["progress"] or 0.0),
        message=row["message"],
        result=_loads(row["result_json"], None),
        error=row["error"],
        traceback=row["traceback"],
    )


def fetch_task(conn: sqlite3.Connection, task_id: str) -> TaskRecord:
    row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no background task with id {task_id!r} in this workspace")
    return task_from_row(row)


def update_task(
    ws: Workspace, task_id: str, *, allowed: Sequence[str] | None = None, **columns: Any
) -> bool:
    """Like :func:`update_run`, for the tasks table."""
    names = list(columns)
    sql = f"UPDATE tasks SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
    params: list[Any] = [columns[n] for n in names] + [task_id]
    if allowed:
        sql += f" AND status IN ({', '.join('?' * len(allowed))})"
        params += list(allowed)
    with ws.transaction() as conn:
        return conn.execute(sql, params).rowcount == 1


def claim_task(ws: Workspace, worker_id: str) -> tuple[str, str] | None:
    """Atomically take the oldest queued task; returns ``(task_id, kind)`` or None."""
    with ws.transaction() as conn:
        now = time.time()
        row = conn.execute(
            "UPDATE tasks SET status = ?, started_at = ?, heartbeat = ?, worker_id = ?"
            " WHERE id = (SELECT id FROM tasks WHERE status = ? ORDER BY created_at, rowid"
            " LIMIT 1) AND status = ? RETURNING id, kind",
            (RUNNING, now, now, worker_id, QUEUED, QUEUED),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def active_ids(conn: sqlite3.Connection, table: str) -> list[str]:
    """Ids of rows of ``table`` (``runs`` or ``tasks``) that are queued, running or cancelling."""
    assert table in ("runs", "tasks")
    marks = ", ".join("?" * len(ACTIVE))
    return [r[0] for r in conn.execute(f"SELECT id FROM {table} WHERE status IN ({marks})", ACTIVE)]


# ----- workspace settings ------------------------------------------------------------------
#: Created on first use rather than by a numbered migration: a key-value table needs no
#: upgrade path, and it keeps this feature from claiming a migration number.
_SETTINGS_DDL = "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def get_setting(ws: Workspace, key: str) -> str | None:
    """A workspace setting stored in the catalog (e.g. ``executor``), or None when unset."""
    with ws.connect() as conn:
        conn.execute(_SETTINGS_DDL)
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_setting(ws: Workspace, key: str, value: str | None) -> None:
    """Store (or with None, remove) a workspace setting."""
    with ws.transaction() as conn:
        conn.execute(_SETTINGS_DDL)
        if value is None:
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
