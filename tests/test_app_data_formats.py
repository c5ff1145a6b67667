"""AppTest: the Data page reads RecBole single files, Excel and gzip uploads, and refuses
unsupported formats with the file's name and how to convert it (issues 19 and 20)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"{u}\t{100 + (u * 7 + k) % 30}\t{1 + (u + k) % 5}\t{880000000 + 60 * (u * 6 + k)}\n"
    for u in range(20)
    for k in range(6)
)


def _data_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page("pages/data.py").run()


def _upload_and_import(at: AppTest, filename: str, data: bytes) -> AppTest:
    at.file_uploader(key="data.upload").upload(filename, data, "application/octet-stream").run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert not at.warning or all("user column" not in w.value for w in at.warning)
    at.button(key="data.import").click().run()
    assert not at.error, [e.value for e in at.error]
    return at


def test_uploader_accepts_excel_gzip_and_recbole(app_workspace):
    at = _data_page()
    accepted = set(at.file_uploader(key="data.upload").proto.type)
    assert {".xlsx", ".gz", ".inter", ".xls", ".json"} <= accepted


def test_recbole_inter_upload_imports(app_workspace):
    at = _upload_and_import(_data_page(), "ml-100k.inter", INTER.encode())
    assert any("Imported **ml-100k**" in s.value for s in at.success)
    assert next(m.value for m in at.metric if m.label == "Users") == "20"


def test_xlsx_and_gzip_uploads_import(app_workspace):
    frame = pd.read_csv(io.StringIO(INTER), sep="\t")
    frame.columns = ["user", "item", "rating", "timestamp"]
    book = io.BytesIO()
    frame.to_excel(book, index=False, engine="openpyxl")
    at = _upload_and_import(_data_page(), "shop.xlsx", book.getvalue())
    assert any("Imported **shop**" in s.value for s in at.success)
    at = _upload_and_import(
        _data_page(), "events.csv.gz", gzip.compress(frame.to_csv(index=False).encode())
    )
    assert any("Imported **events**" in s.value for s in at.success)


def test_unsupported_upload_names_the_file_and_the_conversion(app_workspace):
    at = _data_page()
    at.file_uploader(key="data.upload").upload("events.json", b'[{"u": 1}]', "application/json")
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "events.json" in message and "to_csv" in message and "recsys-" not in message
