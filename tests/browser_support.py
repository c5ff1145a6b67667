"""What the real-browser tests share: Debian's chromium, and the app started on a free port.

``tests/test_browser.py`` (the main walk) and ``tests/test_browser_offline.py`` (no request
leaves the origin; reports open from disk) both start ``streamlit run app.py`` through
:func:`running_app` and drive Debian's chromium with Playwright.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
NO_CHROMIUM = "Debian's chromium is not installed (make test installs it: apt-get install chromium)"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Wait until the app's health endpoint answers (RuntimeError if the app exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer on {url} within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """Terminate a process this test started (kill it after 15 s)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running_app(
    workspace: Path,
    *,
    name: str,
    worker: bool = True,
    env: dict[str, str] | None = None,
    address: str = "127.0.0.1",
) -> Iterator[str]:
    """``streamlit run app.py`` bound to ``address`` on a free port (plus a worker when
    ``worker``) on ``workspace``; yields the app's URL. Logs go to
    ``test-artifacts/<name>-app.log`` (and ``-worker.log``)."""
    full_env = dict(
        os.environ,
        RECSYS_EXPLORER_HOME=str(workspace),
        RECSYS_EXPLORER_AUTOSTART_WORKER="0",  # this helper owns the worker and stops it
        PYTHONPATH=str(ROOT),
    ) | (env or {})
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port(address)
    with ExitStack() as stack:
        if worker:
            worker_log = stack.enter_context(open(ARTIFACTS / f"{name}-worker.log", "wb"))
            process = subprocess.Popen(
                [sys.executable, "-m", "recsys_core", "--workspace", str(workspace), "worker"],
                cwd=ROOT, env=full_env, stdout=worker_log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            stack.callback(stop, process)
        app_log = stack.enter_context(open(ARTIFACTS / f"{name}-app.log", "wb"))
        app = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.address", address, "--server.port", str(port),
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none",
            ],
            cwd=ROOT, env=full_env, stdout=app_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.callback(stop, app)
        url = f"http://{address}:{port}"
        wait_http(url, app, timeout=120)
        yield url


def run_step(step, target, failed: list[str], *, prefix: str = "") -> None:  # noqa: ANN001
    """Run one step of an ordered walk on ``target`` (it has a Playwright ``page``).

    The steps are one story on one page: after a failed step (its name is appended to
    ``failed`` and a screenshot saved as ``test-artifacts/failed-<prefix><step>.png``) the
    later ones are skipped.
    """
    import pytest

    if failed:
        pytest.skip(f"an earlier step failed: {failed[0]}")
    try:
        step(target)
    except Exception:
        failed.append(step.__name__)
        target.page.screenshot(path=str(ARTIFACTS / f"failed-{prefix}{step.__name__}.png"))
        raise
