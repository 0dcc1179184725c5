"""The review web app over HTTP (aiohttp's test server on 127.0.0.1): sign-in, sessions, CSRF, the rate
limit, every role boundary, call scope for outsourced reviewers, hostile ids and requests, audio range
requests checked byte for byte against a full decrypt, and what lands in the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import tempfile
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import ClientPayloadError, ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from bleepline.commands.recordings import decrypt_file
from bleepline.review.app import _security_headers, _set_cookie, make_review_app
from bleepline.review.audio import ByteRange, DecryptedWav, RangeNotSatisfiableError, parse_range, wav_header
from bleepline.review.audit import AuditLog, AuditRecord
from bleepline.review.config import ReviewConfig
from bleepline.review.users import UserStore
from bleepline.review.web_auth import LoginLimiter, SessionTable
from bleepline.store import format as fmt
from bleepline.store.errors import TruncatedRecordingError
from bleepline.store.keys import Identity, load_identity
from bleepline.store.recording import RecordingReader, RecordingWriter
from bleepline.timeline import AudioChunk
from tests.review.conftest import CALL_IDS, password_of

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
UNTAGGED = "c-0001"  # no tags: outside otto's scope
OUTSOURCED = "c-0002"  # tagged outsourced: otto may open it
RUNNING = "c-0005"  # no final chunk, no transcript


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Browser:
    """A test client with the review app's forms filled in the way a browser would."""

    def __init__(self, client: TestClient[Any, Any], clock: FakeClock, config: ReviewConfig) -> None:
        self.client = client
        self.clock = clock
        self.config = config
        self.csrf = ""

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.client.get(path, allow_redirects=False, **kwargs)

    async def text(self, path: str) -> tuple[int, str]:
        response = await self.get(path)
        return response.status, await response.text()

    async def login_token(self) -> str:
        response = await self.get("/login")
        assert response.status == 200
        found = CSRF.search(await response.text())
        assert found is not None
        return found.group(1)

    async def login(self, name: str, password: str | None = None) -> ClientResponse:
        self.client.session.cookie_jar.clear()  # a fresh browser: a signed-in one is sent on from /login
        token = await self.login_token()
        data = {"csrf": token, "name": name, "password": password or password_of(name)}
        response = await self.client.post("/login", data=data, allow_redirects=False)
        if response.status == 303:
            page = await self.get(response.headers["Location"])
            found = CSRF.search(await page.text())
            assert found is not None
            self.csrf = found.group(1)
        return response

    async def post(self, path: str, data: dict[str, str], *, csrf: str | None = None) -> ClientResponse:
        return await self.client.post(
            path, data={"csrf": self.csrf if csrf is None else csrf, **data}, allow_redirects=False
        )

    def audit(self) -> list[AuditRecord]:
        return AuditLog(self.config.state).records()


Scenario = Callable[[Browser], Awaitable[None]]


def run(config: ReviewConfig, scenario: Scenario, identity: Identity | None = None) -> None:
    async def main() -> None:
        clock = FakeClock()
        app = make_review_app(config, identity=identity, clock=clock)
        async with TestClient(TestServer(app)) as client:
            await scenario(Browser(client, clock, config))

    asyncio.run(main())


def expected_wav(config: ReviewConfig, call_id: str) -> bytes:
    """The WAV of a full decrypt (the verified prefix of a cut-short one), written by Python's wave."""
    assert config.identity is not None
    with RecordingReader(config.store / f"{call_id}.bleep") as reader:
        reader.unlock(load_identity(config.identity))
        rate = reader.header.sample_rate
        parts: list[bytes] = []
        with contextlib.suppress(TruncatedRecordingError):  # a call cut short: its verified part
            parts.extend(chunk.samples.astype("<i2").tobytes() for chunk in reader.chunks())
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(parts))
    return buffer.getvalue()


# -- signing in ------------------------------------------------------------------------------------------


def test_the_login_page_carries_a_token_a_pre_login_cookie_and_security_headers(
    review_store: ReviewConfig,
) -> None:
    async def scenario(b: Browser) -> None:
        response = await b.get("/login")
        assert response.status == 200
        assert CSRF.search(await response.text())
        cookie = response.headers["Set-Cookie"]
        assert "bleepline_login=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/login" in cookie
        assert "Secure" not in cookie  # plain HTTP here; over TLS it is set (test_cookies_are_secure_...)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script>" not in await response.text()  # no inline script anywhere

    run(review_store, scenario)


