"""Review users, their roles, and what each role may do.

Users live in a small SQLite database (``state/users.db``, created mode 0600). Passwords are hashed
with scrypt, a random salt per user, the parameters stored beside the hash so they can be raised later
without breaking old hashes.

Roles, least privilege first:

- ``reviewer``: list calls, read redacted transcripts, play redacted audio.
- ``supervisor``: what a reviewer does, plus export and the analytics page (aggregates only).
- ``auditor``: the audit trail and nothing else (the issue's "audit trail only"): an auditor checks who
  listened to what, and does not need to listen.
- ``admin``: users, retention, tags and policy, and the call list (metadata only: ids, dates, lengths,
  entity counts) because setting tags and checking retention needs call ids. An admin can neither read
  transcripts nor play audio, and cannot read the audit trail: the person who changes users and deletes
  recordings is not the person who checks the record of it (separation of duties). An admin who needs to
  listen is given a second, reviewer account, and that shows in the trail.

A user with tags (an outsourced reviewer, say) sees only calls carrying one of those tags; a user
without tags sees every call. ``may_open`` is that scope check; ``can`` is the role check; a page that
shows one call needs both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bleepline.errors import BleeplineError
from bleepline.review.config import TAG_PATTERN
from bleepline.review.sqlite_state import connect, create_private

USERS_DB = "users.db"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

# scrypt cost: n=2**15, r=8 is 32 MiB and ~0.1 s per try, what RFC 7914 and OWASP suggest for
# interactive logins; together with the login rate limit it makes guessing slow.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 128 * SCRYPT_R * SCRYPT_N * 2
_HASH_BYTES = 32
_SALT_BYTES = 16


class Role(StrEnum):
    REVIEWER = "reviewer"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Action(StrEnum):
    LIST = "list"  # the call list: metadata only
    VIEW = "view"  # a call's page and its redacted transcript
    PLAY = "play"  # decrypt and stream the redacted audio
    EXPORT = "export"  # download a call's transcript or audio
    AUDIT = "audit"  # read the audit trail
    ADMIN = "admin"  # users, tags, retention, policy
    ANALYTICS = "analytics"  # aggregates across calls, no content


_CAPABILITIES: dict[Role, frozenset[Action]] = {
    Role.REVIEWER: frozenset({Action.LIST, Action.VIEW, Action.PLAY}),
    Role.SUPERVISOR: frozenset({Action.LIST, Action.VIEW, Action.PLAY, Action.EXPORT, Action.ANALYTICS}),
    Role.AUDITOR: frozenset({Action.AUDIT}),
    Role.ADMIN: frozenset({Action.ADMIN, Action.LIST}),
}


class UserError(BleeplineError):
    """A user that cannot be added, found or changed as asked."""


@dataclass(frozen=True)
class User:
    """Who is signed in, and what they are limited to. Never carries the password hash."""

    name: str
    role: Role
    tags: frozenset[str]


def can(user: User, action: Action) -> bool:
    """Whether ``user``'s role allows ``action`` at all (scope is ``may_open``'s job)."""
    return action in _CAPABILITIES[user.role]


def may_open(user: User, call_tags: frozenset[str]) -> bool:
    """Whether a call with ``call_tags`` is in ``user``'s scope: every call for a user without tags,
    otherwise only calls sharing at least one tag with the user."""
    return not user.tags or bool(user.tags & call_tags)


def capabilities(role: Role) -> frozenset[Action]:
    return _CAPABILITIES[role]


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (salt and hash base64)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=max(_SCRYPT_MAXMEM, 128 * r * n * 2),
        dklen=_HASH_BYTES,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# An unknown user is checked against this hash so that a login costs the same whether or not the name
# exists: timing must not tell an attacker which names are real.
_DUMMY_HASH = hash_password(secrets.token_hex(16))


class UserStore:
    """The users in ``path`` (an SQLite file, made on first use). Each call opens its own connection,
    so one store can be shared by the web app's handlers and a CLI running at the same time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._create()

    def add(self, name: str, password: str, role: Role | str, tags: Iterable[str] = frozenset()) -> User:
        user = User(_check_name(name), _check_role(role), _check_tags(tags))
        hashed = hash_password(_check_password(password))
        with self._db() as db:
            try:
                db.execute(
                    "INSERT INTO users (name, role, tags, password) VALUES (?, ?, ?, ?)",
                    (user.name, user.role.value, _join_tags(user.tags), hashed),
                )
            except sqlite3.IntegrityError:
                raise UserError(f"user {user.name} already exists") from None
        return user

    def authenticate(self, name: str, password: str) -> User | None:
        """The user, if ``password`` is theirs; None otherwise, in the same time for unknown names."""
        row = None
        if NAME_PATTERN.fullmatch(name) and len(password) <= MAX_PASSWORD:
            with self._db() as db:
                row = db.execute(
                    "SELECT name, role, tags, password FROM users WHERE name = ?", (name,)
                ).fetchone()
        ok = check_password(password[:MAX_PASSWORD], row[3] if row else _DUMMY_HASH)
        if row is None or not ok:
            return None
        return _user(row)

    def get(self, name: str) -> User | None:
        if not NAME_PATTERN.fullmatch(name):
            return None
        with self._db() as db:
            row = db.execute(
                "SELECT name, role, tags, password FROM users WHERE name = ?", (name,)
            ).fetchone()
        return _user(row) if row else None

    def list(self) -> list[User]:
        with self._db() as db:
            rows = db.execute("SELECT name, role, tags, password FROM users ORDER BY name").fetchall()
        return [_user(row) for row in rows]

    def set_role(self, name: str, role: Role | str) -> User:
        self._update(name, "role", _check_role(role).value)
        return self._must_get(name)

    def set_tags(self, name: str, tags: Iterable[str]) -> User:
        self._update(name, "tags", _join_tags(_check_tags(tags)))
        return self._must_get(name)

    def set_password(self, name: str, password: str) -> None:
        self._update(name, "password", hash_password(_check_password(password)))

    def remove(self, name: str) -> None:
        with self._db() as db:
            if db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"no user named {name!r}")

    def _update(self, name: str, column: str, value: str) -> None:
        assert column in ("role", "tags", "password")  # never from input: it is spliced into the SQL
        with self._db() as db:
            if db.execute(f"UPDATE users SET {column} = ? WHERE name = ?", (value, name)).rowcount == 0:
                raise UserError(f"no user named {name!r}")

    def _must_get(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user named {name!r}")
        return user

    def _create(self) -> None:
        create_private(
            self.path,
            "CREATE TABLE IF NOT EXISTS users ("
            " name TEXT PRIMARY KEY, role TEXT NOT NULL, tags TEXT NOT NULL, password TEXT NOT NULL)",
            UserError,
            "user database",
        )

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path, UserError, "user database")


def _user(row: tuple[str, str, str, str]) -> User:
    return User(row[0], Role(row[1]), frozenset(t for t in row[2].split(",") if t))


def _check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"bad user name {name!r}: lower-case letters, digits, . _ - (up to 64)")
    return name


def _check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UserError(f"unknown role {role!r} (roles: {', '.join(r.value for r in Role)})") from None


def _check_tags(tags: Iterable[str]) -> frozenset[str]:
    checked = frozenset(tags)
    for tag in checked:
        if not TAG_PATTERN.fullmatch(tag):
            raise UserError(f"bad tag {tag!r}: letters, digits, . _ - (up to 64)")
    return checked


def _join_tags(tags: frozenset[str]) -> str:
    return ",".join(sorted(tags))


def _check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    return password
