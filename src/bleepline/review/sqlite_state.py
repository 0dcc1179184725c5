"""The review state's small SQLite files (users, call tags, retention overrides, CRM deliveries).

Each is made mode 0600 before SQLite first opens it (``users.db`` holds password hashes), and each use
opens its own short connection, so the web app and a CLI command can work on one file at the same time
(SQLite's file locks, waited on for up to 10 s). A database error becomes the caller's own error type,
one line naming the file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from bleepline.errors import BleeplineError


def create_private(path: Path, schema: str, error: type[BleeplineError], what: str) -> None:
    """Make ``path`` (mode 0600) if it is not there, and run ``schema`` (a CREATE ... IF NOT EXISTS)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as exc:
        raise error(f"{path}: cannot create the {what}: {exc.strerror}") from None
    with connect(path, error, what) as db:
        db.execute(schema)


@contextmanager
def connect(path: Path, error: type[BleeplineError], what: str) -> Iterator[sqlite3.Connection]:
    """One connection in one transaction (committed on success), closed afterwards."""
    try:
        with closing(sqlite3.connect(path, timeout=10)) as db, db:
            yield db
    except sqlite3.DatabaseError as exc:
        raise error(f"{path}: {what} error: {exc}") from None
