"""Retention overrides set by admins in the web app, kept in ``state/policy.db``.

The config file's ``[retention]`` is the written policy; an admin may add a store-wide period or a
period for one tag here, and ``bleepline.review.retention`` counts these as further candidates: the
shortest period that applies to a call still wins. So an override can only make a call go **sooner**
than the config says, never keep it longer: a config reviewed by whoever owns the policy stays the
outer bound, and an admin session (or someone who took one over) cannot quietly extend retention.
Lengthening is an edit of the config file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from bleepline.errors import BleeplineError
from bleepline.review.config import TAG_PATTERN
from bleepline.review.sqlite_state import connect, create_private

POLICY_DB = "policy.db"
#: A century: longer would mean "keep for ever", which is no period (and overflows date arithmetic).
MAX_DAYS = 36_500
_STORE_SCOPE = "store"
_TAG_PREFIX = "tag:"


class PolicyError(BleeplineError):
    """An override that cannot be stored as asked, or a policy database that cannot be read."""


@dataclass(frozen=True)
class Overrides:
    """The stored overrides: a store-wide period (or None) and periods by tag, in days."""

    days: int | None = None
    by_tag: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


class PolicyStore:
    """The overrides in ``path`` (an SQLite file, mode 0600, made on first use). Each call opens its
    own connection, so the web app and ``bleepline retention run`` may use it at the same time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        create_private(
            path,
            "CREATE TABLE IF NOT EXISTS retention_overrides (scope TEXT PRIMARY KEY, days INTEGER NOT NULL)",
            PolicyError,
            "policy database",
        )

    @classmethod
    def in_state(cls, state: Path) -> PolicyStore:
        return cls(state / POLICY_DB)

    def overrides(self) -> Overrides:
        days: int | None = None
        by_tag: dict[str, int] = {}
        with self._db() as db:
            rows = db.execute("SELECT scope, days FROM retention_overrides").fetchall()
        for scope, value in rows:
            # A row that is not ours (edited by hand) is ignored rather than trusted half-way.
            if not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
                continue
            if scope == _STORE_SCOPE:
                days = value
            elif isinstance(scope, str) and scope.startswith(_TAG_PREFIX):
                tag = scope[len(_TAG_PREFIX) :]
                if TAG_PATTERN.fullmatch(tag):
                    by_tag[tag] = value
        return Overrides(days, MappingProxyType(dict(sorted(by_tag.items()))))

    def set(self, tag: str | None, days: int) -> None:
        """Store ``days`` for ``tag`` (None: store-wide), replacing what was there."""
        if not 1 <= days <= MAX_DAYS:
            raise PolicyError(f"a retention period must be 1 to {MAX_DAYS} days")
        with self._db() as db:
            db.execute(
                "INSERT INTO retention_overrides (scope, days) VALUES (?, ?) "
                "ON CONFLICT(scope) DO UPDATE SET days = excluded.days",
                (_scope(tag), days),
            )

    def clear(self, tag: str | None) -> bool:
        """Remove the override for ``tag`` (None: store-wide); whether there was one."""
        with self._db() as db:
            return db.execute("DELETE FROM retention_overrides WHERE scope = ?", (_scope(tag),)).rowcount > 0

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path, PolicyError, "policy database")


def _scope(tag: str | None) -> str:
    if tag is None:
        return _STORE_SCOPE
    if not TAG_PATTERN.fullmatch(tag):
        raise PolicyError(f"bad tag {tag!r}: letters, digits, . _ - (up to 64)")
    return _TAG_PREFIX + tag
