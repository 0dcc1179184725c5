"""RtpEndpoint over real UDP sockets on 127.0.0.1: latching, drops by reason, RTCP BYE, passthrough, timeout.

Each test runs its own loop with ``asyncio.run`` and waits on conditions with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest

from bleepline.transport.endpoint import MAX_DATAGRAM_BYTES, RtpEndpoint, open_endpoint
from bleepline.transport.rtp import RtcpBye, RtpPacket, empty_receiver_report

LOCAL = "127.0.0.1"
DEADLINE_S = 1.0


def rtp(seq: int, ssrc: int = 0x1234, payload: bytes = b"\xff" * 160) -> bytes:
    return RtpPacket(0, seq, seq * 160, ssrc, payload).serialize()


@contextmanager
def udp_socket() -> Iterator[socket.socket]:
    """A non-blocking UDP socket bound to a free loopback port: a far end, a stranger or a forward target."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((LOCAL, 0))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds; fail after DEADLINE_S instead of hanging."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


class Call:
    """What the endpoint's callbacks saw, plus the endpoint itself."""

    def __init__(self) -> None:
        self.packets: list[tuple[RtpPacket, float]] = []
        self.byes = 0
        self.timeouts = 0
        self.endpoint: RtpEndpoint

    def on_packet(self, packet: RtpPacket, arrival: float) -> None:
        self.packets.append((packet, arrival))

    def on_bye(self) -> None:
        self.byes += 1

    def on_timeout(self) -> None:
        self.timeouts += 1

    async def open(self, **options: object) -> RtpEndpoint:
        self.endpoint = await open_endpoint(
            LOCAL,
            0,
            on_packet=self.on_packet,
            on_bye=self.on_bye,
            on_timeout=self.on_timeout,
            **options,  # type: ignore[arg-type]
        )
        return self.endpoint

    async def deliver(self, sock: socket.socket, *datagrams: bytes) -> None:
        """Send datagrams from ``sock`` and wait until the endpoint has taken each one."""
        target = self.endpoint.stats.datagrams + len(datagrams)
        for data in datagrams:
            sock.sendto(data, self.endpoint.local_address)
        await until(lambda: self.endpoint.stats.datagrams >= target)


def run_call(scenario: Callable[[Call], Awaitable[None]], **options: object) -> Call:
    """Open an endpoint, run ``scenario`` against it, close it; the Call records what happened."""
    call = Call()

    async def main() -> None:
        await call.open(**options)
        try:
            await scenario(call)
        finally:
            call.endpoint.close()

    asyncio.run(main())
    return call


def test_packets_from_one_sender_arrive_in_order_with_arrival_times() -> None:
    async def scenario(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, *(rtp(seq) for seq in range(10)))
            assert call.endpoint.source == far_end.getsockname()

    call = run_call(scenario)
    assert [packet.sequence for packet, _ in call.packets] == list(range(10))
    arrivals = [arrival for _, arrival in call.packets]
    assert arrivals == sorted(arrivals)
    stats = call.endpoint.stats
    assert (stats.datagrams, stats.rtp, stats.bytes) == (10, 10, 10 * 172)


def test_a_second_sender_after_latching_is_dropped_and_counted_as_stranger() -> None:
    async def scenario(call: Call) -> None:
        with udp_socket() as far_end, udp_socket() as stranger:
            await call.deliver(far_end, rtp(1))
            await call.deliver(stranger, rtp(2, ssrc=0x666), rtp(3, ssrc=0x666))
            await call.deliver(far_end, rtp(2))
            assert call.endpoint.source == far_end.getsockname()

    call = run_call(scenario)
    assert [(packet.sequence, packet.ssrc) for packet, _ in call.packets] == [(1, 0x1234), (2, 0x1234)]
    assert call.endpoint.stats.stranger == 2


def test_without_latching_only_the_sdp_source_is_accepted() -> None:
    with udp_socket() as far_end, udp_socket() as stranger:

        async def scenario(call: Call) -> None:
            await call.deliver(stranger, rtp(1, ssrc=0x666))
            await call.deliver(far_end, rtp(2))

        call = run_call(scenario, latch=False, expected_source=far_end.getsockname())
    assert [packet.ssrc for packet, _ in call.packets] == [0x1234]
    assert call.endpoint.stats.stranger == 1


def test_malformed_datagrams_are_counted_by_reason_and_the_endpoint_keeps_working() -> None:
    padded = bytearray(rtp(5, payload=b"\x00" * 4))
    padded[0] |= 0x20  # padding flag, and a last byte (the count) of 0
    garbage = bytes(range(255, 155, -1))  # version 3, and its second byte is not an RTCP type
    truncated_sr = bytes((0x80, 200, 0, 6)) + bytes(8)  # an SR declaring 28 bytes, 12 sent

    async def scenario(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, rtp(1))
            await call.deliver(far_end, b"\x80\x00", b"\x40" + rtp(2)[1:], bytes(padded), garbage, b"")
            await call.deliver(far_end, truncated_sr)
            await call.deliver(far_end, rtp(3))

    call = run_call(scenario)
    assert [packet.sequence for packet, _ in call.packets] == [1, 3]
    assert call.endpoint.stats.malformed == {"short": 2, "version": 2, "padding": 1, "rtcp_truncated": 1}
    assert call.endpoint.stats.rtp == 2


