"""AppTest: the Data page (import by upload with mapping, bad files, health report, manage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _data_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page("pages/data.py").run()


def _csv(header: str = "user_id,item_id,rating,timestamp") -> bytes:
    # 40 users x 30 items, two taste halves: a small dataset with structure and a real header.
    rng = np.random.default_rng(0)
    rows = [header]
    for u in range(40):
        items = rng.choice(15, size=8, replace=False) + (15 if u % 2 else 0)
        rows += [
            f"u{u},i{i},{1 + (u + i) % 5},{1_600_000_000 + 60 * (u * 8 + n)}"
            for n, i in enumerate(items)
        ]
    return ("\n".join(rows) + "\n").encode()


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_upload_good_csv_shows_health(app_workspace):
    at = _data_page()
    assert not at.exception
    at.file_uploader(key="data.upload").upload("ratings.csv", _csv(), "text/csv").run()
    assert not at.error, [e.value for e in at.error]
    assert "user_id" in at.dataframe[0].value.columns  # preview of the first rows
    # Mapping and options in the analyst's words; the detected column is the option's text.
    user = at.selectbox(key="data.map.user")
    assert user.label == "User id" and user.options[0] == "user_id (detected)"
    assert at.number_input(key="data.opts.min_user_interactions").label.startswith("Min.")
    at.text_input(key="data.name").input("tiny").run()
    at.button(key="data.import").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("Imported **tiny**" in s.value for s in at.success)
    (report,) = [d.value for d in at.dataframe if "what" in d.value.columns]
    report = report.set_index("what")["value"]  # a table, not raw JSON
    assert report["Rows read"] == "320" and report["Interactions"] == "320"
    assert not at.json
    assert _metric(at, "Users") == "40"
    assert _metric(at, "Items") == "30"
    assert _metric(at, "Interactions") == "320"
    assert any("fewer than" in w.value for w in at.warning)  # a tiny dataset is flagged
    assert len(at.get("plotly_chart")) == 4
    # Side information: an item table with titles and categories, one id matching nothing.
    items = "item_id,title,genres\n" + "".join(
        f"i{i},Movie {i},{'Action|Comedy' if i < 15 else 'Drama'}\n" for i in range(30)
    )
    items += "i999,Unseen,Drama\n"
    at.file_uploader(key="data.side.upload").upload("items.csv", items.encode(), "text/csv")
    at.run()
    at.button(key="data.side.attach").click().run()
    assert not at.error, [e.value for e in at.error]
    assert any("Attached the items table" in s.value for s in at.success)
    assert "i999" in str(at.json[-1].value)  # the unmatched id is reported, not dropped silently


def test_mapping_override_imports_unusual_column_names(app_workspace):
    at = _data_page()
    data = _csv(header="buyer,sku_code,score,t")
    at.file_uploader(key="data.upload").upload("orders.csv", data, "text/csv").run()
    assert any("no user column" in w.value for w in at.warning)  # detection explains itself
    at.selectbox(key="data.map.user").select("buyer")
    at.selectbox(key="data.map.item").select("sku_code")
    at.selectbox(key="data.map.value").select("score").run()
    at.button(key="data.import").click().run()
    assert not at.error, [e.value for e in at.error]
    assert _metric(at, "Users") == "40"


def test_bad_upload_shows_error_in_place_and_stores_nothing(app_workspace):
    from recsys_core.data.store import list_datasets

    at = _data_page()
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    at.file_uploader(key="data.upload").upload("ratings.csv", png, "text/csv").run()
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "PNG" in message and "Fix:" in message
    assert "Traceback" not in message
    assert list_datasets(app_workspace) == []


def test_sample_health_report_and_rename(app_workspace):
    from recsys_core.data.store import import_sample, list_datasets

    import_sample(app_workspace)
    at = _data_page()
    assert not at.exception
    assert at.header[0].value == "Health · movielens-small"
    assert _metric(at, "Users") == "610"
    at.text_input(key=f"data.rename.{list_datasets(app_workspace)[0].id}").input("ml")
    at.button(key="data.rename").click().run()
    assert not at.error, [e.value for e in at.error]
    assert [d.name for d in list_datasets(app_workspace)] == ["ml"]


def test_item_text_embeddings_action_stores_the_offline_default(app_workspace):
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames
    from recsys_core.data.text_embeddings import text_embedding_info

    inter, items, users = make_frames(SyntheticConfig(n_users=40, n_items=30, mean_history=6))
    info = import_frames(app_workspace, inter, name="synth", source="t", items=items, users=users)
    at = _data_page()
    at.text_input(key="data.tm").input("no/such-model").run()
    at.button(key="data.text.run").click().run()
    assert any("could not load" in e.value or "not installed" in e.value for e in at.error)
    assert text_embedding_info(app_workspace, info.id) is None
    at.text_input(key="data.tm").input("tfidf-svd").run()
    at.button(key="data.text.run").click().run()
    assert not at.error, [e.value for e in at.error]
    assert "TF-IDF + SVD (offline default)" in at.success[0].value
    assert text_embedding_info(app_workspace, info.id).encoder == "tfidf-svd"
