"""The relay's media plane per 20 ms packet, recognizer excluded: what every live call costs on every packet.

One loop per packet: the datagram parsed, placed on the timeline by the receiver and polled out, held in
the delay line and released three seconds later, and packetized again for the redacted leg. A baseline
in the same run (build and parse the packet only) gives the ratio, which is steadier than the absolute
figures on a shared machine. ``with_session`` goes through ``CallSession.hold`` instead of the bare delay
line: the keypad (DTMF) detector every live call runs on the media side.

Run: .venv/bin/python -m pytest bench/bench_relay.py --benchmark-only
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bleepline.audio.codecs import PCMU, encoder_for
from bleepline.call import CallSession
from bleepline.redact.delayline import DelayLine
from bleepline.redact.policy import RedactionPolicy
from bleepline.timeline import AudioChunk
from bleepline.transport.receiver import CallReceiver
from bleepline.transport.rtp import RtpPacket, parse_rtp
from bleepline.transport.sender import RtpLegSender

RATE = 8000
PACKET = 160  # 20 ms at 8 kHz
POLICY = RedactionPolicy(delay_s=3.0)
SSRC = 0x1234ABCD
#: A second of speech-like noise as PCMU payloads, cycled: the codec's cost does not depend on content,
#: and a fixed set keeps the loop free of encoding work that a live call does not do on receipt.
_AUDIO = np.random.default_rng(0).normal(0, 3000, RATE).astype(np.int16)
PAYLOADS = [encoder_for(PCMU).encode(_AUDIO[i : i + PACKET]) for i in range(0, RATE, PACKET)]

cpu_time = pytest.mark.benchmark(timer=time.process_time, group="relay media plane: one 20 ms packet")

#: Mean seconds per packet of the baseline, for the ratio the other benchmarks report in extra_info.
_BASELINE: dict[str, float] = {}


class _Wire:
    """The far end: the next packet's bytes, as the socket would deliver them."""

    def __init__(self) -> None:
        self.index = 0

    def next(self) -> bytes:
        i = self.index
        self.index += 1
        return RtpPacket(
            0, i & 0xFFFF, (i * PACKET) & 0xFFFFFFFF, SSRC, PAYLOADS[i % len(PAYLOADS)]
        ).serialize()

    @property
    def now(self) -> float:
        """The arrival time of the packet just made: its audio is over (real-time pacing)."""
        return self.index * PACKET / RATE


def baseline_loop() -> Callable[[], None]:
    wire = _Wire()

    def one_packet() -> None:
        parse_rtp(wire.next())

    return one_packet


def relay_loop(*, with_session: bool) -> Callable[[], None]:
    wire = _Wire()
    receiver = CallReceiver(PCMU, telephone_event_pt=101, payload_type=0)
    sender = RtpLegSender(PCMU, 0, sample_rate=RATE)
    out: list[bytes] = []
    session = (
        CallSession("bench", RATE, listener=None, policy=POLICY, sinks=[], paced_by_audio=False)
        if with_session
        else None
    )
    delay = session.delay if session is not None else DelayLine(RATE, POLICY)

    def one_packet() -> None:
        packet = parse_rtp(wire.next())
        now = wire.now
        receiver.receive(packet, now)
        for chunk in receiver.poll(now):
            if session is not None:
                session.hold(chunk)  # the delay line and the keypad detector
            else:
                delay.push(chunk)
        # A listener that keeps up clears to half a second behind: the cleared (unmasked) release path.
        delay.clear_until(now - 0.5)
        for released in delay.release_until(now - POLICY.delay_s):
            for leg_packet in sender.write(released):
                out.append(leg_packet.serialize())
        out.clear()  # the socket's job; nothing kept

    return one_packet


def _ratio(benchmark: BenchmarkFixture) -> None:
    stats = benchmark.stats
    if stats is not None and "mean" in _BASELINE:
        mean = float(stats.stats.mean)
        benchmark.extra_info["x_baseline"] = round(mean / _BASELINE["mean"], 2)


@cpu_time
def test_baseline_build_and_parse(benchmark: BenchmarkFixture) -> None:
    benchmark(baseline_loop())
    if benchmark.stats is not None:
        _BASELINE["mean"] = float(benchmark.stats.stats.mean)


@cpu_time
def test_receive_delay_release_encode(benchmark: BenchmarkFixture) -> None:
    benchmark(relay_loop(with_session=False))
    _ratio(benchmark)


@cpu_time
def test_receive_hold_with_keypad_release_encode(benchmark: BenchmarkFixture) -> None:
    benchmark(relay_loop(with_session=True))
    _ratio(benchmark)


def test_the_loop_releases_and_sends_what_it_received() -> None:
    """The benchmarked loop does the work it claims: after 5 s, 2 s of audio went out on the leg."""
    wire = _Wire()
    receiver = CallReceiver(PCMU, telephone_event_pt=101, payload_type=0)
    delay = DelayLine(RATE, POLICY)
    sender = RtpLegSender(PCMU, 0, sample_rate=RATE)
    sent = 0
    for _ in range(250):
        packet = parse_rtp(wire.next())
        receiver.receive(packet, wire.now)
        for chunk in receiver.poll(wire.now):
            delay.push(chunk)
        delay.clear_until(wire.now - 0.5)
        for released in delay.release_until(wire.now - POLICY.delay_s):
            assert isinstance(released, AudioChunk)
            sent += len(sender.write(released))
    assert sent == 100
    assert not any(delay.stats.masked_samples.values())  # cleared in time: the unmasked path
