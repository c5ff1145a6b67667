"""Train: queue runs (dataset x split x models x hyperparameters) and watch them in the worker."""

from __future__ import annotations

import streamlit as st

import ui
import ui_access
import ui_demo
from recsys_core.balance import DEPENDENT, BalanceConfig, check_honoured
from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.config import describe as describe_config
from recsys_core.device import available_devices
from recsys_core.estimate import estimate_choices, estimate_frame
from recsys_core.jobs import api
from recsys_core.jobs.spec import ACTIVE, TERMINAL, RunSpec
from recsys_core.models import MODELS
from recsys_core.report import run_report
from recsys_core.split import PROTOCOL_FIELDS, SPLITS, SplitSpec
from recsys_core.viz.balance import OPTION_NAMES, option_label
from recsys_core.viz.markdown import md
from recsys_core.viz.runs import has_curves, training_curves

BALANCE_LABELS = {name: option_label(name) for name in OPTION_NAMES}

st.title("Train")
st.markdown(
    "Queue training runs: they run in a background worker, so you can leave this page or close "
    "the browser and come back to find them finished."
)
ws = ui.workspace()
info = ui.active_dataset()
if info is None:
    st.stop()
st.caption(f"Dataset: **{md(ui.dataset_label(info))}** (change it in the sidebar).")

# ----- split ----------------------------------------------------------------------------------
st.subheader("1 · Split")
protocols = list(SPLITS)
with ui.guard("reading the dataset"):
    data = ui.load_dataset(str(ws.root), info.id, info.content_hash)
    # A dataset that comes with its own train/valid/test column is meant to be split by it.
    if data.labels is not None and st.session_state.get("train.split.for") != info.id:
        st.session_state["train.split.for"] = info.id
        st.session_state["train.split.protocol"] = "predefined"
protocol = st.selectbox(
    "Protocol", protocols, format_func=lambda p: SPLITS[p].name, key="train.split.protocol"
)
st.caption(SPLITS[protocol].explanation)
shown = PROTOCOL_FIELDS.get(protocol, ())
with st.expander("Split options", expanded=False):
    # Only the fields this protocol reads: a cutoff under "predefined" would do nothing.
    split_values = ui.config_form(
        SplitSpec,
        "train.split",
        exclude=tuple(f.name for f in describe_config(SplitSpec) if f.name not in shown),
    )
split_values["protocol"] = protocol

# ----- models ---------------------------------------------------------------------------------
st.subheader("2 · Models")
keys = sorted(MODELS, key=lambda k: (MODELS[k].family, k))
preferred = [k for k in ("ease", "itemknn") if k in MODELS] or keys[:1]
chosen = st.multiselect(
    "Models",
    keys,
    default=preferred,
    format_func=lambda k: f"{MODELS[k].family} · {k}",
    key="train.models",
    help="Pick one or several; each becomes its own run with the same split and seed.",
)
configs: dict[str, dict] = {}
balances: dict[str, dict] = {}
for key, tab in zip(chosen, st.tabs(chosen) if chosen else [], strict=True):
    cls = MODELS[key]
    with tab:
        st.caption(f"{cls.family} model · {ui.model_summary(cls)}")
        configs[key] = ui.config_form(cls.Config, f"train.cfg.{key}")
        honours = set(cls.honours_balance)
        honoured = honours | {d for d, parent in DEPENDENT.items() if parent in honours}
        with st.expander("Balance options" + ("" if honoured else " (none honoured)")):
            st.caption(
                "Negative sampling, reweighting and resampling; only the options this model "
                "honours can be changed."
            )
            balances[key] = ui.config_form(
                BalanceConfig,
                f"train.bal.{key}",
                enabled=honoured,
                columns=2,
                labels=BALANCE_LABELS,  # the same names as on the Balance page
            )

# ----- runtime --------------------------------------------------------------------------------
st.subheader("3 · Run")
found = available_devices()
c1, c2, c3 = st.columns(3)
device = c1.selectbox(
    "Device",
    ["auto", *found],
    key="train.device",
    help="auto picks the best device the worker finds.",
)
c1.caption(f"Found here: {', '.join(found)} (auto → {found[0]})")
seed = int(c2.number_input("Seed", min_value=0, value=0, step=1, key="train.seed"))
label = c3.text_input("Label (optional)", key="train.label", placeholder="e.g. baseline sweep")

