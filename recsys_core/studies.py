"""Hyperparameter studies with Optuna: trials are ordinary runs, chosen by validation only.

A *study* = dataset + split + model + search space + budget (trials, seconds) + objective
(any metric the evaluator computes, on the validation part; default NDCG@10, with the metric's
own direction) + sampler (TPE, random, grid) + pruner (median, successive halving, none).
:func:`run_study` is the driver: it asks Optuna for parameters, queues each trial as a run
(group ``study:<name>``, so the run store, the Compare page and ``runs list`` see them like any
other run), lets the worker execute them (local or Ray, as many at once as its slots allow),
reports each running trial's per-epoch validation curve to the pruner (a pruned trial's run is
cancelled) and tells Optuna the finished run's validation metric.
The trainers' per-epoch curve is validation NDCG@10, so only a study with that objective
prunes (:attr:`StudySpec.prunes`); a model whose config has ``eval_every`` (iALS validates only
after its last sweep by default) is asked to validate every epoch in a pruned study's trials.
The test metrics of a trial are recorded beside it but never reach the sampler.

Optuna's storage is a journal file in the workspace (``studies/optuna.journal``): a study
survives restarts and a later :func:`run_study` with the same name adds trials to it; trials
whose runs were still executing when the driver stopped are picked up again.

Search spaces come from the models' config declarations (see :mod:`recsys_core.search_space`,
whose functions are re-exported here).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.errors import ConfigError
from recsys_core.objectives import (  # re-exported for the Tune page
    CURVE_KEY,
    CURVE_METRIC,
    DIRECTIONS,
    check_objective,
    objective_names,
)
from recsys_core.search_space import (  # re-exported: the studies API in one import
    Dimension,
    default_space,
    import_optuna,
    optuna_available,
    parse_space,
    space_frame,
    space_from_frame,
    tunable_models,
)
from recsys_core.workspace import Workspace

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
GROUP_PREFIX = "study:"
JOURNAL = "optuna.journal"
#: Epochs a trial runs before the pruner judges it: the first epochs predict the end poorly (on
#: the sample, iALS trials at valid NDCG@10 0.150 and 0.137 after one sweep ended at 0.020 and
#: 0.213, and judging from the first sweep pruned 10 of 20 trials).
WARMUP_EPOCHS = 5
#: The config field that sets how often a model validates while it trains (trainer, iALS).
EVAL_EVERY = "eval_every"


def study_figures(ws: Workspace, name: str) -> dict[str, Any]:
    """Optuna's plotly figures of the study: ``history``, ``importances``, ``parallel``,
    ``slice``; a figure that needs more finished trials is a str saying so instead."""
    import_optuna()
    from optuna import visualization as vis

    study, _ = load_study(ws, name)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    out: dict[str, Any] = {}
    if not complete:
        message = "no finished trial yet"
        return dict.fromkeys(("history", "importances", "parallel", "slice"), message)
    out["history"] = vis.plot_optimization_history(study)
    out["parallel"] = vis.plot_parallel_coordinate(study)
    out["slice"] = vis.plot_slice(study)
    if len(complete) < 3:
        out["importances"] = "parameter importances need at least 3 finished trials"
    else:
        try:
            out["importances"] = vis.plot_param_importances(study)
        except (RuntimeError, ValueError) as error:  # e.g. every trial had the same value
            out["importances"] = f"parameter importances unavailable: {error}"
    return out


# ----- the study ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study (JSON round-trip; stored on the Optuna study)."""

    name: str
    dataset: str
    model: str
    space: dict[str, Dimension]
    fixed: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    trials: int = 20
    timeout: float | None = None
    objective: str = CURVE_METRIC
    #: "maximize" or "minimize"; None = the objective's own direction
    direction: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    parallel: int = 1
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler: {self.sampler!r} unknown; choose one of {SAMPLERS}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"pruner: {self.pruner!r} unknown; choose one of {PRUNERS}")
        if self.trials < 1 or self.parallel < 1:
            raise ConfigError("trials and parallel must be at least 1")
        objective, direction = check_objective(self.objective, self.direction)
        object.__setattr__(self, "objective", objective)
        object.__setattr__(self, "direction", direction)

    @property
    def prunes(self) -> bool:
        """Whether the pruner acts: the per-epoch curve the trainers report must be the
        objective itself (validation NDCG@10), else no trial is pruned."""
        return self.pruner != "none" and self.objective == CURVE_METRIC

    @property
    def pruning_note(self) -> str:
        if self.pruner == "none":
            return "pruning off"
        if self.prunes:
            return f"{self.pruner} pruning on the per-epoch validation {CURVE_METRIC} curve"
        return (
            f"pruning off: the trainers report validation {CURVE_METRIC} per epoch, not "
            f"{self.objective}, so no trial is stopped early"
        )

    @property
    def group(self) -> str:
        return GROUP_PREFIX + self.name

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["space"] = {k: asdict(v) for k, v in self.space.items()}
        return json.loads(json.dumps(out))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudySpec:
        values = dict(values)
        space = {}
        for key, dim in values.pop("space").items():
            dim = dict(dim)
            if dim.get("choices") is not None:
                dim["choices"] = tuple(dim["choices"])
            space[key] = Dimension(**dim)
        return cls(space=space, **values)


