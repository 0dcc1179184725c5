"""The static RTP port against spoofed and refused sources: a source becomes a call only after a plausible
stream (probation), with nothing it sent lost; a source refused stays refused until it goes quiet or says
BYE, and never becomes a call mid-stream; both tables stay bounded however many sources there are.

Most tests drive a ``RelayServer`` by hand, with no socket and no ticker, on a clock the test moves
(``DrivenServer``); the last ones go through a real UDP port with the harness.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bleepline.audio.codecs import PCMU, decoder_for, encoder_for
from bleepline.call import Listener
from bleepline.listener import CallListener
from bleepline.metrics import MetricsCollector
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.stream import SpanTracker
from bleepline.redact.policy import RedactionPolicy
from bleepline.relay.sources import MAX_PROBATION_SOURCES, PROBATION_IDLE_S, SourceGate
from bleepline.server import TICK_S, RelayServer, ServerStats
from bleepline.speech.asr import StreamingRecognizer
from bleepline.speech.models import load_whisper, resolve_model
from bleepline.store.keys import Identity, load_recipient, write_key_pair
from bleepline.transport.receiver import CallReceiver
from bleepline.transport.rtp import RtcpBye, RtpPacket
from tests import harness
from tests.test_call import ScriptedListener
from tests.test_ops import parse_metrics, value
from tests.test_serve import decoded, packets, send_paced, udp, wait_for
from tests.transport.test_impairments import ClearingListener

Address = tuple[str, int]
PACKET = 160  # 20 ms at 8 kHz
PTIME = PACKET / 8000
IDLE_S = 3.0
A: Address = ("192.0.2.10", 4000)  # documentation addresses: no datagram goes anywhere
B: Address = ("192.0.2.20", 4000)


class DrivenServer(RelayServer):
    """A PCMU relay with no socket and no ticker: the test hands it datagrams and ticks it on ``clock``."""

    clock = 100.0

    def _now(self) -> float:
        return self.clock

    def at(self, t: float, data: bytes, source: Address) -> None:
        """One datagram from ``source`` arriving at ``t`` (ticking up to it first)."""
        self.tick_until(t)
        self.datagram_received(data, source)

    def tick_until(self, t: float) -> None:
        while self.clock + TICK_S <= t:
            self.clock += TICK_S
            self._tick(self.clock)
        self.clock = max(self.clock, t)


def driven(
    tmp_path: Path,
    pub: Path,
    factory: Callable[[int], Listener | None] = lambda rate: None,
    *,
    max_calls: int = 64,
    max_listening_calls: int | None = None,
    over_capacity: str = "refuse",
) -> DrivenServer:
    """Unheard by default (all masked, as silence). The delay outlasts most scenarios, so what a test
    decrypts was released at the end, once the listener had heard all of it."""
    store = tmp_path / "store"
    store.mkdir(parents=True, exist_ok=True)
    return DrivenServer(
        codec=PCMU,
        recipients=[load_recipient(pub)],
        store=store,
        policy=RedactionPolicy(delay_s=3.0),
        listener_factory=factory,
        models=harness.TEST_MODELS,
        idle_timeout_s=IDLE_S,
        max_calls=max_calls,
        max_listening_calls=max_listening_calls,
        over_capacity=over_capacity,
    )


async def settle(server: RelayServer) -> None:
    """End every call still running and wait until each is finalised, as ``run`` does at stop."""
    for call in list(server._calls.values()):
        server._end_call(call, "stop")
    while server._finishing:
        await asyncio.gather(*server._finishing, return_exceptions=True)


@dataclass
class Caller:
    """One RTP stream: consecutive sequence numbers and timestamps, one 20 ms packet each."""

    source: Address
    ssrc: int
    sequence: int = 65534  # wraps within the first packets
    timestamp: int = 0xFFFFFF00
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    sent: list[bytes] = field(default_factory=list)  # the payloads, in sequence order

    def packet(self, payload_bytes: int = PACKET) -> bytes:
        payload = self.rng.randbytes(payload_bytes)
        data = RtpPacket(0, self.sequence, self.timestamp, self.ssrc, payload).serialize()
        self.sent.append(payload)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + payload_bytes) & 0xFFFFFFFF
        return data

    def bye(self) -> bytes:
        return RtcpBye((self.ssrc,)).serialize()


def talk(server: DrivenServer, callers: Sequence[Caller], seconds: float) -> None:
    """Each caller sends a packet every 20 ms for ``seconds`` from the server's clock on."""
    start = server.clock
    for i in range(1, round(seconds / PTIME) + 1):
        for caller in callers:
            server.at(start + i * PTIME, caller.packet(), caller.source)


