"""The audit trail: appends chain, and verify catches every edit, deletion, reorder and truncation."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from bleepline.review.audit import (
    HEAD_NAME,
    KEY_NAME,
    LOG_NAME,
    AuditError,
    AuditEvent,
    AuditLog,
    AuditValueError,
    verify,
)


def _fill(state: Path, count: int = 3) -> AuditLog:
    log = AuditLog(state)
    for i in range(count):
        log.append(
            AuditEvent.PLAY if i % 2 else AuditEvent.LOGIN_OK,
            user="alice",
            role="reviewer",
            call_id=f"c-{i:04d}",
            source="127.0.0.1",
            detail={"attempt": i, "ok": True},
        )
    return log


def _lines(state: Path) -> list[bytes]:
    return (state / LOG_NAME).read_bytes().splitlines(keepends=True)


def test_appends_chain_and_verify(tmp_path: Path) -> None:
    log = _fill(tmp_path, 4)
    records = log.records()
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[0].prev == "0" * 64
    assert all(b.prev == a.mac for a, b in itertools.pairwise(records))
    assert records[1].event == AuditEvent.PLAY
    assert records[1].call_id == "c-0001"
    assert records[1].detail == {"attempt": 1, "ok": True}
    result = verify(tmp_path)
    assert result.ok
    assert result.records == 4
    assert result.problem is None


def test_files_are_private(tmp_path: Path) -> None:
    _fill(tmp_path, 1)
    for name in (LOG_NAME, KEY_NAME, HEAD_NAME):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0, name
    assert len((tmp_path / KEY_NAME).read_bytes()) == 32


def test_empty_state_verifies(tmp_path: Path) -> None:
    assert verify(tmp_path).ok
    assert verify(tmp_path).records == 0


def test_every_one_byte_edit_fails(tmp_path: Path) -> None:
    _fill(tmp_path, 3)
    original = (tmp_path / LOG_NAME).read_bytes()
    assert verify(tmp_path).ok
    for position in range(len(original)):
        for flip in (0x01, 0x20, 0x80):
            edited = bytearray(original)
            edited[position] ^= flip
            (tmp_path / LOG_NAME).write_bytes(bytes(edited))
            result = verify(tmp_path)
            assert not result.ok, f"edit at byte {position} (xor {flip:#x}) not detected"
            assert result.problem
        # A byte removed anywhere is an edit too.
        (tmp_path / LOG_NAME).write_bytes(original[:position] + original[position + 1 :])
        assert not verify(tmp_path).ok, f"deleting byte {position} not detected"
    (tmp_path / LOG_NAME).write_bytes(original)
    assert verify(tmp_path).ok


@pytest.mark.parametrize("index", [0, 2, 4], ids=["first", "middle", "last"])
def test_deleted_record_fails(tmp_path: Path, index: int) -> None:
    _fill(tmp_path, 5)
    lines = _lines(tmp_path)
    del lines[index]
    (tmp_path / LOG_NAME).write_bytes(b"".join(lines))
    result = verify(tmp_path)
    assert not result.ok
    assert result.problem is not None


def test_deleted_last_record_names_the_head(tmp_path: Path) -> None:
    _fill(tmp_path, 5)
    (tmp_path / LOG_NAME).write_bytes(b"".join(_lines(tmp_path)[:-1]))
    result = verify(tmp_path)
    assert not result.ok
    assert "deleted at the end" in (result.problem or "")


def test_swapped_pair_fails(tmp_path: Path) -> None:
    _fill(tmp_path, 4)
    lines = _lines(tmp_path)
    lines[1], lines[2] = lines[2], lines[1]
    (tmp_path / LOG_NAME).write_bytes(b"".join(lines))
    result = verify(tmp_path)
    assert not result.ok
    assert "line 2" in (result.problem or "")


def test_truncated_file_fails(tmp_path: Path) -> None:
    _fill(tmp_path, 3)
    data = (tmp_path / LOG_NAME).read_bytes()
    for cut in (len(data) - 1, len(data) - 40, len(data) // 2, 1):
        (tmp_path / LOG_NAME).write_bytes(data[:cut])
        assert not verify(tmp_path).ok, f"cut at {cut} not detected"
    (tmp_path / LOG_NAME).write_bytes(b"")
    assert not verify(tmp_path).ok
    (tmp_path / LOG_NAME).unlink()
    assert not verify(tmp_path).ok


def test_tampered_head_fails(tmp_path: Path) -> None:
    _fill(tmp_path, 3)
    head_path = tmp_path / HEAD_NAME
    original = head_path.read_bytes()
    for position in range(len(original)):
        edited = bytearray(original)
        edited[position] ^= 0x01
        head_path.write_bytes(bytes(edited))
        assert not verify(tmp_path).ok, f"head edit at byte {position} not detected"
    head_path.unlink()
    assert not verify(tmp_path).ok


def test_old_head_behind_a_longer_log_fails(tmp_path: Path) -> None:
    """An old (genuinely MACed) head put back over a log that went on: more than the one record a crash
    can leave, so it is caught."""
    _fill(tmp_path, 2)
    old_head = (tmp_path / HEAD_NAME).read_bytes()
    _fill(tmp_path, 3)
    (tmp_path / HEAD_NAME).write_bytes(old_head)
    assert not verify(tmp_path).ok


def test_forged_record_without_key_fails(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    lines = _lines(tmp_path)
    record = json.loads(lines[1])
    record["user"] = "mallory"
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    (tmp_path / LOG_NAME).write_bytes(b"".join(lines))
    result = verify(tmp_path)
    assert not result.ok
    assert "MAC" in (result.problem or "")


def test_missing_key_fails(tmp_path: Path) -> None:
    _fill(tmp_path, 1)
    (tmp_path / KEY_NAME).unlink()
    result = verify(tmp_path)
    assert not result.ok
    assert "key" in (result.problem or "")


def test_crash_between_log_and_head_still_verifies(tmp_path: Path) -> None:
    """The log is appended before the head is replaced: a crash between leaves the head one behind."""
    _fill(tmp_path, 2)
    old_head = (tmp_path / HEAD_NAME).read_bytes()
    _fill(tmp_path, 1)
    (tmp_path / HEAD_NAME).write_bytes(old_head)
    assert verify(tmp_path).ok
    AuditLog(tmp_path).append(AuditEvent.LOGOUT, user="alice")  # and appending goes on from there
    assert verify(tmp_path).records == 4


def test_append_refuses_a_truncated_trail(tmp_path: Path) -> None:
    """An append must not chain onto a cut-back log and so hide the cut behind a fresh head."""
    _fill(tmp_path, 3)
    (tmp_path / LOG_NAME).write_bytes(b"".join(_lines(tmp_path)[:-1]))
    with pytest.raises(AuditError, match="does not reach its head"):
        AuditLog(tmp_path).append(AuditEvent.LOGIN_OK, user="alice")
    assert not verify(tmp_path).ok


def test_append_refuses_a_partial_last_line(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    with open(tmp_path / LOG_NAME, "ab") as handle:
        handle.write(b'{"seq":3')
    with pytest.raises(AuditError):
        AuditLog(tmp_path).append(AuditEvent.LOGIN_OK)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"user": "alice smith"}, "user"),
        ({"call_id": "../x y"}, "call_id"),
        ({"detail": {"note": "the caller said her card was 4111"}}, "free text"),
        ({"detail": {"Bad Key": 1}}, "keys"),
        ({"detail": {"x": float("nan")}}, "finite"),
        ({"detail": {"x": ["list"]}}, "free text"),
        ({"detail": {f"k{i}": i for i in range(20)}}, "at most"),
        ({"source": "x" * 200}, "source"),
    ],
)
def test_personal_or_free_text_is_refused(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    log = AuditLog(tmp_path)
    with pytest.raises(AuditValueError, match=match):
        log.append(AuditEvent.VIEW, **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / LOG_NAME).exists()


def test_unknown_event_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secret_event"):
        AuditLog(tmp_path).append("secret_event")


def test_concurrent_threads_keep_one_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)

    def work(n: int) -> None:
        for i in range(10):
            log.append(AuditEvent.VIEW, user=f"u{n}", detail={"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify(tmp_path)
    assert result.ok, result.problem
    assert result.records == 40


def _append_many(state: str, name: str) -> None:
    log = AuditLog(Path(state))
    for i in range(15):
        log.append(AuditEvent.VIEW, user=name, detail={"i": i})


def test_concurrent_processes_keep_one_chain(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), f"p{n}")) for n in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    result = verify(tmp_path)
    assert result.ok, result.problem
    assert result.records == 45
