"""Item text embeddings: encode each item's text and store the vectors with the dataset.

``python -m recsys_core embed-text DATASET --model NAME_OR_PATH`` (and the Data page) call
:func:`embed_dataset`. Two encoders:

- a sentence-transformers model (Reimers & Gurevych 2019, "Sentence-BERT") found *locally*: a
  folder, or a name already in the Hugging Face cache. Nothing is downloaded unless the caller
  passes ``allow_download=True`` (``--allow-download``); otherwise loading is
  ``local_files_only``. Texts are encoded in batches on the chosen device with progress, and
  the vectors are L2-normalised (cosine = dot product);
- ``tfidf-svd`` (:data:`OFFLINE_MODEL`), the offline default: TF-IDF of the same text reduced
  by truncated SVD (latent semantic analysis), no model needed.

The vectors are stored as the item table's ``text_embedding`` column (``items.parquet``), so
every model that reads item side features (content, two-tower, fusion through content) uses
them as the ``text_embedding`` block (:func:`recsys_core.data.features.item_feature_blocks`),
and Explain names it "item text embedding". What was recorded (model, dimension, fields, time,
device, seconds) is in ``text_embedding.json`` beside the dataset's files
(:func:`text_embedding_info`). Items without any text get no vector (zeros for the models).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.data.columns import CATEGORIES, ITEM, TEXT, TEXT_EMBEDDING, TITLE
from recsys_core.data.features import embedding_column, tfidf_svd
from recsys_core.data.interactions import Interactions
from recsys_core.data.text_fields import DEFAULT_FIELDS, FIELDS, OFFLINE_MODEL
from recsys_core.errors import DataError

META_FILE = "text_embedding.json"
#: How the fields read in the text given to the encoder ("Toy Story. Genres: ... . Tags: ...").
_PREFIX = {TITLE: "", CATEGORIES: "Genres: ", TEXT: "Tags: "}

ProgressFn = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TextEmbeddingInfo:
    """What was recorded with a dataset's item text embeddings.

    Attributes
    ----------
    model : the model name or path given (``tfidf-svd`` for the offline default).
    encoder : ``"sentence-transformers"`` or ``"tfidf-svd"``.
    dim : vector dimension. fields : the fields encoded, in order.
    n_items : items in the dataset. n_with_text : items that had text (the others have none).
    device : where the encoder ran. seconds : encoding time. created_at : unix seconds.
    """

    model: str
    encoder: str
    dim: int
    fields: tuple[str, ...]
    n_items: int
    n_with_text: int
    device: str
    seconds: float
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self) | {"fields": list(self.fields)}

    @property
    def label(self) -> str:
        """One line for pages and the CLI."""
        what = (
            "TF-IDF + SVD (offline default)" if self.encoder == OFFLINE_MODEL else str(self.model)
        )
        return f"{what}, {self.dim} dimensions, fields {', '.join(self.fields)}"


# ----- texts ---------------------------------------------------------------------------------
def parse_fields(fields: str | Sequence[str] | None) -> tuple[str, ...]:
    """Field names from ``"title,genres"`` or a list; DataError naming unknown ones."""
    if fields is None:
        return DEFAULT_FIELDS
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in FIELDS]
    if unknown or not names:
        raise DataError(
            f"unknown text fields {unknown}" if unknown else "no text field given",
            where="--fields",
            fix=f"list some of {', '.join(FIELDS)} separated by commas",
        )
    return tuple(dict.fromkeys(names))


def item_texts(data: Interactions, fields: Sequence[str] = DEFAULT_FIELDS) -> np.ndarray:
    """object [n_items] one text per item from the item table's columns behind ``fields``.

    Categories ``"A|B"`` read as ``"Genres: A, B."``; empty fields are skipped, so an item with
    nothing gives ``""``. DataError when the table has none of the fields' columns.
    """
    table = data.item_table
    columns = list(dict.fromkeys(FIELDS[f] for f in parse_fields(fields)))
    present = [c for c in columns if table is not None and c in table.columns]
    if not present:
        have = [] if table is None else [str(c) for c in table.columns]
        raise DataError(
            f"the item table has none of the columns {columns} behind the chosen fields "
            f"(it has {have or 'no item table'})",
            where="item text",
            fix="attach an item table with a title, categories or text column, or choose "
            "other --fields",
        )
    parts = []
    for column in present:
        values = table[column].astype(object).where(table[column].notna(), "").astype(str)
        values = values.str.strip()
        if column == CATEGORIES:
            values = values.str.replace("|", ", ", regex=False)
        prefix = _PREFIX.get(column, "")
        parts.append(values.where(values == "", prefix + values + "."))
    joined = parts[0]
    for part in parts[1:]:
        joined = (joined + " " + part).str.strip()
    return joined.to_numpy(dtype=object)


# ----- encoders ------------------------------------------------------------------------------
def missing_dependency() -> str | None:
    """None when sentence-transformers is installed, else what is missing and how to install it.

    Looks the package up without importing it: importing it loads transformers (seconds), which
    a page that only shows this line must not pay.
    """
    if importlib.util.find_spec("sentence_transformers") is None:
        return (
            "sentence-transformers is not installed; install the optional group with "
            "`pip install -r requirements-optional.txt`, or use the offline default "
            f"--model {OFFLINE_MODEL}"
        )
    return None


def load_sentence_model(name_or_path: str, *, device: str = "cpu", allow_download: bool = False):  # noqa: ANN201
    """A ``SentenceTransformer`` from a local folder or the local Hugging Face cache.

    With ``allow_download=False`` (the default) nothing is fetched (``local_files_only``); a
    model that is not on this machine raises DataError saying so and how to fix it.
    """
    problem = missing_dependency()
    if problem is not None:
        raise DataError(problem, where="embed-text", fix="install sentence-transformers")
    from sentence_transformers import SentenceTransformer

    path = Path(name_or_path).expanduser()
    source = str(path) if path.exists() else name_or_path
    try:
        return SentenceTransformer(
            source, device=device, local_files_only=not allow_download, trust_remote_code=False
        )
    except Exception as error:  # noqa: BLE001 - hub/IO/format errors alike: say what to do
        where = "a local folder" if path.exists() else "the local Hugging Face cache"
        raise DataError(
            f"could not load the sentence-transformers model {name_or_path!r} from {where}: "
            f"{type(error).__name__}: {str(error)[:300]}",
            where="embed-text --model",
            fix="pass the folder of a saved sentence-transformers model, a name already in "
            "~/.cache/huggingface, --allow-download (needs network), or the offline default "
            f"--model {OFFLINE_MODEL}",
        ) from error


def encode_texts(
    texts: Sequence[str] | np.ndarray,
    model: str,
    *,
    device: str = "auto",
    batch_size: int = 64,
    allow_download: bool = False,
    dims: int = 64,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, str]:
    """float32 [n, d] unit vectors of ``texts`` and the device used.

    ``model`` is :data:`OFFLINE_MODEL` (TF-IDF + SVD to at most ``dims`` dimensions) or a
    sentence-transformers model (see :func:`load_sentence_model`), run in batches of
    ``batch_size`` with ``progress(done, {"fraction": f})`` after each.
    """
    from recsys_core.device import resolve_device

    if batch_size < 1:
        raise DataError(
            f"batch size must be at least 1, got {batch_size}", where="--batch-size", fix="use 64"
        )
    texts = np.asarray(texts, dtype=object)
    report = progress or (lambda step, metrics: None)
    if model == OFFLINE_MODEL:
        vectors = tfidf_svd(texts, dims, seed)
        if vectors is None:
            raise DataError(
                "no item has a word of text to encode",
                where="embed-text",
                fix="attach an item table with titles or text",
            )
        report(len(texts), {"fraction": 1.0})
        return _unit_rows(vectors), "cpu"
    torch_device = str(resolve_device(device))
    encoder = load_sentence_model(model, device=torch_device, allow_download=allow_download)
    parts = []
    for start in range(0, len(texts), batch_size):
        chunk = [str(t) for t in texts[start : start + batch_size]]
        parts.append(
            np.asarray(
                encoder.encode(
                    chunk,
                    batch_size=batch_size,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                    device=torch_device,
                ),
                dtype=np.float32,
            )
        )
        done = start + len(chunk)
        report(done, {"fraction": done / max(len(texts), 1)})
    return _unit_rows(np.vstack(parts)), torch_device


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


# ----- the dataset action ----------------------------------------------------------------------
def embed_dataset(
    ws: Any,
    ref: str,
    model: str = OFFLINE_MODEL,
    *,
    fields: str | Sequence[str] | None = None,
    device: str = "auto",
    batch_size: int = 64,
    allow_download: bool = False,
    progress: ProgressFn | None = None,
) -> TextEmbeddingInfo:
    """Encode dataset ``ref``'s item texts with ``model`` and store them (see module doc)."""
    from recsys_core.data import store

    data = store.load_dataset(ws, ref)
    names = parse_fields(fields)
    texts = item_texts(data, names)
    has_text = np.array([bool(t) for t in texts], dtype=bool)
    if not has_text.any():
        raise DataError(
            f"no item has text in the fields {list(names)}",
            where="embed-text",
            fix="choose other --fields or attach an item table with titles or text",
        )
    started = time.perf_counter()
    rows = np.flatnonzero(has_text)
    vectors, used = encode_texts(
        texts[rows],
        model,
        device=device,
        batch_size=batch_size,
        allow_download=allow_download,
        progress=progress,
    )
    info = TextEmbeddingInfo(
        model=str(model),
        encoder=OFFLINE_MODEL if model == OFFLINE_MODEL else "sentence-transformers",
        dim=int(vectors.shape[1]),
        fields=names,
        n_items=data.n_items,
        n_with_text=int(len(rows)),
        device=used,
        seconds=round(time.perf_counter() - started, 3),
        created_at=time.time(),
    )
    store_text_embeddings(ws, ref, data.item_ids[rows], vectors, info)
    return info


