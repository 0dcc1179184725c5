"""`bleepline verify`: proof of redaction on real recordings, with the real models.

The model tests assert what holds on any machine: a digit heard inside the phone number's truth span
of an unredacted call, nothing heard in a masked one, never exact words. The listening logic itself
(``bleepline.verify``) is also tested with a scripted recognizer, so its rules are pinned exactly.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bleepline.audio.files import read_audio_chunks
from bleepline.audio.tones import BeepStyle, tone
from bleepline.cli import main
from bleepline.commands.recordings import seal_file
from bleepline.redact.delayline import DelayLine
from bleepline.redact.policy import MaskMode, MaskReason, RedactionPolicy
from bleepline.review.catalog import Catalog
from bleepline.store.keys import Identity, write_key_pair
from bleepline.store.recording import RecordingWriter
from bleepline.store.verdict import FindingKind, read_verdict
from bleepline.timeline import AudioChunk
from bleepline.verify import VerifyOptions, mask_stretches, verification_detector, verify_audio

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
PHONE = "phone_awb_8k"
KEYPAD = "keypad_dtmf_8k"
RATE = 8000


def truth(call: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / f"{call}.json").read_text())
    return result


def audio_of(call: str) -> np.ndarray:
    return np.concatenate([c.samples for c in read_audio_chunks(FIXTURES / f"{call}.wav")])


def overlaps(finding: dict[str, Any], start: float, end: float) -> bool:
    return bool(finding["start"] < end and start < finding["end"])


def masked(samples: np.ndarray, spans: Sequence[tuple[float, float]], mode: MaskMode) -> np.ndarray:
    """``samples`` through a real delay line with ``spans`` marked as PII: what the relay releases."""
    policy = RedactionPolicy(mode=mode)
    line = DelayLine(RATE, policy)
    out: list[AudioChunk] = []
    for start in range(0, len(samples), 160):
        chunk = AudioChunk(samples[start : start + 160], RATE, start)
        line.push(chunk)
        for a, b in spans:
            line.mask(a, b, MaskReason.PII, "PHONE_NUMBER")
        line.clear_until(chunk.end / RATE)
        out += line.release_until(max(0.0, chunk.end / RATE - 1.0))
    out += line.drain()
    released = np.concatenate([c.samples for c in out])
    assert len(released) == len(samples)
    return released


def write_recording(
    path: Path, samples: np.ndarray, identity: Identity, call_id: str, policy: RedactionPolicy
) -> Path:
    writer = RecordingWriter(
        path,
        [identity.recipient],
        sample_rate=RATE,
        call_id=call_id,
        metadata={"source": "redact", "policy": policy.describe()},
    )
    writer.write(AudioChunk(samples, RATE, 0))
    writer.close()
    return path


@dataclass(frozen=True)
class Recordings:
    root: Path
    private: Path
    other_private: Path
    leaking: Path  # the phone call sealed as given: every digit audible
    keypad: Path  # the keypad call sealed as given: every key press audible
    redacted: Path  # the phone call through `bleepline redact`
    beeped: Path  # the phone call, all of it masked with the beep
    silenced: Path  # the same, masked with silence
    numbers_masked: Path  # the phone call with its two number pieces beeped, the rest left as spoken


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Recordings:
    root = tmp_path_factory.mktemp("verify")
    identity = Identity.generate()
    public, private = write_key_pair(root / "keys", identity)
    _, other_private = write_key_pair(root / "other", Identity.generate())
    store = root / "store"
    store.mkdir()
    leaking = seal_file(FIXTURES / f"{PHONE}.wav", store / "leaking.bleep", [public], call_id="leaking").path
    keypad = seal_file(FIXTURES / f"{KEYPAD}.wav", store / "keypad.bleep", [public], call_id="keypad").path
    assert (
        main(
            ["redact", str(FIXTURES / f"{PHONE}.wav"), "--recipient", str(public), "--out", str(root / "out")]
        )
        == 0
    )
    phone = audio_of(PHONE)
    whole = [(0.0, len(phone) / RATE)]
    beep_policy, silence_policy = RedactionPolicy(), RedactionPolicy(mode=MaskMode.SILENCE)
    beeped = write_recording(
        store / "beeped.bleep", masked(phone, whole, MaskMode.BEEP), identity, "beeped", beep_policy
    )
    silenced = write_recording(
        store / "silenced.bleep", masked(phone, whole, MaskMode.SILENCE), identity, "silenced", silence_policy
    )
    numbers = [
        (w["start"], w["end"]) for w in truth(PHONE)["words"] if w["text"] in ("any time after five.",)
    ]
    numbers += [(p["start"], p["end"]) for p in truth(PHONE)["pii"]]
    partly = masked(phone, numbers, MaskMode.BEEP)
    numbers_masked = write_recording(store / "numbers.bleep", partly, identity, "numbers", beep_policy)
    return Recordings(
        root,
        private,
        other_private,
        leaking,
        keypad,
        root / "out" / f"{PHONE}.bleep",
        beeped,
        silenced,
        numbers_masked,
    )


def verify_json(
    recordings: Recordings, *paths: Path, extra: Sequence[str] = ()
) -> tuple[int, dict[str, Any]]:
    code, out, err = run_verify(recordings.private, *paths, "--json", *extra)
    assert err == ""
    document: dict[str, Any] = json.loads(out)
    return code, document


def run_verify(identity: Path, *args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["verify", *(str(a) for a in args), "--identity", str(identity)])
    return code, out.getvalue(), err.getvalue()


# --- the real models -------------------------------------------------------------------------------------


def test_a_leaking_recording_exits_1_with_digits_inside_the_phone_number(recordings: Recordings) -> None:
    code, document = verify_json(recordings, recordings.leaking)
    assert code == 1
    (report,) = document["recordings"]
    assert report["call_id"] == "leaking"
    assert report["redacted"] is False
    assert not report["clean"]
    (phone,) = truth(PHONE)["pii"]
    digits = [f for f in report["findings"] if f["kind"] == "digit"]
    assert any(overlaps(f, phone["start"], phone["end"]) for f in digits)
    # Every digit heard in the phone number lies on a digit the caller said (word edges are loose).
    spoken = [(d["start"] - 0.5, d["end"] + 0.5) for d in phone["digits"]]
    for finding in digits:
        if overlaps(finding, phone["start"], phone["end"]):
            assert any(overlaps(finding, a, b) for a, b in spoken)
    assert report["counts"]["digit"] == len(digits) >= 1
    assert report["audible"] == len(report["findings"])
    for finding in report["findings"]:
        assert set(finding) == {"start", "end", "kind", "entity", "channel"}
        assert 0 <= finding["start"] <= finding["end"] <= report["duration"] + 0.01


def test_the_text_report_lists_each_finding_with_its_times(recordings: Recordings) -> None:
    code, out, err = run_verify(recordings.private, recordings.leaking)
    assert code == 1
    assert err == ""
    head, *lines = out.strip().splitlines()
    assert "audible" in head
    assert "NOT redacted" in head
    assert any(line.split()[-1] == "digit" for line in lines)
    for line in lines:
        start, dash, end, unit = line.split()[:4]
        assert dash == "-"
        assert unit == "s"
        assert float(start) <= float(end)


def test_key_presses_are_audible_findings(recordings: Recordings) -> None:
    code, document = verify_json(recordings, recordings.keypad)
    assert code == 1
    (report,) = document["recordings"]
    presses = [f for f in report["findings"] if f["kind"] == "dtmf"]
    pads = [(p["start"], p["end"]) for p in truth(KEYPAD)["pii"] if p["entity"] == "DTMF"]
    assert presses
    assert all(any(overlaps(f, a - 0.05, b + 0.05) for a, b in pads) for f in presses)


def test_nothing_is_audible_in_the_phone_number_once_redacted(recordings: Recordings) -> None:
    code, document = verify_json(recordings, recordings.redacted)
    (report,) = document["recordings"]
    assert report["redacted"] is True
    (phone,) = truth(PHONE)["pii"]
    assert not [f for f in report["findings"] if overlaps(f, phone["start"], phone["end"])]
    assert code == (0 if report["clean"] else 1)


@pytest.mark.parametrize("which", ["beeped", "silenced", "numbers_masked"])
def test_a_masked_recording_verifies_clean(recordings: Recordings, which: str) -> None:
    """The mask itself (the policy's beep or silence, with its fades) never counts as audible, and
    speech left audible around masked numbers holds no digit."""
    code, document = verify_json(recordings, getattr(recordings, which))
    (report,) = document["recordings"]
    assert report["findings"] == []
    assert report["clean"] is True
    assert code == 0
    assert report["masked_seconds"] > 0


def test_write_verdict_leaves_a_text_free_verdict_the_catalog_reads(
    recordings: Recordings, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    copy = store / f"{PHONE}.bleep"
    copy.write_bytes(recordings.redacted.read_bytes())
    (store / f"{PHONE}.transcript.json").write_bytes(
        recordings.redacted.with_suffix(".transcript.json").read_bytes()
    )
    leak = store / "leaking.bleep"
    leak.write_bytes(recordings.leaking.read_bytes())
    code, out, _ = run_verify(recordings.private, copy, leak, "--write-verdict")
    assert code == 1
    assert f"verdict written to {store / 'leaking.verify.json'}" in out
    verdict = read_verdict(store / "leaking.verify.json")
    assert verdict.call_id == "leaking"
    assert verdict.recording == "leaking.bleep"
    assert verdict.recording_bytes == leak.stat().st_size
    assert not verdict.clean
    assert verdict.counts["digit"] >= 1
    assert verdict.models["asr"].startswith("whisper-tiny-en")
    assert verdict.verified_at.endswith("Z")
    text = (store / "leaking.verify.json").read_text()
    for said in ("contact", "call me", "zero", "two", "2025550147", "0147", "555", "any time"):
        assert said not in text.lower()
    entries = {e.call_id: e for e in Catalog(store).calls()}
    assert entries["leaking"].verdict == verdict
    assert entries[PHONE].verdict == read_verdict(store / f"{PHONE}.verify.json")


# --- failures: one line, exit 2 -----------------------------------------------------------------------------


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bleepline: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_the_wrong_key_is_one_line_and_exit_2(recordings: Recordings) -> None:
    code, out, err = run_verify(recordings.other_private, recordings.leaking)
    assert_one_line_error(code, out, err, "leaking.bleep", "not encrypted to this identity")
    assert out == ""


def test_a_truncated_recording_is_one_line_and_exit_2(recordings: Recordings, tmp_path: Path) -> None:
    cut = tmp_path / "cut.bleep"
    data = recordings.leaking.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    code, out, err = run_verify(recordings.private, cut)
    assert_one_line_error(code, out, err, "cut.bleep", "truncated", "not verified")


def test_a_modified_byte_is_one_line_and_exit_2(recordings: Recordings, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.bleep"
    data = bytearray(recordings.leaking.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    code, out, err = run_verify(recordings.private, damaged, "--write-verdict")
    assert_one_line_error(code, out, err, "damaged.bleep", "failed authentication")
    assert not (tmp_path / "damaged.verify.json").exists()


def test_an_error_in_one_recording_still_reports_the_others(recordings: Recordings, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bleep"
    junk.write_bytes(b"not a recording")
    code, out, err = run_verify(recordings.private, junk, recordings.beeped, "--json")
    assert_one_line_error(code, out, err, "junk.bleep", "is not a bleepline recording")
    first, second = json.loads(out)["recordings"]
    assert first["error"].endswith("is not a bleepline recording")
    assert second["clean"] is True


def test_a_missing_identity_is_one_line_and_exit_2(recordings: Recordings, tmp_path: Path) -> None:
    code, out, err = run_verify(tmp_path / "nope.key", recordings.leaking)
    assert_one_line_error(code, out, err, "nope.key")


# --- nothing decrypted on disk -----------------------------------------------------------------------------


class WriteSpy:
    """Records every file opened for writing through ``open`` and ``os.open``."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._open = builtins.open
        self._os_open = os.open

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | bytes | os.PathLike) and any(c in mode for c in "wax+"):
            self.paths.append(os.fsdecode(file))
        return self._open(file, mode, *args, **kwargs)

    def os_open(self, path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND):
            self.paths.append(os.fsdecode(path))
        return self._os_open(path, flags, *args, **kwargs)


