"""Verdict files: what a second listen found still audible in a redacted recording, kept beside it.

``bleepline verify --write-verdict`` writes ``<call id>.verify.json`` next to ``<call id>.bleep``; the
review app reads it to show each call as clean, N audible, or not verified. A verdict holds times, kinds
(digit, entity, dtmf), entity types and counts, never what was said: it is as safe to keep as the header.

The finding type lives here, at the bottom, so the listening side (``bleepline.verify``) and the review
side can share it without knowing of each other.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bleepline.errors import BleeplineError
from bleepline.store.errors import StoreError

VERDICT_SUFFIX = ".verify.json"
VERDICT_FORMAT = "bleepline-verdict"
VERDICT_VERSION = 1
#: A verdict is a few findings, not a transcript: anything bigger is not one.
_MAX_VERDICT_BYTES = 4 << 20
_ENTITY = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_LABEL = re.compile(r"[\x20-\x7e]{1,200}")


class FindingKind(enum.StrEnum):
    """What kind of thing was still audible."""

    DIGIT = "digit"  # a word that is or holds a digit: "5", "five", "oh" between digits, "4,111", "gb82"
    ENTITY = "entity"  # a span the spoken PII detector found in the words heard
    DTMF = "dtmf"  # a keypad tone


@dataclass(frozen=True)
class AudibleFinding:
    """Something still audible in released audio: where (seconds), what kind, which entity type.

    Never the words themselves: a finding may be a leak, and a verdict must not repeat it.
    """

    start: float
    end: float
    kind: FindingKind
    entity: str | None = None  # the entity type, for kind ENTITY only
    channel: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end < self.start:
            raise ValueError(f"a finding needs finite times with end >= start, got {self.start}..{self.end}")
        if not isinstance(self.kind, FindingKind):
            object.__setattr__(self, "kind", FindingKind(self.kind))
        if (self.entity is None) != (self.kind is not FindingKind.ENTITY):
            raise ValueError("an entity finding names its entity type; other kinds name none")
        if self.entity is not None and not _ENTITY.fullmatch(self.entity):
            raise ValueError("a finding's entity must be an entity type such as PHONE_NUMBER")
        if self.channel < 0:
            raise ValueError(f"a finding's channel must be >= 0, got {self.channel}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "kind": str(self.kind),
            "entity": self.entity,
            "channel": self.channel,
        }


def count_by_kind(findings: Sequence[AudibleFinding]) -> dict[str, int]:
    """Findings per kind, every kind present (0 where none)."""
    counts = dict.fromkeys((str(kind) for kind in FindingKind), 0)
    for finding in findings:
        counts[str(finding.kind)] += 1
    return counts


def count_by_entity(findings: Sequence[AudibleFinding]) -> dict[str, int]:
    """Entity findings per entity type."""
    counts: dict[str, int] = {}
    for finding in findings:
        if finding.entity is not None:
            counts[finding.entity] = counts.get(finding.entity, 0) + 1
    return dict(sorted(counts.items()))


class AudibleSummary:
    """What a set of ``findings`` adds up to: shared by a verdict just made and one read back."""

    findings: tuple[AudibleFinding, ...]

    @property
    def audible(self) -> int:
        return len(self.findings)

    @property
    def clean(self) -> bool:
        return not self.findings

    @property
    def counts(self) -> dict[str, int]:
        """Findings per kind (digit, entity, dtmf), 0 for kinds with none."""
        return count_by_kind(self.findings)

    @property
    def entity_counts(self) -> dict[str, int]:
        return count_by_entity(self.findings)


class VerdictError(BleeplineError):
    """A verdict file that cannot be read as one."""


@dataclass(frozen=True)
class VerdictRecord(AudibleSummary):
    """One verdict file: which recording (call id, file name, size and SHA-256 of its sealed bytes), when
    and with which models it was verified, how long it was, and what was found audible."""

    call_id: str
    recording: str  # the recording's file name, beside the verdict
    recording_bytes: int
    recording_sha256: str
    verified_at: str  # ISO 8601, UTC
    models: Mapping[str, str]
    duration: float
    channels: int
    findings: tuple[AudibleFinding, ...]
    redacted: bool = True  # what the recording's header says
    masked_seconds: float = 0.0  # of the audio that was the mask itself (beep or digital silence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": VERDICT_FORMAT,
            "version": VERDICT_VERSION,
            "call_id": self.call_id,
            "recording": self.recording,
            "recording_bytes": self.recording_bytes,
            "recording_sha256": self.recording_sha256,
            "redacted": self.redacted,
            "verified_at": self.verified_at,
            "models": dict(self.models),
            "duration": round(self.duration, 3),
            "channels": self.channels,
            "masked_seconds": round(self.masked_seconds, 3),
            "clean": self.clean,
            "audible": self.audible,
            "counts": self.counts,
            "entities": self.entity_counts,
            "findings": [finding.to_dict() for finding in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, data: bytes) -> VerdictRecord:
        """Parse and check a verdict file's bytes; ``VerdictError`` (no content in it) if they are not one."""
        if len(data) > _MAX_VERDICT_BYTES:
            raise VerdictError("verdict file is too large")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise VerdictError("verdict file is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != VERDICT_FORMAT:
            raise VerdictError("not a bleepline verdict")
        if doc.get("version") != VERDICT_VERSION:
            raise VerdictError(f"verdict version {doc.get('version')!r} is unknown")
        try:
            findings = tuple(_finding(item) for item in _list(doc, "findings"))
            models = doc.get("models")
            if not isinstance(models, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and _LABEL.fullmatch(v) for k, v in models.items()
            ):
                raise ValueError("models")
            return cls(
                call_id=_text(doc, "call_id"),
                recording=_text(doc, "recording"),
                recording_bytes=_whole(doc, "recording_bytes"),
                recording_sha256=_text(doc, "recording_sha256"),
                verified_at=_text(doc, "verified_at"),
                models=MappingProxyType(dict(models)),
                duration=_seconds(doc.get("duration")),
                channels=max(1, _whole(doc, "channels")),
                findings=findings,
                redacted=doc.get("redacted") is not False,
                masked_seconds=_seconds(doc.get("masked_seconds", 0.0)),
            )
        except (ValueError, TypeError):
            raise VerdictError("verdict file has a missing or malformed field") from None


def verdict_path(recording: Path) -> Path:
    """Where the verdict of ``recording`` goes: ``<stem>.verify.json`` beside it."""
    return recording.with_name(recording.stem + VERDICT_SUFFIX)


def write_verdict(record: VerdictRecord, path: Path) -> None:
    """Write ``record`` to ``path`` whole or not at all (a temporary file beside it, renamed into place)."""
    if path.is_dir():
        raise StoreError(path, "is a directory; give a file path")
    data = record.to_json().encode("utf-8")
    staged: str | None = None
    try:
        handle, staged = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(staged, 0o600)  # as private as the transcript beside it, though it holds no words
        os.replace(staged, path)
        staged = None
    except OSError as exc:
        raise StoreError(path, f"cannot be written: {(exc.strerror or type(exc).__name__).lower()}") from None
    finally:
        if staged is not None:
            with contextlib.suppress(OSError):
                os.unlink(staged)


def read_verdict(path: Path) -> VerdictRecord:
    """The verdict at ``path``; ``VerdictError`` if it cannot be read or is not one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_VERDICT_BYTES + 1)
    except OSError as exc:
        raise VerdictError(f"verdict file cannot be read: {exc.strerror}") from None
    return VerdictRecord.from_json(data)


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise ValueError(key)
    return value


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise ValueError(key)
    return value


def _whole(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(key)
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError("seconds")
    return float(value)


def _finding(item: Any) -> AudibleFinding:
    if not isinstance(item, dict):
        raise ValueError("finding")
    entity = item.get("entity")
    if entity is not None and not isinstance(entity, str):
        raise ValueError("entity")
    channel = item.get("channel", 0)
    if not isinstance(channel, int) or isinstance(channel, bool):
        raise ValueError("channel")
    return AudibleFinding(
        _seconds(item.get("start")),
        _seconds(item.get("end")),
        FindingKind(str(item.get("kind"))),
        entity,
        channel,
    )
