"""CRM export: one signed webhook per finished call, carrying only allowlisted fields.

What may leave is fixed here, not by the CRM: ``ALLOWED_FIELDS`` (call id, times, duration, entity
counts, masked seconds, a link to the review page). The config picks a subset; naming anything else is
a config error. The redacted transcript goes only when ``include_transcript = true`` is written in the
config: just its segments' times and redacted text, never the entity scores or policy.

Each request is JSON, signed with HMAC-SHA256 under a shared secret (``secret_file``)::

    X-Bleepline-Timestamp: <unix seconds>
    X-Bleepline-Signature: sha256=<hex HMAC of "<timestamp>." + body>

The timestamp is inside the signed bytes, so a receiver that rejects old timestamps (``verify_signature``
does, after five minutes) cannot be fed a replayed delivery; signing the body alone would leave the
timestamp forgeable. Redirects are not followed (they would carry the payload elsewhere).

Delivery state per call lives in ``state/crm.db``: pending, sent or failed, the number of attempts and
the last error, which is a status code or an error class, never a response body (a CRM's error page
could echo anything). Network errors, timeouts, 408, 429 and 5xx are retried with exponential backoff up
to ``max_attempts``; other answers fail at once. Every attempt is audited (``webhook_sent`` or
``webhook_failed``, with the attempt number and status code).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bleepline.errors import BleeplineError
from bleepline.review.audit import AuditEvent, AuditLog
from bleepline.review.catalog import CallEntry, Catalog, CatalogError, TagStore
from bleepline.review.config import WEBHOOK_FIELDS, ReviewConfig, ReviewConfigError, WebhookSettings
from bleepline.review.sqlite_state import connect, create_private

ALLOWED_FIELDS: tuple[str, ...] = WEBHOOK_FIELDS
TRANSCRIPT_FIELD = "transcript"
CRM_DB = "crm.db"
SIGNATURE_HEADER = "X-Bleepline-Signature"
TIMESTAMP_HEADER = "X-Bleepline-Timestamp"
MIN_SECRET_BYTES = 16
SIGNATURE_TOLERANCE_S = 300
_RETRY_STATUSES = frozenset({408, 429})

Sleep = Callable[[float], Awaitable[None]]


class CrmError(BleeplineError):
    """The webhook cannot be set up (secret missing, no webhook configured) or its state is unreadable."""


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    call_id: str
    status: DeliveryStatus
    attempts: int  # over all runs
    last_error: str | None  # "HTTP 500", "timed out", "connection failed (ClientConnectorError)"
    updated_at: str


def payload(
    entry: CallEntry, transcript: Mapping[str, Any] | None, settings: WebhookSettings
) -> dict[str, Any]:
    """The JSON object sent for ``entry``: the configured fields, each checked against the allowlist."""
    builders: dict[str, Callable[[], Any]] = {
        "call_id": lambda: entry.call_id,
        "started_at": lambda: _iso(entry.created_at),
        "ended_at": lambda: _iso(entry.created_at + timedelta(seconds=entry.duration)),
        "duration_s": lambda: round(entry.duration, 3),
        "entity_counts": lambda: {k: int(v) for k, v in sorted(entry.entity_counts.items())},
        "masked_seconds": lambda: {k: round(float(v), 3) for k, v in sorted(entry.masked_seconds.items())},
        "review_url": lambda: _review_url(settings, entry.call_id),
    }
    assert set(builders) == set(ALLOWED_FIELDS)
    body: dict[str, Any] = {}
    for name in settings.fields:
        if name not in ALLOWED_FIELDS:
            raise ReviewConfigError(f"webhook.fields: {name!r} is not allowed")
        body[name] = builders[name]()
    if settings.include_transcript is True:
        body[TRANSCRIPT_FIELD] = _transcript_segments(transcript)
    return body


def _transcript_segments(transcript: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if transcript is None:
        return []
    segments = []
    for segment in transcript.get("segments", []):
        if not isinstance(segment, dict) or not isinstance(segment.get("text"), str):
            continue
        segments.append(
            {
                "start": _seconds(segment.get("start")),
                "end": _seconds(segment.get("end")),
                "text": segment["text"],
            }
        )
    return segments


def _seconds(value: Any) -> float:
    return round(float(value), 3) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _review_url(settings: WebhookSettings, call_id: str) -> str:
    if settings.base_url is None:
        raise ReviewConfigError("webhook.fields has review_url, which needs webhook.base_url")
    return f"{settings.base_url.rstrip('/')}/calls/{quote(call_id, safe='')}"


def encode_body(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """What a receiver checks: a fresh timestamp and a signature over it and the body."""
    if not timestamp.isdigit():
        return False
    moment = int(timestamp)
    if abs((time.time() if now is None else now) - moment) > tolerance_s:
        return False
    return hmac.compare_digest(signature, sign(secret, moment, body))


def load_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        raise CrmError(f"{path}: the webhook secret file does not exist") from None
    except OSError as exc:
        raise CrmError(f"{path}: cannot read the webhook secret: {exc.strerror}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise CrmError(f"{path}: the webhook secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


class DeliveryStore:
    """Per-call delivery state in ``state/crm.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        create_private(
            path,
            "CREATE TABLE IF NOT EXISTS deliveries (call_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
            "attempts INTEGER NOT NULL, last_error TEXT, updated_at TEXT NOT NULL)",
            CrmError,
            "delivery database",
        )

    def get(self, call_id: str) -> Delivery | None:
        with self._db() as db:
            row = db.execute(
                "SELECT call_id, status, attempts, last_error, updated_at FROM deliveries WHERE call_id = ?",
                (call_id,),
            ).fetchone()
        return _delivery(row) if row else None

    def all(self) -> list[Delivery]:
        with self._db() as db:
            rows = db.execute(
                "SELECT call_id, status, attempts, last_error, updated_at FROM deliveries ORDER BY call_id"
            ).fetchall()
        return [_delivery(row) for row in rows]

    def record(self, call_id: str, status: DeliveryStatus, attempts: int, last_error: str | None) -> Delivery:
        now = _iso(datetime.now(UTC))
        with self._db() as db:
            db.execute(
                "INSERT INTO deliveries (call_id, status, attempts, last_error, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(call_id) DO UPDATE SET status = excluded.status, "
                "attempts = excluded.attempts, last_error = excluded.last_error, "
                "updated_at = excluded.updated_at",
                (call_id, status.value, attempts, last_error, now),
            )
        return Delivery(call_id, status, attempts, last_error, now)

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path, CrmError, "delivery database")


