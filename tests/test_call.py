"""CallSession wiring with scripted listeners: what reaches the sinks, and failing closed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from bleepline.call import CallSession, LagSamples, Listener
from bleepline.listener import Hearing
from bleepline.redact.policy import MaskMode, RedactionPolicy
from bleepline.timeline import AudioChunk, PiiSpan, Word
from tests.conftest import noise

RATE = 8000
POLICY = RedactionPolicy(
    delay_s=2.0, pad_before_s=0.0, pad_after_s=0.0, fade_ms=0.0, unverified_mode=MaskMode.SILENCE
)


class ScriptedListener:
    """Says at each chunk: the transcript is final up to ``lag`` behind, and these spans hold PII."""

    def __init__(
        self,
        spans: list[PiiSpan],
        lag: float = 0.5,
        fail_at: float | None = None,
        stall_at: float | None = None,
    ) -> None:
        self.spans = spans
        self.lag = lag
        self.fail_at = fail_at
        self.stall_at = stall_at

    def push(self, chunk: AudioChunk) -> Hearing:
        now = chunk.end / chunk.sample_rate
        if self.fail_at is not None and now >= self.fail_at:
            raise RuntimeError("recognizer died while hearing 4111 1111 1111 1111")
        final_until = max(now - self.lag, 0.0)
        if self.stall_at is not None:
            final_until = min(final_until, self.stall_at)
        return Hearing(
            heard_until=now, final_until=final_until, spans=tuple(s for s in self.spans if s.start < now)
        )

    def end(self, at: float) -> Hearing:
        until = at if self.stall_at is None else self.stall_at
        return Hearing(heard_until=at, final_until=until, spans=tuple(self.spans))


class Capture:
    def __init__(self) -> None:
        self.chunks: list[AudioChunk] = []

    def write(self, chunk: AudioChunk) -> None:
        self.chunks.append(chunk)

    def samples(self) -> np.ndarray:
        return np.concatenate([c.samples for c in self.chunks])


def run_call(
    listener: Listener | None,
    seconds: float = 10.0,
    factory: Callable[[], ScriptedListener] | None = None,
    audio: np.ndarray | None = None,
    policy: RedactionPolicy = POLICY,
) -> tuple[np.ndarray, np.ndarray, CallSession]:
    original = noise(int(seconds * RATE), seed=2) // 4 if audio is None else audio
    capture = Capture()
    session = CallSession(
        "test-call", RATE, listener=listener, policy=policy, sinks=[capture], listener_factory=factory
    )
    for start in range(0, len(original), 160):
        session.push(AudioChunk(original[start : start + 160], RATE, start))
    session.report = session.end()
    return original, capture.samples(), session


def seconds(t: float) -> int:
    return int(t * RATE)


def test_released_audio_keeps_the_timeline_and_masks_exactly_the_span() -> None:
    original, released, _ = run_call(ScriptedListener([PiiSpan(3.0, 4.5, "CREDIT_CARD", 0.9)]))
    assert len(released) == len(original)
    span = slice(seconds(3.0), seconds(4.5))
    assert not np.any(released[span] == original[span])  # nothing of the original survives inside
    outside = np.ones(len(original), dtype=bool)
    outside[span] = False
    assert np.array_equal(released[outside], original[outside])


def test_a_crashed_listener_masks_everything_after_it_as_unverified() -> None:
    original, released, session = run_call(ScriptedListener([], fail_at=4.0))
    assert session.report.listener_failures == 1
    cleared = seconds(4.0 - 0.5)
    assert np.array_equal(released[: cleared - RATE // 50], original[: cleared - RATE // 50])
    assert not np.any(released[cleared:])  # silence: unverified mode


def test_the_crash_message_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    run_call(ScriptedListener([], fail_at=2.0))
    assert "listener failed (RuntimeError)" in caplog.text
    assert "4111" not in caplog.text


def test_a_stalled_listener_leaves_the_rest_masked() -> None:
    original, released, _ = run_call(ScriptedListener([], stall_at=3.0))
    assert np.array_equal(released[: seconds(3.0)], original[: seconds(3.0)])
    assert not np.any(released[seconds(3.0) :])


def test_a_restarted_listener_does_not_clear_what_the_dead_one_missed() -> None:
    restarted = ScriptedListener([], lag=0.5)
    original, released, session = run_call(ScriptedListener([], fail_at=4.0), factory=lambda: restarted)
    assert session.report.listener_failures == 1
    gap = slice(seconds(3.5), seconds(4.0))
    assert not np.any(released[gap])  # heard by nobody: stays masked
    later = slice(seconds(5.0), seconds(9.0))
    assert np.array_equal(released[later], original[later])  # the new listener clears what it hears


def test_no_listener_at_all_means_everything_is_masked() -> None:
    _, released, _ = run_call(None)
    assert not np.any(released)


def test_keypad_tones_are_masked_even_when_the_listener_clears_everything() -> None:
    t = np.arange(RATE * 10) / RATE
    audio = (noise(RATE * 10, seed=1) // 64).astype(np.int16)
    key = slice(seconds(5.0), seconds(5.08))  # "5": 770 + 1336 Hz, 80 ms
    audio[key] += (3000 * (np.sin(2 * np.pi * 770 * t[key]) + np.sin(2 * np.pi * 1336 * t[key]))).astype(
        np.int16
    )
    original, released, session = run_call(ScriptedListener([]), audio=audio)
    assert session.report.keypad_entries == 1
    assert not np.any(released[key] == original[key])
    assert np.array_equal(released[: seconds(4.5)], original[: seconds(4.5)])


# -- provisional masking taken back ---------------------------------------------------------------------


def cue_call() -> list[Word]:
    """ "my card number is", a card number, a silence, then "thanks."."""
    words = [Word(0.5, 0.7, "my"), Word(0.7, 1.0, "card"), Word(1.0, 1.3, "number"), Word(1.3, 1.6, "is")]
    words += [
        Word(2.0 + 0.25 * i, 2.25 + 0.25 * i, d)
        for i, d in enumerate(["four", "one", "one", "one", "one", "one", "one", "one"])
    ]
    return [*words, Word(4.5, 5.0, "thanks.")]


def cue_spans(final_start: float = 2.0) -> Callable[[float], tuple[PiiSpan, ...]]:
    """What a detector says at ``now``: open from the cue, open from the value once it starts at 2.0 s,
    then closed, from ``final_start``."""

    def spans(now: float) -> tuple[PiiSpan, ...]:
        if now < 1.3:
            return ()
        if now < 2.0:
            return (PiiSpan(1.3, now + 0.25, "CREDIT_CARD", 0.8, source="cue"),)  # padded, as detected
        if now < 5.0:
            return (PiiSpan(2.0, now + 0.25, "CREDIT_CARD", 0.8, source="cue"),)
        return (PiiSpan(final_start, 4.0, "CREDIT_CARD", 0.8, final=True, source="cue"),)

    return spans


class WordsListener:
    """Final words up to ``lag`` behind what it has heard, and the spans ``spans_at`` says are current."""

    def __init__(
        self, words: list[Word], spans_at: Callable[[float], tuple[PiiSpan, ...]], lag: float = 0.5
    ) -> None:
        self.words = words
        self.spans_at = spans_at
        self.lag = lag
        self.given = 0

    def push(self, chunk: AudioChunk) -> Hearing:
        now = chunk.end / chunk.sample_rate
        return self._hearing(now, max(now - self.lag, 0.0))

    def end(self, at: float) -> Hearing:
        return self._hearing(at, at)

    def _hearing(self, now: float, final_until: float) -> Hearing:
        final = [w for w in self.words[self.given :] if w.end <= final_until]
        self.given += len(final)
        # Words heard (begun) but not final yet, as the recognizer shows them.
        tentative = tuple(w for w in self.words[self.given :] if w.start < now)
        return Hearing(
            now, final_until, self.spans_at(now), final_words=tuple(final), tentative_words=tentative
        )


def unchanged(released: np.ndarray, original: np.ndarray, start: float, end: float) -> bool:
    part = slice(seconds(start), seconds(end))
    return bool(np.array_equal(released[part], original[part]))


def masked(released: np.ndarray, original: np.ndarray, start: float, end: float) -> bool:
    part = slice(seconds(start), seconds(end))
    return not np.any(released[part] == original[part])


def test_cue_words_and_words_after_a_value_are_given_back_once_final() -> None:
    original, released, session = run_call(WordsListener(cue_call(), cue_spans()))
    assert unchanged(released, original, 1.3, 1.6)  # "is": masked while the value could start there
    assert masked(released, original, 2.0, 4.0)  # the card number
    assert masked(released, original, 4.0, 4.5)  # silence the open span covered: no word there
    assert unchanged(released, original, 4.5, 5.0)  # "thanks."
    assert session.delay.stats.withdrawn_s > 0.75


def test_a_word_that_could_be_a_digit_is_never_given_back() -> None:
    # The detector, once final, starts the value a word late: "four" stays masked all the same.
    original, released, _ = run_call(WordsListener(cue_call(), cue_spans(final_start=2.25)))
    assert masked(released, original, 2.0, 2.25)
    assert masked(released, original, 1.75, 2.0)  # and Whisper's loose edges around it
    assert unchanged(released, original, 1.3, 1.6)


def test_nothing_a_span_over_a_value_word_would_mask_is_given_back_first() -> None:
    # "is" runs up to 0.2 s before "four"; the value, once final, starts at its padded edge (1.75 s), and
    # the policy pads it 0.05 s more. Given back before that span came, 1.70-1.75 s would have gone out
    # unmasked and been claimed afterwards: a late mark.
    words = cue_call()
    words[3] = Word(1.3, 1.8, "is")
    padded = dataclasses.replace(POLICY, pad_before_s=0.05, pad_after_s=0.05)
    original, released, session = run_call(WordsListener(words, cue_spans(final_start=1.75)), policy=padded)
    assert session.report.late_masks == 0
    assert masked(released, original, 1.70, 2.0)
    assert unchanged(released, original, 1.4, 1.65)  # the rest of "is" is still given back


def test_nothing_is_given_back_when_the_words_come_after_the_audio_went_out() -> None:
    original, released, session = run_call(WordsListener(cue_call(), cue_spans(), lag=2.5))
    assert masked(released, original, 1.3, 1.6)  # released (delay 2 s) before its words were final
    assert session.report.late_masks == 0


def test_a_final_span_is_never_given_back_even_over_plain_words() -> None:
    spans = (PiiSpan(0.5, 1.6, "CREDIT_CARD", 0.8, final=True, source="cue"),)
    original, released, _ = run_call(WordsListener(cue_call(), lambda now: spans))
    assert masked(released, original, 0.5, 1.6)


def test_a_span_still_current_keeps_its_masking_over_plain_words() -> None:
    spans = (PiiSpan(0.5, 10.0, "CREDIT_CARD", 0.8, source="cue"),)
    original, released, _ = run_call(WordsListener(cue_call(), lambda now: spans))
    assert masked(released, original, 0.5, 10.0)


def test_the_recognizers_lag_is_reported_as_percentiles() -> None:
    *_, session = run_call(ScriptedListener([], lag=0.7), seconds=6.0)
    lag = session.report.recognizer_lag_s
    # The scripted transcript trails the audio by 0.7 s, except in the first 0.7 s of the call.
    assert lag["p50"] == pytest.approx(0.7, abs=0.01)
    assert lag["max"] == pytest.approx(0.7, abs=0.01)
    assert lag["p50"] <= lag["p95"] <= lag["max"]


def test_without_a_listener_no_lag_is_reported() -> None:
    *_, session = run_call(None, seconds=2.0)
    assert session.report.recognizer_lag_s == {}


def test_lag_samples_are_taken_at_most_every_tenth_of_a_second() -> None:
    samples = LagSamples(every_s=0.1)
    for i in range(100):  # 2 s in 20 ms steps: lag 0.0 ... 0.99
        samples.add(i * 0.02, i / 100)
    summary = samples.summary()
    assert summary["max"] == pytest.approx(0.95)  # the last sample taken, at 1.9 s
    assert summary["p50"] == pytest.approx(0.45)  # 20 samples, 0.0 to 0.95: the 10th is 0.45
    assert summary["p95"] == pytest.approx(0.90)
