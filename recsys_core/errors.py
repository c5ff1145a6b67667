"""Exceptions with messages an analyst can act on.

Every error raised for bad input names the problem, where it is (file, column, row) and the fix,
so the UI and the CLI can show ``str(error)`` as is, without a traceback.
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class of every error this package raises on purpose."""


def _explain(problem: str, where: str | None, fix: str | None) -> str:
    parts = [problem.rstrip(".") + "."]
    if where:
        parts.append(f"Where: {where}.")
    if fix:
        parts.append(f"Fix: {fix.rstrip('.')}.")
    return " ".join(parts)


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
        super().__init__(_explain(problem, where, fix))


class ResourceError(RecsysError):
    """The machine cannot do the work as asked: memory, disk space, a folder it cannot write.

    Raised before the work where it can be foreseen; same ``problem`` / ``where`` / ``fix``
    parts as :class:`DataError`, in one line.
    """

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        super().__init__(_explain(problem, where, fix))


class OutOfMemory(ResourceError):
    """An allocation failed (or would fail): "out of memory while ...: needs about X GB, have Y"."""


class ConfigError(RecsysError, ValueError):
    """A hyperparameter or option has an invalid value (the message names the field)."""


class NotFoundError(RecsysError, KeyError):
    """A dataset, run, user or item that was asked for does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Cancelled(RecsysError):
    """Raised from a progress callback to stop training cooperatively between batches."""
