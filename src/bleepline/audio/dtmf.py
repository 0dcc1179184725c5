"""Keypad (DTMF) tones in call audio, found as it arrives, so key presses are masked like spoken PII.

Only when a key was pressed leaves this module, never which key: it holds no table of key labels.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import numpy.typing as npt

from bleepline.timeline import AudioChunk, Samples

#: ITU-T Q.23 signalling frequencies (Hz): one of each group makes a key.
ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COLUMN_HZ = (1209.0, 1336.0, 1477.0, 1633.0)

#: The lowest rate taken: the upper column tone's second harmonic (3266 Hz) must sit below Nyquist.
MIN_SAMPLE_RATE = 8000

_FULL_SCALE = 32768.0
# Q.23 senders keep within 1.5 % of the nominal frequencies; probes 1 % either side leave at most 0.5 %.
_TOLERANCE = 0.015
_PROBE = 0.01
# Terms per window that measure the tones themselves (8 tones x 3 probes); the harmonics follow.
_TONE_TERMS = 24
# Windows analysed in one matrix product at most.
_BATCH = 512
_Floats = npt.NDArray[np.float64]


def _whole(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


@dataclass(frozen=True)
class DtmfOptions:
    """How a key press is told from speech, music and noise (ITU-T Q.24), and how its edges are found.

    Levels are per tone: a sine's peak relative to full scale, so a full-scale sine is 0 dBFS. Twist is the
    column (high) tone's level minus the row (low) tone's.

    Why the defaults (measured with ``tests/audio/test_dtmf.py``'s generated presses, and by hand on the
    real and synthetic speech beside the project: 21 minutes of it, as recorded and again peak-normalised
    to -1 dBFS). Speech windows that pass the level, twist and harmonic tests stand 10-16 dB above the
    other tones of their group and put at most about 0.8 of their energy in the two tones; a press stands
    25-50 dB above its group and puts over 0.9 in them at 20 dB SNR. At 14 dB and 0.7 speech passed in
    10 windows of those 42 minutes, never more than two in a row, so a press needs three (a 40 ms press
    gives five or six). At 10 dB, runs of three windows appeared (of four at 0.6). The price: presses
    must stand about 10 dB above white noise (all at -15 dBFS in -30 dBFS noise; at -20 dBFS, 121 of 144
    with worst-case twist and frequency error; at -25 dBFS, few).
    """

    block_ms: float = 27.5
    """Analysis window (Hann). At 8 kHz, 220 samples: the first null of one tone's response (72.7 Hz)
    falls on its row neighbour (697 and 770 Hz are 73 Hz apart), so each row tone is resolved."""
    hop_ms: float = 5.0
    """Step between windows: edges are interpolated between window centres this far apart."""
    min_level_dbfs: float = -33.0
    """Both tones at least this loud. Q.24 receivers operate down to about -25 dBm0 per tone (-28 dBFS in
    G.711); 5 dB more leaves room for twist and line loss."""
    max_high_over_low_db: float = 4.0
    """Twist limit with the column tone louder ("normal" twist, as handsets send it)."""
    max_low_over_high_db: float = 8.0
    """Twist limit with the row tone louder ("reverse": a long line loses more of the high group)."""
    relative_peak_db: float = 14.0
    """Each tone this far above every other tone of its own group (at the nominal frequencies)."""
    min_tone_fraction: float = 0.7
    """The two tones carry at least this share of the window's energy: speech and music spread theirs."""
    max_harmonic_db: float = -15.0
    """A tone's second harmonic at most this far relative to it: voices and instruments have strong ones,
    a keypad's sines next to none."""
    min_tone_ms: float = 30.0
    """Presses this long between their edges count. Q.24: accept 40 ms, reject under 23 ms; a 30 ms
    press measures 28 ms here, a 33 ms one 31 ms."""
    min_key_ms: float = 15.0
    """Windows that pass every test must add up to this much (three at 5 ms) for a press to count."""
    bridge_ms: float = 20.0
    """Windows that fail for up to this long (centre to centre) inside one press do not split it. A 10 ms
    drop-out (Q.24 bridges those) fails about 20 ms of windows, a 40 ms pause about 50 ms."""
    min_active_ms: float = 10.0
    """A press is reported in progress (``active_since``) once the key has held this long."""

    def __post_init__(self) -> None:
        for name in (
            "block_ms",
            "hop_ms",
            "min_level_dbfs",
            "max_high_over_low_db",
            "max_low_over_high_db",
            "relative_peak_db",
            "min_tone_fraction",
            "max_harmonic_db",
            "min_tone_ms",
            "min_key_ms",
            "bridge_ms",
            "min_active_ms",
        ):
            if not _number(getattr(self, name)):
                raise ValueError(f"DTMF option {name} must be a finite number, got {getattr(self, name)!r}")
        if not 0 < self.hop_ms <= self.block_ms:
            raise ValueError(f"hop_ms must be > 0 and <= block_ms ({self.block_ms}), got {self.hop_ms}")
        if self.min_level_dbfs > 0:
            raise ValueError(f"min_level_dbfs must be <= 0 dBFS, got {self.min_level_dbfs}")
        if not 0 < self.min_tone_fraction <= 1:
            raise ValueError(f"min_tone_fraction must be in (0, 1], got {self.min_tone_fraction}")
        for name in ("max_high_over_low_db", "max_low_over_high_db", "relative_peak_db", "min_tone_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("min_key_ms", "bridge_ms", "min_active_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 ms, got {getattr(self, name)}")


@dataclass(frozen=True)
class DtmfTone:
    """One key press on the call timeline (seconds from the call's first sample, on whole samples), its
    edges where its tones are at half amplitude.

    Which key it was is deliberately not here: a press is personal data in itself only as a count.
    """

    start: float
    end: float

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"key press ends ({self.end}) before it starts ({self.start})")

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class DtmfStats:
    """Counters since the detector was made.

    ``windows``: windows analysed; ``key_windows``: those that passed every test for some key; ``tones``:
    presses reported; ``too_short``: runs of key windows rejected as too short to be a press (under
    ``min_tone_ms`` between their edges, or under ``min_key_ms`` of key windows); ``gap_windows``: windows
    inside gaps between chunks, taken as silence without being analysed.
    """

    windows: int = 0
    key_windows: int = 0
    tones: int = 0
    too_short: int = 0
    gap_windows: int = 0


