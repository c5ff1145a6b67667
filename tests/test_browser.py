"""Real-browser walk through the main path: headless Debian chromium driven by Playwright.

The app runs as ``streamlit run app.py`` on a free local port with a temporary workspace and
its own worker process. The walk is a list of ordered step functions (:data:`STEPS`), each
taking the shared :class:`Walk`, each run as a test of its own in that order (so each step has
its own time limit and name in the report); after a failed step the rest are skipped.
Every step leaves a screenshot in ``test-artifacts/`` and refreshes ``docs/screenshots/``
(the README's pictures).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    NO_CHROMIUM,
    ROOT,
    run_step,
    running_app,
)

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "docs" / "screenshots"
#: Seconds a step may wait for the app (training on the sample included) on a busy 2-core CI.
PATIENCE = 240


@dataclass
class Walk:
    """What every step gets: the browser page, the app's URL and the workspace behind it."""

    page: object  # playwright.sync_api.Page
    url: str
    workspace: Path

    def shot(self, name: str) -> None:
        """Screenshot to test-artifacts/<name>.png and docs/screenshots/<name>.png."""
        ARTIFACTS.mkdir(exist_ok=True)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # Let placeholders (skeletons of tables and widgets still loading) fill in first.
        self.page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
            timeout=30_000,
        )
        self.page.wait_for_timeout(800)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        shutil.copyfile(ARTIFACTS / f"{name}.png", SCREENSHOTS / f"{name}.png")

    def goto_page(self, title: str) -> None:
        """Click the page's link in the sidebar navigation and wait for its title."""
        self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
        self.page.get_by_role("heading", level=1).filter(has_text=title).wait_for(
            timeout=PATIENCE * 1000
        )

    def text(self, text: str, timeout: float = PATIENCE) -> None:
        """Wait until ``text`` is visible somewhere on the page."""
        self.page.get_by_text(text, exact=False).first.wait_for(timeout=timeout * 1000)

    def no_exception(self) -> None:
        """No Streamlit exception box (a traceback) anywhere on the page."""
        assert self.page.locator('[data-testid="stException"]').count() == 0


# ----- the steps, in order (append yours at the end of STEPS) --------------------------------
def step_home_load_sample(walk: Walk) -> None:
    walk.text("Recsys Explorer")
    walk.page.get_by_role("button", name="Load the MovieLens sample").click()
    walk.text("Loaded movielens-small")
    walk.no_exception()
    walk.shot("home")


def step_data_health(walk: Walk) -> None:
    walk.goto_page("Data")
    walk.text("Health · movielens-small")
    walk.text("Interactions")
    # The four health figures are drawn (plotly charts).
    walk.page.locator(".js-plotly-plot").nth(3).wait_for(timeout=PATIENCE * 1000)
    walk.no_exception()
    walk.shot("data")


def step_train_ease_and_itemknn(walk: Walk) -> None:
    from recsys_core.jobs import api
    from recsys_core.workspace import Workspace

    ws = Workspace(walk.workspace)
    # A newer second dataset: a reload that forgot the URL would fall back to it.
    _import_other_dataset(ws)
    walk.goto_page("Train")
    walk.text("2 · Models")
    walk.page.get_by_role("button", name="Queue 2 runs").click()
    walk.text("Queued 2 run(s)")
    # Reload mid-task: the dataset comes back from the URL and the runs stay in the panel.
    assert "dataset=" in walk.page.url, walk.page.url
    walk.page.reload(wait_until="domcontentloaded")
    walk.page.get_by_role("heading", level=1).filter(has_text="Train").wait_for()
    walk.text("Dataset: movielens-small")
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        runs = api.list_runs(ws)
        if len(runs) == 2 and all(r.is_terminal for r in runs):
            break
        time.sleep(1)
    statuses = {r.spec.model: (r.status, r.error) for r in api.list_runs(ws)}
    assert {m: s for m, (s, _) in statuses.items()} == {"ease": "done", "itemknn": "done"}, statuses
    # The live panel redraws the page when the last run ends, but not always (a race between the
    # fragment that stops polling and the runs ending, seen once in a full suite): reload, as an
    # analyst would, rather than fail the walk on it. Known defect, noted on issue 19.
    walk.page.reload(wait_until="domcontentloaded")
    walk.text("Finished runs · 2")
    walk.no_exception()
    walk.shot("train")


