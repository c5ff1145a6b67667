"""CPU the Streamlit server spends on one open, idle tab, page by page (issue 19, item 17).

Starts ``streamlit run app.py`` on a temporary workspace holding the MovieLens sample and one
finished run (no worker: nothing is queued or running), opens each page in headless chromium
(Playwright), waits for it to settle, then samples the server process's CPU with psutil over
``--seconds``. Prints one line per page in % of one core; the target is under 5 % when nothing
runs.

    .venv/bin/python benchmarks/idle_cpu.py                 # this checkout
    .venv/bin/python benchmarks/idle_cpu.py --app-dir /tmp/old --seconds 20

A page that computes on first open (Explain's explanation, Embeddings' map) is busy for a
while: give it a longer ``--settle`` (e.g. ``--pages explain,embeddings --settle 120``) to
measure it idle. ``--app-dir`` measures another checkout with this interpreter, e.g.
``git archive <commit> | tar -x -C /tmp/old``, for a before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PAGES = ("", "data", "train", "compare", "explain", "embeddings", "balance")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare(app_dir: Path, workspace: Path, model: str) -> None:
    """Sample dataset plus one finished run, made by the checkout's own code."""
    code = (
        "from pathlib import Path\n"
        "from recsys_core.workspace import Workspace\n"
        "from recsys_core.data.store import import_sample\n"
        "from recsys_core.jobs import api\n"
        f"ws = Workspace(Path({str(workspace)!r})).ensure()\n"
        "info = import_sample(ws)\n"
        f"run = api.submit(ws, {{'dataset': info.id, 'model': {model!r}}})\n"
        "print(api.run_inline(ws, run).status)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(app_dir))
    subprocess.run([sys.executable, "-c", code], cwd=app_dir, env=env, check=True)


def _wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no answer from {url} within {timeout} s")


def measure(
    app_dir: Path, seconds: float, settle: float, model: str, pages: tuple[str, ...] = PAGES
) -> dict[str, float]:
    """``{page: % of one core}`` for the server with one idle tab on that page."""
    import psutil
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="idle-cpu-") as tmp:
        workspace = Path(tmp) / "ws"
        _prepare(app_dir, workspace, model)
        port = _free_port()
        env = dict(
            os.environ,
            RECSYS_EXPLORER_HOME=str(workspace),
            RECSYS_EXPLORER_AUTOSTART_WORKER="0",  # nothing runs: the idle case
            PYTHONPATH=str(app_dir),
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port),
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=app_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_http(url)
            process = psutil.Process(server.pid)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
                )
                for name in pages:
                    page = browser.new_page(viewport={"width": 1280, "height": 860})
                    page.goto(f"{url}/{name}", wait_until="domcontentloaded")
                    page.get_by_role("heading", level=1).first.wait_for(timeout=180_000)
                    page.wait_for_timeout(settle * 1000)  # first render, caches, maps
                    process.cpu_percent(None)
                    time.sleep(seconds)
                    results[name or "home"] = process.cpu_percent(None)
                    print(f"  {name or 'home':<11} {results[name or 'home']:5.1f} %", flush=True)
                    page.close()
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling window per page")
    parser.add_argument("--settle", type=float, default=8.0, help="wait after the page loads")
    parser.add_argument("--model", default="itemknn", help="the finished run's model")
    parser.add_argument(
        "--pages", default=",".join(p or "home" for p in PAGES), help="comma-separated pages"
    )
    args = parser.parse_args()
    pages = tuple("" if p == "home" else p for p in args.pages.split(","))
    results = measure(args.app_dir.resolve(), args.seconds, args.settle, args.model, pages)
    print(f"server CPU, one idle tab, {args.seconds:.0f} s per page ({args.app_dir}):")
    for name, percent in results.items():
        print(f"  {name:<11} {percent:5.1f} % of a core")


if __name__ == "__main__":
    main()
