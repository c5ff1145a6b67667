"""Balance: the data's imbalance, what an option does to training, and sweeps of the options."""

from __future__ import annotations

import streamlit as st

import ui
import ui_access
import ui_demo
from recsys_core import imbalance, sweeps
from recsys_core.balance import NEG_SAMPLERS, RESAMPLERS, BalanceConfig, resampled_popularity
from recsys_core.config import config_from_dict
from recsys_core.jobs import api
from recsys_core.models import MODELS
from recsys_core.split import SPLITS
from recsys_core.viz import balance as vb
from recsys_core.viz.markdown import md

#: Grid values suggested when an option is picked (editable).
SUGGESTED = {
    "neg_alpha": "0,0.5,1",
    "ips_beta": "0,0.5",
    "pop_norm": "0,0.25,0.5",
    "n_negatives": "1,4",
    "focal_gamma": "0,2",
    "pos_weight": "1,4",
    "user_cap": "0,50",
    "resample": "none,upsample_tail,downsample_head",
    "resample_factor": "2,4",
    "head_share": "0.1,0.2",
    "neg_sampler": "uniform,popularity",
    "hard_pool": "10,50",
    "positive_threshold": "0,4",
}
#: Pages a sweep point can be opened in, and the run selectbox key each of them reads.
OPEN_IN = {
    "Compare": ("pages/compare.py", None),
    "Embeddings": ("pages/embeddings.py", "maps.run"),
    "Explain": ("pages/explain.py", "explain.run"),
}
KEY_GROUP = "balance.group"

st.title("Balance")
st.markdown(
    "Recommendation data is imbalanced twice: a user's positives are a tiny share of the "
    "catalogue, and a few head items hold most positives. Negative sampling, popularity "
    "reweighting and resampling trade accuracy for long-tail exposure: see what they do to the "
    "training data, sweep them, and pick a setting on the Pareto front."
)
ws = ui.workspace()
root = str(ws.root)
info = ui.active_dataset()
if info is None:
    st.stop()
st.caption(f"Dataset: **{md(ui.dataset_label(info))}** (change it in the sidebar).")


@st.cache_data(show_spinner="Profiling the imbalance…", max_entries=16)
def _profile(root: str, dataset_id: str, content_hash: str, head_share: float) -> dict:
    data = ui.load_dataset(root, dataset_id, content_hash)
    return imbalance.imbalance_profile(data, head_share)


@st.cache_data(show_spinner="Applying the option to the training data…", max_entries=32)
def _preview(root: str, dataset_id: str, content_hash: str, balance: dict) -> tuple:
    data = ui.load_dataset(root, dataset_id, content_hash)
    cfg = config_from_dict(BalanceConfig, balance)
    return resampled_popularity(data, cfg), imbalance.negative_buckets(data, cfg, n_draws=20_000)


@st.cache_data(show_spinner="Reading recommendations…", max_entries=16)
def _rec_buckets(root: str, run_ids: tuple[str, ...], names: tuple[str, ...]):  # noqa: ANN202
    return imbalance.recommendation_buckets(
        ws, list(run_ids), names=dict(zip(run_ids, names, strict=True))
    )


before, build, results = st.tabs(["Before training", "Sweep builder", "Sweep results"])

