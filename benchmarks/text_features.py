"""Content and two-tower on the sample with and without item text vectors, warm and cold items.

The bundled sample (demo filter: movies with at least 5 ratings) in a throw-away workspace, in
two item-table variants:

- ``no text``: categories (genres) only;
- ``text vectors``: categories plus the ``text_embedding`` column stored by ``embed-text`` with
  ``--model MODEL`` over title, genres and tags (default ``tfidf-svd``, the offline encoder;
  pass the folder of a local sentence-transformers model to measure a language model). The
  TF-IDF block of the raw title/tags columns is dropped in both, so the text reaches the models
  only through the stored vectors.

Warm: NDCG@10 / Recall@10 on a random 80/10/10 split (full ranking). Cold: a seeded 10% of the
items held out with all their ratings (``recsys_core.cold_items``), ranked among themselves.

    .venv/bin/python benchmarks/text_features.py [--model tfidf-svd] [--tt-epochs 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys_core.cold_items import cold_item_metrics, cold_item_split  # noqa: E402
from recsys_core.data import store  # noqa: E402
from recsys_core.data.columns import TEXT, TEXT_EMBEDDING, TITLE  # noqa: E402
from recsys_core.data.text_embeddings import embed_dataset  # noqa: E402
from recsys_core.evaluate import evaluate  # noqa: E402
from recsys_core.models.content import ContentBased  # noqa: E402
from recsys_core.models.twotower import TwoTower, TwoTowerConfig  # noqa: E402
from recsys_core.split import SplitSpec, make_split  # noqa: E402
from recsys_core.workspace import Workspace  # noqa: E402


def variants(model: str, device: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp)).ensure()
        ref = store.import_sample(ws).id
        info = embed_dataset(ws, ref, model, device=device, batch_size=128)
        data = store.load_dataset(ws, ref)
    table = data.item_table.drop(columns=[TITLE, TEXT])
    return {
        "no text": replace(data, item_table=table.drop(columns=[TEXT_EMBEDDING])),
        "text vectors": replace(data, item_table=table),
    }, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tfidf-svd", help="embed-text model (folder or name)")
    parser.add_argument("--tt-epochs", type=int, default=10, help="two-tower epochs")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data_by_variant, info = variants(args.model, args.device)
    print(f"text vectors: {info.label}; {info.seconds:.1f} s to encode on {info.device}")
    builders = {
        "content": lambda: ContentBased(device=args.device),
        "two-tower": lambda: TwoTower(TwoTowerConfig(epochs=args.tt_epochs), device=args.device),
    }
    print("| model | items | NDCG@10 | Recall@10 | cold NDCG@10 | cold Recall@10 | fit s |")
    print("|---|---|---|---|---|---|---|")
    for name, build in builders.items():
        for variant, data in data_by_variant.items():
            split = make_split(data, SplitSpec(protocol="random", test_ratio=0.1, seed=0))
            started = time.perf_counter()
            model = build().fit(split.train, valid=split.valid)
            fit_s = time.perf_counter() - started
            warm = evaluate(model, split, ks=(10,), n_resamples=50).aggregate
            train, test, cold = cold_item_split(data, 0.1, seed=0)
            cold_model = build().fit(train)
            c = cold_item_metrics(cold_model, train, test, cold, k=10)
            print(
                f"| {name} | {variant} | {warm['ndcg@10']:.4f} | {warm['recall@10']:.4f} | "
                f"{c['cold_ndcg@10']:.4f} | {c['cold_recall@10']:.4f} | {fit_s:.1f} |",
                flush=True,
            )
    print(f"cold: {c['cold_items']} held-out items, {c['cold_users']} users with one")


if __name__ == "__main__":
    main()
