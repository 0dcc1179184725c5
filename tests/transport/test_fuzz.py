"""Property tests of the media plane's entry points against arbitrary bytes and packets.

The builders and parsers round-trip every field they accept; the parsers answer anything else with the
transport's own ``MalformedPacketError`` and nothing else; an endpoint counts every datagram in exactly
one counter and never raises; a receiver takes any packet sequence without raising and keeps its output
contiguous. Example counts are sized so the file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bleepline.audio.codecs import L16_8K, PCMA, PCMU, CodecSpec
from bleepline.timeline import AudioChunk
from bleepline.transport.endpoint import MAX_DATAGRAM_BYTES, EndpointStats, RtpEndpoint
from bleepline.transport.errors import MalformedPacketError
from bleepline.transport.receiver import CallReceiver
from bleepline.transport.rtp import (
    RtcpBye,
    RtcpSenderReport,
    RtpExtension,
    RtpPacket,
    TelephoneEvent,
    empty_receiver_report,
    is_rtcp,
    parse_rtcp,
    parse_rtp,
    parse_telephone_event,
)

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)

# --- strategies --------------------------------------------------------------------------------------

extensions = st.builds(
    RtpExtension,
    profile=U16,
    data=st.integers(0, 8).flatmap(lambda words: st.binary(min_size=4 * words, max_size=4 * words)),
)

rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 0x7F),
    sequence=U16,
    timestamp=U32,
    ssrc=U32,
    payload=st.binary(max_size=320),
    marker=st.booleans(),
    csrc=st.lists(U32, max_size=15).map(tuple),
    extension=st.none() | extensions,
    padding=st.integers(0, 0xFF),
)

byes = st.builds(
    RtcpBye,
    ssrcs=st.lists(U32, max_size=31).map(tuple),
    # Up to 255 UTF-8 bytes: at most 63 characters of up to four bytes each always fit.
    reason=st.none() | st.text(max_size=63),
)

sender_reports = st.builds(
    RtcpSenderReport,
    ssrc=U32,
    ntp_timestamp=st.integers(0, 0xFFFFFFFFFFFFFFFF),
    rtp_timestamp=U32,
    packet_count=U32,
    octet_count=U32,
)

telephone_events = st.builds(
    TelephoneEvent, event=st.integers(0, 0xFF), end=st.booleans(), volume=st.integers(0, 0x3F), duration=U16
)


@st.composite
def mutated(draw: st.DrawFn, packets: st.SearchStrategy[bytes]) -> bytes:
    """A valid packet with a few bytes changed, cut short or lengthened: the inputs that reach deep into
    a parser's branches, which uniformly random bytes rarely do."""
    data = bytearray(draw(packets))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 0xFF))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data) + draw(st.binary(max_size=8))


valid_rtp_bytes = rtp_packets.map(RtpPacket.serialize)
valid_rtcp_bytes = st.one_of(
    byes.map(RtcpBye.serialize),
    sender_reports.map(RtcpSenderReport.serialize),
    U32.map(empty_receiver_report),
    st.lists(
        st.one_of(byes.map(RtcpBye.serialize), sender_reports.map(RtcpSenderReport.serialize)),
        min_size=1,
        max_size=3,
    ).map(b"".join),
)
any_bytes = st.one_of(
    st.binary(max_size=80),
    mutated(valid_rtp_bytes),
    mutated(valid_rtcp_bytes),
    # A first byte that says version 2, so the parser gets past the first check.
    st.binary(min_size=1, max_size=60).map(lambda b: bytes((0x80 | (b[0] & 0x3F),)) + b[1:]),
)

# --- builders and parsers ------------------------------------------------------------------------------


@FAST
@given(rtp_packets)
def test_every_rtp_field_the_builder_takes_round_trips(packet: RtpPacket) -> None:
    assert parse_rtp(packet.serialize()) == packet