def _import_other_dataset(ws) -> None:  # noqa: ANN001 - a Workspace
    from recsys_core.data.store import import_frames
    from recsys_core.data.synthetic import SyntheticConfig, make_frames

    interactions, items, _ = make_frames(SyntheticConfig(n_users=30, n_items=20, n_clusters=2))
    import_frames(ws, interactions, name="other", source="browser test", items=items)


def step_compare_both_in_table(walk: Walk) -> None:
    walk.goto_page("Compare")
    walk.text("Leaderboard")
    # Both runs are in the leaderboard (grid cells) and on the bar chart's axis.
    grid = walk.page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for(timeout=PATIENCE * 1000)
    bars = walk.page.locator(".js-plotly-plot").first
    bars.wait_for(timeout=PATIENCE * 1000)
    labels = bars.locator(".ytick text").all_text_contents()
    assert any(t.startswith("ease") for t in labels), labels
    assert any(t.startswith("itemknn") for t in labels), labels
    walk.text("Two runs, paired")
    walk.no_exception()
    walk.shot("compare")


def step_explain_a_recommendation(walk: Walk) -> None:
    walk.goto_page("Explain")
    walk.text("Recommended item to explain")
    walk.text("Recommended because")  # the plain-language sentence of a real explanation
    walk.text("Efficiency")
    assert walk.page.get_by_text("holds", exact=True).count() >= 1  # base + Σ = score checked
    walk.page.locator(".js-plotly-plot").first.wait_for(timeout=PATIENCE * 1000)
    walk.no_exception()
    walk.shot("explain")
    # A reload (or a shared link) lands on the same run, user and item.
    from urllib.parse import parse_qs, urlparse

    before = parse_qs(urlparse(walk.page.url).query)
    assert {"dataset", "run", "user", "item"} <= set(before), before
    walk.page.reload(wait_until="domcontentloaded")
    walk.text(f"User {before['user'][0]}")
    walk.text("Recommended because")
    assert parse_qs(urlparse(walk.page.url).query) == before
    walk.no_exception()


def step_explain_add_an_item_by_title(walk: Walk) -> None:
    """What if: search the catalogue by title, add a match to the user's history, and the
    top-10 is re-ranked through the model's fold-in, before vs after."""
    search = walk.page.get_by_label("Find items to add")
    search.fill("Star")
    search.press("Enter")
    picker = walk.page.locator('[data-testid="stMultiSelect"]').filter(
        has_text="Add to the history"
    )
    # The search reruns the page, and a rerun that lands after the picker opened closes it
    # again (the fresh-clone CI run waited 240 s on a closed list): wait for the rerun to end,
    # then open the list, and open it again if a late rerun closed it.
    _wait_idle(walk)
    option = walk.page.get_by_role("option").filter(has_text="Star").first
    for attempt in range(6):
        picker.click()
        try:
            option.wait_for(timeout=10_000)
            break
        except Exception:  # playwright's TimeoutError: the list closed or is not there yet
            if attempt == 5:
                raise
            walk.page.keyboard.press("Escape")
            _wait_idle(walk)
    option.click()
    walk.page.keyboard.press("Escape")
    walk.text("Explaining the edited history: 1 item(s) added")
    walk.text("Entered the top 10")
    # The summary names what entered and left (or says the same items moved): the list moved.
    walk.page.get_by_text(re.compile("changed —|in a different order")).first.wait_for()
    walk.text("Recommended because")  # the explanation of the edited history
    walk.no_exception()
    walk.page.get_by_role("heading", name="What if?").evaluate("e => e.scrollIntoView()")
    walk.shot("explain-whatif")


