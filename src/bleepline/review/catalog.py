"""The calls in a recordings store, as the review side lists and filters them.

A store is the directory ``bleepline redact --out`` and ``bleepline serve`` write: ``<id>.bleep``, and
for a finished call ``<id>.transcript.json`` and ``<id>.vtt``. The call id is the file name's stem.
``bleepline verify --write-verdict`` adds ``<id>.verify.json``: what a second listen found still audible.

Listing reads each recording's header without a key, so it is **not authenticated** (the header MAC
needs the file key, which only the reviewer identity unwraps). That is acceptable for a list because:
the header is written by the relay and holds no content; the ids, dates and lengths shown are only as
trustworthy as the store's file permissions anyway; and the one field that grants access, ``tags``, can
only be forged by someone who can already write to the store (and so could replace the files outright).
Audio goes further: playback unlocks the reader, which verifies the header MAC (tags included) before a
single sample is decrypted, so a tampered header never releases audio. Admin-set tags live in a
separate database in the review state (``TagStore``) that the relay cannot touch.

Call ids come from URLs, so they are checked against a plain-name pattern before any path is built: a
traversal attempt (``../x``, ``a/b``, ``..``) is an unknown call, not a file lookup. Files that are not
plain files (symlinks included) are skipped, and so are recordings that do not open; both are counted.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import stat
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bleepline.errors import BleeplineError
from bleepline.review.config import TAG_PATTERN
from bleepline.review.sqlite_state import connect, create_private
from bleepline.review.users import User, may_open
from bleepline.store.errors import StoreError
from bleepline.store.recording import RecordingReader
from bleepline.store.verdict import VERDICT_SUFFIX, VerdictError, VerdictRecord, read_verdict

CALL_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RECORDING_SUFFIX = ".bleep"
TRANSCRIPT_SUFFIX = ".transcript.json"
VTT_SUFFIX = ".vtt"
TAGS_DB = "tags.db"
MASK_REASONS = ("pii", "dtmf", "unverified")
_MAX_TRANSCRIPT_BYTES = 32 << 20


class CatalogError(BleeplineError):
    """A call or transcript the catalog cannot give out."""


class UnknownCall(CatalogError):  # noqa: N818 - the name the web app imports
    """No such call, an id that is not a plain name, or a call outside the user's scope: all read alike,
    so a user cannot learn which ids exist."""

    def __init__(self, call_id: str) -> None:
        shown = call_id if CALL_ID_PATTERN.fullmatch(call_id) else "(not a valid call id)"
        super().__init__(f"unknown call {shown}")
        self.call_id = call_id


class TranscriptUnavailable(CatalogError):  # noqa: N818 - reads as a state, like UnknownCall
    """The call has no transcript (still running, or sealed without redaction), or it does not parse."""


def is_call_id(call_id: str) -> bool:
    return bool(CALL_ID_PATTERN.fullmatch(call_id)) and ".." not in call_id


@dataclass(frozen=True)
class CallEntry:
    """One call as the list shows it: metadata and counts, never content."""

    call_id: str
    created_at: datetime  # UTC, from the recording header: when the call started being recorded
    duration: float  # seconds
    entity_counts: Mapping[str, int]  # redactions by entity label
    masked_seconds: Mapping[str, float]  # by reason: pii, dtmf, unverified
    tags: frozenset[str]
    redacted: bool  # False for audio sealed as given (`bleepline seal`)
    recording: Path
    transcript: Path | None  # None while the call runs, or for a sealed file
    header_tags: frozenset[str] = frozenset()  # the relay's, from the header; ``tags`` adds the admin's
    verdict: VerdictRecord | None = None  # from `bleepline verify --write-verdict`; None: not verified

    @property
    def total_masked(self) -> float:
        return sum(self.masked_seconds.values())

    @property
    def finished(self) -> bool:
        """A transcript is written when a call ends, after its recording is closed."""
        return self.transcript is not None


@dataclass(frozen=True)
class SkippedFile:
    """A file in the store that is not listed, and why (no content in the reason)."""

    name: str
    reason: str


@dataclass(frozen=True)
class CatalogScan:
    entries: tuple[CallEntry, ...]
    skipped: tuple[SkippedFile, ...] = field(default_factory=tuple)


class TagStore:
    """Tags set on calls by admins (queues, teams, outsourcing), in ``state/tags.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        create_private(
            path,
            "CREATE TABLE IF NOT EXISTS call_tags (call_id TEXT NOT NULL, tag TEXT NOT NULL, "
            "PRIMARY KEY (call_id, tag))",
            CatalogError,
            "tag database",
        )

    @classmethod
    def in_state(cls, state: Path) -> TagStore:
        return cls(state / TAGS_DB)

    def get(self, call_id: str) -> frozenset[str]:
        with self._db() as db:
            rows = db.execute("SELECT tag FROM call_tags WHERE call_id = ?", (call_id,)).fetchall()
        return frozenset(row[0] for row in rows)

    def all(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        with self._db() as db:
            for call_id, tag in db.execute("SELECT call_id, tag FROM call_tags"):
                found.setdefault(call_id, set()).add(tag)
        return {call_id: frozenset(tags) for call_id, tags in found.items()}

    def set(self, call_id: str, tags: Iterable[str]) -> frozenset[str]:
        if not is_call_id(call_id):
            raise UnknownCall(call_id)
        checked = frozenset(tags)
        for tag in checked:
            if not TAG_PATTERN.fullmatch(tag):
                raise CatalogError(f"bad tag {tag!r}: letters, digits, . _ - (up to 64)")
        with self._db() as db:
            db.execute("DELETE FROM call_tags WHERE call_id = ?", (call_id,))
            db.executemany(
                "INSERT INTO call_tags (call_id, tag) VALUES (?, ?)", [(call_id, t) for t in sorted(checked)]
            )
        return checked

    def forget(self, call_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM call_tags WHERE call_id = ?", (call_id,))

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path, CatalogError, "tag database")


class Catalog:
    """The calls in ``store``, with tags from their headers and from ``tags``."""

    def __init__(self, store: Path, tags: TagStore | None = None) -> None:
        self.store = store
        self.tags = tags
        # Header reads are cached by (size, mtime): a list page should not rescan every file each time.
        self._cache: dict[str, tuple[tuple[int, int, int, int], _Header]] = {}
        self.skipped: tuple[SkippedFile, ...] = ()

    def scan(self) -> CatalogScan:
        """Every readable call in the store, newest first, and what was skipped."""
        entries: list[CallEntry] = []
        skipped: list[SkippedFile] = []
        admin_tags = self.tags.all() if self.tags else {}
        try:
            names = sorted(os.listdir(self.store))
        except FileNotFoundError:
            raise CatalogError(f"{self.store}: the recordings store does not exist") from None
        except OSError as exc:
            raise CatalogError(f"{self.store}: cannot list the recordings store: {exc.strerror}") from None
        for name in names:
            if not name.endswith(RECORDING_SUFFIX):
                continue
            call_id = name[: -len(RECORDING_SUFFIX)]
            if not is_call_id(call_id):
                skipped.append(SkippedFile(name, "file name is not a plain call id"))
                continue
            try:
                entries.append(self._entry(call_id, admin_tags.get(call_id, frozenset())))
            except CatalogError as exc:
                skipped.append(SkippedFile(name, str(exc)))
        entries.sort(key=lambda e: (e.created_at, e.call_id), reverse=True)
        self.skipped = tuple(skipped)
        return CatalogScan(tuple(entries), self.skipped)

    def calls(
        self,
        *,
        since: date | None = None,
        until: date | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
        entity: str | None = None,
        min_masked: float | None = None,
        user: User | None = None,
    ) -> list[CallEntry]:
        """The calls matching every filter given (dates are UTC days, both ends included), newest first.
        With ``user``, only calls in that user's scope."""
        found = []
        for entry in self.scan().entries:
            day = entry.created_at.date()
            if since is not None and day < since:
                continue
            if until is not None and day > until:
                continue
            if min_duration is not None and entry.duration < min_duration:
                continue
            if max_duration is not None and entry.duration > max_duration:
                continue
            if entity is not None and entry.entity_counts.get(entity, 0) == 0:
                continue
            if min_masked is not None and entry.total_masked < min_masked:
                continue
            if user is not None and not may_open(user, entry.tags):
                continue
            found.append(entry)
        return found

    def get(self, call_id: str, user: User | None = None) -> CallEntry:
        """One call. ``UnknownCall`` for an id that is not a plain name (checked before any file is
        touched), for a call that is not there, and for one outside ``user``'s scope."""
        if not is_call_id(call_id):
            raise UnknownCall(call_id)
        admin_tags = self.tags.get(call_id) if self.tags else frozenset()
        try:
            entry = self._entry(call_id, admin_tags)
        except UnknownCall:
            raise
        except CatalogError:
            raise UnknownCall(call_id) from None
        if user is not None and not may_open(user, entry.tags):
            raise UnknownCall(call_id)
        return entry

    def recording_path(self, call_id: str) -> Path:
        if not is_call_id(call_id):
            raise UnknownCall(call_id)
        return self.store / f"{call_id}{RECORDING_SUFFIX}"

    def transcript(self, call_id: str) -> dict[str, Any]:
        """The call's redacted transcript, parsed (docs/transcript-schema.md)."""
        if not is_call_id(call_id):
            raise UnknownCall(call_id)
        path = self.store / f"{call_id}{TRANSCRIPT_SUFFIX}"
        if not _is_plain_file(path):
            if not _is_plain_file(self.recording_path(call_id)):
                raise UnknownCall(call_id)
            raise TranscriptUnavailable(f"call {call_id} has no transcript (still running, or not redacted)")
        return _read_transcript(path, call_id)

    def transcript_bytes(self, call_id: str) -> bytes:
        """The transcript file exactly as stored, for export; checked to be a readable transcript first
        (the same checks as ``transcript``), so a damaged one is not handed out as if it were whole."""
        if not is_call_id(call_id):
            raise UnknownCall(call_id)
        path = self.store / f"{call_id}{TRANSCRIPT_SUFFIX}"
        if not _is_plain_file(path):
            raise TranscriptUnavailable(f"call {call_id} has no transcript (still running, or not redacted)")
        data = _read_limited(path, call_id)
        _parse_transcript(data, call_id)
        return data

    def subtitles_bytes(self, call_id: str) -> bytes:
        """The call's WebVTT file exactly as stored (written beside the transcript when a call ends)."""
        if not is_call_id(call_id):
            raise UnknownCall(call_id)
        path = self.store / f"{call_id}{VTT_SUFFIX}"
        if not _is_plain_file(path):
            raise TranscriptUnavailable(f"call {call_id} has no subtitles (still running, or not redacted)")
        return _read_limited(path, call_id)

    def _entry(self, call_id: str, admin_tags: frozenset[str]) -> CallEntry:
        recording = self.store / f"{call_id}{RECORDING_SUFFIX}"
        try:
            info = os.lstat(recording)
        except FileNotFoundError:
            raise UnknownCall(call_id) from None
        except OSError as exc:
            raise CatalogError(f"cannot read: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise CatalogError("not a plain file")
        header = self._header(recording, info)
        transcript_path: Path | None = self.store / f"{call_id}{TRANSCRIPT_SUFFIX}"
        duration = header.duration
        entity_counts: dict[str, int] = {}
        masked: dict[str, float] = dict.fromkeys(MASK_REASONS, 0.0)
        assert transcript_path is not None
        if _is_plain_file(transcript_path):
            try:
                doc = _read_transcript(transcript_path, call_id)
            except TranscriptUnavailable:
                transcript_path = None  # listed without counts rather than hidden
            else:
                entity_counts, masked = _counts(doc)
                duration = _number(doc.get("duration"), duration)
        else:
            transcript_path = None
        return CallEntry(
            call_id=call_id,
            created_at=header.created_at,
            duration=duration,
            entity_counts=MappingProxyType(entity_counts),
            masked_seconds=MappingProxyType(masked),
            tags=header.tags | admin_tags,
            redacted=header.redacted,
            recording=recording,
            transcript=transcript_path,
            header_tags=header.tags,
            verdict=self._verdict(call_id, header, info),
        )

    def _verdict(self, call_id: str, header: _Header, info: os.stat_result) -> VerdictRecord | None:
        """The call's verdict file, if there is one about this very recording: the same call id as the
        header, the same file name, the same size. A verdict that is unreadable or about other bytes
        (the recording was replaced since) reads as none: the call shows as not verified."""
        path = self.store / f"{call_id}{VERDICT_SUFFIX}"
        if not _is_plain_file(path):
            return None
        try:
            verdict = read_verdict(path)
        except VerdictError:
            return None
        same = (
            verdict.call_id == header.call_id
            and verdict.recording == f"{call_id}{RECORDING_SUFFIX}"
            and verdict.recording_bytes == info.st_size
        )
        return verdict if same else None

    def _header(self, recording: Path, info: os.stat_result) -> _Header:
        key = (info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev)
        cached = self._cache.get(recording.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            with RecordingReader(recording) as reader:
                header = reader.header
                layout = reader.scan()
        except StoreError as exc:
            raise CatalogError(f"recording does not open: {exc.problem}") from None
        created_at = _parse_time(header.created_at)
        if created_at is None:
            raise CatalogError("recording header has no valid created_at")
        raw_tags = header.metadata.get("tags", [])
        tags = (
            frozenset(t for t in raw_tags if isinstance(t, str) and TAG_PATTERN.fullmatch(t))
            if isinstance(raw_tags, list)
            else frozenset()
        )
        parsed = _Header(
            created_at, layout.samples / header.sample_rate, header.redacted, tags, header.call_id
        )
        self._cache[recording.name] = (key, parsed)
        return parsed


@dataclass(frozen=True)
class _Header:
    created_at: datetime
    duration: float
    redacted: bool
    tags: frozenset[str]
    call_id: str


def _is_plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_transcript(path: Path, call_id: str) -> dict[str, Any]:
    return _parse_transcript(_read_limited(path, call_id), call_id)


def _read_limited(path: Path, call_id: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_TRANSCRIPT_BYTES + 1)
    except OSError as exc:
        raise TranscriptUnavailable(f"call {call_id}: transcript cannot be read: {exc.strerror}") from None
    if len(data) > _MAX_TRANSCRIPT_BYTES:
        raise TranscriptUnavailable(f"call {call_id}: transcript is too large")
    return data


def _parse_transcript(data: bytes, call_id: str) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise TranscriptUnavailable(f"call {call_id}: transcript is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != "bleepline-transcript":
        raise TranscriptUnavailable(f"call {call_id}: not a bleepline transcript")
    if doc.get("version") != 1:
        raise TranscriptUnavailable(f"call {call_id}: transcript version {doc.get('version')!r} is unknown")
    if not isinstance(doc.get("segments"), list) or not isinstance(doc.get("redactions"), list):
        raise TranscriptUnavailable(f"call {call_id}: transcript has no segments or redactions list")
    return doc


def _counts(doc: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, float]]:
    counts: dict[str, int] = {}
    for redaction in doc.get("redactions", []):
        entity = redaction.get("entity") if isinstance(redaction, dict) else None
        if isinstance(entity, str) and TAG_PATTERN.fullmatch(entity):
            counts[entity] = counts.get(entity, 0) + 1
    masked = dict.fromkeys(MASK_REASONS, 0.0)
    stats = doc.get("stats")
    by_reason = stats.get("masked_seconds") if isinstance(stats, dict) else None
    if isinstance(by_reason, dict):
        for reason in MASK_REASONS:
            masked[reason] = _number(by_reason.get(reason), 0.0)
    return counts, masked


def _number(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return default


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
