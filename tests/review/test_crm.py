"""CRM webhooks against a real HTTP server: only allowlisted fields leave, signed; failures retry and show."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bleepline.commands.review_admin import watch_and_send
from bleepline.review.audit import AuditLog, verify
from bleepline.review.catalog import Catalog
from bleepline.review.config import ReviewConfig, ReviewConfigError, WebhookSettings
from bleepline.review.crm import (
    ALLOWED_FIELDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CrmError,
    Delivery,
    DeliveryStatus,
    payload,
    sender_for,
    sign,
    verify_signature,
)
from bleepline.store.keys import Identity
from tests.review.conftest import CALLS, write_call

SECRET = b"a shared webhook secret, 32 b+"
FINISHED = sorted(c.call_id for c in CALLS if c.finished)
PLACEHOLDERS = ("[PERSON]", "[CREDIT_CARD]", "[PHONE_NUMBER]", "[US_SSN]", "[DTMF]", "[UNVERIFIED]")
TRANSCRIPT_WORDS = ("Thanks for calling", "card number", "social security", "goodbye")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Hook:
    """A CRM stand-in: answers with the statuses given in turn (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
        # An error page that echoes things: none of it may reach the delivery state or the audit trail.
        return web.Response(status=status, text="CRM ERROR PAGE leaked-body-4111", headers={"Location": "/x"})


def _settings(tmp_path: Path, url: str, **overrides: Any) -> WebhookSettings:
    secret_file = tmp_path / "crm.secret"
    secret_file.write_bytes(SECRET + b"\n")
    values: dict[str, Any] = {
        "url": url,
        "secret_file": secret_file,
        "fields": ALLOWED_FIELDS,
        "base_url": "https://review.example/",
        "max_attempts": 4,
    }
    values.update(overrides)
    return WebhookSettings(**values)


def _run(
    config: ReviewConfig,
    tmp_path: Path,
    hook: Hook,
    *,
    call_id: str | None = None,
    sleeps: list[float] | None = None,
    url_of: Callable[[str], str] = lambda url: url,
    **overrides: Any,
) -> tuple[list[Delivery], ReviewConfig]:
    async def scenario() -> tuple[list[Delivery], ReviewConfig]:
        app = web.Application()
        app.router.add_post("/hook", hook.handle)
        server = TestServer(app)
        await server.start_server()
        try:
            settings = _settings(tmp_path, url_of(str(server.make_url("/hook"))), **overrides)
            configured = dataclasses.replace(config, webhook=settings)

            async def fake_sleep(seconds: float) -> None:
                if sleeps is not None:
                    sleeps.append(seconds)

            sender, catalog = sender_for(configured, sleep=fake_sleep)
            return await sender.send_pending(catalog, call_id=call_id), configured
        finally:
            await server.close()

    return asyncio.run(scenario())


def test_body_has_exactly_the_allowed_fields_and_is_signed(
    review_store: ReviewConfig, tmp_path: Path
) -> None:
    hook = Hook()
    results, _ = _run(review_store, tmp_path, hook)
    assert sorted(d.call_id for d in results) == FINISHED
    assert all(d.status is DeliveryStatus.SENT and d.attempts == 1 for d in results)
    assert len(hook.received) == len(FINISHED)  # the running call c-0005 is not sent
    for got in hook.received:
        body = json.loads(got.body)
        assert set(body) == set(ALLOWED_FIELDS)
        text = got.body.decode()
        for leak in (*PLACEHOLDERS, *TRANSCRIPT_WORDS, "transcript", "segments", "outsourced", "billing"):
            assert leak not in text, leak
        assert verify_signature(
            SECRET, got.headers[TIMESTAMP_HEADER], got.body, got.headers[SIGNATURE_HEADER]
        )
        assert got.headers["Content-Type"] == "application/json"
    first = json.loads(next(r.body for r in hook.received if b'"c-0001"' in r.body))
    assert first == {
        "call_id": "c-0001",
        "started_at": "2026-01-05T09:00:00.000Z",
        "ended_at": "2026-01-05T09:00:12.000Z",
        "duration_s": 12.0,
        "entity_counts": {"CREDIT_CARD": 1, "PERSON": 1},
        "masked_seconds": {"dtmf": 0.0, "pii": 4.0, "unverified": 0.0},
        "review_url": "https://review.example/calls/c-0001",
    }


def test_signature_fails_on_any_change(review_store: ReviewConfig, tmp_path: Path) -> None:
    hook = Hook()
    _run(review_store, tmp_path, hook, call_id="c-0001")
    got = hook.received[0]
    stamp, signature = got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER]
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, stamp, got.body, signature)
    assert not verify_signature(b"another secret of enough bytes", stamp, got.body, signature)
    assert not verify_signature(SECRET, stamp, got.body.replace(b"12.0", b"13.0"), signature)
    assert not verify_signature(SECRET, str(int(stamp) + 1), got.body, signature)
    assert not verify_signature(SECRET, stamp, got.body, signature, now=int(stamp) + 3600)  # replayed late
    assert sign(SECRET, int(stamp), got.body) == signature


