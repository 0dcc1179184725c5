"""The audit trail: an append-only, hash-chained record of who did what to which call, and when.

``state/audit.log`` holds one JSON object per line. Each record carries ``prev``, the previous record's
MAC (64 zeros for the first), and ``mac``, an HMAC-SHA256 under a secret key (``state/audit.key``,
32 random bytes, mode 0600) over the record's canonical JSON without ``mac``. So any edit to a record,
a deleted or inserted record, and any reordering breaks the chain, and without the key nobody can
rebuild it. A log cut short at the end would still chain, so ``state/audit.head`` keeps the last seq
and MAC, itself MACed, replaced atomically after each append; verification demands that the log reach
it. (The log is appended first and the head replaced second, so a crash between the two leaves the log
one record ahead of the head: verification accepts exactly that, since the extra record must still
carry a valid MAC.) Each line must be byte-for-byte the canonical serialisation, so no edit can hide
in whitespace, key order or escapes.

What this cannot catch alone: someone who can write the state directory, kept an old copy of
``audit.head``, and cuts the log back to exactly that point (a rollback to an earlier, genuine state).
Against that, ship the latest seq and MAC somewhere else now and then (``bleepline audit show --last 1``
into a log collector): a later verify against that anchor shows the rollback.

Appending holds an exclusive ``flock`` on ``state/audit.lock``, so threads and processes (the web app
and a CLI) never interleave. Before appending, the log's last record must match the head: an append
must not paper over a truncated trail. When the trail cannot be appended the caller gets
``AuditError`` and must not go on with the action (fail closed: no record, no access).

No personal data goes in: ``user`` and ``role`` are account names and roles, ``call_id`` a call id,
``source`` a network address or ``cli``, and ``detail`` a handful of short tokens and numbers (keys
and string values from a narrow alphabet with no spaces), so callers cannot pass free text such as a
transcript line, a search string or an error body.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bleepline.errors import BleeplineError

LOG_NAME = "audit.log"
KEY_NAME = "audit.key"
HEAD_NAME = "audit.head"
LOCK_NAME = "audit.lock"
KEY_SIZE = 32
GENESIS = "0" * 64
RECORD_FIELDS = ("seq", "at", "event", "user", "role", "call_id", "source", "detail", "prev", "mac")

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,63}")
_DETAIL_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_DETAIL_ITEMS = 12
_HEX_MAC = re.compile(r"[0-9a-f]{64}")


class AuditEvent(StrEnum):
    LOGIN_OK = "login_ok"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    VIEW = "view"
    PLAY = "play"
    EXPORT = "export"
    DECRYPT = "decrypt"
    DELETE = "delete"
    RETENTION_SHRED = "retention_shred"
    POLICY_CHANGE = "policy_change"
    USER_CHANGE = "user_change"
    AUDIT_VIEW = "audit_view"
    WEBHOOK_SENT = "webhook_sent"
    WEBHOOK_FAILED = "webhook_failed"


class AuditError(BleeplineError):
    """The trail cannot be appended (unreadable, damaged, or its head disagrees): the action must not
    proceed."""


class AuditValueError(AuditError):
    """A caller passed something that does not belong in the trail (free text, an over-long value)."""


DetailValue = str | int | float | bool


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    event: str
    user: str | None
    role: str | None
    call_id: str | None
    source: str | None
    detail: Mapping[str, DetailValue]
    prev: str
    mac: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    problem: str | None = None


class AuditLog:
    """The trail in ``state`` (created on first use)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.log_path = state / LOG_NAME
        self.head_path = state / HEAD_NAME

    def append(
        self,
        event: AuditEvent | str,
        *,
        user: str | None = None,
        role: str | None = None,
        call_id: str | None = None,
        source: str | None = None,
        detail: Mapping[str, DetailValue] | None = None,
    ) -> AuditRecord:
        """Add one record and return it; raises ``AuditError`` if it could not be durably written."""
        fields: dict[str, Any] = {
            "event": AuditEvent(event).value,
            "user": _token_or_none(user, "user"),
            "role": _token_or_none(role, "role"),
            "call_id": _token_or_none(call_id, "call_id"),
            "source": _token_or_none(source, "source"),
            "detail": _check_detail(detail or {}),
        }
        try:
            self.state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditError(
                f"{self.state}: cannot create the audit state directory: {exc.strerror}"
            ) from None
        with self._locked():
            key = load_or_create_key(self.state)
            last_seq, last_mac = self._tail(key)
            fields["seq"] = last_seq + 1
            fields["at"] = _now()
            fields["prev"] = last_mac
            fields["mac"] = _mac(key, fields)
            line = canonical(fields) + b"\n"
            try:
                fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditError(
                    f"{self.log_path}: cannot append to the audit trail: {exc.strerror}"
                ) from None
            _write_head(self.head_path, key, fields["seq"], fields["mac"])
        return _record(fields)

    def records(self) -> list[AuditRecord]:
        """Every record as stored (not verified: use ``verify`` for that). Unparseable lines are skipped."""
        found = []
        for _number, raw in _lines(self.log_path):
            try:
                found.append(_record(_parse(raw)))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def _tail(self, key: bytes) -> tuple[int, str]:
        """The last record's seq and MAC, checked against the head."""
        last = _last_line(self.log_path)
        head = _read_head(self.head_path, key)
        if last is None:
            if head not in (None, (0, GENESIS)):
                raise AuditError(f"{self.log_path}: audit log is missing or empty but its head is not")
            return 0, GENESIS
        try:
            fields = _parse(last)
        except (ValueError, KeyError, TypeError):
            raise AuditError(
                f"{self.log_path}: the last audit record is damaged; run `audit verify`"
            ) from None
        seq, mac = fields["seq"], fields["mac"]
        if head is None:
            raise AuditError(f"{self.head_path}: audit head is missing or damaged; run `audit verify`")
        if not _reaches(head, (seq, mac), fields["prev"]):
            raise AuditError(f"{self.log_path}: audit log does not reach its head; run `audit verify`")
        if not hmac.compare_digest(mac, _mac(key, fields)):
            raise AuditError(f"{self.log_path}: the last audit record fails its MAC; run `audit verify`")
        return seq, mac

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.state / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"{self.state}: cannot lock the audit trail: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def verify(state: Path) -> VerifyResult:
    """Check the whole trail: every line canonical, every MAC, the chain, and that the log reaches the
    head. The problem names the first bad record (by line number and seq)."""
    log_path, head_path = state / LOG_NAME, state / HEAD_NAME
    if not log_path.exists() and not head_path.exists():
        return VerifyResult(True, 0)
    try:
        key = read_key(state)
    except AuditError as exc:
        return VerifyResult(False, 0, str(exc))
    prev, count, expected_seq = GENESIS, 0, 1
    last: tuple[int, str] | None = None
    last_prev = GENESIS
    try:
        for number, raw in _lines(log_path):
            where = f"line {number}"
            if not raw.endswith(b"\n"):
                return VerifyResult(False, count, f"{where}: cut short (no end of line)")
            try:
                fields = _parse(raw[:-1])
            except (ValueError, KeyError, TypeError):
                return VerifyResult(False, count, f"{where}: not a well-formed audit record")
            where = f"line {number} (seq {fields['seq']})"
            if canonical(fields) != raw[:-1]:
                return VerifyResult(False, count, f"{where}: not in canonical form: edited")
            if not hmac.compare_digest(fields["mac"], _mac(key, fields)):
                return VerifyResult(False, count, f"{where}: MAC does not match: record edited")
            if fields["seq"] != expected_seq:
                return VerifyResult(
                    False, count, f"{where}: expected seq {expected_seq}: records deleted or reordered"
                )
            if fields["prev"] != prev:
                return VerifyResult(False, count, f"{where}: does not chain to the record before it")
            prev, expected_seq, count = fields["mac"], expected_seq + 1, count + 1
            last, last_prev = (fields["seq"], fields["mac"]), fields["prev"]
    except OSError as exc:
        return VerifyResult(False, count, f"{log_path}: cannot be read: {exc.strerror}")
    try:
        head = _read_head(head_path, key, strict=True)
    except AuditError as exc:
        return VerifyResult(False, count, str(exc))
    if head is None:
        if last is None:
            return VerifyResult(True, 0)
        return VerifyResult(False, count, f"{head_path}: missing, but the log has records")
    if last is None:
        if head == (0, GENESIS):
            return VerifyResult(True, 0)
        return VerifyResult(False, 0, f"log is empty but the head says {head[0]} records: log deleted")
    if last[0] < head[0]:
        return VerifyResult(
            False, count, f"log ends at seq {last[0]} but the head says {head[0]}: records deleted at the end"
        )
    if _reaches(head, last, last_prev):
        return VerifyResult(True, count)
    return VerifyResult(False, count, f"head (seq {head[0]}) does not match the log: log or head replaced")


