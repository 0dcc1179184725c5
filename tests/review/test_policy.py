"""Retention overrides: how they are stored, and how they combine with the config's periods."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from types import MappingProxyType

import pytest

from bleepline.review.catalog import Catalog, TagStore
from bleepline.review.config import ReviewConfig
from bleepline.review.policy import MAX_DAYS, Overrides, PolicyError, PolicyStore
from bleepline.review.retention import audit_rule, describe_rule, period_for


def test_overrides_are_set_replaced_and_cleared(tmp_path: Path) -> None:
    store = PolicyStore.in_state(tmp_path / "state")
    assert store.overrides() == Overrides()
    assert (tmp_path / "state" / "policy.db").stat().st_mode & 0o777 == 0o600
    store.set(None, 90)
    store.set("outsourced", 30)
    store.set("outsourced", 20)
    found = store.overrides()
    assert (found.days, dict(found.by_tag)) == (90, {"outsourced": 20})
    assert store.clear("outsourced")
    assert not store.clear("outsourced")
    assert store.clear(None)
    assert store.overrides() == Overrides()


@pytest.mark.parametrize(("tag", "days"), [(None, 0), (None, MAX_DAYS + 1), ("a b", 5), ("../x", 5), ("", 5)])
def test_bad_overrides_are_refused(tmp_path: Path, tag: str | None, days: int) -> None:
    store = PolicyStore.in_state(tmp_path)
    with pytest.raises(PolicyError):
        store.set(tag, days)
    assert store.overrides() == Overrides()


def test_rows_edited_by_hand_into_nonsense_are_ignored(tmp_path: Path) -> None:
    store = PolicyStore.in_state(tmp_path)
    store.set("ok", 7)
    with sqlite3.connect(tmp_path / "policy.db") as db:
        db.executemany(
            "INSERT INTO retention_overrides (scope, days) VALUES (?, ?)",
            [("tag:bad tag", 3), ("store", -1), ("tag:neg", 0), ("elsewhere", 4), ("tag:text", "soon")],
        )
    found = store.overrides()
    assert (found.days, dict(found.by_tag)) == (None, {"ok": 7})


def test_a_damaged_policy_database_is_a_policy_error(tmp_path: Path) -> None:
    (tmp_path / "policy.db").write_bytes(b"not a database at all, but long enough to look like one" * 10)
    with pytest.raises(PolicyError, match="policy database"):
        PolicyStore.in_state(tmp_path)


def test_overrides_only_add_candidates_and_the_shortest_wins(review_store: ReviewConfig) -> None:
    entry = Catalog(review_store.store, TagStore.in_state(review_store.state)).get(
        "c-0003"
    )  # outsourced, sales
    config = dataclasses.replace(
        review_store, retention_days=100, retention_by_tag=MappingProxyType({"sales": 60})
    )
    assert period_for(entry, config, Overrides()) == (60, "tag:sales")
    longer = Overrides(days=500, by_tag=MappingProxyType({"sales": 400}))
    assert period_for(entry, config, longer) == (60, "tag:sales")  # cannot lengthen
    shorter = Overrides(by_tag=MappingProxyType({"outsourced": 10}))
    assert period_for(entry, config, shorter) == (10, "override:tag:outsourced")
    assert period_for(entry, review_store, Overrides(days=5)) == (5, "override:store")


def test_rules_read_as_words_and_fit_an_audit_token() -> None:
    assert describe_rule("store") == "store"
    assert describe_rule("tag:sales") == "tag sales"
    assert describe_rule("override:store") == "store override"
    assert describe_rule("override:tag:sales") == "tag sales override"
    long_tag = "t" * 64
    assert audit_rule(f"tag:{long_tag}") == "tag"
    assert audit_rule(f"override:tag:{long_tag}") == "override:tag"
    assert audit_rule("override:tag:sales") == "override:tag:sales"
