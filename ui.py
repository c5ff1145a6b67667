"""Streamlit glue shared by the pages: workspace, session keys, cached loaders, pickers, errors.

Everything that computes lives in ``recsys_core``; this module only turns it into widgets and
caches read-only results keyed by ids (STYLE.md rules 1 and 11). ``recsys_core`` never imports
this module.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

import ui_demo
from recsys_core.config import FieldSpec, describe
from recsys_core.errors import RecsysError
from recsys_core.viz.markdown import md
from recsys_core.workspace import ENV_HOME, Workspace

# ----- session-state keys (one place, so pages agree on them) ------------------------------
KEY_WORKSPACE = "workspace_root"
KEY_DATASET = "active_dataset"  # dataset id
KEY_RUN = "active_run"  # run id
KEY_PENDING_DATASET = "pending_active_dataset"
#: Set to "0" to stop the app from starting a worker (tests drive the worker themselves).
ENV_AUTOSTART = "RECSYS_EXPLORER_AUTOSTART_WORKER"

#: Material Symbols (rendered by st.markdown, no emoji font needed) per run status.
STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/directions_run:",
    "cancelling": ":material/pending:",
    "done": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/block:",
    "interrupted": ":material/warning:",
}


def init_session() -> None:
    """Session defaults: the workspace from ``$RECSYS_EXPLORER_HOME`` (or ./workspace); the
    active dataset and run from the URL when a reload, bookmark or shared link carries them."""
    st.session_state.setdefault(KEY_WORKSPACE, str(Workspace.default().root))
    st.session_state.setdefault(KEY_DATASET, url_value(URL_DATASET))
    st.session_state.setdefault(KEY_RUN, url_value(URL_RUN))


# ----- the URL (st.query_params): what a reload, a bookmark or a shared link restores -------
URL_DATASET = "dataset"
URL_RUN = "run"
URL_USER = "user"
URL_ITEM = "item"


def url_value(name: str) -> str | None:
    """The URL's ``?name=`` value, or None."""
    value = st.query_params.get(name)
    return str(value) if value not in (None, "") else None


def set_url(**values: Any) -> None:
    """Write ``?name=value`` pairs into the URL (None removes one); unchanged ones are left
    alone so the browser history is not rewritten on every rerun."""
    for name, value in values.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)


def restore_from_url(
    key: str, name: str, options: Iterable[Any], to_text: Callable[[Any], str] = str
) -> None:
    """Preset widget ``key`` from ``?name=`` once per session, when the value is one of
    ``options`` (compared as ``to_text(option)``, e.g. an item index's raw id; the option
    itself is stored)."""
    wanted = url_value(name)
    if wanted is None or st.session_state.get(f"url.restored.{key}"):
        return
    st.session_state[f"url.restored.{key}"] = True
    for option in options:
        if to_text(option) == wanted:
            st.session_state[key] = option
            return


def workspace() -> Workspace:
    """The session's workspace, created and migrated on first use.

    Every page calls this first, so it also makes sure the router ran (see
    :func:`ensure_router`).
    """
    ensure_router()
    root = st.session_state.get(KEY_WORKSPACE) or os.environ.get(ENV_HOME) or "workspace"
    return _workspace(str(root))


