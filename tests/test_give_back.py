"""Taking provisional masking back over numbers that were no value, and over the silence beside plain
words: a scripted listener says what was heard, the real delay line masks and releases."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bleepline.call import CallSession
from bleepline.listener import Hearing
from bleepline.redact.policy import RedactionPolicy
from bleepline.timeline import AudioChunk, PiiSpan, Word
from tests.conftest import noise

RATE = 8000
POLICY = RedactionPolicy(delay_s=3.5, pad_before_s=0.0, pad_after_s=0.0, fade_ms=0.0)


class Scripted:
    """At each chunk, the hearing ``script(now)`` says; the words in it become final as they end."""

    def __init__(self, script: Callable[[float], Hearing]) -> None:
        self.script = script

    def push(self, chunk: AudioChunk) -> Hearing:
        return self.script(chunk.end / chunk.sample_rate)

    def end(self, at: float) -> Hearing:
        return self.script(at + 100.0)


def run(script: Callable[[float], Hearing], seconds: float = 10.0) -> np.ndarray:
    audio = noise(int(seconds * RATE), seed=3) // 4
    out: list[AudioChunk] = []

    class Capture:
        def write(self, chunk: AudioChunk) -> None:
            out.append(chunk)

    session = CallSession("give-back", RATE, listener=Scripted(script), policy=POLICY, sinks=[Capture()])
    for start in range(0, len(audio), 160):
        session.push(AudioChunk(audio[start : start + 160], RATE, start))
    session.end()
    released = np.concatenate([c.samples for c in out])
    return np.asarray(released == audio)


def audible(unchanged: np.ndarray, start: float, end: float) -> float:
    return float(unchanged[int(start * RATE) : int(end * RATE)].mean())


SAID = [Word(1.0, 1.3, "in"), Word(1.3, 1.7, "room"), Word(1.8, 2.1, "four"), Word(4.5, 4.8, "okay")]
#: What the detector reports while "four" may start a number: an open span over it and its pause.
OPEN = PiiSpan(1.7, 2.55, "CREDIT_CARD", 0.3, final=False)


def hearing_of(
    words: list[Word], now: float, lag: float, spans: tuple[PiiSpan, ...], checked: float
) -> Hearing:
    final = tuple(w for w in words if w.end <= now - lag)
    return Hearing(
        heard_until=now,
        final_until=max(0.0, now - lag),
        spans=spans,
        final_words=tuple(w for w in final if now - lag - 0.02 < w.end <= now - lag),
        checked_until=checked,
    )


def test_a_number_that_was_no_value_is_given_back_with_the_silence_after_it() -> None:
    def script(now: float) -> Hearing:
        spans = (OPEN,) if 1.8 < now < 4.6 else ()  # closed once "okay" and silence followed
        return hearing_of(SAID, now, lag=0.6, spans=spans, checked=max(0.0, now - 0.6))

    unchanged = run(script)
    assert audible(unchanged, 1.8, 2.1) > 0.95  # "four"
    assert audible(unchanged, 2.1, 2.55) > 0.95  # the pause after it, checked for unheard speech


def test_the_silence_after_a_word_stays_masked_until_it_was_checked_for_unheard_speech() -> None:
    def script(now: float) -> Hearing:
        spans = (OPEN,) if 1.8 < now < 4.6 else ()
        return hearing_of(SAID, now, lag=0.6, spans=spans, checked=0.0)  # the listener checked nothing

    unchanged = run(script)
    assert audible(unchanged, 1.8, 2.1) > 0.95
    assert audible(unchanged, 2.15, 2.55) < 0.01


def test_a_number_beside_another_is_never_given_back() -> None:
    said = [Word(1.0, 1.3, "zero"), Word(1.4, 1.7, "one"), Word(1.8, 2.1, "four"), Word(4.5, 4.8, "okay")]
    opened = PiiSpan(0.9, 2.55, "CREDIT_CARD", 0.3, final=False)

    def script(now: float) -> Hearing:
        spans = (opened,) if 1.0 < now < 4.6 else ()
        return hearing_of(said, now, lag=0.6, spans=spans, checked=max(0.0, now - 0.6))

    unchanged = run(script)
    assert audible(unchanged, 1.0, 2.1) < 0.01  # "zero one four" is an identifier, whatever was found


def test_a_number_is_not_given_back_before_a_value_could_no_longer_resume_it() -> None:
    # The transcript stays final only up to "four" until after its release: no time to know.
    def script(now: float) -> Hearing:
        spans = (OPEN,) if 1.8 < now < 4.6 else ()
        return hearing_of(SAID, now, lag=0.6 if now < 2.7 else 100.0, spans=spans, checked=0.0)

    unchanged = run(script)
    assert audible(unchanged, 1.8, 2.1) < 0.01
