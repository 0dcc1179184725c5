"""The delay line: the safety gate that holds call audio for D seconds, then releases it cleared or masked.

A sample goes out unchanged only if the listening side cleared it and no mark covers it; anything else is
masked when its release time comes (fail closed). Release runs on the caller's clock, never on arrivals.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bleepline.audio.tones import tone
from bleepline.redact.policy import MaskMode, MaskReason, RedactionPolicy
from bleepline.timeline import AudioChunk, Samples

Gain = npt.NDArray[np.float32]

#: Times are floats of seconds; this much of a sample absorbs float error (0.06 * 8000 is 479.99999…).
_SNAP = 1e-6
#: How far back a late mark is checked against what went out masked. Older audio counts as leaked even if
#: it was masked: the leak metric may overcount, never undercount, and memory stays bounded.
_LATE_LOOKBACK_S = 60.0
#: Audio may arrive this much earlier than the release clock expects (jitter, clock drift, bursts from a
#: file) and still be held; beyond it, it is dropped and counted as early.
DEFAULT_HEADROOM_S = 2.0


@dataclass(frozen=True)
class MaskedStretch:
    """A released stretch of the timeline (seconds) whose audio was replaced, and why."""

    start: float
    end: float
    reason: MaskReason
    entity: str | None = None


@dataclass(frozen=True)
class LateMask:
    """A mark that came after part of its stretch had already gone out unmasked: a leak.

    ``start``/``end`` are the padded stretch asked for; ``leaked_s`` is how much of it had been released
    unmasked before the mark arrived (audio masked for another reason at release does not count).
    """

    start: float
    end: float
    reason: MaskReason
    entity: str | None
    leaked_s: float


@dataclass
class DelayLineStats:
    """Counters for one call's delay line. Samples are at ``sample_rate``; ``*_s`` properties in seconds."""

    sample_rate: int
    capacity_samples: int
    released_samples: int = 0
    masked_samples: dict[MaskReason, int] = field(default_factory=lambda: dict.fromkeys(MaskReason, 0))
    late_masks: int = 0
    late_mask_samples: int = 0
    late_audio_samples: int = 0
    unheard_audio_samples: int = 0
    early_audio_samples: int = 0
    withdrawn_samples: int = 0
    held_samples: int = 0
    max_held_samples: int = 0

    def masked_s(self, reason: MaskReason) -> float:
        return self.masked_samples[reason] / self.sample_rate

    @property
    def released_s(self) -> float:
        return self.released_samples / self.sample_rate

    @property
    def late_mask_s(self) -> float:
        return self.late_mask_samples / self.sample_rate

    @property
    def late_audio_s(self) -> float:
        return self.late_audio_samples / self.sample_rate

    @property
    def unheard_audio_s(self) -> float:
        return self.unheard_audio_samples / self.sample_rate

    @property
    def early_audio_s(self) -> float:
        return self.early_audio_samples / self.sample_rate

    @property
    def withdrawn_s(self) -> float:
        """Provisional marks taken back before release: time they no longer cover (a firm mark may)."""
        return self.withdrawn_samples / self.sample_rate

    @property
    def held_s(self) -> float:
        return self.held_samples / self.sample_rate

    @property
    def max_held_s(self) -> float:
        return self.max_held_samples / self.sample_rate

    @property
    def fill(self) -> float:
        """How full the ring is now, 0..1."""
        return self.held_samples / self.capacity_samples


@dataclass(slots=True)
class _Mark:
    """A mark on the timeline in samples (padded); mutable so that re-reported spans extend it in place."""

    start: int
    end: int
    reason: MaskReason
    entity: str | None
    beep: bool
    provisional: bool = False  # may be withdrawn before release (``DelayLine.withdraw``)

    def outranks(self, other: _Mark) -> bool:
        """Whether a sample both cover is reported under this mark rather than ``other``."""
        # PII and DTMF name what was there; unverified only says nobody looked. Between equals, the first.
        rank = self.reason is MaskReason.UNVERIFIED, self.start
        return rank < (other.reason is MaskReason.UNVERIFIED, other.start)


