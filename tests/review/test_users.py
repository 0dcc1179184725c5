"""Users, password hashing, and the role and scope checks every page relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bleepline.review import users
from bleepline.review.config import ReviewConfig
from bleepline.review.users import (
    Action,
    Role,
    User,
    UserError,
    UserStore,
    can,
    check_password,
    hash_password,
    may_open,
)
from tests.review.conftest import USERS, password_of


def test_fixture_users_log_in(review_store: ReviewConfig) -> None:
    store = UserStore(review_store.state / "users.db")
    for name, role, tags in USERS:
        user = store.authenticate(name, password_of(name))
        assert user == User(name, role, tags)
        assert store.authenticate(name, password_of(name) + "x") is None
    assert [u.name for u in store.list()] == sorted(n for n, _, _ in USERS)


def test_password_is_salted_scrypt_never_plain(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.db")
    store.add("bob", "a long enough secret", Role.REVIEWER)
    store.add("carol", "a long enough secret", Role.REVIEWER)
    with sqlite3.connect(tmp_path / "users.db") as db:
        hashes = [row[0] for row in db.execute("SELECT password FROM users")]
    assert all(h.startswith("scrypt$") for h in hashes)
    assert hashes[0] != hashes[1]  # per-user salt
    raw = (tmp_path / "users.db").read_bytes()
    assert b"a long enough secret" not in raw
    assert (tmp_path / "users.db").stat().st_mode & 0o077 == 0


def test_hash_round_trip_and_tampering() -> None:
    stored = hash_password("hunter2hunter2")
    assert check_password("hunter2hunter2", stored)
    assert not check_password("hunter2hunter3", stored)
    assert not check_password("hunter2hunter2", stored.replace("scrypt", "md5"))
    assert not check_password("hunter2hunter2", "garbage")


def test_an_unknown_user_costs_one_scrypt_like_a_known_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = UserStore(tmp_path / "users.db")
    store.add("bob", "a long enough secret", Role.REVIEWER)
    runs: list[int] = []
    real = users._scrypt

    def counted(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        runs.append(n)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(users, "_scrypt", counted)
    assert store.authenticate("bob", "wrong password!") is None
    assert store.authenticate("nobody", "wrong password!") is None
    # Without the dummy hash an unknown name would answer at once, telling names apart by timing.
    assert runs == [users.SCRYPT_N, users.SCRYPT_N]
    assert store.authenticate("Not A Name!", "whatever") is None


def test_changes(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.db")
    store.add("bob", "first password", "reviewer", {"outsourced"})
    assert store.set_role("bob", Role.SUPERVISOR).role is Role.SUPERVISOR
    assert store.set_tags("bob", ["a", "b"]).tags == frozenset({"a", "b"})
    assert store.set_tags("bob", []).tags == frozenset()
    store.set_password("bob", "second password")
    assert store.authenticate("bob", "first password") is None
    assert store.authenticate("bob", "second password") is not None
    store.remove("bob")
    assert store.get("bob") is None
    assert store.authenticate("bob", "second password") is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.add("bob", "x", Role.REVIEWER), "8 to"),
        (lambda s: s.add("Bob Smith", "long enough!", Role.REVIEWER), "bad user name"),
        (lambda s: s.add("bob", "long enough!", "root"), "unknown role"),
        (lambda s: s.add("bob", "long enough!", Role.REVIEWER, {"a b"}), "bad tag"),
        (lambda s: s.set_role("nobody", Role.ADMIN), "no user"),
        (lambda s: s.remove("nobody"), "no user"),
    ],
)
def test_bad_changes_are_refused(tmp_path: Path, call: object, match: str) -> None:
    store = UserStore(tmp_path / "users.db")
    with pytest.raises(UserError, match=match):
        call(store)  # type: ignore[operator]


def test_duplicate_user(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.db")
    store.add("bob", "long enough!", Role.REVIEWER)
    with pytest.raises(UserError, match="already exists"):
        store.add("bob", "other password", Role.ADMIN)
    assert store.authenticate("bob", "long enough!") is not None


# What each role may do: the table the issue sets, with least privilege where it leaves room.
EXPECTED = {
    Role.REVIEWER: {Action.LIST, Action.VIEW, Action.PLAY},
    Role.SUPERVISOR: {Action.LIST, Action.VIEW, Action.PLAY, Action.EXPORT, Action.ANALYTICS},
    Role.AUDITOR: {Action.AUDIT},
    Role.ADMIN: {Action.ADMIN, Action.LIST},
}


@pytest.mark.parametrize("role", list(Role))
def test_capabilities(role: Role) -> None:
    user = User("x", role, frozenset())
    assert {a for a in Action if can(user, a)} == EXPECTED[role]


def test_admin_and_auditor_cannot_play_or_read() -> None:
    for role in (Role.ADMIN, Role.AUDITOR):
        user = User("x", role, frozenset())
        assert not can(user, Action.PLAY)
        assert not can(user, Action.VIEW)
        assert not can(user, Action.EXPORT)


def test_scope() -> None:
    everyone = User("alice", Role.REVIEWER, frozenset())
    outsourced = User("otto", Role.REVIEWER, frozenset({"outsourced"}))
    assert may_open(everyone, frozenset())
    assert may_open(everyone, frozenset({"billing"}))
    assert may_open(outsourced, frozenset({"outsourced", "sales"}))
    assert not may_open(outsourced, frozenset())
    assert not may_open(outsourced, frozenset({"billing"}))