def test_oversize_datagram_is_dropped_and_counted() -> None:
    async def scenario(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, rtp(1, payload=bytes(MAX_DATAGRAM_BYTES)), rtp(2))

    call = run_call(scenario)
    assert [packet.sequence for packet, _ in call.packets] == [2]
    assert call.endpoint.stats.oversize == 1


def test_rtcp_bye_from_the_source_calls_on_bye_once_and_other_rtcp_is_counted() -> None:
    async def scenario(call: Call) -> None:
        with udp_socket() as far_end:
            await call.deliver(far_end, rtp(1), empty_receiver_report(0x1234))
            assert call.byes == 0
            bye = empty_receiver_report(0x1234) + RtcpBye((0x1234,), "hung up").serialize()
            await call.deliver(far_end, bye, bye)

    call = run_call(scenario)
    assert call.byes == 1
    assert call.endpoint.stats.rtcp == 3


def test_rtcp_bye_from_a_stranger_or_before_any_rtp_is_ignored() -> None:
    bye = RtcpBye((0x1234,)).serialize()

    async def scenario(call: Call) -> None:
        with udp_socket() as far_end, udp_socket() as stranger:
            await call.deliver(far_end, bye)
            await call.deliver(far_end, rtp(1))
            await call.deliver(stranger, bye)

    call = run_call(scenario)
    assert call.byes == 0
    assert call.endpoint.stats.stranger == 2


def test_on_packet_that_raises_is_counted_logged_without_content_and_the_next_packet_arrives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []

    def on_packet(packet: RtpPacket, arrival: float) -> None:
        if packet.sequence == 1:
            raise RuntimeError("card 4111 1111 1111 1111")
        seen.append(packet.sequence)

    async def main() -> RtpEndpoint:
        endpoint = await open_endpoint(LOCAL, 0, on_packet=on_packet, on_bye=lambda: None)
        with udp_socket() as far_end:
            for seq in (1, 2, 1, 3):
                far_end.sendto(rtp(seq), endpoint.local_address)
            await until(lambda: endpoint.stats.datagrams == 4)
        endpoint.close()
        return endpoint

    with caplog.at_level(logging.WARNING, logger="bleepline.transport.endpoint"):
        endpoint = asyncio.run(main())
    assert seen == [2, 3]
    assert endpoint.stats.callback_errors == 2
    assert "RuntimeError" in caplog.text
    assert "4111" not in caplog.text
    assert len(caplog.records) == 1  # logged once, counted twice


def test_passthrough_forwards_identical_bytes_from_the_source_only() -> None:
    sent = [rtp(seq, payload=bytes([seq]) * 160) for seq in range(5)]
    latencies: list[float] = []

    with udp_socket() as target:

        async def scenario(call: Call) -> None:
            loop = asyncio.get_running_loop()
            with udp_socket() as far_end, udp_socket() as stranger:
                received: list[bytes] = []
                for data in sent:
                    started = loop.time()
                    far_end.sendto(data, call.endpoint.local_address)
                    forwarded, origin = await asyncio.wait_for(loop.sock_recvfrom(target, 4096), DEADLINE_S)
                    latencies.append(loop.time() - started)
                    assert origin == call.endpoint.local_address  # out of the same socket
                    received.append(forwarded)
                await call.deliver(stranger, rtp(9))
                await call.deliver(far_end, b"\x80")
                assert received == sent

        call = run_call(scenario, forward_to=target.getsockname())
    # Loose sanity only: two loopback hops and the event loop, not a benchmark.
    print(f"passthrough round trip: median {sorted(latencies)[len(latencies) // 2] * 1e6:.0f} us")
    assert call.endpoint.stats.forwarded == 5
    assert len(call.packets) == 5


def test_send_goes_out_from_the_endpoint_port() -> None:
    async def scenario(call: Call) -> None:
        loop = asyncio.get_running_loop()
        with udp_socket() as far_end:
            call.endpoint.send(b"redacted", far_end.getsockname())
            data, origin = await asyncio.wait_for(loop.sock_recvfrom(far_end, 4096), DEADLINE_S)
            assert (data, origin) == (b"redacted", call.endpoint.local_address)

    call = run_call(scenario)
    assert call.endpoint.stats.sent == 1


def test_inactivity_timeout_fires_when_no_packet_comes() -> None:
    async def scenario(call: Call) -> None:
        await until(lambda: call.timeouts == 1)
        with udp_socket() as far_end:
            # A packet after the timeout re-arms it: a call that comes back can time out again.
            await call.deliver(far_end, rtp(1))
        await until(lambda: call.timeouts == 2)

    call = run_call(scenario, inactivity_timeout_s=0.02)
    assert len(call.packets) == 1


def test_closed_endpoint_drops_sends() -> None:
    async def scenario(call: Call) -> None:
        call.endpoint.close()
        call.endpoint.close()
        call.endpoint.send(b"late", (LOCAL, 9))

    call = run_call(scenario)
    assert call.endpoint.closed
    assert call.endpoint.stats.sent == 0


@pytest.mark.parametrize(
    "options",
    [
        {"latch": False},
        {"expected_source": ("far.example", 5004)},
        {"forward_to": (LOCAL, 0)},
        {"inactivity_timeout_s": 0.0},
    ],
)
def test_bad_options_raise_before_a_socket_is_bound(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        run_call(lambda call: asyncio.sleep(0), **options)
