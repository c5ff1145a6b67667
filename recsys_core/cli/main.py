"""Entry point of the command line: parse, dispatch, turn our errors into one clear line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from recsys_core.errors import RecsysError


def _command_modules() -> list[ModuleType]:
    # Imported here, not at module level, so `--help` stays fast and one broken
    # command group cannot stop the others from loading.
    from recsys_core.cli import (
        access_cmd,
        data_cmd,
        embed_cmd,
        estimate_cmd,
        eval_cmd,
        explain_cmd,
        lifelong_cmd,
        relations_cmd,
        report_cmd,
        runs_cmd,
        sweep_cmd,
        text_cmd,
        tune_cmd,
    )

    return [
        data_cmd,
        runs_cmd,
        explain_cmd,
        eval_cmd,
        estimate_cmd,
        embed_cmd,
        text_cmd,
        relations_cmd,
        sweep_cmd,
        tune_cmd,
        lifelong_cmd,
        report_cmd,
        access_cmd,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_core",
        description="Recsys Explorer: import data, train and evaluate recommenders, explain them.",
    )
    parser.add_argument(
        "--workspace", help="workspace folder (default: $RECSYS_EXPLORER_HOME or ./workspace)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RecsysError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def print_json(payload: Any) -> None:
    """Print JSON the same way in every command (numpy scalars and paths made plain)."""
    print(json.dumps(payload, indent=2, default=_plain, ensure_ascii=False))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def workspace_of(args: argparse.Namespace):  # noqa: ANN201 - avoids importing at module level
    """The Workspace named by ``--workspace`` or the default one, created if needed."""
    from pathlib import Path

    from recsys_core.workspace import Workspace

    ws = Workspace(Path(args.workspace).resolve()) if args.workspace else Workspace.default()
    return ws.ensure()