def test_verifying_writes_no_decrypted_audio_anywhere(
    recordings: Recordings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(scratch)
    store = tmp_path / "store"
    store.mkdir()
    sealed = store / "leaking.bleep"
    sealed.write_bytes(recordings.leaking.read_bytes())
    # The decrypted audio is the fixture itself: 20 ms needles of its speech must appear in no file.
    original = audio_of(PHONE)
    needles = [
        original[i : i + 160].tobytes()
        for i in range(0, len(original) - 160, 800)
        if np.any(original[i : i + 160])
    ]
    assert not any(n in sealed.read_bytes() for n in needles)
    spy = WriteSpy()
    monkeypatch.setattr(builtins, "open", spy.open)
    monkeypatch.setattr(os, "open", spy.os_open)
    code, _, err = run_verify(recordings.private, sealed, "--write-verdict")
    monkeypatch.undo()
    assert code == 1, err
    verdict = store / "leaking.verify.json"
    assert spy.paths  # the spy saw the verdict being staged: it does watch the writes
    assert all(
        Path(p).parent == store and Path(p).name.startswith((".leaking.verify.json.", verdict.name))
        for p in spy.paths
    ), spy.paths
    assert verdict.exists()
    written = [p for root in (scratch, store) for p in root.rglob("*") if p.is_file()]
    assert {p.name for p in written} == {"leaking.bleep", "leaking.verify.json"}
    for path in written:
        data = path.read_bytes()
        assert not any(n in data for n in needles), path


# --- the listening rules, with a scripted recognizer --------------------------------------------------------


@dataclass(frozen=True)
class _Said:
    start: float
    end: float
    word: str
    probability: float = 0.9


@dataclass(frozen=True)
class _Segment:
    words: tuple[_Said, ...]


class ScriptedWhisper:
    """A stand-in for faster-whisper's model: ``transcribe`` returns the words it was given, and keeps
    what it was asked for so the decoding settings can be checked."""

    def __init__(self, *channels: Sequence[tuple[float, float, str]]) -> None:
        self._channels = list(channels)
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, audio: np.ndarray, **kwargs: Any) -> tuple[Iterator[_Segment], None]:
        self.calls.append({"samples": len(audio), "dtype": audio.dtype, **kwargs})
        words = self._channels[min(len(self.calls) - 1, len(self._channels) - 1)]
        return iter([_Segment(tuple(_Said(a, b, f" {w}") for a, b, w in words))]), None


