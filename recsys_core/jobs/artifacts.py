"""Read access to a run's artifact folder (layout in :mod:`recsys_core.jobs.runner`).

Pages and engines (Compare, UMAP maps, explanations) read finished runs through
:class:`RunArtifacts`; nothing else needs to know file names. Engines that cache derived results
write them into their own subfolder of :attr:`RunArtifacts.dir` (``umap/``, ``explain/``).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_core.errors import NotFoundError
from recsys_core.jobs.spec import DONE, RunSpec
from recsys_core.workspace import Workspace

if TYPE_CHECKING:
    import torch

    from recsys_core.data.interactions import Interactions
    from recsys_core.models.base import Recommender
    from recsys_core.split import Split


class RunArtifacts:
    """The files of run ``run_id`` in ``ws``.

    Parameters
    ----------
    ws : the workspace.
    run_id : a run id; NotFoundError when the run does not exist. Readers of results raise
        NotFoundError naming the run's status when it has not finished.
    """

    def __init__(self, ws: Workspace, run_id: str) -> None:
        from recsys_core.jobs.api import get_run

        self.ws = ws
        self.run_id = run_id
        self.record = get_run(ws, run_id)

    @property
    def dir(self) -> Path:
        """``<workspace>/runs/<run_id>/``."""
        return self.ws.runs_dir / self.run_id

    def _need(self, name: str) -> Path:
        path = self.dir / name
        if not path.exists():
            status = self.record.status
            why = f"the run is {status}" if status != DONE else "the artifact folder is incomplete"
            raise NotFoundError(
                f"run {self.run_id} has no {name} ({why}); "
                "wait for it to finish or pick a finished run"
            )
        return path

    def spec(self) -> RunSpec:
        """The run's spec (from the store, so it exists before the run finishes)."""
        return self.record.spec

    def model(self, device: str | torch.device = "auto") -> Recommender:
        """The fitted model, loaded on ``device``."""
        from recsys_core.models.base import Recommender

        return Recommender.load(self._need("model"), device=device)

    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: ``EvalReport.to_dict()`` plus ``timing`` and ``device``."""
        return json.loads(self._need("metrics.json").read_text())

    def per_user(self) -> pd.DataFrame:
        """Per-user metrics: index = user index, a raw ``user`` column, one column per metric@k."""
        return pd.read_parquet(self._need("per_user.parquet"))

    def recs(self) -> pd.DataFrame:
        """Top-100 per test user: user, item (raw ids), user_index, item_index, rank, score."""
        return pd.read_parquet(self._need("recs.parquet"))

    def curves(self) -> dict[str, list[float | None]]:
        """Training curves (aligned lists per key); ``{}`` when the model reported none."""
        path = self.dir / "curves.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def item_embeddings(self) -> np.ndarray | None:
        """float32 [n_items, d], or None when the model has no item embeddings."""
        path = self.dir / "item_embeddings.npy"
        return np.load(path) if path.exists() else None

    def user_embeddings(self) -> np.ndarray | None:
        """float32 [n_users, d], or None when the model has no user embeddings."""
        path = self.dir / "user_embeddings.npy"
        return np.load(path) if path.exists() else None

    def log(self, tail: int | None = None) -> str:
        """The run's log (the last ``tail`` lines when given); ``""`` before it started."""
        path = self.dir / "log.txt"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-tail:]) if tail else text

    def dataset(self) -> Interactions:
        """The run's dataset, as stored in the workspace (loaded once per instance)."""
        return self._dataset

    @cached_property
    def _dataset(self) -> Interactions:
        from recsys_core.data.store import load_dataset

        return load_dataset(self.ws, self.record.spec.dataset)

    def split(self) -> Split:
        """The run's split, rebuilt from its spec (splits are deterministic given the seed)."""
        from recsys_core.config import config_from_dict
        from recsys_core.split import SplitSpec, make_split

        return make_split(self.dataset(), config_from_dict(SplitSpec, self.record.spec.split))
