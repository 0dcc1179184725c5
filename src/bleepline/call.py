"""One call from chunks in to sinks out: the journey of every chunk, top to bottom in this file.

A chunk is held in the delay line; meanwhile the listener (VAD, recognizer, PII detector) and the keypad
detector hear it, and what they learn — spans to mask, how far the transcript is final — goes to the
delay line. When the clock says a stretch's time has come, the delay line releases it, masked where it
must be, to the sinks: the encrypted recording and any redacted outputs. The redacted transcript is
built from final words and what was masked.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bleepline.audio.dtmf import DtmfDetector, DtmfTone
from bleepline.listener import Hearing
from bleepline.pii.detector import DetectorOptions, merge_spans
from bleepline.pii.plain import Talk, bare, classify, is_everyday_number, is_number
from bleepline.pii.recognizers import BRIDGE_S, DIGIT_ENTITIES, LONE_DIGITS_SCORE, TWO_DIGITS_S
from bleepline.redact.delayline import DelayLine
from bleepline.redact.policy import MaskReason, RedactionPolicy
from bleepline.store.transcript import Redaction, Transcript, TranscriptBuilder
from bleepline.timeline import AudioChunk, PiiSpan, Word

log = logging.getLogger(__name__)

#: Key presses closer than this belong to one entry (a card number typed on the keypad): one redaction.
KEYPAD_ENTRY_GAP_S = 2.0
#: Tone edges are found at half amplitude, to within a few ms: the mask reaches this far past both.
KEYPAD_MARGIN_S = 0.02
#: Provisional masking is re-judged only this far behind where the transcript is final: the words just
#: before that point are the ones a value still being said may yet claim.
SETTLE_S = 0.5
#: Around a word that could be part of a value, provisional masking is never taken back: Whisper's word
#: edges are this loose, and the detector pads its spans alike. The policy's own span padding is kept on
#: top (``_settle``), so that nothing a span over that word would mask is ever given back: given back and
#: claimed again later, it would have gone out unmasked in between (a late mark).
VALUE_WORD_GUARD_S = 0.25
#: ...and after one said before a pause, this far into the pause: as far as the detector's span would
#: reach (``DetectorOptions.pause_padding_s``), since Whisper ends the last word before a pause early.
VALUE_WORD_PAUSE_GUARD_S = DetectorOptions().pause_padding_s


class AudioSink(Protocol):
    """Where released (redacted) audio goes: the recording writer, a redacted RTP or WebRTC leg."""

    def write(self, chunk: AudioChunk) -> None: ...


class Listener(Protocol):
    """What hears the call (``bleepline.listener.CallListener``; a recording of one in evaluations)."""

    def push(self, chunk: AudioChunk) -> Hearing: ...

    def end(self, at: float) -> Hearing: ...


@runtime_checkable
class PausingListener(Listener, Protocol):
    """A listener that can be told the audio stopped coming for a while (``CallListener`` can)."""

    def pause(self, at: float, silent_s: float = 0.0) -> Hearing: ...


@dataclass(frozen=True)
class Heard:
    """What ``CallSession.listen`` found about one chunk (``chunk`` false: the end of the call, unless
    ``pause``: the audio stopped coming) at ``now`` seconds: a hearing, or the exception the listener
    raised, or neither (no listener)."""

    now: float
    hearing: Hearing | None
    error: Exception | None
    chunk: bool
    pause: bool = False


@dataclass
class CallReport:
    """What happened on a call, without content: for the command line's summary and for metrics."""

    call_id: str
    duration: float = 0.0
    spans_by_entity: Counter[str] = field(default_factory=Counter)
    masked_s: dict[str, float] = field(default_factory=dict)
    late_masks: int = 0
    late_mask_s: float = 0.0
    #: Audio that came further ahead of the release clock than the delay line holds: dropped, not heard.
    early_audio_s: float = 0.0
    keypad_entries: int = 0
    listener_failures: int = 0
    #: How far the final transcript trailed the audio heard: percentiles over the call.
    recognizer_lag_s: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0
    transcript: Transcript | None = None


