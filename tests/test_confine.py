"""Confinement of the app's server-path import to the allowed data folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recsys_core.data.confine import (
    ENV_DATA_DIRS,
    SAMPLE_ROOT,
    add_data_dir,
    allowed_dirs,
    confine_path,
    imports_dir,
    remove_data_dir,
)
from recsys_core.errors import DataError

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture()
def imports(workspace, monkeypatch):
    monkeypatch.delenv(ENV_DATA_DIRS, raising=False)
    folder = imports_dir(workspace)
    (folder / "ratings.csv").write_text("user,item\n1,2\n")
    return folder


def test_inside_the_allowed_folders_is_read(workspace, imports):
    assert confine_path(workspace, imports / "ratings.csv") == (imports / "ratings.csv").resolve()
    assert confine_path(workspace, "ratings.csv") == (imports / "ratings.csv").resolve()
    sample = SAMPLE_ROOT / "ml-latest-small" / "ratings.csv"
    assert confine_path(workspace, sample) == sample.resolve()


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "~/.ssh/id_rsa", "../catalog.sqlite", "ratings.csv/../../../etc"]
)
def test_outside_is_refused_naming_the_rule(workspace, imports, path):
    with pytest.raises(DataError) as error:
        confine_path(workspace, path)
    message = str(error.value)
    assert "folders the app may import from" in message or "catalog and secrets" in message
    assert "root:x" not in message  # nothing of the file is echoed


def test_the_catalog_and_secrets_are_refused_even_inside_an_allowed_folder(workspace, imports,
                                                                             monkeypatch):
    monkeypatch.setenv(ENV_DATA_DIRS, str(workspace.root))
    with pytest.raises(DataError, match="catalog and secrets"):
        confine_path(workspace, workspace.catalog_path)


def test_links_that_escape_are_refused(workspace, imports, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("secret,value\n1,2\n")
    (imports / "link.csv").symlink_to(outside)
    with pytest.raises(DataError, match="links followed"):
        confine_path(workspace, imports / "link.csv")
    folder = imports / "folder"
    folder.mkdir()
    (folder / "ok.csv").write_text("user,item\n1,2\n")
    assert confine_path(workspace, folder) == folder.resolve()
    (folder / "escape.csv").symlink_to(outside)  # one escaping entry refuses the folder
    with pytest.raises(DataError, match="links followed"):
        confine_path(workspace, folder)


def test_folders_are_configured_by_env_and_workspace_list(workspace, imports, tmp_path,
                                                          monkeypatch):
    extra, more = tmp_path / "extra", tmp_path / "more"
    extra.mkdir(), more.mkdir()
    (extra / "x.csv").write_text("user,item\n1,2\n")
    with pytest.raises(DataError):
        confine_path(workspace, extra / "x.csv")
    monkeypatch.setenv(ENV_DATA_DIRS, os.pathsep.join([str(extra), str(more)]))
    assert confine_path(workspace, extra / "x.csv").name == "x.csv"
    monkeypatch.delenv(ENV_DATA_DIRS)
    add_data_dir(workspace, extra)
    assert extra.resolve() in allowed_dirs(workspace)
    assert confine_path(workspace, extra / "x.csv").name == "x.csv"
    remove_data_dir(workspace, extra)
    with pytest.raises(DataError):
        confine_path(workspace, extra / "x.csv")


def test_data_page_refuses_etc_passwd_without_echoing_it(app_workspace, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv(ENV_DATA_DIRS, raising=False)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at = at.switch_page("pages/data.py").run()
    at.radio(key="data.source").set_value("A path on the server").run()
    at.text_input(key="data.path").input("/etc/passwd").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "folders the app may import from" in errors[0]
    assert "data-dirs add" in errors[0]
    assert "root:x" not in errors[0] and "/bin/" not in errors[0] and not at.dataframe
    assert not any(b.label == "Import" for b in at.button)
