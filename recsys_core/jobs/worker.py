"""The worker: claims queued runs and tasks, runs each in a child process, enforces cancels.

``python -m recsys_core worker [--cpu-slots N] [--task-slots N] [--once] [--poll 0.5]``

Loop (every ``poll`` seconds, every 0.2 s while something executes):

1. heartbeat: ``workers.last_beat`` and ``heartbeat`` of the runs it executes;
2. reap ended children; a run whose child died without writing its outcome becomes ``failed``
   (``cancelled`` if a cancel was pending) with the exit signal and the log tail;
3. cancellation deadline: a run still ``cancelling`` 1.5 s after the request has its child
   killed and becomes ``cancelled`` (the child normally stops itself within 0.5 s);
4. claim: while a CPU slot or a GPU is free, atomically take the oldest queued run that fits
   (``auto`` means a GPU when this machine has one, so ``auto`` runs wait for a free GPU
   rather than fall back to the CPU), and the oldest queued task while a task slot is free.

One worker per workspace: it holds an exclusive ``flock`` on ``<workspace>/worker.lock`` for its
lifetime (the kernel releases it even on ``kill -9``), so a second worker refuses to start with a
message naming the first. Holding the lock also proves that any run left ``running`` belongs to a
dead worker, so start-up marks those ``interrupted`` (and kills an orphaned child if one is
still there).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO

from recsys_core.errors import RecsysError
from recsys_core.estimate import start_refusal
from recsys_core.jobs import store
from recsys_core.jobs.executor import (
    RUN,
    TASK,
    Executor,
    Finished,
    LocalExecutor,
    PlacesGpus,
    executor_choice,
    make_executor,
)
from recsys_core.jobs.spec import CANCELLED, CANCELLING, FAILED, INTERRUPTED, RUNNING
from recsys_core.workspace import Workspace

log = logging.getLogger("recsys_core.jobs.worker")

LOCK_FILE = "worker.lock"
BEAT_SECONDS = 1.0
#: A cancel request older than this gets the child killed (2 s bound minus the loop's tick).
FORCE_CANCEL_AFTER = 1.5
BUSY_TICK = 0.2


class WorkerBusyError(RecsysError):
    """Another worker already serves this workspace."""


def signal_name(code: int) -> str:
    """``-9`` -> ``"killed by SIGKILL"``; ``1`` -> ``"exit code 1"``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def detect_gpus() -> list[str]:
    """GPU devices of this machine, one slot each (``cuda:0``, ``cuda:1``, or ``mps``)."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return ["mps"]
    return []


def _inline_alive(worker_id: str | None) -> bool:
    """True for a run that ``api.run_inline`` executes in a process that is still alive here
    (worker id ``inline:<host>:<pid>``): no worker owns it, so recovery must leave it alone."""
    if not worker_id or not worker_id.startswith("inline:"):
        return False
    _, host, pid = worker_id.rsplit(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    import psutil

    try:
        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Worker:
    """Serve ``ws`` until stopped (SIGTERM/SIGINT) or, with ``once``, until the queue is empty.

    Parameters
    ----------
    cpu_slots : runs executing on the CPU at the same time (default 1).
    task_slots : background tasks at the same time (default 1), separate from runs so that a
        UMAP map does not wait behind a long training.
    poll : seconds between queue checks while idle.
    once : exit as soon as nothing is queued or executing.
    gpus : GPU devices to use (default: every GPU torch finds); each runs one run at a time.
    executor : the backend (default :class:`LocalExecutor`).
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        cpu_slots: int = 1,
        task_slots: int = 1,
        poll: float = 0.5,
        once: bool = False,
        gpus: list[str] | None = None,
        executor: Executor | None = None,
    ) -> None:
        if cpu_slots < 0 or task_slots < 0:
            raise RecsysError("worker: --cpu-slots and --task-slots must be 0 or more")
        self.ws = ws.ensure()
        self.cpu_slots = int(cpu_slots)
        self.task_slots = int(task_slots)
        self.poll = max(0.05, float(poll))
        self.once = once
        self.executor = executor or LocalExecutor(self.ws)
        if gpus is None:
            # A cluster's GPUs are on its nodes, not on the machine the worker runs on.
            gpus = self.executor.gpus() if isinstance(self.executor, PlacesGpus) else None
        self.gpus = detect_gpus() if gpus is None else list(gpus)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"
        self.threads = max(1, (os.cpu_count() or 1) // max(1, self.cpu_slots))
        self._stop = False
        self._lock: IO[str] | None = None
        self._last_beat = 0.0
        self._next_kill: float | None = None  # unix time of the earliest pending force-kill
        #: Set by serve() when neither --executor nor the environment fixed the executor: the
        #: worker then follows the workspace setting (the sidebar's picker) between jobs.
        self.follow_setting = False
        from recsys_core.jobs.ray_executor import RayExecutor  # imports no ray by itself

        self.executor_name = "ray" if isinstance(self.executor, RayExecutor) else "local"

    # ----- life cycle ----------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the workspace's worker lock or raise WorkerBusyError naming the holder."""
        path = self.ws.root / LOCK_FILE
        handle = open(path, "a+")  # noqa: SIM115 - held for the worker's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise WorkerBusyError(
                f"another worker ({holder}) already serves workspace {self.ws.root}; "
                "use it, or stop it before starting a new one"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._lock = handle

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Ask the loop to end after the current tick (signal handler compatible)."""
        self._stop = True

    @contextmanager
    def serving(self) -> Iterator[Worker]:
        """Hold the workspace as its worker while a caller drives :meth:`tick` itself (a study
        run from the CLI); on exit, executing jobs are stopped and the lock released."""
        self.acquire()
        try:
            self._register()
            self.recover()
            yield self
        finally:
            self._shutdown()
            self.release()

    def run(self) -> int:
        """Serve until stopped; returns 0. Running children are killed on a graceful stop and
        their runs marked interrupted (retry re-queues them)."""
        self.acquire()
        try:
            self._register()
            recovered = self.recover()
            if recovered:
                log.warning("marked %d run(s)/task(s) of a dead worker interrupted", recovered)
            log.info(
                "worker %s serving %s (cpu slots %d, gpus %s, task slots %d)",
                self.id,
                self.ws.root,
                self.cpu_slots,
                self.gpus or "none",
                self.task_slots,
            )
            while not self._stop:
                try:
                    busy = self.tick()
                except sqlite3.OperationalError as error:
                    # e.g. the catalog stayed locked past the busy timeout: try again next tick
                    log.warning("catalog busy, retrying: %s", error)
                    busy = True
                except Exception:  # noqa: BLE001 - the worker outlives any one bad row
                    log.exception("worker tick failed; continuing")
                    busy = False
                if self.once and not busy:
                    break
                time.sleep(self._sleep_seconds(busy))
        finally:
            self._shutdown()
            self.release()
        return 0

    def _register(self) -> None:
        now = time.time()
        with self.ws.transaction() as conn:
            conn.execute(
                "INSERT INTO workers (id, pid, host, started_at, last_beat, cpu_slots, gpu_slots,"
                " task_slots) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.id,
                    os.getpid(),
                    socket.gethostname(),
                    now,
                    now,
                    self.cpu_slots,
                    len(self.gpus),
                    self.task_slots,
                ),
            )
            # Keep the table small: only recent workers matter to anyone.
            conn.execute(
                "DELETE FROM workers WHERE id NOT IN"
                " (SELECT id FROM workers ORDER BY last_beat DESC LIMIT 20)"
            )
        self._last_beat = time.monotonic()

    def _shutdown(self) -> None:
        killed = self.executor.shutdown() if hasattr(self.executor, "shutdown") else []
        now = time.time()
        for kind, job_id in killed:
            table = "runs" if kind == RUN else "tasks"
            with self.ws.transaction() as conn:
                conn.execute(
                    f"UPDATE {table} SET status = CASE status WHEN ? THEN ? ELSE ? END,"
                    " finished_at = ?, error = ? WHERE id = ? AND status IN (?, ?)",
                    (
                        CANCELLING,
                        CANCELLED,
                        INTERRUPTED,
                        now,
                        "interrupted: the worker was stopped while this ran; retry it",
                        job_id,
                        RUNNING,
                        CANCELLING,
                    ),
                )
        with self.ws.transaction() as conn:
            conn.execute(
                "UPDATE workers SET stopped_at = ?, last_beat = ? WHERE id = ?",
                (now, now, self.id),
            )

    # ----- recovery ----------------------------------------------------------------------------
    def recover(self) -> int:
        """Mark runs and tasks left running by a dead worker ``interrupted``; returns how many.

        Only called while holding the workspace lock, so no other worker can own them.
        """
        import psutil

        now = time.time()
        count = 0
        for table in ("runs", "tasks"):
            with self.ws.transaction() as conn:
                rows = [
                    row
                    for row in conn.execute(
                        f"SELECT id, worker_id, child_pid FROM {table} WHERE status IN (?, ?)",
                        (RUNNING, CANCELLING),
                    ).fetchall()
                    if not _inline_alive(row["worker_id"])
                ]
                for row in rows:
                    conn.execute(
                        f"UPDATE {table} SET status = ?, finished_at = ?, error = ?"
                        " WHERE id = ? AND status IN (?, ?)",
                        (
                            INTERRUPTED,
                            now,
                            f"interrupted: its worker ({row['worker_id']}) stopped before it "
                            "finished (killed or crashed); retry it",
                            row["id"],
                            RUNNING,
                            CANCELLING,
                        ),
                    )
            for row in rows:
                count += 1
                pid = row["child_pid"]
                # An orphaned child normally exits by itself (parent watchdog); make sure.
                if pid and psutil.pid_exists(pid):
                    try:
                        cmdline = " ".join(psutil.Process(pid).cmdline())
                        if "recsys_core.jobs.child" in cmdline and row["id"] in cmdline:
                            psutil.Process(pid).kill()
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
        return count

    # ----- one tick ------------------------------------------------------------------------------
    def tick(self) -> bool:
        """One pass of the loop; returns True while something executes or was just claimed."""
        # Cancellation deadlines first: they are the only step with a latency bound.
        self._enforce_cancels()
        for finished in self.executor.poll():
            self._reap(finished)
        if time.monotonic() - self._last_beat >= BEAT_SECONDS:
            self.beat()
            self._follow_executor_setting()
        claimed = self._claim()
        return claimed or bool(self.executor.active())

    def _follow_executor_setting(self) -> None:
        """Switch to the workspace's executor setting (sidebar) once nothing executes, when the
        executor was not fixed for this worker (``--executor``, the environment)."""
        if not self.follow_setting or self.executor.active():
            return
        try:
            wanted = executor_choice(self.ws)[0]
        except (RecsysError, sqlite3.OperationalError):
            return
        if wanted == self.executor_name:
            return
        try:
            self.executor = make_executor(self.ws, wanted)
        except RecsysError as error:  # e.g. ray missing: keep serving with the current one
            log.error("cannot switch to the %s executor: %s", wanted, error)
            self.executor_name = wanted  # do not retry every second; a restart retries
            return
        if isinstance(self.executor, PlacesGpus):
            self.gpus = self.executor.gpus()
        else:
            self.gpus = detect_gpus()
        self.executor_name = wanted
        log.info("executor switched to %s (workspace setting)", wanted)

    def _sleep_seconds(self, busy: bool) -> float:
        """Until the next tick: short while busy, and never past a pending cancel deadline."""
        pause = BUSY_TICK if busy else self.poll
        if self._next_kill is not None:
            pause = min(pause, max(0.0, self._next_kill - time.time()))
        return pause

    def beat(self) -> None:
        now = time.time()
        with self.ws.transaction() as conn:
            conn.execute("UPDATE workers SET last_beat = ? WHERE id = ?", (now, self.id))
            for table in ("runs", "tasks"):
                conn.execute(
                    f"UPDATE {table} SET heartbeat = ? WHERE worker_id = ? AND status IN (?, ?)",
                    (now, self.id, RUNNING, CANCELLING),
                )
        self._last_beat = time.monotonic()

    def _reap(self, finished: Finished) -> None:
        """A child ended: if it did not record an outcome, record one for it."""
        table = "runs" if finished.kind == RUN else "tasks"
        how = signal_name(finished.returncode)
        log.info("%s %s ended (%s)", finished.kind, finished.job_id, how)
        tail = None
        if finished.kind == RUN:
            from recsys_core.jobs.child import log_tail

            tail = log_tail(self.ws.runs_dir / finished.job_id / "log.txt")
        hint = " (the system may have run out of memory)" if finished.returncode == -9 else ""
        error = f"the {finished.kind}'s process died ({how}){hint} before reporting a result"
        if finished.cause:  # the backend knows better than an exit status (a Ray task)
            error = f"the {finished.kind}'s process died before reporting a result: "
            error += finished.cause
        columns = "status = CASE status WHEN ? THEN ? ELSE ? END, finished_at = ?, error = CASE"
        columns += " status WHEN ? THEN 'cancelled by request' ELSE ? END"
        params: list = [CANCELLING, CANCELLED, FAILED, time.time(), CANCELLING, error]
        if table == "runs":
            columns += ", log_tail = ?"
            params.append(tail)
        with self.ws.transaction() as conn:
            conn.execute(
                f"UPDATE {table} SET {columns} WHERE id = ? AND status IN (?, ?)",
                [*params, finished.job_id, RUNNING, CANCELLING],
            )

    def _enforce_cancels(self) -> None:
        self._next_kill = None
        active = {(kind, job_id) for kind, job_id, _ in self.executor.active()}
        if not active:
            return
        now = time.time()
        for kind, table in ((RUN, "runs"), (TASK, "tasks")):
            with self.ws.connect() as conn:
                pending = conn.execute(
                    f"SELECT id, cancel_requested_at FROM {table} WHERE status = ?"
                    " AND worker_id = ?",
                    (CANCELLING, self.id),
                ).fetchall()
            for job_id, requested in pending:
                if (kind, job_id) not in active:
                    continue
                kill_at = (requested or now) + FORCE_CANCEL_AFTER
                if kill_at > now:  # not yet late: wake up exactly when it will be
                    self._next_kill = min(self._next_kill or kill_at, kill_at)
                    continue
                log.info(
                    "%s %s did not stop within %.1f s: killing it", kind, job_id, FORCE_CANCEL_AFTER
                )
                self.executor.cancel(job_id, kind=kind)
                updater = store.update_run if kind == RUN else store.update_task
                updater(
                    self.ws,
                    job_id,
                    allowed=(CANCELLING,),
                    status=CANCELLED,
                    finished_at=time.time(),
                    error="cancelled by request (stopped by force)",
                )

    def _claim(self) -> bool:
        claimed = False
        while True:
            busy_devices = [device for kind, _, device in self.executor.active() if kind == RUN]
            cpu_free = self.cpu_slots - busy_devices.count("cpu")
            free_gpus = [g for g in self.gpus if g not in busy_devices]
            # Claimed even with every slot busy: a run asking for a device this machine lacks
            # is failed at once instead of waiting for a slot that could never serve it.
            got = store.claim_run(self.ws, self.id, self._fitter(cpu_free, free_gpus))
            if got is None:
                break
            run_id, spec, device = got
            claimed = True
            if device.startswith("!"):
                refusal = (
                    f"device {spec.device!r} is not available on the worker's machine "
                    f"(found: {', '.join(self.gpus + ['cpu'])}); resubmit with device auto or cpu"
                )
            else:
                # The child's log lives in the run folder: fail the run, not the worker.
                refusal = _unwritable(self.ws.runs_dir / run_id) or start_refusal(
                    self.ws, spec, device
                )
            if refusal is not None:
                store.update_run(
                    self.ws,
                    run_id,
                    allowed=(RUNNING,),
                    status=FAILED,
                    finished_at=time.time(),
                    device_used=None,
                    error=refusal,
                )
                continue
            pid = self.executor.submit(
                run_id, kind=RUN, device=device, threads=self.threads if device == "cpu" else None
            )
            store.update_run(self.ws, run_id, allowed=(RUNNING, CANCELLING), child_pid=pid)
            log.info("run %s (%s) started on %s, pid %s", run_id, spec.model, device, pid)
        while sum(1 for k, _, _ in self.executor.active() if k == TASK) < self.task_slots:
            got_task = store.claim_task(self.ws, self.id)
            if got_task is None:
                break
            task_id, kind = got_task
            claimed = True
            pid = self.executor.submit(task_id, kind=TASK, device="cpu", threads=self.threads)
            store.update_task(self.ws, task_id, allowed=(RUNNING, CANCELLING), child_pid=pid)
            log.info("task %s (%s) started, pid %s", task_id, kind, pid)
        return claimed

    def _fitter(self, cpu_free: int, free_gpus: list[str]) -> Callable[[str], str | None]:
        """``accepts(preference)`` for :func:`store.claim_run` given the free slots now.

        Returns the device to run on, None to leave the run queued for now, or ``"!..."``
        when no device of that kind exists here at all (the run is then failed, not left to
        wait forever).
        """
        gpus = self.gpus

        def accepts(preference: str) -> str | None:
            pref = (preference or "auto").lower()
            if pref == "cpu":
                return "cpu" if cpu_free > 0 else None
            if pref == "auto":
                if gpus:
                    return free_gpus[0] if free_gpus else None
                return "cpu" if cpu_free > 0 else None
            kind = pref.split(":")[0]
            matching = [g for g in gpus if g == pref or (":" not in pref and g.startswith(kind))]
            if not matching:
                return "!" + pref
            free = [g for g in matching if g in free_gpus]
            return free[0] if free else None

        return accepts


def serve(
    ws: Workspace,
    *,
    cpu_slots: int = 1,
    task_slots: int = 1,
    poll: float = 0.5,
    once: bool = False,
    executor: str | None = None,
) -> int:
    """Run a worker in this process with SIGTERM/SIGINT as graceful stops (the CLI entry).

    ``executor`` names the backend (``local`` or ``ray``); None takes
    ``$RECSYS_EXPLORER_EXECUTOR``, then the workspace setting, else ``local``.
    """
    name, source = (executor, "option") if executor else executor_choice(ws.ensure())
    backend = make_executor(ws, name)
    log.info("executor: %s (%s)", name, source)
    worker = Worker(
        ws, cpu_slots=cpu_slots, task_slots=task_slots, poll=poll, once=once, executor=backend
    )
    worker.executor_name = name
    worker.follow_setting = source in ("workspace", "default")
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    return worker.run()


def main(argv: list[str] | None = None) -> int:
    """``python -m recsys_core.jobs.worker --workspace DIR [...]``: the worker without the CLI's
    other command groups (what :func:`recsys_core.jobs.api.ensure_worker` starts)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m recsys_core.jobs.worker")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--cpu-slots", type=int, default=1)
    parser.add_argument("--task-slots", type=int, default=1)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--executor", choices=("local", "ray"), default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return serve(
            Workspace(Path(args.workspace).resolve()),
            cpu_slots=args.cpu_slots,
            task_slots=args.task_slots,
            poll=args.poll,
            once=args.once,
            executor=args.executor,
        )
    except RecsysError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _unwritable(run_dir: Path) -> str | None:
    """Why ``run_dir`` cannot take the run's log and artefacts, or None when it can."""
    from recsys_core.errors import ResourceError
    from recsys_core.jobs.runner import check_run_folder

    try:
        check_run_folder(run_dir, 0)
    except ResourceError as error:
        return str(error)
    return None


__all__ = ["LOCK_FILE", "Worker", "WorkerBusyError", "detect_gpus", "main", "serve"]

if __name__ == "__main__":
    raise SystemExit(main())