def store_text_embeddings(
    ws: Any, ref: str, item_ids: np.ndarray, vectors: np.ndarray, info: TextEmbeddingInfo
) -> None:
    """Write ``vectors`` [len(item_ids), d] as the ``text_embedding`` column of the dataset's
    item table (replacing an earlier one) and ``info`` as ``text_embedding.json``.

    The table is written to a temporary file and renamed into place, so a failure leaves the
    dataset as it was.
    """
    from recsys_core.data import store

    folder = store.dataset_dir(ws, ref)
    _, items, _ = store.load_frames(ws, ref)
    if items is None:
        items = pd.DataFrame(index=pd.Index([], name=ITEM))
    column = pd.Series(list(np.asarray(vectors, dtype=np.float32)), index=pd.Index(item_ids))
    items = items.reindex(items.index.union(column.index, sort=False))
    items[TEXT_EMBEDDING] = column.reindex(items.index).to_numpy(dtype=object)
    target = folder / store.ITEMS_FILE
    tmp = folder / f".{target.name}.{uuid.uuid4().hex[:6]}"
    try:
        store._write_side(items, ITEM, tmp)  # the store's own layout of side tables
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    meta_tmp = folder / f".{META_FILE}.{uuid.uuid4().hex[:6]}"
    meta_tmp.write_text(json.dumps(info.to_dict(), indent=2), encoding="utf-8")
    os.replace(meta_tmp, folder / META_FILE)


def text_embedding_info(ws: Any, ref: str) -> TextEmbeddingInfo | None:
    """What was recorded with the dataset's text embeddings, or None when it has none."""
    from recsys_core.data import store

    path = store.dataset_dir(ws, ref) / META_FILE
    if not path.exists():
        return None
    values = json.loads(path.read_text(encoding="utf-8"))
    values["fields"] = tuple(values.get("fields", ()))
    return TextEmbeddingInfo(**values)


def text_vectors(data: Interactions) -> np.ndarray | None:
    """float32 [n_items, d] the stored text embeddings (zeros for items without), or None."""
    table = data.item_table
    if table is None or TEXT_EMBEDDING not in table.columns:
        return None
    return embedding_column(table, data.n_items, TEXT_EMBEDDING)


__all__ = [
    "DEFAULT_FIELDS",
    "FIELDS",
    "OFFLINE_MODEL",
    "TextEmbeddingInfo",
    "embed_dataset",
    "encode_texts",
    "item_texts",
    "load_sentence_model",
    "missing_dependency",
    "parse_fields",
    "store_text_embeddings",
    "text_embedding_info",
    "text_vectors",
]
