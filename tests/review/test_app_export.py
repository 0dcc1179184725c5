"""Exports over HTTP: who may download what, that the bodies are the stored transcript bytes and the
decrypted audio exactly, and what the audit trail records (and does not)."""

from __future__ import annotations

import pytest

from bleepline.review.audit import AuditLog, AuditRecord
from bleepline.review.config import ReviewConfig
from bleepline.review.users import Role, UserStore
from tests.review.conftest import password_of
from tests.review.test_app import HOSTILE_IDS, OUTSOURCED, RUNNING, UNTAGGED, Browser, expected_wav, run

KINDS = ("transcript.json", "transcript.vtt", "audio.wav")
#: The status each user gets for each export of the untagged call: only supervisors export, and the
#: role is checked before the call's scope (otto learns nothing about an id he may not open).
EXPECTED = {
    "alice": (403, 403, 403),
    "sam": (200, 200, 200),
    "audrey": (403, 403, 403),
    "adam": (403, 403, 403),
    "otto": (403, 403, 403),
}


def _url(call_id: str, kind: str) -> str:
    return f"/calls/{call_id}/export/{kind}"


def _exports(
    records: list[AuditRecord],
) -> list[tuple[str, str | None, str | None, str | None, dict[str, object]]]:
    return [
        (r.event, r.user, r.role, r.call_id, dict(r.detail))
        for r in records
        if r.event in ("export", "decrypt", "view", "play")
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_export_role_boundary(review_store: ReviewConfig, name: str) -> None:
    async def scenario(b: Browser) -> None:
        await b.login(name)
        got = []
        for kind in KINDS:
            response = await b.get(_url(UNTAGGED, kind))
            got.append(response.status)
            body = await response.read()
            if response.status != 200:
                assert b"RIFF" not in body
                assert b"Thanks for calling" not in body
        assert tuple(got) == EXPECTED[name]
        if EXPECTED[name][0] != 200:
            assert not [r for r in b.audit() if r.event in ("export", "decrypt")]

    run(review_store, scenario)


def test_signed_out_exports_redirect_or_answer_401(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        for kind in ("transcript.json", "transcript.vtt"):
            response = await b.get(_url(UNTAGGED, kind))
            assert response.status == 303
            assert response.headers["Location"] == "/login"
        audio = await b.get(_url(UNTAGGED, "audio.wav"))
        assert audio.status == 401
        assert await audio.text() == "sign in first\n"
        assert b.audit() == []

    run(review_store, scenario)


def test_a_supervisor_limited_to_tags_exports_only_calls_in_scope(review_store: ReviewConfig) -> None:
    UserStore(review_store.state / "users.db").add("sue", password_of("sue"), Role.SUPERVISOR, {"outsourced"})

    async def scenario(b: Browser) -> None:
        await b.login("sue")
        for kind in KINDS:
            outside = await b.get(_url(UNTAGGED, kind))
            assert outside.status == 404, kind
            assert "no such call" in await outside.text()
            assert (await b.get(_url("c-9999", kind))).status == 404
            inside = await b.get(_url(OUTSOURCED, kind))
            assert inside.status == 200, kind
            await inside.read()
        assert all(r.call_id != UNTAGGED for r in b.audit())

    run(review_store, scenario)


def test_export_bodies_are_the_stored_transcript_and_the_decrypted_audio(review_store: ReviewConfig) -> None:
    stored_json = (review_store.store / f"{UNTAGGED}.transcript.json").read_bytes()
    stored_vtt = (review_store.store / f"{UNTAGGED}.vtt").read_bytes()
    wav = expected_wav(review_store, UNTAGGED)  # a full decrypt through RecordingReader

    async def scenario(b: Browser) -> None:
        await b.login("sam")
        for kind, body, content_type, file_name in (
            ("transcript.json", stored_json, "application/json", f"{UNTAGGED}.transcript.json"),
            ("transcript.vtt", stored_vtt, "text/vtt", f"{UNTAGGED}.vtt"),
            ("audio.wav", wav, "audio/wav", f"{UNTAGGED}.wav"),
        ):
            response = await b.get(_url(UNTAGGED, kind))
            assert response.status == 200, kind
            assert await response.read() == body, kind
            assert response.headers["Content-Type"].startswith(content_type)
            assert response.headers["Content-Disposition"] == f'attachment; filename="{file_name}"'
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert int(response.headers["Content-Length"]) == len(body)

    run(review_store, scenario)


def test_each_export_is_audited_without_content(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("sam")
        for kind in KINDS:
            await (await b.get(_url(UNTAGGED, kind))).read()
        assert _exports(b.audit()) == [
            ("export", "sam", "supervisor", UNTAGGED, {"kind": "json"}),
            ("export", "sam", "supervisor", UNTAGGED, {"kind": "vtt"}),
            ("export", "sam", "supervisor", UNTAGGED, {"kind": "wav"}),
            ("decrypt", "sam", "supervisor", UNTAGGED, {"for": "export"}),
        ]
        assert all(r.source == "127.0.0.1" for r in b.audit())
        trail = (b.config.state / "audit.log").read_text()
        for text in ("Thanks for calling", "[CREDIT_CARD]", "RIFF", "WEBVTT"):
            assert text not in trail
        # A HEAD sends no content, so it is not an export.
        before = len(b.audit())
        for kind in KINDS:
            head = await b.client.head(_url(UNTAGGED, kind), allow_redirects=False)
            assert head.status == 200
        assert len(b.audit()) == before

    run(review_store, scenario)


def test_the_call_page_links_exports_only_for_roles_that_may_export(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("sam")
        _, page = await b.text(f"/calls/{UNTAGGED}")
        for kind in KINDS:
            assert f'href="{_url(UNTAGGED, kind)}" download' in page
        # A call still running has no transcript yet: audio only, and the transcript URLs say so.
        _, running = await b.text(f"/calls/{RUNNING}")
        assert f'href="{_url(RUNNING, "audio.wav")}"' in running
        assert "transcript.json" not in running
        missing = await b.get(_url(RUNNING, "transcript.json"))
        assert missing.status == 404
        assert "no transcript to export" in await missing.text()
        await b.login("alice")
        _, page = await b.text(f"/calls/{UNTAGGED}")
        assert "/export/" not in page

    run(review_store, scenario)


def test_a_running_call_exports_its_verified_audio(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("sam")
        response = await b.get(_url(RUNNING, "audio.wav"))
        assert response.status == 200
        assert await response.read() == expected_wav(review_store, RUNNING)

    run(review_store, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_unsafe_ids_in_export_urls_are_404(review_store: ReviewConfig, kind: str) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("sam")
        for call_id in HOSTILE_IDS:
            response = await b.client.get(_url(call_id, kind), allow_redirects=False)
            assert response.status == 404, call_id
            assert "passwd" not in await response.text()
        assert (await b.get(f"/calls/{UNTAGGED}/export/users.db")).status == 404
        assert (await b.get(f"/calls/{UNTAGGED}/export/..%2F..%2Fstate%2Faudit.key")).status == 404
        assert not [r for r in b.audit() if r.event == "export"]

    run(review_store, scenario)


def test_without_an_identity_audio_export_is_503_and_transcripts_still_export(
    review_store: ReviewConfig,
) -> None:
    config = ReviewConfig(store=review_store.store, state=review_store.state, identity=None)

    async def scenario(b: Browser) -> None:
        await b.login("sam")
        _, page = await b.text(f"/calls/{UNTAGGED}")
        assert "export/audio.wav" not in page
        response = await b.get(_url(UNTAGGED, "audio.wav"))
        assert response.status == 503
        assert b"RIFF" not in await response.read()
        assert (await b.get(_url(UNTAGGED, "transcript.json"))).status == 200
        assert [r.detail.get("kind") for r in b.audit() if r.event == "export"] == ["json"]

    run(config, scenario)


def test_when_the_audit_trail_cannot_be_written_nothing_is_exported(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("sam")
        (b.config.state / "audit.head").write_text("damaged\n")
        for kind in KINDS:
            response = await b.get(_url(UNTAGGED, kind))
            assert response.status == 503, kind
            body = await response.read()
            assert b"RIFF" not in body
            assert b"Thanks for calling" not in body
            assert b"WEBVTT" not in body
        assert not [r for r in AuditLog(b.config.state).records() if r.event == "export"]

    run(review_store, scenario)