def storage(ws: Workspace) -> Any:
    """Optuna's journal storage in ``<workspace>/studies/`` (file locks: several processes)."""
    optuna = import_optuna()
    from optuna.storages.journal import JournalFileBackend

    folder = ws.root / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / JOURNAL)))


def _sampler(spec: StudySpec, offset: int = 0) -> Any:
    """The study's sampler; ``offset`` (the trials a study already has) moves the seed, so an
    extended study does not draw its first trials' parameters again."""
    optuna = import_optuna()
    seed = spec.seed + offset
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        # The grid points are enqueued (see _enqueue_grid): Optuna's GridSampler stops the study
        # from inside tell(), which only works within study.optimize, not with ask and tell.
        return optuna.samplers.RandomSampler(seed=seed)
    # a third of the budget (3 to 10 trials) explores at random before TPE models the results
    startup = min(10, max(3, spec.trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def _pruner(spec: StudySpec) -> Any:
    optuna = import_optuna()
    if not spec.prunes:
        return optuna.pruners.NopPruner()
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=WARMUP_EPOCHS)
    if spec.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=WARMUP_EPOCHS)
    return optuna.pruners.NopPruner()


def open_study(ws: Workspace, spec: StudySpec) -> Any:
    """Create the study, or load it when one of that name exists (same model and dataset)."""
    optuna = import_optuna()
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage(ws),
        direction=spec.direction,
        sampler=_sampler(spec),
        pruner=_pruner(spec),
        load_if_exists=True,
    )
    stored = study.user_attrs.get("spec")
    if stored and (stored["model"], stored["dataset"]) != (spec.model, spec.dataset):
        raise ConfigError(
            f"study {spec.name!r} already exists for {stored['model']} on {stored['dataset']}; "
            "choose another name to tune something else"
        )
    if stored and stored.get("objective", CURVE_METRIC) != spec.objective:
        raise ConfigError(
            f"study {spec.name!r} chooses by validation {stored.get('objective', CURVE_METRIC)}"
            f"; choose another name to search for {spec.objective}"
        )
    existing = len(study.get_trials(deepcopy=False))
    if existing:  # extended: a fresh seed, or the random draws would repeat the first trials'
        study.sampler = _sampler(spec, offset=existing)
    study.set_user_attr("spec", spec.to_dict())
    return study


def load_study(ws: Workspace, name: str) -> tuple[Any, StudySpec]:
    """An existing study and its spec; NotFoundError-like ConfigError when there is none."""
    optuna = import_optuna()
    try:
        study = optuna.load_study(study_name=name, storage=storage(ws))
    except KeyError:
        raise ConfigError(
            f"no study named {name!r} in this workspace; known: {list_studies(ws)}"
        ) from None
    return study, StudySpec.from_dict(study.user_attrs["spec"])


def list_studies(ws: Workspace) -> list[str]:
    if not (ws.root / "studies" / JOURNAL).exists():
        return []
    optuna = import_optuna()
    return sorted(optuna.study.get_all_study_names(storage(ws)))


def _run_spec(spec: StudySpec, config: dict[str, Any], label: str, *, trial: bool = True) -> Any:
    from recsys_core.jobs.spec import RunSpec
    from recsys_core.models import get_model

    config = {**spec.fixed, **config}
    fields = getattr(get_model(spec.model).Config, "__dataclass_fields__", {})
    if trial and spec.prunes and EVAL_EVERY in fields and EVAL_EVERY not in config:
        config[EVAL_EVERY] = 1  # the pruner needs the curve at every epoch
    return RunSpec(
        dataset=spec.dataset,
        model=spec.model,
        split=dict(spec.split),
        config=config,
        device=spec.device,
        seed=spec.seed,
        group=spec.group,
        label=label,
    )