def test_configured_subset_only(review_store: ReviewConfig, tmp_path: Path) -> None:
    hook = Hook()
    _run(review_store, tmp_path, hook, fields=("call_id", "duration_s"), call_id="c-0002")
    assert json.loads(hook.received[0].body) == {"call_id": "c-0002", "duration_s": 30.0}


def test_transcript_only_when_explicitly_allowed(review_store: ReviewConfig, tmp_path: Path) -> None:
    hook = Hook()
    _run(review_store, tmp_path, hook, include_transcript=True, fields=("call_id",), call_id="c-0001")
    body = json.loads(hook.received[0].body)
    assert set(body) == {"call_id", "transcript"}
    assert body["transcript"][1] == {"start": 2.6, "end": 4.0, "text": "It's [PERSON]."}
    assert all(set(s) == {"start", "end", "text"} for s in body["transcript"])  # no scores, no policy


def test_payload_refuses_fields_outside_the_allowlist(review_store: ReviewConfig, tmp_path: Path) -> None:
    entry = Catalog(review_store.store).get("c-0001")
    for bad in ("caller_number", "transcript", "tags", "recording"):
        settings = _settings(tmp_path, "https://crm.example/", fields=("call_id", bad))
        with pytest.raises(ReviewConfigError, match="not allowed"):
            payload(entry, None, settings)


def test_failing_server_is_retried_then_failed_and_visible(
    review_store: ReviewConfig, tmp_path: Path
) -> None:
    hook = Hook(statuses=[500])
    sleeps: list[float] = []
    results, configured = _run(review_store, tmp_path, hook, call_id="c-0001", sleeps=sleeps)
    assert len(hook.received) == 4  # max_attempts
    assert sleeps == [1.0, 2.0, 4.0]  # exponential backoff between attempts, none after the last
    assert results == [dataclasses.replace(results[0], status=DeliveryStatus.FAILED, attempts=4)]
    assert results[0].last_error == "HTTP 500"
    sender, _ = sender_for(configured)
    assert sender.deliveries.get("c-0001") == results[0]
    records = AuditLog(review_store.state).records()
    failures = [r for r in records if r.event == "webhook_failed"]
    assert [r.detail["attempt"] for r in failures] == [1, 2, 3, 4]
    assert all(r.detail["status"] == 500 and r.call_id == "c-0001" for r in failures)
    trail = (review_store.state / "audit.log").read_text()
    assert "leaked-body" not in trail
    assert "leaked-body" not in (review_store.state / "crm.db").read_bytes().decode("latin-1")
    assert verify(review_store.state).ok


def test_recovers_after_transient_failures(review_store: ReviewConfig, tmp_path: Path) -> None:
    hook = Hook(statuses=[503, 429, 200])
    results, _ = _run(review_store, tmp_path, hook, call_id="c-0004", sleeps=[])
    assert results[0].status is DeliveryStatus.SENT
    assert results[0].attempts == 3
    assert results[0].last_error is None
    events = [r.event for r in AuditLog(review_store.state).records()]
    assert events == ["webhook_failed", "webhook_failed", "webhook_sent"]