class CallSession:
    """Wires one call: ``push`` chunks in timeline order, ``end`` when the call is over.

    With ``paced_by_audio`` (files), each chunk pushed moves the release clock to its end minus the
    delay, so a file runs through exactly the live path as fast as the CPU allows. Without it (live), the
    caller's clock calls ``release_until``. If the listener fails, the call carries on unheard: nothing
    after the last cleared sample is ever cleared, so it is all masked as unverified (fail closed).
    """

    def __init__(
        self,
        call_id: str,
        sample_rate: int,
        *,
        listener: Listener | None,
        policy: RedactionPolicy,
        sinks: Sequence[AudioSink],
        transcript: TranscriptBuilder | None = None,
        keypad: DtmfDetector | None = None,
        paced_by_audio: bool = True,
        listener_factory: Callable[[], Listener] | None = None,
    ) -> None:
        self.call_id = call_id
        self.sample_rate = sample_rate
        self.policy = policy
        self.delay = DelayLine(sample_rate, policy)
        self.listener = listener
        self.keypad = keypad if keypad is not None else DtmfDetector(sample_rate)
        self.sinks = list(sinks)
        self.transcript = transcript
        self.paced_by_audio = paced_by_audio
        self._listener_factory = listener_factory
        self._heard_until = 0.0  # end of the last chunk the listener heard
        self._lag = LagSamples()
        self._held_until = 0.0  # end of the last chunk held (live: ahead of the listener)
        self._sent: set[tuple[float, float, str, bool]] = set()  # spans already passed to the delay line
        self._words: list[Word] = []  # final words not yet released, to re-judge provisional masking
        self._settled_at = 0.0  # the final point when provisional masking was last re-judged
        self._last_spans: Sequence[PiiSpan] = ()
        self._spans: list[PiiSpan] = []  # every span reported, for the transcript's redactions
        self._presses: list[DtmfTone] = []
        self._began = time.process_time()
        self.report = CallReport(call_id)

    # -- the journey of a chunk ---------------------------------------------------------------------

    def push(self, chunk: AudioChunk) -> None:
        """Take one chunk of the call (raw audio; it never reaches a sink unredacted)."""
        # 1. Held, and its keypad tones marked: nothing leaves before the delay line says so.
        self.hold(chunk)
        # 2. Heard: spans to mask, and how far the transcript is final.
        self.hear(chunk)
        # 3. Released when its time comes: for a file, the audio itself is the clock.
        if self.paced_by_audio:
            self.release_until(chunk.end / chunk.sample_rate - self.policy.delay_s)

    def hold(self, chunk: AudioChunk) -> None:
        """The media side of ``push``: into the delay line, and past the keypad detector (cheap, so a live
        call does it as the packet arrives). Keypad tones are masked from the moment a tone starts,
        whatever the listener says."""
        now = chunk.end / chunk.sample_rate
        self.delay.push(chunk)
        self._keypad(self.keypad.push(chunk), now)
        self._held_until = max(self._held_until, now)

    def hear(self, chunk: AudioChunk) -> None:
        """The listening side of ``push``, after ``hold``: ``listen`` then ``take_in``. A live call runs
        the two apart, so that the slow part (``listen``) holds no lock the media side waits for."""
        self.take_in(self.listen(chunk))

    def listen(self, chunk: AudioChunk | None) -> Heard:
        """What the listener makes of ``chunk`` (``None``: the call is over). Touches the listener only,
        never the delay line; an exception is caught and handed on, for ``take_in`` to fail closed."""
        now = self._heard_until if chunk is None else chunk.end / chunk.sample_rate
        listener = self.listener
        if listener is None:
            return Heard(now, None, None, chunk is not None)
        try:
            hearing = listener.push(chunk) if chunk is not None else listener.end(now)
        except Exception as exc:  # a broken recognizer must not break the call: fail closed
            return Heard(now, None, exc, chunk is not None)
        return Heard(now, hearing, None, chunk is not None)

    def listen_pause(self, silent_s: float = 0.0) -> Heard:
        """No audio has come for a while (the far end stopped sending in a silence, or the stream
        stalled): the listener settles what it heard so far, as at a pause in speech, so that audio
        held before the stall can be cleared before its release time. ``silent_s``: how long nothing
        has come, once it is long (``live.LONG_PAUSE_S``). ``take_in`` the result."""
        now = self._heard_until
        listener = self.listener
        if not isinstance(listener, PausingListener):
            return Heard(now, None, None, False, pause=True)
        try:
            return Heard(now, listener.pause(now, silent_s), None, False, pause=True)
        except Exception as exc:  # as in ``listen``: fail closed
            return Heard(now, None, exc, False, pause=True)

    def take_in(self, heard: Heard) -> None:
        """Apply what ``listen`` found: marks, then clearance; a failure masks from here on."""
        if heard.error is not None:
            self._listener_failed(heard.error, heard.now)
        elif heard.hearing is not None:
            self._hear(heard.hearing, last=not heard.chunk and not heard.pause)
            if heard.chunk:
                self._lag.add(heard.now, heard.now - heard.hearing.final_until)
        if heard.chunk:
            self._heard_until = heard.now

    def release_until(self, t: float) -> None:
        """The clock: everything before ``t`` (call timeline) goes to the sinks now, masked as needed."""
        for released in self.delay.release_until(t):
            self._deliver(released)

    def keypresses(
        self, spans: Sequence[tuple[float, float]], active_since: float | None, now: float | None = None
    ) -> None:
        """Key presses signalled beside the audio (RFC 4733 telephone-events): masked like in-band tones.

        ``spans`` are finished presses, (start, end) seconds on the call timeline; ``active_since`` is
        where a press still going on began, masked up to ``now`` (default: the end of the audio held) and
        re-marked on the next call as it grows. Which key was pressed never reaches this method: the
        transcript gets the entry's key count only. A press that the keypad detector also heard in the
        audio (senders may do both) is one press: overlapping presses count once.
        """
        until = self._held_until if now is None else now
        for start, end in spans:
            tone = DtmfTone(start, max(start, end))
            self.delay.mask(tone.start - KEYPAD_MARGIN_S, tone.end + KEYPAD_MARGIN_S, MaskReason.DTMF, "DTMF")
            self._presses.append(tone)
        if active_since is not None:
            self.delay.mask(active_since - KEYPAD_MARGIN_S, max(until, active_since), MaskReason.DTMF, "DTMF")
        if len(self._presses) > 1:
            # The same press heard in band and signalled out of band must not count as two keys. The
            # in-band detector reports a press when its tone ends, so either may come first: merged on
            # every call, whichever it was (a live call calls this each tick). An in-band press reported
            # only as the call ends is not merged.
            merged: list[DtmfTone] = []
            for press in sorted(self._presses, key=lambda p: p.start):
                if merged and press.start < merged[-1].end:
                    merged[-1] = DtmfTone(merged[-1].start, max(merged[-1].end, press.end))
                else:
                    merged.append(press)
            self._presses = merged

    def end(self) -> CallReport:
        """The call is over: settle what is pending, release everything, and build the transcript."""
        self.take_in(self.listen(None))
        return self.close()

    def close(self) -> CallReport:
        """``end`` once the listener has had its last word (a live call has it on its own thread)."""
        self._keypad(self.keypad.flush(), self._held_until)
        for released in self.delay.drain():
            self._deliver(released)
        return self._finish()

    # -- what the listener and the keypad detector say ------------------------------------------------

    def _hear(self, hearing: Hearing, *, last: bool = False) -> None:
        spans_changed = hearing.spans is not self._last_spans
        if spans_changed:
            self._last_spans = hearing.spans
            self._mark(hearing.spans)
        for start, end in hearing.unverified:
            self.delay.mask(start, end, MaskReason.UNVERIFIED)
        if hearing.final_words:
            self._words.extend(hearing.final_words)
            if self.transcript is not None:
                self.transcript.add_words(hearing.final_words)
        if spans_changed or last or hearing.final_until > self._settled_at:
            self._settle(hearing, last)
        # Cleared only after its marks are in: a span and the clearance it rests on arrive together.
        self.delay.clear_until(hearing.final_until)
        self._prune_sent()

    def _mark(self, spans: Sequence[PiiSpan]) -> None:
        """A final span masks for good. A span still open (a cue whose value is still being said, words
        still tentative) masks provisionally: ``_settle`` may take back what the words, once final, show
        was not personal data."""
        for span in spans:
            key = (span.start, span.end, span.entity, span.final)
            if key not in self._sent:
                self._sent.add(key)
                self._spans.append(span)
                self.delay.mask(span.start, span.end, MaskReason.PII, span.entity, provisional=not span.final)

    def _settle(self, hearing: Hearing, last: bool) -> None:
        """Take back provisional masking from held audio where the final words show plain talk.

        The detector is stateless, so a span can vanish from one hearing and come back in the next (a
        hypothesis flickered). Masking is therefore taken back only from the time of words that are
        final (``SETTLE_S`` behind the final point, unless the call is over) and plainly not personal
        data (``classify``: cue words, fillers, small talk), that no span of the current hearing covers
        and no word that could be a value lies near (``VALUE_WORD_GUARD_S``). Silence between words and
        words the recognizer may have misheard stay masked: speech it missed may be there.
        """
        released = self.delay.released_until
        pad_before, pad_after = self.policy.pad_before_s, self.policy.pad_after_s
        # After the last word, or in a long silence, nothing can claim the words before the final point.
        until = hearing.final_until - (0.0 if last or hearing.silent_until else SETTLE_S)
        if hearing.tentative_words and not last:
            # A word not final yet may have begun well before the final point (words are final whole),
            # and may turn out to be a value: nothing its guard would keep is judged before it is final.
            until = min(until, hearing.tentative_words[0].start - VALUE_WORD_GUARD_S - pad_before)
        self._settled_at = hearing.final_until
        if self._words and self._words[0].end < released - 1.0:
            self._words = [w for w in self._words if w.end >= released - 1.0]
        if until <= released:
            return
        keep = [(s.start - pad_before, s.end + pad_after) for s in hearing.spans]
        plain: list[tuple[float, float]] = []
        # A number said on its own ("room four", "two kids", "twenty twenty four", "at 930"), with every
        # word that could bridge it to a value final (``BRIDGE_S`` past it, or ``TALK_WORDS`` different
        # words after it, heard if not yet final: "0 what your country can do"), that no span covers, is
        # no value: plain, and so are the words beside it. Never a number beside another ("zero one
        # four"): digits read one after the other are an identifier, whatever the detector made of the
        # few it heard. Nor a numeral like "737" soon after a digit value: a security code is said so.
        words = self._words
        following = (*words, *hearing.tentative_words)
        known_until = max(hearing.final_until, hearing.silent_until)  # a long pause is silence heard
        no_value = {
            index
            for index, word in enumerate(words)
            if is_number(word)
            and (is_everyday_number(word) or not _near_digit_value(word, hearing.spans))
            and not _beside_number(words, index)
            and (last or known_until >= word.end + BRIDGE_S or _talk_follows(following[index + 1 :]))
            and not any(s.start < word.end and word.start < s.end for s in hearing.spans)
        }
        # The silence after a plain word, up to the next word, is given back with it once the listener
        # has checked that stretch for speech no word covers (``Hearing.checked_until``): speech the
        # recognizer missed there is masked as unverified, apart, by the listener's own test.
        checked = hearing.checked_until
        for index, (word, talk) in enumerate(zip(words, classify(words, no_value), strict=True)):
            if talk is Talk.PLAIN:
                after = words[index + 1].start if index + 1 < len(words) else checked
                plain.append((word.start, max(word.end, after) if after <= checked else word.end))
            elif talk is Talk.VALUE:
                # A value word's guard reaches into the pause after it as far as a span would.
                pause = words[index + 1].start - word.end if index + 1 < len(words) else math.inf
                tail = max(VALUE_WORD_GUARD_S, min(VALUE_WORD_PAUSE_GUARD_S, pause))
                keep.append((word.start - VALUE_WORD_GUARD_S - pad_before, word.end + tail + pad_after))
            else:
                keep.append((word.start, word.end))
        for start, end in _joined(plain):
            if end > released and start < until:
                for gap in _uncovered(max(start, released), min(end, until), keep):
                    self.delay.withdraw(*gap)

    def _listener_failed(self, exc: Exception, now: float) -> None:
        # The exception's message may quote what was said: log its type only.
        self.report.listener_failures += 1
        log.error(
            "call %s: listener failed (%s); audio from here on is masked as unverified",
            self.call_id,
            type(exc).__name__,
        )
        self.listener = None
        if self._listener_factory is not None:
            # A fresh listener hears only what comes next: whatever the old one had not cleared stays
            # masked, because a mark outranks any later clearance.
            self.delay.mask(self.delay.cleared_until, now, MaskReason.UNVERIFIED)
            self.listener = self._listener_factory()

    def _keypad(self, tones: list[DtmfTone], now: float) -> None:
        for tone in tones:
            self._presses.append(tone)
            self.delay.mask(tone.start - KEYPAD_MARGIN_S, tone.end + KEYPAD_MARGIN_S, MaskReason.DTMF, "DTMF")
        if self.keypad.active_since is not None:
            self.delay.mask(self.keypad.active_since - KEYPAD_MARGIN_S, now, MaskReason.DTMF, "DTMF")

    def _prune_sent(self) -> None:
        horizon = self.delay.released_until - 60.0
        if len(self._sent) > 256:
            self._sent = {key for key in self._sent if key[1] >= horizon}

    def _deliver(self, chunk: AudioChunk) -> None:
        for sink in self.sinks:
            sink.write(chunk)

    # -- the end of the call ------------------------------------------------------------------------

    def _finish(self) -> CallReport:
        report = self.report
        report.duration = self.delay.released_until
        # What was masked, not what was reported: provisional masking taken back does not count.
        report.spans_by_entity = Counter(
            stretch.entity
            for stretch in self.delay.masked
            if stretch.reason is MaskReason.PII and stretch.entity is not None
        )
        stats = self.delay.stats
        report.masked_s = {str(reason): round(stats.masked_s(reason), 3) for reason in MaskReason}
        report.late_masks = stats.late_masks
        report.late_mask_s = round(stats.late_mask_s, 3)
        report.early_audio_s = round(stats.early_audio_s, 3)
        entries = _keypad_entries(self._presses)
        report.keypad_entries = len(entries)
        report.cpu_s = time.process_time() - self._began
        report.recognizer_lag_s = self._lag.summary()
        if self.transcript is not None:
            self.transcript.add_redactions(self._redactions(entries))
            report.transcript = self.transcript.build(
                report.duration,
                stats={
                    "masked_seconds": report.masked_s,
                    "late_masks": report.late_masks,
                    "late_mask_seconds": report.late_mask_s,
                    "early_audio_seconds": report.early_audio_s,
                    "listener_failures": report.listener_failures,
                    "recognizer_lag_seconds": self._lag.summary(),
                },
            )
        return report

    def _redactions(self, entries: list[list[DtmfTone]]) -> list[Redaction]:
        """What was masked, and why: the released PII stretches (with the strongest evidence for each),
        keypad entries with their key count, and stretches nobody cleared."""
        spans = merge_spans(self._spans)
        items = []
        for stretch in self.delay.masked:
            if stretch.reason is MaskReason.PII and stretch.entity is not None:
                found = [
                    s for s in spans if s.entity == stretch.entity and s.overlaps(stretch.start, stretch.end)
                ]
                source = "cue" if any(s.source == "cue" for s in found) else "asr"
                score = max((s.score for s in found), default=0.5)
                items.append(Redaction(stretch.start, stretch.end, stretch.entity, source, score))
        items += [
            Redaction(entry[0].start, entry[-1].end, "DTMF", "dtmf", 1.0, digits=len(entry))
            for entry in entries
        ]
        items += [
            Redaction(stretch.start, stretch.end, "UNVERIFIED", "unverified", 0.0)
            for stretch in self.delay.masked
            if stretch.reason is MaskReason.UNVERIFIED
        ]
        return sorted(items, key=lambda r: r.start)