# ----- before training ----------------------------------------------------------------------------
with before:
    c1, c2, c3 = st.columns(3)
    # Each widget is named like the option it sets, so the sweep grid reads the same.
    label = vb.option_label
    sampler = c1.selectbox(
        label("neg_sampler"), NEG_SAMPLERS, index=1, key="balance.pre.sampler"
    )
    alpha = c1.slider(label("neg_alpha"), 0.0, 2.0, 1.0, 0.25, key="balance.pre.alpha")
    resample = c2.selectbox(label("resample"), RESAMPLERS, key="balance.pre.resample")
    factor = c2.slider(label("resample_factor"), 1.0, 10.0, 2.0, 0.5, key="balance.pre.factor")
    head_share = c3.slider(label("head_share"), 0.05, 0.5, 0.2, 0.05, key="balance.pre.head")
    cap = int(
        c3.number_input(f"{label('user_cap')}, 0 = none", 0, value=0, key="balance.pre.cap")
    )
    option = {
        "neg_sampler": sampler,
        "neg_alpha": alpha,
        "resample": resample,
        "resample_factor": factor,
        "head_share": head_share,
        "user_cap": cap,
    }
    with ui.guard("profiling the data", stop=True):
        profile = _profile(root, info.id, info.content_hash, head_share)
        curves, negatives = _preview(root, info.id, info.content_hash, option)
    m1, m2, m3 = st.columns(3)
    m1.metric("Interactions on head items", f"{profile['head_interaction_share']:.0%}")
    m2.metric("Gini of item popularity", f"{profile['gini']:.2f}")
    m3.metric("Density", f"{profile['density']:.3%}")
    f1, f2 = st.columns(2)
    f1.plotly_chart(vb.positives_per_user(profile["positives_per_user"]), key="balance.fig.ppu")
    f2.plotly_chart(
        vb.popularity_curve(curves, title="Popularity curve: data vs resampled"),
        key="balance.fig.curve",
    )
    st.plotly_chart(
        vb.bucket_shares(negatives, title="Where the negatives fall (sampled, before training)"),
        key="balance.fig.neg",
    )
    st.caption(
        "The chosen sampler is drawn on this dataset, no model needed; hard negatives depend on a "
        "trained model, so their uniform candidate pool is shown."
    )

# ----- sweep builder ------------------------------------------------------------------------------
with build:
    keys = sorted(MODELS, key=lambda k: (MODELS[k].family, k))
    usable = [k for k in keys if MODELS[k].honours_balance]
    model = st.selectbox(
        "Model",
        usable,
        index=usable.index("bpr") if "bpr" in usable else 0,
        format_func=lambda k: f"{MODELS[k].family} · {k}",
        key="balance.model",
    )
    support = sweeps.option_support(model)
    offered = [name for name, why in support.items() if why is None]
    chosen = st.multiselect(
        "Options to sweep (one or two)",
        offered,
        default=[o for o in ("neg_alpha", "ips_beta", "pop_norm") if o in offered][:2],
        max_selections=sweeps.MAX_OPTIONS,
        format_func=vb.option_label,
        key=f"balance.options.{model}",
    )
    with st.expander(
        f"Options {model} does not use ({sum(w is not None for w in support.values())})"
    ):
        st.markdown(
            "\n".join(
                f"- **{vb.option_label(n)}**: {md(w)}" for n, w in support.items() if w is not None
            )
        )
    grid_text = {
        name: st.text_input(
            f"{name} values (comma-separated)",
            SUGGESTED.get(name, ""),
            key=f"balance.grid.{model}.{name}",
        )
        for name in chosen
    }
    protocol = st.selectbox(
        "Split", list(SPLITS), format_func=lambda p: SPLITS[p].name, key="balance.split"
    )
    with st.expander("Model hyperparameters (shared by every point)"):
        config = ui.config_form(MODELS[model].Config, f"balance.cfg.{model}")
    n_runs = None
    if chosen:
        with ui.guard("checking the grid"):
            grid = sweeps.parse_grid([f"{n}={v}" for n, v in grid_text.items()])
            n_runs, seconds = sweeps.estimate_sweep(ws, info.id, model, grid)
            took = (
                f"about {ui.format_seconds(seconds)} on one worker slot, from this model's "
                "earlier runs here"
                if seconds is not None
                else f"time unknown until one {model} run has finished on this dataset"
            )
            st.caption(f"**{n_runs} runs** (the baseline included) · {took}.")
    if st.button(
        f"Queue sweep ({n_runs} runs)" if n_runs else "Queue sweep",
        type="primary",
        disabled=not chosen,
        key="balance.submit",
    ):
        ui_demo.refuse_writes("queueing a sweep")
        with ui.guard("queueing the sweep"):
            ui_access.require_analyst()
            grid = sweeps.parse_grid([f"{n}={v}" for n, v in grid_text.items()])
            group = sweeps.submit_sweep(
                ws, info.id, model, grid, split={"protocol": protocol}, config=config
            )
            st.session_state[KEY_GROUP] = group
            n = len(api.list_runs(ws, group=group))
            st.success(f"Queued sweep {md(group)} ({n} runs); follow it under Sweep results.")


