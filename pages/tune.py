"""Tune: Optuna studies whose trials are ordinary runs, chosen on validation, tested on test."""

from __future__ import annotations

import streamlit as st

import ui
import ui_access
import ui_demo
from recsys_core.errors import RecsysError
from recsys_core.jobs import api
from recsys_core.split import SPLITS, SplitSpec
from recsys_core.viz.markdown import md

st.title("Tune")
st.markdown(
    "Search a model's hyperparameters with Optuna: every trial is an ordinary run, chosen by a "
    "validation metric (NDCG@10 unless you pick another); the test set only judges the best one "
    "against the model's defaults."
)
try:
    from recsys_core import studies

    studies.import_optuna()
except RecsysError as error:
    st.error(f"Tuning is unavailable: {md(error)}", icon="🚫")
    st.stop()

ws = ui.workspace()
info = ui.active_dataset()
if info is None:
    st.stop()
st.caption(f"Dataset: **{md(ui.dataset_label(info))}** (change it in the sidebar).")

# ----- study builder ------------------------------------------------------------------------
with st.expander("New study", expanded=not studies.list_studies(ws)):
    models = studies.tunable_models()
    c1, c2 = st.columns(2)
    model = c1.selectbox(
        "Model", models, index=models.index("ials") if "ials" in models else 0, key="tune.model"
    )
    protocol = c2.selectbox(
        "Split", list(SPLITS), format_func=lambda p: SPLITS[p].name, key="tune.split"
    )
    with st.expander("Split options"):
        split = ui.config_form(SplitSpec, "tune.split", exclude=("protocol",))
    split["protocol"] = protocol
    st.caption(
        "Search space, from the model's declared ranges: tick a field to search it, edit its "
        "range or scale (log for rates and regularisers); unticked fields keep their default."
    )
    space_rows = st.data_editor(
        studies.space_frame(model),
        key=f"tune.space.{model}",
        hide_index=True,
        disabled=("field", "default", "help"),
        width="stretch",
    )
    c1, c2, c3, c4 = st.columns(4)
    trials = int(c1.number_input("Trials", 1, 500, 20, key="tune.trials"))
    timeout = float(c2.number_input("Time budget (s, 0 = none)", 0, 86_400, 0, key="tune.time"))
    parallel = int(c3.number_input("At once", 1, 64, 1, key="tune.parallel"))
    objective = c4.selectbox(
        "Objective (validation)",
        studies.objective_names(),
        key="tune.objective",
        help="Any metric the evaluator computes, measured on the split's validation part.",
    )
    c1, c2, c3, c4 = st.columns(4)
    natural = studies.check_objective(objective)[1]
    direction = c1.selectbox(  # keyed by objective: each starts at its own direction
        "Direction",
        studies.DIRECTIONS,
        index=studies.DIRECTIONS.index(natural),
        key=f"tune.dir.{objective}",
    )
    sampler = c2.selectbox("Sampler", studies.SAMPLERS, key="tune.sampler")
    pruner = c3.selectbox("Pruner", studies.PRUNERS, key="tune.pruner")
    name = c4.text_input("Study name", value=f"{info.name}-{model}", key=f"tune.name.{model}")
    st.caption(
        "A study of an existing name is extended. Trials run in the worker (local or Ray, see the "
        "sidebar); 'At once' is capped by the worker's CPU slots. The pruner stops trials whose "
        "per-epoch validation NDCG@10 curve lags (models trained epoch by epoch, and iALS)."
    )
    if pruner != "none" and objective != studies.CURVE_METRIC:
        st.warning(
            f"Pruning is off with this objective: the trainers report validation "
            f"{studies.CURVE_METRIC} per epoch, not {objective}, so every trial runs to the end.",
            icon="ℹ️",
        )
    if st.button("Start study", type="primary", key="tune.start"):
        ui_demo.refuse_writes("starting a study")
        with ui.guard("starting the study"):
            ui_access.require_analyst()
            space, fixed = studies.space_from_frame(model, space_rows)
            spec = studies.StudySpec(
                name=name.strip() or f"{info.name}-{model}",
                dataset=info.id,
                model=model,
                space=space,
                fixed=fixed,
                split=split,
                trials=trials,
                timeout=timeout or None,
                objective=objective,
                direction=direction,
                sampler=sampler,
                pruner=pruner,
                parallel=parallel,
            )
            task = api.submit_task(ws, "study", {"spec": spec.to_dict()})
            st.session_state["tune.study"] = spec.name
            st.session_state[f"tune.task.{spec.name}"] = task
            st.success(f"Study {md(spec.name)} queued (task {task}).")

