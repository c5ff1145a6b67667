"""Run store, API and the run function, exercised in-process (no worker subprocess).

The child's code path (``run_child``) is called directly after a claim, so these tests cover
artifacts, events, failures and cooperative cancellation quickly; tests/test_jobs_worker.py
covers the same through real worker and child processes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from recsys_core.config import param, validate
from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.errors import ConfigError, NotFoundError
from recsys_core.jobs import api, store
from recsys_core.jobs.artifacts import RunArtifacts
from recsys_core.jobs.child import EventSink, run_child
from recsys_core.jobs.recommend import recommend_for
from recsys_core.jobs.runner import curves_from_events, merge_event, recs_frame
from recsys_core.jobs.spec import RunSpec
from recsys_core.models import MODELS
from recsys_core.models.popular import MostPopular

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class EpochsConfig:
    """Test model: ``epochs`` reported epochs, optionally failing at one of them."""

    epochs: int = param(3, "epochs", low=1)
    fail_at: int = param(0, "raise at this epoch (0 = never)", low=0)

    def __post_init__(self) -> None:
        validate(self)


class EpochsModel(MostPopular):
    """MostPopular that reports per-epoch progress (and can fail on purpose)."""

    name = "test_epochs"
    Config = EpochsConfig

    def _fit(self, train, valid, progress) -> None:  # noqa: ANN001 - contract signature
        super()._fit(train, valid, lambda *_: None)
        for epoch in range(1, self.config.epochs + 1):
            if epoch == self.config.fail_at:
                raise RuntimeError(f"planted failure at epoch {epoch}")
            progress(epoch, {"epoch": epoch, "epochs_total": self.config.epochs, "loss": 1 / epoch})
            progress(
                epoch,
                {"epoch": epoch, "epochs_total": self.config.epochs, "valid_ndcg@10": 0.1 * epoch},
            )


@pytest.fixture()
def test_model(monkeypatch):
    monkeypatch.setitem(MODELS, EpochsModel.name, EpochsModel)
    return EpochsModel


@pytest.fixture()
def dataset(workspace):
    from recsys_core.data.store import import_frames

    inter, items, users = make_frames(
        SyntheticConfig(n_users=60, n_items=40, n_clusters=4, mean_history=8)
    )
    return import_frames(
        workspace, inter, name="tiny", source="synthetic", items=items, users=users
    )


def execute_inline(ws, run_id: str) -> int:
    """What a worker does for one run, in this process: claim it, run the child's code."""
    got = store.claim_run(ws, "test-worker", lambda pref: "cpu")
    assert got is not None and got[0] == run_id
    return run_child(ws, run_id, device="cpu")


# ----- specs and submission ------------------------------------------------------------------
def test_run_spec_round_trips_through_json():
    spec = RunSpec(
        dataset="d",
        model="ease",
        config={"l2": 5.0},
        balance={"pop_norm": 0.5},
        split={"protocol": "random", "seed": 3},
        seed=2,
        group="g",
        label="x",
    )
    assert RunSpec.from_dict(json.loads(spec.to_json())) == spec
    with pytest.raises(ConfigError, match="unknown field"):
        RunSpec.from_dict({"dataset": "d", "model": "m", "epochz": 3})


def test_submit_fills_defaults_and_refuses_bad_specs(workspace, dataset, test_model):
    run_id = api.submit(
        workspace,
        {
            "dataset": "tiny",
            "model": "test_epochs",
            "config": {"epochs": "4"},
            "split": {"test_ratio": 0.3},
        },
    )
    record = api.get_run(workspace, run_id)
    assert record.status == "queued"
    assert record.spec.dataset == dataset.id  # the name was resolved to the id
    assert record.spec.config == {"epochs": 4, "fail_at": 0}
    assert record.spec.split["test_ratio"] == 0.3 and record.spec.split["protocol"] == "random"
    with pytest.raises(NotFoundError, match="unknown model"):
        api.submit(workspace, {"dataset": "tiny", "model": "no_such_model"})
    with pytest.raises(ConfigError, match="epochs"):
        api.submit(workspace, {"dataset": "tiny", "model": "test_epochs", "config": {"epochs": 0}})
    with pytest.raises(ConfigError, match="does not honour"):
        api.submit(
            workspace,
            {
                "dataset": "tiny",
                "model": "test_epochs",
                "balance": {"neg_alpha": 0.5, "neg_sampler": "popularity"},
            },
        )
    with pytest.raises(ConfigError, match="device"):
        api.submit(workspace, {"dataset": "tiny", "model": "test_epochs", "device": "tpu"})
    with pytest.raises(NotFoundError):
        api.submit(workspace, {"dataset": "nope", "model": "test_epochs"})
    assert [r.id for r in api.list_runs(workspace)] == [run_id]  # nothing else was queued


