"""The Ray executor against a real local Ray instance (one per module: Ray starts slowly).

The worker is the ordinary one, driven tick by tick in this process with a
:class:`~recsys_core.jobs.ray_executor.RayExecutor`; runs execute as Ray tasks in Ray's worker
processes, which load this module as a plugin (a slow model to cancel and to kill).
Skipped only where ``ray`` cannot be imported (``pip install -r requirements-optional.txt``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from recsys_core.config import param, validate
from recsys_core.models.popular import MostPopular

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "test_ray_executor"
TIMEOUT = 50.0

pytestmark = pytest.mark.ray


# ----- the plugin half: loaded inside Ray's worker processes ----------------------------------
@dataclass(frozen=True)
class NapConfig:
    """A model that takes ``epochs * seconds`` to fit (or hangs without reporting)."""

    epochs: int = param(100, "epochs", low=1)
    seconds: float = param(0.05, "seconds per epoch", low=0.0)
    hang: bool = param(False, "sleep without reporting progress (ignores cooperative cancel)")

    def __post_init__(self) -> None:
        validate(self)


class Nap(MostPopular):
    name = "test_ray_nap"
    Config = NapConfig

    def _fit(self, train, valid, progress) -> None:  # noqa: ANN001 - contract signature
        super()._fit(train, valid, lambda *_: None)
        if self.config.hang:
            time.sleep(3600)
        for epoch in range(1, self.config.epochs + 1):
            time.sleep(self.config.seconds)
            progress(epoch, {"epoch": epoch, "epochs_total": self.config.epochs, "loss": 1 / epoch})


def register() -> None:
    from recsys_core.models import MODELS

    MODELS[Nap.name] = Nap


# ----- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module, its workers able to import this plugin."""
    ray = pytest.importorskip("ray")
    from recsys_core.jobs import plugins

    os.environ[plugins.ENV_PLUGINS] = PLUGIN
    sys.path.insert(0, str(ROOT / "tests"))
    path = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, plugins.ENV_PLUGINS: PLUGIN}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        os.environ.pop(plugins.ENV_PLUGINS, None)
        sys.path.remove(str(ROOT / "tests"))
        from recsys_core.models import MODELS

        MODELS.pop(Nap.name, None)
        plugins._loaded.discard(PLUGIN)


@pytest.fixture()
def served(tmp_path, ray_instance):
    """A workspace with a tiny dataset and a worker (2 slots) whose executor is Ray."""
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames
    from recsys_core.jobs.ray_executor import RayExecutor
    from recsys_core.jobs.worker import Worker
    from recsys_core.workspace import Workspace

    ws = Workspace(tmp_path / "ws").ensure()
    inter, items, users = make_frames(
        SyntheticConfig(n_users=60, n_items=40, n_clusters=4, mean_history=8)
    )
    info = import_frames(ws, inter, name="tiny", source="synthetic", items=items, users=users)

    def make(**options):  # noqa: ANN003, ANN202
        return Worker(ws, cpu_slots=2, gpus=[], executor=RayExecutor(ws, **options))

    return ws, info, make


