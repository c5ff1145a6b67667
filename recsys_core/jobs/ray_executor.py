"""Runs and tasks as Ray tasks: the :class:`~recsys_core.jobs.executor.Executor` for a cluster.

The worker is unchanged: it claims queued runs, enforces cancel deadlines and reaps ended jobs;
:class:`RayExecutor` only decides that a claimed job executes as a Ray task (on whichever node
has the resources) instead of a local child process. The task calls the same run function as
the local child (:func:`recsys_core.jobs.child.run_child` / ``task_child``).

Where the workspace lives
-------------------------
*Shared filesystem* (the supported cluster setup, and always the case for a local Ray
instance): every node sees the workspace folder at the same path (NFS, a mounted bucket with
POSIX semantics, or one machine). The task then writes progress events, its outcome and its
artefacts straight into the catalog and the run folder, exactly like a local child, so live
progress and cooperative cancellation (the run polls its status every 0.5 s) need nothing else.
SQLite over NFS needs working POSIX locks; keep the workspace on one server's local disk
exported to the nodes, not on an object store.

*Local-only workspace*: when the task's node cannot see the catalog at that path, the task
executes the run in a scratch workspace on its node (the dataset travels through Ray's object
store), and returns the finished run folder, its events and its outcome through the object
store; the driver (:meth:`RayExecutor.poll`) writes them into the real workspace. Progress then
arrives when the run ends, and a cancel stops the task by force (``ray.cancel``).

Background tasks (UMAP maps, SHAP explanations, a study's driver loop) stay on the worker's
machine in local child processes: they are short or mostly waiting, they read one run's
artefacts, and a study's driver must not hold a cluster CPU its own trials are waiting for.

Failures: a task whose process dies (OOM kill, ``kill -9``, a lost node) raises in ``ray.get``;
:meth:`RayExecutor.poll` reports it as ended with the cause, and the worker marks the run
failed with that cause. Tasks are never retried by Ray (``max_retries=0``): a retry is the
analyst's decision (``runs retry``), not a silent re-run.

Configuration: ``RAY_ADDRESS`` (``auto``, ``ray://head:10001``; unset starts a local Ray
instance in the worker), ``RECSYS_EXPLORER_RAY_CPUS`` (CPUs per run, default 1).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys_core.errors import RecsysError
from recsys_core.jobs.executor import RUN, Finished
from recsys_core.workspace import Workspace

log = logging.getLogger("recsys_core.jobs.ray_executor")

ENV_CPUS = "RECSYS_EXPLORER_RAY_CPUS"
ENV_SHARED = "RECSYS_EXPLORER_RAY_SHARED"
#: The install hint every "ray is missing" message carries.
INSTALL_HINT = "install the optional dependencies: pip install -r requirements-optional.txt"
#: Return code reported for a task whose process died without an exit status (like SIGKILL).
DIED = -9


def import_ray() -> Any:
    """``import ray`` or a RecsysError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise RecsysError(
            f"the Ray executor needs the `ray` package ({error}); {INSTALL_HINT}"
        ) from None
    return ray


def ray_available() -> bool:
    """True when ``ray`` can be imported here (the sidebar and the settings check this)."""
    try:
        import_ray()
    except RecsysError:
        return False
    return True


# ----- what runs on the node ----------------------------------------------------------------
def _attach_log(path: Path) -> logging.Handler:
    """Send the package's log records to the run's ``log.txt`` while the task runs (a Ray
    worker's own stdout goes to Ray's session logs, not to the run folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("recsys_core")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def execute_job(
    root: str,
    kind: str,
    job_id: str,
    device: str,
    device_label: str,
    threads: int,
    shipped: dict[str, Any] | None,
) -> dict[str, Any]:
    """The body of the Ray task (a plain function, so it is also testable without Ray).

    ``shipped`` is None on a shared filesystem; otherwise it carries what the scratch workspace
    needs (see :func:`ship_run`) and the result carries the run back (see :func:`land_run`).
    """
    import torch

    from recsys_core.jobs.child import run_child, task_child

    torch.set_num_threads(max(1, int(threads)))
    ws = Workspace(Path(root))
    scratch: Path | None = None
    if shipped is not None:
        scratch = Path(tempfile.mkdtemp(prefix="recsys-ray-"))
        ws = _unpack_scratch(scratch, shipped)
    elif not workspace_is_shared(ws):
        import socket

        raise RecsysError(
            f"the workspace {root} is not visible on Ray node {socket.gethostname()}: mount it "
            f"at the same path on every node, or set {ENV_SHARED}=0 in the worker's environment "
            "to ship runs through Ray's object store"
        )
    folder = (ws.runs_dir if kind == RUN else ws.root / "tasks") / job_id
    handler = _attach_log(folder / "log.txt")
    try:
        if kind == RUN:
            code = run_child(ws, job_id, device=device, device_label=device_label)
        else:
            code = task_child(ws, job_id)
        result: dict[str, Any] = {"code": code, "pid": os.getpid()}
        if scratch is not None:
            result["landed"] = _pack_result(ws, job_id)
        return result
    finally:
        logging.getLogger("recsys_core").removeHandler(handler)
        handler.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def _untar(data: bytes, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")


def ship_run(ws: Workspace, run_id: str) -> dict[str, Any]:
    """What a node without the workspace needs to execute run ``run_id``: the dataset's catalog
    row and folder, and the run's row (all plain values, for the object store)."""
    with ws.connect() as conn:
        run = dict(conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
        dataset = dict(
            conn.execute("SELECT * FROM datasets WHERE id = ?", (run["dataset"],)).fetchone()
        )
    return {
        "run": run,
        "dataset": dataset,
        "dataset_tar": _tar(ws.datasets_dir / dataset["id"]),
    }


def _insert(conn: Any, table: str, row: dict[str, Any]) -> None:
    names = ", ".join(row)
    conn.execute(
        f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values())
    )


