"""The jobs API: what the app, the CLI and notebooks call to queue and watch work.

Nothing here trains: ``submit`` validates a spec and inserts a queued row; the worker
(:mod:`recsys_core.jobs.worker`) does the rest. Every function takes the ``Workspace`` first and
is safe to call from several processes at once.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.errors import ConfigError, NotFoundError
from recsys_core.jobs import store
from recsys_core.jobs.spec import (
    ACTIVE,
    CANCELLED,
    CANCELLING,
    QUEUED,
    RUNNING,
    TERMINAL,
    RunRecord,
    RunSpec,
    TaskRecord,
)
from recsys_core.workspace import Workspace

#: A worker whose last heartbeat is older than this is considered dead.
WORKER_STALE_SECONDS = 10.0
WORKER_LOG = "worker.log"
#: ``ensure_worker`` records what it spawned here, and spawns no other for this many seconds
#: while that process lives (it may still be importing and not yet heartbeating).
WORKER_SPAWN = "worker.spawn"
WORKER_SPAWN_GRACE = 60.0


# ----- runs ------------------------------------------------------------------------------------
def normalise_spec(ws: Workspace, spec: RunSpec | dict[str, Any]) -> RunSpec:
    """Validate ``spec`` completely and return it with defaults filled in.

    The dataset may be given by id or name (the id is stored); the model key, its config,
    the balance options (including whether the model honours them), the split and the device
    are checked here, so a bad spec is refused at submit time with the reason, not after a
    queue wait. So is a run whose pre-flight estimate (:mod:`recsys_core.estimate`) does not
    fit in the memory free now: ResourceError with the reason and the nearest setting that fits.
    """
    from recsys_core.balance import BalanceConfig, check_honoured
    from recsys_core.data.store import get_dataset
    from recsys_core.device import DEVICE_CHOICES
    from recsys_core.jobs.plugins import load_plugins
    from recsys_core.models import get_model
    from recsys_core.split import SplitSpec

    load_plugins()
    if isinstance(spec, dict):
        spec = RunSpec.from_dict(spec)
    dataset = get_dataset(ws, spec.dataset)
    model_cls = get_model(spec.model)
    config = config_from_dict(model_cls.Config, spec.config)
    balance = config_from_dict(BalanceConfig, spec.balance)
    check_honoured(model_cls.name, model_cls.honours_balance, balance)
    split = config_from_dict(SplitSpec, spec.split)
    device = (spec.device or "auto").strip().lower()
    if device.split(":")[0] not in DEVICE_CHOICES or (
        ":" in device and not device.split(":", 1)[1].isdigit()
    ):
        raise ConfigError(
            f"device: unknown device {spec.device!r}; choose one of {DEVICE_CHOICES}"
            " (optionally with an index, e.g. cuda:1)"
        )
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, numbers.Integral) or spec.seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {spec.seed!r}")
    changed = balance.changed()
    update = _check_parent(ws, spec, model_cls.name, dataset.id)
    out = RunSpec(
        dataset=dataset.id,
        model=model_cls.name,
        split=config_to_dict(split),
        config=config_to_dict(config),
        balance={k: v for k, v in config_to_dict(balance).items() if k in changed},
        device=device,
        seed=int(spec.seed),
        group=spec.group,
        label=spec.label,
        parent=spec.parent,
        update=update,
    )
    if out.parent is None:  # an update's cost is the parent's model, not a fresh fit
        from recsys_core.estimate import estimate_spec, refuse_if_unfit

        refuse_if_unfit(estimate_spec(ws, out))
    return out


def _check_parent(ws: Workspace, spec: RunSpec, model: str, dataset_id: str) -> dict[str, Any]:
    """An update run's parent must be a finished run of the same model on an earlier version
    of the same dataset; returns the update settings completed with defaults."""
    from recsys_core.data.store import get_dataset
    from recsys_core.data.versions import version_of
    from recsys_core.updates import UpdateSettings

    if spec.parent is None:
        if spec.update:
            raise ConfigError("update: settings were given without a parent run to update")
        return {}
    parent = get_run(ws, spec.parent)
    if parent.status != "done" or parent.spec.model != model:
        raise ConfigError(
            f"parent run {spec.parent} is a {parent.status} {parent.spec.model!r} run; an update "
            f"needs a finished run of the same model ({model!r})"
        )
    lineage, ref = [], dataset_id
    while ref:  # walk the version chain back to its root
        lineage.append(ref)
        ref = version_of(get_dataset(ws, ref))["parent"]
    if parent.spec.dataset not in lineage:
        raise ConfigError(
            f"run {spec.parent} was trained on dataset {parent.spec.dataset}, which is not an "
            f"earlier version of {dataset_id}; append the new data to that dataset "
            "(python -m recsys_core append) and update with the new version"
        )
    return config_to_dict(config_from_dict(UpdateSettings, spec.update))


def submit(ws: Workspace, spec: RunSpec | dict[str, Any]) -> str:
    """Queue a run; returns its id. Raises ConfigError/NotFoundError for an invalid spec."""
    spec = normalise_spec(ws, spec)
    run_id = store.new_id("r")
    with ws.transaction() as conn:
        store.insert_run(conn, run_id, spec)
    return run_id


def submit_sweep(
    ws: Workspace,
    spec: RunSpec | dict[str, Any],
    grid: dict[str, Sequence[Any]],
    *,
    group: str | None = None,
) -> list[str]:
    """Queue one run per point of a grid over ``spec``; all or nothing.

    Parameters
    ----------
    spec : the base run.
    grid : ``{"config.l2": [10, 100], "balance.pop_norm": [0, 0.5], "seed": [0, 1]}``: keys
        are ``config.<field>``, ``balance.<field>``, ``split.<field>`` or a top-level RunSpec
        field (``seed``, ``device``, ``model``); the Cartesian product is queued.
    group : the sweep's name (default: a new id), stored on every run for ``list_runs(group=)``.

    Returns
    -------
    The run ids in grid order. Every point is validated before any is queued, so an invalid
    value queues nothing and the ConfigError names the point.
    """
    import itertools

    base = (spec if isinstance(spec, RunSpec) else RunSpec.from_dict(spec)).to_dict()
    group = group or store.new_id("sweep")
    keys = list(grid)
    for key in keys:
        head = key.split(".", 1)[0]
        if ("." in key and head not in ("config", "balance", "split")) or (
            "." not in key and key not in base
        ):
            raise ConfigError(
                f"sweep: cannot vary {key!r}; use config.<field>, balance.<field>, "
                "split.<field> or one of seed, device, model"
            )
        if not list(grid[key]):
            raise ConfigError(f"sweep: {key!r} has no values")
    specs = []
    for values in itertools.product(*(list(grid[k]) for k in keys)):
        point = json.loads(json.dumps(base))
        for key, value in zip(keys, values, strict=True):
            if "." in key:
                head, name = key.split(".", 1)
                point[head][name] = value
            else:
                point[key] = value
        point["group"] = group
        label = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, values, strict=True))
        point["label"] = point.get("label") or label
        try:
            specs.append(normalise_spec(ws, point))
        except ConfigError as error:
            raise ConfigError(f"sweep point {label}: {error}") from None
    ids = [store.new_id("r") for _ in specs]
    with ws.transaction() as conn:
        for run_id, one in zip(ids, specs, strict=True):
            store.insert_run(conn, run_id, one)
    return ids


def get_run(ws: Workspace, run_id: str) -> RunRecord:
    """The run's record; NotFoundError when there is no such run."""
    with ws.connect() as conn:
        return store.fetch_run(conn, run_id)


