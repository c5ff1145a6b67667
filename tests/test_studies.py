"""Optuna studies: search spaces from the config declarations, trials as ordinary runs chosen by
validation, storage that survives and extends, pruning on the per-epoch validation curve.

Trials execute in this process (``api.run_inline``, in threads where a trial must be watched
while it runs) so the tests need no worker processes; the worker and Ray paths are covered by
tests/test_ray_executor.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from recsys_core.config import param, validate
from recsys_core.models.popular import MostPopular

optuna = pytest.importorskip("optuna")


@pytest.fixture()
def tiny(workspace):
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames

    inter, items, users = make_frames(
        SyntheticConfig(n_users=80, n_items=50, n_clusters=4, mean_history=10)
    )
    info = import_frames(workspace, inter, name="tiny", source="synthetic", items=items)
    return workspace, info


def inline(ws, *, threaded: bool = False):  # noqa: ANN001, ANN202
    """A ``tick`` that executes every queued run here (in a thread each when ``threaded``)."""
    from recsys_core.jobs import api

    started: set[str] = set()
    threads: list[threading.Thread] = []

    def tick() -> None:
        for record in api.list_runs(ws, status="queued"):
            if record.id in started:
                continue
            started.add(record.id)
            if threaded:
                thread = threading.Thread(target=api.run_inline, args=(ws, record.id))
                thread.start()
                threads.append(thread)
            else:
                api.run_inline(ws, record.id, device="cpu")

    tick.threads = threads  # type: ignore[attr-defined]
    return tick


# ----- search spaces -------------------------------------------------------------------------
def test_space_comes_from_the_declarations_and_can_be_narrowed_or_fixed():
    from recsys_core.errors import ConfigError
    from recsys_core.studies import default_space, parse_space, space_frame, space_from_frame

    space = default_space("ials")
    assert {"factors", "alpha", "l2"} <= set(space)
    assert space["l2"].log and space["alpha"].log and space["factors"].integer
    assert "solver" not in space and "init_std" not in space  # no declared search range

    narrowed, fixed = parse_space("ials", ["l2=1:100", "factors=32", "solver=cg|cholesky"])
    assert (narrowed["l2"].low, narrowed["l2"].high, narrowed["l2"].log) == (1.0, 100.0, True)
    assert "factors" not in narrowed and fixed == {"factors": 32}
    assert narrowed["solver"].choices == ("cg", "cholesky")
    linear, _ = parse_space("ease", ["l2=10:20:lin"])
    assert not linear["l2"].log
    assert linear["l2"].grid(3) == [10.0, 15.0, 20.0]

    # the Tune page's editor holds low/high as float columns: an int field's 8.0 reads as 8
    edited = space_frame("ials").astype({"low": float, "high": float})
    from_page, _ = space_from_frame("ials", edited)
    factors = from_page["factors"]
    assert factors.integer and (factors.low, factors.high) == (8, 256)

    with pytest.raises(ConfigError, match="no field 'lambda'"):
        parse_space("ease", ["lambda=1:2"])
    with pytest.raises(ConfigError, match="log scale needs lo > 0"):
        parse_space("ials", ["l2=0:10:log"])
    with pytest.raises(ConfigError, match="maximum"):
        parse_space("itemknn", ["bm25_b=0:2"])
    with pytest.raises(ConfigError, match="nothing to search"):
        parse_space("ease", ["l2=100"])


# ----- a study end to end --------------------------------------------------------------------
def test_trials_are_grouped_runs_chosen_by_validation_and_the_study_extends(tiny):
    from recsys_core.jobs import api
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.studies import (
        StudySpec,
        compare_with_defaults,
        keep_best,
        list_studies,
        parse_space,
        run_study,
        trials_frame,
    )

    ws, info = tiny
    space, fixed = parse_space("ease", ["l2=1:2000:log"])
    spec = StudySpec(
        name="ease-study",
        dataset=info.id,
        model="ease",
        space=space,
        fixed=fixed,
        trials=3,
        sampler="random",
        device="cpu",
    )
    summary = run_study(ws, spec, tick=inline(ws), poll=0.01)
    assert summary["trials"] == {"complete": 3}
    runs = api.list_runs(ws, group="study:ease-study")
    assert len(runs) == 4 and {r.status for r in runs} == {"done"}  # 3 trials + defaults
    assert sorted(r.label for r in runs) == ["defaults", "trial 0", "trial 1", "trial 2"]

    frame = trials_frame(ws, "ease-study")
    for _, row in frame.iterrows():
        metrics = RunArtifacts(ws, row["run"]).metrics()
        # the value Optuna was told is the validation metric, never the test one
        assert row["valid ndcg@10"] == pytest.approx(metrics["validation"]["ndcg@10"])
        assert row["valid ndcg@10"] != pytest.approx(metrics["aggregate"]["ndcg@10"])
        assert 1 <= RunArtifacts(ws, row["run"]).spec().config["l2"] <= 2000
    best = summary["best"]
    assert best["valid ndcg@10"] == frame["valid ndcg@10"].max()
    assert set(best["test"]) >= {"ndcg@10", "recall@10"} and len(best["ci"]["ndcg@10"]) == 2
    assert summary["defaults"]["status"] == "done" and "test" in summary["defaults"]

    # the storage is a file in the workspace: the study is found again and extended
    assert list_studies(ws) == ["ease-study"]
    again = run_study(ws, spec.__class__(**{**spec.__dict__, "trials": 2}), tick=inline(ws))
    assert again["trials"] == {"complete": 5}
    tried = trials_frame(ws, "ease-study")["l2"]
    assert tried.nunique() == 5  # the extension drew new points, not the first trials' again
    assert len(api.list_runs(ws, group="study:ease-study")) == 6  # no second defaults run

    tests = compare_with_defaults(ws, "ease-study")
    assert "ndcg@10" in set(tests["metric"]) and tests["n"].iloc[0] > 10
    kept = keep_best(ws, "ease-study", "ease tuned")
    assert api.get_run(ws, kept).label == "ease tuned" and kept == again["best"]["run"]


# ----- the objective: any validation metric, never a test one -------------------------------
def test_objective_is_any_validation_metric_with_its_direction():
    from recsys_core.errors import ConfigError
    from recsys_core.studies import StudySpec, _run_spec, check_objective, parse_space

    assert check_objective("Recall@20") == ("recall@20", "maximize")
    assert check_objective("gini@10") == ("gini@10", "minimize")
    assert check_objective("coverage@10", "minimize") == ("coverage@10", "minimize")
    with pytest.raises(ConfigError, match="cut-offs are 5, 10, 20"):
        check_objective("ndcg@7")
    with pytest.raises(ConfigError, match="metrics are ndcg, recall"):
        check_objective("auc@10")

    space, _ = parse_space("ials", ["l2=1:100"])
    spec = StudySpec(name="s", dataset="d", model="ials", space=space, pruner="median")
    assert spec.prunes and spec.direction == "maximize"
    # iALS validates only after its last sweep unless asked: a pruned study's trials ask
    assert _run_spec(spec, {"l2": 5.0}, "trial 0").config == {"l2": 5.0, "eval_every": 1}
    assert "eval_every" not in _run_spec(spec, {}, "defaults", trial=False).config
    other = StudySpec(name="s", dataset="d", model="ials", space=space, objective="recall@20")
    assert not other.prunes and "pruning off" in other.pruning_note
    assert "eval_every" not in _run_spec(other, {"l2": 5.0}, "trial 0").config


def test_study_chooses_by_the_requested_validation_metric(tiny):
    from recsys_core.errors import ConfigError
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.studies import StudySpec, parse_space, run_study, trials_frame

    ws, info = tiny
    space, _ = parse_space("ease", ["l2=1:2000:log"])
    spec = StudySpec(
        name="recall-study",
        dataset=info.id,
        model="ease",
        space=space,
        trials=2,
        objective="recall@20",
        sampler="random",
        device="cpu",
    )
    summary = run_study(ws, spec, tick=inline(ws), poll=0.01)
    assert summary["trials"] == {"complete": 2} and "pruning off" in summary["pruning"]
    frame = trials_frame(ws, "recall-study")
    for _, row in frame.iterrows():
        metrics = RunArtifacts(ws, row["run"]).metrics()
        assert row["valid recall@20"] == pytest.approx(metrics["validation"]["recall@20"])
        assert row["valid recall@20"] != pytest.approx(metrics["aggregate"]["recall@20"])
        assert row["test recall@20"] == pytest.approx(metrics["aggregate"]["recall@20"])
    best = summary["best"]
    assert best["valid recall@20"] == frame["valid recall@20"].max()
    low, high = best["valid recall@20 ci"]  # validation CIs are stored like the test ones
    assert low <= best["valid recall@20"] <= high and low < high
    assert "recall@20" in summary["defaults"]["test"] and "recall@20" in summary["best"]["ci"]
    with pytest.raises(ConfigError, match="chooses by validation recall@20"):
        run_study(ws, StudySpec(**{**spec.__dict__, "objective": "ndcg@10"}), tick=inline(ws))


# ----- pruning on the per-epoch validation curve ---------------------------------------------
@dataclass(frozen=True)
class CurveConfig:
    quality: float = param(0.5, "final validation NDCG", low=0.0, high=1.0, search=(0.0, 1.0))
    epochs: int = param(30, "epochs", low=1)
    only_last: bool = param(False, "report validation at the last epoch only (like iALS)")

    def __post_init__(self) -> None:
        validate(self)


class Curve(MostPopular):
    """Reports a validation curve rising to ``quality`` over its epochs (the trainer's key)."""

    name = "test_curve"
    Config = CurveConfig

    def _fit(self, train, valid, progress) -> None:  # noqa: ANN001 - contract signature
        super()._fit(train, valid, lambda *_: None)
        cfg = self.config
        for epoch in range(1, cfg.epochs + 1):
            time.sleep(0.04)
            metrics = {"epoch": epoch, "epochs_total": cfg.epochs}
            last = cfg.only_last and epoch == cfg.epochs
            if last:
                time.sleep(0.6)  # past the event throttle: the report is stored at once ...
            if not cfg.only_last or last:
                metrics["valid_ndcg@10"] = cfg.quality * epoch / cfg.epochs
            progress(epoch, metrics)
            if last:
                time.sleep(1.0)  # ... while the run still works on (iALS: its evaluation)


@pytest.fixture()
def curve_model():
    from recsys_core.models import MODELS

    MODELS[Curve.name] = Curve
    yield
    MODELS.pop(Curve.name, None)


@pytest.mark.parametrize("only_last", [False, True], ids=["every-epoch", "last-epoch-only"])
def test_median_pruner_cancels_a_trial_whose_curve_lags(tiny, curve_model, only_last):
    from recsys_core.jobs import api
    from recsys_core.studies import StudySpec, parse_space, run_study, trials_frame

    ws, info = tiny
    # three good trials first (grid order is seeded), then poor ones below the running median
    space, fixed = parse_space(
        Curve.name, ["quality=0.9|0.8|0.85|0.1|0.05", f"only_last={only_last}"]
    )
    spec = StudySpec(
        name="pruned",
        fixed=fixed,
        dataset=info.id,
        model=Curve.name,
        space=space,
        trials=5,
        sampler="grid",
        pruner="median",
        device="cpu",
        seed=3,
    )
    tick = inline(ws, threaded=True)
    summary = run_study(ws, spec, tick=tick, poll=0.05)
    for thread in tick.threads:
        thread.join(timeout=60)
    frame = trials_frame(ws, "pruned")
    pruned = frame[frame["state"] == "pruned"]
    if only_last:  # a report at the last epoch is the curve's end: nothing left to save
        assert pruned.empty and summary["trials"] == {"complete": 5}, frame
        return
    assert len(pruned) >= 1, frame
    assert (pruned["quality"] < 0.5).all()
    for run_id in pruned["run"]:
        assert api.get_run(ws, run_id).status == "cancelled"  # its run was stopped
    assert summary["trials"]["complete"] + len(pruned) == 5


def test_missing_optuna_is_named_with_the_fix(monkeypatch, workspace):
    import builtins

    from recsys_core.errors import RecsysError
    from recsys_core.studies import import_optuna, optuna_available

    real_import = builtins.__import__

    def no_optuna(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("No module named 'optuna'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    assert not optuna_available()
    with pytest.raises(RecsysError, match="requirements-optional.txt"):
        import_optuna()


def test_cli_tune_show_prints_the_study(tiny, capsys):
    import json

    from recsys_core.cli.main import main
    from recsys_core.studies import StudySpec, parse_space, run_study

    ws, info = tiny
    space, _ = parse_space("ease", [])
    run_study(
        ws,
        StudySpec(name="cli", dataset=info.id, model="ease", space=space, trials=1, device="cpu"),
        tick=inline(ws),
        poll=0.01,
    )
    capsys.readouterr()
    assert main(["--workspace", str(ws.root), "tune", "--show", "cli", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trials"] == {"complete": 1} and out["best"]["params"]["l2"] > 0
    assert len(out["trial_table"]) == 1
    assert main(["--workspace", str(ws.root), "tune", "tiny"]) == 2  # --model missing
    assert "DATASET and --model are required" in capsys.readouterr().err
