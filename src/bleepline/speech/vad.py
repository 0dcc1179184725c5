"""Voice activity on the call timeline: which stretches of a call hold speech, decided as audio arrives.

webrtcvad judges each frame, an energy gate over a running noise floor overrules it on steady noise.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import webrtcvad

from bleepline.audio.resample import StreamResampler
from bleepline.timeline import AudioChunk, Samples

#: Rates webrtcvad takes as they are; any other rate is resampled to ``RESAMPLED_RATE`` first.
NATIVE_RATES = frozenset({8000, 16000, 32000, 48000})
#: 16 kHz rather than 8 kHz: webrtcvad sees the whole speech band of wideband input.
RESAMPLED_RATE = 16000

# The energy of a frame of digital zeros: log10(0) has no value, and anything this low is silence.
_SILENCE_DBFS = -120.0
_FULL_SCALE_POWER = 32768.0**2


def _whole(value: object) -> bool:
    """An integer, numpy's included, but not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class VadOptions:
    """How speech is told from the rest. Durations are rounded up to whole frames.

    Why the defaults (measured with ``tests/speech/test_vad.py``'s generated audio, and by hand on the
    evaluation calls beside the project): steady noise stays within a few dB of its running minimum
    (white 2 dB, pink 4, a slow +/-3 dB swell 5, band-limited brown 8), while webrtcvad alone calls white
    noise speech from -40 to -20 dBFS up, by rate and frame size. Speech at low SNR is the costly miss,
    since audio outside regions may be cleared unheard: of 400 spoken digits (peaks -38 to -12 dBFS) in
    -45 dBFS white noise, a 6 dB gate missed 2 and a 10 dB gate 26, so 6 dB, accepting false regions in
    brown or strongly swelling noise (safe: they only cost recognizer time). -55 dBFS is below quiet
    telephone speech and above line hiss. 300 ms of hangover bridges the pauses between words (the TTS
    fixture is one region); 200 ms of padding covers soft onsets and endings under the gate and loose
    word edges. 60 ms of speech in a row (three 20 ms frames) is shorter than a syllable and longer than
    the one frame a click makes webrtcvad call speech; 80 ms missed three times as many of those digits.
    """

    mode: int = 2
    """webrtcvad aggressiveness, 0 (calls most things speech) to 3 (calls least speech)."""
    frame_ms: int = 20
    """Length of the frames webrtcvad judges: 10, 20 or 30 ms."""
    energy_gate_db: float = 6.0
    """A frame is speech only if its energy is at least this far above the running noise floor."""
    min_level_dbfs: float = -55.0
    """Frames quieter than this (RMS, dB re full scale) are never speech."""
    hangover_ms: int = 300
    """A region stays open this long after its last speech frame, so shorter pauses do not split it.
    Its end is still the last speech frame plus the padding."""
    padding_ms: int = 200
    """Regions are widened by this much at both ends."""
    min_speech_ms: int = 60
    """A region starts only after this much speech in a row; shorter bursts are ignored."""
    noise_window_ms: int = 2000
    """The noise floor is the quietest frame of about this much recent audio."""

    def __post_init__(self) -> None:
        if not _whole(self.mode) or self.mode not in (0, 1, 2, 3):
            raise ValueError(f"VAD mode must be 0, 1, 2 or 3 (webrtcvad aggressiveness), got {self.mode!r}")
        if not _whole(self.frame_ms) or self.frame_ms not in (10, 20, 30):
            raise ValueError(
                f"VAD frame_ms must be 10, 20 or 30 (what webrtcvad takes), got {self.frame_ms!r}"
            )
        if not math.isfinite(self.energy_gate_db) or self.energy_gate_db < 0:
            raise ValueError(f"energy_gate_db must be a finite number >= 0, got {self.energy_gate_db!r}")
        if not math.isfinite(self.min_level_dbfs) or self.min_level_dbfs > 0:
            raise ValueError(f"min_level_dbfs must be a finite level <= 0 dBFS, got {self.min_level_dbfs!r}")
        for name in ("hangover_ms", "padding_ms", "min_speech_ms"):
            value = getattr(self, name)
            if not _whole(value) or value < 0:
                raise ValueError(f"{name} must be a whole number of milliseconds >= 0, got {value!r}")
        window = self.noise_window_ms
        if not _whole(window) or window < self.frame_ms:
            raise ValueError(
                f"noise_window_ms must be a whole number of milliseconds >= frame_ms ({self.frame_ms}), "
                f"got {window!r}"
            )


