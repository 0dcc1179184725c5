"""The admin pages over HTTP: call tags (how an outsourced reviewer's queue is filled), retention
overrides and the dry run, and shredding one call now; role boundaries, CSRF, hostile ids, and what the
audit trail records."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bleepline.review.app import make_review_app
from bleepline.review.audit import AuditRecord, verify
from bleepline.review.catalog import TagStore
from bleepline.review.config import ReviewConfig
from bleepline.review.policy import PolicyStore
from bleepline.review.retention import run_retention
from bleepline.store.keys import load_identity
from tests.review.conftest import CALL_IDS
from tests.review.test_app import HOSTILE_IDS, OUTSOURCED, UNTAGGED, Browser, FakeClock, Scenario

NOW = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
# Ages at NOW: c-0001 329 days, c-0002 265, c-0003 182 (outsourced, sales), c-0004 10 (billing), c-0005 1.
BILLED = "c-0004"  # admin tag "billing"


def run_at(config: ReviewConfig, scenario: Scenario) -> None:
    """Like test_app's ``run``, with the retention page's clock fixed at NOW."""

    async def main() -> None:
        app = make_review_app(config, clock=FakeClock(), now=lambda: NOW)
        async with TestClient(TestServer(app)) as client:
            await scenario(Browser(client, FakeClock(), config))

    asyncio.run(main())


def _session(b: Browser) -> str:
    cookies = b.client.session.cookie_jar.filter_cookies(b.client.make_url("/"))
    return cookies["bleepline_session"].value


def _resume(b: Browser, session: str) -> None:
    """Go on as the browser that holds ``session`` (signed in earlier, never signed out)."""
    b.client.session.cookie_jar.clear()
    b.client.session.cookie_jar.update_cookies({"bleepline_session": session}, b.client.make_url("/"))


def _policy_changes(records: list[AuditRecord]) -> list[tuple[str | None, str | None, dict[str, object]]]:
    return [(r.user, r.call_id, dict(r.detail)) for r in records if r.event == "policy_change"]


def _dry_run(config: ReviewConfig) -> dict[str, str]:
    report = run_retention(config, now=NOW, dry_run=True)
    return {o.call_id: o.rule for o in report.shredded}


def _files(store: Path) -> set[str]:
    return {p.name for p in store.iterdir()}


def _with_policy(config: ReviewConfig, days: int | None, by_tag: dict[str, int]) -> ReviewConfig:
    return dataclasses.replace(config, retention_days=days, retention_by_tag=MappingProxyType(by_tag))


# -- role boundaries -------------------------------------------------------------------------------------

PAGES = ("/admin/calls", "/admin/retention")
POSTS = (
    (f"/admin/calls/{UNTAGGED}/tags", {"tags": "outsourced"}),
    ("/admin/retention/set", {"scope": "store", "days": "5"}),
    ("/admin/retention/clear", {"scope": "store"}),
    (f"/admin/calls/{UNTAGGED}/shred", {"confirm": UNTAGGED}),
)


@pytest.mark.parametrize("name", ["alice", "sam", "audrey", "otto"])
def test_only_admins_reach_the_admin_pages_and_forms(review_store: ReviewConfig, name: str) -> None:
    async def scenario(b: Browser) -> None:
        await b.login(name)
        for path in PAGES:
            response = await b.get(path)
            assert response.status == 403, path
            assert UNTAGGED not in await response.text()
        for path, data in POSTS:
            response = await b.post(path, data)  # with the user's own valid token
            assert response.status == 403, path
        assert TagStore.in_state(b.config.state).get(UNTAGGED) == frozenset()
        assert PolicyStore.in_state(b.config.state).overrides().days is None
        assert f"{UNTAGGED}.bleep" in _files(b.config.store)
        assert not [r for r in b.audit() if r.event in ("policy_change", "delete")]

    run_at(review_store, scenario)


def test_admin_pages_signed_out_redirect_and_posts_answer_401(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        for path in PAGES:
            response = await b.get(path)
            assert response.status == 303
            assert response.headers["Location"] == "/login"
        for path, data in POSTS:
            assert (await b.post(path, data, csrf="x" * 43)).status == 401, path
        assert f"{UNTAGGED}.bleep" in _files(b.config.store)

    run_at(review_store, scenario)


def test_admin_forms_without_the_csrf_token_are_refused(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("adam")
        for path, data in POSTS:
            for token in ("", "x" * 43):
                assert (await b.post(path, data, csrf=token)).status == 403, path
            missing = await b.client.post(path, data=data, allow_redirects=False)
            assert missing.status == 403, path
        assert TagStore.in_state(b.config.state).get(UNTAGGED) == frozenset()
        assert PolicyStore.in_state(b.config.state).overrides().days is None
        assert f"{UNTAGGED}.bleep" in _files(b.config.store)
        assert [r.event for r in b.audit()] == ["login_ok"]

    run_at(review_store, scenario)


def test_admins_still_cannot_read_play_or_export_calls(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("adam")
        for path in (
            f"/calls/{UNTAGGED}",
            f"/calls/{UNTAGGED}/audio.wav",
            f"/calls/{UNTAGGED}/export/transcript.json",
            f"/calls/{UNTAGGED}/export/audio.wav",
        ):
            assert (await b.get(path)).status == 403, path
        for path in PAGES:
            status, page = await b.text(path)
            assert status == 200
            assert 'href="/calls/c-' not in page  # no links into content
            assert "Thanks for calling" not in page
            assert "[CREDIT_CARD]" not in page
            assert "<script>" not in page
            assert "style=" not in page
        _, nav = await b.text("/admin/calls")
        assert 'href="/admin/retention"' in nav

    run_at(review_store, scenario)


# -- call tags -------------------------------------------------------------------------------------------


def test_the_call_tags_page_shows_relay_tags_read_only_and_admin_tags_editable(
    review_store: ReviewConfig,
) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("adam")
        status, page = await b.text("/admin/calls")
        assert status == 200
        for call_id in CALL_IDS:
            assert f'action="/admin/calls/{call_id}/tags"' in page
        row = re.search(rf'<tr id="call-{BILLED}">.*?</tr>', page)
        assert row is not None
        assert 'name="tags" value="billing"' in row.group(0)
        relay = re.search(rf'<tr id="call-{OUTSOURCED}">.*?</tr>', page)
        assert relay is not None
        assert '<span class="tag">outsourced</span>' in relay.group(0)
        assert 'name="tags" value=""' in relay.group(0)  # the header's tag is not in the editable field

    run_at(review_store, scenario)


def test_tagging_a_call_puts_it_in_the_outsourced_queue_at_once(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("otto")
        otto = _session(b)
        assert (await b.get(f"/calls/{UNTAGGED}")).status == 404
        await b.login("adam")
        response = await b.post(f"/admin/calls/{UNTAGGED}/tags", {"tags": "outsourced, emea"})
        assert response.status == 303
        assert response.headers["Location"] == "/admin/calls?done=tags"
        assert TagStore.in_state(b.config.state).get(UNTAGGED) == {"outsourced", "emea"}
        _resume(b, otto)  # otto's session from before: no new sign-in needed
        status, listing = await b.text("/calls")
        assert status == 200
        assert f'href="/calls/{UNTAGGED}"' in listing
        assert (await b.get(f"/calls/{UNTAGGED}")).status == 200
        assert (await b.get(f"/calls/{UNTAGGED}/audio.wav")).status == 200
        # And out again.
        await b.login("adam")
        assert (await b.post(f"/admin/calls/{UNTAGGED}/tags", {"tags": ""})).status == 303
        _resume(b, otto)
        assert (await b.get(f"/calls/{UNTAGGED}")).status == 404
        changes = _policy_changes(b.audit())
        assert changes == [
            ("adam", UNTAGGED, {"action": "tags", "count": 2}),
            ("adam", UNTAGGED, {"action": "tags", "count": 0}),
        ]
        assert all(r.role == "admin" for r in b.audit() if r.event == "policy_change")
        assert "emea" not in (b.config.state / "audit.log").read_text()  # a count, not the names

    run_at(review_store, scenario)


def test_bad_tags_are_400_and_change_nothing(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("adam")
        for tags in ("has space", "<b>x</b>", "ok, -leading", ",".join(f"t{i}" for i in range(40)), "é"):
            response = await b.post(f"/admin/calls/{BILLED}/tags", {"tags": tags})
            assert response.status == 400, tags
            page = await response.text()
            assert 'role="alert"' in page
            assert "<b>x</b>" not in page
        assert TagStore.in_state(b.config.state).get(BILLED) == {"billing"}
        assert not _policy_changes(b.audit())

    run_at(review_store, scenario)


@pytest.mark.parametrize("action", ["tags", "shred"])
def test_unsafe_or_unknown_ids_in_admin_forms_are_404(review_store: ReviewConfig, action: str) -> None:
    before = _files(review_store.store)

    async def scenario(b: Browser) -> None:
        await b.login("adam")
        for call_id in (*HOSTILE_IDS, "c-9999"):
            data = {"csrf": b.csrf, "tags": "x", "confirm": call_id}
            response = await b.client.post(
                f"/admin/calls/{call_id}/{action}", data=data, allow_redirects=False
            )
            assert response.status == 404, call_id
            assert "passwd" not in await response.text()
        assert not [r for r in b.audit() if r.event in ("policy_change", "delete")]

    run_at(review_store, scenario)
    assert _files(review_store.store) == before
    assert set(TagStore.in_state(review_store.state).all()) == {BILLED}


def test_when_the_audit_trail_cannot_be_written_tags_are_not_changed(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("adam")
        (b.config.state / "audit.head").write_text("damaged\n")
        response = await b.post(f"/admin/calls/{UNTAGGED}/tags", {"tags": "outsourced"})
        assert response.status == 503
        assert TagStore.in_state(b.config.state).get(UNTAGGED) == frozenset()
        assert (await b.post("/admin/retention/set", {"scope": "store", "days": "5"})).status == 503
        assert PolicyStore.in_state(b.config.state).overrides().days is None

    run_at(review_store, scenario)


# -- retention -------------------------------------------------------------------------------------------


def test_the_retention_page_shows_the_policy_and_the_dry_run(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, 200, {"outsourced": 150, "sales": 365})

    async def scenario(b: Browser) -> None:
        await b.login("adam")
        status, page = await b.text("/admin/retention")
        assert status == 200
        assert "whole store" in page
        assert "200 days" in page
        assert '<span class="tag">outsourced</span>' in page
        assert '<span class="tag">sales</span>' in page
        # c-0001 by the store's 200 days; c-0002 and c-0003 by outsourced's 150 (shorter than sales').
        listed = re.findall(r'<table class="expiring">.*?</table>', page, re.S)
        assert listed
        assert set(re.findall(r"<code>(c-\d+)</code>", listed[0])) == {"c-0001", "c-0002", "c-0003"}
        assert "tag outsourced" in listed[0]
        assert "329 days" in listed[0]  # 5 Jan 09:00 to 1 Dec 00:00, whole days
        assert f"Would expire now ({NOW:%Y-%m-%d %H:%M} UTC)" in page
        assert set(_dry_run(config)) == {"c-0001", "c-0002", "c-0003"}

    run_at(config, scenario)


def test_an_override_changes_what_retention_would_shred(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        assert _dry_run(b.config) == {}  # the test store's config sets no period
        await b.login("adam")
        _, page = await b.text("/admin/retention")
        assert 'id="nothing-expires"' in page
        response = await b.post("/admin/retention/set", {"scope": "tag", "tag": "billing", "days": "5"})
        assert response.status == 303
        assert response.headers["Location"] == "/admin/retention?done=set"
        assert _dry_run(b.config) == {BILLED: "override:tag:billing"}
        _, page = await b.text("/admin/retention")
        assert f"<code>{BILLED}</code>" in page
        assert "tag billing override" in page
        assert (await b.post("/admin/retention/set", {"scope": "store", "days": "300"})).status == 303
        assert _dry_run(b.config) == {"c-0001": "override:store", BILLED: "override:tag:billing"}
        assert (await b.post("/admin/retention/set", {"scope": "store", "days": "100"})).status == 303
        assert set(_dry_run(b.config)) == {"c-0001", "c-0002", "c-0003", BILLED}  # replaced, not added
        cleared = await b.post("/admin/retention/clear", {"scope": "tag", "tag": "billing"})
        assert cleared.status == 303
        assert set(_dry_run(b.config)) == {"c-0001", "c-0002", "c-0003"}
        assert (await b.post("/admin/retention/clear", {"scope": "store"})).status == 303
        assert _dry_run(b.config) == {}
        assert _policy_changes(b.audit()) == [
            ("adam", None, {"action": "retention", "scope": "tag", "tag": "billing", "days": 5}),
            ("adam", None, {"action": "retention", "scope": "store", "days": 300}),
            ("adam", None, {"action": "retention", "scope": "store", "days": 100}),
            ("adam", None, {"action": "retention", "scope": "tag", "tag": "billing", "cleared": True}),
            ("adam", None, {"action": "retention", "scope": "store", "cleared": True}),
        ]
        assert verify(b.config.state).ok

    run_at(review_store, scenario)


def test_an_override_can_only_shorten_the_configured_period(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, 200, {"outsourced": 150})

    async def scenario(b: Browser) -> None:
        await b.login("adam")
        for data in (
            {"scope": "store", "days": "200"},
            {"scope": "store", "days": "365"},
            {"scope": "tag", "tag": "outsourced", "days": "151"},
        ):
            response = await b.post("/admin/retention/set", data)
            assert response.status == 400, data
            assert "only shorten" in await response.text()
        assert PolicyStore.in_state(b.config.state).overrides().days is None
        assert (
            await b.post("/admin/retention/set", {"scope": "tag", "tag": "outsourced", "days": "1"})
        ).status == 303
        # The shortest period still wins: outsourced calls by the override, c-0001 by the store's 200.
        assert _dry_run(b.config) == {
            "c-0001": "store",
            "c-0002": "override:tag:outsourced",
            "c-0003": "override:tag:outsourced",
        }

    run_at(config, scenario)


def test_bad_override_forms_are_400_or_404(review_store: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("adam")
        for data in (
            {"scope": "store", "days": "0"},
            {"scope": "store", "days": "-3"},
            {"scope": "store", "days": "1.5"},
            {"scope": "store", "days": "abc"},
            {"scope": "store", "days": "99999999999999999999"},
            {"scope": "store", "days": "١٢"},  # Arabic-Indic digits: int() would read them
            {"scope": "store"},
            {"scope": "tag", "tag": "../etc", "days": "5"},
            {"scope": "tag", "tag": "", "days": "5"},
            {"scope": "everything", "days": "5"},
            {"days": "5"},
        ):
            response = await b.post("/admin/retention/set", data)
            assert response.status == 400, data
            assert 'role="alert"' in await response.text()
        assert (await b.post("/admin/retention/clear", {"scope": "tag", "tag": "a b"})).status == 400
        assert (await b.post("/admin/retention/clear", {"scope": "store"})).status == 400  # none set
        assert (await b.post("/admin/retention/launch", {"scope": "store"})).status == 404
        assert PolicyStore.in_state(b.config.state).overrides().days is None
        assert not _policy_changes(b.audit())

    run_at(review_store, scenario)


def test_the_cli_honours_overrides(
    review_store: ReviewConfig, review_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bleepline.cli import main

    PolicyStore.in_state(review_store.state).set("billing", 5)
    code = main(
        ["retention", "run", "--dry-run", "--as-of", "2026-12-01", "--config", str(review_config_file)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "nothing expires" not in out
    assert f"would shred {BILLED}: created 2026-11-20, 10 days old; tag billing override period 5 days" in out


# -- shred now -------------------------------------------------------------------------------------------


def test_shred_now_needs_the_typed_call_id(review_store: ReviewConfig) -> None:
    before = _files(review_store.store)

    async def scenario(b: Browser) -> None:
        await b.login("adam")
        for confirm in ("", "yes", "c-0002", UNTAGGED + "x"):
            response = await b.post(f"/admin/calls/{UNTAGGED}/shred", {"confirm": confirm})
            assert response.status == 400, confirm
            assert "confirmation" in await response.text()
        assert not [r for r in b.audit() if r.event == "delete"]

    run_at(review_store, scenario)
    assert _files(review_store.store) == before


def test_shred_now_removes_exactly_that_call_and_records_delete(review_store: ReviewConfig) -> None:
    before = _files(review_store.store)
    assert review_store.identity is not None
    identity = load_identity(review_store.identity)

    async def scenario(b: Browser) -> None:
        await b.login("alice")
        alice = _session(b)
        await b.login("adam")
        response = await b.post(f"/admin/calls/{BILLED}/shred", {"confirm": BILLED, "back": "retention"})
        assert response.status == 303
        assert response.headers["Location"] == "/admin/retention?done=shred"
        removed = {f"{BILLED}.bleep", f"{BILLED}.transcript.json", f"{BILLED}.vtt"}
        assert before - _files(b.config.store) == removed
        assert _files(b.config.store) <= before
        assert TagStore.in_state(b.config.state).get(BILLED) == frozenset()  # its admin tags forgotten
        deletes = [r for r in b.audit() if r.event == "delete"]
        assert len(deletes) == 1
        record = deletes[0]
        assert (record.user, record.role, record.call_id, record.source) == (
            "adam",
            "admin",
            BILLED,
            "127.0.0.1",
        )
        assert dict(record.detail) == {"via": "shred_now", "keys": 1}
        assert verify(b.config.state).ok
        _, page = await b.text("/admin/calls")
        assert BILLED not in page
        _resume(b, alice)
        assert (await b.get(f"/calls/{BILLED}")).status == 404
        assert (await b.get(f"/calls/{BILLED}/audio.wav")).status == 404
        # Shredding it again: no such call.
        await b.login("adam")
        assert (await b.post(f"/admin/calls/{BILLED}/shred", {"confirm": BILLED})).status == 404

    run_at(review_store, scenario)
    # The other calls still open and decrypt.
    from bleepline.store.recording import RecordingReader

    for call_id in set(CALL_IDS) - {BILLED}:
        with RecordingReader(review_store.store / f"{call_id}.bleep") as reader:
            reader.unlock(identity)


def test_shred_now_from_the_dry_run_list(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, 300, {})

    async def scenario(b: Browser) -> None:
        await b.login("adam")
        _, page = await b.text("/admin/retention")
        assert 'action="/admin/calls/c-0001/shred"' in page
        assert "data-confirm=" in page
        assert (
            await b.post("/admin/calls/c-0001/shred", {"confirm": "c-0001", "back": "retention"})
        ).status == 303
        _, page = await b.text("/admin/retention?done=shred")
        assert "Call shredded" in page
        assert 'id="nothing-expires"' in page
        assert not any(name.startswith("c-0001") for name in _files(b.config.store))

    run_at(config, scenario)
