"""A 20-trial iALS study started from the Tune page in a real browser, with a real worker.

Not a suite test (it takes minutes): the issue's "done when" for tuning, run by hand::

    .venv/bin/python benchmarks/tune_in_browser.py [--workspace /tmp/tune-browser] [--trials 20]
        [--parallel 2] [--screenshot docs/screenshots/tune-study.png]

It starts ``python -m recsys_core worker --cpu-slots PARALLEL`` and ``streamlit run app.py`` on
a fresh workspace, then drives headless Debian chromium with Playwright: load the MovieLens
sample on Home, open Tune, choose iALS on the predefined (fixed 80/10/10) split, PARALLEL
trials at once, start the study, wait for it, reload, check the best-against-defaults table,
take the screenshot and open the best run in Compare. It prints one JSON object: the study's
wall time, trial counts, best parameters and the validation and test NDCG@10 (with CIs) of the
best trial and of the defaults, and the paired test on the test users.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from idle_cpu import _free_port, _wait_http  # noqa: E402 - the app-serving helpers, shared

PATIENCE_MS = 240_000
STUDY = "movielens-small-ials"


def _start(workspace: Path, parallel: int, logs: Path) -> tuple[list[subprocess.Popen], str]:
    env = dict(
        os.environ,
        RECSYS_EXPLORER_HOME=str(workspace),
        RECSYS_EXPLORER_AUTOSTART_WORKER="0",
        PYTHONPATH=str(ROOT),
    )
    port = _free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "recsys_core", "--workspace", str(workspace), "worker",
         "--cpu-slots", str(parallel)],
        cwd=ROOT, env=env, stdout=open(logs / "worker.log", "wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    app = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=open(logs / "app.log", "wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _wait_http(url, 120)
    return [app, worker], url


def _choose(page, label: str, option: str) -> None:  # noqa: ANN001 - a Playwright page
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def _idle(page) -> None:  # noqa: ANN001
    """Wait until the app's script run is over (a click during a rerun can be lost)."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')"
        "?.getAttribute('data-test-script-state') !== 'running'",
        timeout=PATIENCE_MS,
    )


def _settle(page) -> None:  # noqa: ANN001
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
        timeout=60_000,
    )
    page.wait_for_timeout(1500)


def drive(url: str, workspace: Path, args: argparse.Namespace) -> dict:
    """Open a browser on the app and walk the study; a failure leaves ``failed.png``."""
    from playwright.sync_api import sync_playwright

    from recsys_core.workspace import Workspace

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1150})
        page.set_default_timeout(PATIENCE_MS)
        try:
            return _walk(page, url, Workspace(workspace), args)
        except Exception:
            page.screenshot(path=str(workspace.parent / "failed.png"), full_page=True)
            raise
        finally:
            browser.close()


def _start_study(page, url: str, args: argparse.Namespace) -> None:  # noqa: ANN001
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("button", name="Load the MovieLens sample").click()
    page.get_by_text("Loaded movielens-small").first.wait_for()
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_role("link", name="Tune").click()
    page.get_by_text("Search space").first.wait_for()
    _choose(page, "Model", "ials")
    _idle(page)
    _choose(page, "Split", "predefined")
    _idle(page)
    for label, value in (("At once", args.parallel), ("Trials", args.trials)):
        box = page.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        _idle(page)


def _click_start(page, ws) -> None:  # noqa: ANN001
    """Click Start study until the study task is in the workspace (a click can be lost)."""
    from recsys_core.jobs import api

    for _ in range(3):
        page.get_by_role("button", name="Start study").click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if api.list_tasks(ws, kind="study"):
                return
            time.sleep(1)
    raise RuntimeError("three clicks on Start study queued no study")


def _walk(page, url: str, ws, args: argparse.Namespace) -> dict:  # noqa: ANN001
    from recsys_core import studies
    from recsys_core.jobs import api

    _start_study(page, url, args)
    started = time.monotonic()
    _click_start(page, ws)
    task = None
    while task is None or task.is_active:
        time.sleep(2)
        found = api.list_tasks(ws, kind="study")
        task = found[0] if found else None
    wall = time.monotonic() - started
    if task.status != "done":
        raise RuntimeError(f"the study task ended {task.status}: {task.error}")
    summary = studies.summarise(ws, STUDY)
    while api.get_run(ws, summary["defaults"]["run"]).is_active:
        time.sleep(1)
    page.reload(wait_until="domcontentloaded")
    page.get_by_text("Paired over the test users").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    _settle(page)
    Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=args.screenshot)
    page.get_by_role("button", name="Open in Compare").click()
    page.get_by_role("heading", level=1).filter(has_text="Compare").wait_for()
    _settle(page)
    compare_ok = page.locator('[data-testid="stException"]').count() == 0
    summary = studies.summarise(ws, STUDY)
    tests = studies.compare_with_defaults(ws, STUDY)
    paired = tests[tests["metric"] == "ndcg@10"].iloc[0].to_dict()
    return {
        "wall_s": round(wall, 1),
        "trials": summary["trials"],
        "pruning": summary["pruning"],
        "best": summary["best"],
        "defaults": summary["defaults"],
        "paired_ndcg@10": paired,
        "compare_page_ok": compare_ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", default=None, help="fresh folder (default: a temp one)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--screenshot", default=str(ROOT / "docs/screenshots/tune-study.png"))
    args = parser.parse_args()
    workspace = Path(args.workspace or tempfile.mkdtemp(prefix="tune-browser-")) / "ws"
    if workspace.exists():
        parser.error(f"{workspace} exists: give a fresh --workspace")
    logs = workspace.parent
    logs.mkdir(parents=True, exist_ok=True)
    processes, url = _start(workspace, args.parallel, logs)
    try:
        result = drive(url, workspace, args)
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