@dataclass(frozen=True)
class SpeechRegion:
    """A stretch of the call timeline (seconds from the call's first sample) that holds speech.

    Padding is included. Regions come out in timeline order and never overlap.
    """

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class VadStats:
    """Counters since the detector was made.

    ``frames``: frames judged; ``speech_frames``: those that counted as speech; ``gated_frames``: those
    webrtcvad called speech but the energy gate rejected; ``gap_frames``: whole frames in gaps between
    chunks, counted as non-speech without being judged.
    """

    frames: int = 0
    speech_frames: int = 0
    gated_frames: int = 0
    gap_frames: int = 0


class VoiceActivityDetector:
    """Finds speech regions in one call's audio, chunk by chunk, on the call's timeline.

    Chunks may be of any size and must not go back on the timeline; a gap between chunks is silence.
    Frames sit on a fixed grid of the timeline, so how the audio is cut does not change the result.
    A region begins ``padding_ms`` before the first frame of a run of ``min_speech_ms`` of speech and ends
    ``padding_ms`` after its last speech frame; it is handed out once ``max(hangover_ms, padding_ms)`` of
    non-speech has followed, so its end is never beyond the audio and regions never overlap.
    """

    def __init__(self, sample_rate: int, options: VadOptions = VadOptions()) -> None:
        if not _whole(sample_rate) or sample_rate <= 0:
            raise ValueError(f"sample rate must be a positive whole number of Hz, got {sample_rate!r}")
        self.sample_rate = int(sample_rate)
        self.options = options
        opts = self.options
        self._rate = self.sample_rate if self.sample_rate in NATIVE_RATES else RESAMPLED_RATE
        self._resampler = None
        if self._rate != self.sample_rate:
            self._resampler = StreamResampler(self.sample_rate, self._rate)
        self._vad = webrtcvad.Vad(opts.mode)
        self._frame = self._rate * opts.frame_ms // 1000
        self._padding = self._rate * opts.padding_ms // 1000

        def frames(ms: int) -> int:
            return -(-ms // opts.frame_ms)

        self._min_speech_frames = max(1, frames(opts.min_speech_ms))
        # A region closes only once its trailing padding is heard too, so its end is never beyond the
        # audio and a later region cannot start inside it.
        self._close_frames = max(1, frames(max(opts.hangover_ms, opts.padding_ms)))

        # Noise floor: the quietest frame of about the last noise_window_ms of audio heard, kept as the
        # minima of eight sub-windows (minimum statistics, as in Martin's noise estimator). It falls at
        # once on a quieter frame and rises to a new steady noise within one window; speech dips 20+ dB
        # between words every second or so, so it does not lift the floor under itself. A slowly rising
        # minimum would need many seconds to catch up with noise that starts after silence. Digital
        # silence does lower the floor: keeping frames under min_level out of it made the first word after
        # silence set the floor and gate itself (114 of those 400 digits missed).
        self._sub_frames = max(1, frames(opts.noise_window_ms) // 8)
        past_windows = max(1, frames(opts.noise_window_ms) // self._sub_frames - 1)
        self._sub_minima: deque[float] = deque(maxlen=past_windows)
        self._sub_min = math.inf
        self._sub_count = 0
        self._past_min = math.inf

        # Timeline, in samples at the VAD rate. Frames start at multiples of the frame length;
        # ``_pending`` holds the samples heard of the frame that starts at ``_frame_pos``.
        self._pending: Samples = np.zeros(0, dtype=np.int16)
        self._frame_pos: int | None = None
        self._stream_start = 0
        self._input_next: int | None = None  # at the input rate
        self._flushed = False

        # Region state: a run of speech frames becomes a region once it is min_speech long.
        self._run_start: int | None = None  # first sample of the current run of speech frames
        self._run_frames = 0
        self._region_start: int | None = None  # padding included, once the region is confirmed
        self._last_speech_end = 0
        self._silent_frames = 0
        self._limit = 0  # regions may not start before this: the end of the last region

        self._frames = 0
        self._speech_frames = 0
        self._gated_frames = 0
        self._gap_frames = 0

    # ---- what callers read --------------------------------------------------------------------------

    @property
    def in_speech(self) -> bool:
        """True while a region is open (its speech is confirmed, its end not yet decided)."""
        return self._region_start is not None

    @property
    def open_region_start(self) -> float | None:
        """Start (seconds, padding included) of the region in progress, or None."""
        return None if self._region_start is None else self._region_start / self._rate

    @property
    def decided_until(self) -> float:
        """Seconds on the timeline before which everything is decided: in a region (emitted or open)
        or known to be non-speech. Never ahead of the audio pushed; it only moves forward.
        """
        if self._flushed and self._input_next is not None:
            return self._input_next / self.sample_rate
        if self._frame_pos is None:
            return 0.0
        position = self._frame_pos
        if self._region_start is not None:
            decided = min(position, self._last_speech_end + self._padding)
        elif self._run_start is not None:
            decided = self._run_start - self._padding
        else:
            # The last padding of non-speech may still become the leading padding of a region.
            decided = position - self._padding
        decided = max(decided, self._limit, self._stream_start)
        # Through a resampler the VAD timeline can round a sample past the input's; never claim that.
        return min(decided / self._rate, self._input_next_seconds())

    @property
    def stats(self) -> VadStats:
        return VadStats(self._frames, self._speech_frames, self._gated_frames, self._gap_frames)

    # ---- feeding ------------------------------------------------------------------------------------

    def push(self, chunk: AudioChunk) -> list[SpeechRegion]:
        """Take the next chunk; returns the regions whose end it decided, trailing padding included."""
        if self._flushed:
            raise RuntimeError("this voice activity detector was flushed: make a new one for a new stream")
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(f"chunk at {chunk.sample_rate} Hz pushed to a {self.sample_rate} Hz detector")
        if self._input_next is not None and chunk.start < self._input_next:
            raise ValueError(
                f"chunk starts at sample {chunk.start}, before the end of the previous one "
                f"({self._input_next}): chunks must not go back on the timeline"
            )
        if len(chunk) == 0:
            return []
        gap = self._input_next is not None and chunk.start > self._input_next
        self._input_next = chunk.end
        regions: list[SpeechRegion] = []
        if self._resampler is None:
            self._feed(chunk.samples, chunk.start, regions)
            return regions
        if gap:
            # Restart the resampler rather than let it fill the gap with zeros: an hour's gap at 44.1 kHz
            # would be 300 MB of them. Its tail is silence-padded, as a filled gap would be.
            self._feed_resampled(self._resampler.flush(), regions)
            self._resampler = StreamResampler(self.sample_rate, self._rate)
        self._feed_resampled(self._resampler.push(chunk), regions)
        return regions

    def flush(self) -> list[SpeechRegion]:
        """End of stream: closes the open region at the end of its speech (padding included, but not past
        the last sample pushed). A final run shorter than min_speech is ignored. No push may follow.
        """
        if self._flushed:
            return []
        regions: list[SpeechRegion] = []
        if self._resampler is not None:
            self._feed_resampled(self._resampler.flush(), regions)
        self._flushed = True
        if self._region_start is not None:
            end = min((self._last_speech_end + self._padding) / self._rate, self._input_next_seconds())
            regions.append(SpeechRegion(self._region_start / self._rate, end))
        self._region_start = None
        self._run_start = None
        return regions

    # ---- framing ------------------------------------------------------------------------------------

    def _input_next_seconds(self) -> float:
        return 0.0 if self._input_next is None else self._input_next / self.sample_rate

    def _feed_resampled(self, chunk: AudioChunk | None, regions: list[SpeechRegion]) -> None:
        if chunk is not None:
            self._feed(chunk.samples, chunk.start, regions)

    def _feed(self, samples: Samples, start: int, regions: list[SpeechRegion]) -> None:
        frame = self._frame
        if self._frame_pos is None:
            # The first frame on the grid may begin before the stream: its head is silence.
            self._stream_start = start
            self._frame_pos = start - start % frame
            self._pending = np.zeros(start % frame, dtype=np.int16)
        heard_until = self._frame_pos + len(self._pending)
        if start < heard_until:
            # Only a restarted resampler overlaps what came before, by a rounded sample or two.
            samples = samples[heard_until - start :]
        elif start > heard_until:
            self._fill_gap(start - heard_until, regions)
        block = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(block) // frame * frame
        if whole:
            self._judge_frames(block[:whole], regions)
        self._pending = block[whole:].copy()

    def _fill_gap(self, gap: int, regions: list[SpeechRegion]) -> None:
        """Silence for ``gap`` samples. Whole frames of it are counted as non-speech without being judged,
        and leave the noise floor alone: a lost packet says nothing about the line's noise."""
        assert self._frame_pos is not None
        frame = self._frame
        if len(self._pending):
            fill = min(gap, frame - len(self._pending))
            self._pending = np.concatenate([self._pending, np.zeros(fill, dtype=np.int16)])
            gap -= fill
            if len(self._pending) < frame:
                return
            self._judge_frames(self._pending, regions)
            self._pending = np.zeros(0, dtype=np.int16)
        count = gap // frame
        if count:
            self._gap_frames += count
            self._frame_pos += count * frame
            self._silence(count, regions)
        self._pending = np.zeros(gap - count * frame, dtype=np.int16)

    # ---- judging ------------------------------------------------------------------------------------

    def _judge_frames(self, block: Samples, regions: list[SpeechRegion]) -> None:
        frame = self._frame
        count = len(block) // frame
        as_float = block.astype(np.float64).reshape(count, frame)
        power = np.einsum("ij,ij->i", as_float, as_float) / (frame * _FULL_SCALE_POWER)
        with np.errstate(divide="ignore"):
            levels = np.maximum(10.0 * np.log10(power), _SILENCE_DBFS).tolist()
        data = block.tobytes()
        width = frame * 2
        is_speech = self._vad.is_speech
        rate = self._rate
        gate = self.options.energy_gate_db
        min_level = self.options.min_level_dbfs
        assert self._frame_pos is not None
        first = self._frame_pos
        self._frame_pos += count * frame
        for i, level in enumerate(levels):
            floor = self._update_floor(level)
            voiced = is_speech(data[i * width : (i + 1) * width], rate)
            speech = voiced and level >= min_level and level - floor >= gate
            if voiced and not speech:
                self._gated_frames += 1
            self._frames += 1
            frame_start = first + i * frame
            if speech:
                self._speech_frames += 1
                self._speech(frame_start)
            else:
                self._silence(1, regions)

    def _update_floor(self, level: float) -> float:
        if level < self._sub_min:
            self._sub_min = level
        self._sub_count += 1
        if self._sub_count == self._sub_frames:
            self._sub_minima.append(self._sub_min)
            self._past_min = min(self._sub_minima)
            self._sub_min = math.inf
            self._sub_count = 0
            return self._past_min
        return min(self._past_min, self._sub_min)

    def _speech(self, frame_start: int) -> None:
        frame = self._frame
        if self._run_start is None:
            self._run_start = frame_start
            self._run_frames = 0
        self._run_frames += 1
        self._last_speech_end = frame_start + frame
        self._silent_frames = 0
        if self._region_start is None and self._run_frames >= self._min_speech_frames:
            self._region_start = max(self._run_start - self._padding, self._limit, self._stream_start)

    def _silence(self, count: int, regions: list[SpeechRegion]) -> None:
        if self._region_start is None:
            # A run too short to be speech: a click, a cough of noise. Forget it.
            self._run_start = None
            return
        self._run_start = None
        self._silent_frames += count
        if self._silent_frames >= self._close_frames:
            end = self._last_speech_end + self._padding
            regions.append(SpeechRegion(self._region_start / self._rate, end / self._rate))
            self._limit = end
            self._region_start = None
            self._silent_frames = 0
