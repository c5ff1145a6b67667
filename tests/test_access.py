"""Accounts, password hashing, login checks and rate limits (recsys_core.access, users CLI)."""

from __future__ import annotations

import io
import stat

import pytest

from recsys_core import access
from recsys_core.cli.main import main

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    """Argon2id at its cheapest parameters: the same code path, milliseconds instead of seconds
    on a loaded machine."""
    from argon2 import PasswordHasher, profiles

    monkeypatch.setattr(access, "_HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))


def test_hashes_are_stored_never_the_password(workspace):
    access.add_account(workspace, "alice", PASSWORD, "analyst")
    access.add_account(workspace, "bob", "viewer-pass-1", "viewer")
    path = access.users_path(workspace)
    text = path.read_text()
    assert PASSWORD not in text and "viewer-pass-1" not in text
    assert text.count("$argon2id$") == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [(a.name, a.role) for a in access.list_accounts(workspace)] == [
        ("alice", "analyst"), ("bob", "viewer")
    ]


def test_right_password_gives_the_role_and_wrong_ones_are_refused(workspace):
    access.add_account(workspace, "alice", PASSWORD, "analyst")
    limiter = access.LoginLimiter()
    assert access.authenticate(workspace, "alice", PASSWORD, limiter) == "analyst"
    for name, password in (("alice", PASSWORD + "x"), ("alice", ""), ("mallory", PASSWORD)):
        with pytest.raises(access.AccessError, match="wrong user name or password"):
            access.authenticate(workspace, name, password, limiter)


def test_failed_logins_are_limited_per_name(workspace):
    access.add_account(workspace, "alice", PASSWORD, "analyst")
    access.add_account(workspace, "bob", PASSWORD, "viewer")
    now = [0.0]
    limiter = access.LoginLimiter(max_failures=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(access.AccessError, match="wrong"):
            access.authenticate(workspace, "alice", "nope-nope", limiter)
    # Locked: even the right password is refused without being checked, saying how long.
    with pytest.raises(access.AccessError, match="too many failed logins.*try again in 60 s"):
        access.authenticate(workspace, "alice", PASSWORD, limiter)
    assert access.authenticate(workspace, "bob", PASSWORD, limiter) == "viewer"  # per name
    now[0] = 61.0
    assert access.authenticate(workspace, "alice", PASSWORD, limiter) == "analyst"


def test_names_roles_and_short_passwords_are_checked(workspace):
    with pytest.raises(access.AccessError, match="not a usable user name"):
        access.add_account(workspace, "a b", PASSWORD, "analyst")
    with pytest.raises(access.AccessError, match="unknown role"):
        access.add_account(workspace, "alice", PASSWORD, "admin")
    with pytest.raises(access.AccessError, match="shorter than 8"):
        access.add_account(workspace, "alice", "short", "analyst")
    with pytest.raises(access.AccessError, match="no account named"):
        access.remove_account(workspace, "ghost")
    assert not access.has_accounts(workspace)


@pytest.mark.parametrize(
    ("address", "required"),
    [("127.0.0.1", False), ("localhost", False), ("::1", False), ("127.0.0.2", True),
     ("0.0.0.0", True), ("", True), (None, True), ("10.1.2.3", True), ("myhost", True)],
)
def test_login_is_required_off_127_0_0_1(address, required, monkeypatch):
    monkeypatch.delenv(access.ENV_REQUIRE_LOGIN, raising=False)
    assert access.login_required(address) is required


def test_require_analyst_refuses_viewers_and_anonymous():
    access.require_analyst("analyst")
    for role in ("viewer", None):
        with pytest.raises(access.AccessError, match="needs an analyst account"):
            access.require_analyst(role)


def test_users_cli_add_list_remove(workspace, monkeypatch, capsys):
    ws = ["--workspace", str(workspace.root)]
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main([*ws, "users", "add", "carol", "--role", "viewer", "--password-stdin"]) == 0
    assert main([*ws, "users", "list"]) == 0
    assert "carol\tviewer" in capsys.readouterr().out
    assert access.authenticate(workspace, "carol", PASSWORD, access.LoginLimiter()) == "viewer"
    assert main([*ws, "users", "remove", "carol"]) == 0
    assert main([*ws, "users", "remove", "carol"]) == 2
    assert "no account named 'carol'" in capsys.readouterr().err