def _delivery(row: tuple[str, str, int, str | None, str]) -> Delivery:
    return Delivery(row[0], DeliveryStatus(row[1]), row[2], row[3], row[4])


class WebhookSender:
    """Posts webhooks for finished calls and keeps their delivery state."""

    def __init__(
        self,
        settings: WebhookSettings,
        state: Path,
        *,
        audit: AuditLog | None = None,
        sleep: Sleep = asyncio.sleep,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.secret = load_secret(settings.secret_file)
        self.deliveries = DeliveryStore(state / CRM_DB)
        self.audit = audit if audit is not None else AuditLog(state)
        self._sleep = sleep
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, 4, … capped)."""
        return float(min(self._base_delay_s * 2 ** (attempt - 1), self._max_delay_s))

    async def deliver(
        self, entry: CallEntry, transcript: Mapping[str, Any] | None, session: aiohttp.ClientSession
    ) -> Delivery:
        """Send one call's webhook, retrying as the rules allow; returns the final state."""
        body = encode_body(payload(entry, transcript, self.settings))
        previous = self.deliveries.get(entry.call_id)
        attempts = previous.attempts if previous else 0
        last_error = previous.last_error if previous else None
        self.deliveries.record(entry.call_id, DeliveryStatus.PENDING, attempts, last_error)
        error: str | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            attempts += 1
            status, error, retry = await self._post(session, body)
            if error is None:
                self.audit.append(
                    AuditEvent.WEBHOOK_SENT,
                    call_id=entry.call_id,
                    source="crm",
                    detail={"attempt": attempt, "status": status or 0},
                )
                return self.deliveries.record(entry.call_id, DeliveryStatus.SENT, attempts, None)
            detail: dict[str, str | int | float | bool] = {"attempt": attempt}
            if status is not None:
                detail["status"] = status
            else:
                detail["error"] = error.split(" ", 1)[0]  # "timed", "connection": a token, not the message
            self.audit.append(AuditEvent.WEBHOOK_FAILED, call_id=entry.call_id, source="crm", detail=detail)
            self.deliveries.record(entry.call_id, DeliveryStatus.PENDING, attempts, error)
            if not retry or attempt == self.settings.max_attempts:
                break
            await self._sleep(self.backoff(attempt))
        return self.deliveries.record(entry.call_id, DeliveryStatus.FAILED, attempts, error)

    async def _post(self, session: aiohttp.ClientSession, body: bytes) -> tuple[int | None, str | None, bool]:
        """(status, error or None, whether to retry). The response body is never read into the error."""
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
        }
        try:
            async with session.post(
                self.settings.url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
            ) as response:
                status = response.status
        except TimeoutError:
            return None, "timed out", True
        except aiohttp.ClientError as exc:
            return None, f"connection failed ({type(exc).__name__})", True
        if 200 <= status < 300:
            return status, None, False
        if 300 <= status < 400:
            return status, f"HTTP {status} (redirects are not followed)", False
        return status, f"HTTP {status}", status >= 500 or status in _RETRY_STATUSES

    async def send_pending(
        self, catalog: Catalog, *, call_id: str | None = None, force: bool = False
    ) -> list[Delivery]:
        """Deliver every finished call not yet sent (or just ``call_id``; ``force`` resends a sent one)."""
        if call_id is not None:
            entries = [catalog.get(call_id)]
            if not entries[0].finished:
                raise CrmError(f"call {call_id} has not finished (no transcript yet); nothing sent")
        else:
            entries = [e for e in catalog.calls() if e.finished]
        results = []
        async with aiohttp.ClientSession() as session:
            for entry in sorted(entries, key=lambda e: (e.created_at, e.call_id)):
                known = self.deliveries.get(entry.call_id)
                if known is not None and known.status is DeliveryStatus.SENT and not force:
                    continue
                transcript = None
                if self.settings.include_transcript:
                    try:
                        transcript = catalog.transcript(entry.call_id)
                    except CatalogError:
                        transcript = None
                results.append(await self.deliver(entry, transcript, session))
        return results


def sender_for(config: ReviewConfig, **kwargs: Any) -> tuple[WebhookSender, Catalog]:
    """A sender and catalog for ``config``; ``CrmError`` if no webhook is configured."""
    if config.webhook is None:
        raise CrmError("no [webhook] section in the review config: nothing to send to")
    sender = WebhookSender(config.webhook, config.state, **kwargs)
    return sender, Catalog(config.store, TagStore.in_state(config.state))


def unsent(catalog: Catalog, deliveries: DeliveryStore) -> list[str]:
    """Finished calls with no delivery recorded at all."""
    known = {d.call_id for d in deliveries.all()}
    return [e.call_id for e in catalog.calls() if e.finished and e.call_id not in known]