class LagSamples:
    """How far the final transcript trails the audio heard, sampled every ``every_s`` of call time.

    Audio is cleared only up to the final point, so this lag is what the delay D has to cover: it is the
    headroom figure an operator watches, kept as percentiles (no content) in the transcript's stats.
    """

    def __init__(self, every_s: float = 0.1) -> None:
        self.every_s = every_s
        self._last_slot = -1
        self._lags: list[float] = []

    def add(self, now: float, lag: float) -> None:
        slot = int(now / self.every_s + 1e-9)  # the first sample in each slot of call time
        if slot > self._last_slot:
            self._lags.append(max(0.0, lag))
            self._last_slot = slot

    def summary(self) -> dict[str, float]:
        """p50, p95 and max in seconds; empty when nothing was heard (no listener, or no audio)."""
        if not self._lags:
            return {}
        ordered = sorted(self._lags)
        return {
            "p50": round(_percentile(ordered, 0.50), 3),
            "p95": round(_percentile(ordered, 0.95), 3),
            "max": round(ordered[-1], 3),
        }


def _percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile of ``ordered`` (ascending, not empty)."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


#: Plain words closer than this are taken back with the gap between them: no whole word fits in it
#: beside the words' own loose edges (the shortest spoken digits last about 0.2 s, and Whisper's edges
#: reach 0.1-0.2 s into a pause), so it is a pause, not speech it missed. Speech it missed near values
#: is the listener's to find (``speech.unheard``); over the perturbed calls, 0.25 s leaked no digit
#: that 0.1 s did not.
_WORD_JOIN_S = 0.25


