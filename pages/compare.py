"""Compare: leaderboard with CIs, trade-offs, segments and paired tests of finished runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import ui
from recsys_core.jobs import api
from recsys_core.stats import paired_tests
from recsys_core.viz.runs import (
    leaderboard_bars,
    leaderboard_table,
    metric_columns,
    per_user_scatter,
    segment_bars,
    split_key,
    tradeoff_scatter,
    user_segment_frame,
)

st.title("📊 Compare")
st.markdown(
    "Rank finished runs on one dataset and split, with 95% confidence intervals, the accuracy "
    "versus long-tail trade-off, segments, and a paired significance test between two runs."
)
ws = ui.workspace()
root = str(ws.root)
info = ui.active_dataset()
if info is None:
    st.stop()

with ui.guard("reading runs", stop=True):
    done = api.list_runs(ws, dataset=info.id, status="done")
if not done:
    st.info("No finished runs on this dataset yet: queue some on the Train page.")
    st.stop()

# ----- one ranking per split: metrics on different test sets are not comparable ---------------
groups: dict[str, list] = {}
for record in done:
    groups.setdefault(split_key(record.spec.dataset, record.spec.split), []).append(record)


def _split_label(key: str) -> str:
    split = groups[key][0].spec.split or {}
    details = ", ".join(f"{k}={v}" for k, v in split.items() if k != "protocol")
    return f"{split.get('protocol', 'default split')} ({details}) · {len(groups[key])} runs"


group = st.selectbox(
    "Split",
    list(groups),
    format_func=_split_label,
    key="compare.split",
    help="Runs are ranked only against runs evaluated on exactly the same split.",
)
if len(groups) > 1:
    st.caption(
        f"{len(groups)} different splits exist for this dataset. Runs on different splits are "
        "never ranked together: their test users and items differ, so their metrics measure "
        "different things."
    )
records = groups[group]

with ui.guard("loading metrics", stop=True):
    entries = []
    for record in records:
        metrics = ui.run_metrics(root, record.id)
        entries.append(
            {
                "run": record.id,
                "model": record.spec.model,
                "label": record.spec.label or record.spec.model,
                "device": record.device_used,
                "fit_seconds": record.fit_seconds,
                "aggregate": metrics.get("aggregate", {}),
                "ci": metrics.get("ci", {}),
            }
        )
    table = leaderboard_table(entries)
    metrics_available = metric_columns(table)

models = sorted(table["model"].unique())
keep = st.multiselect("Models", models, default=models, key="compare.models")
table = table[table["model"].isin(keep)].reset_index(drop=True)
if table.empty:
    st.info("No run left after the model filter.")
    st.stop()

# ----- headline + leaderboard ----------------------------------------------------------------
default_metric = "ndcg@10" if "ndcg@10" in metrics_available else metrics_available[0]
metric = st.selectbox(
    "Metric",
    metrics_available,
    index=metrics_available.index(default_metric),
    key="compare.metric",
)
best = table.loc[table[metric].idxmax()]
c1, c2, c3 = st.columns(3)
c1.metric(f"Best {metric}", f"{best[metric]:.4f}", help=f"{best['label']} ({best['run']})")
c2.metric("Runs compared", len(table))
c3.metric("Fastest fit", ui.format_seconds(table["fit_s"].min()))
st.plotly_chart(leaderboard_bars(table, metric), key="compare.bars", width="stretch")
st.caption("Bars are the mean over test users; whiskers are 95% bootstrap confidence intervals.")

st.subheader("Leaderboard")
show_ci = st.toggle("Show CI bounds", value=False, key="compare.ci")
columns = [c for c in table.columns if show_ci or not c.endswith((" lo", " hi"))]
st.dataframe(
    table[columns].sort_values(metric, ascending=False),
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format="%.4f") for c in metrics_available}
    | {"fit_s": st.column_config.NumberColumn("fit (s)", format="%.1f")},
)
st.download_button(
    "Download CSV",
    table.to_csv(index=False).encode("utf-8"),
    file_name=f"leaderboard-{info.name}.csv",
    mime="text/csv",
    key="compare.csv",
)

# ----- accuracy vs long tail -----------------------------------------------------------------
st.subheader("Accuracy versus long tail")
tail_options = [
    m
    for m in metrics_available
    if m.split("@")[0] in ("tail_coverage", "coverage", "novelty", "avg_popularity", "diversity")
]
if tail_options:
    cx, cy = st.columns(2)
    x = cx.selectbox("Long-tail axis", tail_options, key="compare.x")
    y = cy.selectbox(
        "Accuracy axis",
        metrics_available,
        index=metrics_available.index(default_metric),
        key="compare.y",
    )
    st.plotly_chart(tradeoff_scatter(table, x, y), key="compare.tradeoff", width="stretch")
    st.caption(
        "Stars joined by the dashed line are the Pareto front: no other run is better on both "
        "axes at once."
    )

# ----- segments ------------------------------------------------------------------------------
st.subheader("Segments")
seg_metric = metric
with ui.guard("computing segments"):
    per_user = {
        row.label + " · " + row.run[:6]: ui.run_per_user(root, row.run)
        for row in table.itertuples()
    }
    run_models = {row.label + " · " + row.run[:6]: row.model for row in table.itertuples()}
    split = ui.run_split(root, table["run"].iloc[0])
    activity = np.asarray(split.train.user_activity)
    segments = user_segment_frame(per_user, run_models, activity)
    seg_metrics = sorted(segments["metric"].unique())
    seg_metric = st.selectbox(
        "Segment metric",
        seg_metrics,
        index=seg_metrics.index(metric) if metric in seg_metrics else 0,
        key="compare.seg",
    )
    st.plotly_chart(
        segment_bars(segments, seg_metric, title="by user activity (training interactions)"),
        key="compare.segments",
        width="stretch",
    )
    st.caption("Users are bucketed by quartile of training activity; runs side by side.")

# ----- two runs, paired ----------------------------------------------------------------------
st.subheader("Two runs, paired")
if len(table) < 2:
    st.info("Finish at least two runs on this split to test their difference.")
    st.stop()
labels = list(per_user)
ca, cb = st.columns(2)
run_a = ca.selectbox("Run A", labels, index=0, key="compare.a")
run_b = cb.selectbox("Run B", labels, index=1, key="compare.b")
if run_a == run_b:
    st.warning("Pick two different runs.")
    st.stop()
with ui.guard("paired tests"):
    a, b = per_user[run_a], per_user[run_b]
    shared = [c for c in a.columns if c in b.columns]
    both = a[shared].join(b[shared], how="inner", lsuffix=" A", rsuffix=" B")
    rows = []
    for name in shared:
        result = paired_tests(both[f"{name} A"].to_numpy(), both[f"{name} B"].to_numpy())
        rows.append({"metric": name} | {k: v for k, v in result.items() if np.isscalar(v)})
    tests = pd.DataFrame(rows)
    st.dataframe(tests, hide_index=True, width="stretch")
    st.caption(
        f"Paired over the {len(both):,} test users both runs scored: a small p-value (< 0.05) "
        "says the difference is unlikely to be chance; the effect size says whether it matters."
    )
    shown = seg_metric if seg_metric in shared else shared[0]
    st.plotly_chart(
        per_user_scatter(
            both[f"{shown} A"], both[f"{shown} B"], label_a=run_a, label_b=run_b, metric=shown
        ),
        key="compare.scatter",
        width="stretch",
    )
    st.caption("One dot per test user; above the diagonal, run B serves that user better.")