def status(ws: Workspace, run_id: str) -> str:
    """Just the run's status (one indexed read; for polling loops)."""
    current = store.run_status(ws, run_id)
    if current is None:
        raise NotFoundError(
            f"no run with id {run_id!r} in this workspace; "
            "list runs with `python -m recsys_core runs list`"
        )
    return current


def list_runs(
    ws: Workspace,
    *,
    dataset: str | None = None,
    status: str | Sequence[str] | None = None,
    group: str | None = None,
    model: str | None = None,
    limit: int | None = None,
) -> list[RunRecord]:
    """Runs, newest first, optionally filtered (``status`` may be one status or several)."""
    where, params = [], []
    if dataset is not None:
        where.append("dataset = ?")
        params.append(dataset)
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        where.append(f"status IN ({', '.join('?' * len(wanted))})")
        params += wanted
    if group is not None:
        where.append("run_group = ?")
        params.append(group)
    if model is not None:
        where.append("model = ?")
        params.append(model)
    sql = "SELECT * FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, rowid DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with ws.connect() as conn:
        return [store.run_from_row(row) for row in conn.execute(sql, params)]


def cancel(ws: Workspace, run_id: str) -> str:
    """Cancel a run; returns its status afterwards.

    A queued run becomes ``cancelled`` at once. A running one becomes ``cancelling``: its child
    stops between batches within about half a second, and the worker kills it if it has not
    stopped 1.5 s after the request and marks it ``cancelled``. Finished runs are left as
    they are.
    """
    now = time.time()
    with ws.transaction() as conn:
        current = store.fetch_run(conn, run_id).status
        if current == QUEUED:
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, cancel_requested_at = ?,"
                " error = ? WHERE id = ? AND status = ?",
                (CANCELLED, now, now, "cancelled before it started", run_id, QUEUED),
            )
            return CANCELLED
        if current == RUNNING:
            conn.execute(
                "UPDATE runs SET status = ?, cancel_requested_at = ? WHERE id = ? AND status = ?",
                (CANCELLING, now, run_id, RUNNING),
            )
            return CANCELLING
    return current


