"""Side-information features as float32 matrices, shared by content-based and hybrid models.

Items
    :func:`item_feature_blocks` turns the item table of an :class:`Interactions` into named
    blocks, each ``float32 [n_items, d_block]``:

    - ``"categories"``: multi-hot of the ``categories`` column (``"Action|Comedy"``);
    - ``"text"``: TF-IDF of ``title`` + ``text`` reduced with truncated SVD (latent semantic
      analysis, Deerwester et al. 1990) to at most ``text_dims`` dimensions;
    - ``"numeric"``: every numeric column, standardised (missing values at the mean, i.e. 0);
    - ``"embedding"``: the precomputed ``embedding`` column (e.g. a language model's vectors),
      stacked as is (items without one get zeros);
    - ``"text_embedding"``: the ``text_embedding`` column written by
      :func:`recsys_core.data.text_embeddings.store_text_embeddings` (``embed-text``), stacked
      the same way.

    Only blocks the table supports are returned; an item table with no usable column, or no
    item table at all, gives an empty dict (callers decide whether that is an error).

Users
    :func:`user_feature_matrix` one-hot encodes categorical user columns (the most frequent
    levels, the rest pooled) and standardises numeric ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.columns import CATEGORIES, EMBEDDING, TEXT, TEXT_EMBEDDING, TITLE
from recsys_core.data.interactions import Interactions
from recsys_core.errors import DataError

#: Item-table columns with a meaning of their own (never treated as generic numerics).
RESERVED_ITEM_COLUMNS = (TITLE, CATEGORIES, TEXT, EMBEDDING, TEXT_EMBEDDING)
#: At most this many levels of one categorical user column become one-hot columns.
MAX_LEVELS = 50


def item_feature_blocks(
    data: Interactions, *, text_dims: int = 64, seed: int = 0
) -> dict[str, np.ndarray]:
    """Named item feature blocks from ``data.item_table``.

    Parameters
    ----------
    data : the dataset; only its ``item_table`` (indexed 0..n_items-1) is read.
    text_dims : maximum number of SVD dimensions of the text block.
    seed : seed of the randomised SVD, so the block is reproducible.

    Returns
    -------
    dict mapping block name (``categories``, ``text``, ``numeric``, ``embedding``,
    ``text_embedding``) to a float32
    array [n_items, d_block]; blocks the table cannot supply are absent.
    """
    if text_dims < 1:
        raise DataError(
            f"text_dims must be at least 1, got {text_dims}",
            where="item_feature_blocks",
            fix="pass text_dims=64 (the default) or another positive number",
        )
    table = data.item_table
    if table is None or len(table.columns) == 0:
        return {}
    if len(table) != data.n_items:
        raise DataError(
            f"the item table has {len(table)} rows but the dataset has {data.n_items} items",
            where="Interactions.item_table",
            fix="build the dataset with Interactions.from_frame so the table is aligned to items",
        )
    blocks: dict[str, np.ndarray] = {}
    cats = _categories_block(table)
    if cats is not None:
        blocks["categories"] = cats
    text = _text_block(table, text_dims, seed)
    if text is not None:
        blocks["text"] = text
    numeric = _numeric_block(table.drop(columns=list(RESERVED_ITEM_COLUMNS), errors="ignore"))
    if numeric is not None:
        blocks["numeric"] = numeric
    for column in (EMBEDDING, TEXT_EMBEDDING):
        emb = embedding_column(table, data.n_items, column)
        if emb is not None:
            blocks[column] = emb
    return blocks


def user_feature_matrix(data: Interactions) -> np.ndarray:
    """float32 [n_users, d] user features: one-hot categoricals + standardised numerics.

    Categorical columns keep their ``MAX_LEVELS`` most frequent levels (the rest share one
    "other" column) so an id-like column cannot blow up the width; missing values get no level.
    With no user table the result has zero columns.
    """
    matrix, _ = user_feature_table(data)
    return matrix


def user_feature_table(data: Interactions) -> tuple[np.ndarray, list[str]]:
    """:func:`user_feature_matrix` and one name per column (``"segment=S1"``, ``"age"``)."""
    table = data.user_table
    if table is None or len(table.columns) == 0:
        return np.zeros((data.n_users, 0), dtype=np.float32), []
    parts: list[np.ndarray] = []
    names: list[str] = []
    numeric_cols = [c for c in table.columns if _is_numeric(table[c])]
    if numeric_cols:
        block = _standardise(table[numeric_cols].to_numpy(dtype=np.float64))
        parts.append(block)
        names.extend(str(c) for c in numeric_cols)
    for col in table.columns:
        if col in numeric_cols:
            continue
        values = table[col].astype(object).where(table[col].notna(), None)
        counts = pd.Series(values).value_counts()
        keep = counts.index[:MAX_LEVELS]
        codes = pd.Index(keep).get_indexer(values)  # -1 for rare or missing
        width = len(keep) + (1 if len(counts) > MAX_LEVELS else 0)
        onehot = np.zeros((len(table), width), dtype=np.float32)
        rows = np.flatnonzero(codes >= 0)
        onehot[rows, codes[rows]] = 1.0
        if len(counts) > MAX_LEVELS:  # pooled rare levels
            rare = np.flatnonzero((codes < 0) & pd.notna(values))
            onehot[rare, -1] = 1.0
        parts.append(onehot)
        names.extend(f"{col}={level}" for level in keep)
        if len(counts) > MAX_LEVELS:
            names.append(f"{col}=other")
    matrix = np.hstack(parts).astype(np.float32) if parts else np.zeros((len(table), 0), np.float32)
    return matrix, names


# ----- blocks ----------------------------------------------------------------------------------
def _categories_block(table: pd.DataFrame) -> np.ndarray | None:
    if CATEGORIES not in table.columns:
        return None
    col = table[CATEGORIES].astype(object).where(table[CATEGORIES].notna(), "")
    dummies = pd.Series(col.astype(str), dtype=object).str.get_dummies(sep="|")
    if dummies.shape[1] == 0:
        return None
    return dummies.to_numpy(dtype=np.float32, copy=True)  # writable, torch-friendly


def _text_block(table: pd.DataFrame, text_dims: int, seed: int) -> np.ndarray | None:
    cols = [c for c in (TITLE, TEXT) if c in table.columns]
    if not cols:
        return None
    joined = pd.Series("", index=table.index, dtype=object)
    for c in cols:
        joined = joined + " " + table[c].astype(object).where(table[c].notna(), "").astype(str)
    return tfidf_svd(joined.to_numpy(dtype=object), text_dims, seed)


def tfidf_svd(texts: np.ndarray, text_dims: int, seed: int = 0) -> np.ndarray | None:
    """float32 [n, <= text_dims] TF-IDF of ``texts`` reduced by truncated SVD (LSA).

    The offline default for item text: no model to download. None when no text has a word.
    """
    texts = np.asarray(texts, dtype=object)
    if not pd.Series(texts, dtype=object).astype(str).str.strip().astype(bool).any():
        return None
    # scikit-learn loads here, not with the model registry: it costs seconds at start-up.
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    # sublinear tf: repeated tags count less than distinct ones (Manning et al. 2008, 6.4.1)
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=1, dtype=np.float32)
    try:
        tfidf = vectorizer.fit_transform(texts)
    except ValueError:  # only stop words / empty vocabulary
        return None
    n_terms = tfidf.shape[1]
    dims = min(text_dims, n_terms - 1, tfidf.shape[0] - 1)
    if dims < 1:
        return tfidf.toarray().astype(np.float32)
    svd = TruncatedSVD(n_components=dims, random_state=seed)
    return svd.fit_transform(tfidf).astype(np.float32)


def _numeric_block(table: pd.DataFrame) -> np.ndarray | None:
    cols = [c for c in table.columns if _is_numeric(table[c])]
    if not cols:
        return None
    return _standardise(table[cols].to_numpy(dtype=np.float64))


def embedding_column(table: pd.DataFrame, n_items: int, column: str) -> np.ndarray | None:
    """float32 [n_items, d] vectors of an embedding ``column`` (zeros where missing), or None."""
    if column not in table.columns:
        return None
    col = table[column]
    present = np.flatnonzero(col.notna().to_numpy())
    if len(present) == 0:
        return None
    vectors = [np.asarray(col.iloc[i], dtype=np.float32).ravel() for i in present]
    lengths = {len(v) for v in vectors}
    if len(lengths) != 1:
        raise DataError(
            f"item embeddings have different lengths {sorted(lengths)[:5]}",
            where=f"item table, column {column!r}",
            fix="give every item a vector of the same dimension (or none)",
        )
    out = np.zeros((n_items, lengths.pop()), dtype=np.float32)
    out[present] = np.vstack(vectors)
    if not np.isfinite(out).all():
        raise DataError(
            "item embeddings contain NaN or infinite values",
            where=f"item table, column {column!r}",
            fix="replace or drop the affected vectors",
        )
    return out


# ----- helpers ---------------------------------------------------------------------------------
def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _standardise(values: np.ndarray) -> np.ndarray:
    """Column-wise z-scores; NaN -> 0 (the mean); constant columns -> 0."""
    mean = np.nanmean(values, axis=0) if values.size else np.zeros(values.shape[1])
    std = np.nanstd(values, axis=0) if values.size else np.ones(values.shape[1])
    mean = np.where(np.isnan(mean), 0.0, mean)
    std = np.where(~np.isfinite(std) | (std == 0), 1.0, std)
    out = (values - mean) / std
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


__all__ = [
    "MAX_LEVELS",
    "embedding_column",
    "item_feature_blocks",
    "tfidf_svd",
    "user_feature_matrix",
    "user_feature_table",
]