if chosen:
    st.markdown("**Estimated cost** (from the dataset's sizes, the split and the device)")
    with ui.guard("estimating the cost"):
        sizes = (info.n_users, info.n_items, info.n_interactions)
        estimates = estimate_choices(sizes, split_values, configs, device)
        st.dataframe(estimate_frame(estimates), hide_index=True)
        st.caption(
            "Formulas per model calibrated on a 2-core CPU (recsys_core/estimate_models.py); "
            "a run that would not fit in the memory free now is refused before it is queued."
        )
        for est in estimates:
            if not est.fits:
                st.error(f"{est.model} will be refused: {est.reason}. Try: {est.suggestion}.")

if st.button(
    f"Queue {len(chosen)} run{'s' if len(chosen) != 1 else ''}",
    type="primary",
    disabled=not chosen,
    key="train.submit",
):
    ui_demo.refuse_writes("queueing runs")
    with ui.guard("queueing runs"):
        ui_access.require_analyst()
        # Validate everything first so a bad value queues nothing (all or nothing).
        split_dict = config_to_dict(config_from_dict(SplitSpec, split_values))
        specs = []
        for key in chosen:
            cls = MODELS[key]
            config = config_from_dict(cls.Config, configs[key])
            balance = config_from_dict(BalanceConfig, balances[key])
            check_honoured(key, cls.honours_balance, balance)
            specs.append(
                RunSpec(
                    dataset=info.id,
                    model=key,
                    split=split_dict,
                    config=config_to_dict(config),
                    balance={
                        k: v for k, v in config_to_dict(balance).items() if k in balances[key]
                    },
                    device=device,
                    seed=seed,
                    label=label or None,
                )
            )
        ids = [api.submit(ws, spec) for spec in specs]
        st.session_state[ui.KEY_RUN] = ids[-1]
        st.success(f"Queued {len(ids)} run(s): {', '.join(ids)}")


# ----- runs panel (reads the catalog; survives reloads because all state is on disk) ----------
def _eta_text(record, last: dict) -> str:  # noqa: ANN001 - a RunRecord, its last event
    """``"35% · ETA 4 min 10 s (up to 3 h 48 min) · early stop expected near epoch 31"``."""
    text = f"{100 * (record.progress or 0):.0f}% · ETA {ui.format_seconds(record.eta_seconds)}"
    metrics = {**last, **(last.get("metrics") or {})}  # stored events are flat
    high = metrics.get("eta_high")
    if high is not None and record.eta_seconds is not None and high > record.eta_seconds + 1:
        text += f" (up to {ui.format_seconds(high)})"
    if metrics.get("stop_epoch") is not None and metrics["stop_epoch"] < metrics.get(
        "epochs_total", float("inf")
    ):
        text += (
            f" · early stop expected near epoch {metrics['stop_epoch']:.0f}"
            f" (earliest {metrics['stop_epoch_min']:.0f})"
        )
    return text


def _active_card(record) -> None:  # noqa: ANN001 - a RunRecord
    with st.container(border=True):
        head, button = st.columns([5, 1])
        head.markdown(
            f"{ui.STATUS_ICONS.get(record.status, '')} **{record.spec.model}** "
            f"`{record.id}` · {record.status} · {record.device_used or record.spec.device}"
        )
        events = api.events(ws, record.id) if record.status != "queued" else []
        head.progress(
            min(max(float(record.progress or 0.0), 0.0), 1.0),
            text=_eta_text(record, events[-1] if events else {}),
        )
        if record.status != "cancelling" and button.button(
            "Cancel", key=f"train.cancel.{record.id}"
        ):
            ui_demo.refuse_writes("cancelling a run")
            api.cancel(ws, record.id)
            st.rerun()
        if has_curves(events):
            st.plotly_chart(
                training_curves(events), key=f"train.curves.{record.id}", width="stretch"
            )


