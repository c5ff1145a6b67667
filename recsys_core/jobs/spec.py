"""What a run is (``RunSpec``) and what the store knows about it (``RunRecord``, ``TaskRecord``).

A run is fully described by plain JSON values (registry keys and config dicts, never pickled
classes, STYLE.md rule 5), so it can be re-queued, retried and executed by another backend.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from recsys_core.errors import ConfigError

#: Every status a run or a task can have.
QUEUED = "queued"
RUNNING = "running"
CANCELLING = "cancelling"  # cancel asked for; the child stops cooperatively or is killed
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"  # its worker died (kill -9, power loss) while it ran

STATUSES = (QUEUED, RUNNING, CANCELLING, DONE, FAILED, CANCELLED, INTERRUPTED)
ACTIVE = (QUEUED, RUNNING, CANCELLING)
TERMINAL = (DONE, FAILED, CANCELLED, INTERRUPTED)


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run; JSON round-trips through :meth:`to_dict`.

    Attributes
    ----------
    dataset : dataset id (``submit`` also accepts a name and stores the id).
    model : model registry key, e.g. ``"ease"``.
    split : ``config_to_dict(SplitSpec)``; ``{}`` means the default split.
    config : the model's hyperparameters (partial dicts are completed with defaults).
    balance : ``BalanceConfig`` fields set away from their defaults (or all of them).
    device : ``"auto"`` (a GPU when the worker has a free one), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"`` or ``"mps"``.
    seed : the model's seed.
    group : a sweep's name, to list its runs together.
    label : a free-text name shown next to the run id.
    parent : for an *update run*, the finished run whose model is updated with this run's
        dataset (a later version of the parent's) instead of trained from scratch.
    update : the update's settings (``UpdateSettings`` fields; only with ``parent``).
    """

    dataset: str
    model: str
    split: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    balance: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    seed: int = 0
    group: str | None = None
    label: str | None = None
    parent: str | None = None
    update: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples in configs become lists)."""
        return json.loads(json.dumps(asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSpec:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error, not ignored."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"RunSpec: unknown field(s) {unknown}; known: {sorted(known)}")
        missing = sorted({"dataset", "model"} - set(values))
        if missing:
            raise ConfigError(f"RunSpec: missing field(s) {missing}")
        return cls(**values)


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table, as the UI and the CLI read it.

    ``progress`` is a fraction in [0, 1] (1 when done); ``eta_seconds`` is None when the model
    does not report ``epochs_total``. Times are unix seconds.
    """

    id: str
    spec: RunSpec
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat: float | None
    progress: float
    eta_seconds: float | None
    device_used: str | None
    versions: dict[str, str]
    code_version: str | None
    fit_seconds: float | None
    error: str | None
    traceback: str | None
    log_tail: str | None
    retry_of: str | None

    @property
    def group(self) -> str | None:
        return self.spec.group

    @property
    def label(self) -> str | None:
        return self.spec.label

    @property
    def is_active(self) -> bool:
        """Queued, running or being cancelled."""
        return self.status in ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (or to now's last heartbeat while running)."""
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat or self.started_at
        return max(0.0, end - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the spec nested as a dict)."""
        out = asdict(self)
        out["spec"] = self.spec.to_dict()
        return out


@dataclass(frozen=True)
class TaskRecord:
    """One row of the tasks table: a background engine job (UMAP map, long SHAP, ...)."""

    id: str
    kind: str
    payload: dict[str, Any]
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress: float
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    traceback: str | None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
