"""Retention: recordings whose time is up are crypto-shredded and removed.

Each call's age counts from its recording header's ``created_at``. The periods that apply to a call are
the store's ``retention.days`` and ``retention.by_tag`` for each of its tags; the **shortest** wins,
because retention is a promise to delete: a call tagged ``outsourced`` (30 days) in a 90-day store is
kept 30 days. Overrides an admin stored in ``state/policy.db`` (``bleepline.review.policy``: store-wide
or per tag) are further candidates under the same rule, so they can shorten retention, never lengthen
it. A call that no period covers is kept. (A legal hold that must outlive the policy is not
modelled here; it would be a tag that exempts, decided by whoever owns that policy.)

Shredding, per call:

1. every recipient's wrapped file key (``sealed`` in the header) is overwritten in place with random
   bytes of the same length, and the file is fsynced: without a wrapped key no identity can recover the
   file key, so any copy of these bytes recovered later (undelete, a snapshot taken after this point)
   is noise. The header keeps its length, so nothing else in the file moves;
2. the shred is recorded in the audit trail (``retention_shred``), before any file is removed: if the
   trail cannot be written, the run stops (the recording is already unreadable, and a rerun finishes it);
3. the ``.bleep``, ``.transcript.json`` and ``.vtt`` are deleted and the directory fsynced.

Overwriting in place destroys the key on ordinary filesystems; on copy-on-write filesystems, SSD wear
levelling, and in backups or snapshots taken earlier, old blocks may survive, which is why the key is what
gets destroyed (a backup made before expiry still holds a wrapped key: backups need a retention of their
own, no longer than the recordings').
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bleepline.errors import BleeplineError
from bleepline.review.audit import AuditEvent, AuditLog
from bleepline.review.catalog import (
    TRANSCRIPT_SUFFIX,
    VTT_SUFFIX,
    CallEntry,
    Catalog,
    SkippedFile,
    TagStore,
)
from bleepline.review.config import ReviewConfig
from bleepline.review.policy import Overrides, PolicyStore
from bleepline.store import format as fmt
from bleepline.store.verdict import VERDICT_SUFFIX


class RetentionError(BleeplineError):
    """A recording could not be shredded."""


@dataclass(frozen=True)
class Expiry:
    """Why a call is expired: its age, the period that applies, and where that period comes from."""

    entry: CallEntry
    age_days: int
    period_days: int
    rule: str  # "store", "tag:<name>", "override:store" or "override:tag:<name>"


@dataclass(frozen=True)
class ShredOutcome:
    call_id: str
    created_at: datetime
    age_days: int
    period_days: int
    rule: str
    removed: tuple[str, ...]  # file names deleted (none in a dry run)


@dataclass(frozen=True)
class RetentionFailure:
    call_id: str
    reason: str


@dataclass(frozen=True)
class RetentionReport:
    dry_run: bool
    shredded: tuple[ShredOutcome, ...]
    failed: tuple[RetentionFailure, ...]
    skipped: tuple[SkippedFile, ...]  # store files that do not open, so their age is unknown
    kept: int  # calls not yet expired (or under no period)


def period_for(
    entry: CallEntry, config: ReviewConfig, overrides: Overrides | None = None
) -> tuple[int, str] | None:
    """The shortest retention period (days) that applies to ``entry``, and its rule; None if none does.
    ``overrides`` (from the policy store) add candidates; they never remove the config's."""
    candidates = _candidates(entry, "", config.retention_days, config.retention_by_tag)
    if overrides is not None:
        candidates += _candidates(entry, "override:", overrides.days, overrides.by_tag)
    return min(candidates) if candidates else None


def _candidates(
    entry: CallEntry, prefix: str, days: int | None, by_tag: Mapping[str, int]
) -> list[tuple[int, str]]:
    found = [] if days is None else [(days, f"{prefix}store")]
    for tag in sorted(entry.tags):
        tag_days = by_tag.get(tag)
        if tag_days is not None:
            found.append((tag_days, f"{prefix}tag:{tag}"))
    return found


def describe_rule(rule: str) -> str:
    """A rule as a person reads it: ``store``, ``tag outsourced``, ``store override``, ..."""
    base = rule.removeprefix("override:")
    words = "store" if base == "store" else base.replace("tag:", "tag ", 1)
    return f"{words} override" if rule.startswith("override:") else words


def expired_with_reasons(
    catalog: Catalog, config: ReviewConfig, now: datetime, overrides: Overrides | None = None
) -> list[Expiry]:
    found = []
    for entry in catalog.calls():
        period = period_for(entry, config, overrides)
        if period is None:
            continue
        days, rule = period
        if entry.created_at + timedelta(days=days) <= now:
            found.append(Expiry(entry, (now - entry.created_at).days, days, rule))
    found.sort(key=lambda e: (e.entry.created_at, e.entry.call_id))  # oldest first
    return found


def expired(
    catalog: Catalog, config: ReviewConfig, now: datetime, overrides: Overrides | None = None
) -> list[CallEntry]:
    """The calls whose retention period has run out at ``now`` (``created_at + period <= now``), oldest
    first."""
    return [e.entry for e in expired_with_reasons(catalog, config, now, overrides)]