def active_runs(dataset_id: str) -> None:
    """The live part of the page: one card per queued or running run (a fragment)."""
    with ui.guard("reading runs"):
        active = api.list_runs(ws, dataset=dataset_id, status=ACTIVE)
        st.subheader(f"Active runs · {len(active)}")
        for record in active:
            _active_card(record)
        if not active:
            st.caption("Nothing queued or running on this dataset.")
        elsewhere = len(api.list_runs(ws, status=ACTIVE)) - len(active)
        if elsewhere:
            st.caption(f"{elsewhere} more active on other datasets (pick one in the sidebar).")
        if _finished_count(dataset_id) != st.session_state.get("train.finished_drawn"):
            # A run ended since the full run drew the finished list: redraw it. This does not
            # rely on seeing the active set change, which a tick can miss when the last run
            # ends between the full run's query and the fragment's.
            st.rerun()
        ui.poll_seen(
            "train.active",
            tuple((r.id, r.status, round(float(r.progress or 0), 3)) for r in active),
            active=bool(active),
        )


def _finished_count(dataset_id: str) -> int:
    return len(api.list_runs(ws, dataset=dataset_id, status=TERMINAL))


def finished_runs(dataset_id: str) -> None:
    """Finished runs and one run's details (redrawn when a run finishes, not polled)."""
    with ui.guard("reading runs"):
        finished = api.list_runs(ws, dataset=dataset_id, status=TERMINAL)
        st.subheader(f"Finished runs · {len(finished)}")
        if not finished:
            st.caption("No finished run on this dataset yet.")
            return
        st.dataframe(ui.runs_frame(finished), hide_index=True, width="stretch")
        by_id = {r.id: r for r in finished}
        ui.restore_from_url("train.details", ui.URL_RUN, by_id)
        pick = st.selectbox(
            "Run details",
            list(by_id),
            format_func=lambda i: f"{by_id[i].spec.model} · {i} · {by_id[i].status}",
            key="train.details",
        )
        ui.set_url(**{ui.URL_RUN: pick})
        record = by_id[pick]
        st.caption(
            f"Fit {ui.format_seconds(record.fit_seconds)} on {record.device_used or '–'}; "
            f"split {record.spec.split.get('protocol', 'default')}, seed {record.spec.seed}."
        )
        if record.status == "cancelled":
            # A deliberate stop is not a failure: say so calmly.
            detail = f" ({md(record.error)})" if record.error else ""
            st.info(f"Cancelled at your request{detail}.", icon=":material/block:")
        elif record.status in ("failed", "interrupted") and record.error:
            st.error(f"{record.status}: {md(record.error)}")
        if record.status in ("failed", "interrupted", "cancelled"):
            if record.log_tail:
                with st.expander("Log tail", expanded=record.status == "failed"):
                    st.code(record.log_tail, language=None)
            if st.button("Retry", key=f"train.retry.{record.id}"):
                ui_demo.refuse_writes("retrying a run")
                new_id = api.retry(ws, record.id)
                st.session_state[ui.KEY_RUN] = new_id
                st.rerun()
        events = api.events(ws, record.id)
        if has_curves(events):
            st.plotly_chart(training_curves(events), key="train.curves.details", width="stretch")
        else:
            st.caption(
                f"{record.spec.model} has no training curve: it fits in one step, not in epochs."
            )
        if record.status == "done":
            st.download_button(
                "Run report (HTML, opens offline)", lambda: run_report(ws, record.id).html(),
                f"run-{record.id}.html", mime="text/html", key=f"train.report.{record.id}",
                icon=":material/download:",
            )  # fmt: skip


# Only the active runs refresh, and only while there are some: every 2 s while they change,
# slower while they do not, not at all when none is active (an idle tab costs nothing).
with ui.guard("reading runs"):
    any_active = bool(api.list_runs(ws, dataset=info.id, status=ACTIVE, limit=1))
    st.session_state["train.finished_drawn"] = _finished_count(info.id)
    st.fragment(run_every=ui.poll_interval("train.active", any_active))(active_runs)(info.id)
finished_runs(info.id)
