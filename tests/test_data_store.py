"""Workspace store: dedupe, rename/delete, cache, the bundled sample, no streamlit import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from recsys_core.data import store
from recsys_core.data.importer import ImportOptions
from recsys_core.errors import DataError, NotFoundError

PAYLOAD = b"user,item,rating\na,x,4\nb,y,3\nb,x,2\n"


def test_same_content_twice_is_recognised(workspace):
    first = store.import_bytes(workspace, PAYLOAD, "p.csv")
    second = store.import_bytes(workspace, PAYLOAD, "renamed.csv")
    assert not first.already_imported and second.already_imported
    assert second.id == first.id
    assert len(store.list_datasets(workspace)) == 1
    other = store.import_bytes(
        workspace, PAYLOAD, "p.csv", options=ImportOptions(min_item_interactions=2)
    )
    assert other.id != first.id and other.name == "p-2"


def test_get_rename_delete(workspace):
    info = store.import_bytes(workspace, PAYLOAD, "p.csv", name="shop")
    assert store.get_dataset(workspace, "shop").id == info.id
    assert store.get_dataset(workspace, info.id).name == "shop"
    store.rename_dataset(workspace, "shop", "shop-2024")
    assert store.get_dataset(workspace, info.id).name == "shop-2024"
    store.import_bytes(workspace, PAYLOAD + b"c,z,1\n", "q.csv", name="other")
    with pytest.raises(DataError, match="already exists"):
        store.rename_dataset(workspace, "other", "shop-2024")
    store.delete_dataset(workspace, "shop-2024")
    assert not (workspace.datasets_dir / info.id).exists()
    with pytest.raises(NotFoundError, match="other"):
        store.get_dataset(workspace, "shop-2024")
    assert [i.name for i in store.list_datasets(workspace)] == ["other"]


def test_load_is_cached_and_matches_import(workspace):
    info = store.import_bytes(workspace, PAYLOAD, "p.csv")
    first = store.load_dataset(workspace, info.id)
    assert store.load_dataset(workspace, info.name) is first
    assert (info.n_users, info.n_items, info.n_interactions) == (2, 2, 3)
    dense = first.matrix.toarray()
    assert dense[first.user_index("b"), first.item_index("x")] == 2.0
    assert (workspace.datasets_dir / info.id / "meta.json").exists()


def test_stored_files_and_temp_folders(workspace):
    info = store.import_bytes(workspace, PAYLOAD, "p.csv")
    names = sorted(p.name for p in (workspace.datasets_dir / info.id).iterdir())
    assert names == ["interactions.parquet", "meta.json"]
    assert not [p for p in workspace.datasets_dir.iterdir() if p.name.startswith(".")]


def test_import_frames_synthetic(workspace):
    from recsys_core.data.synthetic import SyntheticConfig, make_frames

    inter, items, users = make_frames(SyntheticConfig(n_users=40, n_items=30))
    info = store.import_frames(
        workspace, inter, items=items, users=users, name="synth", source="synthetic"
    )
    data = store.load_dataset(workspace, info.id)
    assert data.nnz == len(inter)
    assert data.item_table["categories"].str.startswith("Genre").all()
    assert set(data.user_table.columns) >= {"segment", "age"}


@pytest.mark.slow
def test_sample_import(workspace):
    """The bundled MovieLens sample: full counts, then the demo defaults (a few seconds)."""
    full = store.import_sample(workspace, full=True)
    assert (full.n_users, full.n_items, full.n_interactions) == (610, 9724, 100_836)
    assert full.report["side"]["items"]["unmatched_count"] == 18
    demo = store.import_sample(workspace)
    assert demo.name == "movielens-small" and demo.report["rows_read"] == 100_836
    assert demo.n_users == 610 and demo.n_items < 4000
    side = demo.report["side"]["items"]
    assert side["unmatched_count"] == 18
    assert side["dropped_by_filters"] == 9724 - demo.n_items
    data = store.load_dataset(workspace, "movielens-small")
    assert np.bincount(data.items).min() >= 5
    assert set(np.unique(data.labels)) == {"train", "valid", "test"}
    assert data.item_titles()[data.item_index(1)] == "Toy Story (1995)"
    assert store.import_sample(workspace).already_imported


def test_core_import_does_not_import_streamlit():
    code = (
        "import sys, recsys_core, recsys_core.data.store, recsys_core.data.health, "
        "recsys_core.data.bench, recsys_core.viz.data, recsys_core.cli.data_cmd; "
        "print('streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