def shred_keys(recording: Path) -> int:
    """Overwrite every wrapped key in ``recording``'s header with random bytes, in place, and fsync.

    Returns how many keys were destroyed. If the header does not parse, the whole header region is
    overwritten instead (it holds the keys; the file is unreadable either way).
    """
    try:
        with open(recording, "r+b") as handle:
            preamble = handle.read(fmt.PREAMBLE.size)
            if len(preamble) < fmt.PREAMBLE.size or not preamble.startswith(fmt.MAGIC):
                raise RetentionError(f"{recording.name}: not a bleepline recording; not shredded")
            _magic, _version, length = fmt.PREAMBLE.unpack(preamble)
            header = handle.read(min(length, fmt.MAX_HEADER_BYTES))
            destroyed = 0
            for offset, size in _sealed_spans(header):
                handle.seek(fmt.PREAMBLE.size + offset)
                handle.write(_random_base64(size))
                destroyed += 1
            if destroyed == 0:
                handle.seek(fmt.PREAMBLE.size)
                handle.write(secrets.token_bytes(len(header)))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise RetentionError(
            f"{recording.name}: cannot be shredded: {(exc.strerror or 'error').lower()}"
        ) from None
    return destroyed


def _sealed_spans(header: bytes) -> list[tuple[int, int]]:
    """(offset, length) in ``header`` of each recipient's base64 ``sealed`` value."""
    try:
        doc = json.loads(header)
        values = [r["sealed"] for r in doc["recipients"]]
    except (ValueError, KeyError, TypeError):
        return []
    spans = []
    for value in values:
        if not isinstance(value, str):
            return []
        needle = b'"sealed":"' + value.encode("ascii", "replace") + b'"'
        start = 0
        while (found := header.find(needle, start)) >= 0:
            spans.append((found + len(b'"sealed":"'), len(value)))
            start = found + len(needle)
    return sorted(set(spans))


def _random_base64(size: int) -> bytes:
    """``size`` bytes of valid base64 of random bytes, so the header still parses as JSON (a reader
    then reports a damaged key, not a corrupt file); random base64 letters where size is not a multiple
    of 4 (a value that was not canonical base64 in the first place)."""
    if size % 4 == 0:
        return base64.b64encode(secrets.token_bytes(size // 4 * 3))
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return bytes(secrets.choice(alphabet) for _ in range(size))


def run_retention(
    config: ReviewConfig,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    source: str = "retention",
) -> RetentionReport:
    """Shred and remove every expired recording (or, with ``dry_run``, only say which), under the
    config's periods and the overrides stored in the state directory."""
    now = now or datetime.now(UTC)
    tags = TagStore.in_state(config.state)
    catalog = Catalog(config.store, tags)
    overrides = PolicyStore.in_state(config.state).overrides()
    expiries = expired_with_reasons(catalog, config, now, overrides)
    kept = len(catalog.calls()) - len(expiries)
    audit = AuditLog(config.state)
    done: list[ShredOutcome] = []
    failed: list[RetentionFailure] = []
    for expiry in expiries:
        entry = expiry.entry
        if dry_run:
            done.append(_outcome(expiry, ()))
            continue

        def record(_keys: int, expiry: Expiry = expiry) -> None:
            audit.append(
                AuditEvent.RETENTION_SHRED,
                call_id=expiry.entry.call_id,
                source=source,
                detail={
                    "age_days": expiry.age_days,
                    "period_days": expiry.period_days,
                    "rule": audit_rule(expiry.rule),
                },
            )

        try:
            removed = shred_call(config.store, entry, tags, record)
        except RetentionError as exc:
            failed.append(RetentionFailure(entry.call_id, str(exc)))
            continue
        done.append(_outcome(expiry, removed))
    return RetentionReport(dry_run, tuple(done), tuple(failed), catalog.skipped, kept)


def shred_call(
    store: Path, entry: CallEntry, tags: TagStore | None, record: Callable[[int], None]
) -> tuple[str, ...]:
    """Crypto-shred one call, as described at the top: keys destroyed, then ``record(keys_destroyed)``
    (it writes the audit record; if it raises, the files stay, already unreadable, and a rerun finishes
    the job), then the files removed and the call's admin tags forgotten. Returns the names removed.
    ``RetentionError`` when the keys cannot be destroyed or a file cannot be removed."""
    keys = shred_keys(entry.recording)
    record(keys)
    removed = _remove(store, entry)  # shredded already (unreadable); a rerun removes what is left
    if tags is not None:
        tags.forget(entry.call_id)
    return removed


def audit_rule(rule: str) -> str:
    """``rule`` for an audit record, whose tokens are at most 64 characters: a rule naming a long tag is
    cut to its kind rather than stopping the run."""
    return rule if len(rule) <= 64 else rule.rsplit(":", 1)[0]


def _outcome(expiry: Expiry, removed: Sequence[str]) -> ShredOutcome:
    e = expiry.entry
    return ShredOutcome(
        e.call_id, e.created_at, expiry.age_days, expiry.period_days, expiry.rule, tuple(removed)
    )


def _remove(store: Path, entry: CallEntry) -> tuple[str, ...]:
    removed = []
    for path in (
        entry.recording,
        store / f"{entry.call_id}{TRANSCRIPT_SUFFIX}",
        store / f"{entry.call_id}{VTT_SUFFIX}",
        store / f"{entry.call_id}{VERDICT_SUFFIX}",
    ):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RetentionError(f"{path.name}: shredded but cannot be removed: {exc.strerror}") from None
        removed.append(path.name)
    try:
        dir_fd = os.open(store, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # the deletes happened; fsync of a directory is best effort on some filesystems
    return tuple(removed)