def _unpack_scratch(folder: Path, shipped: dict[str, Any]) -> Workspace:
    ws = Workspace(folder / "ws").ensure()
    _untar(shipped["dataset_tar"], ws.datasets_dir / shipped["dataset"]["id"])
    with ws.transaction() as conn:
        _insert(conn, "datasets", shipped["dataset"])
        _insert(conn, "runs", shipped["run"])
    return ws


def _pack_result(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The scratch run's final row, events and folder, to be landed in the real workspace."""
    with ws.connect() as conn:
        row = dict(conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
        events = [dict(r) for r in conn.execute("SELECT * FROM events WHERE run_id = ?", (run_id,))]
    return {"run": row, "events": events, "folder_tar": _tar(ws.runs_dir / run_id)}


#: Columns the node's outcome may set on the real row (never the id, spec, or who owns it).
_LANDED_COLUMNS = (
    "status",
    "finished_at",
    "progress",
    "eta_seconds",
    "device_used",
    "versions_json",
    "code_version",
    "fit_seconds",
    "error",
    "traceback",
    "log_tail",
)


def land_run(ws: Workspace, run_id: str, landed: dict[str, Any]) -> None:
    """Write a run executed in a scratch workspace into ``ws``: folder, events, outcome.

    The outcome is written only while the real row is still running or cancelling, so a
    cancel the worker already recorded is not overwritten.
    """
    from recsys_core.jobs.spec import CANCELLING, RUNNING

    _untar(landed["folder_tar"], ws.runs_dir / run_id)
    row = landed["run"]
    with ws.transaction() as conn:
        for event in landed["events"]:
            event = {k: v for k, v in event.items() if k != "id"}
            _insert(conn, "events", event)
        sets = ", ".join(f"{c} = ?" for c in _LANDED_COLUMNS)
        conn.execute(
            f"UPDATE runs SET {sets} WHERE id = ? AND status IN (?, ?)",
            [row[c] for c in _LANDED_COLUMNS] + [run_id, RUNNING, CANCELLING],
        )


# ----- the driver side ------------------------------------------------------------------------
@dataclass
class _Job:
    ref: Any
    device: str
    started: float = field(default_factory=time.monotonic)


def _gpu_count(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


class RayExecutor:
    """Submit each claimed run or task as a Ray task.

    Parameters
    ----------
    ws : the workspace (its path must be the same on every node for the shared mode).
    address : ``RAY_ADDRESS`` value (``auto``, ``ray://host:10001``); None with no
        ``RAY_ADDRESS`` starts a local Ray instance (or uses the one this process already
        initialised, e.g. in tests).
    cpus_per_run : ``num_cpus`` of each run's task (default ``$RECSYS_EXPLORER_RAY_CPUS`` or 1).
    shared : whether the nodes see the workspace at the same path (default: True unless
        ``$RECSYS_EXPLORER_RAY_SHARED`` is ``0``); False ships each run through the object
        store.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        address: str | None = None,
        cpus_per_run: int | None = None,
        shared: bool | None = None,
    ) -> None:
        self.ray = import_ray()
        self.ws = ws
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS") or None
        self.cpus_per_run = int(cpus_per_run or os.environ.get(ENV_CPUS) or 1)
        self.shared = shared if shared is not None else os.environ.get(ENV_SHARED, "1") != "0"
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._remote: Any = None
        from recsys_core.jobs.executor import LocalExecutor

        self._local = LocalExecutor(ws)  # background tasks (see the module docstring)

    # ----- connection ---------------------------------------------------------------------
    def connect(self) -> None:
        """``ray.init`` once (no-op when this process is already connected)."""
        ray = self.ray
        if not ray.is_initialized():
            from recsys_core.jobs.api import child_env

            # The package and any plugins must import on the nodes: a shared checkout on the
            # PYTHONPATH (or the same environment installed there).
            env = child_env()
            env_vars = {k: env[k] for k in ("PYTHONPATH", "RECSYS_EXPLORER_PLUGINS") if k in env}
            ray.init(
                address=self.address,
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
                runtime_env={"env_vars": env_vars},
            )
        if self._remote is None:
            # max_retries=0: a killed task is a failed run, not a silent re-run.
            self._remote = ray.remote(max_retries=0)(execute_job)

    def gpus(self) -> list[str]:
        """One slot per GPU in the cluster (``cuda:0``..), so the worker claims GPU runs for
        the cluster's GPUs, not the driver machine's."""
        self.connect()
        return [f"cuda:{i}" for i in range(_gpu_count(self.ray))]

    def describe(self) -> str:
        """One line for logs and the sidebar: where the tasks go."""
        return f"ray ({self.address or 'local instance'})"

    # ----- the Executor protocol ------------------------------------------------------------
    def submit(
        self, job_id: str, *, kind: str = RUN, device: str = "cpu", threads: int | None = None
    ) -> int | None:
        if kind != RUN:
            return self._local.submit(job_id, kind=kind, device=device, threads=threads)
        self.connect()
        gpu = device.startswith("cuda")
        options: dict[str, Any] = {"num_cpus": self.cpus_per_run, "num_gpus": 1 if gpu else 0}
        shipped = None
        if kind == RUN and not self.shared:
            shipped = ship_run(self.ws, job_id)
        # Ray sets CUDA_VISIBLE_DEVICES to the GPU it granted: the model sees "cuda".
        model_device = "cuda" if gpu else device
        ref = self._remote.options(**options).remote(
            str(self.ws.root),
            kind,
            job_id,
            model_device,
            device,
            self.cpus_per_run,
            shipped,
        )
        self._jobs[(kind, job_id)] = _Job(ref, device)
        log.info("%s %s submitted to %s with %s", kind, job_id, self.describe(), options)
        return None  # the task records its own process id (child_pid) when it starts

    def poll(self) -> list[Finished]:
        ended = self._local.poll()
        if not self._jobs:
            return ended
        ray = self.ray
        by_ref = {job.ref: key for key, job in self._jobs.items()}
        ready, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
        for ref in ready:
            kind, job_id = by_ref[ref]
            del self._jobs[(kind, job_id)]
            try:
                result = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                ended.append(Finished(kind, job_id, DIED, cause="cancelled through ray.cancel"))
                continue
            except ray.exceptions.RayError as error:
                ended.append(Finished(kind, job_id, DIED, cause=_cause(error)))
                continue
            if result.get("landed"):
                land_run(self.ws, job_id, result["landed"])
            ended.append(Finished(kind, job_id, int(result.get("code", 0))))
        return ended

    def cancel(self, job_id: str, *, kind: str = RUN) -> None:
        if kind != RUN:
            self._local.cancel(job_id, kind=kind)
            return
        job = self._jobs.get((kind, job_id))
        if job is None:
            return
        # force=True kills the task's worker process: the cooperative stop (the run polls its
        # status) has already had its chance by the time the worker calls this.
        self.ray.cancel(job.ref, force=True)

    def active(self) -> list[tuple[str, str, str]]:
        remote = [(k, j, job.device) for (k, j), job in self._jobs.items()]
        return remote + self._local.active()

    def shutdown(self) -> list[tuple[str, str]]:
        """Cancel every task (the worker is stopping); returns what was cancelled."""
        killed = [(kind, job_id) for kind, job_id, _ in self.active() if kind == RUN]
        for kind, job_id in killed:
            self.cancel(job_id, kind=kind)
        self._jobs.clear()
        return killed + self._local.shutdown()


def _cause(error: Exception) -> str:
    """A one-line cause from a Ray exception (its first line names what died and why)."""
    text = str(error).strip().splitlines()
    first = next((line for line in text if line.strip()), type(error).__name__)
    return f"Ray task failed: {type(error).__name__}: {first.strip()[:300]}"


def workspace_is_shared(ws: Workspace) -> bool:
    """True when this process sees the workspace's catalog (what a node checks)."""
    return ws.catalog_path.exists()


__all__ = [
    "ENV_CPUS",
    "ENV_SHARED",
    "INSTALL_HINT",
    "RayExecutor",
    "execute_job",
    "import_ray",
    "land_run",
    "ray_available",
    "ship_run",
    "workspace_is_shared",
]