def test_cancel_queued_is_immediate_and_retry_links(workspace, dataset):
    run_id = api.submit(workspace, RunSpec(dataset=dataset.id, model="most_popular"))
    assert api.cancel(workspace, run_id) == "cancelled"
    record = api.get_run(workspace, run_id)
    assert record.status == "cancelled" and record.finished_at is not None
    new_id = api.retry(workspace, run_id)
    again = api.get_run(workspace, new_id)
    assert again.status == "queued" and again.retry_of == run_id and again.spec == record.spec
    with pytest.raises(ConfigError, match="queued"):
        api.retry(workspace, new_id)
    with pytest.raises(NotFoundError, match="no run"):
        api.get_run(workspace, "r-missing")
    assert api.status(workspace, new_id) == "queued"
    with pytest.raises(NotFoundError, match="no run"):
        api.status(workspace, "r-missing")


def test_claims_are_exclusive_under_contention(workspace, dataset):
    ids = {
        api.submit(workspace, RunSpec(dataset=dataset.id, model="random", seed=i))
        for i in range(24)
    }
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (got := store.claim_run(workspace, name, lambda pref: "cpu")) is not None:
            with lock:
                claimed.append(got[0])

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every run claimed exactly once
    assert {r.status for r in api.list_runs(workspace)} == {"running"}


def test_claim_respects_device_slots(workspace, dataset):
    cpu_id = api.submit(workspace, RunSpec(dataset=dataset.id, model="random", device="cpu"))
    auto_id = api.submit(workspace, RunSpec(dataset=dataset.id, model="random"))
    # A worker with a GPU but no free CPU slot takes the auto run, leaves the cpu run queued.
    got = store.claim_run(workspace, "w", lambda pref: "cuda:0" if pref == "auto" else None)
    assert got is not None and got[0] == auto_id and got[2] == "cuda:0"
    assert api.get_run(workspace, cpu_id).status == "queued"


def test_two_processes_submitting_at_once_lose_nothing(workspace, dataset, tmp_path):
    # Both processes import everything first, then start submitting on the same signal, so
    # their 50 submissions really interleave.
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from recsys_core.workspace import Workspace\n"
        "from recsys_core.jobs import api\n"
        "ws = Workspace(Path(sys.argv[1]))\n"
        "go = Path(sys.argv[4])\n"
        "Path(sys.argv[4] + '.' + sys.argv[3]).touch()\n"
        "while not go.exists():\n"
        "    time.sleep(0.01)\n"
        "for i in range(50):\n"
        "    api.submit(ws, {'dataset': sys.argv[2], 'model': 'random',\n"
        "                    'label': f'{sys.argv[3]}-{i}'})\n"
    )
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(workspace.root), dataset.id, tag, str(go)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"go.{t}").exists() for t in "ab"):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    runs = api.list_runs(workspace)
    assert len(runs) == 100 and len({r.id for r in runs}) == 100
    assert {r.label for r in runs} == {f"{t}-{i}" for t in "ab" for i in range(50)}
    with sqlite3.connect(workspace.catalog_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ----- the run function and artifacts ----------------------------------------------------------
def test_run_writes_artifacts_events_and_recommends(workspace, dataset, test_model):
    run_id = api.submit(
        workspace,
        RunSpec(dataset=dataset.id, model="test_epochs", config={"epochs": 3}, device="cpu"),
    )
    assert execute_inline(workspace, run_id) == 0
    record = api.get_run(workspace, run_id)
    assert record.status == "done", record.error
    assert record.progress == 1.0 and record.fit_seconds is not None
    assert record.versions["torch"] and record.code_version
    assert record.device_used == "cpu"

    art = RunArtifacts(workspace, run_id)
    for name in (
        "spec.json",
        "metrics.json",
        "per_user.parquet",
        "recs.parquet",
        "curves.json",
        "model",
    ):
        assert (art.dir / name).exists(), name
    assert not (art.dir / ".tmp").exists()
    metrics = art.metrics()
    assert 0.0 < metrics["aggregate"]["ndcg@10"] <= 1.0  # popularity beats nothing here
    assert metrics["timing"]["fit_seconds"] >= 0
    split = art.split()
    recs = art.recs()
    assert set(recs.columns) >= {"user", "item", "user_index", "item_index", "rank", "score"}
    assert set(recs["user_index"]) == set(split.test_users.tolist())
    assert recs.groupby("user_index")["rank"].min().eq(1).all()
    # no recommended item is one the user trained on
    train = split.train.binary
    assert not np.asarray(train[recs["user_index"].to_numpy(), recs["item_index"].to_numpy()]).any()
    assert art.per_user().index.isin(split.test_users).all()
    curves = art.curves()
    assert curves["epoch"] == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert curves["loss"][0] == 1.0 and curves["valid_ndcg@10"][1] == pytest.approx(0.1)
    events = api.events(workspace, run_id)
    assert [e["epoch"] for e in events] == [1, 1, 2, 2, 3, 3]
    model = art.model(device="cpu")
    assert model.name == "test_epochs"

    user = str(art.dataset().user_ids[0])
    rows = recommend_for(workspace, run_id, user, k=5)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["title"].startswith("Item") for r in rows)
    with pytest.raises(NotFoundError, match="not in dataset"):
        recommend_for(workspace, run_id, "no-such-user")


