"""``python -m recsys_core bench --scale tall|wide``: the whole pipeline at real-world size.

Generates the shape (cached in the workspace under ``synth/``), then times, in one process:
import of the CSV and of the Parquet copy (each into a fresh throw-away workspace), loading,
the health report, every split protocol, the pre-flight estimate against the actual fit of
MostPopular, ItemKNN, iALS and EASE, and the evaluation of the iALS run. Each stage records
wall and CPU seconds and the process's peak RSS (sampled every 50 ms); fits record the
estimate beside the actual. A model whose estimate does not fit ``max_gb`` (or whose estimated
fit time is above ``max_fit_minutes``) is refused up front, as a run would be.

Figures are printed, never asserted in tests (they depend on the machine and its load; the
load average is recorded with them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys_core.memory import GB

SCALE_MODELS = ("most_popular", "itemknn", "ials", "ease")
SPLIT_PROTOCOLS = (
    {"protocol": "random", "test_ratio": 0.2, "valid_ratio": 0.0},
    {"protocol": "leave_last", "k": 1, "valid_k": 0},
    {"protocol": "temporal", "test_ratio": 0.2, "valid_ratio": 0.0},
    {"protocol": "users", "target_ratio": 0.2, "valid_ratio": 0.0},
)


@dataclass
class StageRow:
    """One line of the table."""

    stage: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_gb: float = 0.0
    estimate: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "peak_rss_gb": round(self.peak_rss_gb, 2),
            "estimate": self.estimate,
            "note": self.note,
            **self.extra,
        }


@contextlib.contextmanager
def stage(name: str, rows: list[StageRow], on_row: Callable | None) -> Iterator[StageRow]:
    """Time the block; the row's peak RSS is the process's highest RSS during it."""
    import psutil

    proc = psutil.Process(os.getpid())
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    row = StageRow(name)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        yield row
    finally:
        row.seconds = time.perf_counter() - start
        row.cpu_seconds = time.process_time() - cpu
        stop.set()
        thread.join()
        row.peak_rss_gb = max(peak[0], proc.memory_info().rss) / GB
        rows.append(row)
        if on_row is not None:
            on_row(row)


def _fresh_workspace(root: Path) -> Any:
    from recsys_core.workspace import Workspace

    return Workspace(Path(tempfile.mkdtemp(prefix="ws-", dir=root))).ensure()


def run_scale_bench(
    ws: Any,
    shape: str = "tall",
    *,
    scale: float = 1.0,
    models: tuple[str, ...] = SCALE_MODELS,
    max_gb: float = 10.0,
    max_fit_minutes: float = 30.0,
    on_row: Callable[[StageRow], None] | None = None,
) -> dict[str, Any]:
    """Run every stage on ``shape`` (see module docstring); returns the rows and the context.

    ``max_gb``: the memory a run may plan to use (instead of what the machine has free: on a
    shared machine the bench must stay within its share).
    """
    from recsys_core.data.synth_shapes import ensure_shape, shape_config

    cfg = shape_config(shape, scale)
    label = shape + (f"-x{scale:g}" if scale != 1.0 else "")
    rows: list[StageRow] = []
    out: dict[str, Any] = {"shape": label, "load_average_start": os.getloadavg()}
    with stage("generate (cached)", rows, on_row) as row:
        files = ensure_shape(cfg, ws.root / "synth" / f"{label}-s{cfg.seed}", parquet=True)
        row.note = "reused" if files["cached"] else f"wrote {files['rows']:,} rows"
    scratch = ws.root / "bench-scale"
    scratch.mkdir(parents=True, exist_ok=True)
    tmp_ws = _fresh_workspace(scratch)
    try:
        data, info = _import_stages(tmp_ws, scratch, files["files"], rows, on_row)
        out["data"] = {"users": data.n_users, "items": data.n_items, "interactions": data.nnz}
        split = _split_stages(data, rows, on_row)
        fitted = _model_stages(split, data.nnz, models, max_gb, max_fit_minutes, rows, on_row)
        if "ials" in fitted:
            _eval_stage(fitted["ials"], split, rows, on_row)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out["load_average_end"] = os.getloadavg()
    out["rows"] = [r.to_dict() for r in rows]
    return out


def _import_stages(
    ws: Any, scratch: Path, files: dict[str, str], rows: list[StageRow], on_row: Callable | None
) -> tuple[Any, Any]:
    from recsys_core.data.health import profile
    from recsys_core.data.store import import_file, load_dataset

    with stage("import CSV", rows, on_row) as row:
        info = import_file(ws, files["interactions.csv"], items=files["items.csv"])
        row.note = f"{info.n_interactions:,} interactions"
    if "interactions.parquet" in files:
        other = _fresh_workspace(scratch)
        with stage("import Parquet", rows, on_row) as row:
            p_info = import_file(other, files["interactions.parquet"], items=files["items.parquet"])
            row.note = f"{p_info.n_interactions:,} interactions"
        shutil.rmtree(other.root, ignore_errors=True)
    with stage("load dataset", rows, on_row):
        data = load_dataset(ws, info.id)
    with stage("health report", rows, on_row) as row:
        report = profile(data, info.report)
        row.note = f"{len(report.warnings)} warnings"
    return data, info


def _split_stages(data: Any, rows: list[StageRow], on_row: Callable | None) -> Any:
    from recsys_core.config import config_from_dict
    from recsys_core.split import SplitSpec, make_split

    kept = None
    for values in SPLIT_PROTOCOLS:
        with stage(f"split {values['protocol']}", rows, on_row) as row:
            split = make_split(data, config_from_dict(SplitSpec, values))
            row.note = f"train {split.train.nnz:,}, test users {len(split.test_users):,}"
        if kept is None:
            kept = split  # the random split is the one the models use
        else:
            del split
    return kept


def _model_stages(
    split: Any,
    n_interactions: int,
    models: tuple[str, ...],
    max_gb: float,
    max_fit_minutes: float,
    rows: list[StageRow],
    on_row: Callable | None,
) -> dict[str, Any]:
    from recsys_core.estimate import DataShape, estimate_run
    from recsys_core.estimate_models import THREAD_SPEEDUP
    from recsys_core.memory import format_gb
    from recsys_core.models import get_model

    train = split.train
    shape = DataShape(train.n_users, train.n_items, train.nnz, len(split.test_users))
    fitted: dict[str, Any] = {}
    for key in models:
        cls = get_model(key)
        config = cls.Config()
        est = estimate_run(
            key, config, shape, n_interactions=n_interactions, have_host=int(max_gb * GB)
        )
        text = f"{est.fit_seconds:,.1f} s, {format_gb(est.peak_host_bytes)}"
        if not est.fits or est.fit_seconds > 60 * max_fit_minutes:
            why = (
                est.reason
                if not est.fits
                else (
                    f"estimated fit {est.fit_seconds / 60:,.0f} min > "
                    f"{max_fit_minutes:g} min budget"
                )
            )
            row = StageRow(
                f"fit {key}",
                estimate=text,
                note=f"refused: {why}; try {est.suggestion or 'a cheaper model'}",
            )
            rows.append(row)
            if on_row is not None:
                on_row(row)
            continue
        with stage(f"fit {key}", rows, None) as row:
            row.estimate = text
            model = cls(config, device="cpu", seed=0).fit(train)
        row.extra = {
            "est_seconds": round(est.fit_seconds, 1),
            "est_peak_gb": round(est.peak_host_bytes / GB, 2),
            "time_ratio": round(row.seconds / max(est.fit_seconds, 1e-9), 2),
            # on a busy machine: CPU seconds as an idle machine's 2-thread wall time
            "cpu_time_ratio": round(
                row.cpu_seconds / THREAD_SPEEDUP / max(est.fit_seconds, 1e-9), 2
            ),
            "memory_ratio": round(row.peak_rss_gb * GB / max(est.peak_host_bytes, 1), 2),
        }
        row.note = (
            f"actual/estimate: wall x{row.extra['time_ratio']}, CPU/{THREAD_SPEEDUP:g} "
            f"x{row.extra['cpu_time_ratio']}, memory x{row.extra['memory_ratio']}"
        )
        if on_row is not None:
            on_row(row)
        fitted[key] = model
        if key != "ials":
            del model
    return fitted


def _eval_stage(model: Any, split: Any, rows: list[StageRow], on_row: Callable | None) -> None:
    from recsys_core.evaluate import evaluate

    with stage("evaluate ials (all test users)", rows, on_row) as row:
        report = evaluate(model, split, ks=(10,), keep=100, n_resamples=200)
        row.note = f"{len(report.test_users):,} users, NDCG@10 {report.aggregate['ndcg@10']:.4f}"


def format_row(row: StageRow) -> str:
    """One line of the printed table."""
    return (
        f"{row.stage:<32}{row.seconds:>9.1f}{row.cpu_seconds:>9.1f}{row.peak_rss_gb:>9.2f}  "
        f"{row.estimate:<22}{row.note}"
    )


HEADER = f"{'stage':<32}{'wall s':>9}{'CPU s':>9}{'RSS GB':>9}  {'estimate':<22}note"
