"""One call run live: the media side holds packets and the wall clock releases them, never waiting on
the recognizer, which hears the call on its own thread and may fall behind, stall or die (fail closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bleepline.call import CallReport, CallSession
from bleepline.pii.recognizers import BRIDGE_S
from bleepline.redact.policy import MaskReason
from bleepline.timeline import AudioChunk

log = logging.getLogger(__name__)

#: How long ``end`` waits for the listener to hear what is queued and have its last word.
DEFAULT_END_TIMEOUT_S = 10.0
#: No audio for this long (clock seconds) is a pause: the far end stopped sending (silence suppression,
#: the end of a stream) or the network stalled. The listener then settles what it heard, so the words
#: before it are cleared in time; otherwise they would wait for audio that may never come, and go out
#: masked as unverified. Packets come every 20 ms; jitter buffers hold 60 ms or so.
DEFAULT_STALL_S = 0.3
#: No audio for this long is a long pause: said once more, with its length, so that a value said before
#: it is known to be over (no digit can follow it closely enough to belong to it) and its provisional
#: masking can be judged before its release time, instead of waiting for audio that may never come.
LONG_PAUSE_S = BRIDGE_S


@dataclass
class LiveStats:
    """How the listener kept up, without content. ``max_lag_s``: clock seconds from a chunk's push to the
    end of its hearing. ``skipped_*``: chunks the listener never heard (backlog), masked as unverified."""

    queue_depth: int = 0
    max_queue_depth: int = 0
    max_lag_s: float = 0.0
    chunks_heard: int = 0
    chunks_skipped: int = 0
    skipped_s: float = 0.0
    pushed_after_end: int = 0
    pauses: int = 0  # times no audio came for ``stall_s`` and the listener settled what it had
    abandoned: bool = False  # the listener was still busy when ``end`` gave up on it


@dataclass(frozen=True)
class _Queued:
    chunk: AudioChunk | None  # None: no audio came for a while (a pause for the listener)
    pushed_at: float  # clock() when the media side pushed it (or the pause was noticed)
    silent_s: float = 0.0  # for a long pause: how long no audio has come


class LiveCall:
    """Runs a ``CallSession`` against a clock: ``push`` from the media thread, ``tick`` from a timer.

    One lock guards the session (the delay line is not thread-safe) and the queue. Everything done under
    it is quick — holding a chunk, applying marks, releasing — so the media side waits at most that long;
    the listener itself runs on the worker thread with the lock released. The session's own pacing
    (``paced_by_audio``) is not used: only ``tick`` releases before ``end``.
    """

    def __init__(
        self,
        session: CallSession,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_backlog_s: float = 2.0,
        end_timeout_s: float = DEFAULT_END_TIMEOUT_S,
        stall_s: float = DEFAULT_STALL_S,
    ) -> None:
        if not max_backlog_s > 0.0:
            raise ValueError(f"max_backlog_s must be > 0, got {max_backlog_s}")
        self.session = session
        self.clock = clock
        self.max_backlog_s = max_backlog_s
        self.end_timeout_s = end_timeout_s
        self.stall_s = stall_s
        self._last_push = 0.0  # clock() of the last chunk pushed
        self._paused = True  # a pause is asked for once per silence, and not before any audio
        self._long_paused = True  # and a long pause once more
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the worker waits on it for work or the end
        self._queue: deque[_Queued] = deque()
        self._queued_samples = 0
        self._busy = False  # the worker is inside the listener
        self._ending = False
        self._ended = False
        self._abandoned = False
        self._dead = False  # the worker itself failed (not the listener: CallSession handles that)
        self._origin: float | None = None  # clock() at timeline second 0, set by the first chunk
        self._stats = LiveStats()
        self._worker = threading.Thread(
            target=self._run, name=f"bleepline-listen-{session.call_id}", daemon=True
        )
        self._worker.start()

    # -- the media side -------------------------------------------------------------------------------

    def push(self, chunk: AudioChunk) -> None:
        """Hold one chunk and queue it for the listener; returns without waiting for the listener."""
        now = self.clock()
        with self._lock:
            if self._ending:
                # A packet racing the hang-up: the recording is being closed, so it is dropped, counted.
                self._stats.pushed_after_end += 1
                return
            if self._origin is None:
                self._origin = now - chunk.end / chunk.sample_rate  # a packet arrives once its audio is over
            self.session.hold(chunk)
            self._last_push, self._paused, self._long_paused = now, False, False
            self._queue.append(_Queued(chunk, now))
            self._queued_samples += len(chunk.samples)
            if self._dead:
                self._skip_all()  # nobody will hear it: masked at once
            self._shed_backlog()
            self._stats.queue_depth = len(self._queue)
            self._stats.max_queue_depth = max(self._stats.max_queue_depth, len(self._queue))
            self._wake.notify()

    def keypresses(self, spans: Sequence[tuple[float, float]], active_since: float | None) -> None:
        """Key presses signalled beside the audio (RFC 4733), from the media side: masked at once, under
        the lock (the worker applies the listener's marks to the same delay line)."""
        with self._lock:
            if self._ended:
                return
            self.session.keypresses(spans, active_since)

    def tick(self) -> None:
        """Release everything whose time has come: the call timeline at ``clock()`` minus the delay."""
        now = self.clock()
        with self._lock:
            if self._origin is None or self._ended:
                return
            if not self._paused and not self._ending and now - self._last_push >= self.stall_s:
                self._paused = True
                self._queue.append(_Queued(None, now))
                self._wake.notify()
            elif not self._long_paused and not self._ending and now - self._last_push >= LONG_PAUSE_S:
                self._long_paused = True
                self._queue.append(_Queued(None, now, silent_s=now - self._last_push))
                self._wake.notify()
            self.session.release_until(now - self._origin - self.session.policy.delay_s)

    @property
    def backlog_s(self) -> float:
        """Seconds of audio queued for the listener now: how far it is behind the media side."""
        with self._lock:
            return self._queued_samples / self.session.sample_rate

    @property
    def stats(self) -> LiveStats:
        with self._lock:
            return LiveStats(**vars(self._stats))

    def settle(self, timeout: float) -> bool:
        """Wait until the listener has heard everything queued (tests, and a graceful drain)."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._worker.is_alive():
                    return False
                self._wake.wait(min(left, 0.05))
            return True

    def end(self) -> CallReport:
        """The call is over: let the listener hear what is queued and have its last word (up to
        ``end_timeout_s``), then release everything and return the report. Never hangs on the listener."""
        with self._wake:
            self._ending = True
            self._wake.notify_all()
        self._worker.join(self.end_timeout_s)
        with self._lock:
            if self._worker.is_alive():
                # Stuck inside the listener: whatever it says from now on is ignored, and what it has not
                # cleared is drained masked. The thread is a daemon; it exits when the listener returns.
                self._abandoned = self._stats.abandoned = True
                self._skip_all()
                log.error(
                    "call %s: listener still busy at the end; its audio is masked", self.session.call_id
                )
            self._ended = True
            return self.session.close()

    # -- fail closed on a backlog ------------------------------------------------------------------------

    def _shed_backlog(self) -> None:
        # The oldest go first: the newest audio still has time to be cleared before its release, and
        # the listener stays at most max_backlog_s behind however slow it is. Memory stays bounded too.
        limit = self.max_backlog_s * self.session.sample_rate
        while self._queued_samples > limit and len(self._queue) > 1:
            self._skip(self._queue.popleft().chunk)

    def _skip_all(self) -> None:
        while self._queue:
            self._skip(self._queue.popleft().chunk)

    def _skip(self, chunk: AudioChunk | None) -> None:
        if chunk is None:
            return  # a pause: nothing to mask
        # A mark, not merely "not cleared": a listener that hears the next chunk may clear past the gap
        # (its clearance is a time, not a list of what it heard), and a mark outranks any clearance.
        self._queued_samples -= len(chunk.samples)
        rate = chunk.sample_rate
        start = max(chunk.start / rate, self.session.delay.released_until)
        if start < chunk.end / rate:
            self.session.delay.mask(start, chunk.end / rate, MaskReason.UNVERIFIED)
        self._stats.chunks_skipped += 1
        self._stats.skipped_s += len(chunk.samples) / rate

    # -- the worker ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._hear_all()
        except Exception as exc:  # a bug past the listener (applying its marks): fail closed, not silently
            log.error("call %s: listening thread failed (%s)", self.session.call_id, type(exc).__name__)
            with self._wake:
                self._dead = True
                self.session.report.listener_failures += 1
                self._skip_all()
                self._busy = False
                self._wake.notify_all()

    def _hear_all(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._ending:
                    self._wake.wait()
                if not self._queue:
                    break  # ending, and everything queued was heard
                item = self._queue.popleft()
                if item.chunk is not None:
                    self._queued_samples -= len(item.chunk.samples)
                self._stats.queue_depth = len(self._queue)
                self._busy = True
            # The slow part, with the lock released: the media side and the clock carry on meanwhile.
            chunk = item.chunk
            heard = self.session.listen_pause(item.silent_s) if chunk is None else self.session.listen(chunk)
            with self._wake:
                self._busy = False
                if self._abandoned:
                    return
                self.session.take_in(heard)
                if item.chunk is None:
                    self._stats.pauses += 1
                else:
                    self._stats.chunks_heard += 1
                    self._stats.max_lag_s = max(self._stats.max_lag_s, self.clock() - item.pushed_at)
                self._wake.notify_all()  # for settle()
        heard = self.session.listen(None)  # the listener's last word: settle what is pending
        with self._wake:
            if not self._abandoned:
                self.session.take_in(heard)
