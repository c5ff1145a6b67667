"""The child process that executes one run or one task: ``python -m recsys_core.jobs.child``.

One process per run means a crash, an out-of-memory kill or a hung CUDA call takes down that
run only. The child owns the run's outcome: it records versions, streams progress events
(throttled), watches for cancellation, and writes ``done``/``failed``/``cancelled``. Its stdout and
stderr are the run's ``log.txt`` (the worker opens it), so library output and log records land
there and the last lines are stored with a failure.

A watchdog thread exits the child when its worker disappears (the worker was killed with -9 and
the child was re-parented): the next worker marks the run interrupted, and no orphan keeps
writing to the store.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recsys_core.errors import Cancelled, RecsysError
from recsys_core.jobs import store
from recsys_core.jobs.spec import CANCELLED, CANCELLING, DONE, FAILED, RUNNING
from recsys_core.memory import memory_guard
from recsys_core.workspace import Workspace

log = logging.getLogger("recsys_core.jobs.child")

#: At most this often (seconds) the store is asked whether the run was cancelled ...
CANCEL_CHECK_SECONDS = 0.5
#: ... and progress events are written (about two transactions per second).
EVENT_FLUSH_SECONDS = 0.5
LOG_TAIL_LINES = 40
EXIT_ORPHANED = 70


# ----- provenance ------------------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    """Versions of python and the libraries a result depends on."""
    import numpy
    import pandas
    import scipy
    import torch

    import recsys_core

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scipy": scipy.__version__,
        "recsys_core": recsys_core.__version__,
        "cuda": str(torch.version.cuda) if torch.version.cuda else "none",
    }


def code_version() -> str:
    """``git describe --always --dirty`` of the package's checkout, else the package version.

    ``GIT_OPTIONAL_LOCKS=0`` keeps git from refreshing the index (it must not take the index
    lock of a checkout other people are committing in).
    """
    import recsys_core

    root = Path(recsys_core.__file__).resolve().parents[1]
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=5,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        result = None
    if result is not None and result.returncode == 0 and result.stdout.strip():
        return f"git {result.stdout.strip()}"
    return f"recsys_core {recsys_core.__version__}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str | None:
    """The last ``lines`` lines of a log file (read from the end, never the whole file)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return "\n".join(text.splitlines()[-lines:]) or None


# ----- progress and cancellation ------------------------------------------------------------
class CancelFlag:
    """``should_cancel()`` for a run or task: reads its status at most every 0.5 s."""

    def __init__(self, ws: Workspace, table: str, job_id: str) -> None:
        assert table in ("runs", "tasks")
        self.ws, self.table, self.job_id = ws, table, job_id
        self._checked = 0.0
        self._cancelled = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._checked >= CANCEL_CHECK_SECONDS:
            self._checked = now
            try:
                with self.ws.connect() as conn:
                    row = conn.execute(
                        f"SELECT status FROM {self.table} WHERE id = ?", (self.job_id,)
                    ).fetchone()
            except sqlite3.OperationalError:  # catalog busy: ask again at the next check
                return False
            self._cancelled = row is None or row[0] == CANCELLING
        return self._cancelled


class EventSink:
    """Turns training callbacks into stored events with progress and ETA, ~2 writes/s.

    Progress is ``epoch / epochs_total`` when the model reports ``epochs_total``. The ETA
    extrapolates the elapsed fit time per epoch over the epochs likely left: all of them, or,
    once the model reports its early-stopping state, the likely stop of
    :func:`recsys_core.jobs.eta.estimate` (its range goes into the event as ``eta_low``,
    ``eta_high``, ``stop_epoch``, ``stop_epoch_min``).
    """

    def __init__(self, ws: Workspace, run_id: str) -> None:
        self.ws, self.run_id = ws, run_id
        self._buffer: list[dict[str, Any]] = []
        self._flushed = time.monotonic()
        self._progress: float | None = None
        self._eta: float | None = None
        self._stop: dict[str, float] | None = None  # the latest validation's stop state

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        from recsys_core.jobs.eta import STOP_KEYS, estimate
        from recsys_core.jobs.runner import merge_event

        metrics = dict(metrics)
        epoch, total = metrics.get("epoch"), metrics.get("epochs_total")
        elapsed = metrics.get("elapsed_s")
        if all(metrics.get(k) is not None for k in STOP_KEYS) and epoch is not None:
            self._stop = {k: metrics[k] for k in STOP_KEYS} | {"eval_epoch": float(epoch)}
        if epoch is not None and total:
            fraction = min(1.0, max(0.0, float(epoch) / float(total)))
            self._progress = fraction
            if elapsed is not None and fraction > 0:
                eta = estimate(float(epoch), float(total), float(elapsed), self._stop)
                if eta is not None:
                    self._eta = eta.likely
                    metrics.update(eta.to_metrics())
        event = {
            "ts": time.time(),
            "step": step,
            "metrics": metrics,
            "progress": self._progress,
            "eta": self._eta,
        }
        merge_event(self._buffer, event)
        if time.monotonic() - self._flushed >= EVENT_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            try:
                store.add_events(
                    self.ws, self.run_id, self._buffer, progress=self._progress, eta=self._eta
                )
            except sqlite3.OperationalError as error:
                # Progress is not worth failing a training for: keep the events, retry later.
                log.warning("could not store progress events yet: %s", error)
                self._flushed = time.monotonic()
                return
            self._buffer = []
        self._flushed = time.monotonic()


