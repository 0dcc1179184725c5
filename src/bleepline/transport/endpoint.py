"""The UDP endpoint of one call's incoming leg: datagrams in, parsed RTP packets and call events out.

Latches onto one media source, drops and counts all else, and can pass the raw RTP straight on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from bleepline.transport.errors import MalformedPacketError
from bleepline.transport.rtp import RtcpBye, RtpPacket, is_rtcp, parse_rtcp, parse_rtp

if TYPE_CHECKING:  # only a type here: a plain-RTP endpoint never loads libsrtp
    from bleepline.transport.srtp import SrtpInbound

_log = logging.getLogger(__name__)

#: Datagrams longer than this are dropped unread. RTP for a phone call fits an Ethernet MTU (1500 bytes
#: less 28 of IP and UDP headers); anything bigger is broken or hostile, and parsing it only costs CPU.
MAX_DATAGRAM_BYTES = 1500

Address = tuple[str, int]


@dataclass
class EndpointStats:
    """Counters of one endpoint; every datagram received is in ``datagrams`` and in exactly one of
    ``rtp``, ``rtcp``, ``stranger``, ``oversize`` or (by reason) ``malformed``.

    ``malformed`` keys are the parsers' reasons, RTCP ones prefixed ``rtcp_`` (both parsers say
    ``version``). ``callback_errors`` counts exceptions raised by the caller's callbacks, not drops.
    ``bytes`` counts whole datagrams received, ``sent`` the datagrams given to ``send``.
    """

    datagrams: int = 0
    bytes: int = 0
    rtp: int = 0
    rtcp: int = 0
    forwarded: int = 0
    stranger: int = 0
    oversize: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    callback_errors: int = 0
    socket_errors: int = 0
    sent: int = 0


class RtpEndpoint(asyncio.DatagramProtocol):
    """One call's incoming RTP/RTCP port (RTCP multiplexed, RFC 5761). Create it with ``open_endpoint``.

    With ``latch`` (symmetric RTP, the usual case behind NAT) the source of the first valid RTP packet
    becomes the call's source; without it, ``expected_source`` from the SDP is. Datagrams from any other
    address are dropped and counted as ``stranger``, so nobody can inject audio into another call.
    RTCP before a source is known is also a stranger's: it cannot be told apart from an injected BYE.

    With ``srtp`` (SDES-SRTP, the offer's key) every datagram from the source is unprotected before it is
    parsed, and a packet that fails is counted under ``malformed`` by its reason (``srtp_auth``,
    ``srtp_replay``..., ``rtcp_``-prefixed for SRTCP). Latching then needs a packet that authenticates.
    """

    def __init__(
        self,
        *,
        on_packet: Callable[[RtpPacket, float], None],
        on_bye: Callable[[], None],
        expected_source: Address | None = None,
        latch: bool = True,
        forward_to: Address | None = None,
        inactivity_timeout_s: float = 30.0,
        on_timeout: Callable[[], None] | None = None,
        srtp: SrtpInbound | None = None,
    ) -> None:
        if not latch and expected_source is None:
            raise ValueError("an endpoint that does not latch needs expected_source (from the SDP)")
        if not inactivity_timeout_s > 0:
            raise ValueError(f"inactivity timeout must be > 0 s, got {inactivity_timeout_s}")
        self.stats = EndpointStats()
        self._on_packet = on_packet
        self._on_bye = on_bye
        self._on_timeout = on_timeout
        self._srtp = srtp
        self._forward_to = _numeric(forward_to) if forward_to is not None else None
        # Without latching the SDP address is fixed from the start; with it, the first packet decides,
        # since NAT rewrites the address the SDP gave (expected_source is then only checked for form).
        expected = _numeric(expected_source) if expected_source is not None else None
        self._source: Address | None = None if latch else expected
        self._timeout_s = inactivity_timeout_s
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._bye_seen = False
        self._closed = False
        self._logged_errors: set[str] = set()

    # --- public --------------------------------------------------------------------------------------

    @property
    def local_address(self) -> Address:
        """The (host, port) the socket is bound to; port 0 at open becomes the port the OS chose."""
        if self._transport is None:
            raise RuntimeError("endpoint is not open")
        sockname = self._transport.get_extra_info("sockname")
        return (str(sockname[0]), int(sockname[1]))

    @property
    def source(self) -> Address | None:
        """The call's media source: latched, or from the SDP; None until the first valid RTP packet."""
        return self._source

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, data: bytes, addr: Address) -> None:
        """Send one datagram (a packet of the redacted leg) from this endpoint's port; dropped once closed."""
        if self._transport is None or self._closed:
            return
        self._transport.sendto(data, addr)
        self.stats.sent += 1

    def close(self) -> None:
        """Stop receiving and cancel the inactivity timer; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()

    # --- asyncio.DatagramProtocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Only create_datagram_endpoint calls this, with a datagram transport; CPython's selector one does
        # not subclass asyncio.DatagramTransport, so an isinstance check would refuse it.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        # One timer that re-arms itself from the last activity, rather than one cancelled and made anew
        # per packet: fifty heap operations a second per call saved, same result.
        self._timer = self._loop.call_later(self._timeout_s, self._check_inactivity)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a forward target gone, port unreachable) land here; they are the far end's
        # problem and must not end the call.
        self.stats.socket_errors += 1
        self._log_once("socket", f"socket error on RTP endpoint: {type(exc).__name__}")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        arrival = self._loop.time() if self._loop is not None else 0.0
        stats = self.stats
        stats.datagrams += 1
        stats.bytes += len(data)
        if self._closed:
            return
        if len(data) > MAX_DATAGRAM_BYTES:
            stats.oversize += 1
            return
        # IPv6 addresses come as 4-tuples (flow info, scope id); only host and port identify a source.
        sender: Address = (addr[0], addr[1])
        source = self._source
        if is_rtcp(data):
            if source is None or sender != source:
                stats.stranger += 1
                return
            self._receive_rtcp(data, arrival)
            return
        if source is not None and sender != source:
            # Checked before parsing: a stranger's flood costs one comparison a datagram.
            stats.stranger += 1
            return
        srtp = self._srtp
        try:
            # With SRTP the packet is authenticated before anything else, latching included: a stranger
            # without the key cannot take the call's source. ``data`` itself stays the wire bytes.
            packet = parse_rtp(data if srtp is None else srtp.unprotect(data))
        except MalformedPacketError as error:
            self._count_malformed(error.reason)
            return
        if source is None:
            self._source = sender
        stats.rtp += 1
        self._last_activity = arrival
        if self._timer is None:
            self._arm_timer(self._timeout_s)
        forward_to = self._forward_to
        if forward_to is not None and self._transport is not None:
            # The raw leg goes first, before any of our own work, and as the very bytes received: with SRTP
            # still encrypted, since the passthrough leg is the caller's own stream under the caller's key.
            self._transport.sendto(data, forward_to)
            stats.forwarded += 1
        try:
            self._on_packet(packet, arrival)
        except Exception as error:  # one bad packet or bug downstream must not end the call
            self._callback_failed("on_packet", error)

    # --- internals -----------------------------------------------------------------------------------

    def _receive_rtcp(self, data: bytes, arrival: float) -> None:
        srtp = self._srtp
        try:
            reports = parse_rtcp(data if srtp is None else srtp.unprotect_rtcp(data))
        except MalformedPacketError as error:
            self._count_malformed(f"rtcp_{error.reason}")
            return
        self.stats.rtcp += 1
        # RTCP keeps a call on hold alive: a sendonly or inactive far end still reports.
        self._last_activity = arrival
        if self._timer is None:
            self._arm_timer(self._timeout_s)
        if self._bye_seen:
            return
        for report in reports:
            # The source address is already checked, so any BYE it sends ends the call, even one
            # naming an SSRC we never saw (a sender that switched SSRC without RTP in between).
            if isinstance(report, RtcpBye):
                self._bye_seen = True
                try:
                    self._on_bye()
                except Exception as error:  # the caller's bug must not kill the port
                    self._callback_failed("on_bye", error)
                return

    def _count_malformed(self, reason: str) -> None:
        malformed = self.stats.malformed
        malformed[reason] = malformed.get(reason, 0) + 1

    def _callback_failed(self, name: str, error: Exception) -> None:
        self.stats.callback_errors += 1
        # Only the type: an exception's message or traceback could quote the packet, which is call audio.
        self._log_once(f"{name}:{type(error).__name__}", f"{name} raised {type(error).__name__}; dropped")

    def _log_once(self, key: str, message: str) -> None:
        # Once per kind per endpoint: a broken sender at fifty packets a second must not flood the log;
        # the counters carry the totals.
        if key in self._logged_errors:
            return
        self._logged_errors.add(key)
        _log.warning("%s (further ones only counted)", message)

    def _arm_timer(self, delay: float) -> None:
        if self._loop is not None and not self._closed:
            self._timer = self._loop.call_later(delay, self._check_inactivity)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_inactivity(self) -> None:
        self._timer = None
        if self._closed or self._loop is None:
            return
        quiet_for = self._loop.time() - self._last_activity
        if quiet_for < self._timeout_s:
            self._arm_timer(self._timeout_s - quiet_for)
            return
        # Not re-armed: the next packet re-arms it, so a call that comes back can time out again.
        if self._on_timeout is not None:
            try:
                self._on_timeout()
            except Exception as error:  # the caller's bug must not kill the port
                self._callback_failed("on_timeout", error)


def _numeric(addr: Address) -> Address:
    """An address as the socket reports senders: the host as a canonical numeric IP, or ValueError."""
    host, port = addr
    try:
        canonical = str(ipaddress.ip_address(host))
    except ValueError as error:
        raise ValueError(f"address must be a numeric IP, got {host!r}; resolve names before") from error
    if not 0 < port <= 0xFFFF:
        raise ValueError(f"port must be 1-65535, got {port}")
    return (canonical, port)


async def open_endpoint(
    host: str,
    port: int,
    *,
    on_packet: Callable[[RtpPacket, float], None],
    on_bye: Callable[[], None],
    expected_source: Address | None = None,
    latch: bool = True,
    forward_to: Address | None = None,
    inactivity_timeout_s: float = 30.0,
    on_timeout: Callable[[], None] | None = None,
    srtp: SrtpInbound | None = None,
) -> RtpEndpoint:
    """Bind a UDP socket at ``host:port`` (port 0: any free port) and return its ``RtpEndpoint``.

    ``on_packet`` gets each valid RTP packet from the call's source with its arrival time on the event
    loop's monotonic clock (``loop.time()``), the clock to give ``CallReceiver.poll``.
    """
    # Built before the socket, so a bad argument raises here instead of leaving a bound socket behind.
    endpoint = RtpEndpoint(
        on_packet=on_packet,
        on_bye=on_bye,
        expected_source=expected_source,
        latch=latch,
        forward_to=forward_to,
        inactivity_timeout_s=inactivity_timeout_s,
        on_timeout=on_timeout,
        srtp=srtp,
    )
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: endpoint, local_addr=(host, port))
    return endpoint
