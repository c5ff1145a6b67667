"""Personal data in uploaded files: find it, drop it, pseudonymise user ids.

**Finding it.** :func:`scan` looks at a sample of each column of the interaction file and its
side tables for e-mail addresses, phone numbers and IP addresses (whole values or inside free
text), and for person names in the user table (a column named like ``name``/``surname``, or
values shaped like "Jane Doe"). Simple, tested regular expressions on up to 500 sampled
values per column keep this fast and predictable; Microsoft Presidio would add NER models
(spaCy, hundreds of MB) for a check that must run on every preview. Each finding carries a
masked example (``j***@e***.com``), never the value itself.

**Dropping it.** ``ImportOptions.drop_columns`` removes columns from every table before the
import builds anything, so nothing of them is stored.

**Pseudonymising user ids.** With ``ImportOptions.pseudonymise`` every user id is replaced by
``u-`` + the first 16 hex digits of HMAC-SHA256(key, id) before the dataset is stored. The key
is 32 random bytes in ``<workspace>/secrets/pseudonym.key`` (folder 0700, file 0600), made on
first use and never exported: the same raw id maps to the same pseudonym in every import and
appended version of this workspace, so appends still match, while stored data, runs, reports
and the demo only ever hold pseudonyms. The dataset's options record ``pseudonymise: true``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from recsys_core.data.columns import USER
from recsys_core.errors import DataError
from recsys_core.workspace import Workspace

SAMPLE_ROWS = 500
#: Characters of one value looked at (a long free text is scanned in its first 10,000).
MAX_CHARS = 10_000
SECRETS_DIR = "secrets"
KEY_FILE = "pseudonym.key"
PSEUDONYM_PREFIX = "u-"
EMAIL = "e-mail address"
PHONE = "phone number"
IP = "IP address"
NAME = "person name"

# Every quantifier is bounded (RFC 5321 lengths), so a search stays linear in the text: an
# unbounded local part made a 1 MB line without "@" quadratic.
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
)
# A phone number: optional +country, then digit groups split by spaces, dots, dashes or
# parentheses; 9 to 15 digits in all (so dates, years and plain counts do not match).
_PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,6}){1,4}(?![\w.])"
)
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_PHONE_PLUS = re.compile(r"(?<![\w.])\+\d{9,15}(?![\w.])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1?\d?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_PERSON = re.compile(r"^[A-Z][a-z'’]{1,40}(?:[ -][A-Z][a-z'’]{1,40}){1,2}$")
_NAME_COLUMNS = {
    "name", "firstname", "lastname", "fullname", "surname", "givenname", "familyname",
    "forename", "username", "customername", "displayname", "contactname",
}  # fmt: skip
#: Share of sampled values shaped like "Jane Doe" above which a user-table column is flagged.
NAME_SHARE = 0.5


@dataclass(frozen=True)
class PersonalColumn:
    """A column that looks like personal data.

    Attributes
    ----------
    table : ``"interactions"``, ``"items"`` or ``"users"``.
    column : the column's name in the file.
    kind : e-mail address, phone number, IP address or person name.
    share : fraction of the sampled non-empty values holding it (0-1).
    example : one match, masked (``j***@e***.com``).
    """

    table: str
    column: str
    kind: str
    share: float
    example: str

    def describe(self) -> str:
        """``"users column 'email': e-mail addresses in 100% of sampled values (e.g. ...)"``."""
        return (
            f"{self.table} column {self.column!r}: {self.kind}es"
            if self.kind.endswith("address")
            else f"{self.table} column {self.column!r}: {self.kind}s"
        ) + f" in {self.share:.0%} of sampled values (e.g. {self.example})"


# ----- finding ---------------------------------------------------------------------------------
def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _find(kind: str, text: str) -> str | None:
    """The first match of ``kind`` in ``text``, or None."""
    if kind == EMAIL:
        found = _EMAIL.search(text) if "@" in text else None
        return found.group(0) if found else None
    if kind == PHONE:
        for pattern in (_PHONE_PLUS, _PHONE):
            for found in pattern.finditer(text):
                text_found = found.group(0)
                if 9 <= _digits(text_found) <= 15 and not _DATE.search(text_found):
                    return text_found
        return None
    if kind == IP:
        if found := _IPV4.search(text):
            return found.group(0)
        for found in _IPV6.finditer(text):
            try:
                if found.group(0).count(":") >= 2 and ipaddress.IPv6Address(found.group(0)):
                    return found.group(0)
            except ValueError:
                continue
        return None
    return text if _PERSON.match(text.strip()) else None


def mask(kind: str, value: str) -> str:
    """A masked example: enough to recognise the kind, not the person."""
    if kind == EMAIL:
        local, _, domain = value.partition("@")
        host, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{host[:1]}***.{tld}"
    if kind == PHONE:
        digits = [i for i, ch in enumerate(value) if ch.isdigit()]
        keep = set(digits[:2] + digits[-2:])
        return "".join(ch if not ch.isdigit() or i in keep else "*" for i, ch in enumerate(value))
    if kind == IP:
        sep = "." if "." in value else ":"
        parts = value.split(sep)
        return sep.join(parts[:2] + ["*"] * (len(parts) - 2))
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in value.split())


def scan_column(series: pd.Series, table: str, column: str) -> list[PersonalColumn]:
    """Findings in one column (a sample of up to SAMPLE_ROWS non-empty values)."""
    if series.dtype.kind in "iufbmM":
        return []  # numbers and datetimes hold none of these patterns
    if len(series) > 20 * SAMPLE_ROWS:  # sample before dropna: no copy of a 25M-row column
        series = series.sample(20 * SAMPLE_ROWS, random_state=0)
    values = series.dropna()
    if values.empty:
        return []
    if len(values) > SAMPLE_ROWS:
        values = values.sample(SAMPLE_ROWS, random_state=0)
    texts = [t[:MAX_CHARS] for t in values.astype(str).tolist()]
    kinds = [EMAIL, PHONE, IP]
    by_name = re.sub(r"[^a-z]", "", column.lower()) in _NAME_COLUMNS
    if table == "users":
        kinds.append(NAME)
    found = []
    for kind in kinds:
        hits = [m for m in (_find(kind, t) for t in texts) if m is not None]
        share = len(hits) / len(texts)
        if hits and (kind != NAME or share >= NAME_SHARE or by_name):
            found.append(PersonalColumn(table, column, kind, share, mask(kind, hits[0])))
    if table == "users" and by_name and not any(f.kind == NAME for f in found):
        found.append(PersonalColumn(table, column, NAME, 1.0, mask(NAME, texts[0])))
    return found


def scan(raw: Any, items: Any = None, users: Any = None) -> list[PersonalColumn]:
    """Findings in a :class:`~recsys_core.data.readers.RawData` (interactions, items, users;
    ``items``/``users`` replace its side tables when given); a side table's id index is
    scanned too."""
    found: list[PersonalColumn] = []
    for table, frame in _tables(raw, items, users).items():
        if frame is None:
            continue
        if frame.index.name is not None:
            frame = frame.reset_index()
        for column in frame.columns:
            found += scan_column(frame[column], table, str(column))
    return found


def _tables(raw: Any, items: Any, users: Any) -> dict[str, pd.DataFrame | None]:
    return {
        "interactions": raw.interactions,
        "items": items if items is not None else raw.items,
        "users": users if users is not None else raw.users,
    }


def mask_frame(frame: pd.DataFrame, findings: list[PersonalColumn]) -> pd.DataFrame:
    """``frame`` with every flagged cell masked (for a preview shown on screen)."""
    out = frame.copy()
    for f in findings:
        if f.column in out.columns:
            out[f.column] = out[f.column].map(lambda v, k=f.kind: _mask_cell(k, v))
    return out


def _mask_cell(kind: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return value
    text = str(value)
    hit = _find(kind, text)
    return text.replace(hit, mask(kind, hit)) if hit else text


def flag_stored(
    raw: Any, options: Any, report: dict[str, Any], items: Any = None, users: Any = None
) -> None:
    """Add an import-report warning for each column that looks personal and will be stored:
    interaction columns mapped to a role (others are not stored) and side-table columns; the
    user column is left out when the ids are pseudonymised."""
    used = set((report.get("columns") or {}).values())
    user_column = (report.get("columns") or {}).get(USER)
    for f in scan(raw, items, users):
        if f.table == "interactions" and f.column not in used:
            continue
        is_user = f.column in (user_column, USER)
        if is_user and options.pseudonymise:
            continue
        fix = (
            "pseudonymise the user ids (CLI --pseudonymise)"
            if is_user
            else f"drop the column (CLI --drop-column {f.column})"
        )
        report["warnings"].append(
            f"looks like personal data: {f.describe()}; to keep it out, {fix}"
        )


# ----- dropping --------------------------------------------------------------------------------
def drop_columns(
    raw: Any, columns: tuple[str, ...], report: dict[str, Any], items: Any = None, users: Any = None
) -> tuple[Any, Any, Any]:
    """``(raw, items, users)`` without ``columns`` in any table (``items``/``users`` replace
    the reader's side tables when given; ``raw`` is changed in place); a name found in no
    table is refused, naming the columns there are."""
    tables = _tables(raw, items, users)
    if not columns:
        return raw, tables["items"], tables["users"]
    present = {str(c) for t in tables.values() if t is not None for c in t.columns}
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataError(
            f"no column {missing[0]!r} to drop",
            where=raw.source or "the file",
            fix=f"drop one of the columns there are: {sorted(present)}",
        )
    kept = {
        name: None if t is None else t.drop(columns=[c for c in t.columns if str(c) in columns])
        for name, t in tables.items()
    }
    raw.interactions = kept["interactions"]
    report["notes"].append(f"dropped before storing: {sorted(columns)}")
    return raw, kept["items"], kept["users"]


# ----- pseudonymising ----------------------------------------------------------------------------
def key_path(ws: Workspace) -> str:
    """``<workspace>/secrets/pseudonym.key``."""
    return str(ws.root / SECRETS_DIR / KEY_FILE)


def pseudonym_key(ws: Workspace) -> bytes:
    """The workspace's HMAC key (32 random bytes, file mode 0600), made on first use."""
    path = ws.root / SECRETS_DIR / KEY_FILE
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def pseudonyms(ids: pd.Series | pd.Index, key: bytes) -> pd.Series:
    """``u-`` + 16 hex digits of HMAC-SHA256(key, str(id)) per id (same order)."""
    unique = pd.unique(pd.Series(ids, copy=False))
    mapped = {
        raw: PSEUDONYM_PREFIX + hmac.new(key, str(raw).encode(), hashlib.sha256).hexdigest()[:16]
        for raw in unique
    }
    if len(set(mapped.values())) != len(mapped):  # 64 bits: never in practice, but checked
        raise DataError("two user ids got the same pseudonym", fix="import without pseudonymise")
    return pd.Series(ids, copy=False).map(mapped)


def pseudonymise_result(result: Any, key: bytes) -> Any:
    """An :class:`~recsys_core.data.importer.ImportResult` whose user ids are pseudonyms: in
    the interaction frame, the user side table and the report's examples."""
    frame = result.frame.copy()
    frame[USER] = pseudonyms(frame[USER], key).to_numpy(dtype=object)
    users = result.users
    if users is not None:
        users = users.copy()
        users.index = pd.Index(pseudonyms(users.index, key).to_numpy(dtype=object), name=USER)
    report = dict(result.report)
    side = report.get("side", {}).get("users")
    if side and side.get("unmatched_examples"):
        raw_examples = side["unmatched_examples"]
        hidden = pseudonyms(pd.Series(raw_examples, dtype=object), key).tolist()
        report["warnings"] = [
            w.replace(str(raw_examples[:3]), str(hidden[:3])) for w in report["warnings"]
        ]
        report["side"] = {**report["side"], "users": {**side, "unmatched_examples": hidden}}
    report["notes"] = [*report.get("notes", []), PSEUDONYMISED_NOTE]
    return replace(result, frame=frame, users=users, report=report)


PSEUDONYMISED_NOTE = (
    "user ids are pseudonymised (keyed HMAC-SHA256; the key stays in this workspace)"
)


def is_pseudonymised(info: Any) -> bool:
    """True when a stored dataset's user ids are pseudonyms (from its recorded options)."""
    return bool((getattr(info, "options", None) or {}).get("pseudonymise"))
