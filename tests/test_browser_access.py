"""Real browser: the app exposed on a second loopback address (127.0.0.2, which Linux routes
without a network namespace; the app treats every address but 127.0.0.1 as exposed) with one
analyst and one viewer: an anonymous visitor gets the sign-in form only, on any URL; the viewer
gets demo mode only; the analyst everything; sessions of two browsers stay apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, running_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]
ADDRESS = "127.0.0.2"
PASSWORD = "correct horse battery"
WAIT = 90_000  # ms: a busy 2-core machine


@pytest.fixture(scope="module")
def exposed_url(tmp_path_factory) -> Iterator[str]:
    from argon2 import PasswordHasher, profiles

    from recsys_core import access
    from recsys_core.workspace import Workspace

    workspace = Workspace(tmp_path_factory.mktemp("exposed") / "ws").ensure()
    # Argon2 keeps its parameters in each hash, so accounts hashed with the cheapest profile
    # verify cheaply in the app too (the default costs about a second per sign-in).
    default, access._HASHER = access._HASHER, PasswordHasher.from_parameters(profiles.CHEAPEST)
    try:
        access.add_account(workspace, "ana", PASSWORD, "analyst")
        access.add_account(workspace, "vic", PASSWORD, "viewer")
    finally:
        access._HASHER = default
    root = Path(workspace.root)
    with running_app(root, name="browser-access", worker=False, address=ADDRESS) as url:
        yield url


def _sign_in(page, name: str) -> None:
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=WAIT)


@pytest.mark.timeout(240)
def test_login_gate_and_roles_in_a_real_browser(exposed_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            anonymous, viewer, analyst = (browser.new_page() for _ in range(3))
            for page in (anonymous, viewer, analyst):
                page.set_default_timeout(WAIT)
            # Anonymous, on the root and on a deep link: the sign-in form and nothing else.
            for path in ("/data", ""):  # a deep link gets a "page not found" notice, then this
                anonymous.goto(exposed_url + path, wait_until="domcontentloaded")
                anonymous.get_by_role("button", name="Sign in").wait_for()
                assert anonymous.locator('[data-testid="stSidebarNav"]').count() == 0
                assert anonymous.get_by_text("Workspace:").count() == 0
                assert anonymous.get_by_role("heading", name="Data").count() == 0
            anonymous.get_by_role("textbox", name="User name").fill("vic")
            anonymous.get_by_role("textbox", name="Password").fill("not the password")
            anonymous.get_by_role("button", name="Sign in").click()
            anonymous.get_by_text("wrong user name or password").wait_for()
            anonymous.screenshot(path=str(ARTIFACTS / "access-anonymous.png"))

            viewer.goto(exposed_url, wait_until="domcontentloaded")
            _sign_in(viewer, "vic")
            demo_title = viewer.get_by_role("heading", level=1)
            demo_title.filter(has_text="Recommendations, explained").wait_for()
            links = viewer.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
            assert not any("Data" in t or "Train" in t for t in links), links
            viewer.screenshot(path=str(ARTIFACTS / "access-viewer.png"))

            analyst.goto(exposed_url, wait_until="domcontentloaded")
            _sign_in(analyst, "ana")
            nav = analyst.locator('[data-testid="stSidebarNav"]')
            for title in ("Home", "Data", "Train", "Compare", "Explain"):
                nav.get_by_role("link", name=title, exact=True).wait_for()
            nav.get_by_role("link", name="Data", exact=True).click()
            analyst.get_by_role("heading", level=1).filter(has_text="Data").wait_for()
            analyst.screenshot(path=str(ARTIFACTS / "access-analyst.png"))

            # The viewer's tab is still the viewer's: sessions do not leak.
            assert viewer.get_by_text("Signed in as vic").count() == 1
            assert viewer.locator('[data-testid="stSidebarNav"]').get_by_text("Data").count() == 0
            viewer.get_by_role("button", name="Log out").click()
            viewer.get_by_role("button", name="Sign in").wait_for()
        finally:
            browser.close()
