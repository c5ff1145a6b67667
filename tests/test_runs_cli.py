"""``python -m recsys_core runs ...``, ``worker`` and ``recommend`` with ``--json``."""

from __future__ import annotations

import json

import pytest

from recsys_core.cli.main import main
from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.jobs import api


@pytest.fixture()
def dataset(workspace):
    from recsys_core.data.store import import_frames

    inter, items, users = make_frames(
        SyntheticConfig(n_users=60, n_items=40, n_clusters=4, mean_history=8)
    )
    return import_frames(
        workspace, inter, name="tiny", source="synthetic", items=items, users=users
    )


def cli(ws, capsys, *argv: str) -> tuple[int, object, str]:
    """Run the CLI; returns (exit code, parsed JSON stdout or raw text, stderr)."""
    code = main(["--workspace", str(ws.root), *argv])
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out), err
    except json.JSONDecodeError:
        return code, out, err


def test_submit_run_show_events_and_recommend(workspace, dataset, capsys):
    code, out, err = cli(
        workspace,
        capsys,
        "runs",
        "submit",
        "tiny",
        "--model",
        "most_popular",
        "--test-ratio",
        "0.25",
        "--split-seed",
        "3",
        "--seed",
        "1",
        "--label",
        "baseline",
        "--json",
    )
    assert code == 0, err
    run_id = out["id"]
    record = api.get_run(workspace, run_id)
    assert record.status == "queued" and record.spec.dataset == dataset.id
    assert record.spec.split["test_ratio"] == 0.25 and record.spec.split["seed"] == 3
    assert record.spec.seed == 1 and record.label == "baseline"

    assert api.run_inline(workspace, run_id, device="cpu").status == "done"

    code, out, _ = cli(workspace, capsys, "runs", "list", "--status", "done", "--json")
    assert code == 0 and [r["id"] for r in out] == [run_id]
    code, text, _ = cli(workspace, capsys, "runs", "list", "--dataset", "tiny")
    assert code == 0 and run_id in text and "tiny" in text and "most_popular" in text
    code, out, _ = cli(workspace, capsys, "runs", "show", run_id, "--json")
    assert code == 0 and out["status"] == "done" and out["progress"] == 1.0
    assert 0 < out["metrics"]["ndcg@10"] <= 1 and out["spec"]["model"] == "most_popular"
    code, out, _ = cli(workspace, capsys, "runs", "events", run_id, "--json")
    assert code == 0 and out[0]["epoch"] == 1
    code, text, _ = cli(workspace, capsys, "runs", "show", run_id)
    assert code == 0 and f"run {run_id}: done" in text and "ndcg@10" in text

    user = "u1"
    code, out, _ = cli(workspace, capsys, "recommend", run_id, "--user", user, "--k", "3", "--json")
    assert code == 0 and out["user"] == user
    assert [row["rank"] for row in out["items"]] == [1, 2, 3]
    assert all(row["title"].startswith("Item ") for row in out["items"])
    scores = [row["score"] for row in out["items"]]
    assert scores == sorted(scores, reverse=True)

    code, _, err = cli(workspace, capsys, "recommend", run_id, "--user", "nobody")
    assert code == 2 and "'nobody'" in err and "raw user id" in err


def test_cancel_retry_and_errors(workspace, dataset, capsys):
    code, out, _ = cli(
        workspace, capsys, "runs", "submit", dataset.id, "--model", "random", "--json"
    )
    run_id = out["id"]
    code, out, _ = cli(workspace, capsys, "runs", "cancel", run_id, "--json")
    assert code == 0 and out == {"id": run_id, "status": "cancelled"}
    code, out, _ = cli(workspace, capsys, "runs", "retry", run_id, "--json")
    assert code == 0 and out["retry_of"] == run_id
    assert api.get_run(workspace, out["id"]).status == "queued"

    code, _, err = cli(
        workspace, capsys, "runs", "submit", "tiny", "--model", "random", "--param", "nope=1"
    )
    assert code == 2 and "unknown parameter" in err
    code, _, err = cli(
        workspace,
        capsys,
        "runs",
        "submit",
        "tiny",
        "--model",
        "most_popular",
        "--test-ratio",
        "0.95",
    )
    assert code == 2 and "test_ratio" in err
    code, _, err = cli(workspace, capsys, "runs", "show", "r-missing")
    assert code == 2 and "no run with id 'r-missing'" in err
    code, _, err = cli(workspace, capsys, "runs", "events", "r-missing", "--json")
    assert code == 2
    assert len(api.list_runs(workspace)) == 2  # the refused submissions queued nothing
    code, _, err = cli(workspace, capsys, "runs", "delete", out["id"])
    assert code == 2 and "queued" in err  # an active run is not deleted
    code, out, _ = cli(workspace, capsys, "runs", "delete", run_id, "--json")
    assert code == 0 and out["deleted"] and len(api.list_runs(workspace)) == 1


def test_worker_once_on_an_empty_queue_exits(workspace, capsys):
    code, _, err = cli(workspace, capsys, "worker", "--once", "--poll", "0.05")
    assert code == 0
    status = api.worker_status(workspace)
    assert not status.alive and status.pid is not None  # it registered, then stopped cleanly