def retry(ws: Workspace, run_id: str) -> str:
    """Queue the same spec again as a new run (linked by ``retry_of``); returns the new id."""
    with ws.transaction() as conn:
        record = store.fetch_run(conn, run_id)
        if record.status not in TERMINAL:
            raise ConfigError(
                f"run {run_id} is {record.status}; only a finished, failed, cancelled or "
                "interrupted run can be retried (cancel it first)"
            )
        new_id = store.new_id("r")
        store.insert_run(conn, new_id, record.spec, retry_of=run_id)
    return new_id


def run_inline(ws: Workspace, run_id: str, *, device: str | None = None) -> RunRecord:
    """Execute a queued run in this process (no worker, no child): for notebooks and tests.

    The run is claimed atomically like a worker would, so a worker cannot take it as well;
    its outcome (done, failed with traceback, artifacts) is recorded the same way. ``device``
    defaults to the spec's (``auto`` resolved here).
    """
    from recsys_core.device import resolve_device
    from recsys_core.jobs.child import run_child

    record = get_run(ws, run_id)
    resolved = str(resolve_device(device or record.spec.device))
    if not store.claim_specific(
        ws, run_id, f"inline:{socket.gethostname()}:{os.getpid()}", resolved
    ):
        raise ConfigError(
            f"run {run_id} is {get_run(ws, run_id).status}, not queued; "
            "only a queued run can be executed (retry it to queue it again)"
        )
    (ws.runs_dir / run_id).mkdir(parents=True, exist_ok=True)
    run_child(ws, run_id, device=resolved, device_label=resolved)
    return get_run(ws, run_id)