@FAST
@given(st.lists(st.one_of(byes, sender_reports), min_size=1, max_size=4))
def test_rtcp_compounds_round_trip(reports: list[RtcpBye | RtcpSenderReport]) -> None:
    parsed = parse_rtcp(b"".join(report.serialize() for report in reports))
    # An empty reason is written as none.
    expected = [RtcpBye(r.ssrcs, r.reason or None) if isinstance(r, RtcpBye) else r for r in reports]
    assert parsed == expected


@FAST
@given(telephone_events)
def test_telephone_events_round_trip(event: TelephoneEvent) -> None:
    assert parse_telephone_event(event.serialize()) == event


def _parse_all(data: bytes) -> list[MalformedPacketError]:
    """Every parser on ``data``: the errors they raised; anything but MalformedPacketError propagates."""
    is_rtcp(data)  # a plain predicate: never raises
    errors = []
    for parse in (parse_rtp, parse_rtcp, parse_telephone_event):
        try:
            parse(data)
        except MalformedPacketError as error:
            errors.append(error)
    return errors


@FAST
@given(any_bytes)
def test_parsers_raise_only_malformed_packet_errors(data: bytes) -> None:
    # Anything but MalformedPacketError (IndexError, struct.error, a plain ValueError…) fails the test.
    for error in _parse_all(data):
        # A fixed word fit for a metric label, and a message that never quotes the packet.
        assert error.reason.isidentifier()
        assert str(error)


# --- the endpoint --------------------------------------------------------------------------------------

CALLER: tuple[str, int] = ("127.0.0.1", 5004)
#: Addresses as the socket reports them; the caller again as IPv6 would (flow info and scope id).
SOURCES: list[tuple[Any, ...]] = [CALLER, ("127.0.0.1", 5006), ("10.0.0.9", 5004), ("::1", 5004, 0, 0)]
FORWARD_TO = ("127.0.0.1", 7000)


class FakeTransport(asyncio.DatagramTransport):
    """Takes what the endpoint sends (its passthrough) and says where it is bound."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, Any]] = []
        self.closed = False

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        self.sent.append((bytes(data), addr))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 6000) if name == "sockname" else default


@dataclass
class Callbacks:
    """The caller's side of the endpoint; it may be told to raise, as a buggy caller would."""

    raise_in_callbacks: bool
    packets: int = 0
    byes: int = 0
    seen: list[RtpPacket] = field(default_factory=list)

    def on_packet(self, packet: RtpPacket, arrival: float) -> None:
        self.packets += 1
        self.seen.append(packet)
        if self.raise_in_callbacks:
            raise RuntimeError("a bug downstream")

    def on_bye(self) -> None:
        self.byes += 1
        if self.raise_in_callbacks:
            raise KeyError("a bug downstream")


def _outcomes(stats: EndpointStats) -> tuple[int, ...]:
    return (stats.rtp, stats.rtcp, stats.stranger, stats.oversize, sum(stats.malformed.values()))