def drive(worker, predicate, what: str, timeout: float = TIMEOUT):  # noqa: ANN001, ANN201
    """Tick the worker until ``predicate()`` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.tick()
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _terminal(ws, run_id):  # noqa: ANN001, ANN201
    from recsys_core.jobs import api

    record = api.get_run(ws, run_id)
    return record if record.is_terminal else None


def _pid(ws, run_id) -> int | None:  # noqa: ANN001
    with ws.connect() as conn:
        return conn.execute("SELECT child_pid FROM runs WHERE id = ?", (run_id,)).fetchone()[0]


# ----- tests ------------------------------------------------------------------------------------
def test_two_runs_one_done_one_cancelled_with_live_progress(served):
    from recsys_core.jobs import api
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.jobs.spec import RunSpec

    ws, info, make = served
    worker = make()
    ok = api.submit(ws, RunSpec(dataset=info.id, model="most_popular", device="cpu"))
    slow = api.submit(
        ws,
        RunSpec(
            dataset=info.id, model=Nap.name, device="cpu", config={"epochs": 2000, "seconds": 0.05}
        ),
    )
    # progress events of the Ray task reach the catalog while it runs
    drive(worker, lambda: api.events(ws, slow), "progress events of the Ray task")
    running = api.get_run(ws, slow)
    assert running.status == "running" and 0 < running.progress < 1
    assert {kind for kind, _, _ in worker.executor.active()} == {"run"}
    assert api.cancel(ws, slow) == "cancelling"
    done = drive(worker, lambda: _terminal(ws, ok), "the quick run")
    cancelled = drive(worker, lambda: _terminal(ws, slow), "the cancelled run")

    assert done.status == "done", done.error
    assert 0 < RunArtifacts(ws, ok).metrics()["aggregate"]["ndcg@10"] <= 1
    assert "fitting" in RunArtifacts(ws, ok).log()  # the task's log records land in log.txt
    assert cancelled.status == "cancelled" and cancelled.error == "cancelled by request"
    with ws.connect() as conn:
        asked = conn.execute(
            "SELECT cancel_requested_at FROM runs WHERE id = ?", (slow,)
        ).fetchone()[0]
    assert cancelled.finished_at - asked < 5.0
    drive(worker, lambda: not worker.executor.active(), "the executor to forget both tasks")


def test_hung_run_is_stopped_by_ray_cancel(served):
    from recsys_core.jobs import api
    from recsys_core.jobs.spec import RunSpec

    ws, info, make = served
    worker = make()
    hung = api.submit(
        ws, RunSpec(dataset=info.id, model=Nap.name, device="cpu", config={"hang": True})
    )
    pid = drive(worker, lambda: _pid(ws, hung), "the task to record its process")
    time.sleep(1.0)  # inside fit now (it never reports, so only a forced cancel stops it)
    api.cancel(ws, hung)
    record = drive(worker, lambda: _terminal(ws, hung), "the forced cancel")
    assert record.status == "cancelled"
    assert record.error == "cancelled by request (stopped by force)"
    drive(worker, lambda: not worker.executor.active(), "the cancelled task to end")
    import psutil

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_killed_task_process_fails_the_run_with_the_cause(served):
    from recsys_core.jobs import api
    from recsys_core.jobs.spec import RunSpec

    ws, info, make = served
    worker = make()
    run = api.submit(
        ws, RunSpec(dataset=info.id, model=Nap.name, device="cpu", config={"hang": True})
    )
    pid = drive(worker, lambda: _pid(ws, run), "the task to record its process")
    os.kill(pid, signal.SIGKILL)
    record = drive(worker, lambda: _terminal(ws, run), "the killed run to be reaped")
    assert record.status == "failed"
    assert "died" in record.error and "Ray task failed" in record.error, record.error


def test_local_only_workspace_returns_artefacts_through_the_object_store(served):
    from recsys_core.jobs import api
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.jobs.spec import RunSpec

    ws, info, make = served
    worker = make(shared=False)
    run = api.submit(
        ws,
        RunSpec(dataset=info.id, model=Nap.name, device="cpu", config={"epochs": 3, "seconds": 0}),
    )
    record = drive(worker, lambda: _terminal(ws, run), "the shipped run")
    assert record.status == "done", record.error
    assert record.fit_seconds is not None and record.progress == 1.0
    assert 0 < RunArtifacts(ws, run).metrics()["aggregate"]["ndcg@10"] <= 1
    assert [e["epoch"] for e in api.events(ws, run)] == [1, 2, 3]


def test_executor_choice_env_then_workspace_then_default(workspace, monkeypatch):
    """The setting lives in the catalog; the environment overrides it."""
    pytest.importorskip("ray")
    from recsys_core.jobs.executor import (
        LocalExecutor,
        executor_choice,
        make_executor,
        set_executor,
    )
    from recsys_core.jobs.ray_executor import RayExecutor

    monkeypatch.delenv("RECSYS_EXPLORER_EXECUTOR", raising=False)
    assert executor_choice(workspace) == ("local", "default")
    set_executor(workspace, "ray")
    assert executor_choice(workspace) == ("ray", "workspace")
    assert isinstance(make_executor(workspace), RayExecutor)
    monkeypatch.setenv("RECSYS_EXPLORER_EXECUTOR", "local")
    assert executor_choice(workspace) == ("local", "environment")
    assert isinstance(make_executor(workspace), LocalExecutor)


def test_missing_ray_is_named_with_the_fix(workspace, monkeypatch):
    """Without ray the app and the worker keep working; choosing Ray says what to install."""
    import builtins

    from recsys_core.errors import RecsysError
    from recsys_core.jobs.executor import executor_choice, set_executor
    from recsys_core.jobs.ray_executor import ray_available

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delenv("RECSYS_EXPLORER_EXECUTOR", raising=False)
    assert not ray_available()
    with pytest.raises(RecsysError, match="requirements-optional.txt"):
        set_executor(workspace, "ray")
    assert executor_choice(workspace) == ("local", "default")


def test_study_trials_execute_on_ray(served):
    """The same study code with the worker's executor set to Ray (what `tune --executor ray`
    does): two trials at once, as Ray tasks, told to Optuna from their validation metric."""
    pytest.importorskip("optuna")
    from recsys_core.jobs import api
    from recsys_core.studies import StudySpec, parse_space, run_study

    ws, info, make = served
    worker = make()
    space, _ = parse_space("ease", [])
    spec = StudySpec(
        name="on-ray",
        dataset=info.id,
        model="ease",
        space=space,
        trials=2,
        parallel=2,
        sampler="random",
        device="cpu",
    )
    with worker.serving():
        summary = run_study(ws, spec, tick=worker.tick, poll=0.1)
        drive(worker, lambda: not api.list_runs(ws, status=("queued", "running")), "defaults")
    assert summary["trials"] == {"complete": 2}
    runs = api.list_runs(ws, group="study:on-ray")
    assert len(runs) == 3 and {r.status for r in runs} == {"done"}
    assert all(r.versions for r in runs)  # recorded by run_child inside the Ray task


def test_background_tasks_stay_on_the_workers_machine(workspace, monkeypatch):
    """UMAP/SHAP/study-driver tasks go to a local child; only runs become Ray tasks."""
    pytest.importorskip("ray")
    from recsys_core.jobs.executor import LocalExecutor
    from recsys_core.jobs.ray_executor import RayExecutor

    calls = []
    monkeypatch.setattr(
        LocalExecutor, "submit", lambda self, job_id, **kw: calls.append((job_id, kw)) or 4242
    )
    executor = RayExecutor(workspace)
    monkeypatch.setattr(executor, "connect", lambda: pytest.fail("a task must not reach Ray"))
    assert executor.submit("t-1", kind="task", device="cpu", threads=2) == 4242
    assert calls == [("t-1", {"kind": "task", "device": "cpu", "threads": 2})]


def test_worker_follows_the_workspace_setting_between_jobs(served, monkeypatch):
    """The sidebar's choice reaches a running worker once it is idle (no restart needed)."""
    from recsys_core.jobs.executor import LocalExecutor, set_executor
    from recsys_core.jobs.ray_executor import RayExecutor
    from recsys_core.jobs.worker import Worker

    ws, _, _ = served
    monkeypatch.delenv("RECSYS_EXPLORER_EXECUTOR", raising=False)
    worker = Worker(ws, gpus=[], executor=LocalExecutor(ws))
    worker.follow_setting = True
    worker.tick()
    assert isinstance(worker.executor, LocalExecutor)
    set_executor(ws, "ray")
    worker._last_beat = 0.0  # the setting is read with the heartbeat, once a second
    worker.tick()
    assert isinstance(worker.executor, RayExecutor) and worker.executor_name == "ray"
    assert worker.gpus == []  # the local Ray instance of the tests has no GPU