def events(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    """The run's progress events in order: ``{"ts", "step", "epoch", "loss", ..., "eta"}``."""
    with ws.connect() as conn:
        store.fetch_run(conn, run_id)
        return store.fetch_events(conn, run_id)


def delete_run(ws: Workspace, run_id: str) -> None:
    """Remove a finished run, its events and its artifact folder."""
    with ws.transaction() as conn:
        record = store.fetch_run(conn, run_id)
        if record.status in ACTIVE:
            raise ConfigError(f"run {run_id} is {record.status}; cancel it before deleting it")
        conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    shutil.rmtree(ws.runs_dir / run_id, ignore_errors=True)


def wait(
    ws: Workspace, run_id: str, *, timeout: float | None = None, poll: float = 0.25
) -> RunRecord:
    """Block until the run is in a terminal state (or ``timeout`` seconds passed); return it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = get_run(ws, run_id)
        if record.is_terminal or (deadline is not None and time.monotonic() >= deadline):
            return record
        time.sleep(poll)


# ----- background tasks ---------------------------------------------------------------------
def _payload_json(kind: str, payload: dict[str, Any]) -> str:
    # Sorted keys: the same payload always gives the same text, which is what dedup compares.
    try:
        return json.dumps(payload, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"task {kind!r}: the payload must be JSON-serialisable ({error}); "
            "pass ids and plain numbers, not objects"
        ) from None


def submit_task(ws: Workspace, kind: str, payload: dict[str, Any]) -> str:
    """Queue a background engine job ``TASKS[kind](ws, payload, progress)``; returns its id.

    An identical task (same kind and payload) that is still queued or running is not queued
    again: its id is returned, so a second click or a reloaded page attaches to it.
    """
    from recsys_core.jobs.plugins import load_plugins
    from recsys_core.jobs.tasks import TASKS

    load_plugins()
    if kind not in TASKS:
        raise NotFoundError(f"unknown task kind {kind!r}; known kinds: {sorted(TASKS)}")
    payload_json = _payload_json(kind, payload)
    task_id = store.new_id("t")
    with ws.transaction() as conn:  # check and insert in one transaction: no racing duplicate
        existing = _active_task_id(conn, kind, payload_json)
        if existing is not None:
            return existing
        conn.execute(
            "INSERT INTO tasks (id, kind, payload_json, status, created_at) VALUES (?, ?, ?, ?, ?)",
            (task_id, kind, payload_json, QUEUED, time.time()),
        )
    return task_id


def find_task(ws: Workspace, kind: str, payload: dict[str, Any]) -> str | None:
    """The id of a queued or running task identical to ``(kind, payload)``, or None (a page
    reloaded while its task runs uses this to show that task's progress again)."""
    with ws.connect() as conn:
        return _active_task_id(conn, kind, _payload_json(kind, payload))


def _active_task_id(conn: Any, kind: str, payload_json: str) -> str | None:
    row = conn.execute(
        "SELECT id FROM tasks WHERE kind = ? AND payload_json = ? AND status IN (?, ?)"
        " ORDER BY created_at DESC LIMIT 1",
        (kind, payload_json, QUEUED, RUNNING),  # a task being cancelled is not reused
    ).fetchone()
    return None if row is None else str(row[0])


def get_task(ws: Workspace, task_id: str) -> TaskRecord:
    with ws.connect() as conn:
        return store.fetch_task(conn, task_id)


def list_tasks(
    ws: Workspace, *, kind: str | None = None, status: str | Sequence[str] | None = None
) -> list[TaskRecord]:
    """Background tasks, newest first."""
    where, params = [], []
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        where.append(f"status IN ({', '.join('?' * len(wanted))})")
        params += wanted
    sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "")
    with ws.connect() as conn:
        rows = conn.execute(sql + " ORDER BY created_at DESC, rowid DESC", params).fetchall()
    return [store.task_from_row(row) for row in rows]


def cancel_task(ws: Workspace, task_id: str) -> str:
    """Cancel a task (same semantics as :func:`cancel`); returns its status afterwards."""
    now = time.time()
    with ws.transaction() as conn:
        current = store.fetch_task(conn, task_id).status
        if current == QUEUED:
            conn.execute(
                "UPDATE tasks SET status = ?, finished_at = ?, cancel_requested_at = ?"
                " WHERE id = ? AND status = ?",
                (CANCELLED, now, now, task_id, QUEUED),
            )
            return CANCELLED
        if current == RUNNING:
            conn.execute(
                "UPDATE tasks SET status = ?, cancel_requested_at = ? WHERE id = ? AND status = ?",
                (CANCELLING, now, task_id, RUNNING),
            )
            return CANCELLING
    return current


def wait_task(
    ws: Workspace, task_id: str, *, timeout: float | None = None, poll: float = 0.25
) -> TaskRecord:
    """Block until the task is in a terminal state (or ``timeout`` passed); return it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = get_task(ws, task_id)
        if not record.is_active or (deadline is not None and time.monotonic() >= deadline):
            return record
        time.sleep(poll)


# ----- the worker ----------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerStatus:
    """What the sidebar shows about the workspace's worker.

    ``alive`` is False when no worker ever ran, it stopped, or its heartbeat is stale / its
    process is gone. ``queued``/``running`` count runs plus tasks.
    """

    alive: bool
    pid: int | None
    host: str | None
    started_at: float | None
    last_beat: float | None
    cpu_slots: int | None
    gpu_slots: int | None
    queued: int
    running: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pid_running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return psutil.pid_exists(pid)


def worker_status(ws: Workspace) -> WorkerStatus:
    """The most recent worker's heartbeat and the queue's size."""
    with ws.connect() as conn:
        row = conn.execute("SELECT * FROM workers ORDER BY last_beat DESC LIMIT 1").fetchone()
        counts = {QUEUED: 0, RUNNING: 0}
        for table in ("runs", "tasks"):
            for status, n in conn.execute(
                f"SELECT status, COUNT(*) FROM {table} WHERE status IN (?, ?, ?) GROUP BY status",
                (QUEUED, RUNNING, CANCELLING),
            ):
                counts[QUEUED if status == QUEUED else RUNNING] += n
    if row is None:
        return WorkerStatus(
            False, None, None, None, None, None, None, counts[QUEUED], counts[RUNNING]
        )
    alive = (
        row["stopped_at"] is None
        and time.time() - row["last_beat"] < WORKER_STALE_SECONDS
        and (row["host"] != socket.gethostname() or _pid_running(row["pid"]))
    )
    return WorkerStatus(
        alive=alive,
        pid=row["pid"],
        host=row["host"],
        started_at=row["started_at"],
        last_beat=row["last_beat"],
        cpu_slots=row["cpu_slots"],
        gpu_slots=row["gpu_slots"],
        queued=counts[QUEUED],
        running=counts[RUNNING],
    )


def worker_alive(ws: Workspace) -> bool:
    """True when a worker is serving this workspace (fresh heartbeat, process present)."""
    return worker_status(ws).alive


def package_root() -> Path:
    """The folder that contains the ``recsys_core`` package (put on the children's path)."""
    return Path(__file__).resolve().parents[2]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for processes we spawn: ours, with the package importable."""
    env = dict(os.environ)
    root = str(package_root())
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    env.update(extra or {})
    return env


def ensure_worker(ws: Workspace, *, cpu_slots: int = 1, wait_seconds: float = 0.0) -> int | None:
    """Start a detached worker for ``ws`` unless one is alive; returns the new pid or None.

    The worker outlives the caller (its own session), logs to ``<workspace>/worker.log`` and
    refuses to start if another one holds the workspace lock, so two callers racing here end
    with one worker. ``wait_seconds`` > 0 waits for its first heartbeat.
    """
    if worker_alive(ws):
        return None
    ws.root.mkdir(parents=True, exist_ok=True)
    # A worker spawned moments ago has no heartbeat until its imports finish; page reruns in
    # that window must not spawn more (the extra ones would only be refused by the lock).
    marker = ws.root / WORKER_SPAWN
    try:
        pid_text, when = marker.read_text().split()
        if time.time() - float(when) < WORKER_SPAWN_GRACE and _pid_running(int(pid_text)):
            return None
    except (OSError, ValueError):
        pass
    with open(ws.root / WORKER_LOG, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recsys_core.jobs.worker",
                "--workspace",
                str(ws.root),
                "--cpu-slots",
                str(int(cpu_slots)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(package_root()),
            env=child_env(),
        )
    marker.write_text(f"{process.pid} {time.time()}")
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and not worker_alive(ws):
        if process.poll() is not None:
            break
        time.sleep(0.1)
    return process.pid
