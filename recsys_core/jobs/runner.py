"""The run function: dataset + split + model -> fitted model, evaluation and artifacts.

:func:`execute_run` is the executor boundary: the local worker calls it inside a child process
(:mod:`recsys_core.jobs.child`), and a cluster backend can call the same function elsewhere. It
does not touch the run's status; the caller owns that (see ``child.run_child``).

Artifact layout of ``<workspace>/runs/<run_id>/`` (written to ``.tmp/`` first, then moved into
place file by file with ``os.replace``; ``metrics.json`` is moved last, so its presence means
the folder is complete)::

    spec.json             the RunSpec plus run id, dataset name and split description
    model/                Recommender.save (model.json + state.pt)
    metrics.json          EvalReport.to_dict() plus "timing" (fit/eval seconds), "device" and
                          "validation" (every aggregate metric on the validation part,
                          None without one) and "validation_ci" (95% CIs of its per-user ones)
    per_user.parquet      per-user accuracy metrics (index = user index, plus raw "user" column)
    recs.parquet          user, item (raw ids), user_index, item_index, rank, score (top-100)
    item_embeddings.npy   float32 [n_items, d], when the model has them
    user_embeddings.npy   float32 [n_users, d], when the model has them
    curves.json           training curves from the progress events, one list per key
    log.txt               the child's stdout/stderr and log records (written live)
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.errors import Cancelled, ResourceError
from recsys_core.jobs.spec import RunSpec
from recsys_core.memory import EstimatesMemory, format_gb, memory_guard
from recsys_core.workspace import Workspace

log = logging.getLogger("recsys_core.jobs.runner")

ProgressSink = Callable[[int, dict[str, float]], None]
CancelCheck = Callable[[], bool]

TOP_N = 100
TMP_DIR = ".tmp"


def _has_valid(metrics: dict[str, Any]) -> bool:
    return any(k.startswith("valid") for k in metrics)


def _mid_epoch(metrics: dict[str, Any]) -> bool:
    """A within-epoch report: fractional epoch (the shared trainer reports ``epoch - 1 + f``)."""
    epoch = metrics.get("epoch")
    return isinstance(epoch, (int, float)) and math.isfinite(epoch) and epoch != int(epoch)


def merge_event(buffer: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """Append ``event`` to ``buffer``, keeping only the latest of consecutive transient events.

    A model may report every few batches; curves need one point per epoch plus every
    validation result. So a previous event that was transient (a fractional, within-epoch
    report, or a report of the same epoch as this one, neither carrying a validation metric)
    is replaced by ``event`` instead of kept: the latest loss wins, the epoch-end point stays.
    """
    metrics = event["metrics"]
    if buffer:
        last = buffer[-1]["metrics"]
        if not _has_valid(last) and (
            _mid_epoch(last)
            or (last.get("epoch") == metrics.get("epoch") and not _has_valid(metrics))
        ):
            buffer[-1] = event
            return
    buffer.append(event)


def curves_from_events(events: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Column lists (``step``, ``elapsed_s``, ``epoch``, ``loss``, ``valid_ndcg@10``, ...).

    Every list has one entry per event; a key an event lacks is None there, so the lists stay
    aligned for plotting against ``epoch`` or ``elapsed_s``.
    """
    keys: list[str] = ["step"]
    for event in events:
        for key in event["metrics"]:
            if key not in keys:
                keys.append(key)
    out: dict[str, list[float | None]] = {k: [] for k in keys}
    for event in events:
        for key in keys:
            value = event["step"] if key == "step" else event["metrics"].get(key)
            ok = isinstance(value, (int, float)) and math.isfinite(value)
            out[key].append(float(value) if ok else None)
    return out


