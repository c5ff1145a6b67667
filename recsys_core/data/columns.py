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

INTERACTION_COLUMNS = (USER, ITEM, VALUE, TIMESTAMP, EVENT)