#: A number this close to another, with nothing between them, is read with it.
_NUMBERS_APART_S = 1.5


#: Different words, at least, between a number and the next before the number is taken for talk: more
#: than a bridge spans (``BRIDGE_WORDS``), since a digit misheard as a word or two is common.
TALK_WORDS = 2


#: Digit values said within this long of each other are one exchange of data: card, expiry, code.
VALUE_CONTEXT_S = 5.0


def _near_digit_value(word: Word, spans: Sequence[PiiSpan]) -> bool:
    """Whether a span of a digit value (a card, a phone number...) lies within ``VALUE_CONTEXT_S``."""
    return any(
        span.entity in DIGIT_ENTITIES
        and span.score > LONE_DIGITS_SCORE  # a value, not digits that may yet start one
        and span.start - VALUE_CONTEXT_S < word.end
        and word.start < span.end + VALUE_CONTEXT_S
        for span in spans
    )


def _talk_follows(words: Sequence[Word]) -> bool:
    """Whether ``TALK_WORDS`` different words come before the next number."""
    said: set[str] = set()
    for word in words:
        if is_number(word):
            return False
        text = bare(word)
        if sum(char.isalpha() for char in text) > 1:
            said.add(text)
            if len(said) >= TALK_WORDS:
                return True
    return False