def ensure_router() -> None:
    """Rerun through ``app.py`` when Streamlit ran a page file on its own.

    With a ``pages/`` folder next to ``app.py``, a fresh server starts in Streamlit's legacy
    folder mode: a first request for a deep link (``/train``, e.g. a tab restored after a
    server restart) runs ``pages/train.py`` alone, without the router's sidebar and session
    defaults, and keeps the legacy page list. ``st.navigation`` switches the process to router
    mode for good, but only once ``app.py`` runs; setting that switch here and rerunning gets
    the same page back, routed.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_resource(show_spinner=False)
def _workspace(root: str) -> Workspace:
    return Workspace(Path(root)).ensure()


# ----- errors ---------------------------------------------------------------------------------
def show_error(exc: BaseException, *, what: str = "") -> None:
    """Show ``exc`` as one ``st.error`` with cause and fix, never a traceback.

    Our own errors already carry "problem. Where: ... Fix: ..."; anything else is unexpected
    and gets a generic fix so the analyst still knows what to do next.
    """
    prefix = f"{what}: " if what else ""
    if isinstance(exc, (RecsysError, ValueError, FileNotFoundError, PermissionError)):
        st.error(f"{prefix}{md(exc)}", icon="🚫")
    else:
        st.error(
            f"{prefix}unexpected {type(exc).__name__}: {md(exc)}. Fix: check the input and try "
            "again; if it persists, run the same step from the CLI (python -m recsys_core) for "
            "details.",
            icon="🚫",
        )


@contextmanager
def guard(what: str = "", *, stop: bool = False) -> Iterator[None]:
    """Run a block and show any error in place with :func:`show_error`.

    Only ``Exception`` is caught: Streamlit's rerun/stop signals derive from ``BaseException``
    and pass through. With ``stop=True`` the page stops after the error (use it when what
    follows needs the block's result).
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        show_error(exc, what=what)
        if stop:
            st.stop()


# ----- cached loaders (keyed by workspace root and ids; results are read-only) ---------------
@st.cache_resource(show_spinner="Loading dataset…", max_entries=8)
def load_dataset(root: str, dataset_id: str, content_hash: str = "") -> Any:
    """The dataset's :class:`~recsys_core.data.interactions.Interactions` (read-only)."""
    from recsys_core.data.store import load_dataset as _load

    return _load(Workspace(Path(root)), dataset_id)


@st.cache_resource(show_spinner="Profiling…", max_entries=8)
def health_report(root: str, dataset_id: str, content_hash: str = "") -> Any:
    """:func:`recsys_core.data.health.profile` of a dataset with its import report (read-only)."""
    from recsys_core.data.health import profile
    from recsys_core.data.store import get_dataset

    report = get_dataset(Workspace(Path(root)), dataset_id).report
    return profile(load_dataset(root, dataset_id, content_hash), report)


@st.cache_data(show_spinner=False, max_entries=256)
def run_metrics(root: str, run_id: str) -> dict:
    """``metrics.json`` of a finished run."""
    from recsys_core.jobs.artifacts import RunArtifacts

    return RunArtifacts(Workspace(Path(root)), run_id).metrics()


@st.cache_data(show_spinner=False, max_entries=64)
def run_per_user(root: str, run_id: str) -> pd.DataFrame:
    """Per-user metrics of a finished run (index = user index; numeric metric columns only)."""
    from recsys_core.jobs.artifacts import RunArtifacts

    frame = RunArtifacts(Workspace(Path(root)), run_id).per_user()
    return frame[[c for c in frame.columns if "@" in str(c)]].astype("float64")


@st.cache_resource(show_spinner="Rebuilding the split…", max_entries=8)
def run_split(root: str, run_id: str) -> Any:
    """The :class:`~recsys_core.split.Split` a finished run was evaluated on (read-only)."""
    from recsys_core.jobs.artifacts import RunArtifacts

    return RunArtifacts(Workspace(Path(root)), run_id).split()


# ----- small widgets -------------------------------------------------------------------------
def list_datasets() -> list[Any]:
    """Datasets of the session's workspace, newest first (empty on error, error shown)."""
    from recsys_core.data.store import list_datasets as _list

    with guard("listing datasets"):
        return list(_list(workspace()))
    return []


def dataset_label(info: Any) -> str:
    """``"movielens-small · 610 users × 9,724 items"``."""
    return f"{info.name} · {info.n_users:,} users × {info.n_items:,} items"


def set_active_dataset(dataset_id: str) -> None:
    """Make ``dataset_id`` the active dataset from the next script run on.

    The sidebar picker owns ``KEY_DATASET``; a widget's key cannot be written after the widget
    is drawn in the same run, so the wish is parked and applied before the picker is drawn.
    """
    st.session_state[KEY_PENDING_DATASET] = dataset_id


def sidebar_dataset_picker() -> Any | None:
    """The one active-dataset selectbox (sidebar); returns the active ``DatasetInfo`` or None."""
    infos = list_datasets()
    if not infos:
        st.caption("No dataset yet: load the sample on Home or import one on Data.")
        st.session_state[KEY_DATASET] = None
        return None
    by_id = {info.id: info for info in infos}
    pending = st.session_state.pop(KEY_PENDING_DATASET, None)
    if pending in by_id:
        st.session_state[KEY_DATASET] = pending
    if st.session_state.get(KEY_DATASET) not in by_id:
        st.session_state[KEY_DATASET] = infos[0].id
    chosen = st.selectbox(
        "Active dataset",
        list(by_id),
        format_func=lambda i: dataset_label(by_id[i]),
        key=KEY_DATASET,
    )
    set_url(**{URL_DATASET: chosen})
    return by_id[chosen]


def active_dataset() -> Any | None:
    """The active ``DatasetInfo`` (chosen in the sidebar), or None with a hint shown."""
    infos = {info.id: info for info in list_datasets()}
    info = infos.get(st.session_state.get(KEY_DATASET) or "")
    if info is None:
        st.info("No dataset yet: load the MovieLens sample on the Home page or import one on Data.")
    return info


def finished_runs_or_stop() -> tuple[Any, Any, list[Any]]:
    """(workspace, active dataset, its finished runs) for pages that read runs; stops the page
    with a hint when there is no dataset or no finished run yet."""
    from recsys_core.jobs import api

    ws = workspace()
    info = active_dataset()
    if info is None:
        st.stop()
    with guard("reading runs", stop=True):
        runs = api.list_runs(ws, dataset=info.id, status="done")
    if not runs:
        st.info("No finished run on this dataset yet: train one on the Train page, then come back.")
        st.stop()
    return ws, info, runs


def datasets_frame(infos: list[Any]) -> pd.DataFrame:
    """Datasets as a table for ``st.dataframe``."""
    return pd.DataFrame(
        [
            {
                "name": i.name,
                "users": i.n_users,
                "items": i.n_items,
                "interactions": i.n_interactions,
                "source": i.source,
                "imported": pd.to_datetime(i.created_at, unit="s"),
                "id": i.id,
            }
            for i in infos
        ],
        columns=["name", "users", "items", "interactions", "source", "imported", "id"],
    )


#: The metric shown beside each finished run in the Train and Home tables.
TABLE_METRIC = "ndcg@10"


def runs_frame(records: list[Any], *, with_dataset: bool = False) -> pd.DataFrame:
    """Run records as a table: status, model, label, [dataset,] split, ndcg@10, created,
    device, fit time, and for an update run the run it updates with that run's fit time beside
    its own cost, id.

    The metric comes from each finished run's ``metrics.json`` (cached); it is empty for runs
    that did not finish. ``with_dataset`` adds the dataset's name (Home lists every dataset).
    """
    names: dict[str, str] = {}
    fit_of = {r.id: r.fit_seconds for r in records}
    if with_dataset:
        names = {info.id: info.name for info in list_datasets()}
    root = str(workspace().root)
    rows = []
    for r in records:
        created = r.created_at
        row = {
            "status": r.status,
            "model": r.spec.model,
            "label": r.spec.label or "",
            "dataset": names.get(r.spec.dataset, r.spec.dataset),
            "split": (r.spec.split or {}).get("protocol", ""),
            TABLE_METRIC: _run_metric(root, r.id) if r.status == "done" else None,
            "created": pd.to_datetime(created, unit="s") if created else pd.NaT,
            "device": getattr(r, "device_used", None) or r.spec.device,
            "fit": _short_seconds(r.fit_seconds),
            "update of": r.spec.parent or "",
            "parent fit": _short_seconds(fit_of.get(r.spec.parent)) if r.spec.parent else "",
            "id": r.id,
        }
        rows.append(row)
    columns = ["status", "model", "label", "dataset", "split", TABLE_METRIC]
    columns += ["created", "device", "fit", "update of", "parent fit", "id"]
    if not with_dataset:
        columns.remove("dataset")
    return pd.DataFrame(rows, columns=columns).astype({TABLE_METRIC: "float64"})


def _run_metric(root: str, run_id: str) -> float | None:
    try:
        value = run_metrics(root, run_id).get("aggregate", {}).get(TABLE_METRIC)
    except (OSError, ValueError, RecsysError):  # a run folder removed by hand: leave it empty
        return None
    return float(value) if value is not None else None


#: Phrases in model docstrings written for developers, and what the analyst reads instead.
_DEVELOPER_PHRASES = (
    (re.compile(r"\s*\((?:see )?(?:the )?module docstring\)"), ""),
    (re.compile(r"\s*on the shared trainer"), ", trained in epochs with early stopping"),
)


def model_summary(cls: type) -> str:
    """The first line of a model's docstring, minus pointers meant for developers (to the
    module's docstring, to the shared trainer)."""
    text = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    for pattern, replacement in _DEVELOPER_PHRASES:
        text = pattern.sub(replacement, text)
    return text


def _short_seconds(seconds: float | None) -> str:
    """Sub-10-second costs to the hundredth (an update of 0.05 s beside a 0.3 s fit)."""
    if seconds is None:
        return ""
    return f"{seconds:.2f} s" if seconds < 10 else format_seconds(seconds)


def format_seconds(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``; None -> ``"–"``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# ----- forms generated from config dataclasses -----------------------------------------------
def _int_bound(value: float | None, up: bool) -> int | None:
    if value is None:
        return None
    return int(math.ceil(value)) if up else int(math.floor(value))


def field_widget(
    spec: FieldSpec,
    key: str,
    *,
    default: Any = None,
    disabled: bool = False,
    label: str | None = None,
) -> Any:
    """One widget for one config field: selectbox for choices, checkbox for bool, bounded
    number_input for numbers, text for the rest. Returns the raw value (validated by the config
    class when it is built). ``label`` replaces the field name as the widget's label."""
    value = spec.default if default is None else default
    help_text = spec.help + (f" (default {spec.default!r})" if spec.default is not None else "")
    if label is not None:
        help_text += f" · field `{spec.name}`"  # what the CLI and the run's config call it
        spec = replace(spec, name=label)
    if spec.choices is not None:
        options = list(spec.choices)
        index = options.index(value) if value in options else 0
        return st.selectbox(
            spec.name, options, index=index, help=help_text, key=key, disabled=disabled
        )
    if spec.type is bool:
        return st.checkbox(spec.name, value=bool(value), help=help_text, key=key, disabled=disabled)
    if spec.type is int and value is not None:
        return st.number_input(
            spec.name,
            min_value=_int_bound(spec.low, True),
            max_value=_int_bound(spec.high, False),
            value=int(value),
            step=1,
            help=help_text,
            key=key,
            disabled=disabled,
        )
    if spec.type is float and value is not None:
        return st.number_input(
            spec.name,
            min_value=float(spec.low) if spec.low is not None else None,
            max_value=float(spec.high) if spec.high is not None else None,
            value=float(value),
            format="%g",
            step=_float_step(float(value)),
            help=help_text,
            key=key,
            disabled=disabled,
        )
    if spec.type is tuple:
        text = ", ".join(str(v) for v in (value or ()))
        raw = st.text_input(
            spec.name, value=text, help=help_text + " (comma-separated)", key=key, disabled=disabled
        )
        return [part.strip() for part in raw.split(",") if part.strip()]
    raw = st.text_input(
        spec.name,
        value="" if value is None else str(value),
        help=help_text,
        key=key,
        disabled=disabled,
    )
    return raw if raw != "" or value is not None else None


def _float_step(value: float) -> float:
    # A step of one order of magnitude below the default keeps the arrows useful at any scale.
    if value == 0:
        return 0.01
    return float(10 ** math.floor(math.log10(abs(value)) - 1))


def config_form(
    cls: type,
    key: str,
    *,
    enabled: set[str] | None = None,
    columns: int = 3,
    defaults: Mapping[str, Any] | None = None,
    exclude: tuple[str, ...] = (),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Widgets for every field of config dataclass ``cls``; returns ``{field: raw value}``.

    Only values that differ from the declared default are returned, so the stored config stays
    small and a default changed in code reaches old forms. Fields not in ``enabled`` (when
    given) are shown disabled at their default. ``labels`` maps field names to the words the
    analyst reads (the field name stays in the help).
    """
    specs = [spec for spec in describe(cls) if spec.name not in exclude]
    if not specs:
        st.caption("No hyperparameters.")
        return {}
    cols = st.columns(min(columns, len(specs)))
    values: dict[str, Any] = {}
    for i, spec in enumerate(specs):
        with cols[i % len(cols)]:
            disabled = enabled is not None and spec.name not in enabled
            raw = field_widget(
                spec,
                f"{key}.{spec.name}",
                default=(defaults or {}).get(spec.name),
                disabled=disabled,
                label=(labels or {}).get(spec.name),
            )
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        if not disabled and raw != default:
            values[spec.name] = raw
    return values


def worker_autostart_enabled() -> bool:
    """False when ``$RECSYS_EXPLORER_AUTOSTART_WORKER`` is ``0`` (tests run their own worker)."""
    return os.environ.get(ENV_AUTOSTART, "1").strip() not in ("0", "false", "no")


def worker_status(ws: Workspace) -> None:
    """Sidebar line on the background worker; starts one when none is alive (unless disabled).

    The worker heartbeats into the catalog, so "alive" survives app restarts and browser
    reloads; training never runs in the Streamlit process itself. The line is a live fragment:
    it refreshes every few seconds while runs or tasks are queued or running (or a worker is
    starting), and not at all when nothing is, so an idle tab costs the server nothing.
    """
    from recsys_core.jobs import api

    state = api.worker_status(ws)
    busy = bool(state.running or state.queued) or (
        not state.alive and worker_autostart_enabled()
    )
    interval = poll_interval("sidebar.worker", busy, backoff=False)
    st.fragment(run_every=interval)(_worker_line)(ws)


def _worker_line(ws: Workspace) -> None:
    from recsys_core.jobs import api

    state = api.worker_status(ws)
    queue = f"{state.running} running, {state.queued} queued"
    if state.alive:
        st.caption(f":green[:material/check_circle:] Worker alive (pid {state.pid}) · {queue}")
    elif worker_autostart_enabled():
        api.ensure_worker(ws)
        st.caption(f":orange[:material/pending:] Worker starting… · {queue}")
    else:
        st.caption(
            f":gray[:material/block:] No worker ({queue}): start one with "
            "`python -m recsys_core worker`"
        )
    busy = bool(state.running or state.queued) or (
        not state.alive and worker_autostart_enabled()
    )
    poll_seen("sidebar.worker", (state.alive, state.running, state.queued), active=busy)


# ----- live fragments: refresh while something is active, back off, stop when idle ----------
#: Refresh intervals (seconds) of a live fragment: it starts at the first and moves to the next
#: after POLL_PATIENCE refreshes that showed nothing new; any change goes back to the first.
POLL_STEPS = (2.0, 4.0, 8.0, 15.0)
POLL_PATIENCE = 3


def poll_interval(name: str, active: bool, *, backoff: bool = True) -> float | None:
    """``run_every`` for live fragment ``name`` in this full run: None when nothing is active.

    Streamlit fixes a fragment's interval when the full script run draws it, so the interval
    changes (back off, speed up, stop) by one app rerun, which :func:`poll_seen` asks for. Call
    this in the full run, right before drawing the fragment.
    """
    state = st.session_state.setdefault(f"poll.{name}", {"level": 0, "same": 0, "sig": None})
    state.update(active=active, fresh=True, backoff=backoff)
    if not active:
        state.update(level=0, same=0)
        return None
    return POLL_STEPS[state["level"] if backoff else 0]


def poll_seen(name: str, signature: Hashable, *, active: bool) -> None:
    """Record what live fragment ``name`` just showed (``signature``: anything that changes
    when the view does) and rerun the app when its refresh interval must change."""
    state = st.session_state.get(f"poll.{name}")
    if state is not None and next_poll(state, signature, active):
        st.rerun()


def next_poll(state: dict[str, Any], signature: Hashable, active: bool) -> bool:
    """The polling policy (pure, for tests): update ``state`` and return True when the app
    must rerun to apply a new interval.

    ``state`` holds ``level`` (index into POLL_STEPS), ``same`` (refreshes without change),
    ``sig`` (the last signature), ``active`` (what the full run saw), ``fresh`` (True in the
    full run that drew the fragment) and ``backoff``.
    """
    changed = signature != state.get("sig")
    state["sig"] = signature
    if state.pop("fresh", False):  # the full run just set the interval
        return False
    if active != state.get("active"):  # the last job finished, or one started: redraw all
        state.update(level=0, same=0)
        return True
    if not active or not state.get("backoff", True):
        return False
    if changed:
        state["same"] = 0
        if state["level"]:
            state["level"] = 0
            return True
        return False
    state["same"] += 1
    if state["same"] >= POLL_PATIENCE and state["level"] < len(POLL_STEPS) - 1:
        state.update(level=state["level"] + 1, same=0)
        return True
    return False


# ----- import preview (reads the file once to show its columns and the detected mapping) -----
@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def preview_source(
    data: bytes | None, filename: str, path: str, separator: str, encoding: str, sheet: str = ""
) -> dict[str, Any]:
    """:func:`recsys_core.data.importer.preview` of an upload or a server path (nothing stored).

    An upload is written to a temporary file under its own name, so the readers recognise
    MovieLens and RecBole file names as they would on disk.
    """
    import tempfile

    from recsys_core.data.importer import ImportOptions, preview

    options = ImportOptions(separator=separator, encoding=encoding, sheet=sheet)
    with tempfile.TemporaryDirectory(prefix="recsys-preview-") as tmp:
        if data is not None:
            source = Path(tmp) / Path(filename).name
            source.write_bytes(data)
        else:
            source = Path(path).expanduser()
        return preview(source, options, display_name=filename or source.name)


def clear_dataset_caches() -> None:
    """Forget cached datasets and profiles (after an import, rename, delete or side table)."""
    load_dataset.clear()
    health_report.clear()


def health_section(report: Any) -> None:
    """The health report: headline numbers, warnings, the four figures, then all the stats."""
    from recsys_core.viz.data import health_figures

    s = report.stats
    row = st.columns(6)
    row[0].metric("Users", f"{s['n_users']:,}")
    row[1].metric("Items", f"{s['n_items']:,}")
    row[2].metric("Interactions", f"{s['n_interactions']:,}")
    row[3].metric("Density", f"{100 * s['density']:.2f}%")
    row[4].metric("Cold users (< 5)", f"{100 * s.get('cold_user_share', 0):.0f}%")
    row[5].metric(
        "Item Gini",
        f"{s.get('gini', float('nan')):.2f}",
        help="Concentration of interactions on few items: 0 = even, 1 = all on one item.",
    )
    if report.warnings:
        for warning in report.warnings:
            st.warning(md(warning), icon=":material/warning:")
    else:
        st.success("No health warnings: this dataset is ready to train on.")
    figures = list(health_figures(report).items())
    captions = {
        "popularity": "Items sorted by popularity: a steep drop means a long tail.",
        "user_activity": "How many interactions users have: mass on the left means cold users.",
        "ratings": "Rating values: decide the positive threshold from this.",
        "over_time": "Interactions per period: gaps or spikes matter for temporal splits.",
    }
    for start in range(0, len(figures), 2):
        cols = st.columns(2)
        for col, (name, fig) in zip(cols, figures[start : start + 2], strict=False):
            col.plotly_chart(fig, key=f"health.{name}", width="stretch")
            col.caption(captions.get(name, ""))
    with st.expander("All statistics"):
        st.dataframe(
            pd.DataFrame({"value": [str(v) for v in s.values()]}, index=list(s)),
            width="stretch",
        )


# ----- executor (issue 13: where the worker executes runs) -----------------------------------
def executor_picker(ws: Workspace) -> None:
    """Sidebar line naming the workspace's executor (local or Ray), with a picker to change it.

    The choice is a catalog setting the worker follows between jobs;
    ``$RECSYS_EXPLORER_EXECUTOR`` overrides it (shown, not editable then).
    """
    from recsys_core.jobs.executor import EXECUTORS, executor_choice, set_executor
    from recsys_core.jobs.ray_executor import INSTALL_HINT, ray_available

    name, source = executor_choice(ws)
    where = os.environ.get("RAY_ADDRESS") or "a local Ray instance"
    detail = f" → {where}" if name == "ray" else ""
    st.caption(f":material/hub: Executor: **{name}** ({source}){detail}")
    if name == "ray" and not ray_available():
        st.caption(f":red[:material/error:] ray is not installed: {INSTALL_HINT}")
    if source == "environment":
        return
    with st.popover("Executor", icon=":material/tune:"):
        choice = st.radio(
            "Execute runs on", EXECUTORS, index=EXECUTORS.index(name), key="sidebar.executor"
        )
        if choice != name:
            ui_demo.refuse_writes("changing the executor")
            try:
                set_executor(ws, choice)
            except RecsysError as error:
                st.error(md(error))
            else:
                st.info("Saved: the worker switches to it as soon as nothing is running.")
def dataset_versions(ws: Workspace, info: Any) -> None:
    """The versions of the active dataset (what each added) and a form to append a batch.

    One self-contained call at the end of the Data page (other sections of that page are
    edited independently).
    """
    from recsys_core import access
    from recsys_core.data import versions
    from recsys_core.data.confine import confine_path
    from recsys_core.data.readers import UPLOAD_TYPES

    with st.expander("Versions: append new interactions"):
        st.caption(
            "Appending stores the union as a new version with its own id; earlier versions and "
            "the runs trained on them stay exactly as they were. New users and items get the "
            "next indices, so a finished run can be updated instead of retrained."
        )
        with guard("versions"):
            st.dataframe(versions.versions_frame(ws, info.id), hide_index=True, width="stretch")
        source = st.radio(
            "New interactions from",
            ["Upload a file", "A path on the server"],
            horizontal=True,
            key="data.append.source",
        )
        upload = path = None
        if source == "Upload a file":
            upload = st.file_uploader(
                "File with the same columns as the dataset",
                type=UPLOAD_TYPES,
                key="data.append.upload",
            )
        else:
            path = st.text_input("File path", key="data.append.path").strip()
        ready = bool(upload or path)
        if st.button("Append as a new version", key="data.append.go", disabled=not ready):
            ui_demo.refuse_writes("appending a dataset version")
            with guard("append"), st.spinner("Reading, validating and appending…"):
                access.require_analyst(st.session_state.get("role"))
                if upload is not None:
                    new = versions.append_bytes(ws, info.id, upload.getvalue(), upload.name)
                else:
                    new = versions.append_file(ws, info.id, confine_path(ws, path))
                added = versions.version_of(new)["added"]
                clear_dataset_caches()
                set_active_dataset(new.id)
                st.success(
                    f"**{md(new.name)}**: +{added['interactions']:,} interactions, "
                    f"{added['new_users']:,} new users, {added['new_items']:,} new items."
                )
