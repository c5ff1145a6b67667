"""Shared fixtures: small synthetic data with planted structure, a workspace, the device."""

from __future__ import annotations

import os

import pytest
import torch

from recsys_core.data.synthetic import SyntheticConfig, make_synthetic

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two xdist workers on two cores, beside the app, worker and Ray processes
    # some tests start: one torch thread each (and for the processes they start), or OpenMP's
    # spinning threads oversubscribe the machine (a 4 s two-tower test took 90 s in the suite).
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
else:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def synthetic():
    """300 users x 200 items, 5 taste clusters, long tail, time order, side tables."""
    return make_synthetic(SyntheticConfig())


@pytest.fixture(scope="session")
def small_synthetic():
    """A tiny dataset for fast contract checks."""
    return make_synthetic(SyntheticConfig(n_users=60, n_items=40, n_clusters=4, mean_history=8))


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder, also set as $RECSYS_EXPLORER_HOME."""
    from recsys_core.workspace import Workspace

    monkeypatch.setenv("RECSYS_EXPLORER_HOME", str(tmp_path / "ws"))
    return Workspace(tmp_path / "ws").ensure()


def _devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    return found


@pytest.fixture(params=_devices())
def device(request):
    """Every available device: CUDA cases run only where a GPU exists."""
    return request.param


def route_through_app(monkeypatch) -> None:
    """Make AppTest run pages through the router (``app.py``) and never spawn a worker.

    AppTest resets ``PagesManager.uses_pages_directory`` before every run, so with a ``pages/``
    folder next to ``app.py`` it falls back to the old folder-based mode and, after the first
    run, executes the page file alone, skipping the router (``app.py``: sidebar, session
    defaults). The real server switches to ``st.navigation`` mode for good on the first run;
    this patch makes AppTest do the same.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    class RouterPagesManager(PagesManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    monkeypatch.setattr(app_test, "PagesManager", RouterPagesManager)
    monkeypatch.setenv("RECSYS_EXPLORER_AUTOSTART_WORKER", "0")


@pytest.fixture()
def app_workspace(workspace, monkeypatch):
    """The ``workspace`` fixture for AppTest page tests: routed pages, no worker spawned
    (see :func:`route_through_app`)."""
    route_through_app(monkeypatch)
    return workspace


#: An item title that would run as HTML or render as markdown if interpolated unescaped.
HOSTILE_TITLE = '<script>alert("x")</script> **bold** [link](http://example.com)'


@pytest.fixture(scope="session")
def finished_runs(tmp_path_factory):
    """A workspace with finished runs on a small synthetic dataset (planted clusters) whose most
    popular item has :data:`HOSTILE_TITLE`: ``most_popular`` and ``itemknn`` on one split,
    ``random`` on another. Returns ``(workspace, dataset info, {model: run id})``."""
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import make_frames
    from recsys_core.jobs import api
    from recsys_core.jobs.spec import RunSpec
    from recsys_core.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("runs") / "ws").ensure()
    interactions, items, _ = make_frames(
        SyntheticConfig(n_users=80, n_items=60, n_clusters=4, mean_history=10)
    )
    top = interactions["item"].value_counts().index[0]
    items = items.copy()
    items.loc[items["item"] == top, "title"] = HOSTILE_TITLE
    info = import_frames(ws, interactions, name="synthetic", source="t", items=items)
    split = {"protocol": "random", "test_ratio": 0.2, "seed": 0}
    runs = {}
    for model, seed in (("most_popular", 0), ("itemknn", 0), ("random", 1)):
        spec = RunSpec(dataset=info.id, model=model, split=dict(split, seed=seed))
        runs[model] = api.submit(ws, spec)
        api.run_inline(ws, runs[model])  # in-process: no child start-up per run
    assert {api.get_run(ws, r).status for r in runs.values()} == {"done"}
    return ws, info, runs