@pytest.mark.parametrize("status", [400, 401, 404, 302])
def test_client_errors_and_redirects_are_not_retried(
    review_store: ReviewConfig, tmp_path: Path, status: int
) -> None:
    hook = Hook(statuses=[status])
    results, _ = _run(review_store, tmp_path, hook, call_id="c-0001")
    assert len(hook.received) == 1
    assert results[0].status is DeliveryStatus.FAILED
    assert results[0].last_error is not None
    assert results[0].last_error.startswith(f"HTTP {status}")


def test_sent_calls_are_not_sent_again_and_failed_ones_are(
    review_store: ReviewConfig, tmp_path: Path
) -> None:
    hook = Hook(statuses=[500])
    _run(review_store, tmp_path, hook, call_id="c-0001", max_attempts=1)
    hook2 = Hook()
    results, _ = _run(review_store, tmp_path, hook2)
    assert sorted(d.call_id for d in results) == FINISHED  # c-0001 failed before: tried again
    by_id = {d.call_id: d for d in results}
    assert by_id["c-0001"].attempts == 2
    hook3 = Hook()
    results, _ = _run(review_store, tmp_path, hook3)
    assert results == []
    assert hook3.received == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_crm_is_a_connection_failure(review_store: ReviewConfig, tmp_path: Path) -> None:
    port = _closed_port()
    results, _ = _run(
        review_store,
        tmp_path,
        Hook(),
        call_id="c-0001",
        sleeps=[],
        max_attempts=2,
        url_of=lambda _url: f"http://127.0.0.1:{port}/hook",
    )
    assert results[0].status is DeliveryStatus.FAILED
    assert (results[0].last_error or "").startswith("connection failed")
    failures = [r for r in AuditLog(review_store.state).records() if r.event == "webhook_failed"]
    assert [r.detail.get("error") for r in failures] == ["connection", "connection"]


def test_unfinished_call_is_refused(review_store: ReviewConfig, tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="not finished"):
        _run(review_store, tmp_path, Hook(), call_id="c-0005")


def test_missing_secret_and_missing_webhook(review_store: ReviewConfig, tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="no \\[webhook\\]"):
        sender_for(review_store)
    settings = dataclasses.replace(_settings(tmp_path, "https://crm.example/"), secret_file=tmp_path / "nope")
    with pytest.raises(CrmError, match="does not exist"):
        sender_for(dataclasses.replace(review_store, webhook=settings))
    (tmp_path / "short").write_bytes(b"short")
    settings = dataclasses.replace(settings, secret_file=tmp_path / "short")
    with pytest.raises(CrmError, match="at least"):
        sender_for(dataclasses.replace(review_store, webhook=settings))


def test_watching_sends_each_call_once_as_it_finishes(
    review_store: ReviewConfig, review_identity: Identity, tmp_path: Path
) -> None:
    hook = Hook()

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook.handle)
        server = TestServer(app)
        await server.start_server()
        try:
            settings = _settings(tmp_path, str(server.make_url("/hook")))
            sender, catalog = sender_for(dataclasses.replace(review_store, webhook=settings))
            watching = asyncio.create_task(watch_and_send(sender, catalog, 0.05))
            await _until(lambda: len(hook.received) == len(FINISHED))
            late = dataclasses.replace(CALLS[0], call_id="c-0100")
            write_call(review_store.store, late, [review_identity])  # a call that finishes meanwhile
            await _until(lambda: len(hook.received) == len(FINISHED) + 1)
            await asyncio.sleep(0.2)  # a few more passes: nothing is sent twice
            watching.cancel()
        finally:
            await server.close()

    asyncio.run(scenario())
    sent = [json.loads(r.body)["call_id"] for r in hook.received]
    assert sorted(sent) == sorted([*FINISHED, "c-0100"])
    assert sent[-1] == "c-0100"


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")
