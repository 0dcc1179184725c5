"""A negotiated call's outgoing legs: their destinations checked, the redacted leg's pacer built, and its
tail and RTCP BYE sent once the call ends."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from bleepline.audio.codecs import CodecSpec
from bleepline.relay.calls import TICK_S, _Call
from bleepline.transport.endpoint import RtpEndpoint
from bleepline.transport.sdp import Negotiated
from bleepline.transport.sender import PacedLeg, RtpLegSender
from bleepline.transport.srtp import SrtpOutbound

# The relay's logger: these lines are the server's, wherever the code lives.
log = logging.getLogger("bleepline.server")

#: The redacted leg's packet time when the offer names none (RFC 3551's default for audio).
DEFAULT_PTIME_MS = 20


def numeric_address(address: tuple[str, int]) -> tuple[str, int] | None:
    """``address`` with its host in canonical numeric form (as sockets report it), or None if not numeric."""
    try:
        return str(ipaddress.ip_address(address[0])), address[1]
    except ValueError:
        return None


def leg_address(name: str, address: tuple[str, int]) -> tuple[str, int]:
    """An outgoing leg's destination, checked: a numeric unicast host and a port. The message never
    quotes the address (it could be a caller's)."""
    numeric = numeric_address(address)
    if numeric is None:
        raise ValueError(f"the {name} leg needs a numeric IP address (host names are not resolved)")
    ip = ipaddress.ip_address(numeric[0])
    if ip.is_multicast or ip.is_unspecified:
        raise ValueError(f"the {name} leg needs a unicast address")
    if not 0 < numeric[1] <= 0xFFFF:
        raise ValueError(f"the {name} leg's port must be 1-65535")
    return numeric


def check_leg_families(legs: dict[str, tuple[str, int] | None], endpoint: RtpEndpoint) -> None:
    """Raise ``ValueError`` for a leg the call's socket could not send to (another address family):
    refused now, not failing on every packet."""
    local = ipaddress.ip_address(endpoint.local_address[0])
    for name, destination in legs.items():
        if destination is not None and ipaddress.ip_address(destination[0]).version != local.version:
            raise ValueError(f"the {name} leg must be an IPv{local.version} address, like the RTP port")


def redacted_leg(
    negotiated: Negotiated,
    codec: CodecSpec,
    endpoint: RtpEndpoint,
    address: tuple[str, int] | None,
    srtp: SrtpOutbound | None = None,
) -> tuple[PacedLeg | None, tuple[str, int] | None]:
    """The redacted leg's pacer and where its RTCP goes, or (None, None) without one."""
    if address is None:
        return None, None
    ptime = negotiated.offer.ptime or DEFAULT_PTIME_MS
    try:
        sender = RtpLegSender(
            codec, negotiated.codec.payload_type, sample_rate=codec.clock_rate, ptime_ms=ptime
        )
    except ValueError:
        # A ptime the codec cannot packetize (Opus is 20 ms here): the default, which any receiver
        # takes (a=ptime is only a wish, RFC 4566 6).
        sender = RtpLegSender(
            codec, negotiated.codec.payload_type, sample_rate=codec.clock_rate, ptime_ms=DEFAULT_PTIME_MS
        )
    # RTCP: to the offerer's RTCP address when the leg goes back to the offerer itself; otherwise
    # the leg's own port, multiplexed (RFC 5761) as this relay takes RTCP, since nothing tells us more.
    rtcp = negotiated.remote_rtcp if address == numeric_address(negotiated.remote_rtp) else None
    if srtp is None:
        leg = PacedLeg(sender, lambda data: endpoint.send(data, address), slack_s=TICK_S)
    else:
        # Each packet is protected once, as it goes: SRTP must never see a sequence number twice.
        leg = PacedLeg(sender, lambda data: endpoint.send(srtp.protect(data), address), slack_s=TICK_S)
    return leg, rtcp or address


def send_leg_report(call: _Call, now: float) -> None:
    """The redacted leg's periodic RTCP sender report, when one is due (``PacedLeg.report_due``).

    A report that cannot be sent is logged and skipped: the audio matters, the report does not.
    """
    leg, endpoint = call.leg, call.endpoint
    if leg is None or endpoint is None or call.leg_rtcp is None:
        return
    try:
        report = leg.report_due(now, time.time())
        if report is None:
            return
        if call.srtp is not None:
            report = call.srtp.outbound.protect_rtcp(report)
        endpoint.send(report, call.leg_rtcp)
    except Exception as exc:
        log.warning("call %s: redacted leg report not sent (%s)", call.call_id, type(exc).__name__)


async def send_leg_tail(call: _Call, delay_s: float) -> None:
    """The redacted leg's last D seconds (drained at once at the end) at the release clock's pace,
    then an RTCP BYE; then the call's port is closed."""
    leg, endpoint = call.leg, call.endpoint
    assert leg is not None
    assert endpoint is not None
    loop = asyncio.get_running_loop()
    try:
        leg.finish()
        # The queue holds at most the delay line's length (plus a packet); a stuck pump cannot
        # keep the port open past that and a margin.
        deadline = loop.time() + delay_s + 2.0
        while leg.pending and not leg.failed and loop.time() < deadline:
            leg.pump(loop.time())
            if leg.pending:
                await asyncio.sleep(TICK_S)
        if not leg.failed and call.leg_rtcp is not None:
            goodbye = leg.goodbye(time.time())
            if call.srtp is not None:
                goodbye = call.srtp.outbound.protect_rtcp(goodbye)
            endpoint.send(goodbye, call.leg_rtcp)
    except Exception as exc:
        log.error("call %s: redacted leg could not be ended (%s)", call.call_id, type(exc).__name__)
    finally:
        endpoint.close()
