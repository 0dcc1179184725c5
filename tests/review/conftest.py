"""A small review store, shared by the review library, CLI and web-app tests.

``review_store`` gives a ``ReviewConfig`` over a fresh copy of a store built once per session: real
``.bleep`` recordings encrypted to a generated identity, real redacted transcripts, five users, one
admin-set tag, and one broken file that must be skipped. ``CALLS`` describes what is in it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from bleepline.review.catalog import TagStore
from bleepline.review.config import ReviewConfig
from bleepline.review.users import Role, UserStore
from bleepline.store import recording as recording_module
from bleepline.store.keys import Identity, load_identity, write_key_pair
from bleepline.store.recording import RecordingWriter
from bleepline.store.transcript import Redaction, Segment, Transcript, write_transcript
from bleepline.timeline import AudioChunk

RATE = 8000
#: (name, role, tags); each password is "correct horse <name>".
USERS: tuple[tuple[str, Role, frozenset[str]], ...] = (
    ("alice", Role.REVIEWER, frozenset()),
    ("sam", Role.SUPERVISOR, frozenset()),
    ("audrey", Role.AUDITOR, frozenset()),
    ("adam", Role.ADMIN, frozenset()),
    ("otto", Role.REVIEWER, frozenset({"outsourced"})),
)


def password_of(name: str) -> str:
    return f"correct horse {name}"


@dataclass(frozen=True)
class CallSpec:
    """One call in the test store. ``finished`` calls have a transcript; a running one does not."""

    call_id: str
    created_at: datetime
    duration: float
    redactions: tuple[Redaction, ...] = ()
    segments: tuple[Segment, ...] = ()
    header_tags: tuple[str, ...] = ()
    admin_tags: tuple[str, ...] = ()
    finished: bool = True
    masked: dict[str, float] = field(default_factory=dict)

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.header_tags) | frozenset(self.admin_tags)

    @property
    def entity_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.redactions:
            counts[r.entity] = counts.get(r.entity, 0) + 1
        return counts


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


CALLS: tuple[CallSpec, ...] = (
    CallSpec(
        "c-0001",
        _utc(2026, 1, 5, 9, 0, 0),
        12.0,
        redactions=(
            Redaction(3.0, 4.0, "PERSON", "asr", 0.85),
            Redaction(6.0, 9.0, "CREDIT_CARD", "cue", 0.95),
        ),
        segments=(
            Segment(0.0, 2.5, "Thanks for calling, who am I speaking to?"),
            Segment(2.6, 4.0, "It's [PERSON]."),
            Segment(4.2, 5.8, "And the card number?"),
            Segment(6.0, 9.0, "[CREDIT_CARD]."),
            Segment(9.5, 11.5, "Lovely, that's all done."),
        ),
        masked={"pii": 4.0, "dtmf": 0.0, "unverified": 0.0},
    ),
    CallSpec(
        "c-0002",
        _utc(2026, 3, 10, 14, 30, 0),
        30.0,
        redactions=(
            Redaction(5.0, 8.0, "PHONE_NUMBER", "cue", 0.8),
            Redaction(12.0, 14.0, "PIN", "dtmf", 1.0, digits=4),
        ),
        segments=(
            Segment(0.0, 4.5, "Can I take a contact number?"),
            Segment(5.0, 8.0, "[PHONE_NUMBER]."),
            Segment(10.0, 11.5, "Please key in your PIN."),
            Segment(12.0, 14.0, "[DTMF]"),
            Segment(20.0, 29.0, "Thank you, goodbye."),
        ),
        header_tags=("outsourced",),
        masked={"pii": 3.0, "dtmf": 2.0, "unverified": 0.0},
    ),
    CallSpec(
        "c-0003",
        _utc(2026, 6, 1, 8, 15, 0),
        5.0,
        segments=(Segment(0.5, 4.5, "Just checking my delivery date."),),
        header_tags=("outsourced", "sales"),
        masked={"pii": 0.0, "dtmf": 0.0, "unverified": 0.0},
    ),
    CallSpec(
        "c-0004",
        _utc(2026, 11, 20, 16, 45, 0),
        20.0,
        redactions=(
            Redaction(4.0, 7.0, "US_SSN", "asr", 0.9),
            Redaction(15.0, 17.5, "UNVERIFIED", "unverified", 0.0),
        ),
        segments=(
            Segment(0.0, 3.5, "What is your social security number?"),
            Segment(4.0, 7.0, "[US_SSN]."),
            Segment(15.0, 17.5, "[UNVERIFIED]"),
        ),
        admin_tags=("billing",),
        masked={"pii": 3.0, "dtmf": 0.0, "unverified": 2.5},
    ),
    CallSpec("c-0005", _utc(2026, 11, 29, 23, 50, 0), 3.0, finished=False),
)
CALL_IDS = tuple(c.call_id for c in CALLS)
#: A file in the store that is not a recording: the catalog must skip it and count it.
BROKEN_NAME = "broken.bleep"


def call_audio(spec: CallSpec) -> np.ndarray:
    """A quiet 300 Hz tone with a 1 kHz beep where each redaction is: easy to recognise when played."""
    t = np.arange(round(spec.duration * RATE)) / RATE
    signal = 0.2 * np.sin(2 * np.pi * 300 * t)
    for r in spec.redactions:
        inside = (t >= r.start) & (t < r.end)
        signal[inside] = 0.25 * np.sin(2 * np.pi * 1000 * t[inside])
    return np.round(signal * 32767).astype(np.int16)


@contextmanager
def _clock(at: datetime) -> Iterator[None]:
    """Make RecordingWriter stamp ``created_at`` with ``at`` (it reads the clock itself)."""

    class _Fixed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> _Fixed:
            return cls.fromtimestamp(at.timestamp(), UTC)

    with mock.patch.object(recording_module, "datetime", _Fixed):
        yield


def write_call(store: Path, spec: CallSpec, identities: Sequence[Identity]) -> Path:
    """Write one call as `bleepline redact` would: recording, and for a finished call its transcript."""
    metadata: dict[str, object] = {"source": "redact", "policy": {"version": "1", "mode": "beep"}}
    if spec.header_tags:
        metadata["tags"] = list(spec.header_tags)
    path = store / f"{spec.call_id}.bleep"
    with _clock(spec.created_at):
        writer = RecordingWriter(
            path,
            [i.recipient for i in identities],
            sample_rate=RATE,
            call_id=spec.call_id,
            metadata=metadata,
        )
    writer.write(AudioChunk(call_audio(spec), RATE, 0))
    if not spec.finished:
        writer.flush()  # a call still running: chunks so far, no final chunk, no transcript
        writer._abandon()
        return path
    writer.close()
    transcript = Transcript(
        call_id=spec.call_id,
        created_at=spec.created_at.isoformat().replace("+00:00", "Z"),
        duration=spec.duration,
        models={"asr": "whisper-tiny-en int8", "pii": "test"},
        policy={"version": "1", "delay_s": 3.0, "mode": "beep"},
        segments=spec.segments,
        redactions=spec.redactions,
        stats={"masked_seconds": dict(spec.masked), "late_masks": 0},
    )
    write_transcript(transcript, store / f"{spec.call_id}.transcript.json", store / f"{spec.call_id}.vtt")
    return path


def write_config_file(config: ReviewConfig, path: Path) -> Path:
    """A review.toml saying what ``config`` says (no retention or webhook)."""
    lines = [f'store = "{config.store}"', f'state = "{config.state}"']
    if config.identity is not None:
        lines.append(f'identity = "{config.identity}"')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def _review_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("review-template")
    identity = Identity.generate()
    write_key_pair(root / "keys", identity)
    store = root / "store"
    store.mkdir()
    for spec in CALLS:
        write_call(store, spec, [identity])
    (store / BROKEN_NAME).write_bytes(b"not a recording at all")
    state = root / "state"
    users = UserStore(state / "users.db")
    for name, role, tags in USERS:
        users.add(name, password_of(name), role, tags)
    tag_store = TagStore.in_state(state)
    for spec in CALLS:
        if spec.admin_tags:
            tag_store.set(spec.call_id, spec.admin_tags)
    return root


@pytest.fixture
def review_store(_review_template: Path, tmp_path: Path) -> ReviewConfig:
    """A fresh copy of the test store: ``store``, ``state`` (users already made) and an identity that
    decrypts every recording. A ``review.toml`` saying the same lies beside them (``review_config_file``)."""
    root = tmp_path / "review"
    shutil.copytree(_review_template, root)
    config = ReviewConfig(store=root / "store", state=root / "state", identity=root / "keys" / "identity.key")
    write_config_file(config, root / "review.toml")
    return config


@pytest.fixture
def review_config_file(review_store: ReviewConfig) -> Path:
    return review_store.state.parent / "review.toml"


@pytest.fixture
def review_identity(review_store: ReviewConfig) -> Identity:
    assert review_store.identity is not None
    return load_identity(review_store.identity)