def test_failing_run_records_traceback_and_log(workspace, dataset, test_model):
    run_id = api.submit(
        workspace,
        RunSpec(dataset=dataset.id, model="test_epochs", config={"epochs": 5, "fail_at": 2}),
    )
    (workspace.runs_dir / run_id).mkdir(parents=True)
    assert execute_inline(workspace, run_id) == 1
    record = api.get_run(workspace, run_id)
    assert record.status == "failed"
    assert "planted failure at epoch 2" in record.error
    assert "RuntimeError" in record.traceback and "_fit" in record.traceback
    assert api.events(workspace, run_id)[-1]["epoch"] == 1  # progress before the failure kept
    with pytest.raises(NotFoundError, match="failed"):
        RunArtifacts(workspace, run_id).metrics()


def test_cancel_while_running_stops_between_epochs(workspace, dataset, test_model, monkeypatch):
    run_id = api.submit(
        workspace, RunSpec(dataset=dataset.id, model="test_epochs", config={"epochs": 50})
    )
    assert store.claim_run(workspace, "w", lambda pref: "cpu") is not None
    assert api.cancel(workspace, run_id) == "cancelling"
    monkeypatch.setattr("recsys_core.jobs.child.CANCEL_CHECK_SECONDS", 0.0)
    assert run_child(workspace, run_id, device="cpu") == 0
    record = api.get_run(workspace, run_id)
    assert record.status == "cancelled"
    assert not (workspace.runs_dir / run_id / "metrics.json").exists()


# ----- progress helpers ------------------------------------------------------------------
def test_event_sink_progress_and_eta(workspace, dataset, monkeypatch):
    run_id = api.submit(workspace, RunSpec(dataset=dataset.id, model="random"))
    store.claim_run(workspace, "w", lambda pref: "cpu")
    monkeypatch.setattr("recsys_core.jobs.child.EVENT_FLUSH_SECONDS", 0.0)
    sink = EventSink(workspace, run_id)
    sink(1, {"epoch": 1, "epochs_total": 4, "loss": 2.0, "elapsed_s": 10.0})
    record = api.get_run(workspace, run_id)
    assert record.progress == pytest.approx(0.25)
    assert record.eta_seconds == pytest.approx(30.0)  # 10 s for a quarter: 30 s to go
    sink(2, {"epoch": 2, "epochs_total": 4, "loss": float("nan"), "elapsed_s": 20.0})
    events = api.events(workspace, run_id)
    assert events[-1]["loss"] is None and events[-1]["eta"] == pytest.approx(20.0)


def test_merge_event_keeps_one_point_per_epoch_and_every_validation():
    buffer: list[dict] = []
    for step in range(10):  # ten batches of epoch 1
        merge_event(buffer, {"step": step, "metrics": {"epoch": 1, "loss": 10 - step}})
    merge_event(buffer, {"step": 10, "metrics": {"epoch": 1, "valid_ndcg@10": 0.3}})
    merge_event(buffer, {"step": 11, "metrics": {"epoch": 2, "loss": 0.5}})
    assert [e["step"] for e in buffer] == [9, 10, 11]
    curves = curves_from_events(buffer)
    assert curves["loss"] == [1.0, None, 0.5]
    assert curves["valid_ndcg@10"] == [None, 0.3, None]
    # the shared trainer's within-epoch reports (fractional epochs) collapse into the epoch end
    trainer: list[dict] = []
    for step, epoch in enumerate([0.3, 0.6, 1.0, 1.5, 2.0]):
        merge_event(trainer, {"step": step, "metrics": {"epoch": epoch, "loss": 1.0}})
    merge_event(trainer, {"step": 5, "metrics": {"epoch": 2.4, "loss": 1.0}})
    assert [e["metrics"]["epoch"] for e in trainer] == [1.0, 2.0, 2.4]


