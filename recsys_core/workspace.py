"""The workspace folder and its SQLite catalog.

Layout (default ``./workspace``, or ``$RECSYS_EXPLORER_HOME``)::

    catalog.sqlite          datasets, runs, events (WAL, busy timeout, versioned schema)
    datasets/<dataset_id>/  interactions.parquet, items.parquet, users.parquet, meta.json
    runs/<run_id>/          config, weights, metrics, recommendations, embeddings, log

The schema is a list of migrations applied in order; ``PRAGMA user_version`` records how far a
catalog has got, so an older catalog is upgraded in place and never rebuilt.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ENV_HOME = "RECSYS_EXPLORER_HOME"
DEFAULT_HOME = "workspace"
CATALOG_FILE = "catalog.sqlite"
BUSY_TIMEOUT_MS = 30_000

#: Schema migrations, applied in order; never edit a released one, append a new one.
#: 1: datasets (owned by recsys_core.data.store); 2: runs and events (owned by recsys_core.jobs).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        content_hash TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at REAL NOT NULL,
        options_json TEXT NOT NULL,
        summary_json TEXT NOT NULL
    );
    CREATE INDEX datasets_hash ON datasets(content_hash);
    """,
    # 2: runs, their progress events, background tasks and the worker heartbeat
    # (owned by recsys_core.jobs; see recsys_core/jobs/store.py for the meaning of each column).
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        dataset TEXT NOT NULL,
        model TEXT NOT NULL,
        device TEXT NOT NULL,
        spec_json TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        heartbeat REAL,
        progress REAL NOT NULL DEFAULT 0,
        eta_seconds REAL,
        device_used TEXT,
        versions_json TEXT,
        code_version TEXT,
        fit_seconds REAL,
        error TEXT,
        traceback TEXT,
        log_tail TEXT,
        run_group TEXT,
        label TEXT,
        retry_of TEXT,
        worker_id TEXT,
        child_pid INTEGER,
        cancel_requested_at REAL
    );
    CREATE INDEX runs_status ON runs(status, created_at);
    CREATE INDEX runs_dataset ON runs(dataset, created_at);
    CREATE INDEX runs_group ON runs(run_group);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        step INTEGER NOT NULL,
        epoch REAL,
        loss REAL,
        metrics_json TEXT NOT NULL,
        progress REAL,
        eta REAL
    );
    CREATE INDEX events_run ON events(run_id, id);
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        payload_json TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        heartbeat REAL,
        progress REAL NOT NULL DEFAULT 0,
        message TEXT,
        result_json TEXT,
        error TEXT,
        traceback TEXT,
        worker_id TEXT,
        child_pid INTEGER,
        cancel_requested_at REAL
    );
    CREATE INDEX tasks_status ON tasks(status, created_at);
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at REAL NOT NULL,
        last_beat REAL NOT NULL,
        stopped_at REAL,
        cpu_slots INTEGER NOT NULL,
        gpu_slots INTEGER NOT NULL,
        task_slots INTEGER NOT NULL
    );
    """,
]


@dataclass(frozen=True)
class Workspace:
    """A workspace folder; cheap to create, every method opens what it needs."""

    root: Path

    @classmethod
    def default(cls) -> Workspace:
        """``$RECSYS_EXPLORER_HOME`` or ``./workspace``."""
        return cls(Path(os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser().resolve())

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG_FILE

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def ensure(self) -> Workspace:
        """Create the folders and bring the catalog schema up to date."""
        self.datasets_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            migrate(conn)
        return self

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in WAL mode with a busy timeout; commits on success, rolls back on error."""
        self.root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.catalog_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: one writer at a time, all or nothing."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations atomically; returns the schema version reached."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
