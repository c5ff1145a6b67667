"""Nothing leaves the machine (issue 15), in a real browser (Debian's chromium, Playwright).

The app runs on the bundled MovieLens sample with two finished runs. Every request the browser
makes (and every websocket it opens) is recorded; anything not to the app's own origin is
blocked and fails the test. The steps: every page of the analyst's navigation, demo mode
through the sidebar switch, and the report exported from Compare opened from disk
(``file://``) with the network blocked, where every chart must render.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    NO_CHROMIUM,
    run_step,
    running_app,
)

pytestmark = pytest.mark.browser

#: Seconds a step may wait for the app on a busy 2-core machine.
PATIENCE = 180
#: URL schemes that never touch a network.
LOCAL_SCHEMES = ("data:", "blob:", "about:")
#: Pages of the analyst's navigation, with the charts each draws on the sample (at least).
PAGES = {
    "Home": 0, "Data": 4, "Demo": 1, "Train": 0, "Compare": 4, "Explain": 2, "Embeddings": 0,
    "Balance": 3, "Tune": 0, "Timeline": 0,
}  # fmt: skip


@dataclass
class Session:
    """The browser page on the app, and every outside request it attempted."""

    page: object  # playwright.sync_api.Page
    url: str
    workspace: Path
    outside: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    def goto_page(self, title: str) -> None:
        nav = self.page.locator('[data-testid="stSidebarNav"]')
        nav.get_by_role("link", name=title, exact=True).click()
        self.page.get_by_role("heading", level=1).first.wait_for(timeout=PATIENCE * 1000)

    def settle(self, charts: int = 0) -> None:
        """Wait for ``charts`` plotly charts to draw, skeletons to fill, and the network to rest."""
        if charts:
            self.page.locator(".js-plotly-plot .main-svg").nth(charts - 1).wait_for(
                timeout=PATIENCE * 1000
            )
        self.page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
            timeout=PATIENCE * 1000,
        )
        self.page.wait_for_load_state("networkidle", timeout=PATIENCE * 1000)
        self.page.wait_for_timeout(500)

    def no_outside_requests(self, where: str) -> None:
        assert self.outside == [], f"{where}: requests left the origin: {self.outside}"
        assert not self.page.locator('[data-testid="stException"]').count(), where


# ----- the steps, in order ----------------------------------------------------------------------
def _visit(s: Session, titles: list[str]) -> None:
    for title in titles:
        s.goto_page(title)
        s.settle(PAGES[title])
        s.page.screenshot(path=str(ARTIFACTS / f"offline-{title.lower()}.png"))
        s.no_outside_requests(title)
    assert any(u.startswith(s.url) for u in s.seen)  # the recorder saw the app's own requests


# Two steps of five pages each, so each has its own time limit (ten pages took 48 s once).
def step_first_pages_stay_on_the_origin(s: Session) -> None:
    _visit(s, list(PAGES)[:5])


def step_other_pages_stay_on_the_origin(s: Session) -> None:
    _visit(s, list(PAGES)[5:])


def step_demo_mode_through_the_switch(s: Session) -> None:
    s.page.locator('[data-testid="stSidebar"]').get_by_text("Demo mode").click()
    s.page.get_by_role("heading", level=1).filter(has_text="Recommendations, explained").wait_for()
    s.page.locator(".card").first.wait_for(timeout=PATIENCE * 1000)
    s.settle(1)
    links = s.page.locator('[data-testid="stSidebarNav"] a')
    assert links.count() <= 1  # the Demo page alone (a one-page navigation may be hidden)
    assert "Adds up" in s.page.locator(".card").first.inner_text()
    s.page.screenshot(path=str(ARTIFACTS / "offline-demo-mode.png"))
    s.no_outside_requests("demo mode")
    s.page.locator('[data-testid="stSidebar"]').get_by_text("Demo mode").click()
    s.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Compare").wait_for()


def step_compare_report_opens_offline_from_disk(s: Session) -> None:
    s.goto_page("Compare")
    s.settle(4)
    with s.page.expect_download(timeout=PATIENCE * 1000) as info:
        s.page.get_by_role("button", name="Report (HTML, opens offline)").click()
    report = s.workspace.parent / "comparison.html"
    info.value.save_as(report)
    s.no_outside_requests("Compare download")
    # A fresh context with the network off; every request it makes is recorded.
    context = s.page.context.browser.new_context(offline=True)
    requests: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(PATIENCE * 1000)
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri(), wait_until="load")
        plots = page.locator(".js-plotly-plot")
        plots.nth(3).locator(".main-svg").first.wait_for()
        n_plots = plots.count()
        assert n_plots == 4, n_plots  # leaderboard, trade-off, two segment views
        assert all(plots.nth(i).locator(".main-svg").count() >= 1 for i in range(n_plots))
        page.screenshot(path=str(ARTIFACTS / "offline-report.png"))
    finally:
        context.close()
    outside = [u for u in requests if not u.startswith(("file:", *LOCAL_SCHEMES))]
    assert outside == [], f"the report requested {outside}"


STEPS: list[Callable[[Session], None]] = [
    step_first_pages_stay_on_the_origin,
    step_other_pages_stay_on_the_origin,
    step_demo_mode_through_the_switch,
    step_compare_report_opens_offline_from_disk,
]


# ----- the app and the browser -------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_app(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The app on the sample with two finished runs (trained here, in-process, before it starts)."""
    from recsys_core.data.store import import_sample
    from recsys_core.jobs import api
    from recsys_core.jobs.spec import RunSpec
    from recsys_core.workspace import Workspace

    workspace = tmp_path_factory.mktemp("offline") / "ws"
    ws = Workspace(workspace).ensure()
    info = import_sample(ws)
    for model in ("most_popular", "random"):  # the two cheapest models: seconds on the sample
        api.run_inline(ws, api.submit(ws, RunSpec(dataset=info.id, model=model)))
    assert {r.status for r in api.list_runs(ws)} == {"done"}
    with running_app(workspace, name="offline", worker=False) as url:
        yield url, workspace


@pytest.fixture(scope="module")
def session(sample_app) -> Iterator[Session]:
    from playwright.sync_api import sync_playwright

    url, workspace = sample_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860},
                                          accept_downloads=True)  # fmt: skip
            s = Session(page=None, url=url, workspace=workspace)

            def gate(route) -> None:  # noqa: ANN001 - a Playwright Route
                target = route.request.url
                if target.startswith((url, *LOCAL_SCHEMES)):
                    route.continue_()
                else:
                    s.outside.append(target)
                    route.abort()

            context.route("**/*", gate)
            page = context.new_page()
            page.on("request", lambda request: s.seen.append(request.url))
            page.on("websocket", lambda ws: None if ws.url.startswith(url.replace("http", "ws"))
                    else s.outside.append(ws.url))  # fmt: skip
            page.set_default_timeout(PATIENCE * 1000)
            s.page = page
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("heading", level=1).first.wait_for()
            yield s
        finally:
            browser.close()


_FAILED: list[str] = []


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.timeout(PATIENCE * 3)
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.__name__.removeprefix("step_"))
def test_nothing_leaves_the_machine(step, session):
    """One step a test (in order, on one page), so each has its own time."""
    run_step(step, session, _FAILED, prefix="offline-")