def execute_run(
    ws: Workspace,
    run_id: str,
    progress: ProgressSink,
    should_cancel: CancelCheck,
    *,
    device: str | None = None,
    spec: RunSpec | None = None,
) -> dict[str, Any]:
    """Run ``run_id`` end to end and write its artifacts.

    Parameters
    ----------
    progress : receives every training callback ``(step, metrics)``, with ``elapsed_s``
        (seconds since ``fit`` started) added to ``metrics``.
    should_cancel : polled between stages and inside every training callback; when it returns
        True, :class:`~recsys_core.errors.Cancelled` is raised (and propagates to the caller).
    device : the device the executor assigned (overrides ``spec.device``).
    spec : the run's spec; read from the store when None.

    Returns
    -------
    ``{"metrics": aggregate dict, "fit_seconds", "eval_seconds", "device"}``.
    """
    from recsys_core.balance import BalanceConfig
    from recsys_core.config import config_from_dict
    from recsys_core.data.store import get_dataset, load_dataset
    from recsys_core.evaluate import evaluate
    from recsys_core.jobs.plugins import load_plugins
    from recsys_core.models import get_model
    from recsys_core.split import SplitSpec, make_split

    load_plugins()
    if spec is None:
        from recsys_core.jobs.api import get_run

        spec = get_run(ws, run_id).spec

    def checkpoint(stage: str) -> None:
        if should_cancel():
            raise Cancelled(f"run {run_id} cancelled by request ({stage})")

    log.info("run %s: loading dataset %s", run_id, spec.dataset)
    info = get_dataset(ws, spec.dataset)
    data = load_dataset(ws, spec.dataset)
    checkpoint("after loading the dataset")
    split = make_split(data, config_from_dict(SplitSpec, spec.split))
    log.info("run %s: split %s", run_id, split.description)
    checkpoint("after splitting")

    model_cls = get_model(spec.model)
    parent = None
    if spec.parent is not None:
        from recsys_core.jobs.artifacts import RunArtifacts
        from recsys_core.updates import check_no_leak

        parent = RunArtifacts(ws, spec.parent)
        model = parent.model(device or spec.device)
        check_no_leak(model.history_, split.test)
    else:
        model = model_cls(
            config_from_dict(model_cls.Config, spec.config),
            device=device or spec.device,
            seed=spec.seed,
            balance=config_from_dict(BalanceConfig, spec.balance),
        )
    run_dir = ws.runs_dir / run_id
    n_users, n_items = split.train.n_users, split.train.n_items
    peak = state = None
    if isinstance(model, EstimatesMemory):
        peak, state = model.peak_bytes(n_users, n_items), model.state_bytes(n_users, n_items)
    # Before the fit, not after it: a folder that cannot be written used to fail a run with a
    # bare PermissionError once training (minutes of it) was done.
    check_run_folder(run_dir, artefact_bytes(data.n_users, state))
    log.info("run %s: fitting %r on %d interactions", run_id, model, split.train.nnz)
    curve: list[dict[str, Any]] = []
    fit_start = time.perf_counter()

    def on_progress(step: int, metrics: dict[str, float]) -> None:
        # Checked first so that a model which reports every batch stops between batches.
        checkpoint(f"during fit, step {step}")
        metrics = {**metrics, "elapsed_s": time.perf_counter() - fit_start}
        merge_event(curve, {"step": int(step), "metrics": metrics})
        progress(step, metrics)

    update_info = None
    verb = "fitting" if parent is None else "updating"
    what = f"{verb} {spec.model} on {n_users:,} users x {n_items:,} items"
    with memory_guard(what, model.device, needs=peak):
        if parent is not None:
            from recsys_core.updates import UpdateSettings, update_model

            settings = config_from_dict(UpdateSettings, spec.update)
            model = update_model(model, split.train, settings, progress=on_progress)
            update_info = {
                **model.update_info_,
                "parent": spec.parent,
                "parent_fit_seconds": parent.metrics().get("timing", {}).get("fit_seconds"),
            }
        else:
            model.fit(split.train, valid=split.valid, progress=on_progress)
    fit_seconds = time.perf_counter() - fit_start
    checkpoint("after fit")

    log.info("run %s: evaluating (fit took %.2f s)", run_id, fit_seconds)
    eval_start = time.perf_counter()
    report = evaluate(
        model,
        split,
        keep=TOP_N,
        progress=lambda done, info: checkpoint(f"during evaluation, {done} users scored"),
    )
    # Every metric again on the validation part: what a hyperparameter search chooses by
    # (a study must never choose by the test metrics above).
    validation, validation_ci = None, None
    if split.valid is not None and split.valid.nnz > 0:
        from recsys_core.objectives import validation_report

        validation, validation_ci = validation_report(model, split)
    eval_seconds = time.perf_counter() - eval_start
    checkpoint("after evaluation")

    device_used = str(model.device)
    tmp = run_dir / TMP_DIR
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    spec_out = {
        "run_id": run_id,
        **spec.to_dict(),
        "dataset_name": info.name,
        "split_description": split.description,
    }
    _write_json(tmp / "spec.json", spec_out)
    model.save(tmp / "model")
    per_user = report.per_user.copy()
    per_user.insert(0, "user", _plain_ids(data.user_ids[per_user.index.to_numpy(dtype=np.int64)]))
    per_user.to_parquet(tmp / "per_user.parquet")
    recs_frame(
        data.user_ids, data.item_ids, report.test_users, report.recs_items, report.recs_scores
    ).to_parquet(tmp / "recs.parquet", index=False)
    for name, array in (
        ("item_embeddings", model.item_embeddings()),
        ("user_embeddings", model.user_embeddings()),
    ):
        if array is not None:
            np.save(tmp / f"{name}.npy", np.asarray(array, dtype=np.float32))
    _write_json(tmp / "curves.json", curves_from_events(curve))
    metrics = report.to_dict()
    metrics["timing"] = {
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        # torch models (shared trainer) also say how many epochs ran and how long each took
        "epochs_run": getattr(model, "n_epochs_run_", None),
        "epoch_seconds": list(getattr(model, "epoch_seconds_", None) or []),
    }
    metrics["device"] = device_used
    metrics["validation"] = validation
    metrics["validation_ci"] = validation_ci
    if update_info is not None:
        metrics["update"] = update_info
    _write_json(tmp / "metrics.json", metrics)
    publish(tmp, run_dir, last="metrics.json")
    log.info("run %s: done, ndcg@10 = %s", run_id, report.aggregate.get("ndcg@10"))
    return {
        "metrics": dict(report.aggregate),
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        "device": device_used,
    }


