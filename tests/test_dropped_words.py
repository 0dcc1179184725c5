"""Words the recognizer dropped inside a value: a scripted recognizer and VAD replay what one machine heard.

The words and regions below are what Whisper and the VAD made of ``phone_awb_8k.wav`` cut to 4-12 s on a
machine other than the one the tests were first written on: the two digits "5" "5" at 3.56-4.07 and
4.19-4.70 s were never written, each in a short VAD region of its own, and the phone number's span split
around them. They went out audible. Whatever a recognizer hears, speech with no word on it inside a value
must stay masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from bleepline.call import CallSession
from bleepline.listener import CallListener
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.stream import SpanTracker
from bleepline.redact.policy import RedactionPolicy
from bleepline.speech.asr import TranscriptUpdate
from bleepline.speech.vad import SpeechRegion, VadOptions
from bleepline.timeline import AudioChunk, Word
from tests.conftest import noise

RATE = 8000

HEARD = [
    ("on", 0.00, 0.36), ("2,", 0.36, 1.20), ("0", 1.44, 1.74), ("0", 1.74, 2.12), ("2,", 2.14, 2.16),
    ("5,", 2.76, 3.08), ("0", 4.96, 5.38), ("0", 5.38, 5.74), ("one,", 5.76, 5.80), ("4", 6.30, 6.60),
    ("4", 6.60, 6.92), ("7,", 6.94, 7.28),
]  # fmt: skip
REGIONS = [
    (0.74, 1.34), (1.34, 2.04), (2.04, 2.66), (2.88, 3.56), (3.56, 4.22), (4.22, 4.86), (4.90, 5.66),
    (5.66, 6.20), (6.20, 6.84), (6.84, 7.54),
]  # fmt: skip
DROPPED = [(3.56, 4.07), (4.19, 4.70)]


class ScriptedRecognizer:
    """Final words as a recognizer ``lag_s`` behind the audio would make them, flushed at pauses."""

    def __init__(self, words: Sequence[Word], lag_s: float = 0.8) -> None:
        self.words = list(words)
        self.lag_s = lag_s
        self.final_until = 0.0
        self._now = 0.0
        self._given = 0
        self._pending: list[TranscriptUpdate] = []

    def push(self, chunk: AudioChunk) -> None:
        self._now = chunk.end / chunk.sample_rate
        self._step(self._now - self.lag_s)

    def flush(self) -> None:
        self._step(self._now)

    def end(self) -> None:
        self._step(self._now + 1.0)

    def updates(self) -> list[TranscriptUpdate]:
        out, self._pending = self._pending, []
        return out

    def _step(self, until: float) -> None:
        final = []
        while self._given < len(self.words) and self.words[self._given].end <= until:
            final.append(self.words[self._given])
            self._given += 1
        pending = self.words[self._given :]
        # Never final past a word still being heard: words are final whole.
        self.final_until = max(self.final_until, min([until, *(w.start for w in pending if w.start < until)]))
        tentative = tuple(w for w in pending if w.start < self._now)
        self._pending.append(TranscriptUpdate(tuple(final), tentative, self.final_until))


class ScriptedVad:
    """Hands out each region once the audio is ``close_s`` past its end, as the real VAD does."""

    def __init__(self, regions: Sequence[SpeechRegion], close_s: float = 0.2) -> None:
        self.options = VadOptions()
        self.regions = list(regions)
        self.close_s = close_s
        self._now = 0.0

    @property
    def in_speech(self) -> bool:
        return any(r.start <= self._now < r.end + self.close_s for r in self.regions)

    def push(self, chunk: AudioChunk) -> list[SpeechRegion]:
        self._now = chunk.end / chunk.sample_rate
        out = [r for r in self.regions if r.end + self.close_s <= self._now]
        self.regions = [r for r in self.regions if r not in out]
        return out

    def flush(self) -> list[SpeechRegion]:
        out, self.regions = self.regions, []
        return out


@pytest.fixture(scope="module")
def detector() -> SpokenPiiDetector:
    return SpokenPiiDetector()


def redact(words: Sequence[Word], regions: Sequence[SpeechRegion], detector: SpokenPiiDetector) -> np.ndarray:
    listener = CallListener(RATE, ScriptedRecognizer(words), SpanTracker(detector))  # type: ignore[arg-type]
    listener.vad = ScriptedVad(regions)  # type: ignore[assignment]
    audio = noise(8 * RATE, seed=5) // 4
    released: list[AudioChunk] = []

    class Capture:
        def write(self, chunk: AudioChunk) -> None:
            released.append(chunk)

    session = CallSession("dropped", RATE, listener=listener, policy=RedactionPolicy(), sinks=[Capture()])
    for start in range(0, len(audio), 160):
        session.push(AudioChunk(audio[start : start + 160], RATE, start))
    session.end()
    out = np.concatenate([c.samples for c in released])
    assert len(out) == len(audio)
    # A beep sample equals the noise under it now and then by chance: < 1 % unchanged is masked.
    return np.asarray(out == audio)


def test_digits_dropped_in_short_regions_of_their_own_stay_masked(detector: SpokenPiiDetector) -> None:
    unchanged = redact([Word(s, e, t) for t, s, e in HEARD], [SpeechRegion(*r) for r in REGIONS], detector)
    for start, end in DROPPED:
        audible = unchanged[int(start * RATE) : int(end * RATE)].mean()
        assert audible < 0.01, f"the dropped digit at {start}-{end} s is {audible:.0%} audible"


def test_a_slowly_read_number_with_no_word_heard_stays_masked(detector: SpokenPiiDetector) -> None:
    # Nothing written at all: six digits read 0.3 s each, 0.45 s apart, each a region of its own (padded
    # by the VAD's 0.2 s), after plain talk. No region is long enough alone; together they are a number.
    talk = [Word(0.2, 0.5, "okay"), Word(0.55, 0.9, "so"), Word(0.95, 1.3, "yes")]
    digits = [(2.0 + i * 0.75, 2.3 + i * 0.75) for i in range(6)]
    regions = [SpeechRegion(0.0, 1.5)] + [SpeechRegion(s - 0.2, e + 0.2) for s, e in digits]
    unchanged = redact(talk, regions, detector)
    for start, end in digits:
        assert unchanged[int(start * RATE) : int(end * RATE)].mean() < 0.01, (start, end)
    # ...while the plain talk before them, which the recognizer heard, is not masked.
    assert unchanged[int(0.25 * RATE) : int(1.2 * RATE)].mean() > 0.9


def test_a_long_pause_closes_a_number_said_just_before_it(detector: SpokenPiiDetector) -> None:
    # "any time after 5" and then the far end sends nothing: the lone digit may start a number only
    # while something could still follow it. A long pause says nothing did.
    words = [Word(0.2, 0.5, "any"), Word(0.5, 0.8, "time"), Word(0.8, 1.1, "after"), Word(1.2, 1.5, "5")]
    listener = CallListener(RATE, ScriptedRecognizer(words), SpanTracker(detector))  # type: ignore[arg-type]
    listener.vad = ScriptedVad([SpeechRegion(0.0, 1.7)])  # type: ignore[assignment]
    audio = noise(2 * RATE, seed=7) // 4
    for start in range(0, len(audio), 160):
        listener.push(AudioChunk(audio[start : start + 160], RATE, start))
    assert listener.pause(2.0).spans  # a short pause: the number may still go on
    assert listener.pause(2.0, silent_s=3.0).spans == ()