OFFLINE_ONLY = VerifyOptions(decoders=("offline",))


def speechlike(seconds: float, seed: int = 3) -> np.ndarray:
    """Noise shaped like nothing the mask lays down: never a pure tone, never silence."""
    return np.random.default_rng(seed).integers(-3000, 3000, size=round(seconds * RATE), dtype=np.int16)


def test_digit_words_as_the_normaliser_reads_them_are_found_at_their_times() -> None:
    whisper = ScriptedWhisper(
        [
            (0.2, 0.5, "Room"),
            (0.5, 0.8, "four,"),  # a number word
            (1.0, 1.2, "call"),
            (1.2, 1.4, "me"),
            (1.4, 1.6, "for"),  # a soundalike, not between digits: not a digit
            (1.6, 1.9, "pizza."),
            (2.0, 2.6, "4,111"),  # written digits
            (2.6, 2.8, "oh"),  # "oh" between digits
            (2.8, 3.0, "seven"),
            (3.5, 3.9, "gb82"),  # a numeral inside a word
        ]
    )
    verdict = verify_audio(speechlike(5.0), RATE, whisper, verification_detector(), OFFLINE_ONLY)
    digits = sorted((f.start, f.end) for f in verdict.findings if f.kind is FindingKind.DIGIT)
    assert digits == [(0.5, 0.8), (2.0, 2.6), (2.6, 2.8), (2.8, 3.0), (3.5, 3.9)]
    (call,) = whisper.calls
    assert call["beam_size"] == 1
    assert call["temperature"] == 0.0
    assert call["word_timestamps"] is True
    assert call["vad_filter"] is False
    assert call["samples"] == 5 * 16000  # heard at 16 kHz
    assert call["dtype"] == np.float32


