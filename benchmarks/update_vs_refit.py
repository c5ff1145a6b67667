"""A finished iALS fit updated with the sample's last 10% of ratings, beside a refit.

Version 1 of the bundled sample holds its first 90% of ratings by time; the last 10% is
appended as version 2 (``recsys_core.data.versions``). Each round fits iALS on version 1,
updates it with version 2 (``recsys_core.updates.update_model``, ``--sweeps`` sweeps) and refits
on version 2, alternating in one process so a noisy machine slows all three alike; NDCG@10 of
the update and of the refit on version 2's ``leave_last`` split (under which appended data never
moves an earlier training pair into the test).

    .venv/bin/python benchmarks/update_vs_refit.py [--rounds 3] [--sweeps 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys_core.data import store, versions  # noqa: E402
from recsys_core.evaluate import evaluate  # noqa: E402
from recsys_core.models.ials import IALS  # noqa: E402
from recsys_core.split import SplitSpec, make_split  # noqa: E402
from recsys_core.updates import UpdateSettings, update_model  # noqa: E402
from recsys_core.workspace import Workspace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sweeps", type=int, default=2)
    parser.add_argument("--share", type=float, default=0.1, help="appended share, by time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp)).ensure()
        frame, items, _ = store.load_frames(ws, store.import_sample(ws).id)
        frame = frame.drop(columns=[c for c in ("split",) if c in frame])
        cut = frame["timestamp"].quantile(1 - args.share)
        v1 = store.import_frames(
            ws,
            frame[frame["timestamp"] < cut],
            name="v1",
            source="sample",
            items=items.reset_index(),
        )
        v2 = versions.append_frame(ws, v1.id, frame[frame["timestamp"] >= cut])
        print("appended:", versions.version_of(v2)["added"])
        spec = SplitSpec(protocol="leave_last")
        s1 = make_split(store.load_dataset(ws, v1.id), spec)
        s2 = make_split(store.load_dataset(ws, v2.id), spec)
        rows = []
        for r in range(args.rounds):
            t = time.perf_counter()
            model = IALS(device="cpu").fit(s1.train)
            fit = time.perf_counter() - t
            t = time.perf_counter()
            updated = update_model(model, s2.train, UpdateSettings(sweeps=args.sweeps))
            update = time.perf_counter() - t
            t = time.perf_counter()
            refit = IALS(device="cpu").fit(s2.train)
            refit_s = time.perf_counter() - t
            ndcg_u = evaluate(updated, s2).aggregate["ndcg@10"]
            ndcg_r = evaluate(refit, s2).aggregate["ndcg@10"]
            rows.append((fit, update, refit_s))
            print(
                f"round {r}: fit v1 {fit:.3f} s, update {update:.3f} s, refit v2 {refit_s:.3f} s;"
                f" NDCG@10 update {ndcg_u:.4f}, refit {ndcg_r:.4f}"
            )
        fit, update, refit_s = (statistics.median(c) for c in zip(*rows, strict=True))
        print(
            f"median: fit v1 {fit:.3f} s, update {update:.3f} s ({100 * update / fit:.0f}% of "
            f"the fit), refit v2 {refit_s:.3f} s; touched {updated.update_info_}"
        )


if __name__ == "__main__":
    main()
