"""Retention: exactly the expired recordings go, shredded first, and every shred is audited."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from bleepline.review.audit import AuditLog, verify
from bleepline.review.catalog import Catalog, TagStore
from bleepline.review.config import ReviewConfig
from bleepline.review.retention import expired, period_for, run_retention, shred_keys
from bleepline.store.errors import RecordingIntegrityError, StoreError
from bleepline.store.keys import Identity
from bleepline.store.recording import RecordingReader
from tests.review.conftest import CALL_IDS, CALLS, RATE, CallSpec, write_call

NOW = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)


def _with_policy(config: ReviewConfig, days: int | None, by_tag: dict[str, int]) -> ReviewConfig:
    return dataclasses.replace(config, retention_days=days, retention_by_tag=MappingProxyType(by_tag))


def _files(store: Path) -> set[str]:
    return {p.name for p in store.iterdir()}


def _decrypts(path: Path, identity: Identity) -> int:
    with RecordingReader(path) as reader:
        reader.unlock(identity)
        return sum(len(c.samples) for c in reader.chunks())


def test_removes_exactly_the_expired(review_store: ReviewConfig, review_identity: Identity) -> None:
    # Ages at NOW: c-0001 330 d, c-0002 266 d (outsourced), c-0003 182 d (outsourced, sales),
    # c-0004 10 d (billing), c-0005 1 d.
    config = _with_policy(review_store, 200, {"outsourced": 150, "sales": 365, "billing": 30})
    before = _files(config.store)
    report = run_retention(config, now=NOW)
    gone = {"c-0001", "c-0002", "c-0003"}
    assert {o.call_id for o in report.shredded} == gone
    assert report.kept == 2
    assert not report.failed
    assert [s.name for s in report.skipped] == ["broken.bleep"]
    expected_removed = {f"{c}{suffix}" for c in gone for suffix in (".bleep", ".transcript.json", ".vtt")}
    assert before - _files(config.store) == expected_removed
    by_id = {o.call_id: o for o in report.shredded}
    assert by_id["c-0003"].rule == "tag:outsourced"  # the shortest period applies, not sales' 365
    assert by_id["c-0003"].period_days == 150
    assert by_id["c-0001"].rule == "store"
    assert set(by_id["c-0002"].removed) == {"c-0002.bleep", "c-0002.transcript.json", "c-0002.vtt"}
    # What is left still plays.
    assert _decrypts(config.store / "c-0004.bleep", review_identity) == 20 * RATE
    assert [c.call_id for c in Catalog(config.store).calls()] == ["c-0005", "c-0004"]


def test_every_shred_is_audited(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, 200, {"outsourced": 150})
    run_retention(config, now=NOW)
    records = AuditLog(config.state).records()
    shreds = [r for r in records if r.event == "retention_shred"]
    assert sorted(r.call_id or "" for r in shreds) == ["c-0001", "c-0002", "c-0003"]
    assert all(r.detail["period_days"] in (150, 200) for r in shreds)
    assert verify(config.state).ok


def test_dry_run_changes_nothing(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, 200, {})
    before = {p.name: p.read_bytes() for p in config.store.iterdir()}
    report = run_retention(config, now=NOW, dry_run=True)
    assert report.dry_run
    assert {o.call_id for o in report.shredded} == {"c-0001", "c-0002"}
    assert all(o.removed == () for o in report.shredded)
    assert {p.name: p.read_bytes() for p in config.store.iterdir()} == before
    assert AuditLog(config.state).records() == []


def test_no_policy_keeps_everything(review_store: ReviewConfig) -> None:
    report = run_retention(review_store, now=NOW + timedelta(days=10_000))
    assert report.shredded == ()
    assert report.kept == len(CALLS)


def test_tag_only_policy_and_admin_tags(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, None, {"billing": 5})
    catalog = Catalog(config.store, TagStore.in_state(config.state))
    assert [e.call_id for e in expired(catalog, config, NOW)] == ["c-0004"]  # tagged by an admin
    TagStore.in_state(config.state).set("c-0001", ["billing"])
    assert [e.call_id for e in expired(catalog, config, NOW)] == ["c-0001", "c-0004"]


def test_boundary_is_inclusive(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, 10, {})
    catalog = Catalog(config.store)
    created = next(c for c in CALLS if c.call_id == "c-0004").created_at
    at_limit = created + timedelta(days=10)
    assert "c-0004" in [e.call_id for e in expired(catalog, config, at_limit)]
    assert "c-0004" not in [e.call_id for e in expired(catalog, config, at_limit - timedelta(seconds=1))]


def test_period_for_picks_the_shortest(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, 90, {"a": 30, "b": 400})
    entry = dataclasses.replace(Catalog(review_store.store).get("c-0001"), tags=frozenset({"a", "b"}))
    assert period_for(entry, config) == (30, "tag:a")
    entry = dataclasses.replace(entry, tags=frozenset({"b"}))
    assert period_for(entry, config) == (90, "store")
    assert period_for(entry, _with_policy(review_store, None, {})) is None


def test_shredded_bytes_cannot_be_decrypted(tmp_path: Path) -> None:
    """The overwrite step alone: a copy recovered after it (but before deletion) is useless, even to
    every identity the recording was made for."""
    first, second = Identity.generate(), Identity.generate()
    spec = CallSpec("c-shred", datetime(2026, 1, 1, tzinfo=UTC), 3.0)
    path = write_call(tmp_path, spec, [first, second])
    before = path.read_bytes()
    assert _decrypts(path, first) == 3 * RATE
    assert shred_keys(path) == 2
    after = path.read_bytes()
    assert len(after) == len(before)  # in place: header length unchanged, nothing moved
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    assert len(changed) > 150  # two wrapped keys of 108 base64 letters each, rewritten at random
    recovered = tmp_path / "recovered.bleep"
    shutil.copyfile(path, recovered)
    for identity in (first, second):
        with RecordingReader(recovered) as reader, pytest.raises(RecordingIntegrityError, match="damaged"):
            reader.unlock(identity)
    # Audio chunks themselves were not touched: only the keys were destroyed.
    assert after[-200:] == before[-200:]


def test_shred_of_unparseable_header_overwrites_it(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = write_call(tmp_path, CallSpec("c-odd", datetime(2026, 1, 1, tzinfo=UTC), 1.0), [identity])
    data = bytearray(path.read_bytes())
    data[14] = ord("~")  # the header's opening brace: its JSON no longer parses
    path.write_bytes(bytes(data))
    header_before = data[14:200]
    assert shred_keys(path) == 0
    assert path.read_bytes()[14:200] != header_before  # the whole header, keys included, overwritten
    with pytest.raises(StoreError):
        RecordingReader(path)


def test_other_files_untouched_and_broken_skipped(review_store: ReviewConfig) -> None:
    config = _with_policy(review_store, 1, {})
    (config.store / "notes.txt").write_text("unrelated")
    report = run_retention(config, now=NOW + timedelta(days=30))
    assert {o.call_id for o in report.shredded} == set(CALL_IDS)
    assert _files(config.store) == {"notes.txt", "broken.bleep"}