def random_rtp(rng: random.Random) -> bytes:
    """An RTP v2 header with the port's payload type and everything else random, as a spoofer sends."""
    first = 0x80 | rng.getrandbits(6)  # padding, extension and CSRC count random too
    second = rng.getrandbits(1) << 7  # marker random, payload type 0 (PCMU)
    return bytes([first, second]) + rng.randbytes(10 + rng.randint(0, 300))


def accounted(stats: ServerStats) -> int:
    """Datagrams in a counter: each one in at most one (and in one, once nothing is held)."""
    return (
        stats.rtp
        + stats.rtcp
        + stats.malformed
        + stats.oversize
        + stats.wrong_payload_type
        + stats.stranger
        + stats.after_end
        + stats.unproven
        + stats.still_refused
    )


# -- probation -----------------------------------------------------------------------------------------------


def test_one_spoofed_packet_starts_no_call_and_is_forgotten(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    server = driven(tmp_path, key_pair[0])
    server.at(server.clock, Caller(A, 0x1234).packet(), A)
    assert server.stats.calls_started == 0
    assert server.sources_on_probation == 1
    server.tick_until(server.clock + PROBATION_IDLE_S + TICK_S)
    assert server.sources_on_probation == 0
    assert server.stats.unproven == 1
    assert accounted(server.stats) == server.stats.datagrams == 1
    assert not list(server.store.iterdir())  # no recording was opened


def test_twenty_thousand_random_datagrams_start_no_call(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    server = driven(tmp_path, key_pair[0])
    rng = random.Random(2024)
    sources = [(f"198.51.100.{i}", 5000 + i) for i in range(1, 40)]
    for i in range(20_000):
        # Half plain noise, half RTP headers of the right version and payload type: the ones that count.
        data = rng.randbytes(rng.randint(0, 400)) if i % 2 else random_rtp(rng)
        server.at(server.clock + 0.0002, data, rng.choice(sources))
        assert server.stats.calls_started == 0, i
        assert server.sources_on_probation <= MAX_PROBATION_SOURCES
    assert not list(server.store.iterdir())
    server.tick_until(server.clock + PROBATION_IDLE_S + TICK_S)
    assert server.sources_on_probation == 0
    # The well-formed RTP among them, held and then dropped; so many sources that the table was full.
    assert server.stats.unproven > 3000
    assert server.stats.probation_evicted > 0
    assert accounted(server.stats) == server.stats.datagrams == 20_000


def test_a_stream_that_passes_probation_loses_nothing_and_starts_at_its_first_packet(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, identity = key_pair
    server = driven(tmp_path, pub, lambda rate: ClearingListener())
    caller = Caller(A, 0x77)
    data = [caller.packet() for _ in range(25)]
    t0 = server.clock
    # Arrival order 1, 0, 0 again, 3, 2, 4, ...: reordered and duplicated before the stream is proven.
    order = [1, 0, 0, 3, 2, *range(4, 25)]

    async def scenario() -> None:
        for n, i in enumerate(order):
            server.at(t0 + n * PTIME, data[i], A)
            if n < 4:
                assert server.stats.calls_started == 0, n
        [call] = server._calls.values()
        assert call.started == t0  # the call's clock starts at its first packet, not at the proof
        await settle(server)

    asyncio.run(scenario())
    assert server.stats.rtp == len(order)  # every datagram reached the call, the duplicate too
    assert server.stats.calls_started == server.stats.calls_ended == 1
    [report] = server.stats.reports
    assert report.listener_failures == 0
    [recording] = server.store.glob("*.bleep")
    heard = decoder_for(PCMU).decode(b"".join(caller.sent))
    assert np.array_equal(decoded(recording, tmp_path, identity), heard)  # nothing lost, all in place


def test_probation_is_bounded_the_least_recently_heard_go_first() -> None:
    stats = ServerStats()
    gate = SourceGate(stats, clock_rate=8000, quiet_s=IDLE_S, max_probation=4, max_held=4)
    for i in range(10):
        t = 0.001 * i
        # One source sends all along, never two numbers in a row: on probation throughout, and always
        # the most recently heard when a new one-packet source comes.
        assert gate.probe((A, 1), RtpPacket(0, 2 * i, 0, 1, b""), t) is None
        assert gate.probe((B, 100 + i), RtpPacket(0, 0, 0, 100 + i, b""), t) is None
        assert gate.on_probation <= 4
    assert gate.on_probation == 4
    assert stats.probation_evicted == 10 - 3  # room for three one-packet sources beside it
    # Dropped: the evicted sources' packets, and the steady one's oldest past its hold of four.
    assert stats.unproven == 7 + 6
    gate.expire(1.0 + PROBATION_IDLE_S)
    assert gate.on_probation == 0
    assert stats.unproven == 10 + 10


def test_a_bye_or_idleness_ends_a_probation(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    server = driven(tmp_path, key_pair[0])
    caller = Caller(A, 9)
    server.at(server.clock, caller.packet(), A)
    server.at(server.clock + PTIME, caller.bye(), A)  # its own BYE: a known source, not a stranger
    assert server.sources_on_probation == 0
    assert (server.stats.unproven, server.stats.rtcp, server.stats.stranger) == (1, 1, 0)
    server.at(server.clock + PTIME, Caller(B, 9).bye(), B)  # nothing from there: a stranger's
    assert server.stats.stranger == 1
    # Packets further apart than the probation's patience never add up to a stream.
    for _ in range(5):
        server.at(server.clock + PROBATION_IDLE_S + TICK_S, caller.packet(), A)
    assert server.stats.calls_started == 0
    assert server.stats.unproven == 5


@settings(max_examples=200, deadline=None)
@given(
    jitter=st.lists(st.floats(0.0, 0.05), min_size=12, max_size=12),
    twice=st.sets(st.integers(0, 11), max_size=3),
    lost=st.sets(st.integers(0, 11), max_size=2),
    start=st.integers(0, 0xFFFF),
)
def test_a_jittery_stream_passes_probation_with_all_it_sent(
    jitter: list[float], twice: set[int], lost: set[int], start: int
) -> None:
    """Reordered by up to 50 ms, some packets twice, a couple lost: proven within the twelve packets,
    and every packet it sent handed over, duplicates included, in arrival order."""
    stats = ServerStats()
    gate = SourceGate(stats, clock_rate=8000, quiet_s=IDLE_S)
    arrivals = sorted(
        (i * PTIME + jitter[i] + copy * 0.01, copy, i)
        for i in range(12)
        if i not in lost
        for copy in range(2 if i in twice else 1)
    )
    sent = [(RtpPacket(0, (start + i) & 0xFFFF, i * PACKET, 3, b""), at) for at, _, i in arrivals]
    proven = None
    for n, (packet, at) in enumerate(sent):
        proven = gate.probe((A, 3), packet, at)
        if proven is not None:
            assert proven == sent[: n + 1]
            break
    assert proven is not None
    assert stats.unproven == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    datagrams=st.lists(
        st.tuples(
            st.integers(0, 3),  # which source
            st.floats(0.0, 0.5),  # seconds since the previous datagram
            st.one_of(
                st.binary(max_size=64),
                st.builds(
                    lambda seq, ts, ssrc, payload: RtpPacket(0, seq, ts, ssrc, payload).serialize(),
                    st.integers(0, 5),
                    st.integers(0, 400),
                    st.integers(0, 2),
                    st.binary(max_size=40),
                ),
                st.builds(lambda ssrc: RtcpBye((ssrc,)).serialize(), st.integers(0, 2)),
            ),
        ),
        max_size=60,
    )
)
def test_any_datagrams_are_each_counted_once_and_nothing_fails(
    datagrams: list[tuple[int, float, bytes]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever arrives: no packet handling fails, each datagram lands in one counter once nothing is
    held, and the tables stay within their bounds. Calls may start (small sequence numbers and
    timestamps make plausible streams likely); every one that does is finalised."""
    tmp = tmp_path_factory.mktemp("any")
    pub, _ = write_key_pair(tmp / "keys", Identity.generate())
    server = driven(tmp, pub, max_calls=2)
    sources = [("203.0.113.1", 7000), ("203.0.113.1", 7001), ("203.0.113.2", 7000), ("203.0.113.3", 9)]

    async def scenario() -> None:
        for which, gap, data in datagrams:
            server.at(server.clock + gap, data, sources[which])
        server.tick_until(server.clock + max(IDLE_S, PROBATION_IDLE_S) + TICK_S)
        await settle(server)

    asyncio.run(scenario())
    stats = server.stats
    assert server.sources_on_probation == server.sources_refused == 0
    assert accounted(stats) == stats.datagrams == len(datagrams)
    assert stats.calls_started == stats.calls_ended


# -- refused sources -----------------------------------------------------------------------------------------


def test_a_caller_refused_for_capacity_is_never_admitted_mid_stream(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    listeners: list[ScriptedListener] = []

    def factory(rate: int) -> ScriptedListener:
        listeners.append(ScriptedListener([], lag=0.1))
        return listeners[-1]

    server = driven(tmp_path, key_pair[0], factory, max_calls=1)
    first, second = Caller(A, 0x1111), Caller(B, 0x2222)

    async def scenario() -> None:
        talk(server, [first, second], 1.0)  # both talk; only the first fits
        assert server.stats.calls_started == 1
        assert server.stats.refused == 1  # one refusal for the source, not one per packet
        assert server.sources_refused == 1
        server.at(server.clock + PTIME, first.bye(), A)  # the slot frees...
        assert server.active_calls == 0
        talk(server, [second], 2.0)  # ...and the refused caller, mid-sentence, stays out
        assert server.stats.calls_started == 1
        assert server.stats.still_refused == 100 + 50  # 2 s of it now; 1 s before, proof included
        # Quiet for the idle timeout: its refusal is forgotten, and a new stream from it is a new call.
        server.tick_until(server.clock + IDLE_S + TICK_S)
        assert server.sources_refused == 0
        talk(server, [second], 0.2)
        assert server.stats.calls_started == 2
        assert len(listeners) == 2  # heard from its first packet: the new stream's, never mid-stream
        await settle(server)

    asyncio.run(scenario())
    assert server.stats.refused == 1
    assert accounted(server.stats) == server.stats.datagrams


def test_a_refused_callers_bye_ends_its_refusal(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    server = driven(tmp_path, key_pair[0], max_calls=1)
    first, second = Caller(A, 1), Caller(B, 2)

    async def scenario() -> None:
        talk(server, [first, second], 0.2)
        assert server.sources_refused == 1
        server.at(server.clock + PTIME, first.bye(), A)
        server.at(server.clock + PTIME, Caller(B, 3).bye(), B)  # another stream's BYE: still refused
        talk(server, [second], 0.2)
        assert server.stats.calls_started == 1
        server.at(server.clock + PTIME, second.bye(), B)
        assert server.sources_refused == 0
        assert server.stats.stranger == 1
        assert server.stats.rtcp == 2
        talk(server, [Caller(B, 2)], 0.2)  # a new stream after the BYE: a call from its start
        assert server.stats.calls_started == 2
        await settle(server)

    asyncio.run(scenario())


def test_refusals_are_bounded_the_least_recently_heard_go_first() -> None:
    stats = ServerStats()
    gate = SourceGate(stats, clock_rate=8000, quiet_s=IDLE_S, max_refused=4)
    gate.refuse((A, 0), 0.0, held=3)
    for i in range(1, 10):
        gate.refuse((B, i), i * 0.01, held=3)
        assert gate.is_refused((A, 0), i * 0.01)  # still sending: never the one evicted
        assert gate.refused <= 4
    assert stats.refusals_evicted == 6
    assert stats.still_refused == 10 * 3 + 9
    assert not gate.is_refused((B, 1), 0.2)  # forgotten: evicted
    assert gate.is_refused((B, 9), 0.2)
    gate.expire(1.0 + IDLE_S)
    assert gate.refused == 0


def test_the_static_ports_refusals_and_probations_are_in_the_metrics(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    server = driven(tmp_path, key_pair[0], max_calls=1)
    first, second = Caller(A, 1), Caller(B, 2)
    collector = MetricsCollector(server)

    async def scenario() -> None:
        talk(server, [first, second], 0.2)  # the second is refused: 10 packets dropped
        server.at(server.clock + PTIME, Caller(A, 3).packet(), A)  # on probation
        samples = parse_metrics(collector.render())
        assert value(samples, "bleepline_packets_dropped_total", reason="still_refused") == 10
        assert value(samples, "bleepline_static_sources_refused") == 1
        assert value(samples, "bleepline_static_sources_on_probation") == 1
        assert value(samples, "bleepline_calls_refused_total") == 1
        server.tick_until(server.clock + PROBATION_IDLE_S + TICK_S)
        samples = parse_metrics(collector.render())
        assert value(samples, "bleepline_packets_dropped_total", reason="unproven") == 1
        assert value(samples, "bleepline_static_sources_on_probation") == 0
        assert value(samples, "bleepline_static_probation_evictions_total") == 0
        assert value(samples, "bleepline_static_refusal_evictions_total") == 0
        await settle(server)

    asyncio.run(scenario())


def test_over_capacity_mask_keeps_a_late_call_unheard_to_its_end(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, identity = key_pair
    server = driven(
        tmp_path, pub, lambda rate: ClearingListener(), max_listening_calls=1, over_capacity="mask"
    )
    first, second = Caller(A, 1), Caller(B, 2)

    async def scenario() -> None:
        talk(server, [first, second], 0.5)
        assert server.stats.calls_started == 2
        assert server.stats.calls_unheard == 1
        server.at(server.clock + PTIME, first.bye(), A)
        talk(server, [second], 0.5)  # the recognizer is free now; the call it did not hear stays so
        [late] = server._calls.values()
        assert late.live.session.listener is None
        await settle(server)

    asyncio.run(scenario())
    assert server.stats.refused == 0
    late_id = next(r.call_id for r in server.stats.reports if r.duration > 0.7)
    recording = decoded(server.store / f"{late_id}.bleep", tmp_path, identity)
    assert len(recording) == 50 * PACKET
    assert not np.any(recording)  # unverified: every sample masked (silence under this policy)


# -- hostile audio into the listener -------------------------------------------------------------------------


def test_a_call_of_a_few_bytes_of_audio_does_not_kill_its_listener(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    """Three packets of 8 random bytes each: a plausible stream, 3 ms of audio in all, shorter than the
    resampler's delay. The recognizer used to meet only the resampler's tail at the end, with no window
    started, and fail on an assertion (the call then failed closed, its listener dead)."""
    whisper = load_whisper(resolve_model())
    detector = SpokenPiiDetector()

    def factory(rate: int) -> CallListener:
        return CallListener(rate, StreamingRecognizer(whisper=whisper), SpanTracker(detector))

    server = driven(tmp_path, key_pair[0], factory)
    rng = random.Random(7)
    caller = Caller(A, rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32), rng)

    async def scenario() -> None:
        for _ in range(3):
            server.at(server.clock + PTIME, caller.packet(payload_bytes=8), A)
        await settle(server)  # the end hands the listener what the receiver holds, then its last word

    asyncio.run(scenario())
    [report] = server.stats.reports
    assert report.listener_failures == 0


def test_random_packets_into_a_call_never_fail_its_listener() -> None:
    """Packets of the call's payload type with random numbering, timestamps and payload (of any length)
    through the receive path into the real listener: no exception, whatever the receiver makes of them."""
    whisper = load_whisper(resolve_model())
    detector = SpokenPiiDetector()
    rng = random.Random(0)  # five of these forty calls met the assertion the recognizer had
    for _ in range(40):
        receiver = CallReceiver(PCMU, telephone_event_pt=None, payload_type=0)
        listener = CallListener(8000, StreamingRecognizer(whisper=whisper), SpanTracker(detector))
        t = 0.0
        for _ in range(rng.randint(1, 6)):
            size = rng.choice([rng.randint(0, 24), rng.randint(0, 400)])
            packet = RtpPacket(0, rng.getrandbits(16), rng.getrandbits(32), 7, rng.randbytes(size))
            t += rng.uniform(0.0, 0.1)
            receiver.receive(packet, t)
            for chunk in receiver.poll(t):
                listener.push(chunk)
        for chunk in receiver.flush():
            listener.push(chunk)
        listener.end(t + 1.0)


# -- over a real UDP port ------------------------------------------------------------------------------------


def test_spoofed_datagrams_over_udp_start_no_call_and_a_real_caller_still_gets_one(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    server = harness.make_server(tmp_path / "store", key_pair[0])
    rng = random.Random(99)
    spoofed = [random_rtp(rng) for _ in range(500)]
    tone = (np.sin(2 * np.pi * 440 * np.arange(1600) / 8000) * 8000).astype(np.int16)
    with harness.running(server, static=harness.LOOPBACK_ANY), udp() as spoofer, udp() as caller:
        address = server.local_address
        assert address is not None
        # In bursts the socket's buffer holds whole: a datagram the kernel dropped would prove nothing.
        counted = server.stats
        for at in range(0, len(spoofed), 20):
            for data in spoofed[at : at + 20]:
                spoofer.sendto(data, address)
            wait_for(lambda: counted.datagrams == at + 20, 5)  # noqa: B023 (called at once, in the loop)
        assert server.stats.calls_started == 0
        send_paced(caller, address, packets(tone, ssrc=0x99))
        wait_for(lambda: server.stats.rtp == len(tone) // PACKET, 5)
        assert server.stats.calls_started == 1


def test_a_refused_caller_over_udp_stays_out_after_the_slot_frees(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    server = harness.make_server(tmp_path / "store", key_pair[0], max_calls=1)
    encoder = encoder_for(PCMU)
    silence = encoder.encode(np.zeros(PACKET, dtype=np.int16))
    with harness.running(server, static=harness.LOOPBACK_ANY), udp() as first, udp() as second:
        address = server.local_address
        assert address is not None
        ours = [RtpPacket(0, i, i * PACKET, 1, silence).serialize() for i in range(100)]
        theirs = [RtpPacket(0, i, i * PACKET, 2, silence).serialize() for i in range(100)]
        both: list[tuple[socket.socket, bytes]] = [
            pair for i in range(10) for pair in ((first, ours[i]), (second, theirs[i]))
        ]
        for sock, data in both:
            sock.sendto(data, address)
        wait_for(lambda: server.stats.datagrams == 20, 5)
        first.sendto(RtcpBye((1,)).serialize(), address)
        wait_for(lambda: server.active_calls == 0, 5)
        for data in theirs[10:]:
            second.sendto(data, address)
        wait_for(lambda: server.stats.datagrams == 21 + 90, 5)
        assert server.stats.calls_started == 1
