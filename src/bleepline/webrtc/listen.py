"""WHEP listening: a call's released (redacted) audio as an aiortc track, fed as a ``CallSession`` sink.

The track keeps its own clock: one 20 ms frame every 20 ms with steadily rising pts, whatever the release
side does; silence when nothing is queued. It plays only what was released after it was added, and
never more than a bounded queue (the oldest is dropped, counted): a listener cannot make the relay hold
audio for it, nor get a backlog from before it was let in.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bleepline.timeline import AudioChunk, Samples

#: The track's frame length, as WebRTC audio goes (aiortc packs 20 ms per Opus packet).
FRAME_S = 0.02
#: Audio queued before play starts (and again after running dry): the release side hands audio over in
#: tick-sized bursts whose phase drifts against this track's clock; two frames absorb that, so a frame
#: is never cut short mid-speech.
PRIME_S = 0.04
#: How far behind its clock the track may fall (a stalled loop) before it gives up catching up in a burst.
MAX_BEHIND_S = 0.2


@dataclass
class ListenerStats:
    """How the track fared, without content: frames sent (``silent``: nothing queued), times it ran dry
    mid-audio, audio dropped by the bounded queue, and audio left out at the start (queued while the
    connection came up: the listener starts near live, not behind it)."""

    frames: int = 0
    silent: int = 0
    underruns: int = 0
    dropped_s: float = 0.0
    skipped_at_start_s: float = 0.0


class RedactedAudioTrack(MediaStreamTrack):
    """One listener's audio: ``write`` (a ``CallSession`` sink, any thread) queues released audio;
    aiortc's sender pulls 20 ms frames with ``recv`` on the loop. ``finish`` once the call has ended:
    what is queued plays out, then the track ends."""

    kind = "audio"

    def __init__(self, sample_rate: int, *, max_queued_s: float) -> None:
        super().__init__()
        if sample_rate % 50:
            raise ValueError(f"a 20 ms frame is not whole samples at {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.stats = ListenerStats()
        self._frame = sample_rate // 50
        self._prime = round(PRIME_S * sample_rate)
        self._max_queued = max(round(max_queued_s * sample_rate), 2 * self._prime)
        self._lock = threading.Lock()  # ``write`` may run on the thread that ends the call
        self._queue: deque[Samples] = deque()
        self._queued = 0
        self._next_in: int | None = None  # timeline position just past the last sample written
        self._playing = False
        self._finished = False
        self._started = False
        self._start = 0.0
        self._timestamp = 0
        #: Set once everything was played after ``finish`` (or the track was stopped).
        self.played_out = asyncio.Event()

    # -- the release side (AudioSink) ----------------------------------------------------------------

    def write(self, chunk: AudioChunk) -> None:
        """Released audio in; never raises, never blocks for long (it runs under the call's lock)."""
        if chunk.sample_rate != self.sample_rate or len(chunk) == 0:
            return
        with self._lock:
            if self._finished:
                return
            if self._next_in is not None and chunk.start > self._next_in:
                # The delay line releases contiguous audio; a hole would still be time: silence.
                self._add(np.zeros(min(chunk.start - self._next_in, self._max_queued), dtype=np.int16))
            self._next_in = chunk.end
            self._add(chunk.samples)

    def finish(self) -> None:
        """No more audio will come: play out what is queued, then end."""
        with self._lock:
            self._finished = True

    def _add(self, samples: Samples) -> None:
        self._queue.append(samples)
        self._queued += len(samples)
        if self._queued > self._max_queued:
            self.stats.dropped_s += self._pop(self._queued - self._max_queued) / self.sample_rate

    def _pop(self, count: int, into: Samples | None = None) -> int:
        """Take up to ``count`` of the oldest samples off the queue (copied to ``into`` if given)."""
        taken = 0
        while self._queue and taken < count:
            head = self._queue[0]
            take = min(len(head), count - taken)
            if into is not None:
                into[taken : taken + take] = head[:take]
            if take == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
            taken += take
        self._queued -= taken
        return taken

    # -- aiortc's side --------------------------------------------------------------------------------

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if not self._started:
            self._started = True
            self._start = loop.time()
        else:
            self._timestamp += self._frame
            due = self._start + self._timestamp / self.sample_rate
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -MAX_BEHIND_S:
                self._start -= wait  # behind after a stall: carry on from now, not in a burst
        samples = self._take()
        if samples is None:
            self.played_out.set()
            self.stop()
            raise MediaStreamError
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._timestamp
        frame.time_base = Fraction(1, self.sample_rate)
        return frame

    def _take(self) -> Samples | None:
        """The next frame's samples; None once finished and played out."""
        frame = np.zeros(self._frame, dtype=np.int16)
        with self._lock:
            if self._timestamp == 0:
                # What queued while the connection came up is left out, but for the priming margin.
                skipped = self._pop(max(0, self._queued - self._prime))
                self.stats.skipped_at_start_s += skipped / self.sample_rate
            if self._finished and self._queued == 0:
                return None
            if not self._playing and (self._queued >= self._prime or self._finished):
                self._playing = True
            self.stats.frames += 1
            if not self._playing:
                self.stats.silent += 1
                return frame
            if self._pop(self._frame, frame) < self._frame and not self._finished:
                self.stats.underruns += 1
                self._playing = False  # primed again before playing on
            return frame

    def stop(self) -> None:
        super().stop()
        self.played_out.set()
