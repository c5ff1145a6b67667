"""Compare: leaderboard with CIs, trade-offs, segments and paired tests of finished runs."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

import ui
from recsys_core.config import describe
from recsys_core.report import compare_report, run_entry
from recsys_core.split import SplitSpec
from recsys_core.stats import paired_table
from recsys_core.viz.export import png_unavailable
from recsys_core.viz.runs import (
    LOWER_IS_BETTER,
    leaderboard_bars,
    leaderboard_table,
    metric_base,
    metric_columns,
    per_user_scatter,
    segment_bars,
    segments_frame,
    split_key,
    tradeoff_scatter,
)

st.title("Compare")
st.markdown(
    "Rank finished runs on one dataset and split, with 95% confidence intervals, the accuracy "
    "versus long-tail trade-off, segments, and a paired significance test between two runs."
)
ws, info, done = ui.finished_runs_or_stop()
root = str(ws.root)

# ----- one ranking per split: metrics on different test sets are not comparable ---------------
groups: dict[str, list] = {}
for record in done:
    groups.setdefault(split_key(record.spec.dataset, record.spec.split), []).append(record)


DEFAULTS = {spec.name: spec.default for spec in describe(SplitSpec)}


def _split_label(key: str) -> str:
    # Name the protocol and only what differs from the defaults (plus the seed, always).
    split = groups[key][0].spec.split or {}
    details = ", ".join(
        f"{k}={v}"
        for k, v in split.items()
        if k != "protocol" and (k == "seed" or v != DEFAULTS.get(k))
    )
    return f"{split.get('protocol', 'default split')} ({details}) · {len(groups[key])} runs"


# The split with the most runs first, unless another page opened a run here (active run).
ordered = sorted(groups, key=lambda k: -len(groups[k]))
active_run = st.session_state.get(ui.KEY_RUN)
active_group = next((k for k in ordered if any(r.id == active_run for r in groups[k])), None)
group = st.selectbox(
    "Split",
    ordered,
    index=ordered.index(active_group) if active_group else 0,
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
# Widgets whose options depend on the split's runs are keyed by the split, so a choice made for
# one split never filters another split's runs.
suffix = hashlib.sha1(group.encode()).hexdigest()[:8]

with ui.guard("loading metrics", stop=True):
    entries = [run_entry(record, ui.run_metrics(root, record.id)) for record in records]
    table = leaderboard_table(entries)
    metrics_available = metric_columns(table)

models = sorted(table["model"].unique())
keep = st.multiselect("Models", models, default=models, key=f"compare.models.{suffix}")
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
lower_is_better = metric_base(metric) in LOWER_IS_BETTER  # e.g. average popularity
best = table.loc[table[metric].idxmin() if lower_is_better else table[metric].idxmax()]
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
    table[columns].sort_values(metric, ascending=lower_is_better),
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
st.download_button(
    "Report (HTML, opens offline)",
    lambda: compare_report(ws, list(table["run"]), metric=metric).html(),
    file_name=f"comparison-{info.name}.html", mime="text/html", key="compare.report",
    disabled=len(table) < 2, icon=":material/download:",
)  # fmt: skip
st.caption(
    "The report holds the leaderboard with CIs, the trade-off, segments and paired tests, with "
    "plotly.js inlined: it opens from disk with no network. "
    + (f"PNG figures are not available here: {missing}" if (missing := png_unavailable())
       else "PNG figures: `python -m recsys_core report --compare RUN RUN … --out FILE.html "
       "--png-dir DIR`.")
)  # fmt: skip

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

# ----- segments (computed at evaluation time, with CIs, stored in metrics.json) ---------------
st.subheader("Segments")
labels = {row.run: f"{row.label} · {row.run[-6:]}" for row in table.itertuples()}
segments = segments_frame(
    {labels[run]: ui.run_metrics(root, run).get("segments") or [] for run in table["run"]},
    {labels[row.run]: row.model for row in table.itertuples()},
)
seg_metric = metric
if segments.empty:
    st.caption("These runs stored no segment breakdown.")
else:
    seg_metrics = sorted(segments["metric"].unique())
    seg_metric = st.selectbox(
        "Segment metric",
        seg_metrics,
        index=seg_metrics.index(metric) if metric in seg_metrics else 0,
        key="compare.seg",
    )
    kinds = list(dict.fromkeys(segments["kind"]))
    for col, kind in zip(st.columns(len(kinds)), kinds, strict=True):
        col.plotly_chart(
            segment_bars(segments, seg_metric, kind), key=f"compare.seg.{kind}", width="stretch"
        )
    st.caption(
        "User activity: quartiles of training interactions per user. Item popularity: the "
        "ranking judged only on test items in the head, mid or tail. Whiskers: 95% CIs."
    )

# ----- two runs, paired ----------------------------------------------------------------------
st.subheader("Two runs, paired")
if len(table) < 2:
    st.info("Finish at least two runs on this split to test their difference.")
    st.stop()
per_user = {labels[run]: ui.run_per_user(root, run) for run in table["run"]}
names = list(per_user)
ca, cb = st.columns(2)
# The active run (e.g. a sweep point opened from the Balance page) is run A by default.
runs_here = list(table["run"])
index_a = runs_here.index(active_run) if active_run in runs_here else 0
run_a = ca.selectbox("Run A", names, index=index_a, key=f"compare.a.{suffix}")
run_b = cb.selectbox("Run B", names, index=1 if index_a != 1 else 0, key=f"compare.b.{suffix}")
if run_a == run_b:
    st.warning("Pick two different runs.")
    st.stop()
with ui.guard("paired tests"):
    a, b = per_user[run_a], per_user[run_b]
    shared = [c for c in a.columns if c in b.columns]
    both = a[shared].add_suffix(" A").join(b[shared].add_suffix(" B"), how="inner")
    tests = paired_table(a, b, alpha=0.05)
    n_sig = int(tests["significant"].sum())
    st.dataframe(
        tests.assign(significant=np.where(tests["significant"], "yes", "no")),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"Paired over the {len(both):,} test users both runs scored. With {len(tests)} metrics "
        "tested at once, some would look significant by chance, so p-values are Holm-corrected "
        f"for the {len(tests)} metrics (the _holm columns): **significant** means the corrected "
        f"paired t-test p is below 0.05 ({n_sig} of {len(tests)} metrics). The effect size "
        "(Cohen's d) says whether a difference matters."
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
