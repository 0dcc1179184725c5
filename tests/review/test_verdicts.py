"""Verdicts of `bleepline verify` in the review app: the catalog reads ``<id>.verify.json`` beside each
recording, and the call list and call page show each call as clean, N audible, or not verified.

Verdict files here are written with the store's own writer, as the command writes them; the command
itself, with the real models, is tested in ``tests/commands/test_verify.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from bleepline.review.catalog import Catalog, TagStore
from bleepline.review.config import ReviewConfig
from bleepline.review.retention import run_retention
from bleepline.store.verdict import (
    AudibleFinding,
    FindingKind,
    VerdictError,
    VerdictRecord,
    read_verdict,
    verdict_path,
    write_verdict,
)
from tests.review.test_app import Browser, run

CLEAN = "c-0001"
AUDIBLE = "c-0002"  # tagged outsourced
STALE = "c-0003"
DAMAGED = "c-0004"
NEVER = "c-0005"
NOW = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)  # c-0001 is 330 days old then, c-0002 266

FINDINGS = (
    AudibleFinding(5.25, 5.75, FindingKind.DIGIT),
    AudibleFinding(5.25, 7.5, FindingKind.ENTITY, "PHONE_NUMBER"),
    AudibleFinding(12.5, 12.58, FindingKind.DTMF),
)


def verdict_for(store: Path, call_id: str, findings: tuple[AudibleFinding, ...] = ()) -> VerdictRecord:
    recording = store / f"{call_id}.bleep"
    data = recording.read_bytes()
    return VerdictRecord(
        call_id=call_id,
        recording=recording.name,
        recording_bytes=len(data),
        recording_sha256=hashlib.sha256(data).hexdigest(),
        verified_at="2026-12-01T10:00:00Z",
        models={"asr": "whisper-tiny-en int8", "pii": "test", "decoding": "test", "dtmf": "test"},
        duration=30.0,
        channels=1,
        findings=findings,
    )


@pytest.fixture
def verified(review_store: ReviewConfig) -> ReviewConfig:
    """The test store with verdicts: one clean, one with three findings, one about other bytes (the
    recording changed since), one damaged; the running call has none."""
    store = review_store.store
    write_verdict(verdict_for(store, CLEAN), verdict_path(store / f"{CLEAN}.bleep"))
    write_verdict(verdict_for(store, AUDIBLE, FINDINGS), verdict_path(store / f"{AUDIBLE}.bleep"))
    stale = dataclasses.replace(verdict_for(store, STALE), recording_bytes=1)
    write_verdict(stale, verdict_path(store / f"{STALE}.bleep"))
    (store / f"{DAMAGED}.verify.json").write_text('{"format": "bleepline-verdict", "version": 1')
    return review_store


def test_the_verdict_file_goes_beside_the_recording_and_reads_back(verified: ReviewConfig) -> None:
    path = verified.store / f"{AUDIBLE}.verify.json"
    assert verdict_path(verified.store / f"{AUDIBLE}.bleep") == path
    verdict = read_verdict(path)
    assert verdict == verdict_for(verified.store, AUDIBLE, FINDINGS)
    assert verdict.audible == 3
    assert verdict.counts == {"digit": 1, "entity": 1, "dtmf": 1}
    assert verdict.entity_counts == {"PHONE_NUMBER": 1}
    document = json.loads(path.read_text())
    assert document["format"] == "bleepline-verdict"
    assert document["findings"][1] == {
        "start": 5.25,
        "end": 7.5,
        "kind": "entity",
        "entity": "PHONE_NUMBER",
        "channel": 0,
    }
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in verified.store.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"format": "bleepline-transcript", "version": 1}',
        '{"format": "bleepline-verdict", "version": 2}',
        '{"format": "bleepline-verdict", "version": 1, "findings": [{"kind": "words", "start": 1}]}',
    ],
)
def test_what_is_not_a_verdict_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.verify.json"
    path.write_text(text)
    with pytest.raises(VerdictError):
        read_verdict(path)


def test_a_finding_holds_no_text() -> None:
    with pytest.raises(ValueError, match="entity type"):
        AudibleFinding(1.0, 2.0, FindingKind.ENTITY, "call me on 555")
    with pytest.raises(ValueError, match="other kinds name none"):
        AudibleFinding(1.0, 2.0, FindingKind.DIGIT, "PHONE_NUMBER")


def test_the_catalog_gives_each_call_its_own_verdict_or_none(verified: ReviewConfig) -> None:
    catalog = Catalog(verified.store, TagStore.in_state(verified.state))
    entries = {entry.call_id: entry for entry in catalog.calls()}
    clean = entries[CLEAN].verdict
    assert clean is not None
    assert clean.clean
    audible = entries[AUDIBLE].verdict
    assert audible is not None
    assert audible.audible == 3
    # About other bytes, damaged, never verified: all read as not verified.
    assert entries[STALE].verdict is None
    assert entries[DAMAGED].verdict is None
    assert entries[NEVER].verdict is None
    assert catalog.get(AUDIBLE).verdict == audible


def test_a_verdict_about_another_call_is_not_this_calls(verified: ReviewConfig) -> None:
    store = verified.store
    other = dataclasses.replace(verdict_for(store, CLEAN), call_id="c-0999")
    write_verdict(other, verdict_path(store / f"{CLEAN}.bleep"))
    assert Catalog(store).get(CLEAN).verdict is None


def _row(page: str, call_id: str) -> str:
    found = re.search(rf'<tr><td><a href="/calls/{call_id}">.*?</tr>', page)
    assert found is not None, call_id
    return found.group(0)


def test_the_call_list_shows_each_verdict(verified: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        status, page = await b.text("/calls")
        assert status == 200
        assert "<th>Verified</th>" in page
        assert '<span class="badge ok verdict clean">clean</span>' in _row(page, CLEAN)
        assert '<span class="badge danger verdict audible">3 audible</span>' in _row(page, AUDIBLE)
        for call_id in (STALE, DAMAGED, NEVER):
            assert '<span class="badge verdict none">not verified</span>' in _row(page, call_id)

    run(verified, scenario)


def test_the_call_page_shows_the_verdict_and_where_things_are_audible(verified: ReviewConfig) -> None:
    async def scenario(b: Browser) -> None:
        await b.login("alice")
        status, page = await b.text(f"/calls/{AUDIBLE}")
        assert status == 200
        assert "<dt>Verified</dt>" in page
        assert "3 audible" in page
        assert "1 digit, 1 entity, 1 dtmf" in page
        assert "whisper-tiny-en int8" in page
        section = re.search(r'<section class="audible" id="audible">.*?</section>', page)
        assert section is not None
        items = re.findall(
            r'<li data-start="([\d.]+)" data-end="([\d.]+)" data-kind="(\w+)">(.*?)</li>', section[0]
        )
        assert [(float(a), float(b), kind) for a, b, kind, _ in items] == [
            (5.25, 5.75, "digit"),
            (5.25, 7.5, "entity"),
            (12.5, 12.58, "dtmf"),
        ]
        assert "PHONE_NUMBER" in items[1][3]

        status, page = await b.text(f"/calls/{CLEAN}")
        assert status == 200
        assert '<span class="badge ok verdict clean">clean</span>' in page
        assert 'id="audible"' not in page

        status, page = await b.text(f"/calls/{NEVER}")
        assert status == 200
        assert "not verified" in page
        assert 'id="audible"' not in page

    run(verified, scenario)


def test_retention_removes_the_verdict_with_its_recording(verified: ReviewConfig) -> None:
    config = dataclasses.replace(verified, retention_days=200, retention_by_tag=MappingProxyType({}))
    report = run_retention(config, now=NOW)
    gone = {o.call_id for o in report.shredded}
    assert {CLEAN, AUDIBLE} <= gone
    by_id = {o.call_id: o for o in report.shredded}
    assert f"{AUDIBLE}.verify.json" in by_id[AUDIBLE].removed
    assert not (config.store / f"{CLEAN}.verify.json").exists()
    assert not (config.store / f"{AUDIBLE}.verify.json").exists()
