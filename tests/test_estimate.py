"""Pre-flight cost estimates: one formula per registered model, monotone in the data's size,
and a run that would not fit refused before it is queued (API submit, worker, CLI)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from recsys_core.cli.main import main
from recsys_core.errors import ResourceError
from recsys_core.estimate import DataShape, estimate_model, estimate_run, split_shape
from recsys_core.estimate_models import COSTS
from recsys_core.memory import GB
from recsys_core.models import MODELS

SMALL = DataShape(n_users=2_000, n_items=1_000, n_train=40_000, n_test_users=2_000)


def _grow(shape: DataShape, factor: int, what: str) -> DataShape:
    if what == "items":
        return dataclasses.replace(shape, n_items=shape.n_items * factor)
    return dataclasses.replace(
        shape,
        n_users=shape.n_users * factor,
        n_train=shape.n_train * factor,
        n_test_users=shape.n_test_users * factor,
    )


@pytest.mark.parametrize("key", sorted(MODELS))
def test_every_model_has_a_cost_formula(key):
    assert key in COSTS, f"model {key!r} has no entry in recsys_core.estimate_models.COSTS"
    cost = estimate_model(key, MODELS[key].Config(), SMALL, "cpu")
    for value in (cost.fit_seconds, cost.peak_bytes, cost.state_bytes):
        assert math.isfinite(value) and value > 0
    assert cost.peak_bytes >= cost.state_bytes * 0.5  # the fit holds at least the model


@pytest.mark.parametrize("key", sorted(MODELS))
@pytest.mark.parametrize("what", ["items", "users"])
def test_cost_grows_with_the_data(key, what):
    config = MODELS[key].Config()
    small = estimate_model(key, config, SMALL, "cpu")
    big = estimate_model(key, config, _grow(SMALL, 8, what), "cpu")
    assert big.fit_seconds >= small.fit_seconds
    assert big.peak_bytes >= small.peak_bytes
    run_small = estimate_run(key, config, SMALL)
    run_big = estimate_run(key, config, _grow(SMALL, 8, what))
    assert run_big.peak_host_bytes > run_small.peak_host_bytes
    assert run_big.eval_seconds > run_small.eval_seconds


def test_device_moves_the_model_peak_off_the_host():
    config = MODELS["ials"].Config()
    cpu = estimate_run("ials", config, SMALL, device="cpu")
    gpu = estimate_run("ials", config, SMALL, device="cuda")
    assert gpu.peak_device_bytes > 0 and cpu.peak_device_bytes == 0
    assert gpu.peak_host_bytes < cpu.peak_host_bytes and gpu.fit_seconds < cpu.fit_seconds


def test_ease_on_300k_items_is_refused_with_a_setting_that_fits():
    wide = DataShape(n_users=200_000, n_items=300_000, n_train=3_500_000, n_test_users=200_000)
    est = estimate_run("ease", MODELS["ease"].Config(), wide, have_host=24 * GB)
    assert not est.fits
    assert est.model_peak_bytes > 300 * GB  # two 300k x 300k float32 matrices
    assert "ease" in est.reason and "GB" in est.reason and "300,000 items" in est.reason
    assert "keep at most" in est.suggestion and "max_items=" in est.suggestion
    assert "use ials" in est.suggestion
    # the suggested item count does fit
    most = int(est.suggestion.split("keep at most ")[1].split(" items")[0].replace(",", ""))
    smaller = dataclasses.replace(wide, n_items=most, n_train=wide.n_train * most // 300_000)
    assert estimate_run("ease", MODELS["ease"].Config(), smaller, have_host=24 * GB).fits


def test_nearest_setting_halves_a_knob():
    shape = DataShape(n_users=100_000, n_items=50_000, n_train=5_000_000, n_test_users=100_000)
    config = dataclasses.replace(MODELS["multvae"].Config(), batch_size=4096)
    est = estimate_run("multvae", config, shape, have_host=8 * GB)
    assert not est.fits and "batch_size=" in est.suggestion


def test_split_shapes():
    assert split_shape(100, 50, 1000, {"protocol": "random", "test_ratio": 0.2}).n_train == 700
    assert split_shape(100, 50, 1000, {"protocol": "leave_last"}).n_train == 800
    users = split_shape(100, 50, 1000, {"protocol": "users", "target_ratio": 0.2})
    assert users.n_test_users == 20


@pytest.fixture()
def dataset(workspace):
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames

    inter, items, users = make_frames(SyntheticConfig(n_users=60, n_items=40, n_clusters=4))
    return import_frames(workspace, inter, name="tiny", source="synthetic", items=items)


@pytest.fixture()
def little_memory(monkeypatch):
    """The machine reports 50 MB free: every model's run is refused."""
    import recsys_core.estimate as est

    monkeypatch.setattr(est, "free_memory", lambda device: (50 * 2**20, None))


def test_submit_refuses_before_queueing(workspace, dataset, little_memory):
    from recsys_core.jobs import api

    with pytest.raises(ResourceError, match="refused before queueing.*ease.*free") as info:
        api.submit(workspace, {"dataset": dataset.id, "model": "ease"})
    assert "Fix:" in str(info.value)
    assert api.list_runs(workspace) == []


def test_worker_refuses_a_claimed_run_that_no_longer_fits(workspace, dataset, monkeypatch):
    import recsys_core.estimate as est
    from recsys_core.jobs import api
    from recsys_core.jobs.spec import RunSpec

    run_id = api.submit(workspace, {"dataset": dataset.id, "model": "ials"})
    spec = api.get_run(workspace, run_id).spec
    assert est.start_refusal(workspace, spec, "cpu") is None
    monkeypatch.setattr(est, "free_memory", lambda device: (50 * 2**20, None))
    refusal = est.start_refusal(workspace, spec, "cpu")
    assert refusal.startswith("refused before starting: ials") and "try" in refusal
    update = RunSpec(**{**spec.to_dict(), "parent": "r1"})
    assert est.start_refusal(workspace, update, "cpu") is None  # an update is not a fresh fit


def test_cli_estimate(workspace, dataset, capsys):
    code = main(["estimate", "tiny", "--model", "ials", "--param", "factors=16"])
    out = capsys.readouterr().out
    assert code == 0 and "fit time" in out and "peak host memory" in out and "fits: yes" in out
    code = main(["estimate", "tiny", "--model", "ease", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["fits"] and payload["shape"]["n_items"] == dataset.n_items


def test_cli_estimate_refusal(workspace, dataset, capsys, little_memory):
    code = main(["estimate", "tiny", "--model", "ease"])
    out = capsys.readouterr().out
    assert code == 3 and "refused:" in out and "try:" in out


def test_scale_bench_table_on_a_tiny_shape(workspace):
    from recsys_core.bench_scale import format_row, run_scale_bench

    printed = []
    out = run_scale_bench(
        workspace,
        "tall",
        scale=0.0005,
        models=("ease",),
        max_fit_minutes=1e-9,
        on_row=lambda row: printed.append(format_row(row)),
    )
    stages = [row["stage"] for row in out["rows"]]
    assert stages[:4] == ["generate (cached)", "import CSV", "import Parquet", "load dataset"]
    assert {"split random", "split leave_last", "split temporal", "split users"} <= set(stages)
    ease = out["rows"][-1]
    assert ease["stage"] == "fit ease" and ease["note"].startswith("refused: estimated fit")
    assert len(printed) == len(stages) and out["data"]["interactions"] == 10_000
    assert (workspace.root / "synth" / "tall-x0.0005-s0" / "shape.json").exists()
