"""Who may use the app: accounts, password checks, login rate limits, and the write check.

Listening on 127.0.0.1 (the default) needs no login: whoever reaches the port already sits at
the machine. Bound to any other address, the app asks for a login, and two roles exist:

- ``analyst``: everything (import, train, delete, settings);
- ``viewer``: the read-only pages only (the demo); every write refuses through
  :func:`require_analyst`.

Passwords are hashed with Argon2id (argon2-cffi: the winner of the Password Hashing
Competition, salted, memory-hard, with a constant-time verify). Accounts live in
``<workspace>/access/users.json`` (folder 0700, file 0600), written atomically; the file holds
names, roles and hashes, never a password. Failed logins are rate limited per user name.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from recsys_core.errors import RecsysError
from recsys_core.workspace import Workspace

ANALYST = "analyst"
VIEWER = "viewer"
ROLES = (ANALYST, VIEWER)
ACCESS_DIR = "access"
USERS_FILE = "users.json"
#: Set to 1 to ask for a login even on 127.0.0.1 (a shared machine with several local users).
ENV_REQUIRE_LOGIN = "RECSYS_EXPLORER_REQUIRE_LOGIN"
#: The only addresses served without a login: the machine itself, as ``make run`` binds it.
LOCAL_ADDRESSES = ("127.0.0.1", "::1", "localhost")
MIN_PASSWORD_LENGTH = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HASHER = PasswordHasher()  # RFC 9106 low-memory profile: Argon2id, t=3, m=64 MiB, p=4


class AccessError(RecsysError):
    """An account problem or a refused action (wrong role, no account, bad name)."""


@dataclass(frozen=True)
class Account:
    """One account as stored (the hash is Argon2id's encoded string, never the password)."""

    name: str
    role: str
    password_hash: str
    created_at: float


# ----- the bind address ------------------------------------------------------------------------
def login_required(address: str | None) -> bool:
    """True unless the app listens on 127.0.0.1, ::1 or localhost only.

    An empty address means Streamlit listens on every interface, so it needs a login too; any
    other loopback address (127.0.0.2) is treated as exposed, which is what lets a test expose
    the app without a network namespace. ``$RECSYS_EXPLORER_REQUIRE_LOGIN=1`` forces a login.
    """
    if os.environ.get(ENV_REQUIRE_LOGIN, "").strip().lower() in ("1", "true", "yes"):
        return True
    text = (address or "").strip().strip("[]").lower()
    if text in LOCAL_ADDRESSES:
        return False
    try:
        return ipaddress.ip_address(text) != ipaddress.ip_address("127.0.0.1")
    except ValueError:
        return True  # a host name other than localhost, or nothing: every interface


def no_account_message(address: str | None) -> str:
    """What the app shows instead of itself when exposed without any account."""
    return (
        f"Recsys Explorer is listening on {address or 'every interface'}, so it requires a "
        "login, and no account exists yet. Fix: add an analyst account with "
        "`python -m recsys_core users add NAME --role analyst` (and viewers with "
        "`--role viewer`), then reload this page; or serve on 127.0.0.1 only (`make run`)."
    )


# ----- the account store ------------------------------------------------------------------------
def users_path(ws: Workspace) -> Path:
    """``<workspace>/access/users.json``."""
    return ws.root / ACCESS_DIR / USERS_FILE


def list_accounts(ws: Workspace) -> list[Account]:
    """Every account, by name."""
    return sorted(_read(ws).values(), key=lambda a: a.name)


def has_accounts(ws: Workspace) -> bool:
    """True when at least one account exists."""
    return bool(_read(ws))


def add_account(ws: Workspace, name: str, password: str, role: str) -> Account:
    """Create ``name`` (or replace its password and role) with an Argon2id hash of ``password``.

    Raises
    ------
    AccessError
        For an unusable name, an unknown role or a password under 8 characters.
    """
    name = check_name(name)
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccessError(
            f"the password is shorter than {MIN_PASSWORD_LENGTH} characters; choose a longer one"
        )
    accounts = _read(ws)
    accounts[name] = Account(name, role, _HASHER.hash(password), time.time())
    _write(ws, accounts)
    return accounts[name]


def remove_account(ws: Workspace, name: str) -> None:
    """Delete an account (its open sessions end at their next check)."""
    accounts = _read(ws)
    if name not in accounts:
        known = ", ".join(sorted(accounts)) or "none"
        raise AccessError(f"no account named {name!r}; accounts: {known}")
    del accounts[name]
    _write(ws, accounts)


def role_of(ws: Workspace, name: str) -> str | None:
    """The current role of ``name`` (None when the account was removed)."""
    account = _read(ws).get(name)
    return account.role if account else None


def check_name(name: str) -> str:
    """A user name: 1-64 letters, digits, ``. _ @ -``, starting with a letter or digit."""
    name = str(name).strip()
    if not _NAME.match(name):
        raise AccessError(
            f"{name!r} is not a usable user name; use 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    return name


def _read(ws: Workspace) -> dict[str, Account]:
    path = users_path(ws)
    if not path.exists():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return {
            name: Account(name, row["role"], row["hash"], float(row.get("created_at", 0)))
            for name, row in payload.get("users", {}).items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise AccessError(
            f"the account file {path} is damaged ({type(error).__name__}); remove it and add "
            "the accounts again with `python -m recsys_core users add`"
        ) from None


def _write(ws: Workspace, accounts: dict[str, Account]) -> None:
    folder = users_path(ws).parent
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    payload = {
        "users": {
            a.name: {"role": a.role, "hash": a.password_hash, "created_at": a.created_at}
            for a in accounts.values()
        }
    }
    tmp = folder / f".{USERS_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(tmp, users_path(ws))


# ----- logging in -------------------------------------------------------------------------------
@dataclass
class LoginLimiter:
    """Per-name limit on failed logins: ``max_failures`` within ``window`` seconds lock the
    name until the oldest of them is ``window`` seconds old. In-process (the app is one
    process); ``clock`` is injectable for tests."""

    max_failures: int = 5
    window: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_seconds(self, name: str) -> float:
        """Seconds until ``name`` may try again (0 when it may now)."""
        with self._lock:
            now = self.clock()
            recent = [t for t in self._failures.get(name, []) if now - t < self.window]
            self._failures[name] = recent
            if len(recent) < self.max_failures:
                return 0.0
            return self.window - (now - recent[0])

    def failed(self, name: str) -> None:
        with self._lock:
            self._failures.setdefault(name, []).append(self.clock())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)


_dummy: dict[int, str] = {}


def _dummy_hash() -> str:
    """A hash to verify against when the name is unknown, so both cases cost the same time
    (made once per process and per hasher, on the first login, not at import)."""
    key = id(_HASHER)
    if key not in _dummy:
        _dummy[key] = _HASHER.hash("no such account: the time taken must not tell")
    return _dummy[key]


def authenticate(ws: Workspace, name: str, password: str, limiter: LoginLimiter) -> str:
    """The role of ``name`` when ``password`` is right; raises :class:`AccessError` otherwise.

    Unknown names and wrong passwords get the same message and the same Argon2 work; a name
    over its failure limit is refused before any check, saying how long to wait.
    """
    name = str(name).strip()
    wait = limiter.wait_seconds(name)
    if wait > 0:
        raise AccessError(
            f"too many failed logins for {name!r}; try again in {math.ceil(wait)} s"
        )
    account = _read(ws).get(name)
    try:
        _HASHER.verify(account.password_hash if account else _dummy_hash(), password)
        ok = account is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        limiter.failed(name)
        raise AccessError("wrong user name or password")
    limiter.succeeded(name)
    return account.role  # type: ignore[union-attr]


def require_analyst(role: str | None) -> None:
    """Refuse a write (import, train, delete, settings) unless ``role`` is analyst.

    The one check every write path calls; None means an anonymous visitor.
    """
    if role != ANALYST:
        raise AccessError(
            f"this needs an analyst account (you are {'a ' + role if role else 'not signed in'}); "
            "viewers see the demo only. Fix: ask an analyst, or sign in as one"
        )
