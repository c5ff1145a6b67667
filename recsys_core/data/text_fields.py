"""Which item text an encoder reads, and the encoder that needs no model.

No numpy or pandas here: the command line lists these choices while it builds its parser.
"""

from __future__ import annotations

from recsys_core.data.columns import CATEGORIES, TEXT, TITLE

#: The encoder that needs no model: TF-IDF + truncated SVD of the item text (offline default).
OFFLINE_MODEL = "tfidf-svd"
#: Item-table columns behind each field name the user may list in ``--fields``.
FIELDS = {
    "title": TITLE, "genres": CATEGORIES, "categories": CATEGORIES, "tags": TEXT, "text": TEXT
}  # fmt: skip
DEFAULT_FIELDS = ("title", "genres", "tags", "text")