# ----- one study --------------------------------------------------------------------------
names = studies.list_studies(ws)
if not names:
    st.info("No study yet: build one above and start it.")
    st.stop()
current = st.session_state.get("tune.study")
chosen = st.selectbox(
    "Study", names, index=names.index(current) if current in names else 0, key="tune.show"
)


@st.fragment(run_every=3)
def study_panel(name: str) -> None:
    with ui.guard("reading the study", stop=False):
        task_id = st.session_state.get(f"tune.task.{name}")
        task = api.get_task(ws, task_id) if task_id else None
        if task is not None and task.is_active:
            head, button = st.columns([5, 1])
            head.progress(float(task.progress or 0.0), text=task.message or task.status)
            if button.button("Stop", key=f"tune.stop.{name}"):
                ui_demo.refuse_writes("stopping a study")
                api.cancel_task(ws, task_id)
        elif task is not None and task.status == "failed":
            st.error(f"The study stopped: {md(task.error)}", icon="🚫")
        summary = studies.summarise(ws, name)
        spec = summary["spec"]
        objective = f"valid {spec['objective']}"
        best, defaults = summary.get("best") or {}, summary.get("defaults") or {}
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Trials", sum(summary["trials"].values()), help=str(summary["trials"]))
        best_valid, default_valid = best.get(objective), defaults.get(objective)
        delta = (
            f"{best_valid - default_valid:+.4f} vs defaults"
            if best_valid is not None and default_valid is not None
            else None
        )
        c2.metric(f"Best {objective}", _fmt(best_valid), delta=delta)
        c3.metric("Best: test NDCG@10", _fmt((best.get("test") or {}).get("ndcg@10")))
        c4.metric("Defaults: test NDCG@10", _fmt((defaults.get("test") or {}).get("ndcg@10")))
        if best:
            st.caption(f"Best parameters (trial {best['trial']}): {md(best['params'])}")
        st.caption(f"{spec.get('direction') or 'maximize'} {objective}; {md(summary['pruning'])}")
        figures = studies.study_figures(ws, name)
        tabs = st.tabs(["History", "Importances", "Parallel coordinates", "Slices"])
        captions = {
            "history": "Each dot a finished trial's validation metric; the line the best so far.",
            "importances": "How much of the metric's variation each parameter explains (fANOVA).",
            "parallel": "One line per trial through its parameters, coloured by the metric.",
            "slice": "The metric against each parameter separately; darker dots are later trials.",
        }
        for tab, key in zip(tabs, captions, strict=True):
            with tab:
                figure = figures[key]
                if isinstance(figure, str):
                    st.info(md(figure))
                else:
                    st.plotly_chart(figure, key=f"tune.fig.{key}", width="stretch")
                    st.caption(captions[key])
        st.dataframe(studies.trials_frame(ws, name), hide_index=True, width="stretch")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


study_panel(chosen)

# ----- best against defaults -----------------------------------------------------------------
st.subheader("Best trial against the defaults")
with ui.guard("comparing"):
    summary = studies.summarise(ws, chosen)
    if "best" not in summary or summary.get("defaults", {}).get("status") != "done":
        st.info("Available once the best trial and the defaults run have finished.")
        st.stop()
    tests = studies.compare_with_defaults(ws, chosen)
    st.dataframe(tests, hide_index=True, width="stretch")
    st.caption(
        "Paired over the test users (best − defaults): a small p-value says the gain is "
        "unlikely to be chance. The best trial was chosen on validation, so this test is fair."
    )
    c1, c2, c3 = st.columns([2, 1, 1])
    label = c1.text_input("Name for the best run", value=f"{chosen} best", key="tune.label")
    if c2.button("Keep as named run", key="tune.keep"):
        ui_demo.refuse_writes("naming a run")
        run_id = studies.keep_best(ws, chosen, label)
        st.success(f"Run {run_id} is now named {md(repr(label))}.")
    if c3.button("Open in Compare", key="tune.compare"):
        st.session_state[ui.KEY_RUN] = summary["best"]["run"]
        st.switch_page("pages/compare.py")