def _wait_idle(walk: Walk) -> None:
    """Wait until the app is not running its script (Streamlit's "Running..." widget gone)."""
    walk.page.wait_for_timeout(500)  # a rerun just asked for may not have started yet
    walk.page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !/Running/i.test(document.querySelector('[data-testid=\"stStatusWidget\"]')"
        ".innerText)",
        timeout=PATIENCE * 1000,
    )


def step_embeddings_map_with_a_user(walk: Walk) -> None:
    walk.goto_page("Embeddings")
    # The sample's 3.6k-item map is computed on the page (bigger ones by the worker).
    walk.text("k-NN preservation@10")
    walk.page.locator(".js-plotly-plot").first.wait_for(timeout=PATIENCE * 1000)
    picker = walk.page.locator('[data-testid="stSelectbox"]').filter(has_text="Highlight a user")
    picker.click()
    walk.page.get_by_role("option").nth(1).click()  # the first test user
    walk.text("history items")  # the caption under the map counts the highlighted markers
    walk.no_exception()
    walk.shot("embeddings")


def step_balance_two_point_sweep(walk: Walk) -> None:
    from recsys_core.jobs import api
    from recsys_core.workspace import Workspace

    walk.goto_page("Balance")
    walk.text("Interactions on head items")  # the data's imbalance, before any training
    walk.page.locator(".js-plotly-plot").nth(2).wait_for(timeout=PATIENCE * 1000)
    walk.page.get_by_role("tab", name="Sweep builder").click()
    walk.page.locator('[data-testid="stSelectbox"]').filter(has_text="Model").first.click()
    walk.page.get_by_role("option", name="cf · itemknn").click()
    values = walk.page.get_by_label("pop_norm values (comma-separated)")
    values.fill("0,0.5")
    values.press("Enter")
    walk.page.get_by_role("button", name="Queue sweep").click()
    walk.text("Queued sweep")
    ws = Workspace(walk.workspace)
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        runs = [r for r in api.list_runs(ws) if r.group]
        if len(runs) == 2 and all(r.is_terminal for r in runs):
            break
        time.sleep(1)
    assert sorted(r.status for r in runs) == ["done", "done"], [(r.label, r.error) for r in runs]
    walk.page.get_by_role("tab", name="Sweep results").click()
    walk.text("2 of 2 points done")  # the results view refreshes on its own
    walk.text("Pareto front")  # the trade-off chart's legend
    walk.no_exception()
    walk.shot("balance")


#: The RecBole upload: user 1 has far more history than SASRec's 50-item window (issue 19).
RECBOLE_NAME = "recbole-walk"
SASREC_LABEL = "sasrec-short"
LONG_USER = "1"


def _write_recbole_inter(folder: Path) -> Path:
    """A small RecBole ``.inter`` file with planted structure: three item clusters, each user
    mostly within one, in time order; user 1 has 80 items (over SASRec's 50-item window)."""
    import numpy as np

    rng = np.random.default_rng(19)
    n_items, n_clusters = 120, 3
    rows = []
    for user in range(1, 61):
        cluster = user % n_clusters
        size = 80 if str(user) == LONG_USER else int(rng.integers(8, 16))
        own = np.arange(cluster, n_items, n_clusters)
        rest = np.setdiff1d(np.arange(n_items), own)
        picked = np.concatenate(
            [rng.choice(own, size=min(size, len(own)), replace=False),
             rng.choice(rest, size=max(0, size - len(own)), replace=False)]
        ).tolist()  # fmt: skip
        start = int(rng.integers(880_000_000, 890_000_000))
        for step, item in enumerate(picked):
            rows.append(f"{user}\t{item + 1}\t{rng.integers(1, 6)}.0\t{start + 3600 * step}.0")
    path = folder / f"{RECBOLE_NAME}.inter"
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def step_data_upload_recbole_inter(walk: Walk) -> None:
    path = _write_recbole_inter(walk.workspace.parent)
    walk.goto_page("Data")
    walk.page.get_by_text("Import a dataset").first.click()  # collapsed once datasets exist
    uploader = walk.page.locator('[data-testid="stFileUploader"]').filter(
        has_text="Interactions file"
    )
    uploader.locator('input[type="file"]').set_input_files(str(path))
    walk.text("Column mapping")
    # RecBole's name:type headers are recognised (before, the import said "no user column").
    walk.page.locator("code", has_text="recbole").first.wait_for()
    walk.page.get_by_label("Dataset name (optional)").fill(RECBOLE_NAME)
    walk.page.get_by_role("button", name="Import", exact=True).click()
    walk.text(f"Health · {RECBOLE_NAME}")
    walk.text("Import report")
    walk.no_exception()