# ----- sweep results ------------------------------------------------------------------------------
def _open_buttons(points, options: list[str]) -> None:  # noqa: ANN001
    done = points[points["status"] == "done"]
    if done.empty:
        return
    names = dict(zip(done["run_id"], vb.point_names(done, options), strict=True))
    c1, *cols = st.columns([3, 1, 1, 1])
    run_id = c1.selectbox(
        "Open a point's run", list(names), format_func=names.get, key="balance.open.run"
    )
    for col, (title, (page, key)) in zip(cols, OPEN_IN.items(), strict=True):
        if col.button(f"Open in {title}", key=f"balance.open.{title}"):
            st.session_state[ui.KEY_RUN] = run_id
            if key:
                st.session_state[key] = run_id
            st.switch_page(page)


def _results(group: str) -> None:
    with ui.guard("reading the sweep", stop=False):
        points = sweeps.collect_sweep(ws, group)
        options = [c for c in points.columns if c in BalanceConfig.__dataclass_fields__]
        n_done = int((points["status"] == "done").sum())
        active = int(points["status"].isin(["queued", "running", "cancelling"]).sum())
        st.progress(n_done / len(points), text=f"{n_done} of {len(points)} points done")
        if active:
            st.caption(f"{active} point(s) still queued or running; this view refreshes itself.")
        st.dataframe(points, hide_index=True, key="balance.table")
        if n_done == 0:
            return
        x = st.selectbox(
            "Long-tail axis",
            list(vb.TRADEOFF_AXES),
            format_func=vb.AXIS_TITLES.get,
            key="balance.x",
        )
        front = sweeps.pareto_front(points, x, "ndcg@10", maximise_x=vb.TRADEOFF_AXES[x])
        st.plotly_chart(vb.tradeoff(points, front, x=x, options=options), key="balance.fig.trade")
        done = points[points["status"] == "done"]
        if any(c.startswith("ndcg@10 ") for c in done.columns):
            st.plotly_chart(vb.segment_effects(done, options=options), key="balance.fig.seg")
        names = tuple(vb.point_names(done, options))
        st.plotly_chart(
            vb.bucket_shares(
                _rec_buckets(root, tuple(done["run_id"]), names),
                title="Popularity of the top-10 recommendations vs the data",
            ),
            key="balance.fig.recs",
        )
        _open_buttons(points, options)


with results:
    listing = sweeps.list_sweeps(ws, dataset=info.id)
    if listing.empty:
        st.info("No sweep on this dataset yet: queue one in the Sweep builder tab.")
    else:
        groups = list(listing["group"])
        wanted = st.session_state.get(KEY_GROUP)
        # counts of finished points live in the self-refreshing view below, not in this label
        labels = {
            g: f"{g} · {m} · {n} runs" for g, m, n in listing[["group", "model", "n_runs"]].values
        }
        group = st.selectbox(
            "Sweep",
            groups,
            index=groups.index(wanted) if wanted in groups else 0,
            format_func=labels.get,
            key="balance.results.group",
        )
        running = bool(api.list_runs(ws, group=group, status=["queued", "running", "cancelling"]))
        # poll only while points are pending, so a finished sweep does not rerun every 2 s
        st.fragment(run_every=2.0 if running else None)(_results)(group)