@dataclass(slots=True)
class _Stretch:
    """The masked stretch going out now: extended release by release while reason and entity hold."""

    start: int
    end: int
    reason: MaskReason
    entity: str | None


class DelayLine:
    """Holds one call's audio on its timeline and releases it, masked where it must be.

    Per chunk: ``push`` it (before the listener hears it), then ``mask`` what the listener and the keypad
    detector marked, then ``clear_until`` how far the transcript is final (after the marks it rests on).
    ``release_until(t)`` whenever the caller's clock says everything before ``t`` may go (live: wall clock
    minus the delay, mapped to the call timeline; a file: the audio itself). ``drain`` at the end.
    Not thread-safe: one call, one delay line, one thread at a time.
    """

    def __init__(
        self, sample_rate: int, policy: RedactionPolicy, *, headroom_s: float = DEFAULT_HEADROOM_S
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        if not (math.isfinite(headroom_s) and headroom_s >= 0.0):
            raise ValueError(f"delay line headroom must be >= 0 s, got {headroom_s}")
        self.sample_rate = sample_rate
        self.policy = policy
        # A ring, not a growing list: memory is fixed by the delay, however long the call.
        self._capacity = math.ceil((policy.delay_s + headroom_s) * sample_rate)
        self._ring: Samples = np.zeros(self._capacity, dtype=np.int16)
        self._released = 0  # every sample before this has gone out
        self._cleared = 0  # every sample before this is transcribed for good
        self._input_end = 0  # one past the last sample pushed
        self._marks: list[_Mark] = []
        self._unverified_beep = policy.unverified_mode is MaskMode.BEEP
        self._fade = round(policy.fade_ms * sample_rate / 1000.0)  # samples in one ramp
        self._reach = 2 * self._fade  # how far an edge's ramps reach outside its stretch (beep: two)
        # Raised-cosine ramp, as in audio.tones.fade_envelope: 0 < rise[k] < 1, rising.
        k = np.arange(self._fade, dtype=np.float64)
        self._rise: Gain = (0.5 - 0.5 * np.cos(np.pi * (k + 0.5) / max(self._fade, 1))).astype(np.float32)
        self._fall: Gain = self._rise[::-1].copy()
        self._ones: Gain = np.ones(self._fade, dtype=np.float32)
        # Gains of the last sample released. The next release continues down the same ramps from there,
        # which is exactly what a known edge does anyway; it matters when an edge is learnt only at a
        # release boundary (clear overtaking a masked stretch), which then fades out instead of clicking.
        self._last_mask = 0.0
        self._last_beep = 0.0
        self._open: _Stretch | None = None
        self._accounted: list[list[int]] = []  # released stretches masked or already counted as leaked
        self.masked: list[MaskedStretch] = []
        self.late: list[LateMask] = []
        self.stats = DelayLineStats(sample_rate, self._capacity)

    # -- what the caller asks -----------------------------------------------------------------------

    @property
    def released_until(self) -> float:
        """Seconds on the call timeline before which everything has gone out."""
        return self._released / self.sample_rate

    @property
    def cleared_until(self) -> float:
        return self._cleared / self.sample_rate

    @property
    def capacity_s(self) -> float:
        return self._capacity / self.sample_rate

    @property
    def marks_held(self) -> int:
        """Marks not yet released in full; they are forgotten once their stretch and fade-out went out."""
        return len(self._marks)

    def push(self, chunk: AudioChunk) -> None:
        """Raw audio in, before the listener hears it. Some of it is dropped, counted, never written:

        what falls before the release point (late), and what falls before the clear point (unheard): the
        listener cleared that time without hearing this audio, so it must not go out on its word.
        """
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(f"a {chunk.sample_rate} Hz chunk pushed into a {self.sample_rate} Hz delay line")
        start, end, samples = chunk.start, chunk.end, chunk.samples
        floor = max(self._released, self._cleared)
        if start < floor:
            late = max(0, min(end, self._released) - start)
            cut = min(end, floor) - start
            self.stats.late_audio_samples += late
            self.stats.unheard_audio_samples += cut - late
            if end <= floor:
                return
            samples, start = samples[cut:], floor
        limit = self._released + self._capacity
        if end > limit:
            # The caller's clock is behind the audio by more than the ring holds: keep what fits. What
            # is dropped goes out as silence, which is safe; the counter shows the clock mapping is off.
            self.stats.early_audio_samples += end - max(start, limit)
            if start >= limit:
                return
            samples, end = samples[: limit - start], limit
        at = start % self._capacity
        first = min(end - start, self._capacity - at)
        self._ring[at : at + first] = samples[:first]
        if first < end - start:
            self._ring[: end - start - first] = samples[first:]
        if end > self._input_end:
            self._input_end = end
            self._note_held()

    def mask(
        self,
        start: float,
        end: float,
        reason: MaskReason,
        entity: str | None = None,
        *,
        provisional: bool = False,
    ) -> None:
        """Mask ``[start - pad_before, end + pad_after)`` seconds. ``entity`` is a type, never a value.

        Every reason is padded, unverified too (its edges are window cuts a word may straddle). A mark
        outranks any clearance. Re-reporting a span as it grows is expected and cheap: overlapping marks
        of the same reason, entity and firmness merge. What already went out unmasked is recorded in
        ``late``. A ``provisional`` mark masks like any other unless ``withdraw`` takes it back first.
        """
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError("mask times must be finite seconds")
        reason = MaskReason(reason)  # a plain "pii" from a config or a test must not become a new kind
        if end < start:
            raise ValueError(f"mask ends ({end:.3f} s) before it starts ({start:.3f} s)")
        first = max(0, math.floor((start - self.policy.pad_before_s) * self.sample_rate + _SNAP))
        last = math.ceil((end + self.policy.pad_after_s) * self.sample_rate - _SNAP)
        if last <= first:
            return
        if first < self._released:
            self._count_late(first, last, reason, entity)
            first = self._released
            if last <= first:
                return
        beep = self.policy.mode_for(reason) is MaskMode.BEEP
        merged = _Mark(first, last, reason, entity, beep, provisional)
        kept: list[_Mark] = []
        for mark in self._marks:
            if (
                mark.reason is reason
                and mark.entity == entity
                and mark.provisional == provisional
                and mark.start <= last
                and first <= mark.end
            ):
                merged.start, merged.end = min(merged.start, mark.start), max(merged.end, mark.end)
            else:
                kept.append(mark)
        kept.append(merged)
        self._marks = kept

    def withdraw(self, start: float, end: float) -> float:
        """Take provisional marks back from ``[start, end)`` seconds (no padding); firm marks stay.

        Only audio still held can be unmasked, and not the last few milliseconds before the release
        point: a mask's fades reach that far, and a fade already under way must finish. Returns the
        seconds unmasked.
        """
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError("withdraw times must be finite seconds")
        first = max(math.ceil(start * self.sample_rate - _SNAP), self._released + 2 * self._reach)
        last = math.floor(end * self.sample_rate + _SNAP)
        if last <= first:
            return 0.0
        kept: list[_Mark] = []
        taken: list[list[int]] = []
        for mark in self._marks:
            if not mark.provisional or mark.end <= first or last <= mark.start:
                kept.append(mark)
                continue
            _add_interval(taken, max(first, mark.start), min(last, mark.end))
            if mark.start < first:
                kept.append(_Mark(mark.start, first, mark.reason, mark.entity, mark.beep, True))
            if last < mark.end:
                kept.append(_Mark(last, mark.end, mark.reason, mark.entity, mark.beep, True))
        self._marks = kept
        # Time some provisional mark no longer covers (a firm mark may still mask part of it).
        samples = sum(hi - lo for lo, hi in taken)
        self.stats.withdrawn_samples += samples
        return samples / self.sample_rate

    def clear_until(self, t: float) -> None:
        """Everything before ``t`` seconds is transcribed for good and the detector has seen it.

        Monotonic: a smaller ``t`` than before changes nothing. If it never comes, nothing is cleared.
        """
        if not math.isfinite(t):
            raise ValueError("clear_until needs finite seconds")
        cleared = math.floor(t * self.sample_rate + _SNAP)
        if cleared > self._cleared:
            self._cleared = cleared

    def release_until(self, t: float) -> list[AudioChunk]:
        """Everything before ``t`` seconds goes out now: unchanged where cleared and unmarked, else masked.

        A stretch nothing was pushed for goes out as silence (gaps are never squeezed out). Usually one
        chunk; a release longer than the ring comes in ring-sized pieces.
        """
        if not math.isfinite(t):
            raise ValueError("release_until needs finite seconds")
        return self._release_to(math.floor(t * self.sample_rate + _SNAP))

    def drain(self) -> list[AudioChunk]:
        """The call is over: release everything held (uncleared parts masked) and close the masked log."""
        chunks = self._release_to(max(self._input_end, self._released))
        self._close_stretch()
        return chunks

    def take_masked(self) -> list[MaskedStretch]:
        """Hand over the masked stretches finished so far and forget them (the transcript keeps them)."""
        taken, self.masked = self.masked, []
        return taken

    def take_late(self) -> list[LateMask]:
        """Hand over the late masks recorded so far and forget them (the counters in ``stats`` stay)."""
        taken, self.late = self.late, []
        return taken

    # -- release ------------------------------------------------------------------------------------

    def _release_to(self, until: int) -> list[AudioChunk]:
        chunks: list[AudioChunk] = []
        while self._released < until:
            start = self._released
            end = min(until, start + self._capacity)
            chunks.append(AudioChunk(self._release_piece(start, end), self.sample_rate, start))
            self._released = end
        if chunks:
            self._note_held()
            self._prune()
        return chunks

    def _release_piece(self, start: int, end: int) -> Samples:
        samples = self._take_from_ring(start, end)
        self.stats.released_samples += end - start
        # The stretches masked in full; audio not cleared yet counts as one more, unverified, mark.
        covered: list[tuple[int, int, _Mark]] = []
        if self._cleared < end:
            frontier = _Mark(self._cleared, end, MaskReason.UNVERIFIED, None, self._unverified_beep)
            covered.append((max(start, self._cleared), end, frontier))
        for mark in self._marks:
            if mark.start < end and mark.end > start:
                covered.append((max(start, mark.start), min(end, mark.end), mark))
        near = [m for m in self._marks if m.start - self._reach < end and m.end + self._reach > start]
        # Fade towards the uncleared tail ahead of time, unless nothing held lies past it (end of call).
        frontier_band = start < self._cleared < min(end + self._reach, self._input_end)
        if not covered:
            self._close_stretch()
            if not near and not frontier_band and self._last_mask == 0.0:
                return samples  # the common case: cleared, unmarked, no fade under way
        else:
            self._log_covered(end, covered)
            whole = self._whole_piece(start, end, covered, near, frontier_band)
            if whole is not None:
                return whole
        masked, beeped = self._gains(start, end, covered, near, frontier_band)
        self._last_mask, self._last_beep = float(masked[-1]), float(beeped[-1])
        if not masked.any():
            return samples
        mixed = samples.astype(np.float32)
        mixed *= 1.0 - masked  # exactly 0 where masked in full: no trace of the original survives
        if beeped.any():
            beep = tone(start, end - start, self.sample_rate, self.policy.beep)
            mixed += beep.astype(np.float32) * beeped
        return np.round(mixed).astype(np.int16)

    def _whole_piece(
        self,
        start: int,
        end: int,
        covered: list[tuple[int, int, _Mark]],
        near: list[_Mark],
        frontier_band: bool,
    ) -> Samples | None:
        """The mask alone when one stretch covers the whole piece (a stall, a long number): no mixing."""
        spanning = [mark for lo, hi, mark in covered if lo == start and hi == end]
        if not spanning:
            return None
        if any(mark.beep for mark in spanning):
            self._last_mask, self._last_beep = 1.0, 1.0
            return tone(start, end - start, self.sample_rate, self.policy.beep)
        fading_beep = (
            self._last_beep > 0.0
            or (frontier_band and self._unverified_beep)
            or any(mark.beep for mark in near)
        )
        if fading_beep:
            return None  # silence with a beep fading in or out over it: mix
        self._last_mask, self._last_beep = 1.0, 0.0
        return np.zeros(end - start, dtype=np.int16)

    def _gains(
        self,
        start: int,
        end: int,
        covered: list[tuple[int, int, _Mark]],
        near: list[_Mark],
        frontier_band: bool,
    ) -> tuple[Gain, Gain]:
        """Per sample: how much mask (0..1) replaces the original, and how much of that mask is beep."""
        masked = np.zeros(end - start, dtype=np.float32)
        beeped = np.zeros(end - start, dtype=np.float32)
        # Fades first, all outside the stretches they lead into or out of.
        if frontier_band:
            self._edge_in(masked, beeped, start, self._cleared, self._unverified_beep)
        for mark in near:
            self._edge_in(masked, beeped, start, mark.start, mark.beep)
            self._edge_out(masked, beeped, start, mark.end, mark.beep)
        if self._last_mask > 0.0:
            self._carry(masked, beeped)
        # Then the stretches themselves, in full: gain exactly 1, whatever a fade said. Where a beep and
        # silence overlap the beep sounds (the reason reported is decided in _log_covered).
        for lo, hi, mark in covered:
            masked[lo - start : hi - start] = 1.0
            if mark.beep:
                beeped[lo - start : hi - start] = 1.0
        return masked, beeped

    # One edge, in and out. Into a beep: the original fades out over one ramp, then the beep fades in over
    # the next; one after the other, never both at once, so no sample steps further than the beep itself
    # does. Into silence: the original fades out over one ramp. Out of a stretch: the same, reversed.

    def _edge_in(self, masked: Gain, beeped: Gain, start: int, at: int, beep: bool) -> None:
        ramp = self._fade
        if beep:
            _lay(masked, start, at - 2 * ramp, self._rise)
            _lay(masked, start, at - ramp, self._ones)
            _lay(beeped, start, at - ramp, self._rise)
        else:
            _lay(masked, start, at - ramp, self._rise)

    def _edge_out(self, masked: Gain, beeped: Gain, start: int, at: int, beep: bool) -> None:
        ramp = self._fade
        if beep:
            _lay(beeped, start, at, self._fall)
            _lay(masked, start, at, self._ones)
            _lay(masked, start, at + ramp, self._fall)
        else:
            _lay(masked, start, at, self._fall)

    def _carry(self, masked: Gain, beeped: Gain) -> None:
        """Fade out from the last released gains: the beep down its ramp first, then the original back in."""
        beep_tail = self._tail(self._last_beep)
        mask_tail = np.concatenate(
            (np.full(len(beep_tail), self._last_mask, dtype=np.float32), self._tail(self._last_mask))
        )
        _lay(beeped, 0, 0, beep_tail)
        _lay(masked, 0, 0, mask_tail)

    def _tail(self, last: float) -> Gain:
        """The rest of the falling ramp below gain ``last``."""
        steps = int(np.searchsorted(self._rise, np.float32(last), side="left"))
        return self._rise[:steps][::-1]

    def _take_from_ring(self, start: int, end: int) -> Samples:
        """Copy ``[start, end)`` out and zero it, so a slot not written again reads as silence."""
        at = start % self._capacity
        count = end - start
        if at + count <= self._capacity:
            samples = self._ring[at : at + count].copy()
            self._ring[at : at + count] = 0
            return samples
        head = self._capacity - at
        samples = np.concatenate((self._ring[at:], self._ring[: count - head]))
        self._ring[at:] = 0
        self._ring[: count - head] = 0
        return samples

    # -- bookkeeping --------------------------------------------------------------------------------

    def _log_covered(self, end: int, covered: list[tuple[int, int, _Mark]]) -> None:
        """Count masked samples by reason and extend the masked log, each sample under its top mark."""
        if len(covered) == 1:
            pieces = [covered[0]]  # the usual case: one mark, or only the uncleared tail
        else:
            edges = sorted({edge for lo, hi, _ in covered for edge in (lo, hi)})
            pieces = []
            for lo, hi in itertools.pairwise(edges):
                over = [mark for c_lo, c_hi, mark in covered if c_lo <= lo and hi <= c_hi]
                if over:
                    top = over[0]
                    for mark in over[1:]:
                        if mark.outranks(top):
                            top = mark
                    pieces.append((lo, hi, top))
        for lo, hi, mark in pieces:
            self.stats.masked_samples[mark.reason] += hi - lo
            self._extend_stretch(lo, hi, mark.reason, mark.entity)
            _add_interval(self._accounted, lo, hi)
        if self._open is not None and self._open.end != end:
            self._close_stretch()

    def _extend_stretch(self, lo: int, hi: int, reason: MaskReason, entity: str | None) -> None:
        current = self._open
        if current is not None and current.end == lo and (current.reason, current.entity) == (reason, entity):
            current.end = hi
            return
        self._close_stretch()
        self._open = _Stretch(lo, hi, reason, entity)

    def _close_stretch(self) -> None:
        if self._open is not None:
            rate, done = self.sample_rate, self._open
            self.masked.append(MaskedStretch(done.start / rate, done.end / rate, done.reason, done.entity))
            self._open = None

    def _count_late(self, first: int, last: int, reason: MaskReason, entity: str | None) -> None:
        """Record what of ``[first, last)`` already went out unmasked, once (marks are re-reported)."""
        released = min(last, self._released)
        leaked = _uncovered(self._accounted, first, released)
        _add_interval(self._accounted, first, released)
        if leaked == 0:
            return
        self.stats.late_masks += 1
        self.stats.late_mask_samples += leaked
        rate = self.sample_rate
        self.late.append(LateMask(first / rate, last / rate, reason, entity, leaked / rate))

    def _note_held(self) -> None:
        held = max(0, self._input_end - self._released)
        self.stats.held_samples = held
        if held > self.stats.max_held_samples:
            self.stats.max_held_samples = held

    def _prune(self) -> None:
        """Forget marks whose stretch and fade-out have gone out, and late-check history past the lookback."""
        gone = self._released - self._reach
        if any(mark.end <= gone for mark in self._marks):
            self._marks = [mark for mark in self._marks if mark.end > gone]
        horizon = self._released - round(_LATE_LOOKBACK_S * self.sample_rate)
        while self._accounted and self._accounted[0][1] <= horizon:
            self._accounted.pop(0)


def _add_interval(intervals: list[list[int]], lo: int, hi: int) -> None:
    """Add ``[lo, hi)`` to sorted, disjoint ``intervals``, merging what touches."""
    if hi <= lo:
        return
    if not intervals or lo > intervals[-1][1]:
        intervals.append([lo, hi])  # the usual cases: at or just after the release point
        return
    if lo >= intervals[-1][0]:
        intervals[-1][1] = max(intervals[-1][1], hi)
        return
    merged = [lo, hi]
    kept: list[list[int]] = []
    for interval in intervals:
        if interval[1] < merged[0] or interval[0] > merged[1]:
            kept.append(interval)
        else:
            merged = [min(merged[0], interval[0]), max(merged[1], interval[1])]
    kept.append(merged)
    kept.sort()
    intervals[:] = kept


def _uncovered(intervals: list[list[int]], lo: int, hi: int) -> int:
    """Samples of ``[lo, hi)`` that no interval covers."""
    if hi <= lo:
        return 0
    covered = sum(max(0, min(hi, b) - max(lo, a)) for a, b in intervals)
    return hi - lo - covered


def _lay(gain: Gain, start: int, at: int, values: Gain) -> None:
    """Raise ``gain`` (samples from timeline index ``start``) to ``values`` laid from index ``at``."""
    lo, hi = max(at, start), min(at + len(values), start + len(gain))
    if lo < hi:
        part = gain[lo - start : hi - start]
        np.maximum(part, values[lo - at : hi - at], out=part)
