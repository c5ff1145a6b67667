"""Which server folders the app may import from ("a path on the server" on the Data page).

The app reads a server path only inside the allowed data folders:

- ``<workspace>/imports/`` (created on first use: copy files there to import them);
- the bundled sample (``sample_data/``);
- every folder in ``$RECSYS_EXPLORER_DATA_DIRS`` (separated by ``:``; ``;`` on Windows);
- every folder listed in ``<workspace>/data_dirs.txt`` (one a line; ``python -m recsys_core
  data-dirs add FOLDER``).

The path is resolved first (``..`` and symbolic links followed), then checked, so a link inside
an allowed folder that points outside is refused; a folder is walked and any entry escaping the
allowed folders refuses the whole import. The workspace's own catalog and secrets (accounts,
pseudonymisation key) are refused even when an allowed folder contains them. A refused path is
never opened, so no error can echo its contents.

The command line is not confined: it runs as the analyst's own user, who can read those files
anyway; the confinement protects the server from people who only reach the web page.
"""

from __future__ import annotations

import os
from pathlib import Path

from recsys_core.errors import DataError
from recsys_core.workspace import Workspace

ENV_DATA_DIRS = "RECSYS_EXPLORER_DATA_DIRS"
IMPORTS_DIR = "imports"
DATA_DIRS_FILE = "data_dirs.txt"
SAMPLE_ROOT = Path(__file__).resolve().parents[2] / "sample_data"
#: Workspace entries no import may read, wherever the allowed folders are.
_SECRETS = ("catalog.sqlite", "access", "secrets")


def imports_dir(ws: Workspace) -> Path:
    """``<workspace>/imports``, created if missing."""
    folder = ws.root / IMPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def configured_dirs(ws: Workspace) -> list[Path]:
    """Folders added by ``$RECSYS_EXPLORER_DATA_DIRS`` and ``<workspace>/data_dirs.txt``."""
    entries = [e for e in os.environ.get(ENV_DATA_DIRS, "").split(os.pathsep) if e.strip()]
    listed = ws.root / DATA_DIRS_FILE
    if listed.exists():
        entries += [line.strip() for line in listed.read_text(encoding="utf-8").splitlines()]
    return [Path(e).expanduser().resolve() for e in entries if e and not e.startswith("#")]


def allowed_dirs(ws: Workspace) -> list[Path]:
    """Every folder a server-path import may read from (resolved), in the order checked."""
    folders = [imports_dir(ws).resolve(), SAMPLE_ROOT, *configured_dirs(ws)]
    return list(dict.fromkeys(folders))


def add_data_dir(ws: Workspace, folder: str | Path) -> Path:
    """Allow ``folder`` (must exist) in ``<workspace>/data_dirs.txt``; returns it resolved."""
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise DataError("not a folder", where=str(folder), fix="give an existing folder")
    listed = ws.root / DATA_DIRS_FILE
    current = listed.read_text(encoding="utf-8").splitlines() if listed.exists() else []
    if str(path) not in current:
        listed.write_text("\n".join([*current, str(path)]) + "\n", encoding="utf-8")
    return path


def remove_data_dir(ws: Workspace, folder: str | Path) -> None:
    """Forget a folder added with :func:`add_data_dir`."""
    path = str(Path(folder).expanduser().resolve())
    listed = ws.root / DATA_DIRS_FILE
    current = listed.read_text(encoding="utf-8").splitlines() if listed.exists() else []
    if path not in current:
        raise DataError(
            "this folder is not in the workspace's list", where=path, fix="see data-dirs list"
        )
    listed.write_text("".join(f"{line}\n" for line in current if line != path), encoding="utf-8")


def confine_path(ws: Workspace, path: str | Path) -> Path:
    """The resolved ``path`` when every byte of it lies in the allowed folders.

    A relative path is taken inside ``<workspace>/imports``.

    Raises
    ------
    DataError
        Naming the rule and how to allow a folder, for a path (or a link or folder entry) that
        resolves outside the allowed folders or onto the workspace's catalog or secrets.
    """
    text = str(path).strip()
    raw = Path(text).expanduser()
    if not raw.is_absolute():
        raw = imports_dir(ws) / raw
    resolved = raw.resolve()
    allowed = allowed_dirs(ws)
    _check_inside(ws, resolved, allowed, text)
    if resolved.is_dir():
        for folder, dirs, files in os.walk(resolved):
            for entry in [*dirs, *files]:
                _check_inside(ws, (Path(folder) / entry).resolve(), allowed, text)
    return resolved


def _check_inside(ws: Workspace, resolved: Path, allowed: list[Path], shown: str) -> None:
    root = ws.root.resolve()
    if any(resolved.is_relative_to(root / secret) for secret in _SECRETS):
        raise DataError(
            "the workspace's catalog and secrets cannot be imported",
            where=shown,
            fix="import a data file instead",
        )
    if not any(resolved.is_relative_to(folder) for folder in allowed):
        raise DataError(
            "the path (links followed) leads outside the folders the app may import from: "
            + ", ".join(str(f) for f in allowed),
            where=shown,
            fix=f"copy the file into {allowed[0]}, or have the server's administrator allow "
            f"its folder (python -m recsys_core data-dirs add FOLDER, or ${ENV_DATA_DIRS})",
        )
