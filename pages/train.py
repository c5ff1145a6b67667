"""Train: queue runs (dataset x split x models x hyperparameters) and watch them in the worker."""

from __future__ import annotations

import streamlit as st

import ui
from recsys_core.balance import DEPENDENT, BalanceConfig, check_honoured
from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.device import available_devices
from recsys_core.jobs import api
from recsys_core.jobs.spec import RunSpec
from recsys_core.models import MODELS
from recsys_core.split import SPLITS, SplitSpec
from recsys_core.viz.runs import training_curves

st.title("Train")
st.markdown(
    "Queue training runs: they run in a background worker, so you can leave this page or close "
    "the browser and come back to find them finished."
)
ws = ui.workspace()
info = ui.active_dataset()
if info is None:
    st.stop()
st.caption(f"Dataset: **{ui.dataset_label(info)}** (change it in the sidebar).")

# ----- split ----------------------------------------------------------------------------------
st.subheader("1 · Split")
protocols = list(SPLITS)
protocol = st.selectbox(
    "Protocol", protocols, format_func=lambda p: SPLITS[p].name, key="train.split.protocol"
)
st.caption(SPLITS[protocol].explanation)
with st.expander("Split options", expanded=False):
    split_values = ui.config_form(SplitSpec, "train.split", exclude=("protocol",))
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
        st.caption(f"{cls.family} model · {(cls.__doc__ or '').strip().splitlines()[0]}")
        configs[key] = ui.config_form(cls.Config, f"train.cfg.{key}")
        honours = set(cls.honours_balance)
        honoured = honours | {d for d, parent in DEPENDENT.items() if parent in honours}
        with st.expander("Balance options" + ("" if honoured else " (none honoured)")):
            st.caption(
                "Negative sampling, reweighting and resampling; only the options this model "
                "honours can be changed."
            )
            balances[key] = ui.config_form(
                BalanceConfig, f"train.bal.{key}", enabled=honoured, columns=2
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

if st.button(
    f"Queue {len(chosen)} run{'s' if len(chosen) != 1 else ''}",
    type="primary",
    disabled=not chosen,
    key="train.submit",
):
    with ui.guard("queueing runs"):
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


# ----- runs panel (polls the catalog; survives reloads because all state is on disk) ----------
@st.fragment(run_every=2)
def runs_panel(dataset_id: str) -> None:
    with ui.guard("reading runs"):
        records = api.list_runs(ws, dataset=dataset_id)
        active = [r for r in records if r.is_active]
        finished = [r for r in records if not r.is_active]
        st.subheader(f"Runs · {len(active)} active, {len(finished)} finished")
        for record in active:
            with st.container(border=True):
                head, button = st.columns([5, 1])
                head.markdown(
                    f"{ui.STATUS_ICONS.get(record.status, '')} **{record.spec.model}** "
                    f"`{record.id}` · {record.status} · {record.device_used or record.spec.device}"
                )
                head.progress(
                    min(max(float(record.progress or 0.0), 0.0), 1.0),
                    text=f"{100 * (record.progress or 0):.0f}% · ETA "
                    f"{ui.format_seconds(record.eta_seconds)}",
                )
                if record.status != "cancelling" and button.button(
                    "Cancel", key=f"train.cancel.{record.id}"
                ):
                    api.cancel(ws, record.id)
                    st.rerun(scope="fragment")
                events = api.events(ws, record.id)
                if events:
                    st.plotly_chart(
                        training_curves(events), key=f"train.curves.{record.id}", width="stretch"
                    )
        if not finished:
            if not active:
                st.caption("No runs on this dataset yet.")
            return
        st.dataframe(ui.runs_frame(finished), hide_index=True, width="stretch")
        by_id = {r.id: r for r in finished}
        pick = st.selectbox(
            "Run details",
            list(by_id),
            format_func=lambda i: f"{by_id[i].spec.model} · {i} · {by_id[i].status}",
            key="train.details",
        )
        record = by_id[pick]
        st.caption(
            f"Fit {ui.format_seconds(record.fit_seconds)} on {record.device_used or '–'}; "
            f"split {record.spec.split.get('protocol', 'default')}, seed {record.spec.seed}."
        )
        if record.status in ("failed", "interrupted", "cancelled"):
            if record.error:
                st.error(f"{record.status}: {record.error}")
            if record.log_tail:
                with st.expander("Log tail", expanded=record.status == "failed"):
                    st.code(record.log_tail, language=None)
            if st.button("Retry", key=f"train.retry.{record.id}"):
                new_id = api.retry(ws, record.id)
                st.session_state[ui.KEY_RUN] = new_id
                st.rerun(scope="fragment")
        events = api.events(ws, record.id)
        if events:
            st.plotly_chart(training_curves(events), key="train.curves.details", width="stretch")


runs_panel(info.id)
