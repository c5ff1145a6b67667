"""The registry of background task kinds run by the worker: ``TASKS[kind](ws, payload, progress)``.

Engines whose work is too long for a page (a UMAP map of 100k points, SHAP over a long history)
submit it with :func:`recsys_core.jobs.api.submit_task` and poll :func:`~recsys_core.jobs.api.
get_task`. The worker runs each task in its own child process, like a run.

A task function has the signature ``fn(ws, payload, progress) -> dict``:

- ``ws``: the :class:`~recsys_core.workspace.Workspace`;
- ``payload``: the JSON dict given to ``submit_task`` (ids and plain values);
- ``progress(fraction, message="")``: report progress in [0, 1]; it raises
  :class:`recsys_core.errors.Cancelled` when the task was cancelled, so call it between chunks;
- returns a JSON-ready dict stored as the task's result (write big outputs to files, e.g.
  under ``RunArtifacts(ws, run_id).dir / "umap"``, and return their paths).

To add a kind: import the function below (import heavy libraries inside the function, not at
module level, so that submitting stays fast) and add one entry to ``TASKS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recsys_core.workspace import Workspace

#: ``progress(fraction, message)``; may raise ``Cancelled``.
TaskProgress = Callable[..., None]
TaskFn = Callable[[Workspace, dict[str, Any], TaskProgress], dict[str, Any]]


def _explain(ws: Workspace, payload: dict[str, Any], progress: TaskProgress) -> dict[str, Any]:
    from recsys_core.explain import explain_task  # shap and torch load in the child only

    return explain_task(ws, payload, progress)


def _explain_edited(
    ws: Workspace, payload: dict[str, Any], progress: TaskProgress
) -> dict[str, Any]:
    from recsys_core.whatif import explain_edited_task  # shap and torch load in the child only

    return explain_edited_task(ws, payload, progress)


def _umap(ws: Workspace, payload: dict[str, Any], progress: TaskProgress) -> dict[str, Any]:
    from recsys_core.embeddings import umap_task  # umap/numba load in the child only

    return umap_task(ws, payload, progress)


def _study(ws: Workspace, payload: dict[str, Any], progress: TaskProgress) -> dict[str, Any]:
    from recsys_core.studies import study_task  # optuna loads in the child only

    return study_task(ws, payload, progress)
def _rolling(ws: Workspace, payload: dict[str, Any], progress: TaskProgress) -> dict[str, Any]:
    from recsys_core.rolling import rolling_task  # models and torch load in the child only

    return rolling_task(ws, payload, progress)


TASKS: dict[str, TaskFn] = {
    "explain": _explain,
    "explain_edited": _explain_edited,
    "umap": _umap,
    "study": _study,
    "rolling": _rolling,
}