def artefact_bytes(n_users: int, model_bytes: int | None) -> int:
    """About the disk space a run's artefacts take: the saved model (when the model says how
    big it is), the top-N lists and per-user metrics, and a margin for the rest."""
    recs = n_users * TOP_N * 40  # user, item, indices, rank, score per row, before compression
    per_user = n_users * 30 * 8
    return int((model_bytes or 0) + recs + per_user + 16 * 2**20)


def check_run_folder(run_dir: Path, needs: int) -> None:
    """Refuse a run whose folder cannot be written, or whose disk lacks room for its artefacts.

    Writes and removes a probe file in ``run_dir`` (permissions, read-only mounts, a file in
    the folder's place: all show up), then compares ``needs`` bytes with the free space.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise ResourceError(
            f"the run folder cannot be written ({type(error).__name__}: {error.strerror or error})",
            where=str(run_dir),
            fix="make the folder writable (e.g. chmod u+w on it and its parents), or point "
            "RECSYS_EXPLORER_HOME (CLI: --workspace) at a writable workspace",
        ) from None
    free = shutil.disk_usage(run_dir).free
    if free < needs:
        raise ResourceError(
            f"not enough disk space for the run's artefacts: needs about {format_gb(needs)}, "
            f"have {format_gb(free)} free",
            where=str(run_dir),
            fix="free disk space, or point RECSYS_EXPLORER_HOME (CLI: --workspace) at a disk "
            "with room",
        )


def recs_frame(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    test_users: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
) -> pd.DataFrame:
    """Long frame of top-N lists: one row per (test user, rank), padding rows dropped.

    ``items``/``scores`` are [n_test_users, N] best first; entries with a negative item index or
    a -inf score (fewer than N eligible items) are dropped.
    """
    items = np.asarray(items, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32)
    n_users, n = items.shape
    user_index = np.repeat(np.asarray(test_users, dtype=np.int64), n)
    item_index = items.ravel()
    score = scores.ravel()
    rank = np.tile(np.arange(1, n + 1, dtype=np.int32), n_users)
    keep = (item_index >= 0) & np.isfinite(score)
    user_index, item_index, score, rank = (
        user_index[keep],
        item_index[keep],
        score[keep],
        rank[keep],
    )
    return pd.DataFrame(
        {
            "user": _plain_ids(user_ids[user_index]),
            "item": _plain_ids(item_ids[item_index]),
            "user_index": user_index,
            "item_index": item_index,
            "rank": rank,
            "score": score,
        }
    )


def _plain_ids(ids: np.ndarray) -> np.ndarray:
    """Raw ids as a Parquet-friendly array (object arrays of strings stay strings)."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iuf":
        return ids
    return ids.astype(str)


def publish(tmp: Path, run_dir: Path, *, last: str) -> None:
    """Move every entry of ``tmp`` into ``run_dir`` (``last`` moved last), then remove ``tmp``.

    ``os.replace`` is atomic per file on one filesystem; folders are swapped by removing the old
    one first (a half-written folder is never visible under its final name).
    """
    entries = sorted(tmp.iterdir(), key=lambda p: p.name == last)
    for entry in entries:
        target = run_dir / entry.name
        if entry.is_dir():
            if target.exists():
                shutil.rmtree(target)
            os.replace(entry, target)
        else:
            os.replace(entry, target)
    shutil.rmtree(tmp, ignore_errors=True)


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(clean_json(payload), indent=2, allow_nan=False))


def clean_json(value: Any) -> Any:
    """``value`` with numpy scalars/arrays made plain and NaN/inf replaced by None (JSON has
    neither)."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