def _beside_number(words: Sequence[Word], index: int) -> bool:
    """Whether the word at ``index`` is read with another number: right beside it (within
    ``_NUMBERS_APART_S``), or with at most two words between them in the time two digits take
    (``TWO_DIGITS_S``: "9. You will 8." for "9 0 1 8"), as the detector bridges digits."""
    word = words[index]
    for step in (-1, 1):
        other, between = index + step, 0
        while 0 <= other < len(words) and between <= 2:
            near = words[other]
            gap = word.start - near.end if step < 0 else near.start - word.end
            if is_number(near):
                return gap <= (_NUMBERS_APART_S if between == 0 else TWO_DIGITS_S)
            if gap > TWO_DIGITS_S:
                break
            between += 1
            other += step
    return False


def _joined(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """``intervals`` with those that touch or nearly touch merged: plain words said back to back are taken
    back in one piece, or a sliver of mask (and the fades around it) would stay at each word boundary."""
    joined: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if joined and start <= joined[-1][1] + _WORD_JOIN_S:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


def _uncovered(start: float, end: float, covered: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of ``[start, end)`` that no interval in ``covered`` touches, in order."""
    gaps: list[tuple[float, float]] = []
    at = start
    for lo, hi in sorted(covered):
        if hi <= at:
            continue
        if lo >= end:
            break
        if lo > at:
            gaps.append((at, lo))
        at = max(at, hi)
    if at < end:
        gaps.append((at, end))
    return gaps


def _keypad_entries(presses: Sequence[DtmfTone]) -> list[list[DtmfTone]]:
    entries: list[list[DtmfTone]] = []
    for press in sorted(presses, key=lambda p: p.start):
        if entries and press.start - entries[-1][-1].end <= KEYPAD_ENTRY_GAP_S:
            entries[-1].append(press)
        else:
            entries.append([press])
    return entries