def test_signing_in_sets_a_fresh_http_only_strict_session_cookie(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        first = await b.login("alice")
        assert first.status == 303
        assert first.headers["Location"] == "/calls"
        cookie = first.headers.getall("Set-Cookie")
        session = next(c for c in cookie if c.startswith("bleepline_session="))
        assert "HttpOnly" in session
        assert "SameSite=Strict" in session
        assert "Path=/" in session
        first_id = session.split(";")[0].split("=", 1)[1]
        assert len(first_id) == 43
        status, page = await b.text("/calls")
        assert status == 200
        assert "alice" in page
        again = await b.login("alice")
        second_id = next(c for c in again.headers.getall("Set-Cookie") if c.startswith("bleepline_session="))
        assert second_id.split(";")[0].split("=", 1)[1] != first_id  # a new id at every sign-in

    run(review_store, scenario)


def test_logins_ok_and_failed_are_audited_without_unknown_names(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        wrong = await b.login("alice", "not her password")
        assert wrong.status == 401
        assert "wrong user name or password" in await wrong.text()
        unknown = await b.login("mallory", "whatever-password")
        assert unknown.status == 401
        ok = await b.login("alice")
        assert ok.status == 303
        records = b.audit()
        assert [(r.event, r.user, r.role) for r in records] == [
            ("login_failed", "alice", "reviewer"),
            ("login_failed", None, None),  # a name that is no account is not written down
            ("login_ok", "alice", "reviewer"),
        ]
        assert all(r.source == "127.0.0.1" for r in records)
        assert "mallory" not in (b.config.state / "audit.log").read_text()

    run(review_store, scenario)


def test_logout_ends_the_session(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        old_csrf = b.csrf
        response = await b.post("/logout", {})
        assert response.status == 303
        assert response.headers["Location"] == "/login"
        assert (await b.get("/calls")).status == 303
        assert (await b.get(f"/calls/{UNTAGGED}/audio.wav")).status == 401
        assert (await b.post("/logout", {}, csrf=old_csrf)).status == 401
        assert [r.event for r in b.audit()][-1] == "logout"

    run(review_store, scenario)


def test_csrf_token_missing_or_wrong_is_refused(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        token = await b.login_token()
        for data in (
            {"name": "alice", "password": password_of("alice")},
            {"name": "alice", "password": password_of("alice"), "csrf": token[:-2] + "00"},
            {"name": "alice", "password": password_of("alice"), "csrf": ""},
        ):
            response = await b.client.post("/login", data=data, allow_redirects=False)
            assert response.status == 403
        # A token from another browser's pre-login cookie does not fit this one's.
        b.client.session.cookie_jar.clear()
        response = await b.client.post(
            "/login", data={"name": "alice", "password": password_of("alice"), "csrf": token}
        )
        assert response.status == 403
        assert (await b.get("/calls")).status == 303  # not signed in by any of those

        await b.login("adam")
        assert (await b.post("/logout", {}, csrf="")).status == 403
        assert (await b.post("/logout", {}, csrf="x" * 43)).status == 403
        add = {"name": "eve", "password": "long enough password", "role": "admin"}
        assert (await b.post("/admin/users/add", add, csrf="nope")).status == 403
        assert UserStore(b.config.state / "users.db").get("eve") is None
        assert (await b.get("/admin/users")).status == 200  # still signed in

    run(review_store, scenario)


def test_an_idle_session_times_out_and_activity_keeps_it_alive(review_store: ReviewConfig) -> None:
    timeout = review_store.session_timeout_s

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        for _ in range(3):
            b.clock.now += timeout - 10
            assert (await b.get("/calls")).status == 200
        b.clock.now += timeout + 1
        response = await b.get("/calls")
        assert response.status == 303
        assert response.headers["Location"] == "/login"
        assert (await b.get(f"/calls/{UNTAGGED}/audio.wav")).status == 401

    run(review_store, scenario)


def test_login_rate_limit_per_address_answers_429_even_to_the_right_password(
    review_store: ReviewConfig,
) -> None:
    async def scenario(b: Browser) -> None:
        for i in range(review_store.login_attempts):
            assert (await b.login(f"guess{i}", "wrong password")).status == 401
        refused = await b.login("sam")
        assert refused.status == 429
        body = await refused.text()
        assert body.count("\n") == 1
        assert "too many failed sign-ins" in body
        assert b.audit()[-1].detail == {"reason": "rate_limited"}
        b.clock.now += review_store.login_window_s + 1
        assert (await b.login("sam")).status == 303

    run(review_store, scenario)


def test_login_rate_limit_per_user_name_holds_across_addresses() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(3, 60, clock)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert not limiter.blocked(address, "alice")
        limiter.failed(address, "alice")
    assert limiter.blocked("10.0.0.9", "alice")  # a fresh address, the same name
    assert limiter.blocked("10.0.0.9", "ALICE")
    assert not limiter.blocked("10.0.0.9", "sam")
    clock.now += 61
    assert not limiter.blocked("10.0.0.9", "alice")


def test_session_table_expires_idle_sessions_and_bounds_its_size() -> None:
    clock = FakeClock()
    table = SessionTable(60, clock, limit=3)
    sessions = [table.create(f"u{i}") for i in range(4)]
    assert len(table) == 3
    assert table.get(sessions[0].id) is None  # the longest idle made room
    assert table.get(sessions[3].id) is sessions[3]
    assert table.get("not a token") is None
    clock.now += 61
    assert table.get(sessions[3].id) is None


# -- role boundaries -------------------------------------------------------------------------------------

PATHS = (
    "/calls",
    f"/calls/{UNTAGGED}",
    f"/calls/{UNTAGGED}/audio.wav",
    "/audit",
    "/admin/users",
    "/analytics",
)
#: The status each user gets for each of PATHS.
EXPECTED = {
    "alice": (200, 200, 200, 403, 403, 403),
    "sam": (200, 200, 200, 403, 403, 200),
    "audrey": (403, 403, 403, 200, 403, 403),
    "adam": (200, 403, 403, 403, 200, 403),
    "otto": (200, 404, 404, 403, 403, 403),  # the untagged call is outside otto's scope: 404
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_role_boundary(review_store: ReviewConfig, name: str) -> None:
    async def scenario(b: Browser) -> None:
        await b.login(name)
        got = []
        for path in PATHS:
            response = await b.get(path)
            got.append(response.status)
            await response.read()
        assert tuple(got) == EXPECTED[name], dict(zip(PATHS, got, strict=True))

    run(review_store, scenario)


def test_signed_out_pages_redirect_to_login_and_audio_answers_401(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        for path in PATHS:
            response = await b.get(path)
            if path.endswith(".wav"):
                assert response.status == 401
                assert await response.text() == "sign in first\n"
            else:
                assert response.status == 303, path
                assert response.headers["Location"] == "/login"
        assert (await b.get("/")).headers["Location"] == "/login"

    run(review_store, scenario)


def test_outsourced_reviewer_sees_and_opens_only_tagged_calls(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("otto")
        status, page = await b.text("/calls")
        assert status == 200
        listed = set(re.findall(r'href="/calls/(c-\d+)"', page))
        assert listed == {"c-0002", "c-0003"}
        assert (await b.get(f"/calls/{OUTSOURCED}")).status == 200
        assert (await b.get(f"/calls/{OUTSOURCED}/audio.wav")).status == 200
        # Another call's page and its audio URL, typed in directly: the same 404 as no such call.
        for path in (f"/calls/{UNTAGGED}", "/calls/c-0004", f"/calls/{UNTAGGED}/audio.wav", "/calls/c-9999"):
            response = await b.get(path)
            assert response.status == 404, path
            assert "no such call" in await response.text()
        assert (await b.client.head(f"/calls/{UNTAGGED}/audio.wav")).status == 404
        assert all(r.call_id != UNTAGGED for r in b.audit())

    run(review_store, scenario)


def test_admin_sees_the_list_without_links_into_content(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("adam")
        status, page = await b.text("/calls")
        assert status == 200
        assert UNTAGGED in page
        assert 'href="/calls/c-' not in page

    run(review_store, scenario)


HOSTILE_IDS = (
    "..%2F..%2Fetc%2Fpasswd",
    "..%2Fc-0001",
    "c-0001%00",
    "%00",
    "..%5C..%5Cwindows",
    "c-0001%2F..%2F..%2Fstate%2Fusers.db",
    ".hidden",
    "a" * 1000,
    "c-0001.bleep",
    "%2Fetc%2Fpasswd",
    "c%20-0001",
)


@pytest.mark.parametrize("suffix", ["", "/audio.wav"])
def test_unsafe_call_ids_are_404(review_store: ReviewConfig, suffix: str) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        for call_id in HOSTILE_IDS:
            response = await b.client.get(f"/calls/{call_id}{suffix}", allow_redirects=False)
            assert response.status == 404, call_id
            assert "passwd" not in await response.text()

    run(review_store, scenario)


def test_raw_traversal_paths_never_reach_a_file(review_store: ReviewConfig) -> None:
    """Sent byte for byte, bypassing the client's own path normalisation."""

    async def raw(b: Browser, target: str) -> int:
        cookies = b.client.session.cookie_jar.filter_cookies(b.client.make_url("/"))
        session = cookies["bleepline_session"].value
        reader, writer = await asyncio.open_connection(b.client.host, b.client.port)
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nCookie: bleepline_session={session}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        status_line = await reader.readline()
        await reader.read()
        writer.close()
        return int(status_line.split()[1])

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        for target in (
            "/calls/../../etc/passwd",
            "/calls/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
            "/calls/%2e%2e/audio.wav",
            "/calls/..%2f..%2fstate%2faudit.key/audio.wav",
            "/calls/c-0001%00/audio.wav",
            "/static/..%2fapp.py",
        ):
            assert await raw(b, target) == 404, target

    run(review_store, scenario)


# -- the call page ---------------------------------------------------------------------------------------


def test_call_page_shows_transcript_timeline_and_legend_and_is_audited(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        status, page = await b.text(f"/calls/{UNTAGGED}")
        assert status == 200
        assert f'src="/calls/{UNTAGGED}/audio.wav"' in page
        assert 'preload="none"' in page  # the audio is fetched (and audited) only when played
        assert 'id="play"' in page
        assert page.count('class="line"') == 5
        assert 'data-start="6.000"' in page
        assert '<mark class="placeholder">[CREDIT_CARD]</mark>' in page
        assert page.count('class="redaction"') == 2
        assert 'data-entity="PERSON"' in page
        assert 'class="legend"' in page
        assert "Not redacted" not in page
        assert "style=" not in page  # the CSP allows no inline styles either
        assert [(r.event, r.call_id) for r in b.audit()][-1] == ("view", UNTAGGED)

    run(review_store, scenario)


def test_transcript_text_is_escaped(review_store: ReviewConfig) -> None:
    path = review_store.store / f"{UNTAGGED}.transcript.json"
    path.write_text(path.read_text().replace("Lovely, that's all done.", "<script>alert(1)</script>"))

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        _, page = await b.text(f"/calls/{UNTAGGED}")
        assert "<script>alert(1)" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    run(review_store, scenario)


def seal_unredacted(config: ReviewConfig, call_id: str) -> None:
    assert config.identity is not None
    identity = load_identity(config.identity)
    samples = (np.sin(np.arange(8000 * 2) / 8000 * 2 * np.pi * 440) * 6000).astype(np.int16)
    with RecordingWriter(
        config.store / f"{call_id}.bleep",
        [identity.recipient],
        sample_rate=8000,
        call_id=call_id,
        redacted=False,
    ) as writer:
        writer.write(AudioChunk(samples, 8000, 0))


def test_a_recording_sealed_without_redaction_says_so_plainly(review_store: ReviewConfig) -> None:
    seal_unredacted(review_store, "sealed-1")

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        _, listing = await b.text("/calls")
        assert "not redacted" in listing
        status, page = await b.text("/calls/sealed-1")
        assert status == 200
        assert 'id="not-redacted"' in page
        assert "Not redacted." in page
        assert (await b.get("/calls/sealed-1/audio.wav")).status == 200

    run(review_store, scenario)


def test_call_list_filters(review_store: ReviewConfig) -> None:
    async def listed(b: Browser, query: str) -> set[str]:
        status, page = await b.text(f"/calls?{query}")
        assert status == 200, page
        return set(re.findall(r'href="/calls/(c-\d+)"', page))

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        assert await listed(b, "") == set(CALL_IDS)
        assert await listed(b, "from=2026-03-01&to=2026-06-30") == {"c-0002", "c-0003"}
        assert await listed(b, "min_duration=12&max_duration=25") == {"c-0001", "c-0004"}
        assert await listed(b, "entity=CREDIT_CARD") == {"c-0001"}
        assert await listed(b, "min_masked=4.5") == {"c-0002", "c-0004"}
        assert await listed(b, "entity=PIN&min_duration=20") == {"c-0002"}
        for bad in ("from=yesterday", "min_duration=-1", "min_masked=nan", "entity=<b>", "to=2026-02-30"):
            status, page = await b.text(f"/calls?{bad}")
            assert status == 400, bad
            assert 'role="alert"' in page
            assert "<b>" not in page

    run(review_store, scenario)


# -- audio -----------------------------------------------------------------------------------------------


def test_full_audio_is_the_decrypted_wav(review_store: ReviewConfig, tmp_path: Path) -> None:
    expected = expected_wav(review_store, UNTAGGED)
    assert review_store.identity is not None
    decrypted = decrypt_file(
        review_store.store / f"{UNTAGGED}.bleep", review_store.identity, tmp_path / "d.wav"
    )
    with wave.open(str(decrypted.out), "rb") as reference:
        reference_frames = reference.readframes(reference.getnframes())
        rate = reference.getframerate()

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        response = await b.get(f"/calls/{UNTAGGED}/audio.wav")
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/wav"
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.read()
        assert int(response.headers["Content-Length"]) == len(body)
        assert body == expected
        assert body[44:] == reference_frames  # the same samples `bleepline decrypt` writes
        assert body[:44] == wav_header(rate, len(reference_frames) // 2)

    run(review_store, scenario)


def test_range_requests_return_the_exact_bytes(review_store: ReviewConfig) -> None:
    expected = expected_wav(review_store, UNTAGGED)
    size = len(expected)
    chunk_bytes = 8000 * 2  # one sealed chunk of the test store's recordings

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        url = f"/calls/{UNTAGGED}/audio.wav"
        cases = {
            "bytes=0-0": (0, 0),
            "bytes=0-43": (0, 43),
            "bytes=40-50": (40, 50),
            f"bytes={44 + chunk_bytes - 3}-{44 + chunk_bytes + 2}": (
                44 + chunk_bytes - 3,
                44 + chunk_bytes + 2,
            ),
            f"bytes={44 + 5 * chunk_bytes}-": (44 + 5 * chunk_bytes, size - 1),
            "bytes=-100": (size - 100, size - 1),
            f"bytes=-{size + 50}": (0, size - 1),
            f"bytes=1000-{size + 1000}": (1000, size - 1),
            f"bytes={size - 1}-": (size - 1, size - 1),
            " BYTES = 100 - 199 ": (100, 199),
        }
        for header, (start, end) in cases.items():
            response = await b.get(url, headers={"Range": header})
            assert response.status == 206, header
            assert response.headers["Content-Range"] == f"bytes {start}-{end}/{size}", header
            body = await response.read()
            assert body == expected[start : end + 1], header
            assert int(response.headers["Content-Length"]) == end - start + 1

    run(review_store, scenario)


def test_bad_ranges_get_416_and_other_units_or_several_ranges_the_whole_file(
    review_store: ReviewConfig,
) -> None:
    expected = expected_wav(review_store, UNTAGGED)
    size = len(expected)

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        url = f"/calls/{UNTAGGED}/audio.wav"
        for header in (
            f"bytes={size}-",
            f"bytes={size + 10}-{size + 20}",
            "bytes=500-100",
            "bytes=abc-def",
            "bytes=-0",
            "bytes=-",
            "bytes=",
            "bytes=1-2-3",
            "bytes=\u0661-\u0662",  # Arabic-Indic digits: isdigit() says yes, we say no
            "bytes=99999999999999999999999-",
        ):
            response = await b.get(url, headers={"Range": header})
            assert response.status == 416, header
            assert response.headers["Content-Range"] == f"bytes */{size}"
        for header in ("items=0-10", "bytes=0-10,20-30", "nonsense"):
            response = await b.get(url, headers={"Range": header})
            assert response.status == 200, header
            assert await response.read() == expected
        response = await b.get(url, headers={"Range": "bytes=0-10", "If-Range": '"old"'})
        assert response.status == 200

    run(review_store, scenario)


def test_head_says_the_size_without_decrypting_or_auditing_a_play(review_store: ReviewConfig) -> None:
    expected = expected_wav(review_store, UNTAGGED)

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        response = await b.client.head(f"/calls/{UNTAGGED}/audio.wav")
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(expected)
        assert response.headers["Accept-Ranges"] == "bytes"
        assert await response.read() == b""
        ranged = await b.client.head(f"/calls/{UNTAGGED}/audio.wav", headers={"Range": "bytes=10-19"})
        assert ranged.status == 206
        assert ranged.headers["Content-Range"] == f"bytes 10-19/{len(expected)}"
        assert "play" not in [r.event for r in b.audit()]

    run(review_store, scenario)


def test_a_call_cut_short_plays_its_verified_part(review_store: ReviewConfig) -> None:
    expected = expected_wav(review_store, RUNNING)

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        status, page = await b.text(f"/calls/{RUNNING}")
        assert status == 200
        assert "No transcript" in page
        response = await b.get(f"/calls/{RUNNING}/audio.wav")
        assert response.status == 200
        assert await response.read() == expected

    run(review_store, scenario)


def flip_byte_in_chunk(path: Path, chunk: int) -> None:
    with RecordingReader(path) as reader:
        frame = reader.frames()[chunk]
    data = bytearray(path.read_bytes())
    data[frame.offset + fmt.FRAME.size + 100] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_modified_chunk_stops_the_stream_before_any_unverified_byte(
    review_store: ReviewConfig, caplog: pytest.LogCaptureFixture
) -> None:
    expected = expected_wav(review_store, UNTAGGED)
    flip_byte_in_chunk(review_store.store / f"{UNTAGGED}.bleep", 3)
    good_end = 44 + 3 * 8000 * 2  # chunks 0-2 verify; chunk 3 does not

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        response = await b.get(f"/calls/{UNTAGGED}/audio.wav")
        assert response.status == 200  # the damage is found mid-stream...
        received = b""
        with pytest.raises(ClientPayloadError):
            async for piece in response.content.iter_any():
                received += piece
        assert received == expected[: len(received)]  # ...and nothing after it was sent
        assert len(received) <= good_end
        # A range inside the good part still plays; one that reaches the damage is cut off there, and
        # one that starts in it is refused before any header goes out.
        ok = await b.get(f"/calls/{UNTAGGED}/audio.wav", headers={"Range": "bytes=100-2000"})
        assert await ok.read() == expected[100:2001]
        across = await b.get(f"/calls/{UNTAGGED}/audio.wav", headers={"Range": f"bytes={good_end - 10}-"})
        assert across.status == 206
        with pytest.raises(ClientPayloadError):
            await across.read()
        inside = await b.get(f"/calls/{UNTAGGED}/audio.wav", headers={"Range": f"bytes={good_end}-"})
        assert inside.status == 503
        assert b"RIFF" not in await inside.read()

    with caplog.at_level("WARNING", logger="bleepline.review.app"):
        run(review_store, scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "bleepline.review.app"]
    assert lines
    assert all("failed verification" in line and "\n" not in line for line in lines)


def test_a_recording_damaged_at_its_start_is_503(review_store: ReviewConfig) -> None:
    flip_byte_in_chunk(review_store.store / f"{UNTAGGED}.bleep", 0)

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        response = await b.get(f"/calls/{UNTAGGED}/audio.wav")
        assert response.status == 503
        assert await response.text() == "the recording failed verification and cannot be played\n"
        header_only = await b.get(f"/calls/{UNTAGGED}/audio.wav", headers={"Range": "bytes=0-43"})
        assert header_only.status == 206  # the WAV header holds no audio: nothing unverified in it

    run(review_store, scenario)


def test_a_modified_header_is_refused_before_any_audio(review_store: ReviewConfig) -> None:
    path = review_store.store / f"{UNTAGGED}.bleep"
    data = bytearray(path.read_bytes())
    data[data.index(b'"sample_rate":8000')] = ord(" ")  # still JSON, no longer what was MACed
    path.write_bytes(bytes(data.replace(b' "sample_rate":8000', b'"sample_rate": 8000', 1)))

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        response = await b.get(f"/calls/{UNTAGGED}/audio.wav")
        assert response.status in (404, 503)
        assert b"RIFF" not in await response.read()

    run(review_store, scenario)


def test_without_an_identity_pages_work_and_audio_is_503(review_store: ReviewConfig) -> None:
    config = ReviewConfig(store=review_store.store, state=review_store.state, identity=None)

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        status, page = await b.text(f"/calls/{UNTAGGED}")
        assert status == 200
        assert "no identity" in page
        response = await b.get(f"/calls/{UNTAGGED}/audio.wav")
        assert response.status == 503

    run(config, scenario)


def test_an_identity_the_recordings_are_not_for_is_503(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        response = await b.get(f"/calls/{UNTAGGED}/audio.wav")
        assert response.status == 503
        assert "cannot open" in await response.text()

    run(review_store, scenario, identity=Identity.generate())


def test_play_and_decrypt_are_audited_once_per_page_view_not_per_range(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        url = f"/calls/{UNTAGGED}/audio.wav"
        await b.get(f"/calls/{UNTAGGED}")
        for header in ("bytes=0-", "bytes=50000-", "bytes=1000-2000"):
            await (await b.get(url, headers={"Range": header})).read()
        events = [(r.event, r.call_id, r.user) for r in b.audit() if r.event != "login_ok"]
        assert events == [
            ("view", UNTAGGED, "alice"),
            ("play", UNTAGGED, "alice"),
            ("decrypt", UNTAGGED, "alice"),
        ]
        await b.get(f"/calls/{UNTAGGED}")  # opened again: a new playback
        await (await b.get(url)).read()
        assert [r.event for r in b.audit()][-3:] == ["view", "play", "decrypt"]

    run(review_store, scenario)


def test_when_the_audit_trail_cannot_be_written_nothing_is_played(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        (b.config.state / "audit.head").write_text("damaged\n")
        response = await b.get(f"/calls/{UNTAGGED}/audio.wav")
        assert response.status == 503
        assert b"RIFF" not in await response.read()
        assert (await b.get(f"/calls/{UNTAGGED}")).status == 503

    run(review_store, scenario)


# -- hostile requests ------------------------------------------------------------------------------------


def test_hostile_requests_get_clear_4xx_answers(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        # Cookies that are no session: simply signed out.
        for cookie in ("x", "a" * 43, "%00" * 20, "é" * 43, "a" * 5000):
            response = await b.client.get(
                "/calls", headers={"Cookie": f"bleepline_session={cookie}"}, allow_redirects=False
            )
            assert response.status == 303
        assert (
            await b.client.get("/calls", headers={"Cookie": '=;;"x'}, allow_redirects=False)
        ).status == 303
        huge = await b.client.get("/login", headers={"X-Big": "a" * 20000})
        assert 400 <= huge.status < 500
        token = await b.login_token()
        not_a_form = await b.client.post("/login", json={"name": "alice", "csrf": token})
        assert not_a_form.status == 400
        twice = await b.client.post("/login", data=[("csrf", token), ("csrf", token), ("name", "a")])
        assert twice.status == 400
        too_big = await b.client.post("/login", data={"csrf": token, "name": "a" * 40000, "password": "x"})
        assert too_big.status == 413
        empty = await b.client.post("/login", data={"csrf": token}, allow_redirects=False)
        assert empty.status == 400
        long_name = await b.client.post("/login", data={"csrf": token, "name": "a" * 1000, "password": "x"})
        assert long_name.status == 400
        assert (await b.get("/logout")).status == 405
        assert (await b.get("/static/../app.py")).status == 404
        assert (await b.get("/static/nothing.js")).status == 404
        assert (await b.get("/nowhere")).status == 404
        await b.login("adam")
        assert (await b.post("/admin/users/launch", {"name": "x"})).status == 404

    run(review_store, scenario)


def test_static_assets_are_served_with_the_security_headers(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        for name, kind in (("review.js", "text/javascript"), ("review.css", "text/css")):
            response = await b.get(f"/static/{name}")
            assert response.status == 200
            assert response.headers["Content-Type"].startswith(kind)
            assert response.headers["X-Frame-Options"] == "DENY"
            assert len(await response.read()) > 100

    run(review_store, scenario)


# -- audit trail, users, analytics -----------------------------------------------------------------------


def test_auditor_sees_the_trail_newest_first_with_the_verify_result(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        await b.get(f"/calls/{UNTAGGED}")
        await b.login("audrey")
        status, page = await b.text("/audit")
        assert status == 200
        assert 'class="verify ok"' in page
        assert page.index('id="verify"') < page.index("<table")
        seqs = [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", page)]
        assert seqs == sorted(seqs, reverse=True)
        assert b.audit()[-1].event == "audit_view"
        # Damage the trail: the page says so at the top.
        log = b.config.state / "audit.log"
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(lines[0] + lines[2] + lines[1] + b"".join(lines[3:]))
        status, page = await b.text("/audit")
        assert 'class="verify bad"' in page
        assert "FAILED" in page

    run(review_store, scenario)


def test_admin_adds_changes_and_removes_users_and_each_change_is_audited(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("adam")
        users = UserStore(b.config.state / "users.db")
        add = {"name": "nina", "password": "a long password", "role": "reviewer", "tags": "outsourced, emea"}
        response = await b.post("/admin/users/add", add)
        assert response.status == 303
        nina = users.get("nina")
        assert nina is not None
        assert nina.tags == {"outsourced", "emea"}
        assert (await b.post("/admin/users/role", {"name": "nina", "role": "supervisor"})).status == 303
        assert (await b.post("/admin/users/tags", {"name": "nina", "tags": ""})).status == 303
        nina = users.get("nina")
        assert nina is not None
        assert (nina.role, nina.tags) == ("supervisor", frozenset())
        bad = await b.post("/admin/users/add", {**add, "name": "Bad Name!"})
        assert bad.status == 400
        assert "bad user name" in await bad.text()
        own = await b.post("/admin/users/remove", {"name": "adam"})
        assert own.status == 400
        assert (await b.post("/admin/users/remove", {"name": "nina"})).status == 303
        assert users.get("nina") is None
        changes = [dict(r.detail) for r in b.audit() if r.event == "user_change"]
        assert [c["change"] for c in changes] == ["add", "role", "tags", "remove"]
        assert all(r.user == "adam" for r in b.audit() if r.event == "user_change")
        assert "a long password" not in (b.config.state / "audit.log").read_text()

    run(review_store, scenario)


def test_a_role_change_or_removal_takes_effect_at_once(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        assert (await b.get(f"/calls/{UNTAGGED}")).status == 200
        UserStore(b.config.state / "users.db").set_role("alice", "auditor")
        assert (await b.get(f"/calls/{UNTAGGED}")).status == 403
        UserStore(b.config.state / "users.db").remove("alice")
        assert (await b.get("/audit")).status == 303

    run(review_store, scenario)


def test_analytics_shows_aggregates_only(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("sam")
        status, page = await b.text("/analytics")
        assert status == 200
        for label in ("Calls per day", "Redactions by entity type", "Masked seconds by reason"):
            assert label in page
        assert "CREDIT_CARD" in page
        assert "2026-11-20" in page
        assert 'id="lag-not-recorded"' in page
        assert "not recorded" in page
        assert "<svg" in page
        for call_id in CALL_IDS:
            assert call_id not in page
        assert "/calls/" not in page
        assert "Thanks for calling" not in page

    run(review_store, scenario)


def test_analytics_lag_percentiles_when_transcripts_record_lag(review_store: ReviewConfig) -> None:
    lags: tuple[object, ...] = (1.0, 2.0, {"p50": 3.0, "p95": 5.0, "max": 7.5}, 4)
    for call_id, lag in zip(("c-0001", "c-0002", "c-0003", "c-0004"), lags, strict=True):
        path = review_store.store / f"{call_id}.transcript.json"
        doc = json.loads(path.read_text())
        doc["stats"]["recognizer_lag_seconds"] = lag
        path.write_text(json.dumps(doc))

    async def scenario(b: Browser) -> None:
        await b.login("sam")
        _, page = await b.text("/analytics")
        assert "Recognizer lag, seconds behind the audio (4 calls)" in page
        assert ">2.5 s<" in page  # the median of the calls' medians 1, 2, 3, 4
        assert ">4.8 s<" in page  # p95 of 1, 2, 5, 4 (4.85 shown to one place)
        assert ">7.5 s<" in page  # the worst moment of any call
        assert "not recorded" not in page

    run(review_store, scenario)


# -- pieces ----------------------------------------------------------------------------------------------


def test_parse_range_cases() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-", 100) == ByteRange(0, 99)
    assert parse_range("bytes=10-20", 100) == ByteRange(10, 20)
    assert parse_range("bytes=-10", 100) == ByteRange(90, 99)
    assert parse_range("bytes=90-200", 100) == ByteRange(90, 99)
    assert parse_range("pages=1-2", 100) is None
    for bad in ("bytes=100-", "bytes=20-10", "bytes=x-", "bytes=-0", "bytes=+1-2", "bytes=0x1-2"):
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(bad, 100)


def test_wav_header_matches_pythons_wave_module() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x01\x02" * 1234)
    assert buffer.getvalue()[:44] == wav_header(16000, 1234)


def test_cookies_are_secure_over_tls() -> None:
    # Over TLS aiohttp's request.secure is true: the same code path then sets Secure, and HSTS.
    secure = make_mocked_request("GET", "/login").clone(scheme="https")
    response = web.Response()
    _set_cookie(secure, response, "bleepline_session", "x" * 43, "/")
    morsel = response.cookies["bleepline_session"]
    assert morsel["secure"] is True
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    asyncio.run(_security_headers(secure, response))
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_server_header_names_no_versions(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        response = await b.get("/login")
        assert response.headers["Server"] == "bleepline-review"

    run(review_store, scenario)


def test_review_command_errors_are_one_line(
    review_config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bleepline.cli import main

    cases = (
        ["--tls-cert", str(tmp_path / "cert.pem")],
        ["--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")],
        ["--port", "70000"],
    )
    for extra in cases:
        assert main(["review", "--config", str(review_config_file), *extra]) == 1
        errors = capsys.readouterr().err.strip().splitlines()
        assert len(errors) == 1, errors
        assert errors[0].startswith("bleepline: error: ")
    assert main(["review", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_failed_sign_in_answers_the_same_for_real_and_unknown_names(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        real = await b.login("alice", "wrong password")
        unknown = await b.login("nobody", "wrong password")
        assert real.status == unknown.status == 401
        real_page = CSRF.sub("", await real.text()).replace("alice", "NAME")
        unknown_page = CSRF.sub("", await unknown.text()).replace("nobody", "NAME")
        assert real_page == unknown_page

    run(review_store, scenario)


def test_an_empty_recording_is_a_header_only_wav(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = tmp_path / "empty.bleep"
    RecordingWriter(path, [identity.recipient], sample_rate=8000).close()
    wav = DecryptedWav(path, identity)
    try:
        assert wav.size == 44
        assert b"".join(wav.read()) == wav_header(8000, 0)
        assert b"".join(wav.read(ByteRange(4, 7))) == wav_header(8000, 0)[4:8]
    finally:
        wav.close()
    assert list(wav.read()) == [wav_header(8000, 0)]  # the header needs no file; audio would stop here


def test_playing_seeking_and_exporting_write_no_decrypted_audio_anywhere(
    review_store: ReviewConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Temporary files would land here: the app must not make any.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    samples = expected_wav(review_store, UNTAGGED)[44:]
    probe = samples[len(samples) // 2 : len(samples) // 2 + 64]  # 32 samples of tone from mid-call
    assert any(probe)
    assert probe not in (review_store.store / f"{UNTAGGED}.bleep").read_bytes()  # sealed, it is not there

    async def scenario(b: Browser) -> None:
        await b.login("sam")  # a supervisor: plays and exports
        seek = await b.get(f"/calls/{UNTAGGED}/audio.wav", headers={"Range": "bytes=1000-20000"})
        assert seek.status == 206
        await seek.read()
        for path in (f"/calls/{UNTAGGED}/audio.wav", f"/calls/{UNTAGGED}/export/audio.wav"):
            response = await b.get(path)
            assert response.status == 200
            assert probe in await response.read()  # the probe is audio the app really decrypted

    run(review_store, scenario)
    written = [p for root in (scratch, review_store.store, review_store.state) for p in root.rglob("*")]
    assert not [p for p in written if p.is_file() and probe in p.read_bytes()]
