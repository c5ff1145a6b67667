"""Dataset versions: appending keeps old indices, reports what is new, and old runs reproduce."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.data import store, versions
from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.errors import DataError


@pytest.fixture()
def two_parts():
    """Synthetic interactions cut at the 80% time quantile, plus two brand-new users."""
    frame, items, users = make_frames(SyntheticConfig(n_users=80, n_items=60, n_clusters=4))
    cut = frame["timestamp"].quantile(0.8)
    old, new = frame[frame["timestamp"] < cut], frame[frame["timestamp"] >= cut].copy()
    later = int(frame["timestamp"].max()) + 10
    fresh = pd.DataFrame(
        {
            "user": ["zz-new-1", "zz-new-1", "zz-new-2"],
            "item": ["i-brand-new", old["item"].iloc[0], old["item"].iloc[1]],
            "value": [5.0, 4.0, 3.0],
            "timestamp": [later, later + 1, later + 2],
        }
    )
    new = pd.concat([new, fresh], ignore_index=True)
    return old, new, items


def test_append_keeps_indices_and_reports_new_ids(workspace, two_parts, tmp_path):
    old, new, items = two_parts
    v1 = store.import_frames(workspace, old, name="shop", source="test", items=items)
    path = tmp_path / "batch.csv"
    new.to_csv(path, index=False)
    v2 = versions.append_file(workspace, "shop", path)
    assert v2.id != v1.id and v2.name == "shop-v2"
    record = versions.version_of(v2)
    assert record["parent"] == v1.id and record["root"] == v1.id and record["number"] == 2
    d1, d2 = store.load_dataset(workspace, v1.id), store.load_dataset(workspace, v2.id)
    # old users and items keep their indices; new ones come after
    assert np.array_equal(d2.user_ids[: d1.n_users], d1.user_ids)
    assert np.array_equal(d2.item_ids[: d1.n_items], d1.item_ids)
    added = record["added"]
    expected_new_users = set(new["user"]) - set(old["user"])
    assert added["new_users"] == len(expected_new_users) == d2.n_users - d1.n_users
    assert "zz-new-1" in set(d2.user_ids[d1.n_users :])
    assert added["new_items"] == d2.n_items - d1.n_items >= 1
    assert d2.nnz == d1.nnz + added["interactions"]
    # an old interaction is where it was
    u, i = d1.users[0], d1.items[0]
    assert d2.matrix[u, i] == d1.matrix[u, i]
    # the same batch twice is recognised; the parent is untouched
    again = versions.append_file(workspace, "shop", path)
    assert again.already_imported and again.id == v2.id
    assert store.get_dataset(workspace, v1.id).n_interactions == v1.n_interactions
    table = versions.versions_frame(workspace, v2.id)
    assert table["version"].tolist() == [1, 2]
    assert table["new users"].tolist()[1] == added["new_users"]
    # a third version chains on the second
    v3 = versions.append_frame(workspace, v2.id, fresh_rows(later=int(new["timestamp"].max())))
    assert versions.version_of(v3)["parent"] == v2.id
    assert versions.versions_frame(workspace, v1.id)["version"].tolist() == [1, 2, 3]


def fresh_rows(later: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"user": ["zz-new-3"], "item": ["i-other"], "value": [4.0], "timestamp": [later + 5]}
    )


def test_append_refuses_mismatched_columns(workspace, two_parts, tmp_path):
    old, new, _ = two_parts
    store.import_frames(workspace, old, name="shop", source="test")
    path = tmp_path / "no_time.csv"
    new.drop(columns=["timestamp"]).to_csv(path, index=False)
    with pytest.raises(DataError, match="timestamps"):
        versions.append_file(workspace, "shop", path)
    assert len(store.list_datasets(workspace)) == 1


def test_run_on_v1_reproduces_after_append(workspace, two_parts):
    from recsys_core.evaluate import evaluate
    from recsys_core.jobs import api
    from recsys_core.jobs.artifacts import RunArtifacts

    old, new, _ = two_parts
    v1 = store.import_frames(workspace, old, name="shop", source="test")
    run_id = api.submit(workspace, {"dataset": v1.id, "model": "ease", "device": "cpu"})
    assert api.run_inline(workspace, run_id).status == "done"
    stored = RunArtifacts(workspace, run_id).metrics()["aggregate"]["ndcg@10"]
    versions.append_frame(workspace, "shop", new)
    store._cache.clear()  # a fresh process: nothing cached
    art = RunArtifacts(workspace, run_id)
    report = evaluate(art.model("cpu"), art.split())
    assert report.aggregate["ndcg@10"] == pytest.approx(stored, abs=1e-6)


def test_data_page_lists_versions_and_appends(app_workspace, two_parts):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    old, new, _ = two_parts
    store.import_frames(app_workspace, old, name="shop", source="test")
    path = app_workspace.root / "imports" / "batch.csv"  # the app reads server paths only there
    path.parent.mkdir()
    new.to_csv(path, index=False)
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=120).run()
    at = at.switch_page("pages/data.py").run()
    at.radio(key="data.append.source").set_value("A path on the server").run()
    at.text_input(key="data.append.path").input(str(path)).run()
    at.button(key="data.append.go").click().run()
    assert not at.error, [e.value for e in at.error]
    assert any("new users" in s.value for s in at.success)
    assert [i.name for i in store.list_datasets(app_workspace)] == ["shop", "shop-v2"]
    at.run()  # the new version is active now and its table lists both versions
    frames = [d.value for d in at.dataframe if "new users" in d.value.columns]
    assert frames and frames[0]["version"].tolist() == [1, 2]


def test_cli_append(workspace, two_parts, tmp_path, capsys):
    from recsys_core.cli.main import main

    old, new, _ = two_parts
    store.import_frames(workspace, old, name="shop", source="test")
    path = tmp_path / "batch.csv"
    new.to_csv(path, index=False)
    assert main(["--workspace", str(workspace.root), "append", "shop", str(path)]) == 0
    out = capsys.readouterr().out
    assert "appended as 'shop-v2'" in out and "new users" in out
    assert main(["--workspace", str(workspace.root), "append", "shop", "/nope.csv"]) == 2
