"""The streaming recognizer on the real model (Whisper tiny.en, int8, one thread) and its pure parts."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bleepline.audio.files import read_audio_chunks
from bleepline.audio.resample import resample
from bleepline.speech.asr import (
    RecognizerOptions,
    StreamingRecognizer,
    TranscriptUpdate,
    comparable,
)
from bleepline.timeline import AudioChunk, Word
from tests.conftest import noise

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audio"


@dataclass(frozen=True)
class Heard:
    at: float  # seconds of audio pushed when the update came
    update: TranscriptUpdate


PhoneCall = tuple[dict[str, Any], list["Heard"], StreamingRecognizer]


def stream(recognizer: StreamingRecognizer, chunks: Iterator[AudioChunk] | list[AudioChunk]) -> list[Heard]:
    heard: list[Heard] = []
    position = 0.0
    for chunk in chunks:
        recognizer.push(chunk)
        position = chunk.end / chunk.sample_rate
        heard += [Heard(position, u) for u in recognizer.updates()]
    recognizer.end()
    heard += [Heard(position, u) for u in recognizer.updates()]
    return heard


def final_words(heard: list[Heard]) -> list[Word]:
    return [w for h in heard for w in h.update.final]


def words_of(text: str) -> list[str]:
    return [comparable(t) for t in text.split() if comparable(t)]


@pytest.fixture(scope="module")
def phone_call() -> PhoneCall:
    truth = json.loads((FIXTURES / "phone_awb_8k.json").read_text())
    recognizer = StreamingRecognizer()
    heard = stream(recognizer, read_audio_chunks(FIXTURES / "phone_awb_8k.wav"))
    return truth, heard, recognizer


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1] / max(len(reference), 1)


def test_final_transcript_says_what_was_said(phone_call: PhoneCall) -> None:
    truth, heard, _ = phone_call
    said = words_of(str(truth["text"]))
    got = words_of(" ".join(w.text for w in final_words(heard)))
    assert word_error_rate(said, got) < 0.4, got
    assert "5 5 5 0 1 4 7" in " ".join(got)


def test_final_words_are_in_order_on_the_timeline_and_marked_final(phone_call: PhoneCall) -> None:
    truth, heard, _ = phone_call
    words = final_words(heard)
    assert all(w.final for w in words)
    assert all(not w.final for h in heard for w in h.update.tentative)
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w.start < w.end <= float(truth["duration"]) + 0.5 for w in words)


def test_digits_are_timed_where_they_were_spoken(phone_call: PhoneCall) -> None:
    truth, heard, _ = phone_call
    (phone,) = truth["pii"]
    digits = [w for w in final_words(heard) if comparable(w.text).isdigit()]
    inside = [w for w in digits if phone["start"] - 0.5 <= (w.start + w.end) / 2 <= phone["end"] + 0.5]
    assert len(digits) >= 7
    assert len(inside) == len(digits)


def test_words_are_seen_tentatively_before_they_are_final(phone_call: PhoneCall) -> None:
    _, heard, _ = phone_call
    first_tentative: dict[str, float] = {}
    for h in heard:
        for w in h.update.tentative:
            first_tentative.setdefault(f"{comparable(w.text)}@{round(w.start)}", h.at)
    finals = [(w, h.at) for h in heard for w in h.update.final]
    early = [1 for w, at in finals if first_tentative.get(f"{comparable(w.text)}@{round(w.start)}", at) < at]
    assert len(early) >= len(finals) // 2


def test_final_until_only_moves_forward_and_reaches_the_end(phone_call: PhoneCall) -> None:
    truth, heard, recognizer = phone_call
    marks = [h.update.final_until for h in heard]
    assert marks == sorted(marks)
    assert recognizer.final_until >= float(truth["duration"]) - 0.1


def test_steps_decode_short_windows_not_thirty_seconds(phone_call: PhoneCall) -> None:
    _, heard, recognizer = phone_call
    assert max(h.update.window_seconds for h in heard) <= RecognizerOptions().max_window_s
    assert recognizer.stats.decoded_steps >= 10


def test_digital_silence_decodes_nothing_and_is_cleared() -> None:
    recognizer = StreamingRecognizer()
    silence = [AudioChunk(np.zeros(8000, dtype=np.int16), 8000, s * 8000) for s in range(60)]
    heard = stream(recognizer, silence)
    assert not [w for h in heard for w in h.update.words]
    assert recognizer.stats.decoded_steps == 0
    assert recognizer.final_until >= 59.0


@pytest.mark.parametrize("level_dbfs", [-40.0, -25.0])
def test_steady_noise_invents_no_words(level_dbfs: float) -> None:
    rng = np.random.default_rng(3)
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    hiss = np.clip(rng.normal(0, amplitude, 8000 * 15), -32768, 32767).astype(np.int16)
    chunks = [AudioChunk(hiss[i : i + 160], 8000, i) for i in range(0, len(hiss), 160)]
    heard = stream(StreamingRecognizer(), chunks)
    assert [w.text for h in heard for w in h.update.words] == []


def test_any_input_rate_lands_on_the_same_timeline() -> None:
    call = np.concatenate([c.samples for c in read_audio_chunks(FIXTURES / "phone_awb_8k.wav")])
    at_44k = resample(call, 8000, 44100)
    chunks = [AudioChunk(at_44k[i : i + 882], 44100, i) for i in range(0, len(at_44k), 882)]
    words = final_words(stream(StreamingRecognizer(), chunks))
    fives = [w for w in words if comparable(w.text) == "5"]
    assert fives
    assert all(6.0 < w.start < 9.5 for w in fives)  # the three fives are said between 6.9 and 8.7 s


def test_flush_makes_everything_final_at_a_pause() -> None:
    recognizer = StreamingRecognizer()
    chunks = list(read_audio_chunks(FIXTURES / "phone_awb_8k.wav"))
    for chunk in chunks[: 5 * 50]:  # "And a contact number? Yes, you can ..."
        recognizer.push(chunk)
    list(recognizer.updates())
    recognizer.flush()
    (update,) = recognizer.updates()
    assert update.tentative == ()
    assert update.final_until == pytest.approx(5.0, abs=0.05)


def test_the_timeline_never_goes_back_and_ends_for_good() -> None:
    recognizer = StreamingRecognizer()
    recognizer.push(AudioChunk(np.zeros(320, dtype=np.int16), 16000, 320))
    with pytest.raises(ValueError, match="go back"):
        recognizer.push(AudioChunk(np.zeros(320, dtype=np.int16), 16000, 0))
    recognizer.end()
    with pytest.raises(RuntimeError, match="after end"):
        recognizer.push(AudioChunk(np.zeros(320, dtype=np.int16), 16000, 640))


def test_two_hours_of_quiet_line_keep_memory_flat() -> None:
    recognizer = StreamingRecognizer()
    hiss = (noise(8000, seed=4) // 1000).astype(np.int16)  # about -60 dBFS: below the decode gate
    tracemalloc.start()
    try:
        for second in range(2 * 3600):
            recognizer.push(AudioChunk(hiss, 8000, second * 8000))
            for _ in recognizer.updates():
                pass
            if second == 600:
                tracemalloc.reset_peak()
                baseline, _ = tracemalloc.get_traced_memory()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - baseline < 1_000_000
    assert current - baseline < 200_000
    assert recognizer.final_until > 7190


def test_agreement_and_context_rules_work_by_time_not_text_alone() -> None:
    from bleepline.speech.asr import _agreement, _heard_again, _Hypothesis

    def hyp(*words: tuple[str, float]) -> _Hypothesis:
        return _Hypothesis(tuple(Word(s, s + 0.3, t) for t, s in words), 10.0)

    previous = hyp(("1", 1.0), ("1", 1.5), ("2", 2.0))
    assert _agreement(previous, hyp(("one", 1.1), ("1", 1.4), ("3", 2.0))) == 2
    assert _agreement(previous, hyp(("1", 2.0))) == 0  # same text, another time: not the same word
    last = Word(1.0, 1.3, "1")
    assert _heard_again(last, [Word(1.02, 1.3, "1"), Word(1.5, 1.8, "1")]) == 1
    assert _heard_again(last, [Word(1.5, 1.8, "1")]) == 0


def test_comparable_text_ignores_case_punctuation_and_number_words() -> None:
    assert comparable("Five,") == comparable("5") == "5"
    assert comparable("Oh") == "0"
    assert comparable("John.") == "john"