def _grid_rows(grid) -> list[list[str]]:  # noqa: ANN001 - a Playwright locator of a stDataFrame
    """The cell texts of a st.dataframe's rendered rows, top down (glide-data-grid draws on a
    canvas and mirrors the cells in a hidden accessible table, which this reads)."""
    cells = grid.locator('[role="row"] [role="gridcell"]')
    cells.first.wait_for(state="attached", timeout=30_000)
    rows = []
    for row in grid.locator('[role="row"]').all():
        texts = [(c.text_content() or "").strip() for c in row.locator('[role="gridcell"]').all()]
        if texts:
            rows.append(texts)
    return rows


def step_train_short_sasrec(walk: Walk) -> None:
    """A short SASRec on the uploaded file, queued like any run (the next step explains it)."""
    from recsys_core.data.store import get_dataset
    from recsys_core.jobs import api
    from recsys_core.workspace import Workspace

    ws = Workspace(walk.workspace)
    run = api.submit(
        ws,
        {
            "dataset": get_dataset(ws, RECBOLE_NAME).id,
            "model": "sasrec",
            "split": {"protocol": "leave_last"},  # keeps user 1's history over the window
            "config": {"epochs": 3, "hidden": 16, "batch_size": 32},
            "label": SASREC_LABEL,
        },
    )
    record = api.wait(ws, run, timeout=PATIENCE)
    assert record.status == "done", (record.status, record.error)


def step_explain_long_history_sasrec(walk: Walk) -> None:
    from recsys_core.data.store import get_dataset
    from recsys_core.jobs import api
    from recsys_core.workspace import Workspace

    ws = Workspace(walk.workspace)
    dataset = get_dataset(ws, RECBOLE_NAME).id
    run = next(r.id for r in api.list_runs(ws) if r.spec.label == SASREC_LABEL)
    walk.page.goto(
        f"{walk.url}/explain?dataset={dataset}&run={run}&user={LONG_USER}",
        wait_until="domcontentloaded",
    )
    walk.text(f"User {LONG_USER}")
    walk.text("oldest first")  # the history table's caption
    walk.page.get_by_role("button", name="Explain in the background").click()
    walk.text("Recommended because")
    walk.no_exception()
    # The explained item (the page writes its raw id into the URL; titles are the ids here) ...
    from urllib.parse import parse_qs, urlparse

    item = parse_qs(urlparse(walk.page.url).query)["item"][0]
    metric = walk.page.locator('[data-testid="stMetric"]').filter(has_text="Rank")
    explained_rank = int(metric.locator('[data-testid="stMetricValue"]').inner_text().strip())
    # ... sits in the Top-10 table at the rank its explanation states.
    rows = _grid_rows(walk.page.locator('[data-testid="stDataFrame"]').nth(1))
    positions = [n for n, row in enumerate(rows, start=1) if row[1:2] == [item]]
    assert positions, f"item {item} is not in the Top-10 table {rows}"
    assert rows[positions[0] - 1][0] == str(positions[0]), rows
    assert positions[0] == explained_rank, (
        f"the Top-10 table lists item {item} at #{positions[0]} but its explanation says rank "
        f"{explained_rank}"
    )


