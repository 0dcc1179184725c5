"""Errors of the transport layer: bytes from the network that are not the packet they claim to be.

An endpoint catches these, drops the packet and counts the drop under the error's ``reason``.
"""

from __future__ import annotations

from bleepline.errors import BleeplineError


class TransportError(BleeplineError):
    """A failure in getting call media in or out."""


class MalformedPacketError(TransportError, ValueError):
    """A packet that does not parse. The caller drops it and counts it.

    ``reason`` is a short fixed word (``"version"``, ``"padding"``…) fit for a metric label; the message
    says what was wrong in numbers and never quotes the packet's bytes, which may carry call audio.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RtpError(MalformedPacketError):
    """An RTP packet (RFC 3550) that is truncated or inconsistent."""


class RtcpError(MalformedPacketError):
    """An RTCP compound packet (RFC 3550) with a packet in it that is truncated or inconsistent."""


class TelephoneEventError(MalformedPacketError):
    """An RFC 4733 telephone-event payload that is too short."""


class SrtpError(MalformedPacketError):
    """An SRTP or SRTCP packet (RFC 3711) that libsrtp refuses: ``srtp_auth`` (forged, tampered or under
    another key), ``srtp_replay`` (seen before, or too old for the replay window), ``srtp_header`` (too
    short for its header and tag), ``srtp_unencrypted`` (SRTCP sent in clear) or ``srtp_error`` (anything
    else). The message names the reason and the suite, never the key or the packet's bytes.
    """


class SrtpProtectError(TransportError):
    """One of the relay's own outgoing packets could not be protected: a sequence number used twice (which
    would reuse keystream), a packet too long, or a key past its lifetime. A bug or an exhausted key, not
    something from the network; the message quotes neither the key nor the packet.
    """


class SdpError(TransportError, ValueError):
    """An SDP body that cannot be used: malformed, oversized, or offering nothing the relay speaks.

    The message is one line naming the line number and the problem. It never quotes key material or free
    text from the offer, so the transport boundary may log it and count the call as refused.
    """