def _validation_value(ws: Workspace, run_id: str, objective: str) -> float | None:
    from recsys_core.jobs.artifacts import RunArtifacts

    validation = RunArtifacts(ws, run_id).metrics().get("validation") or {}
    value = validation.get(objective)
    return float(value) if value is not None and math.isfinite(value) else None


def _validation_ci(ws: Workspace, run_id: str, objective: str) -> list[float] | None:
    """The 95% CI of the run's validation objective (per-user metrics only; None for the
    beyond-accuracy ones and for runs from before validation CIs were stored)."""
    from recsys_core.jobs.artifacts import RunArtifacts

    return (RunArtifacts(ws, run_id).metrics().get("validation_ci") or {}).get(objective)


def _no_value(ws: Workspace, run_id: str, objective: str) -> str:
    """Why a finished run has no validation value to tell Optuna."""
    from recsys_core.jobs.artifacts import RunArtifacts

    if not RunArtifacts(ws, run_id).metrics().get("validation"):
        return "the split has no validation part to choose by"
    return (
        f"validation {objective} was not computed for this run (not finite, or diversity "
        "without item categories or embeddings)"
    )


def _test_metrics(ws: Workspace, run_id: str, objective: str) -> dict[str, Any]:
    """The run's test figures (reported beside a trial, never told to Optuna)."""
    from recsys_core.jobs.artifacts import RunArtifacts

    metrics = RunArtifacts(ws, run_id).metrics()
    keep = dict.fromkeys(("ndcg@10", "recall@10", "hit@10", "map@10", "mrr@10", objective))
    return {
        "test": {k: metrics["aggregate"].get(k) for k in keep if k in metrics["aggregate"]},
        "ci": {k: metrics["ci"].get(k) for k in keep if k in metrics.get("ci", {})},
    }


@dataclass
class _Pending:
    trial: Any
    reported: int = 0


def run_study(
    ws: Workspace,
    spec: StudySpec,
    *,
    tick: Callable[[], Any] | None = None,
    progress: Callable[[float, str], None] | None = None,
    poll: float = 0.5,
) -> dict[str, Any]:
    """Run ``spec.trials`` more trials of the study (created or extended); returns its summary.

    Parameters
    ----------
    tick : called every loop, e.g. an in-process worker's ``tick`` when no worker serves the
        workspace (the CLI); the Tune page's studies run inside the worker as a task instead.
    progress : ``progress(fraction, message)``; may raise ``Cancelled`` (a cancelled task):
        the study's executing runs are cancelled and their trials failed, then it re-raises.
    poll : seconds between looks at the runs.

    The budget is ``spec.trials`` new trials (a grid: at most its size) or ``spec.timeout``
    seconds, whichever ends first; trials executing at the timeout finish normally.
    """
    from recsys_core.errors import Cancelled
    from recsys_core.jobs import api

    optuna = import_optuna()
    TrialState = optuna.trial.TrialState
    study = open_study(ws, spec)
    distributions = {name: dim.distribution() for name, dim in spec.space.items()}
    if "defaults_run" not in study.user_attrs:
        # The model's defaults on the same split: the reference the best trial is tested against.
        defaults = _run_spec(spec, {}, "defaults", trial=False)
        study.set_user_attr("defaults_run", api.submit(ws, defaults))
    pending: dict[str, _Pending] = {}
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_id = frozen.user_attrs.get("run_id")
        if run_id:  # a driver stopped while this ran: follow its run again
            # Optuna has no public way to reopen a running trial; Trial(study, id) is what
            # study.ask itself returns.
            pending[run_id] = _Pending(optuna.trial.Trial(study, frozen._trial_id))
    budget = spec.trials
    if spec.sampler == "grid":
        budget = _enqueue_grid(study, spec)
    asked, told = 0, 0
    start = time.monotonic()
    try:
        while True:
            timed_out = spec.timeout is not None and time.monotonic() - start >= spec.timeout
            while len(pending) < spec.parallel and asked < budget and not timed_out:
                trial = study.ask(distributions)
                run_id = api.submit(ws, _run_spec(spec, trial.params, f"trial {trial.number}"))
                trial.set_user_attr("run_id", run_id)
                pending[run_id] = _Pending(trial)
                asked += 1
            for run_id, item in list(pending.items()):
                if _follow(ws, study, spec, run_id, item):
                    del pending[run_id]
                    told += 1
            if not pending and (asked >= budget or timed_out):
                break
            if progress is not None:
                progress(min(1.0, told / max(1, budget)), f"{told} of {budget} trials finished")
            if tick is not None:
                tick()
            time.sleep(poll)
    except (Cancelled, KeyboardInterrupt):
        for run_id, item in pending.items():
            api.cancel(ws, run_id)
            study.tell(item.trial, state=TrialState.FAIL)
        raise
    return summarise(ws, spec.name)