@dataclass(repr=False)
class _Press:
    """A run of windows that all looked like the same key. ``key`` never leaves this module.

    ``head`` holds the term powers of the windows around the run's first one (from window ``head_base``,
    up to ``reach + 1`` before it), for its rising edge; ``tail`` the latest windows, for its falling
    edge. Both are bounded, so a key held for an hour costs no more memory than a short press.
    """

    key: int
    first: int
    last: int
    head_base: int
    head: list[_Floats]
    tail: deque[tuple[int, _Floats]]
    windows: int = 1
    active: bool = False
    start: float | None = None

    def __repr__(self) -> str:
        # A traceback that shows locals must not show the key.
        return f"_Press(windows {self.first}-{self.last}, {self.windows} with the key)"


class DtmfDetector:
    """Finds key presses in one call's audio, chunk by chunk, on the call's timeline, at any rate >= 8 kHz.

    Chunks may be of any size and must not go back on the timeline; a gap between chunks is silence.
    Windows sit on a fixed grid of the timeline, so how the audio is cut does not change the result.
    Tones are analysed at the call's own rate: no resampler, so no filter delay and times exact to the
    sample; every test is a ratio of powers or a level, so no threshold depends on the rate.

    A press is a run of windows that each pass every Q.24 test for the same key, with drop-outs up to
    ``bridge_ms`` bridged; a different key ends it at once. Its edges are where its weaker tone crosses
    half its peak amplitude, interpolated between window centres: a symmetric window half over a step
    edge sees half the tone, whatever the level, so the edges do not move with loudness.
    """

    #: Whether ``_analyse`` may stop early at ``_may_hold_key``. Always on; the tests turn it off to
    #: show that the shortcut changes no result.
    _gated = True

    def __init__(self, sample_rate: int, options: DtmfOptions = DtmfOptions()) -> None:
        if not _whole(sample_rate) or sample_rate < MIN_SAMPLE_RATE:
            raise ValueError(
                f"DTMF detection needs a whole sample rate of at least {MIN_SAMPLE_RATE} Hz, "
                f"got {sample_rate!r}"
            )
        self.sample_rate = int(sample_rate)
        self.options = options
        rate = self.sample_rate
        self._window = max(2, round(rate * options.block_ms / 1000))
        self._hop = max(1, round(rate * options.hop_ms / 1000))
        self._basis, self._weights2, self._gain = _analysis(rate, self._window)
        self._column_masks_harmonic = _harmonic_masks(rate, self._window)
        self._terms = self._basis.shape[1] // 2
        # A sine of amplitude A gives a term of power (A * gain / 2)^2 and windowed energy
        # A^2 / 2 * sum(w^2): these turn term powers into levels and shares of the window's energy.
        self._tone_share = 2 * float(self._weights2.sum()) / self._gain**2
        amplitude = _FULL_SCALE * 10 ** (options.min_level_dbfs / 20)
        self._level_floor = (amplitude * self._gain / 2) ** 2
        self._relative = 10 ** (options.relative_peak_db / 10)
        self._high_over_low = 10 ** (options.max_high_over_low_db / 10)
        self._low_over_high = 10 ** (options.max_low_over_high_db / 10)
        self._harmonic = 10 ** (options.max_harmonic_db / 10)
        # How many windows an edge may lie from the run's first (or last) window: a window that holds
        # only a sliver of the tone can already pass every test, in silence.
        self._reach = -(-self._window // self._hop) + 1
        self._bridge = int(options.bridge_ms * rate / 1000 // self._hop)
        self._min_windows = max(1, math.ceil(options.min_key_ms / options.hop_ms - 1e-9))
        self._min_active = max(1, math.ceil(options.min_active_ms * rate / 1000 / self._hop))
        self._head_size = 2 * self._reach + 2
        self._tail_size = 2 * self._reach + self._bridge + 4
        # Windows that must follow a run's last one before its falling edge is surely in view, and
        # windows of silence after which nothing is open or waiting any more.
        self._settle = max(self._reach + 1, self._bridge + 1)
        self._drain = self._bridge + self._settle + 2

        # Timeline in samples. Window j covers [j * hop, j * hop + window); ``_buffer`` holds the samples
        # from the start of window ``_next_block`` onward.
        self._next_block = 0
        self._buffer: Samples = np.zeros(0, dtype=np.int16)
        self._stream_start: int | None = None
        self._input_next = 0
        self._flushed = False

        # The latest windows' term powers, for the rising edge of a press that starts: batches of
        # (first window, powers of it and the windows after it). Every batch holds at least one window,
        # so these hold at least the ``reach + 2`` windows a press looks back on.
        self._recent: deque[tuple[int, _Floats]] = deque(maxlen=self._reach + 2)
        self._open: _Press | None = None
        self._closing: deque[_Press] = deque()
        self._last_end = 0.0
        self._decided = 0.0

        self._windows = 0
        self._key_windows = 0
        self._tones = 0
        self._too_short = 0
        self._gap_windows = 0

    def __repr__(self) -> str:
        # Counts and times only: the key of a press in progress must never reach a log.
        return (
            f"DtmfDetector(rate={self.sample_rate}, decided_until={self.decided_until:.3f}, "
            f"tones={self._tones}, active={self.active_since is not None})"
        )

    # ---- what callers read --------------------------------------------------------------------------

    @property
    def active_since(self) -> float | None:
        """Start (seconds) of a key press in progress or not yet reported, or None. It may move a little
        later while the press goes on, and go back to None if the press turns out too short."""
        for press in (*self._closing, self._open):
            if press is not None and press.active:
                return self._on_sample(max(self._start_of(press), self._last_end, self._stream_seconds()))
        return None

    @property
    def decided_until(self) -> float:
        """Seconds on the timeline before which everything is decided: inside a press already reported, or
        known to hold none. Never ahead of the audio pushed; it only moves forward."""
        if self._stream_start is None:
            return 0.0
        end = self._input_next / self.sample_rate
        if self._flushed:
            return end
        # A press found later may still reach back this far (its first window's edge search).
        bound = self._centre(self._next_block - self._reach - 1)
        for press in (*self._closing, self._open):
            if press is not None:
                bound = min(bound, self._centre(press.first - self._reach - 1))
        # Down to a whole sample, so that a press reported later, its edges rounded, never starts before.
        floor = math.floor(min(bound, end) * self.sample_rate) / self.sample_rate
        self._decided = max(self._decided, floor)
        return self._decided

    @property
    def stats(self) -> DtmfStats:
        return DtmfStats(self._windows, self._key_windows, self._tones, self._too_short, self._gap_windows)

    # ---- feeding ------------------------------------------------------------------------------------

    def push(self, chunk: AudioChunk) -> list[DtmfTone]:
        """Take the next chunk; returns the presses whose end it decided, in timeline order."""
        if self._flushed:
            raise RuntimeError("this DTMF detector was flushed: make a new one for a new stream")
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(f"chunk at {chunk.sample_rate} Hz pushed to a {self.sample_rate} Hz detector")
        if self._stream_start is not None and chunk.start < self._input_next:
            raise ValueError(
                f"chunk starts at sample {chunk.start}, before the end of the previous one "
                f"({self._input_next}): chunks must not go back on the timeline"
            )
        if len(chunk) == 0:
            return []
        tones: list[DtmfTone] = []
        if self._stream_start is None:
            # The first windows reach back before the stream, into silence, so that a press at the very
            # start still has a rising edge to measure.
            self._stream_start = chunk.start
            self._next_block = chunk.start // self._hop - self._reach
            self._buffer = np.zeros(chunk.start - self._next_block * self._hop, dtype=np.int16)
            self._last_end = self._decided = chunk.start / self.sample_rate
        elif chunk.start > self._input_next:
            self._fill_gap(chunk.start - self._input_next, tones)
        self._input_next = chunk.end
        self._feed(chunk.samples, tones)
        return tones

    def flush(self) -> list[DtmfTone]:
        """End of stream: decides what is in progress as if silence followed. No push may follow."""
        if self._flushed:
            return []
        tones: list[DtmfTone] = []
        if self._stream_start is not None:
            silence = self._drain * self._hop + self._window
            self._feed(np.zeros(silence, dtype=np.int16), tones)
        self._flushed = True
        return tones

    # ---- windows ------------------------------------------------------------------------------------

    def _stream_seconds(self) -> float:
        return (self._stream_start or 0) / self.sample_rate

    def _on_sample(self, seconds: float) -> float:
        """Edges are reported on whole samples, as every time on the timeline is: finer digits would only
        carry the estimate's noise."""
        return round(seconds * self.sample_rate) / self.sample_rate

    def _centre(self, block: int) -> float:
        """Seconds at the middle of window ``block``: a step edge there fills exactly half of it."""
        return (block * self._hop + self._window / 2) / self.sample_rate

    def _feed(self, samples: Samples, tones: list[DtmfTone]) -> None:
        # Contiguous, so that ``_analyse`` can lay its windows over it as a plain view.
        buffer = (
            np.concatenate([self._buffer, samples]) if len(self._buffer) else np.ascontiguousarray(samples)
        )
        count = (len(buffer) - self._window) // self._hop + 1 if len(buffer) >= self._window else 0
        # A whole file pushed as one chunk is analysed a slice at a time: its windows as floats would
        # take 14 times its size.
        for first in range(0, count, _BATCH):
            size = min(_BATCH, count - first)
            keys, powers = self._analyse(buffer[first * self._hop :], size)
            self._windows += size
            self._judge(keys, powers, tones)
        self._buffer = buffer[count * self._hop :].copy()

    def _fill_gap(self, gap: int, tones: list[DtmfTone]) -> None:
        """Silence for ``gap`` samples, without allocating it: an hour's gap is a count, not an array."""
        # Finish every window that overlaps the audio before the gap, with real zeros.
        lead = min(gap, self._window)
        self._feed(np.zeros(lead, dtype=np.int16), tones)
        gap -= lead
        if gap == 0:
            return
        # The windows wholly inside the rest of the gap are silence, known without analysis. A few go
        # through the runs one by one, so that what is open closes and finds its falling edge.
        resume = self._next_block * self._hop + len(self._buffer) + gap
        first_overlapping = -(-(resume - self._window + 1) // self._hop)
        silent = max(0, first_overlapping - self._next_block)
        judged = min(silent, self._drain)
        silence = np.zeros((judged, self._terms))
        self._judge([-1] * judged, silence, tones)
        self._gap_windows += silent
        self._windows -= judged  # counted as gap windows, not analysed ones
        self._next_block += silent - judged
        if silent > judged:
            self._recent.clear()
        self._buffer = np.zeros(resume - self._next_block * self._hop, dtype=np.int16)

    def _analyse(self, buffer: Samples, count: int) -> tuple[list[int] | None, _Floats]:
        """For ``count`` windows: the key each one passes every test for (row * 4 + column, or -1; None
        when no window passes), and the power of every term (see ``_analysis`` for their order).

        This runs on every packet of every call (four windows per 20 ms packet at 8 kHz), where numpy
        costs about a microsecond per operation whatever the size: so every window gets only the term
        powers (which the edge search may need later) and a cheap gate, and only windows that could
        be a key get the full tests.
        """
        # The windows overlap, ``hop`` apart, as a view of ``buffer`` (contiguous: see ``_feed``). A
        # plain ndarray over its memory checks that the view stays inside it, and costs a tenth of
        # as_strided, which builds an array interface in Python on every call.
        item = buffer.itemsize
        windows = np.ndarray((count, self._window), buffer.dtype, buffer, 0, (self._hop * item, item))
        frames = windows.astype(np.float64)
        # np.dot, not @: the same BLAS call and the same result, with less dispatch before it.
        terms = np.dot(frames, self._basis)
        np.square(terms, out=terms)
        power = terms[:, : self._terms] + terms[:, self._terms :]
        if self._gated and not self._may_hold_key(frames, power):
            return None, power

        index = np.arange(count)
        # A tone's power is the best of three probes, at its frequency and 1 % either side: a sender
        # may be 1.5 % off, which would cost the upper tones up to 3 dB at the nominal frequency alone.
        probes = power[:, :_TONE_TERMS].reshape(count, 3, 8)
        tone = probes.max(axis=1)
        # Which tone of each group, and how far it stands above the others, are judged at the nominal
        # frequencies: a probe 1 % off leans towards the next tone of a row.
        nominal = probes[:, 0]
        row = nominal[:, 0:4].argmax(axis=1)
        column = nominal[:, 4:8].argmax(axis=1) + 4
        # The runner-up of each group: np.partition puts the second largest of four at index 2.
        row_second = np.partition(nominal[:, 0:4], 2, axis=1)[:, 2]
        column_second = np.partition(nominal[:, 4:8], 2, axis=1)[:, 2]
        row_power = tone[index, row]
        column_power = tone[index, column]
        harmonic = power[:, _TONE_TERMS:]
        energy = np.dot(np.square(frames), self._weights2)
        floor = self._level_floor
        ok = (
            (np.minimum(row_power, column_power) >= floor)
            & (nominal[index, row] >= self._relative * row_second)
            & (nominal[index, column] >= self._relative * column_second)
            & (column_power <= self._high_over_low * row_power)
            & (row_power <= self._low_over_high * column_power)
            & (self._tone_share * (row_power + column_power) >= self.options.min_tone_fraction * energy)
            & (
                (harmonic[index, row] <= self._harmonic * row_power)
                | self._column_masks_harmonic[row, column - 4]
            )
            & (harmonic[index, column] <= self._harmonic * column_power)
        )
        keys: list[int] = np.where(ok, row * 4 + column - 4, -1).tolist()
        return keys, power

    def _may_hold_key(self, frames: _Floats, power: _Floats) -> bool:
        """False when no window of ``frames`` (their term powers: ``power``) can pass the tests of
        ``_analyse``: a shortcut that must never say False where one would pass, and does not.

        Both tones of a press reach the level floor and together carry ``min_tone_fraction`` of the
        window's energy; each is at most the strongest of the 24 tone probes, so the strongest reaches
        the floor and twice it carries that share. Silence and quiet audio fail the first test. White
        noise puts 3 / (samples per window) of its energy in any one term (1.4 % at 8 kHz, where 35 % is
        needed) and speech spreads its energy over its harmonics, so they fail the second (measured: 0
        to 9 % of the packets of the speech fixtures and calls get past, loud white noise never). Exact
        in floating point too: doubling is exact, rounding keeps order, and both sides are the very
        products that ``_analyse`` compares. On a handful of windows, Python floats answer faster than
        numpy can start (the same IEEE doubles, so the same answers).
        """
        floor = self._level_floor
        # np.maximum.reduce is what ndarray.max calls, without the Python wrapper between.
        strongest: list[float] = np.maximum.reduce(power[:, :_TONE_TERMS], axis=1).tolist()
        if max(strongest) < floor:
            return False
        # The very expression ``_analyse`` computes the energy with, so the same values.
        energy: list[float] = np.dot(np.square(frames), self._weights2).tolist()
        fraction = self.options.min_tone_fraction
        share = self._tone_share
        for level, window_energy in zip(strongest, energy, strict=True):
            if level >= floor and share * (level + level) >= fraction * window_energy:
                return True
        return False

    # ---- runs of key windows ------------------------------------------------------------------------

    def _judge(self, keys: list[int] | None, powers: _Floats, tones: list[DtmfTone]) -> None:
        """Windows in order: ``keys`` as ``_analyse`` gives them (None: no key in any), and their powers."""
        if keys is None:
            if self._open is None and not self._closing:
                # Nothing open or waiting to close: windows without a key only join the recent ones, for
                # a later press's rising edge. What the loop below would do, in one step, not one each.
                first = self._next_block
                self._next_block += len(powers)
                keep = self._recent.maxlen or len(powers)
                if len(powers) > keep:
                    # A long chunk (a whole file): only its last windows can be looked back on.
                    first += len(powers) - keep
                    powers = powers[-keep:].copy()
                self._recent.append((first, powers))
                return
            keys = [-1] * len(powers)
        for key, window in zip(keys, powers, strict=True):
            block = self._next_block
            self._next_block += 1
            self._recent.append((block, window[np.newaxis]))
            for closing in self._closing:
                closing.tail.append((block, window))
            press = self._open
            if key >= 0:
                self._key_windows += 1
            if press is not None:
                if len(press.head) < self._head_size:
                    press.head.append(window)
                press.tail.append((block, window))
                if key == press.key:
                    press.last = block
                    press.windows += 1
                    press.active = press.active or block - press.first + 1 >= self._min_active
                elif key >= 0 or block - press.last > self._bridge:
                    # Another key, or a pause longer than a drop-out: this press is over.
                    self._closing.append(press)
                    self._open = press = None
            if press is None and key >= 0:
                # The windows from ``reach + 1`` before this one, for its rising edge.
                before: list[tuple[int, _Floats]] = []
                for first, batch in self._recent:
                    skip = max(0, block - self._reach - 1 - first)
                    before += zip(range(first + skip, first + len(batch)), batch[skip:], strict=True)
                tail: deque[tuple[int, _Floats]] = deque([(block, window)], maxlen=self._tail_size)
                head = [a for _, a in before]
                self._open = _Press(key, block, block, before[0][0], head, tail, active=self._min_active <= 1)
            self._close_ready(block, tones)

    def _close_ready(self, block: int, tones: list[DtmfTone]) -> None:
        while self._closing and block >= self._closing[0].last + self._settle:
            press = self._closing.popleft()
            start = max(self._start_of(press), self._last_end, self._stream_seconds())
            end = min(self._end_of(press), self._input_next / self.sample_rate)
            if press.windows >= self._min_windows and end - start >= self.options.min_tone_ms / 1000:
                tones.append(DtmfTone(self._on_sample(start), self._on_sample(end)))
                self._last_end = end
                self._tones += 1
            else:
                self._too_short += 1

    # ---- edges --------------------------------------------------------------------------------------

    def _start_of(self, press: _Press) -> float:
        """The rising edge, from the windows around the run's first one, against their own peak."""
        if press.start is not None:
            return press.start
        base = press.head_base
        values = self._coverage(press, press.head, base)
        i = press.first - base
        if values[i] >= 0.5:
            while i > 0 and values[i - 1] >= 0.5:
                i -= 1
        else:
            while i + 1 < len(values) and values[i] < 0.5:
                i += 1
        start = self._crossing(base, values, i)
        if len(press.head) >= self._head_size or press is not self._open:
            press.start = start  # the head will not change any more
        return start

    def _end_of(self, press: _Press) -> float:
        """The falling edge, from the latest windows, against their own peak."""
        base = press.tail[0][0]
        values = self._coverage(press, [a for _, a in press.tail], base)
        i = press.last - base
        if values[i] >= 0.5:
            while i + 1 < len(values) and values[i + 1] >= 0.5:
                i += 1
            i += 1
        else:
            while i > 0 and values[i - 1] < 0.5:
                i -= 1
        return self._crossing(base, values, i)

    def _coverage(self, press: _Press, powers: list[_Floats], base: int) -> list[float]:
        """How much of each window the press fills: its weaker tone's amplitude over that tone's peak
        within the run. The weaker tone, because a change of key may keep one of the two tones."""
        row, column = divmod(press.key, 4)
        rows = [_amplitude(p, row) for p in powers]
        columns = [_amplitude(p, 4 + column) for p in powers]
        run = slice(max(0, press.first - base), press.last - base + 1)
        row_peak = max(rows[run]) or 1.0
        column_peak = max(columns[run]) or 1.0
        return [min(r / row_peak, c / column_peak) for r, c in zip(rows, columns, strict=True)]

    def _crossing(self, base: int, values: list[float], i: int) -> float:
        """Where coverage passes one half, between windows ``base + i - 1`` and ``base + i``."""
        if i <= 0:
            return self._centre(base)
        if i >= len(values):
            return self._centre(base + len(values) - 1)
        before, after = values[i - 1], values[i]
        share = 0.5 if after == before else (0.5 - before) / (after - before)
        return self._centre(base + i - 1) + min(1.0, max(0.0, share)) * self._hop / self.sample_rate


def _amplitude(power: _Floats, tone: int) -> float:
    """A tone's amplitude (in term units) in one window: the best of its three probes."""
    return math.sqrt(max(power[tone], power[8 + tone], power[16 + tone]))


def _analysis(rate: int, window: int) -> tuple[_Floats, _Floats, float]:
    """The Goertzel terms of a Hann window for the eight tones, probes 1 % below and above each, and the
    tones' second harmonics, as one matrix.

    Goertzel's recursion gives one DFT term per frequency, sample by sample; numpy gets the same terms
    fastest as one matrix product per chunk. Returns the basis (window x 64: the cosines of the 32
    frequencies, then their sines), the squared window (for each window's energy) and the window's sum
    (its gain for a sine). Frequencies: the 8 tones (rows, then columns), the 8 low probes, the 8 high
    probes, the 8 harmonics.
    """
    tones = np.array(ROW_HZ + COLUMN_HZ)
    frequencies = np.concatenate([tones, tones * (1 - _PROBE), tones * (1 + _PROBE), 2 * tones])
    n = np.arange(window)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / window)
    phase = 2 * np.pi * np.outer(n, frequencies) / rate
    basis = np.concatenate([np.cos(phase), np.sin(phase)], axis=1) * hann[:, None]
    return np.ascontiguousarray(basis), hann * hann, float(hann.sum())


def _harmonic_masks(rate: int, window: int) -> npt.NDArray[np.bool_]:
    """[row, column]: True where the row tone's second harmonic lies so near the column tone that the
    column leaks into it (within the Hann main lobe, two bins, plus 1.5 % tolerance on both). Those keys
    skip the row's harmonic test; their column harmonic is still tested."""
    lobe = 2 * rate / window
    masks = np.zeros((len(ROW_HZ), len(COLUMN_HZ)), dtype=np.bool_)
    for r, low in enumerate(ROW_HZ):
        for c, high in enumerate(COLUMN_HZ):
            masks[r, c] = abs(2 * low - high) < lobe + _TOLERANCE * (2 * low + high)
    return masks
