"""The call catalog: listing, filters, scope, tags, broken files and hostile ids."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from bleepline.review.catalog import Catalog, TagStore, TranscriptUnavailable, UnknownCall, is_call_id
from bleepline.review.config import ReviewConfig
from bleepline.review.users import Role, User
from tests.review.conftest import BROKEN_NAME, CALL_IDS, CALLS


@pytest.fixture
def catalog(review_store: ReviewConfig) -> Catalog:
    return Catalog(review_store.store, TagStore.in_state(review_store.state))


def test_lists_every_call_newest_first(catalog: Catalog) -> None:
    calls = catalog.calls()
    assert [c.call_id for c in calls] == sorted(CALL_IDS, reverse=True)
    assert [s.name for s in catalog.skipped] == [BROKEN_NAME]
    for entry in calls:
        spec = next(c for c in CALLS if c.call_id == entry.call_id)
        assert entry.created_at == spec.created_at
        assert entry.duration == pytest.approx(spec.duration, abs=0.01)
        assert dict(entry.entity_counts) == spec.entity_counts
        assert entry.tags == spec.tags
        assert entry.redacted
        assert entry.finished == spec.finished
        if spec.finished:
            assert dict(entry.masked_seconds) == spec.masked


def test_running_call_has_no_transcript(catalog: Catalog) -> None:
    entry = catalog.get("c-0005")
    assert entry.transcript is None
    assert entry.duration == pytest.approx(3.0)
    with pytest.raises(TranscriptUnavailable):
        catalog.transcript("c-0005")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"since": date(2026, 6, 1)}, ["c-0005", "c-0004", "c-0003"]),
        ({"until": date(2026, 3, 10)}, ["c-0002", "c-0001"]),
        ({"since": date(2026, 3, 1), "until": date(2026, 6, 30)}, ["c-0003", "c-0002"]),
        ({"min_duration": 12.0}, ["c-0004", "c-0002", "c-0001"]),
        ({"max_duration": 5.0}, ["c-0005", "c-0003"]),
        ({"entity": "CREDIT_CARD"}, ["c-0001"]),
        ({"entity": "PIN"}, ["c-0002"]),
        ({"entity": "EMAIL_ADDRESS"}, []),
        ({"min_masked": 5.0}, ["c-0004", "c-0002"]),
        ({"min_masked": 0.1, "entity": "US_SSN"}, ["c-0004"]),
    ],
)
def test_filters(catalog: Catalog, filters: dict[str, object], expected: list[str]) -> None:
    assert [c.call_id for c in catalog.calls(**filters)] == expected  # type: ignore[arg-type]


def test_tagged_user_sees_only_tagged_calls(catalog: Catalog) -> None:
    otto = User("otto", Role.REVIEWER, frozenset({"outsourced"}))
    alice = User("alice", Role.REVIEWER, frozenset())
    assert [c.call_id for c in catalog.calls(user=otto)] == ["c-0003", "c-0002"]
    assert len(catalog.calls(user=alice)) == len(CALLS)
    assert catalog.get("c-0002", user=otto).call_id == "c-0002"
    with pytest.raises(UnknownCall) as outside:
        catalog.get("c-0001", user=otto)
    with pytest.raises(UnknownCall) as missing:
        catalog.get("c-9999", user=otto)
    # Outside the scope reads exactly like a call that does not exist.
    assert str(outside.value).replace("c-0001", "X") == str(missing.value).replace("c-9999", "X")


def test_admin_tags_grant_scope(review_store: ReviewConfig, catalog: Catalog) -> None:
    billing = User("bea", Role.REVIEWER, frozenset({"billing"}))
    assert [c.call_id for c in catalog.calls(user=billing)] == ["c-0004"]
    TagStore.in_state(review_store.state).set("c-0001", ["billing"])
    assert [c.call_id for c in catalog.calls(user=billing)] == ["c-0004", "c-0001"]
    TagStore.in_state(review_store.state).set("c-0004", [])
    assert [c.call_id for c in catalog.calls(user=billing)] == ["c-0001"]


@pytest.mark.parametrize(
    "bad",
    [
        "../c-0001",
        "..",
        ".",
        "",
        "a/b",
        "/etc/passwd",
        "c-0001/../c-0002",
        "..%2fetc",
        "c..0001",
        ".hidden",
        "c-0001\x00",
        "c 0001",
        "x" * 200,
        "c-0001\n",
    ],
)
def test_hostile_ids_are_unknown_before_any_file_access(
    catalog: Catalog, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    touched: list[str] = []
    real_lstat = os.lstat

    def spy(path: object, *args: object, **kwargs: object) -> os.stat_result:
        touched.append(str(path))
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", spy)
    assert not is_call_id(bad)
    with pytest.raises(UnknownCall):
        catalog.get(bad)
    with pytest.raises(UnknownCall):
        catalog.transcript(bad)
    with pytest.raises(UnknownCall):
        catalog.recording_path(bad)
    assert touched == []


def test_transcript_is_the_redacted_json(catalog: Catalog) -> None:
    doc = catalog.transcript("c-0001")
    assert doc["call_id"] == "c-0001"
    assert [s["text"] for s in doc["segments"]][1] == "It's [PERSON]."
    assert [r["entity"] for r in doc["redactions"]] == ["PERSON", "CREDIT_CARD"]
    with pytest.raises(UnknownCall):
        catalog.transcript("c-9999")


def test_broken_transcript_lists_without_counts(review_store: ReviewConfig, catalog: Catalog) -> None:
    (review_store.store / "c-0001.transcript.json").write_text("{not json")
    entry = catalog.get("c-0001")
    assert entry.transcript is None
    assert dict(entry.entity_counts) == {}
    with pytest.raises(TranscriptUnavailable, match="not valid JSON"):
        catalog.transcript("c-0001")


@pytest.mark.parametrize(
    "damage",
    [b"", b"BLEEPLINE", b"BLEEPLINE\x09\x00\x00\x00\x10", b"BLEEPLINE\x01\x00\x00\x00\x05{}}}}" + b"\0" * 40],
)
def test_broken_recordings_are_skipped_and_counted(
    review_store: ReviewConfig, catalog: Catalog, damage: bytes
) -> None:
    (review_store.store / "c-0003.bleep").write_bytes(damage)
    calls = catalog.calls()
    assert "c-0003" not in [c.call_id for c in calls]
    assert len(calls) == len(CALLS) - 1
    assert sorted(s.name for s in catalog.skipped) == sorted([BROKEN_NAME, "c-0003.bleep"])
    with pytest.raises(UnknownCall):
        catalog.get("c-0003")


def test_symlinks_and_odd_names_are_skipped(
    review_store: ReviewConfig, catalog: Catalog, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.bleep"
    outside.write_bytes((review_store.store / "c-0001.bleep").read_bytes())
    (review_store.store / "linked.bleep").symlink_to(outside)
    (review_store.store / ".hidden.bleep").write_bytes(b"x")
    calls = catalog.calls()
    assert "linked" not in [c.call_id for c in calls]
    assert {s.name for s in catalog.skipped} >= {"linked.bleep", ".hidden.bleep"}
    with pytest.raises(UnknownCall):
        catalog.get("linked")


def test_tags_from_header_ignore_junk(review_store: ReviewConfig) -> None:
    # Tag values that are not plain names never grant scope.
    from bleepline.store.keys import load_identity
    from tests.review.conftest import CallSpec, _utc, write_call

    assert review_store.identity is not None
    spec = CallSpec("c-junk", _utc(2026, 2, 2, 2, 2, 2), 1.0, header_tags=("ok", "not ok", "../x"))
    write_call(review_store.store, spec, [load_identity(review_store.identity)])
    assert Catalog(review_store.store).get("c-junk").tags == frozenset({"ok"})


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    from bleepline.review.catalog import CatalogError

    with pytest.raises(CatalogError, match="does not exist"):
        Catalog(tmp_path / "nope").calls()