def _enqueue_grid(study: Any, spec: StudySpec) -> int:
    """Enqueue up to ``spec.trials`` grid points not tried yet (in a seeded random order, so a
    partial budget samples the whole grid); returns how many."""
    import itertools

    names = list(spec.space)
    points = list(itertools.product(*(spec.space[n].grid() for n in names)))
    tried = {tuple(t.params.get(n) for n in names) for t in study.get_trials(deepcopy=False)}
    fresh = [p for p in points if p not in tried]
    order = np.random.default_rng(spec.seed).permutation(len(fresh))
    chosen = [fresh[i] for i in order[: spec.trials]]
    for point in chosen:
        study.enqueue_trial(dict(zip(names, point, strict=True)))
    return len(chosen)


def _follow(ws: Workspace, study: Any, spec: StudySpec, run_id: str, item: _Pending) -> bool:
    """Advance one trial: report its validation curve, prune it, or tell its result.

    Returns True once the trial is told (finished, pruned or failed)."""
    import optuna

    from recsys_core.jobs import api

    TrialState = optuna.trial.TrialState
    record = api.get_run(ws, run_id)
    trial = item.trial
    if record.status in ("running", "cancelling") and not spec.prunes:
        return False
    if record.status in ("running", "cancelling"):
        curve = [e for e in api.events(ws, run_id) if e.get(CURVE_KEY) is not None]
        for event in curve[item.reported :]:
            step = int(event.get("epoch") or event["step"])
            trial.report(float(event[CURVE_KEY]), step)
        item.reported = len(curve)
        # A report at the last epoch is the end of the curve: the run is about to finish, so
        # stopping it would only throw away its evaluation (iALS reports only there).
        last = curve[-1] if curve else {}
        final = last.get("epochs_total") is not None and last.get("epoch") == last["epochs_total"]
        if curve and not final and record.status == "running" and trial.should_prune():
            api.cancel(ws, run_id)
            trial.set_user_attr("pruned_at_epoch", int(curve[-1].get("epoch") or 0))
            study.tell(trial, state=TrialState.PRUNED)
            return True
        return False
    if record.status == "queued":
        return False
    if record.status == "done":
        value = _validation_value(ws, run_id, spec.objective)
        if value is None:
            trial.set_user_attr("error", _no_value(ws, run_id, spec.objective))
            study.tell(trial, state=TrialState.FAIL)
            return True
        for key, val in _test_metrics(ws, run_id, spec.objective).items():
            trial.set_user_attr(key, val)
        trial.set_user_attr("fit_seconds", record.fit_seconds)
        study.tell(trial, value)
        return True
    trial.set_user_attr("error", f"run {record.status}: {record.error}")
    study.tell(trial, state=TrialState.FAIL)
    return True


# ----- results --------------------------------------------------------------------------------
def trials_frame(ws: Workspace, name: str) -> pd.DataFrame:
    """One row per trial: number, state, validation value, parameters, test NDCG@10, run id."""
    study, spec = load_study(ws, name)
    extra = spec.objective != "ndcg@10"
    rows = []
    for t in study.get_trials(deepcopy=False):
        test = t.user_attrs.get("test") or {}
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                f"valid {spec.objective}": t.value,
                **{k: t.params.get(k) for k in spec.space},
                "test ndcg@10": test.get("ndcg@10"),
                **({f"test {spec.objective}": test.get(spec.objective)} if extra else {}),
                "fit s": t.user_attrs.get("fit_seconds"),
                "run": t.user_attrs.get("run_id"),
                "error": t.user_attrs.get("error"),
            }
        )
    return pd.DataFrame(rows)