def _reaches(head: tuple[int, str] | None, last: tuple[int, str], last_prev: str) -> bool:
    """Whether a log ending in ``last`` (whose ``prev`` is ``last_prev``) agrees with ``head``: the
    same record, or one record beyond it (a crash between appending and replacing the head)."""
    if head is None:
        return False
    return last == head or (last[0] == head[0] + 1 and hmac.compare_digest(last_prev, head[1]))


def load_or_create_key(state: Path) -> bytes:
    """The trail's key, made (32 random bytes, mode 0600) the first time."""
    path = state / KEY_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key(state)
    except OSError as exc:
        raise AuditError(f"{path}: cannot create the audit key: {exc.strerror}") from None
    try:
        _write_all(fd, secrets.token_bytes(KEY_SIZE))
        os.fsync(fd)
    finally:
        os.close(fd)
    key = read_key(state)
    # A head from the start, so that deleting the whole log later is seen as deletion.
    if not (state / HEAD_NAME).exists():
        _write_head(state / HEAD_NAME, key, 0, GENESIS)
    return key


def read_key(state: Path) -> bytes:
    path = state / KEY_NAME
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"{path}: the audit key is missing, so the trail cannot be checked") from None
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the audit key: {exc.strerror}") from None
    if len(key) != KEY_SIZE:
        raise AuditError(f"{path}: the audit key is damaged (not {KEY_SIZE} bytes)")
    return key


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The one serialisation a record may have: sorted keys, no spaces, ASCII only."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def _mac(key: bytes, fields: Mapping[str, Any]) -> str:
    body = {k: v for k, v in fields.items() if k != "mac"}
    return hmac.new(key, b"bleepline audit v1\n" + canonical(body), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, seq: int, mac: str) -> str:
    return hmac.new(key, f"bleepline audit head v1\n{seq}\n{mac}".encode(), hashlib.sha256).hexdigest()


