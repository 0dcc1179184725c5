"""Listening to one call: voice activity, the streaming recognizer and the PII spans in what was said.

The redactor asks two questions of every stretch of the timeline — has speech there been transcribed for
good, and does any span cover it? — and ``CallListener`` answers them as chunks arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bleepline.pii.stream import SpanTracker
from bleepline.speech.asr import StreamingRecognizer, TranscriptUpdate
from bleepline.speech.unheard import UnheardSpeech
from bleepline.speech.vad import SpeechRegion, VoiceActivityDetector
from bleepline.timeline import AudioChunk, PiiSpan, Word


@dataclass(frozen=True)
class Hearing:
    """What the listener knows after a chunk: where the transcript is final, and the spans found so far.

    ``spans`` are those in the current word context (they may still grow or change: a redactor masks an
    open one provisionally). ``unverified`` are stretches the recognizer gave up on,
    and speech it wrote no final word for (``speech.unheard``).
    """

    heard_until: float
    final_until: float
    spans: tuple[PiiSpan, ...]
    final_words: tuple[Word, ...] = ()
    tentative_words: tuple[Word, ...] = ()
    unverified: tuple[tuple[float, float], ...] = ()
    speech: tuple[SpeechRegion, ...] = ()
    #: After a long pause: nothing was said from the last audio up to here (no audio came at all).
    silent_until: float = 0.0
    #: Speech no final word covers has been looked for up to here (``speech.unheard``).
    checked_until: float = 0.0


#: Around every span, speech the recognizer wrote nothing for is held to the stricter test of
#: ``speech.unheard`` (a digit it dropped is short): from this long
#: before to this long after. A caller reading a number pauses up to a second or two between groups.
SENSITIVE_BEFORE_S = 0.5
SENSITIVE_AFTER_S = 2.0
SENSITIVE_MEMORY_S = 30.0


@dataclass
class ListenerStats:
    updates: int = 0
    spans_reported: int = 0
    flushes_at_pauses: int = 0
    unheard_s: float = 0.0  # speech no final word covered, reported as unverified
    speech_regions: list[SpeechRegion] = field(default_factory=list)


class CallListener:
    """VAD, recognizer and span tracker for one call, fed chunk by chunk on the call timeline.

    A pause found by the VAD makes the recognizer decode at once and make its words final, so a value
    said just before a pause is settled without waiting for the next step.
    """

    def __init__(self, sample_rate: int, recognizer: StreamingRecognizer, tracker: SpanTracker) -> None:
        self.vad = VoiceActivityDetector(sample_rate)
        self.recognizer = recognizer
        self.tracker = tracker
        self.stats = ListenerStats()
        self.unheard = UnheardSpeech(region_padding_s=self.vad.options.padding_ms / 1000)
        self._spans: tuple[PiiSpan, ...] = ()
        self._recent_spans: list[tuple[float, float]] = []  # final spans of late, for ``_sensitive``

    def push(self, chunk: AudioChunk) -> Hearing:
        regions = self.vad.push(chunk)
        self.recognizer.push(chunk)
        if regions and not self.vad.in_speech:
            self.recognizer.flush()
            self.stats.flushes_at_pauses += 1
        self.stats.speech_regions += regions
        return self._hear(chunk.end / chunk.sample_rate, regions)

    def pause(self, at: float, silent_s: float = 0.0) -> Hearing:
        """No audio came for a while after ``at`` seconds (a silence the far end did not send, or a
        stalled stream): settle what was heard, as at a pause, without waiting for audio to resume.
        ``silent_s`` says the silence has lasted that long: values said before it are over (only the
        detector is told; nothing past ``at`` was heard, so nothing past it is final)."""
        self.recognizer.flush()
        self.stats.flushes_at_pauses += 1
        return self._hear(at, [], silent_s=silent_s)

    def end(self, at: float) -> Hearing:
        """The call is over at ``at`` seconds: settle everything still pending, and close every value
        still open (nothing more will be said)."""
        regions = self.vad.flush()
        self.recognizer.end()
        return self._hear(at, regions, ended=True)

    def _hear(
        self, now: float, regions: list[SpeechRegion], ended: bool = False, silent_s: float = 0.0
    ) -> Hearing:
        updates = list(self.recognizer.updates())
        if updates or ended or silent_s:
            self.stats.updates += len(updates)
            final, tentative = _merged(updates) if updates else ([], ())
            heard = now + silent_s
            self._spans = tuple(self.tracker.update(final, tentative, heard_until=heard, ended=ended))
            self.stats.spans_reported += len(self._spans)
        final_words = tuple(w for u in updates for w in u.final)
        final_until = self.recognizer.final_until
        # Speech no final word covers was never checked for PII: unverified, like a recognizer's gap.
        self.unheard.add(regions, final_words)
        unheard = self.unheard.check(final_until, self._sensitive(now))
        self.stats.unheard_s += sum(end - start for start, end in unheard)
        return Hearing(
            heard_until=now,
            final_until=final_until,
            spans=self._spans,
            final_words=final_words,
            tentative_words=updates[-1].tentative if updates else (),
            unverified=(*(gap for u in updates for gap in u.unverified), *unheard),
            speech=tuple(regions),
            silent_until=now + silent_s if silent_s else 0.0,
            checked_until=self.unheard.checked_until,
        )

    def _sensitive(self, now: float) -> list[tuple[float, float]]:
        """Where a value is being said or was just said: around every span reported now, and every
        final one of the last ``SENSITIVE_MEMORY_S`` (a value's span may be gone from the context before
        the speech around it is checked). Spans, not every number word: "two kids" opens none, and a
        number that was no value ("in 2024") leaves none behind, so the talk around it is held to the
        ordinary test."""
        for span in self._spans:
            if span.final and (not self._recent_spans or self._recent_spans[-1] != (span.start, span.end)):
                self._recent_spans.append((span.start, span.end))
        horizon = now - SENSITIVE_MEMORY_S
        if self._recent_spans and self._recent_spans[0][1] < horizon:
            self._recent_spans = [s for s in self._recent_spans if s[1] >= horizon]
        stretches = [*self._recent_spans, *((span.start, span.end) for span in self._spans)]
        return [(start - SENSITIVE_BEFORE_S, end + SENSITIVE_AFTER_S) for start, end in stretches]


def _merged(updates: list[TranscriptUpdate]) -> tuple[list[Word], tuple[Word, ...]]:
    """Several updates at once: all their final words, and the last one's tentative words."""
    return [w for u in updates for w in u.final], updates[-1].tentative