endpoint_datagrams = st.one_of(
    valid_rtp_bytes,
    valid_rtcp_bytes,
    any_bytes,
    st.binary(min_size=MAX_DATAGRAM_BYTES - 2, max_size=MAX_DATAGRAM_BYTES + 2),
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # One loop for every example: the endpoint reads the loop's clock and arms its timer on it.
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@SLOWER
@given(
    traffic=st.lists(st.tuples(endpoint_datagrams, st.sampled_from(SOURCES)), max_size=30),
    latch=st.booleans(),
    forward=st.booleans(),
    raise_in_callbacks=st.booleans(),
)
def test_an_endpoint_counts_every_datagram_once_and_never_raises(
    loop: asyncio.AbstractEventLoop,
    traffic: list[tuple[bytes, tuple[Any, ...]]],
    latch: bool,
    forward: bool,
    raise_in_callbacks: bool,
) -> None:
    callbacks = Callbacks(raise_in_callbacks)

    async def feed() -> None:
        endpoint = RtpEndpoint(
            on_packet=callbacks.on_packet,
            on_bye=callbacks.on_bye,
            expected_source=CALLER,
            latch=latch,
            forward_to=FORWARD_TO if forward else None,
        )
        transport = FakeTransport()
        endpoint.connection_made(transport)
        stats = endpoint.stats
        try:
            for data, source in traffic:
                before, datagrams = _outcomes(stats), stats.datagrams
                endpoint.datagram_received(data, source)
                after = _outcomes(stats)
                assert stats.datagrams == datagrams + 1
                changed = [b - a for a, b in zip(before, after, strict=True) if b != a]
                assert changed == [1], (before, after)
            assert callbacks.packets == stats.rtp
            assert callbacks.byes <= 1  # one BYE ends the call; later ones change nothing
            assert stats.callback_errors == (stats.rtp + callbacks.byes if raise_in_callbacks else 0)
            # The passthrough is exactly the RTP accepted, as received, and nothing else.
            assert stats.forwarded == (stats.rtp if forward else 0)
            assert [addr for _, addr in transport.sent] == [FORWARD_TO] * stats.forwarded
            assert [parse_rtp(data) for data, _ in transport.sent] == (callbacks.seen if forward else [])
            # Only one source's media gets through, whichever it is.
            if stats.rtp:
                assert endpoint.source in (CALLER, *(s[:2] for s in SOURCES))
                if not latch:
                    assert endpoint.source == CALLER
        finally:
            endpoint.close()

    loop.run_until_complete(feed())


# --- the receiver --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One packet relative to its stream's last one, so sequences are mostly plausible, sometimes wild."""

    stream: int
    seq_step: int
    ts_step: int
    payload_type: int
    payload: bytes
    after_s: float
    poll: bool


steps = st.builds(
    Step,
    stream=st.integers(0, 2),
    seq_step=st.one_of(st.integers(-3, 4), st.integers(-0x8000, 0x7FFF)),
    ts_step=st.one_of(st.sampled_from([0, 160, 320, -160]), st.integers(-(2**31), 2**31 - 1)),
    payload_type=st.one_of(st.sampled_from([0, 8, 11, 13, 101]), st.integers(0, 0x7F)),
    payload=st.one_of(st.binary(min_size=160, max_size=160), st.binary(max_size=400)),
    after_s=st.one_of(st.just(0.02), st.floats(0.0, 0.3)),
    poll=st.booleans(),
)


def _contiguous(chunks: list[AudioChunk], at: int, rate: int) -> int:
    for chunk in chunks:
        assert chunk.start == at
        assert chunk.sample_rate == rate
        at = chunk.end
    return at


@SLOWER
@given(
    codec=st.sampled_from([PCMU, PCMA, L16_8K]),
    event_pt=st.sampled_from([None, 101]),
    audio_pt=st.sampled_from([None, 0]),
    window_ms=st.sampled_from([0, 20, 60]),
    packets=st.lists(steps, max_size=60),
)
def test_a_receiver_takes_any_packets_without_raising(
    codec: CodecSpec, event_pt: int | None, audio_pt: int | None, window_ms: int, packets: list[Step]
) -> None:
    receiver = CallReceiver(
        codec, telephone_event_pt=event_pt, reorder_window_ms=window_ms, payload_type=audio_pt
    )
    ssrcs = (0x1111, 0x2222, 0xFFFFFFFF)
    sequence = [0xFFF0, 7, 0x8000]
    timestamp = [0xFFFFFF00, 0, 0x80000000]
    now = 0.0
    emitted = 0
    for step in packets:
        k = step.stream
        sequence[k] = (sequence[k] + step.seq_step) & 0xFFFF
        timestamp[k] = (timestamp[k] + step.ts_step) & 0xFFFFFFFF
        now += step.after_s
        packet = RtpPacket(step.payload_type, sequence[k], timestamp[k], ssrcs[k], step.payload)
        receiver.receive(packet, now)
        if step.poll:
            emitted = _contiguous(receiver.poll(now), emitted, codec.clock_rate)
        receiver.take_keypresses()
    emitted = _contiguous(receiver.poll(now + 1.0), emitted, codec.clock_rate)
    _contiguous(receiver.flush(), emitted, codec.clock_rate)
    for start, end in receiver.take_keypresses():
        assert 0.0 <= start <= end
    assert receiver.stats.packets == len(packets)