def test_entities_are_reported_by_type_and_times_never_by_value() -> None:
    whisper = ScriptedWhisper(
        [
            (0.1, 0.3, "My"),
            (0.3, 0.5, "card"),
            (0.5, 0.8, "number"),
            (0.8, 1.0, "is"),
            *[(1.0 + 0.3 * k, 1.25 + 0.3 * k, d) for k, d in enumerate("4111111111111111")],
        ]
    )
    verdict = verify_audio(speechlike(7.0), RATE, whisper, verification_detector(), OFFLINE_ONLY)
    entities = [f for f in verdict.findings if f.kind is FindingKind.ENTITY]
    assert "CREDIT_CARD" in {f.entity for f in entities}
    card = next(f for f in entities if f.entity == "CREDIT_CARD")
    # At the words' own times: the relay's padding (0.25 s, and 0.45 s into the pause) is not added.
    assert card.start >= 0.75
    assert card.end == pytest.approx(5.75)
    assert "4111" not in repr(verdict)


def test_words_placed_wholly_in_the_mask_are_dropped_as_invented() -> None:
    audio = speechlike(4.0)
    audio[RATE : 3 * RATE] = tone(RATE, 2 * RATE, RATE)  # two seconds of beep
    whisper = ScriptedWhisper([(0.2, 0.6, "five"), (1.5, 1.8, "seven"), (2.85, 3.3, "nine")])
    verdict = verify_audio(audio, RATE, whisper, verification_detector(), OFFLINE_ONLY)
    # "seven" lies inside the beep: nothing sounded there. "nine" reaches out of it: it counts, where it
    # was audible (its edge over the beep is Whisper's loose timing, not something heard).
    digits = [(f.start, f.end) for f in verdict.findings if f.kind is FindingKind.DIGIT]
    assert digits == [(0.2, 0.6), pytest.approx((3.0, 3.3), abs=0.01)]
    assert all(f.start < 1.4 or f.end > 3.0 for f in verdict.findings)
    assert verdict.masked_seconds == pytest.approx(2.0, abs=0.02)


