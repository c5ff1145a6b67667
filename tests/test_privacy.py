"""Personal data at import: flagged with masked examples, dropped before storing, user ids
pseudonymised with a workspace key; a deleted dataset leaves nothing behind."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest

from recsys_core.data import privacy, store
from recsys_core.data.importer import ImportOptions, preview
from recsys_core.data.readers import RawData
from recsys_core.errors import ConfigError

EMAILS = [f"person{i}@example.org" for i in range(12)]


@pytest.fixture()
def personal_csv(tmp_path) -> Path:
    """12 users (ids are e-mail addresses) x 10 items, a free-text note with a phone number,
    and a user table with names and IP addresses."""
    rows = [
        {"user": EMAILS[u], "item": f"i{(u + k) % 10}", "rating": 1 + (u + k) % 5,
         "note": "call +44 20 7946 0958" if u == 3 and k == 0 else "fine"}
        for u in range(12) for k in range(4)
    ]  # fmt: skip
    path = tmp_path / "ratings.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    users = pd.DataFrame({"user": EMAILS, "full_name": [f"Jane Doe{'x' * i}".title()
                          for i in range(12)], "ip": [f"10.0.0.{i}" for i in range(12)],
                          "age": range(20, 32)})  # fmt: skip
    users.to_csv(tmp_path / "users.csv", index=False)
    return path


def test_scan_flags_each_kind_with_a_masked_example(personal_csv):
    raw = RawData(
        pd.read_csv(personal_csv), None, pd.read_csv(personal_csv.parent / "users.csv"), "csv", []
    )
    found = {(f.table, f.column, f.kind): f for f in privacy.scan(raw)}
    assert set(found) == {
        ("interactions", "user", privacy.EMAIL),
        ("interactions", "note", privacy.PHONE),
        ("users", "user", privacy.EMAIL),
        ("users", "full_name", privacy.NAME),
        ("users", "ip", privacy.IP),
    }
    assert found["interactions", "user", privacy.EMAIL].example == "p***@e***.org"
    assert found["interactions", "note", privacy.PHONE].example == "+44 ** **** **58"
    assert found["users", "ip", privacy.IP].example.endswith(".*.*")
    for f in found.values():  # no example shows a whole value
        assert not any(e in f.example for e in EMAILS) and "7946" not in f.example


@pytest.mark.parametrize(
    "value",
    ["2021-03-04 10:00:00", "1609459200", "Toy Story (1995)", "3.5", "Action|Comedy",
     "12/03/2020", "v1.2.3.4.5"],
)  # fmt: skip
def test_ordinary_values_are_not_flagged(value):
    frame = pd.DataFrame({"x": [value] * 5})
    assert privacy.scan_column(frame["x"], "items", "x") == []


def test_preview_flags_and_masks_then_import_drops_and_pseudonymises(workspace, personal_csv):
    shown = preview(personal_csv)
    assert {(f.column, f.kind) for f in shown["personal"]} == {
        ("user", privacy.EMAIL), ("note", privacy.PHONE)
    }
    assert not shown["head"]["user"].isin(EMAILS).any()  # the preview itself is masked
    options = ImportOptions(drop_columns=("ip", "full_name"), pseudonymise=True)
    info = store.import_file(
        workspace, personal_csv, options=options, users=personal_csv.parent / "users.csv"
    )
    assert privacy.is_pseudonymised(info) and info.options["drop_columns"] == ["full_name", "ip"]
    assert privacy.PSEUDONYMISED_NOTE in info.report["notes"]
    frame, _, users = store.load_frames(workspace, info.id)
    assert frame["user"].str.fullmatch(r"u-[0-9a-f]{16}").all()
    assert list(users.columns) == ["age"] and users.index.isin(frame["user"]).all()
    everything = b"".join(p.read_bytes() for p in workspace.root.rglob("*") if p.is_file())
    assert not any(e.encode() in everything for e in EMAILS)
    assert b"Jane" not in everything and b"10.0.0." not in everything
    key = Path(privacy.key_path(workspace))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    # Same key, same pseudonyms: a second import under another name maps ids identically.
    again = store.import_file(workspace, personal_csv, name="again", options=ImportOptions(
        pseudonymise=True, drop_columns=("note",)))  # fmt: skip
    assert set(store.load_frames(workspace, again.id)[0]["user"]) == set(frame["user"])


def test_an_unknown_dropped_column_is_refused(workspace, personal_csv):
    with pytest.raises(ValueError, match="no column 'mail' to drop.*'note'"):
        store.import_file(workspace, personal_csv, options=ImportOptions(drop_columns=("mail",)))


def test_import_report_warns_about_stored_personal_columns(workspace, personal_csv):
    info = store.import_file(workspace, personal_csv, users=personal_csv.parent / "users.csv")
    warnings = " ".join(info.report["warnings"])
    assert "users column 'full_name': person names" in warnings
    assert "--drop-column ip" in warnings and "--pseudonymise" in warnings
    assert "'note'" not in warnings  # not mapped to a role: never stored
    assert not any(e in warnings for e in EMAILS)


def test_cli_import_drop_column_and_pseudonymise(workspace, personal_csv, capsys):
    from recsys_core.cli.main import main

    code = main(["--workspace", str(workspace.root), "import", str(personal_csv),
                 "--users", str(personal_csv.parent / "users.csv"), "--drop-column", "ip",
                 "--drop-column", "full_name", "--pseudonymise"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "pseudonymised" in out and "dropped before storing" in out
    (info,) = store.list_datasets(workspace)
    assert privacy.is_pseudonymised(info)


def test_deleting_a_dataset_leaves_nothing_behind(workspace, personal_csv):
    from recsys_core import purge
    from recsys_core.explain import explanation_path
    from recsys_core.jobs import api

    info = store.import_file(workspace, personal_csv, users=personal_csv.parent / "users.csv")
    keep = store.import_frames(
        workspace, pd.DataFrame({"user": ["a", "b"] * 3, "item": ["x", "y", "z"] * 2}),
        name="other", source="test",
    )  # fmt: skip
    run_id = api.submit(workspace, {"dataset": info.id, "model": "itemknn", "device": "cpu"})
    assert api.run_inline(workspace, run_id).status == "done"
    # A cached explanation where the explain task stores it (computing a real one costs a
    # shap warm-up; what matters here is that its file goes with the run).
    cached = explanation_path(workspace, run_id, EMAILS[0], "i5", "score", 10)
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps({"user_id": EMAILS[0], "item_id": "i5"}))
    api.submit_task(workspace, "explain", {"run": run_id, "user": EMAILS[1], "item": "i2"})
    with pytest.raises(ConfigError, match="still queued or running"):
        purge.delete_dataset(workspace, info.id)  # the queued task must be cancelled first
    api.cancel_task(workspace, api.list_tasks(workspace)[0].id)
    found = purge.delete_dataset(workspace, info.name)
    assert found.runs == [run_id] and len(found.tasks) == 1
    needles = [info.id, run_id, found.tasks[0], *EMAILS, "Jane", "7946 0958"]
    for path in workspace.root.rglob("*"):
        assert not any(n in str(path) for n in needles), path
        if path.is_file():
            data = path.read_bytes()
            assert not any(n.encode() in data for n in needles), (path, needles)
    assert [i.id for i in store.list_datasets(workspace)] == [keep.id]


def test_appending_to_a_pseudonymised_dataset_matches_its_pseudonyms(workspace, personal_csv):
    from recsys_core.data import versions

    info = store.import_file(workspace, personal_csv, options=ImportOptions(pseudonymise=True))
    batch = personal_csv.parent / "batch.csv"
    pd.DataFrame({"user": [EMAILS[0], "new@example.org"], "item": ["i9", "i1"],
                  "rating": [5, 4]}).to_csv(batch, index=False)  # fmt: skip
    new = versions.append_file(workspace, info.id, batch)
    added = versions.version_of(new)["added"]
    assert added["new_users"] == 1 and added["touched_users"] == 2  # EMAILS[0] matched
    frame = store.load_frames(workspace, new.id)[0]
    assert frame["user"].str.startswith("u-").all() and frame["user"].nunique() == 13


def test_data_page_flags_an_email_column_and_stores_the_dataset_without_it(app_workspace):
    from streamlit.testing.v1 import AppTest

    folder = app_workspace.root / "imports" / "shop"
    folder.mkdir(parents=True)
    pd.DataFrame({"user": [f"u{u}" for u in range(6) for _ in range(3)],
                  "item": [f"i{(u + k) % 5}" for u in range(6) for k in range(3)]}).to_csv(
        folder / "interactions.csv", index=False)  # fmt: skip
    pd.DataFrame({"user": [f"u{u}" for u in range(6)], "email": EMAILS[:6],
                  "age": range(6)}).to_csv(folder / "users.csv", index=False)  # fmt: skip
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=120).run()
    at.switch_page("pages/data.py").run()
    at.radio(key="data.source").set_value("A path on the server").run()
    at.text_input(key="data.path").input("shop").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    drop = at.checkbox(key="data.drop.email")
    assert drop.value is True and "e-mail addresses in 100%" in drop.label
    assert "p\\*\\*\\*@e\\*\\*\\*.org" in drop.label  # the masked example, escaped
    assert at.checkbox(key="data.pseudonymise").value is False  # the ids are not personal
    at.button(key="data.import").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (info,) = store.list_datasets(app_workspace)
    assert info.options["drop_columns"] == ["email"]
    assert list(store.load_frames(app_workspace, info.id)[2].columns) == ["age"]
    stored = app_workspace.root / "datasets"
    blob = b"".join(p.read_bytes() for p in stored.rglob("*") if p.is_file())
    assert b"example.org" not in blob