def test_recs_frame_drops_padding():
    frame = recs_frame(
        np.array(["u0", "u1"], dtype=object),
        np.array([10, 20, 30]),
        np.array([1]),
        np.array([[2, 0, -1]]),
        np.array([[0.9, 0.5, -np.inf]], dtype=np.float32),
    )
    assert frame["item"].tolist() == [30, 10] and frame["user"].tolist() == ["u1", "u1"]
    assert frame["rank"].tolist() == [1, 2]


def test_worker_status_without_worker(workspace, dataset):
    api.submit(workspace, RunSpec(dataset=dataset.id, model="random"))
    status = api.worker_status(workspace)
    assert not status.alive and status.queued == 1 and status.running == 0
    assert not api.worker_alive(workspace)


def test_tasks_validate_kind_and_payload(workspace, monkeypatch):
    from recsys_core.jobs.tasks import TASKS

    monkeypatch.setitem(TASKS, "test_noop", lambda ws, payload, progress: {})
    with pytest.raises(NotFoundError, match="unknown task kind"):
        api.submit_task(workspace, "no_such_kind", {})
    with pytest.raises(ConfigError, match="JSON"):
        api.submit_task(workspace, "test_noop", {"x": object()})
    task_id = api.submit_task(workspace, "test_noop", {"x": 1})
    assert api.get_task(workspace, task_id).status == "queued"
    assert api.cancel_task(workspace, task_id) == "cancelled"
    assert [t.id for t in api.list_tasks(workspace, kind="test_noop")] == [task_id]


def test_an_identical_active_task_is_attached_to_not_queued_twice(workspace, monkeypatch):
    from recsys_core.jobs.tasks import TASKS

    monkeypatch.setitem(TASKS, "test_noop", lambda ws, payload, progress: {})
    payload = {"run": "r1", "user": "7", "item": "3", "k": 10}
    assert api.find_task(workspace, "test_noop", payload) is None
    first = api.submit_task(workspace, "test_noop", payload)
    # Same payload in another key order (a reloaded page builds it anew): the same task.
    again = api.submit_task(workspace, "test_noop", dict(reversed(payload.items())))
    assert again == first and api.find_task(workspace, "test_noop", payload) == first
    assert store.claim_task(workspace, "test-worker")[0] == first  # running now: still reused
    assert api.submit_task(workspace, "test_noop", payload) == first
    other = api.submit_task(workspace, "test_noop", payload | {"item": "4"})
    assert other != first
    assert len(api.list_tasks(workspace, kind="test_noop")) == 2
    api.cancel_task(workspace, first)  # a cancelled (or finished) task is not reused
    assert api.find_task(workspace, "test_noop", payload) is None
    assert api.submit_task(workspace, "test_noop", payload) not in (first, other)


def test_recovery_interrupts_orphans_but_not_live_inline_runs(workspace, dataset):
    import os
    import socket

    from recsys_core.jobs.worker import Worker

    ids = [api.submit(workspace, RunSpec(dataset=dataset.id, model="random")) for _ in range(3)]
    owners = [
        f"inline:{socket.gethostname()}:{os.getpid()}",  # this very process: alive
        f"inline:{socket.gethostname()}:999999999",  # a pid that does not exist
        "vm:12345:1700000000",  # a worker that died
    ]
    for run_id, owner in zip(ids, owners, strict=True):
        assert store.claim_specific(workspace, run_id, owner, "cpu")
    done = api.submit(workspace, RunSpec(dataset=dataset.id, model="random"))
    api.cancel(workspace, done)
    worker = Worker(workspace, gpus=[])
    worker.acquire()
    try:
        assert worker.recover() == 2
    finally:
        worker.release()
    statuses = [api.get_run(workspace, run_id).status for run_id in ids]
    assert statuses == ["running", "interrupted", "interrupted"]
    assert "retry" in api.get_run(workspace, ids[2]).error
    assert api.get_run(workspace, done).status == "cancelled"  # finished records untouched


