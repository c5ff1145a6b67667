"""Data: import interactions (upload or server path), read their health, manage datasets."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
import ui_access
import ui_demo
from recsys_core import purge
from recsys_core.config import config_from_dict
from recsys_core.data import store
from recsys_core.data import text_embeddings as te
from recsys_core.data.confine import confine_path
from recsys_core.data.importer import ROLES, ImportOptions
from recsys_core.data.privacy import is_pseudonymised
from recsys_core.data.readers import UPLOAD_TYPES
from recsys_core.device import DEVICE_CHOICES
from recsys_core.viz.data import ROLE_LABELS, import_report_table
from recsys_core.viz.markdown import md

#: Import options in the analyst's words (the field name stays in each widget's help).
OPTION_LABELS = {
    "positive_threshold": "Keep ratings from (0 = all)",
    "duplicates": "Repeated user-item rows",
    "min_user_interactions": "Min. interactions per user",
    "min_item_interactions": "Min. interactions per item",
    "max_file_mb": "Largest file (MB)",
    "separator": "Field separator (empty = detect)",
    "encoding": "Text encoding",
    "sheet": "Excel sheet (empty = the first)",
    "max_id_length": "Longest id (characters)",
}



def _personal_data(preview: dict) -> dict:
    """Flagged columns with a masked example, a drop checkbox each (ids excepted), and the
    pseudonymise switch; returns the ImportOptions values they set."""
    findings = preview["personal"]
    ids = {preview["detected"].get("user"), preview["detected"].get("item"), "user", "item"}
    user_flagged = any(f.column in ids for f in findings)
    if findings:
        st.markdown("**Personal data?** These columns look like it (masked examples):")
    drop = []
    for column in dict.fromkeys(f.column for f in findings):
        found = "; ".join(md(f.describe()) for f in findings if f.column == column)
        if column in ids:
            st.caption(f":material/badge: {found}: an id column, pseudonymise it below")
        elif st.checkbox(f"Drop {md(repr(column))}: {found}", True, key=f"data.drop.{column}"):
            drop.append(column)
    pseudonymise = st.checkbox(
        "Pseudonymise user ids",
        value=user_flagged,
        key="data.pseudonymise",
        help="Store keyed hashes (HMAC-SHA256 with a key kept in this workspace) instead of "
        "the user ids: stored data, runs, reports and the demo never show the raw ids.",
    )
    return {"drop_columns": drop, "pseudonymise": pseudonymise}


st.title("Data")
st.markdown(
    "Bring your own interactions (CSV, TSV, Parquet, Excel, .gz, MovieLens, RecBole or a zip), "
    "check the column mapping, and read the dataset's health before training on it."
)
ws = ui.workspace()

# ----- import --------------------------------------------------------------------------------
with st.expander("Import a dataset", expanded=not ui.list_datasets()):
    source = st.radio(
        "Source", ["Upload a file", "A path on the server"], horizontal=True, key="data.source"
    )
    data: bytes | None = None
    filename = path = ""
    if source == "Upload a file":
        upload = st.file_uploader(
            "Interactions file",
            type=UPLOAD_TYPES,
            key="data.upload",
            help="A header row with user and item columns (e.g. userId, movieId), as CSV, "
            "TSV, Parquet, Excel .xlsx or .csv.gz, or a MovieLens/RecBole file as distributed.",
        )
        if upload is not None:
            data, filename = upload.getvalue(), upload.name
    else:
        path = st.text_input(
            "File or folder path", key="data.path", placeholder="/data/ml-1m/ratings.dat"
        ).strip()

    if data is not None or path:
        st.markdown("**Options**")
        values = ui.config_form(
            ImportOptions,
            "data.opts",
            exclude=("mapping", "split_file", "drop_columns", "pseudonymise"),
            labels=OPTION_LABELS,
        )
        preview = None
        with ui.guard("reading the file"):
            if data is None:  # a server path: only inside the allowed data folders
                path = str(confine_path(ws, path))
            preview = ui.preview_source(
                data,
                filename,
                path,
                values.get("separator", ""),
                values.get("encoding", "utf-8"),
                sheet=values.get("sheet", ""),
            )
        if preview is not None:
            st.markdown(
                f"**Preview** · format `{preview['format']}` · {preview['rows']:,} rows"
                + (f" · side tables: {', '.join(preview['side'])}" if preview["side"] else "")
            )
            st.dataframe(preview["head"], hide_index=True, width="stretch")
            for note in preview["notes"]:
                st.caption(f"ℹ️ {md(note)}")
            if preview["problem"]:
                st.warning(md(preview["problem"]))
            privacy_values = _personal_data(preview)
            st.markdown("**Column mapping** (detected; override where needed)")
            mapping = []
            # Three to a row, so a long detected column name is not cut off.
            cols = [c for _ in range(0, len(ROLES), 3) for c in st.columns(3)]
            for role, col in zip(ROLES, cols, strict=False):
                detected = preview["detected"].get(role)
                options = ["(detected)", "(none)", *preview["columns"]]
                choice = col.selectbox(
                    ROLE_LABELS.get(role, role),
                    options,
                    key=f"data.map.{role}",
                    help=f"detected: {detected or 'nothing'}",
                    format_func=lambda o, d=detected: (
                        (f"{d} (detected)" if d else "none detected")
                        if o == "(detected)"
                        else "not used" if o == "(none)" else o
                    ),
                )
                if choice == "(none)":
                    mapping.append(f"{role}=")
                elif choice != "(detected)":
                    mapping.append(f"{role}={choice}")
            name = st.text_input(
                "Dataset name (optional)",
                key="data.name",
                placeholder=Path(filename or path or "dataset").stem,
            )
            if st.button("Import", type="primary", key="data.import"):
                ui_demo.refuse_writes("importing data")
                with ui.guard("import"), st.spinner("Importing, validating and encoding…"):
                    ui_access.require_analyst()
                    options = config_from_dict(
                        ImportOptions, values | privacy_values | {"mapping": mapping}
                    )
                    if data is not None:
                        info = store.import_bytes(
                            ws, data, filename, name=name or None, options=options
                        )
                    else:
                        info = store.import_file(ws, path, name=name or None, options=options)
                    ui.clear_dataset_caches()
                    ui.set_active_dataset(info.id)
                    st.session_state["data.notice"] = info.id
                    st.rerun()

if notice := st.session_state.pop("data.notice", None):
    with ui.guard("import report"):
        info = store.get_dataset(ws, notice)
        st.success(f"Imported **{md(info.name)}**: {md(ui.dataset_label(info))}.")
        data_imported = ui.load_dataset(str(ws.root), info.id, info.content_hash)
        with st.expander("Import report", expanded=True):
            st.dataframe(
                import_report_table(info.report, data_imported.labels),
                hide_index=True,
                width="stretch",
            )
            for note in [*info.report.get("notes", []), *info.report.get("warnings", [])]:
                st.caption(f"ℹ️ {md(note)}")

# ----- health of the active dataset -----------------------------------------------------------
info = ui.active_dataset()
if info is None:
    st.stop()
st.header(f"Health · {md(info.name)}")
if is_pseudonymised(info):
    st.caption(":material/badge: User ids are pseudonymised (keyed hashes; the key stays here).")
with ui.guard("health report", stop=True):
    report = ui.health_report(str(ws.root), info.id, info.content_hash)
    ui.health_section(report)

# ----- side information ------------------------------------------------------------------------
with st.expander("Side information (item and user tables)"):
    st.caption(
        "Items: id, title, categories like Action|Comedy, free text, numeric columns, or an "
        "embedding vector. Users: id plus categorical and numeric columns. Ids that match no "
        "interaction are reported."
    )
    kind = st.radio("Table", ["items", "users"], horizontal=True, key="data.side.kind")
    side = st.file_uploader(
        "Side table",
        type=[t for t in UPLOAD_TYPES if t != "zip"],
        key="data.side.upload",
    )
    if side is not None and st.button("Attach", key="data.side.attach"):
        ui_demo.refuse_writes("attaching a side table")
        with ui.guard("side table"):
            ui_access.require_analyst()
            result = store.attach_side_table(
                ws, info.id, side.getvalue(), kind=kind, filename=side.name
            )
            ui.clear_dataset_caches()
            st.success(f"Attached the {kind} table to {md(info.name)}.")
            st.json(result)

# ----- item text embeddings --------------------------------------------------------------------
with st.expander("Item text embeddings (language model)"):
    text_info = te.text_embedding_info(ws, info.id)
    st.caption(
        "Encode each item's title, genres and tags into a vector that content, two-tower and "
        "fusion then read. The model must be on this machine: a folder of a saved "
        "sentence-transformers model, or a name in the local Hugging Face cache; "
        f"`{te.OFFLINE_MODEL}` is the offline default (TF-IDF + SVD, no model needed)."
    )
    if text_info is not None:
        st.text(f"Stored: {text_info.label}; {text_info.n_with_text:,} items had text.")
    if (missing := te.missing_dependency()) is not None:
        st.info(f"Only the offline default is available: {missing}.")
    t1, t2, t3 = st.columns([3, 2, 1])
    text_model = t1.text_input("Model (folder or cached name)", te.OFFLINE_MODEL, key="data.tm")
    text_fields = t2.multiselect("Fields", list(te.FIELDS), list(te.DEFAULT_FIELDS), key="data.tf")
    text_device = t3.selectbox("Device", DEVICE_CHOICES, key="data.td")
    if st.button("Encode item texts", key="data.text.run"):
        bar = st.progress(0.0, text="Loading the model…")
        with ui.guard("item text embeddings"):
            stored = te.embed_dataset(
                ws, info.id, text_model.strip(), fields=text_fields, device=text_device,
                progress=lambda done, m: bar.progress(m["fraction"], text=f"{done:,} encoded"),
            )  # fmt: skip
            ui.clear_dataset_caches()
            st.success(f"Stored item text embeddings: {stored.label} ({stored.seconds:.1f} s).")

# ----- manage ---------------------------------------------------------------------------------
with st.expander("Rename or delete"):
    new_name = st.text_input("New name", value=info.name, key=f"data.rename.{info.id}")
    if st.button("Rename", key="data.rename") and new_name != info.name:
        ui_demo.refuse_writes("renaming a dataset")
        with ui.guard("rename"):
            ui_access.require_analyst()
            store.rename_dataset(ws, info.id, new_name)
            st.rerun()
    reach = purge.footprint(ws, info.id).summary()
    sure = st.checkbox(
        f"Yes, delete {md(info.name)} and everything made from it ({reach})",
        key="data.delete.sure",
    )
    if st.button("Delete", disabled=not sure, key="data.delete"):
        ui_demo.refuse_writes("deleting a dataset")
        with ui.guard("delete"):
            ui_access.require_analyst()
            purge.delete_dataset(ws, info.id)
            st.cache_data.clear()  # cached runs, splits and maps of it go too
            st.cache_resource.clear()
            st.session_state.pop("data.delete.sure", None)
            st.rerun()

# ----- versions (append new interactions) ----------------------------------------------------
ui.dataset_versions(ws, info)
