"""Shared by the real-browser tests: Debian's chromium, and ``streamlit run app.py`` started on
a free port of a given address, stopped cleanly."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

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


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Until the app's health endpoint answers (or the process exits, or time runs out)."""
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
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def app_env(workspace: Path) -> dict[str, str]:
    """The environment of an app (or worker) process on ``workspace``, with no autostarted
    worker (the test owns its processes)."""
    return dict(
        os.environ,
        RECSYS_EXPLORER_HOME=str(workspace),
        RECSYS_EXPLORER_AUTOSTART_WORKER="0",
        PYTHONPATH=str(ROOT),
    )


def start_app(
    workspace: Path, log: IO[bytes], address: str = "127.0.0.1"
) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` bound to ``address`` on a free port; (process, url)."""
    port = free_port(address)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.address", address,
            "--server.port", str(port),
            "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ],
        cwd=ROOT,
        env=app_env(workspace),
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    return process, f"http://{address}:{port}"