def test_a_recording_that_is_only_the_mask_is_not_even_heard() -> None:
    line = masked(speechlike(3.0), [(0.0, 3.0)], MaskMode.BEEP)
    whisper = ScriptedWhisper([(0.5, 1.0, "five")])  # what Whisper might invent over a beep
    verdict = verify_audio(line, RATE, whisper, verification_detector(), OFFLINE_ONLY)
    assert verdict.clean
    assert whisper.calls == []


def test_the_mask_is_found_whatever_the_policy_beep() -> None:
    style = BeepStyle(frequency=697.0, level_dbfs=-6.0)  # a row tone of the keypad, even
    audio = np.concatenate([speechlike(1.0), tone(RATE, 2 * RATE, RATE, style), np.zeros(RATE, np.int16)])
    heard, silences = mask_stretches(audio, RATE, VerifyOptions(beep_hz=style.frequency))
    assert not np.any(heard[RATE : 3 * RATE])
    assert np.array_equal(heard[:RATE], audio[:RATE])  # speech is left alone
    assert silences == [(1.0, 4.0)]
    # A beep is one tone: never a key press.
    verdict = verify_audio(
        audio,
        RATE,
        ScriptedWhisper([]),
        verification_detector(),
        VerifyOptions(beep_hz=697.0, decoders=("offline",)),
    )
    assert verdict.clean


def test_key_presses_are_found_and_each_channel_is_heard_on_its_own() -> None:
    t = np.arange(round(0.08 * RATE)) / RATE
    press = np.round(6000 * (np.sin(2 * np.pi * 770 * t) + np.sin(2 * np.pi * 1336 * t))).astype(np.int16)
    first = np.zeros(3 * RATE, dtype=np.int16)
    first[RATE : RATE + len(press)] = press
    second = speechlike(3.0)
    whisper = ScriptedWhisper([], [(2.0, 2.4, "eight")])  # channel 0 hears nothing, channel 1 a digit
    verdict = verify_audio(np.stack([first, second]), RATE, whisper, verification_detector(), OFFLINE_ONLY)
    assert verdict.channels == 2
    kinds = [(f.channel, f.kind) for f in verdict.findings]
    assert kinds == [(0, FindingKind.DTMF), (1, FindingKind.DIGIT)]
    key = verdict.findings[0]
    assert key.start == pytest.approx(1.0, abs=0.01)
    assert key.end == pytest.approx(1.08, abs=0.01)


def test_a_model_that_is_not_there_is_said_once_and_exit_2(recordings: Recordings, tmp_path: Path) -> None:
    code, out, err = run_verify(
        recordings.private, recordings.beeped, recordings.silenced, "--model", tmp_path / "no-model"
    )
    assert_one_line_error(code, out, err, "no-model", "does not exist")