def summarise(ws: Workspace, name: str) -> dict[str, Any]:
    """The published record: best parameters with validation and test metrics and CIs, the
    defaults run's, and the trial counts; also stored on the study (``best``)."""
    from recsys_core.jobs import api

    study, spec = load_study(ws, name)
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    out: dict[str, Any] = {
        "study": name,
        "spec": spec.to_dict(),
        "trials": counts,
        "pruning": spec.pruning_note,
    }
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        out["best"] = {
            "trial": best.number,
            "run": best.user_attrs.get("run_id"),
            "params": {**spec.fixed, **best.params},
            f"valid {spec.objective}": best.value,
            f"valid {spec.objective} ci": _validation_ci(
                ws, best.user_attrs.get("run_id"), spec.objective
            ),
            "test": best.user_attrs.get("test"),
            "ci": best.user_attrs.get("ci"),
        }
    defaults = study.user_attrs.get("defaults_run")
    if defaults:
        record = api.get_run(ws, defaults)
        out["defaults"] = {"run": defaults, "status": record.status}
        if record.status == "done":
            out["defaults"][f"valid {spec.objective}"] = _validation_value(
                ws, defaults, spec.objective
            )
            out["defaults"][f"valid {spec.objective} ci"] = _validation_ci(
                ws, defaults, spec.objective
            )
            out["defaults"].update(_test_metrics(ws, defaults, spec.objective))
    if "best" in out:
        study.set_user_attr("best", json.loads(json.dumps(out["best"], default=str)))
    return out


def compare_with_defaults(ws: Workspace, name: str) -> pd.DataFrame:
    """Paired tests (per test user) of the best trial's run against the defaults run.

    Only reported after the choice was made on validation: the test set judges, never picks.
    """
    from recsys_core.jobs.artifacts import RunArtifacts
    from recsys_core.stats import paired_tests

    summary = summarise(ws, name)
    if "best" not in summary or summary.get("defaults", {}).get("status") != "done":
        raise ConfigError(
            f"study {name!r}: the comparison needs a finished best trial and defaults run; "
            "wait for the study to finish"
        )
    a = RunArtifacts(ws, summary["best"]["run"]).per_user()
    b = RunArtifacts(ws, summary["defaults"]["run"]).per_user()
    shared = [c for c in a.columns if c in b.columns and c != "user" and a[c].dtype.kind == "f"]
    both = a[shared].add_suffix(" best").join(b[shared].add_suffix(" defaults"), how="inner")
    rows = []
    for metric in shared:
        result = paired_tests(both[f"{metric} best"].to_numpy(), both[f"{metric} defaults"])
        rows.append({"metric": metric} | {k: v for k, v in result.items() if np.isscalar(v)})
    return pd.DataFrame(rows)


def keep_best(ws: Workspace, name: str, label: str) -> str:
    """Name the best trial's run ``label`` (kept like any run); returns its id."""
    summary = summarise(ws, name)
    if "best" not in summary:
        raise ConfigError(f"study {name!r} has no finished trial yet")
    run_id = summary["best"]["run"]
    label = label.strip() or f"{name} best"
    with ws.transaction() as conn:
        row = conn.execute("SELECT spec_json FROM runs WHERE id = ?", (run_id,)).fetchone()
        spec = json.loads(row[0])
        spec["label"] = label
        conn.execute(
            "UPDATE runs SET label = ?, spec_json = ? WHERE id = ?",
            (label, json.dumps(spec, sort_keys=True), run_id),
        )
    return run_id


# ----- as a background task (the Tune page) ----------------------------------------------------
def study_task(ws: Workspace, payload: dict[str, Any], progress: Callable[..., None]) -> dict:
    """``TASKS["study"]``: run the study in the worker (its trials use the worker's run slots)."""
    spec = StudySpec.from_dict(payload["spec"])
    summary = run_study(ws, spec, progress=progress)
    return json.loads(json.dumps(summary, default=str))


__all__ = [
    "CURVE_METRIC",
    "DIRECTIONS",
    "Dimension",
    "PRUNERS",
    "SAMPLERS",
    "StudySpec",
    "compare_with_defaults",
    "default_space",
    "import_optuna",
    "keep_best",
    "list_studies",
    "load_study",
    "check_objective",
    "objective_names",
    "open_study",
    "optuna_available",
    "parse_space",
    "run_study",
    "study_task",
    "summarise",
    "space_frame",
    "space_from_frame",
    "study_figures",
    "trials_frame",
    "tunable_models",
]
