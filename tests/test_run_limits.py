"""Runs fail before the work, or in one clear line (issue 20, items 6 and 7): out-of-memory
errors in fitting and evaluation, EASE's honest peak, an unwritable run folder, a full disk."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import torch

from recsys_core.config import param, validate
from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.errors import DataError, OutOfMemory, ResourceError
from recsys_core.jobs import api, runner, store
from recsys_core.jobs.child import run_child
from recsys_core.jobs.spec import RunSpec
from recsys_core.models import MODELS
from recsys_core.models import ease as ease_module
from recsys_core.models.ease import EASE, EASEConfig
from recsys_core.models.popular import MostPopular

CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
    "you tried to allocate 20000000000 bytes."
)


@dataclass(frozen=True)
class FailingConfig:
    """Test model: runs out of memory in fit or in scoring, or counts its fits."""

    oom_in: str = param("", "fit, eval or nothing", choices=("", "fit", "eval"))

    def __post_init__(self) -> None:
        validate(self)


FITS: list[int] = []


class FailingModel(MostPopular):
    name = "test_oom"
    Config = FailingConfig

    def _fit(self, train, valid, progress) -> None:  # noqa: ANN001 - contract signature
        FITS.append(1)
        if self.config.oom_in == "fit":
            raise RuntimeError(CPU_OOM)
        super()._fit(train, valid, progress)

    def score_users(self, users):  # noqa: ANN001, ANN201
        if self.config.oom_in == "eval":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.31 GiB")
        return super().score_users(users)


@pytest.fixture()
def failing_model(monkeypatch):
    monkeypatch.setitem(MODELS, FailingModel.name, FailingModel)
    FITS.clear()
    return FailingModel


@pytest.fixture()
def dataset(workspace):
    from recsys_core.data.store import import_frames

    inter, _, _ = make_frames(SyntheticConfig(n_users=60, n_items=40, n_clusters=4, mean_history=8))
    return import_frames(workspace, inter, name="tiny", source="synthetic")


def _run_inline(ws, dataset, config: dict) -> api.RunRecord:  # type: ignore[name-defined]
    run_id = api.submit(
        ws, RunSpec(dataset=dataset.id, model="test_oom", config=config, device="cpu")
    )
    got = store.claim_run(ws, "test-worker", lambda pref: "cpu")
    assert got is not None and got[0] == run_id
    run_child(ws, run_id, device="cpu")
    return api.get_run(ws, run_id)


# ----- 6. out of memory: one clear line -------------------------------------------------------
def test_out_of_memory_in_fit_is_one_clear_line(workspace, dataset, failing_model):
    record = _run_inline(workspace, dataset, {"oom_in": "fit"})
    assert record.status == "failed"
    assert record.error.startswith("out of memory while fitting test_oom on "), record.error
    assert "needs about 20.0 GB, have " in record.error and "; try " in record.error
    assert "\n" not in record.error and "RuntimeError" not in record.error
    assert "DefaultCPUAllocator" in record.traceback  # the cause stays in the traceback


def test_out_of_memory_in_evaluation_is_one_clear_line(workspace, dataset, failing_model):
    record = _run_inline(workspace, dataset, {"oom_in": "eval"})
    assert record.status == "failed"
    assert record.error.startswith("out of memory while evaluating test_oom"), record.error
    assert "needs about 10.0 GB" in record.error  # 9.31 GiB, in GB


def test_evaluate_itself_reports_out_of_memory(small_synthetic):
    from recsys_core.evaluate import evaluate
    from recsys_core.split import SplitSpec, make_split

    split = make_split(small_synthetic, SplitSpec())
    model = FailingModel(FailingConfig(oom_in="eval"), device="cpu").fit(split.train)
    with pytest.raises(OutOfMemory, match=r"^out of memory while evaluating test_oom"):
        evaluate(model, split, ks=(10,), n_resamples=10)


def test_ease_refusal_states_the_real_peak_and_a_fix_that_fits(small_synthetic, monkeypatch):
    n_users, n_items = small_synthetic.n_users, small_synthetic.n_items  # 60, 40
    model = EASE(EASEConfig(max_items=10), device="cpu")
    have = model.peak_bytes(n_users, 25) / ease_module.HEADROOM  # 25 items fit, 26 do not
    assert model._most_items(n_users, ease_module.HEADROOM * have) == 25
    monkeypatch.setattr(ease_module, "available_bytes", lambda device: have)
    with pytest.raises(DataError) as error:
        model.fit(small_synthetic)
    message = str(error.value)
    assert f"EASE on {n_items:,} items needs about" in message and "at its peak" in message
    assert "raise max_items up to 25" in message  # what the free memory holds, no more
    have = model.peak_bytes(n_users, 5) / ease_module.HEADROOM
    monkeypatch.setattr(ease_module, "available_bytes", lambda device: have)
    with pytest.raises(DataError) as error:
        model.fit(small_synthetic)
    assert "keep at most 5 items" in str(error.value) and "raise max_items" not in str(error.value)


def test_ease_is_refused_when_it_would_take_nearly_all_free_memory(small_synthetic, monkeypatch):
    model = EASE(EASEConfig(), device="cpu")
    needs = model.peak_bytes(small_synthetic.n_users, small_synthetic.n_items)
    monkeypatch.setattr(ease_module, "available_bytes", lambda device: int(needs / 0.95))
    with pytest.raises(OutOfMemory, match="more than 80% of it"):
        model.fit(small_synthetic)


def test_ease_is_refused_before_allocating_when_memory_is_short(small_synthetic, monkeypatch):
    monkeypatch.setattr(ease_module, "available_bytes", lambda device: 1000)
    with pytest.raises(OutOfMemory, match=r"^out of memory while fitting ease on 40 items"):
        EASE(EASEConfig(), device="cpu").fit(small_synthetic)


def test_ease_default_ceiling_fits_a_24_gb_machine():
    """The measured peak is about two dense item x item matrices, so the default max_items must
    keep that well inside 24 GB (half of it, leaving room for the app, data and evaluation)."""
    model = EASE(EASEConfig(), device="cpu")
    n = EASEConfig().max_items
    assert model.peak_bytes(10**6, n) >= 2 * 4 * n**2  # never below two n x n float32 matrices
    assert model.peak_bytes(10**6, n) <= 12e9
    assert model.peak_bytes(1000, n) <= 12e9  # Woodbury path


# ----- 7. fail before the work ----------------------------------------------------------------
def test_unwritable_run_folder_fails_before_fitting(workspace, dataset, failing_model):
    run_id = api.submit(workspace, RunSpec(dataset=dataset.id, model="test_oom", device="cpu"))
    workspace.runs_dir.mkdir(parents=True, exist_ok=True)
    (workspace.runs_dir / run_id).write_text("a file where the run folder should be")
    with pytest.raises(ResourceError, match="the run folder cannot be written") as error:
        runner.execute_run(workspace, run_id, lambda *a: None, lambda: False, device="cpu")
    assert FITS == [], "the model was fitted before the folder was checked"
    assert "Fix:" in str(error.value) and "RECSYS_EXPLORER_HOME" in str(error.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_read_only_run_folder_fails_before_fitting(workspace, dataset, failing_model):
    run_id = api.submit(workspace, RunSpec(dataset=dataset.id, model="test_oom", device="cpu"))
    folder = workspace.runs_dir / run_id
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        with pytest.raises(ResourceError, match="PermissionError"):
            runner.execute_run(workspace, run_id, lambda *a: None, lambda: False, device="cpu")
    finally:
        folder.chmod(0o755)
    assert FITS == []


def test_full_disk_fails_before_fitting(workspace, dataset, failing_model, monkeypatch):
    run_id = api.submit(workspace, RunSpec(dataset=dataset.id, model="test_oom", device="cpu"))
    usage = type("Usage", (), {"total": 10**9, "used": 10**9 - 1000, "free": 1000})
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(ResourceError, match="not enough disk space"):
        runner.execute_run(workspace, run_id, lambda *a: None, lambda: False, device="cpu")
    assert FITS == []


def test_cli_evaluate_reports_out_of_memory_in_one_line(workspace, failing_model, tmp_path, capsys):
    from recsys_core.cli.main import main

    inter, _, _ = make_frames(SyntheticConfig(n_users=60, n_items=40, n_clusters=4, mean_history=8))
    path = tmp_path / "ratings.csv"
    inter.to_csv(path, index=False)
    argv = ["--workspace", str(workspace.root), "evaluate", str(path), "--model", "test_oom"]
    assert main([*argv, "--param", "test_oom.oom_in=fit"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: out of memory while fitting test_oom") and "\n" not in err


def test_worker_fails_a_run_whose_folder_cannot_be_written(workspace, dataset, failing_model):
    from recsys_core.jobs.worker import Worker

    run_id = api.submit(workspace, RunSpec(dataset=dataset.id, model="test_oom", device="cpu"))
    workspace.runs_dir.mkdir(parents=True, exist_ok=True)
    (workspace.runs_dir / run_id).write_text("a file where the run folder should be")
    Worker(workspace, gpus=[]).tick()  # used to raise from opening the log: the worker died
    record = api.get_run(workspace, run_id)
    assert record.status == "failed" and "the run folder cannot be written" in record.error
    assert FITS == []


def test_out_of_memory_in_a_background_task_is_one_clear_line(workspace, monkeypatch):
    from recsys_core.jobs.child import task_child
    from recsys_core.jobs.tasks import TASKS

    def explode(ws, payload, progress):  # noqa: ANN001, ANN202, ARG001
        raise MemoryError("Unable to allocate 3.00 GiB for an array with shape (1000, 805306)")

    monkeypatch.setitem(TASKS, "test_oom_task", explode)
    task_id = api.submit_task(workspace, "test_oom_task", {})
    assert store.claim_task(workspace, "test-worker") == (task_id, "test_oom_task")
    assert task_child(workspace, task_id) == 1
    task = api.get_task(workspace, task_id)
    assert task.error.startswith("out of memory while running the test_oom_task task: needs ")
    assert "needs about 3.2 GB" in task.error and "\n" not in task.error
