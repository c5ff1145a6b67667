"""Exceptions with messages an analyst can act on.

Every error raised for bad input names the problem, where it is (file, column, row) and the fix,
so the UI and the CLI can show ``str(error)`` as is, without a traceback.
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class of every error this package raises on purpose."""


class DataError(RecsysError, ValueError):
    """Input data is unusable as given.

    Parameters
    ----------
    problem : what is wrong, in one sentence.
    where : the file, column and/or row concerned (optional).
    fix : what the user can do about it (optional).
    """

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        parts = [problem.rstrip(".") + "."]
        if where:
            parts.append(f"Where: {where}.")
        if fix:
            parts.append(f"Fix: {fix.rstrip('.')}.")
        super().__init__(" ".join(parts))


class ConfigError(RecsysError, ValueError):
    """A hyperparameter or option has an invalid value (the message names the field)."""


class NotFoundError(RecsysError, KeyError):
    """A dataset, run, user or item that was asked for does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Cancelled(RecsysError):
    """Raised from a progress callback to stop training cooperatively between batches."""