# ----- the two kinds of job -----------------------------------------------------------------
def _error_text(error: BaseException) -> str:
    if isinstance(error, RecsysError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def run_child(
    ws: Workspace, run_id: str, *, device: str | None = None, device_label: str | None = None
) -> int:
    """Execute run ``run_id`` and record its outcome; returns the process exit code.

    ``device`` is what the model gets (``"cuda"`` with ``CUDA_VISIBLE_DEVICES`` set by the
    worker); ``device_label`` is what the store shows (``"cuda:1"``).
    """
    from recsys_core.jobs.runner import execute_run

    update = {
        "child_pid": os.getpid(),
        "code_version": code_version(),
        "versions_json": json.dumps(library_versions()),
    }
    store.update_run(ws, run_id, allowed=(RUNNING, CANCELLING), **update)
    sink = EventSink(ws, run_id)
    should_cancel = CancelFlag(ws, "runs", run_id)
    try:
        result = execute_run(ws, run_id, sink, should_cancel, device=device)
    except Cancelled as error:
        sink.flush()
        log.info("%s", error)
        store.update_run(
            ws,
            run_id,
            allowed=(RUNNING, CANCELLING),
            status=CANCELLED,
            finished_at=time.time(),
            error="cancelled by request",
        )
        return 0
    except BaseException as error:  # noqa: BLE001 - every failure is recorded, then re-raised
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        try:
            sink.flush()
        except Exception:  # noqa: BLE001 - the failure itself matters more than its events
            pass
        store.update_run(
            ws,
            run_id,
            allowed=(RUNNING, CANCELLING),
            status=FAILED,
            finished_at=time.time(),
            error=_error_text(error),
            traceback=text,
            log_tail=log_tail(ws.runs_dir / run_id / "log.txt"),
        )
        return 1
    sink.flush()
    label = device_label or result["device"]
    if result["device"].startswith("cuda"):
        import torch

        label = f"{label} ({torch.cuda.get_device_name()})"
    store.update_run(
        ws,
        run_id,
        allowed=(RUNNING, CANCELLING),
        status=DONE,
        finished_at=time.time(),
        progress=1.0,
        eta_seconds=0.0,
        fit_seconds=result["fit_seconds"],
        device_used=label,
    )
    return 0


def task_child(ws: Workspace, task_id: str) -> int:
    """Execute background task ``task_id`` through ``TASKS`` and record its outcome."""
    from recsys_core.jobs.plugins import load_plugins
    from recsys_core.jobs.tasks import TASKS

    store.update_task(ws, task_id, allowed=(RUNNING, CANCELLING), child_pid=os.getpid())
    should_cancel = CancelFlag(ws, "tasks", task_id)
    last_write = [0.0]

    def progress(fraction: float, message: str = "") -> None:
        if should_cancel():
            raise Cancelled(f"task {task_id} cancelled by request")
        now = time.monotonic()
        if now - last_write[0] >= EVENT_FLUSH_SECONDS or fraction >= 1.0:
            last_write[0] = now
            store.update_task(
                ws,
                task_id,
                allowed=(RUNNING, CANCELLING),
                progress=min(1.0, max(0.0, float(fraction))),
                message=str(message or "")[:500],
            )

    try:
        load_plugins()
        with ws.connect() as conn:
            record = store.fetch_task(conn, task_id)
        fn = TASKS.get(record.kind)
        if fn is None:
            raise RecsysError(
                f"task kind {record.kind!r} is not registered in recsys_core.jobs.tasks.TASKS "
                f"(known: {sorted(TASKS)})"
            )
        with memory_guard(f"running the {record.kind} task", "cpu"):  # tasks run on the CPU
            result = fn(ws, record.payload, progress)
        result_json = json.dumps(result if result is not None else {}, default=str)
    except Cancelled:
        store.update_task(
            ws,
            task_id,
            allowed=(RUNNING, CANCELLING),
            status=CANCELLED,
            finished_at=time.time(),
            error="cancelled by request",
        )
        return 0
    except BaseException as error:  # noqa: BLE001 - recorded for the UI
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        store.update_task(
            ws,
            task_id,
            allowed=(RUNNING, CANCELLING),
            status=FAILED,
            finished_at=time.time(),
            error=_error_text(error),
            traceback=text,
        )
        return 1
    store.update_task(
        ws,
        task_id,
        allowed=(RUNNING, CANCELLING),
        status=DONE,
        finished_at=time.time(),
        progress=1.0,
        result_json=result_json,
    )
    return 0


def _watch_parent(parent: int, exit_fn: Callable[[int], None] = os._exit) -> None:
    """Exit when re-parented: the worker that started us is gone (e.g. ``kill -9``)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            exit_fn(EXIT_ORPHANED)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_core.jobs.child")
    parser.add_argument("kind", choices=("run", "task"))
    parser.add_argument("job_id")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--device", default=None, help="device handed to the model")
    parser.add_argument("--device-label", default=None, help="device shown in the store")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    if args.threads:
        import torch

        torch.set_num_threads(max(1, args.threads))
    ws = Workspace(Path(args.workspace))
    if args.kind == "run":
        return run_child(ws, args.job_id, device=args.device, device_label=args.device_label)
    return task_child(ws, args.job_id)


if __name__ == "__main__":
    code = main()
    # The outcome is in the store: skip interpreter teardown (atexit hooks of CUDA, data-loader
    # workers), which can hang and would keep the run's slot busy after it finished.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
