"""The executor boundary: where a claimed run or task actually executes.

The worker decides *what* runs *where* (claims, slots, cancellation deadlines); an executor only
starts a job, reports when it ended and stops it by force. :class:`LocalExecutor` starts one
child process per job on this machine (``python -m recsys_core.jobs.child``). A cluster backend
(Ray) implements the same four methods and calls the same run function
(:func:`recsys_core.jobs.child.run_child`, which wraps :func:`recsys_core.jobs.runner.execute_run`)
on a remote node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from recsys_core.workspace import Workspace

#: Job kinds: a training run (``runs`` table) or a background task (``tasks`` table).
RUN = "run"
TASK = "task"


@dataclass(frozen=True)
class Finished:
    """A job whose process ended; ``returncode`` < 0 means killed by that signal.

    ``cause`` is the backend's own words when it knows more than an exit status (a Ray task's
    worker died, its node was lost); the worker records it with the failure.
    """

    kind: str
    job_id: str
    returncode: int
    cause: str | None = None


class Executor(Protocol):
    """What the worker needs from a backend."""

    def submit(
        self, job_id: str, *, kind: str = RUN, device: str = "cpu", threads: int | None = None
    ) -> int | None:
        """Start the job; returns a process id when there is a local one."""

    def poll(self) -> list[Finished]:
        """Jobs that ended since the last call (each reported once)."""

    def cancel(self, job_id: str, *, kind: str = RUN) -> None:
        """Stop the job by force now (the cooperative stop is the child's business)."""

    def active(self) -> list[tuple[str, str, str]]:
        """``(kind, job_id, device)`` of every job still executing."""


@runtime_checkable
class PlacesGpus(Protocol):
    """An executor that knows the GPUs it can place runs on (a cluster's, not this machine's);
    the worker then claims GPU runs for those instead of the GPUs torch finds locally."""

    def gpus(self) -> list[str]:
        """One device name per GPU slot, e.g. ``["cuda:0", "cuda:1"]``."""


#: Executor names, for the workspace setting and ``$RECSYS_EXPLORER_EXECUTOR``.
EXECUTORS = ("local", "ray")
ENV_EXECUTOR = "RECSYS_EXPLORER_EXECUTOR"
SETTING_EXECUTOR = "executor"


def executor_choice(ws: Workspace) -> tuple[str, str]:
    """``(name, source)``: the executor this workspace's worker uses and why.

    ``$RECSYS_EXPLORER_EXECUTOR`` wins (source ``"environment"``), then the workspace setting
    stored in the catalog (``"workspace"``), else ``local`` (``"default"``).
    """
    from recsys_core.errors import ConfigError
    from recsys_core.jobs.store import get_setting

    env = os.environ.get(ENV_EXECUTOR, "").strip().lower()
    if env:
        if env not in EXECUTORS:
            raise ConfigError(
                f"{ENV_EXECUTOR}={env!r} is not an executor; choose one of {EXECUTORS}"
            )
        return env, "environment"
    stored = get_setting(ws, SETTING_EXECUTOR)
    if stored in EXECUTORS:
        return str(stored), "workspace"
    return "local", "default"


def set_executor(ws: Workspace, name: str) -> None:
    """Store the workspace's executor; refuses ``ray`` when Ray cannot be imported here."""
    from recsys_core.errors import ConfigError
    from recsys_core.jobs.store import set_setting

    name = name.strip().lower()
    if name not in EXECUTORS:
        raise ConfigError(f"executor: unknown executor {name!r}; choose one of {EXECUTORS}")
    if name == "ray":
        from recsys_core.jobs.ray_executor import import_ray

        import_ray()  # raises with the install hint
    set_setting(ws, SETTING_EXECUTOR, name)


def make_executor(ws: Workspace, name: str | None = None) -> Executor:
    """The executor named (default: :func:`executor_choice`), ready for a worker."""
    name = name or executor_choice(ws)[0]
    if name == "ray":
        from recsys_core.jobs.ray_executor import RayExecutor

        return RayExecutor(ws)
    return LocalExecutor(ws)


@dataclass
class _Child:
    process: subprocess.Popen
    device: str
    log: IO[bytes]
    started: float = field(default_factory=time.monotonic)


def _gpu_env(device: str) -> dict[str, str]:
    """Pin a child to its GPU: ``cuda:2`` -> ``CUDA_VISIBLE_DEVICES=2``; CPU runs see none.

    Hiding the other GPUs means a model can never allocate on a GPU another run owns.
    """
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        # torch numbers the GPUs the worker itself was allowed to see; translate back to the
        # machine's ids when the worker runs under its own CUDA_VISIBLE_DEVICES.
        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
        visible = [v for v in visible if v]
        physical = visible[index] if index < len(visible) else str(index)
        return {"CUDA_VISIBLE_DEVICES": physical}
    if device == "cpu":
        return {"CUDA_VISIBLE_DEVICES": ""}
    return {}


class LocalExecutor:
    """One child process per job, in its own session so a kill reaches its whole group."""

    def __init__(self, ws: Workspace, *, python: str | None = None) -> None:
        self.ws = ws
        self.python = python or sys.executable
        self._children: dict[tuple[str, str], _Child] = {}

    def log_path(self, job_id: str, kind: str = RUN) -> Path:
        base = self.ws.runs_dir if kind == RUN else self.ws.root / "tasks"
        folder = base / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder / "log.txt"

    def submit(
        self, job_id: str, *, kind: str = RUN, device: str = "cpu", threads: int | None = None
    ) -> int | None:
        from recsys_core.jobs.api import child_env, package_root

        # The model sees "cuda" (its one visible GPU); the store shows the real index.
        model_device = "cuda" if device.startswith("cuda") else device
        command = [
            self.python,
            "-m",
            "recsys_core.jobs.child",
            kind,
            job_id,
            "--workspace",
            str(self.ws.root),
            "--device",
            model_device,
            "--device-label",
            device,
        ]
        if threads:
            command += ["--threads", str(threads)]
        log = open(self.log_path(job_id, kind), "ab")  # noqa: SIM115 - closed in poll()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(package_root()),
            env=child_env(_gpu_env(device) if kind == RUN else None),
        )
        self._children[(kind, job_id)] = _Child(process, device, log)
        return process.pid

    def poll(self) -> list[Finished]:
        ended = []
        for key, child in list(self._children.items()):
            code = child.process.poll()
            if code is not None:
                child.log.close()
                del self._children[key]
                ended.append(Finished(key[0], key[1], code))
        return ended

    def cancel(self, job_id: str, *, kind: str = RUN) -> None:
        child = self._children.get((kind, job_id))
        if child is None or child.process.poll() is not None:
            return
        try:
            # The child leads its own process group: this also stops data-loader workers.
            os.killpg(child.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            child.process.kill()
        try:
            child.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a process in uninterruptible sleep; poll() sees it
            pass

    def active(self) -> list[tuple[str, str, str]]:
        return [(k, j, c.device) for (k, j), c in self._children.items()]

    def shutdown(self) -> list[tuple[str, str]]:
        """Kill every child (the worker is stopping); returns what was killed."""
        killed = []
        for kind, job_id, _ in self.active():
            self.cancel(job_id, kind=kind)
            killed.append((kind, job_id))
        self.poll()
        return killed
