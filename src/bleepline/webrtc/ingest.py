"""WHIP ingest: the audio frames aiortc decodes from a published track, placed on the call timeline.

aiortc hands over Opus decoded to s16 stereo at 48 kHz, 960 samples a frame. Calls are recorded at
48 kHz mono: the rate Opus carries, so nothing the caller sent is thrown away before the recording, and
the same rate the relay already records Opus RTP calls at (the recognizer resamples for itself). Each
frame is placed by its pts relative to the first, never by arrival: a gap (loss, a jitter buffer that
stalled, a sender that paused) becomes silence in place, never squeezed out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bleepline.audio.codecs import OPUS
from bleepline.timeline import AudioChunk, Samples
from bleepline.transport.receiver import MAX_CLOCK_MISMATCH_S, MAX_RESTART_GAP_S, ReceiverStats

log = logging.getLogger(__name__)

#: The recording rate of a WebRTC call: Opus's own.
RATE = 48000
#: One WebRTC audio frame (20 ms at 48 kHz): what a gap is counted in.
FRAME_SAMPLES = 960
#: Audio queued between two ticks at most; the tick polls every 20 ms, so only a stalled loop fills it.
MAX_QUEUED_S = 2.0


class FrameReceiver:
    """Decoded WebRTC audio frames in (``add_frame``), contiguous mono 48 kHz chunks out (``poll``).

    The same face as ``CallReceiver`` towards the relay's tick (``bleepline.server.MediaSource``). In
    ``stats``: ``packets`` are frames, ``lost`` frames' worth of gaps filled with silence (and audio shed
    by a full queue), ``duplicates`` frames whose time was already placed, ``decode_errors`` frames that
    could not be converted, ``timestamp_jumps`` pts jumps placed by arrival instead (``CallReceiver``'s
    rules: ``MAX_CLOCK_MISMATCH_S``, ``MAX_RESTART_GAP_S``).
    """

    def __init__(self, *, max_queued_s: float = MAX_QUEUED_S) -> None:
        self.codec = OPUS
        self.stats = ReceiverStats()
        self._max_queued = round(max_queued_s * RATE)
        self._queue: deque[AudioChunk] = deque()
        self._queued = 0
        self._next = 0  # timeline position of the next sample
        self._anchor: tuple[Fraction, int] | None = None  # (pts seconds, timeline position) placed so
        self._last_arrival = 0.0
        self._resampler: av.AudioResampler | None = None

    def add_frame(self, frame: av.AudioFrame, arrival: float) -> None:
        """Place one decoded frame; ``arrival`` on any monotonic clock (seconds)."""
        try:
            samples = self._mono(frame)
        except Exception as exc:  # a frame in a form libswresample refuses: dropped, counted
            self.stats.decode_errors += 1
            log.debug("WebRTC frame dropped (%s)", type(exc).__name__)
            return
        self.stats.packets += 1
        self.stats.bytes += 2 * len(samples)
        if len(samples) == 0:
            return
        seconds = None
        if frame.pts is not None and frame.time_base is not None:
            base = frame.time_base
            seconds = Fraction(frame.pts) * Fraction(base.numerator, base.denominator)
        wall = arrival - self._last_arrival
        self._last_arrival = arrival
        if self._anchor is None or seconds is None:
            position = self._next
            if seconds is not None:
                self._anchor = (seconds, position)
        else:
            position = self._anchor[1] + round((seconds - self._anchor[0]) * RATE)
            gap = position - self._next
            if gap < 0:
                if gap > -len(samples):
                    samples = samples[-gap:]  # an overlap of a few samples (rounding): trimmed
                    position = self._next
                elif -gap <= MAX_CLOCK_MISMATCH_S * RATE:
                    self.stats.duplicates += 1  # its time was already placed: a repeat
                    return
                else:
                    position = self._restart(seconds, wall, len(samples))
            elif gap > 0:
                if gap > (wall + MAX_CLOCK_MISMATCH_S) * RATE:
                    # Further ahead than the time that passed can explain: a new clock, not a gap.
                    position = self._restart(seconds, wall, len(samples))
                else:
                    # Bounded by the time that passed, which the idle timeout bounds in turn.
                    self._enqueue(AudioChunk(np.zeros(gap, dtype=np.int16), RATE, self._next))
                    self.stats.lost += -(-gap // FRAME_SAMPLES)
        if len(samples):
            self._enqueue(AudioChunk(samples, RATE, position))

    def _restart(self, seconds: Fraction, wall: float, frame: int) -> int:
        # Placed after what is there by the time that passed since the last frame, as a new stream
        # would be; the silence is bounded whatever the clock said.
        self.stats.timestamp_jumps += 1
        gap = min(max(wall - frame / RATE, 0.0), MAX_RESTART_GAP_S)
        position = self._next + round(gap * RATE)
        if position > self._next:
            self._enqueue(AudioChunk(np.zeros(position - self._next, dtype=np.int16), RATE, self._next))
        self._anchor = (seconds, position)
        return position

    def _enqueue(self, chunk: AudioChunk) -> None:
        self._queue.append(chunk)
        self._queued += len(chunk)
        self._next = chunk.end
        # Only a loop that stopped ticking gets here: the oldest audio is shed (counted), memory stays
        # bounded. The timeline is kept: what is shed is gone, later chunks keep their places.
        while self._queued > self._max_queued and len(self._queue) > 1:
            shed = self._queue.popleft()
            self._queued -= len(shed)
            self.stats.lost += -(-len(shed) // FRAME_SAMPLES)

    def _mono(self, frame: av.AudioFrame) -> Samples:
        if frame.format.name == "s16" and not frame.format.is_planar and frame.sample_rate == RATE:
            channels = len(frame.layout.channels)
            data = frame.to_ndarray().reshape(-1, channels).astype(np.int32)
            # Browsers send mono in stereo Opus (both channels equal): the mean keeps it unchanged.
            mean: Samples = (data.sum(axis=1) // channels).astype(np.int16)
            return mean
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        frames = self._resampler.resample(frame)
        if not frames:
            return np.zeros(0, dtype=np.int16)
        mono: Samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)
        return mono

    # -- the relay's side (``MediaSource``) ------------------------------------------------------------

    def poll(self, now: float) -> list[AudioChunk]:
        """Everything placed since the last poll (frames are placed as they come: no reorder wait)."""
        chunks = list(self._queue)
        self._queue.clear()
        self._queued = 0
        return chunks

    def flush(self) -> list[AudioChunk]:
        return self.poll(0.0)

    def take_keypresses(self) -> list[tuple[float, float]]:
        # WebRTC carries key presses as telephone-events only if negotiated; only Opus is, so the
        # in-band detector (on the audio) is what finds them.
        return []

    @property
    def keypress_active_since(self) -> float | None:
        return None


async def read_track(
    track: MediaStreamTrack, receiver: FrameReceiver, on_frame: Callable[[float], None]
) -> str:
    """Feed ``track``'s frames to ``receiver`` until the track ends; returns why it ended.

    ``on_frame(arrival)`` is told of each frame (the call's idle clock). A track that ends, or whose
    decoder died (aiortc then ends the track), raises ``MediaStreamError`` from ``recv``: the call ends.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return "media ended"
        now = loop.time()
        if isinstance(frame, av.AudioFrame):
            receiver.add_frame(frame, now)
            on_frame(now)
        else:  # the offer had audio only; anything else is not the caller's voice
            receiver.stats.unknown_payload_type += 1