def _write_head(path: Path, key: bytes, seq: int, mac: str) -> None:
    data = canonical({"seq": seq, "mac": mac, "head_mac": _head_mac(key, seq, mac)}) + b"\n"
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".audit.head.")
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise AuditError(f"{path}: cannot update the audit head: {exc.strerror}") from None


def _read_head(path: Path, key: bytes, *, strict: bool = False) -> tuple[int, str] | None:
    """(seq, mac) from the head; None if there is none. A damaged head is None, or with ``strict`` an
    ``AuditError`` saying so."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the audit head: {exc.strerror}") from None
    try:
        doc = json.loads(raw)
        seq, mac, head_mac = doc["seq"], doc["mac"], doc["head_mac"]
        ok = (
            set(doc) == {"seq", "mac", "head_mac"}
            and canonical(doc) + b"\n" == raw
            and isinstance(seq, int)
            and isinstance(mac, str)
            and isinstance(head_mac, str)
            and hmac.compare_digest(head_mac, _head_mac(key, seq, mac))
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        if strict:
            raise AuditError(f"{path}: the audit head is damaged or was edited")
        return None
    return seq, mac


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return
    with handle:
        yield from enumerate(handle, start=1)


def _last_line(path: Path) -> bytes | None:
    """The log's last line without its newline, reading backwards from the end (the log only grows)."""
    try:
        with open(path, "rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            if end == 0:
                return None
            block, position, data = 4096, end, b""
            while position > 0:
                step = min(block, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
                if data.count(b"\n") >= 2 or position == 0:
                    break
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the audit trail: {exc.strerror}") from None
    if not data.endswith(b"\n"):
        raise AuditError(f"{path}: the audit log ends in a partial record; run `audit verify`")
    return data[:-1].rsplit(b"\n", 1)[-1]


def _parse(raw: bytes) -> dict[str, Any]:
    fields = json.loads(raw)
    if not isinstance(fields, dict) or sorted(fields) != sorted(RECORD_FIELDS):
        raise ValueError("not a record")
    if not isinstance(fields["seq"], int) or isinstance(fields["seq"], bool):
        raise TypeError("seq")
    for name in ("mac", "prev"):
        if not isinstance(fields[name], str) or not _HEX_MAC.fullmatch(fields[name]):
            raise TypeError(name)
    if not isinstance(fields["detail"], dict) or not isinstance(fields["at"], str):
        raise TypeError("detail")
    return fields


def _record(fields: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord(
        seq=fields["seq"],
        at=datetime.fromisoformat(fields["at"].replace("Z", "+00:00")),
        event=fields["event"],
        user=fields["user"],
        role=fields["role"],
        call_id=fields["call_id"],
        source=fields["source"],
        detail=MappingProxyType(dict(fields["detail"])),
        prev=fields["prev"],
        mac=fields["mac"],
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _token_or_none(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise AuditValueError(f"audit {name} must be a short token (letters, digits, . _ : @ / + -)")
    return value


def _check_detail(detail: Mapping[str, DetailValue]) -> dict[str, DetailValue]:
    if len(detail) > _MAX_DETAIL_ITEMS:
        raise AuditValueError(f"audit detail holds at most {_MAX_DETAIL_ITEMS} items")
    checked: dict[str, DetailValue] = {}
    for key, value in detail.items():
        if not isinstance(key, str) or not _DETAIL_KEY.fullmatch(key):
            raise AuditValueError("audit detail keys are short lower-case names")
        if isinstance(value, bool | int):
            checked[key] = value
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise AuditValueError(f"audit detail {key} is not a finite number")
            checked[key] = value
        elif isinstance(value, str) and _TOKEN.fullmatch(value):
            checked[key] = value
        else:
            raise AuditValueError(
                f"audit detail {key} must be a number or a short token with no spaces (no free text)"
            )
    return checked


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