class FakeExecutor:
    """Records what the worker starts; jobs end only when the test says so."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, str], str] = {}
        self.ended: list = []

    def submit(self, job_id, *, kind="run", device="cpu", threads=None):  # noqa: ANN001, ANN201
        self.running[(kind, job_id)] = device
        return None

    def poll(self):  # noqa: ANN201
        ended, self.ended = self.ended, []
        return ended

    def cancel(self, job_id, *, kind="run"):  # noqa: ANN001, ANN201
        self.running.pop((kind, job_id), None)

    def active(self):  # noqa: ANN201
        return [(k, j, d) for (k, j), d in self.running.items()]

    def finish(self, job_id: str, code: int) -> None:
        from recsys_core.jobs.executor import Finished

        self.running.pop(("run", job_id))
        self.ended.append(Finished("run", job_id, code))


def test_worker_slots_one_run_per_gpu_and_cpu_slots(workspace, dataset):
    from recsys_core.jobs.executor import _gpu_env
    from recsys_core.jobs.worker import Worker

    fake = FakeExecutor()
    worker = Worker(workspace, cpu_slots=1, gpus=["cuda:0"], executor=fake)
    auto = [api.submit(workspace, RunSpec(dataset=dataset.id, model="random")) for _ in range(2)]
    cpu = [
        api.submit(workspace, RunSpec(dataset=dataset.id, model="random", device="cpu"))
        for _ in range(2)
    ]
    missing = api.submit(workspace, RunSpec(dataset=dataset.id, model="random", device="cuda:3"))
    worker.tick()
    assert fake.running == {("run", auto[0]): "cuda:0", ("run", cpu[0]): "cpu"}
    assert api.get_run(workspace, auto[1]).status == "queued"  # waits for the GPU
    assert api.get_run(workspace, cpu[1]).status == "queued"  # waits for the CPU slot
    failed = api.get_run(workspace, missing)
    assert failed.status == "failed" and "'cuda:3' is not available" in failed.error
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        assert _gpu_env("cuda:0") == {"CUDA_VISIBLE_DEVICES": "0"}
        mp.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # a worker restricted to physical GPUs 2, 3
        assert _gpu_env("cuda:1") == {"CUDA_VISIBLE_DEVICES": "3"}
    assert _gpu_env("cpu") == {"CUDA_VISIBLE_DEVICES": ""}

    # the GPU child dies without reporting (e.g. OOM-killed): failed, and the GPU is reused
    fake.finish(auto[0], -9)
    worker.tick()
    dead = api.get_run(workspace, auto[0])
    assert dead.status == "failed" and "SIGKILL" in dead.error and "memory" in dead.error
    assert fake.running[("run", auto[1])] == "cuda:0"
    assert api.get_run(workspace, cpu[1]).status == "queued"

    # a cancel the child ignores is enforced by force once 1.5 s have passed
    api.cancel(workspace, cpu[0])
    with workspace.transaction() as conn:
        conn.execute("UPDATE runs SET cancel_requested_at = cancel_requested_at - 5")
    worker.tick()
    record = api.get_run(workspace, cpu[0])
    assert record.status == "cancelled" and "by force" in record.error
    assert fake.running[("run", cpu[1])] == "cpu"  # the freed CPU slot is taken at once


def test_sweep_queues_the_grid_or_nothing(workspace, dataset, test_model):
    base = RunSpec(dataset=dataset.id, model="test_epochs")
    ids = api.submit_sweep(
        workspace, base, {"config.epochs": [1, 2, 3], "seed": [0, 1]}, group="grid"
    )
    runs = api.list_runs(workspace, group="grid")
    assert len(ids) == 6 and {r.id for r in runs} == set(ids)
    points = {(r.spec.config["epochs"], r.spec.seed) for r in runs}
    assert points == {(e, s) for e in (1, 2, 3) for s in (0, 1)}
    assert api.get_run(workspace, ids[0]).label == "epochs=1, seed=0"
    with pytest.raises(ConfigError, match="sweep point epochs=0"):
        api.submit_sweep(workspace, base, {"config.epochs": [1, 0]})
    with pytest.raises(ConfigError, match="cannot vary"):
        api.submit_sweep(workspace, base, {"epochs": [1]})
    assert len(api.list_runs(workspace)) == 6  # the refused sweeps queued nothing


def test_factor_model_run_saves_embeddings(workspace, dataset):
    run_id = api.submit(
        workspace,
        RunSpec(dataset=dataset.id, model="ials", config={"factors": 8, "iterations": 2}),
    )
    record = api.run_inline(workspace, run_id, device="cpu")
    assert record.status == "done", record.error
    art = RunArtifacts(workspace, run_id)
    items, users = art.item_embeddings(), art.user_embeddings()
    assert items.shape == (dataset.n_items, 8) and items.dtype == np.float32
    assert users.shape == (dataset.n_users, 8)
    assert np.isfinite(items).all()
    with pytest.raises(ConfigError, match="not queued"):
        api.run_inline(workspace, run_id)