def step_tune_page(walk: Walk) -> None:
    walk.goto_page("Tune")
    walk.text("Search space")
    walk.no_exception()
    walk.shot("tune")


def step_timeline_rolling_evaluation(walk: Walk) -> None:
    """A rolling evaluation started from the page runs in the real worker with progress: the
    small RecBole upload, the default models (iALS, EASE) and strategies, two windows."""
    from recsys_core.data.store import get_dataset
    from recsys_core.jobs import api
    from recsys_core.workspace import Workspace

    ws = Workspace(walk.workspace)
    dataset = get_dataset(ws, RECBOLE_NAME).id
    walk.page.goto(f"{walk.url}/timeline?dataset={dataset}", wait_until="domcontentloaded")
    walk.text("Start a rolling evaluation")
    walk.text("No rolling evaluation of this dataset yet")
    windows = walk.page.locator('[data-testid="stSlider"]').filter(has_text="Windows")
    windows.get_by_role("slider").press("Home")  # the fewest windows: 2
    windows.get_by_text("2", exact=True).first.wait_for()
    walk.page.get_by_role("button", name="Start", exact=True).click()
    walk.page.locator('[data-testid="stProgress"]').first.wait_for()  # the worker's progress
    walk.text("Best mean")  # the results replace the progress bar when the task is done
    tasks = api.list_tasks(ws, kind="rolling")
    assert [t.status for t in tasks] == ["done"], [(t.status, t.error) for t in tasks]
    assert tasks[0].payload["spec"]["windows"] == 2, tasks[0].payload
    walk.page.locator(".js-plotly-plot").first.wait_for()
    walk.no_exception()
    walk.shot("timeline")


STEPS: list[Callable[[Walk], None]] = [
    step_home_load_sample,
    step_data_health,
    step_train_ease_and_itemknn,
    step_compare_both_in_table,
    step_explain_a_recommendation,
    step_explain_add_an_item_by_title,
    step_embeddings_map_with_a_user,
    step_balance_two_point_sweep,
    step_data_upload_recbole_inter,
    step_train_short_sasrec,
    step_explain_long_history_sasrec,
    step_tune_page,
    step_timeline_rolling_evaluation,
    # Embeddings, Explain and Balance steps are appended here by their owners.
]


# ----- the app and the browser -----------------------------------------------------------------
@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``streamlit run app.py`` on a free port, plus a worker, on a temporary workspace."""
    workspace = tmp_path_factory.mktemp("walk") / "ws"
    with running_app(workspace, name="browser") as url:
        yield url, workspace


@pytest.fixture(scope="module")
def walk(app_url) -> Iterator[Walk]:
    """One browser page for the whole walk, opened the way a restored tab opens it."""
    from playwright.sync_api import sync_playwright

    url, workspace = app_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(PATIENCE * 1000)
            # The first request on a fresh server is a deep link (a tab restored after a server
            # restart): the page must still come up through the router (its sidebar, its pages).
            page.goto(f"{url}/data", wait_until="domcontentloaded")
            nav = page.locator('[data-testid="stSidebarNav"]')
            nav.get_by_role("link", name="Home", exact=True).wait_for(timeout=PATIENCE * 1000)
            page.get_by_role("heading", level=1).filter(has_text="Data").wait_for()
            page.goto(url, wait_until="domcontentloaded")
            yield Walk(page=page, url=url, workspace=workspace)
        finally:
            browser.close()


#: The first step that failed: the walk is one story, so the steps after it are skipped.
_FAILED: list[str] = []


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.timeout(PATIENCE + 60)
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.__name__.removeprefix("step_"))
def test_main_path_in_a_real_browser(step, walk):
    """One step of the walk a test each (in order, on one page), so each has its own time."""
    run_step(step, walk, _FAILED)
