"""LiveCall with a fake clock and listeners that stall on an Event: the clock releases, the media side
never waits, and whatever the listener did not hear in time goes out masked.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bleepline.call import CallSession
from bleepline.listener import Hearing
from bleepline.live import LONG_PAUSE_S, LiveCall
from bleepline.timeline import AudioChunk, PiiSpan
from tests.conftest import noise
from tests.test_call import POLICY, RATE, Capture, ScriptedListener, run_call, seconds

CHUNK = 160  # 20 ms
WAIT = 2.0  # join/settle timeouts: a bug fails the test instead of hanging the suite


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0  # not zero: the first chunk must anchor the timeline, not the clock's origin

    def __call__(self) -> float:
        return self.now


class GatedListener(ScriptedListener):
    """A ScriptedListener that stalls, inside ``push``, on the first chunk ending after ``gate_at``
    until ``gate`` is set (a stuck decode step)."""

    def __init__(self, spans: list[PiiSpan], gate_at: float, **kwargs: float) -> None:
        super().__init__(spans, **kwargs)
        self.gate_at = gate_at
        self.gate = threading.Event()
        self.entered = threading.Event()

    def push(self, chunk: AudioChunk) -> Hearing:
        if chunk.end / chunk.sample_rate > self.gate_at and not self.gate.is_set():
            self.entered.set()
            assert self.gate.wait(WAIT), "test never opened the gate"
        return super().push(chunk)


class Live:
    """A LiveCall over generated audio, pushed 20 ms at a time with the fake clock following the audio."""

    def __init__(self, listener: ScriptedListener | None, seconds_: float = 8.0, **kwargs: float) -> None:
        self.original = noise(int(seconds_ * RATE), seed=2) // 4
        self.capture = Capture()
        self.clock = FakeClock()
        session = CallSession(
            "live-test", RATE, listener=listener, policy=POLICY, sinks=[self.capture], paced_by_audio=False
        )
        self.live = LiveCall(session, clock=self.clock, **kwargs)
        self.start_clock = self.clock.now
        self.pushed = 0

    def play(self, until: float, settle: bool = True) -> None:
        """Push and tick up to ``until`` seconds; with ``settle``, let the listener keep up chunk by chunk."""
        while self.pushed < seconds(until):
            start = self.pushed
            self.clock.now = self.start_clock + (start + CHUNK) / RATE
            self.live.push(AudioChunk(self.original[start : start + CHUNK], RATE, start))
            self.pushed += CHUNK
            if settle:
                assert self.live.settle(WAIT)
            self.live.tick()

    def stall(self, listener: GatedListener) -> None:
        """Push the chunk the listener sticks on, and wait until it is stuck (so what is queued is known)."""
        self.play(listener.gate_at + CHUNK / RATE, settle=False)
        assert listener.entered.wait(WAIT)

    def released(self) -> np.ndarray:
        return np.concatenate([c.samples for c in self.capture.chunks])


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> object:
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.name.startswith("bleepline-listen")]
    for thread in left:
        thread.join(WAIT)
    assert not [t for t in left if t.is_alive()]


def test_stalled_listener_audio_is_released_on_the_clock_masked_then_clears_again() -> None:
    listener = GatedListener([], gate_at=1.0)
    call = Live(listener, max_backlog_s=10.0)
    call.play(1.0)
    call.stall(listener)
    began = time.monotonic()
    call.play(4.0, settle=False)  # the listener is stuck on the chunk ending at 1.02 s
    assert time.monotonic() - began < 0.5  # the media side did not wait for it
    released = call.released()
    assert len(released) == seconds(2.0)  # the clock (4 s) minus the delay (2 s): released regardless
    assert np.array_equal(released[: seconds(0.5)], call.original[: seconds(0.5)])  # cleared before
    assert not np.any(released[seconds(0.5) :])  # never raw: silence, unverified
    assert call.live.stats.queue_depth > 100

    listener.gate.set()
    assert call.live.settle(WAIT)
    call.play(8.0)
    report = call.live.end()
    released = call.released()
    assert len(released) == len(call.original)
    later = slice(seconds(2.0), seconds(7.5))  # heard after the catch-up, before its release
    assert np.array_equal(released[later], call.original[later])
    assert report.listener_failures == 0
    assert call.live.stats.max_lag_s >= 2.9  # the chunk pushed at 1.02 s was heard at 4 s
    assert call.live.stats.chunks_skipped == 0


def test_marks_from_the_worker_mask_exactly_as_in_file_mode() -> None:
    spans = [PiiSpan(3.0, 4.5, "CREDIT_CARD", 0.9)]
    _, by_file, _ = run_call(ScriptedListener(spans), seconds=8.0)
    listener = GatedListener(spans, gate_at=3.2)
    call = Live(listener)
    call.play(3.2)
    call.stall(listener)
    call.play(4.4, settle=False)  # the span's marks arrive late, but before 3.0 s is released
    listener.gate.set()
    assert call.live.settle(WAIT)
    call.play(8.0)
    call.live.end()
    assert np.array_equal(call.released(), by_file)
    span = slice(seconds(3.0), seconds(4.5))
    assert not np.any(call.released()[span] == call.original[span])


def test_a_listener_that_raises_masks_from_there_and_the_media_side_carries_on() -> None:
    call = Live(ScriptedListener([], fail_at=4.0))
    call.play(8.0)  # no exception reaches push or tick
    report = call.live.end()
    _, by_file, _ = run_call(ScriptedListener([], fail_at=4.0), seconds=8.0)
    assert report.listener_failures == 1
    released = call.released()
    assert np.array_equal(released, by_file)
    assert not np.any(released[seconds(3.5) :])


def test_a_slow_listener_beyond_the_backlog_drops_work_and_the_skipped_audio_stays_masked() -> None:
    listener = GatedListener([], gate_at=1.0)
    call = Live(listener, max_backlog_s=0.5)
    call.play(1.0)
    call.stall(listener)
    call.play(3.0, settle=False)
    stats = call.live.stats
    assert stats.queue_depth <= 25  # bounded by the backlog, not by the stall
    assert stats.chunks_skipped == 74  # 1.02 s to 2.5 s: the oldest go first
    assert stats.skipped_s == pytest.approx(1.48)
    listener.gate.set()
    assert call.live.settle(WAIT)
    call.play(8.0)
    call.live.end()
    released = call.released()
    # The listener then clears past the gap (it clears by time), but what it never heard stays masked.
    assert not np.any(released[seconds(1.02) : seconds(2.5)])
    assert np.array_equal(released[seconds(3.0) : seconds(7.5)], call.original[seconds(3.0) : seconds(7.5)])


def test_end_drains_and_reports_and_leaves_no_thread_running() -> None:
    before = threading.enumerate()
    call = Live(ScriptedListener([PiiSpan(1.0, 1.5, "PHONE_NUMBER", 0.8)]))
    call.play(3.0)
    report = call.live.end()
    assert report.duration == pytest.approx(3.0)
    assert report.spans_by_entity["PHONE_NUMBER"] == 1
    assert len(call.released()) == seconds(3.0)
    assert threading.enumerate() == before
    call.live.push(AudioChunk(call.original[:CHUNK], RATE, seconds(3.0)))  # a packet after the hang-up
    call.live.tick()
    assert call.live.stats.pushed_after_end == 1
    assert len(call.released()) == seconds(3.0)


def test_end_does_not_hang_on_a_stuck_listener_and_masks_what_it_missed() -> None:
    listener = GatedListener([], gate_at=1.0)
    call = Live(listener, end_timeout_s=0.1)
    call.play(1.0)
    call.stall(listener)
    call.play(2.0, settle=False)
    began = time.monotonic()
    report = call.live.end()
    assert time.monotonic() - began < 1.0
    assert call.live.stats.abandoned
    released = call.released()
    assert len(released) == seconds(2.0)
    assert np.array_equal(released[: seconds(0.5)], call.original[: seconds(0.5)])
    assert not np.any(released[seconds(0.5) :])
    assert report.duration == pytest.approx(2.0)
    listener.gate.set()  # the stuck step returns; its word comes too late and is ignored
    # (the autouse fixture checks the thread then exits)


class PausableListener(ScriptedListener):
    """Final only up to ``lag`` behind while audio comes; a pause makes everything heard final."""

    def __init__(self, lag: float) -> None:
        super().__init__([], lag=lag)
        self.pauses: list[float] = []
        self.silences: list[float] = []

    def pause(self, at: float, silent_s: float = 0.0) -> Hearing:
        self.pauses.append(at)
        self.silences.append(silent_s)
        return Hearing(heard_until=at, final_until=at, spans=())


def test_audio_that_stops_coming_is_a_pause_and_what_came_before_is_cleared_in_time() -> None:
    listener = PausableListener(lag=5.0)  # never final in time from the audio alone
    call = Live(listener, seconds_=2.0)
    call.play(2.0)
    for step in range(1, 200):  # the far end sends nothing more; the clock runs on for 4 s
        call.clock.now = call.start_clock + 2.0 + step * 0.02
        call.live.tick()
        assert call.live.settle(WAIT)
    # Once per silence, and once more when it has lasted LONG_PAUSE_S, saying how long.
    assert listener.pauses == [pytest.approx(2.0), pytest.approx(2.0)]
    assert listener.silences[0] == 0.0
    assert LONG_PAUSE_S <= listener.silences[1] < LONG_PAUSE_S + 0.05
    assert call.live.stats.pauses == 2
    call.live.end()
    released = call.released()
    # Noticed 0.3 s into the silence: what the 2 s delay had not yet released by then comes out clear.
    after = slice(seconds(0.32), seconds(2.0))
    assert np.array_equal(released[after], call.original[after])
    assert not np.any(released[: seconds(0.3)])  # before the pause nothing cleared it: unverified


def test_a_listener_that_cannot_pause_leaves_the_audio_masked_until_it_clears_it() -> None:
    call = Live(ScriptedListener([], lag=5.0), seconds_=2.0)
    call.play(2.0)
    for step in range(1, 200):
        call.clock.now = call.start_clock + 2.0 + step * 0.02
        call.live.tick()
    call.live.end()
    assert not np.any(call.released()[: seconds(2.0)])  # released unverified: silence
