"""Canonical column names used inside recsys_core (raw files are mapped onto these)."""

USER = "user"
ITEM = "item"
VALUE = "value"
TIMESTAMP = "timestamp"
EVENT = "event"
SPLIT = "split"

TITLE = "title"
CATEGORIES = "categories"
TEXT = "text"
EMBEDDING = "embedding"
#: Item vectors from a language model (or the TF-IDF + SVD default), stored by ``embed-text``.
TEXT_EMBEDDING = "text_embedding"

INTERACTION_COLUMNS = (USER, ITEM, VALUE, TIMESTAMP, EVENT)
