"""``embed-text`` command: item text embeddings from a local language model (or TF-IDF + SVD).

::

    python -m recsys_core embed-text DATASET [--model NAME_OR_PATH] [--fields title,genres,tags]
        [--device auto|cpu|cuda|mps] [--batch-size 64] [--allow-download] [--json]

``--model`` is a folder holding a saved sentence-transformers model, a model name already in the
local Hugging Face cache, or ``tfidf-svd`` (the default: TF-IDF + SVD, no model needed). Nothing
is downloaded unless ``--allow-download`` is given (Hugging Face offline mode otherwise). The
vectors become the dataset's ``text_embedding`` item column, read by content, two-tower and
fusion.
"""

from __future__ import annotations

import argparse
import os
import sys

from recsys_core.cli.main import print_json, workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    from recsys_core.data.text_fields import DEFAULT_FIELDS, FIELDS, OFFLINE_MODEL

    p = sub.add_parser(
        "embed-text",
        help="encode every item's text with a local sentence-transformers model (or TF-IDF + "
        "SVD) and store the vectors with the dataset",
        description="Item text embeddings, stored as the dataset's text_embedding column. "
        f"Fields: {', '.join(FIELDS)}.",
    )
    p.add_argument("dataset", help="dataset name or id (see `datasets`)")
    p.add_argument(
        "--model",
        default=OFFLINE_MODEL,
        help=f"folder of a sentence-transformers model, a name in the local Hugging Face cache, "
        f"or {OFFLINE_MODEL} (default: the offline TF-IDF + SVD encoder)",
    )
    p.add_argument(
        "--fields", default=",".join(DEFAULT_FIELDS), help="comma-separated item fields to encode"
    )
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda")
    p.add_argument("--batch-size", type=int, default=64, help="texts per batch (default 64)")
    p.add_argument(
        "--allow-download",
        action="store_true",
        help="let the model be downloaded from the Hugging Face hub (needs network)",
    )
    p.add_argument("--json", action="store_true", help="print what was stored as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.allow_download:
        # before transformers is imported: the hub library reads these once, at import
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from recsys_core.data.text_embeddings import embed_dataset

    ws = workspace_of(args)

    def progress(done: int, metrics: dict[str, float]) -> None:
        if not args.json:
            fraction = metrics["fraction"]
            print(f"\r  encoded {done:,} texts ({fraction:.0%})", end="", file=sys.stderr)

    info = embed_dataset(
        ws,
        args.dataset,
        args.model,
        fields=args.fields,
        device=args.device,
        batch_size=args.batch_size,
        allow_download=args.allow_download,
        progress=progress,
    )
    if args.json:
        print_json(info.to_dict())
        return 0
    print(file=sys.stderr)
    print(f"Stored item text embeddings for {args.dataset}: {info.label}")
    print(
        f"  {info.n_with_text:,} of {info.n_items:,} items had text; {info.seconds:.1f} s on "
        f"{info.device}"
    )
    print("  content, two-tower and fusion read them as the 'text_embedding' block")
    return 0
