"""RTP, RTCP (RFC 3550, 5761) and RFC 4733 telephone events on the wire: parse, build, and unwrap counters.

Parsers take bytes from the network and raise only the errors in ``transport.errors``; no repr, error or
result here holds payload bytes or the key pressed, since both are call content. No sockets here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from struct import Struct
from typing import TypeAlias

from bleepline.transport.errors import RtcpError, RtpError, TelephoneEventError

RTP_VERSION = 2
RTP_HEADER_BYTES = 12

#: Second-byte values that mark RTCP when RTP and RTCP share a port (RFC 5761 section 4): RTCP packet
#: types 192-223, which RTP would read as marker set and payload type 64-95, a range kept free for this.
_RTCP_SECOND_BYTE = range(192, 224)

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF

_RTP_HEADER = Struct("!BBHII")
_RTP_EXTENSION_HEADER = Struct("!HH")
# Lists of 32-bit source identifiers, one precompiled struct per length (CSRC counts are four bits, BYE
# source counts five), so no packet builds a format string.
_SOURCES = tuple(Struct(f"!{count}I") for count in range(32))

_RTCP_HEADER = Struct("!BBH")
_SENDER_INFO = Struct("!IQIII")
_SENDER_REPORT = Struct("!BBHIQIII")
_EMPTY_RECEIVER_REPORT = Struct("!BBHI")
_SSRC = Struct("!I")
_REPORT_BLOCK_BYTES = 24

_TELEPHONE_EVENT = Struct("!BBH")


# --- RTP --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """An RTP header extension as sent: its 16-bit profile and its data (a whole number of 32-bit words).

    The data stays opaque here; RFC 8285 elements (audio level, mid…) are read by whoever needs them.
    """

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= _U16:
            raise ValueError(f"RTP extension profile must be 0-65535, got {self.profile}")
        if len(self.data) % 4:
            raise ValueError(f"RTP extension data must be whole 32-bit words, got {len(self.data)} bytes")
        if len(self.data) > 4 * _U16:
            raise ValueError(f"RTP extension data is {len(self.data)} bytes; at most {4 * _U16} fit")

    def __repr__(self) -> str:
        return f"RtpExtension(profile=0x{self.profile:04x}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet. ``padding`` is the number of padding bytes, counting the final count byte.

    Padding bytes are not kept: ``serialize`` writes zeros before the count byte. A field out of range
    raises a plain ``ValueError``: that is a bug in the caller, not a packet to count and drop.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        # One chained test keeps construction cheap on the per-packet path; the message comes after.
        if (
            0 <= self.payload_type <= 0x7F
            and 0 <= self.sequence <= _U16
            and 0 <= self.timestamp <= _U32
            and 0 <= self.ssrc <= _U32
            and 0 <= self.padding <= 0xFF
            and len(self.csrc) <= 15
        ):
            return
        raise ValueError(f"RTP header field out of range in {self!r} ({len(self.csrc)} CSRCs)")

    def serialize(self) -> bytes:
        """The packet on the wire."""
        csrc = self.csrc
        extension = self.extension
        padding = self.padding
        first = 0x80 | len(csrc)
        if padding:
            first |= 0x20
        if extension is not None:
            first |= 0x10
        second = (self.payload_type | 0x80) if self.marker else self.payload_type
        header = _RTP_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)
        if not csrc and extension is None and not padding:
            return header + self.payload
        parts = [header]
        if csrc:
            try:
                parts.append(_SOURCES[len(csrc)].pack(*csrc))
            except struct.error as error:
                raise ValueError(f"RTP CSRC identifiers must be 32-bit, got {csrc}") from error
        if extension is not None:
            parts.append(_RTP_EXTENSION_HEADER.pack(extension.profile, len(extension.data) // 4))
            parts.append(extension.data)
        parts.append(self.payload)
        if padding:
            parts.append(bytes(padding - 1) + bytes((padding,)))
        return b"".join(parts)

    def __repr__(self) -> str:
        # Never show the payload: it is call audio, and reprs end up in logs and tracebacks.
        marker = ", marker" if self.marker else ""
        return (
            f"RtpPacket(pt={self.payload_type}, seq={self.sequence}, ts={self.timestamp}, "
            f"ssrc=0x{self.ssrc:08x}, {len(self.payload)} payload bytes{marker})"
        )


def parse_rtp(data: bytes) -> RtpPacket:
    """Read one RTP packet; raise ``RtpError`` if it is truncated or inconsistent."""
    size = len(data)
    if size < RTP_HEADER_BYTES:
        raise RtpError("short", f"RTP packet is shorter than its 12-byte header ({size} bytes)")
    first, second, sequence, timestamp, ssrc = _RTP_HEADER.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpError("version", f"RTP packet has version {version}, expected 2")
    position = RTP_HEADER_BYTES
    csrc: tuple[int, ...] = ()
    csrc_count = first & 0x0F
    if csrc_count:
        position += 4 * csrc_count
        if position > size:
            raise RtpError(
                "csrc", f"RTP packet of {size} bytes is too short for its CSRC count of {csrc_count}"
            )
        csrc = _SOURCES[csrc_count].unpack_from(data, RTP_HEADER_BYTES)
    extension = None
    if first & 0x10:
        if position + 4 > size:
            raise RtpError("extension", f"RTP packet of {size} bytes ends inside its extension header")
        profile, words = _RTP_EXTENSION_HEADER.unpack_from(data, position)
        start = position + 4
        position = start + 4 * words
        if position > size:
            raise RtpError(
                "extension",
                f"RTP header extension of {4 * words} bytes runs past the end of a {size}-byte packet",
            )
        extension = RtpExtension(profile, data[start:position])
    end = size
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0:
            raise RtpError("padding", "RTP padding count is 0; it must count at least its own byte")
        if padding > size - position:
            raise RtpError(
                "padding",
                f"RTP padding count {padding} is more than the {size - position} bytes after the header",
            )
        end = size - padding
    return RtpPacket(
        second & 0x7F,
        sequence,
        timestamp,
        ssrc,
        data[position:end],
        bool(second & 0x80),
        csrc,
        extension,
        padding,
    )


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram on a port shared by RTP and RTCP is RTCP (RFC 5761 section 4)."""
    return len(data) >= 2 and data[1] in _RTCP_SECOND_BYTE


# --- Sequence and timestamp arithmetic ---------------------------------------------------------------


def seq_distance(a: int, b: int) -> int:
    """How far 16-bit sequence number ``b`` is after ``a``, across the wrap: -32768..32767."""
    return ((b - a + 0x8000) & _U16) - 0x8000


def ts_distance(a: int, b: int) -> int:
    """How far 32-bit RTP timestamp ``b`` is after ``a``, across the wrap: -2**31..2**31-1."""
    return ((b - a + 0x80000000) & _U32) - 0x80000000


class _Unwrapper:
    """Extends a wrapping counter to an unbounded one; see ``ExtendedSequence`` for the rule."""

    def __init__(
        self, bits: int, max_ahead: int, max_behind: int, restart_step: int, confirm_min: int
    ) -> None:
        modulus = 1 << bits
        if not 0 < max_ahead < modulus // 2:
            raise ValueError(f"max_ahead must be 1..{modulus // 2 - 1}, got {max_ahead}")
        if not 0 <= max_behind <= modulus // 2:
            raise ValueError(f"max_behind must be 0..{modulus // 2}, got {max_behind}")
        if restart_step < 1:
            raise ValueError(f"restart_step must be at least 1, got {restart_step}")
        self._modulus = modulus
        self._mask = modulus - 1
        self._half = modulus // 2
        self._max_ahead = max_ahead
        self._max_behind = max_behind
        self._restart_step = restart_step
        self._confirm_min = confirm_min
        self._highest: int | None = None
        self._highest_raw = 0
        self._candidate: int | None = None
        #: Confirmed restarts: the count jumped to a new run.
        self.restarts = 0
        #: Values answered with None (far out of the window, unconfirmed): the caller drops those packets.
        self.discarded = 0

    @property
    def highest(self) -> int | None:
        """The highest extended value so far, or None before the first."""
        return self._highest

    def extend(self, value: int) -> int | None:
        """The extended count for ``value``, or None for a jump not (yet) confirmed: drop that packet."""
        if not 0 <= value <= self._mask:
            raise ValueError(f"value must be 0..{self._mask}, got {value}")
        highest = self._highest
        if highest is None:
            # Start in the second cycle, so a packet that arrives late across the wrap stays positive.
            self._highest = self._modulus + value
            self._highest_raw = value
            return self._highest
        distance = ((value - self._highest_raw + self._half) & self._mask) - self._half
        if -self._max_behind <= distance <= self._max_ahead:
            self._candidate = None
            if distance > 0:
                self._highest = highest + distance
                self._highest_raw = value
            return highest + distance
        candidate = self._candidate
        if candidate is not None:
            step = ((value - candidate + self._half) & self._mask) - self._half
            if self._confirm_min <= step <= self._max_ahead:
                # Two packets agree on the new run: it is a restart, not a stray. Continue the count as
                # if the run's first packet had followed the old highest at ``restart_step``.
                self._candidate = None
                self.restarts += 1
                self._highest = highest + self._restart_step + step
                self._highest_raw = value
                return self._highest
        self._candidate = value
        self.discarded += 1
        return None


class ExtendedSequence(_Unwrapper):
    """Turns 16-bit RTP sequence numbers into a count that does not wrap (RFC 3550 appendix A.1, adapted).

    The rule, with ``d`` the signed distance (``seq_distance``) from the highest number seen so far:

    - The first number ``s`` becomes ``65536 + s``: the count starts in its second cycle so that packets
      arriving late across the wrap never go negative. Until a restart, ``extended % 65536 == seq``.
    - ``-max_misorder <= d <= max_dropout``: in the window. The answer is ``highest + d``: ahead (a gap
      of lost packets if ``d > 1``), a duplicate (``d == 0``) or late (``d < 0``; late across the wrap
      lands in the previous cycle). Only ``d > 0`` moves the highest.
    - Otherwise a jump: the answer is None and the caller drops the packet. If the next packet also
      jumps and lies 1..``max_dropout`` after it, the source restarted its numbering (a re-INVITE, a new
      leg behind a border controller): the count goes on as if the first packet of the new run had come
      right after the old highest. The first packet of the run stays dropped; the second gets
      ``highest + 1 + d'``, ``d'`` its distance from the first. A single stray packet, or one far too
      late, changes nothing.
    """

    def __init__(self, max_dropout: int = 3000, max_misorder: int = 100) -> None:
        # A duplicate of the stray itself does not confirm a restart: distinct packets differ in number.
        super().__init__(16, max_dropout, max_misorder, restart_step=1, confirm_min=1)


class ExtendedTimestamp(_Unwrapper):
    """Turns 32-bit RTP timestamps into a count of clock ticks that does not wrap.

    The rule is ``ExtendedSequence``'s, in ticks. A forward gap up to ``max_gap`` seconds is silence
    or a call on hold, and stays on the clock. A step back up to ``max_late`` seconds is a late packet;
    it must cover the longest telephone event, whose packets keep the event's start as their timestamp
    (65535 ticks: 8.2 s at 8 kHz). Anything further is a jump, answered None, until a second packet
    0..``max_gap`` after it confirms a restart; 0 counts, since RFC 4733 packets repeat their timestamp.
    The new run then starts ``restart_gap`` seconds after the old highest timestamp: the true gap is not
    on the wire, and a caller that knows it from arrival times can tell a restart by ``restarts``.
    """

    def __init__(
        self, clock_rate: int, max_gap: float = 3600.0, max_late: float = 10.0, restart_gap: float = 0.02
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, got {clock_rate}")
        # Beyond half the range the signed distance cannot tell ahead from behind.
        ahead = min(round(max_gap * clock_rate), 0x7FFFFFFF)
        behind = min(round(max_late * clock_rate), 0x7FFFFFFF)
        super().__init__(32, ahead, behind, max(1, round(restart_gap * clock_rate)), confirm_min=0)


# --- RTCP -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """The sender information of an RTCP SR; report blocks are skipped when reading and not written.

    ``ntp_timestamp`` is the 64-bit NTP time (seconds since 1900 in the top 32 bits).
    """

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int

    def __post_init__(self) -> None:
        for name in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            _check_range(name, getattr(self, name), _U32)
        _check_range("ntp_timestamp", self.ntp_timestamp, _U64)

    def serialize(self) -> bytes:
        """The SR on the wire: 28 bytes, no report blocks (RFC 3550 allows a sender none)."""
        return _SENDER_REPORT.pack(
            0x80,
            RTCP_SR,
            6,
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        )


@dataclass(frozen=True, slots=True)
class RtcpBye:
    """An RTCP BYE: the sources leaving, and an optional reason.

    The reason is free text from the far end; it is left out of the repr so it never reaches a log.
    """

    ssrcs: tuple[int, ...]
    reason: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.ssrcs) > 31:
            raise ValueError(f"an RTCP BYE names at most 31 sources, got {len(self.ssrcs)}")
        for ssrc in self.ssrcs:
            _check_range("ssrc", ssrc, _U32)
        if self.reason is not None and len(self.reason.encode()) > 0xFF:
            raise ValueError(
                f"an RTCP BYE reason is at most 255 UTF-8 bytes, got {len(self.reason.encode())}"
            )

    def serialize(self) -> bytes:
        """The BYE on the wire; an empty reason is written as none."""
        body = b"".join(_SSRC.pack(ssrc) for ssrc in self.ssrcs)
        if self.reason:
            text = self.reason.encode()
            item = bytes((len(text),)) + text
            body += item + bytes(-len(item) % 4)
        return _RTCP_HEADER.pack(0x80 | len(self.ssrcs), RTCP_BYE, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class RtcpOther:
    """An RTCP packet that is only counted (RR, SDES, APP, feedback, XR…): its type and nothing more."""

    packet_type: int


RtcpReport: TypeAlias = RtcpSenderReport | RtcpBye | RtcpOther


def empty_receiver_report(ssrc: int) -> bytes:
    """An RTCP RR with no report blocks: the minimum a receive-only leg starts its compound packets with."""
    _check_range("ssrc", ssrc, _U32)
    return _EMPTY_RECEIVER_REPORT.pack(0x80, RTCP_RR, 1, ssrc)


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp of a Unix time, as an SR carries it (wrapping at the 2036 era change)."""
    return round((unix_seconds + 2_208_988_800) * (1 << 32)) & _U64


def parse_rtcp(data: bytes) -> list[RtcpReport]:
    """Read an RTCP compound packet; raise ``RtcpError`` if any packet in it is malformed.

    Any packet type may come first: reduced-size RTCP (RFC 5506) drops the rule that an SR or RR leads.
    """
    size = len(data)
    if not size:
        raise RtcpError("empty", "RTCP packet is empty")
    reports: list[RtcpReport] = []
    position = 0
    while position < size:
        if size - position < 4:
            raise RtcpError("truncated", f"RTCP packet at byte {position} is shorter than its 4-byte header")
        first, packet_type, words = _RTCP_HEADER.unpack_from(data, position)
        version = first >> 6
        if version != RTP_VERSION:
            raise RtcpError("version", f"RTCP packet at byte {position} has version {version}, expected 2")
        if packet_type not in _RTCP_SECOND_BYTE:
            raise RtcpError(
                "type", f"RTCP packet at byte {position} has type {packet_type}, outside RTCP's 192-223"
            )
        end = position + 4 + 4 * words
        if end > size:
            raise RtcpError(
                "truncated",
                f"RTCP packet at byte {position} declares {end - position} bytes; {size - position} remain",
            )
        body = position + 4
        body_end = end
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or padding > end - body:
                raise RtcpError(
                    "padding",
                    f"RTCP packet at byte {position} has padding count {padding} "
                    f"for a body of {end - body} bytes",
                )
            body_end = end - padding
        count = first & 0x1F
        if packet_type == RTCP_SR:
            reports.append(_parse_sender_report(data, body, body_end, count))
        elif packet_type == RTCP_BYE:
            reports.append(_parse_bye(data, body, body_end, count))
        else:
            reports.append(RtcpOther(packet_type))
        position = end
    return reports


def _parse_sender_report(data: bytes, body: int, body_end: int, blocks: int) -> RtcpSenderReport:
    # Report blocks are not read, but must fit: a short SR is a broken packet, not a short report.
    needed = _SENDER_INFO.size + _REPORT_BLOCK_BYTES * blocks
    if body_end - body < needed:
        raise RtcpError(
            "sender_report",
            f"RTCP SR with {blocks} report blocks needs {needed} bytes, has {body_end - body}",
        )
    return RtcpSenderReport(*_SENDER_INFO.unpack_from(data, body))


def _parse_bye(data: bytes, body: int, body_end: int, count: int) -> RtcpBye:
    reason_at = body + 4 * count
    if reason_at > body_end:
        raise RtcpError("bye", f"RTCP BYE names {count} sources but has {body_end - body} bytes for them")
    ssrcs = _SOURCES[count].unpack_from(data, body)
    reason = None
    # After the sources either nothing, zero padding, or a length-prefixed reason (then zero padding).
    if reason_at < body_end and data[reason_at]:
        length = data[reason_at]
        if reason_at + 1 + length > body_end:
            raise RtcpError("bye", f"RTCP BYE reason of {length} bytes runs past the end of its packet")
        # Free text from the network: never let a bad byte raise here.
        reason = data[reason_at + 1 : reason_at + 1 + length].decode("utf-8", errors="replace")
    return RtcpBye(ssrcs, reason)


def _check_range(name: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} must be 0..{maximum}, got {value}")


# --- RFC 4733 telephone events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-byte RFC 4733 telephone-event payload.

    ``event`` says which key or tone; bleepline must never keep it, so it is left out of the repr and
    nothing downstream of ``TelephoneEventTracker`` sees it. ``volume`` is in -dBm0 (0-63); ``duration``
    is in RTP clock ticks since the event's timestamp.
    """

    event: int = field(repr=False)
    end: bool
    volume: int
    duration: int

    def __post_init__(self) -> None:
        _check_range("event", self.event, 0xFF)
        _check_range("volume", self.volume, 0x3F)
        _check_range("duration", self.duration, _U16)

    def serialize(self) -> bytes:
        return _TELEPHONE_EVENT.pack(
            self.event, (0x80 | self.volume) if self.end else self.volume, self.duration
        )


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Read an RFC 4733 payload; raise ``TelephoneEventError`` if it is under 4 bytes.

    Bytes past the fourth are ignored: the format has no field that follows, and a lenient read of a
    padded payload is better than dropping a key press that must be masked.
    """
    if len(payload) < _TELEPHONE_EVENT.size:
        raise TelephoneEventError(
            "short", f"telephone-event payload is {len(payload)} bytes, shorter than its 4-byte format"
        )
    event, flags, duration = _TELEPHONE_EVENT.unpack_from(payload)
    # The R bit (0x40) is reserved: senders set it to 0 and receivers ignore it.
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True, slots=True)
class DtmfEventSpan:
    """When a key was pressed, on the RTP clock (ticks, ``end_ts`` exclusive); never which key.

    ``end_seen`` is False when the event's end packets were lost and the span closes at the last
    duration reported: the press may have lasted up to one update interval (about 50 ms) longer.
    """

    start_ts: int
    end_ts: int
    end_seen: bool = True

    def __post_init__(self) -> None:
        if self.end_ts < self.start_ts:
            raise ValueError(f"span ends ({self.end_ts}) before it starts ({self.start_ts})")


_NO_SPANS: tuple[DtmfEventSpan, ...] = ()


class TelephoneEventTracker:
    """Turns the redundant RFC 4733 packet stream of one RTP source into one span per event.

    A sender repeats an event's packets under one RTP timestamp (the event's start), growing the
    duration, and sends the last one, with the end bit, three times. Packets may be lost, duplicated or
    reordered, so:

    - a packet with a new, later timestamp starts a new event (its start is exact even if the first
      packets were lost); an event still open is closed at its last reported end, but no later than the
      new start, with ``end_seen=False``;
    - an end bit closes the event; its retransmissions, and any packet with a timestamp at or before the
      start of a span already given out, are stale and ignored (counted in ``stale``);
    - a late packet of an earlier press the tracker never saw (between the last span given out and the
      open event) is given out at once as its own span, cut at the open event's start: a press nothing
      else reported must still be masked;
    - an open event that gets no packet of its own for ``max_quiet_packets`` packets of the stream (pass
      the others to ``advance``) lost its end: it is closed at its last reported end;
    - ``flush`` closes what is open when the stream ends.

    Spans come out in order of their starts. Timestamps must not wrap: pass ``ExtendedTimestamp``
    values. The event code is never read, so the tracker cannot leak which key was pressed; a long event
    that the sender splits into segments (RFC 4733 section 2.5.1.3) comes out as abutting spans.
    """

    def __init__(self, max_quiet_packets: int = 10) -> None:
        if max_quiet_packets < 1:
            raise ValueError(f"max_quiet_packets must be at least 1, got {max_quiet_packets}")
        self._max_quiet = max_quiet_packets
        self._open_start: int | None = None
        self._open_end = 0
        self._quiet = 0
        # The start of the latest span given out: nothing at or before it can start another.
        self._floor: int | None = None
        #: Packets ignored: end-bit retransmissions, duplicates and late packets of spans given out.
        self.stale = 0
        #: Spans given out without an end bit seen (lost end packets).
        self.lost_ends = 0

    @property
    def open_span(self) -> DtmfEventSpan | None:
        """The event in progress, up to its last reported end, so masking can start before it ends."""
        if self._open_start is None:
            return None
        return DtmfEventSpan(self._open_start, self._open_end, end_seen=False)

    def push(self, timestamp: int, event: TelephoneEvent) -> tuple[DtmfEventSpan, ...]:
        """Take one telephone-event packet; return the spans it finished (zero, one or two)."""
        start = self._open_start
        if start is not None and timestamp == start:
            self._quiet = 0
            self._open_end = max(self._open_end, timestamp + event.duration)
            return self._close(end_seen=True) if event.end else _NO_SPANS
        if self._floor is not None and timestamp <= self._floor:
            self.stale += 1
            return self._count_quiet()
        if start is not None and timestamp < start:
            late = self._give_out(timestamp, min(timestamp + event.duration, start), event.end)
            return late + self._count_quiet()
        closed = _NO_SPANS
        if start is not None:
            # A new press before the old one's end arrived: the old one ended no later than this start.
            self._open_end = min(self._open_end, timestamp)
            closed = self._close(end_seen=False)
        self._open_start = timestamp
        self._open_end = timestamp + event.duration
        self._quiet = 0
        if event.end:
            return closed + self._close(end_seen=True)
        return closed

    def advance(self) -> tuple[DtmfEventSpan, ...]:
        """Note a packet of the stream that is not a telephone event (audio, comfort noise)."""
        return self._count_quiet()

    def flush(self) -> tuple[DtmfEventSpan, ...]:
        """The stream ended: close an event still open at its last reported end."""
        if self._open_start is None:
            return _NO_SPANS
        return self._close(end_seen=False)

    def _count_quiet(self) -> tuple[DtmfEventSpan, ...]:
        if self._open_start is None:
            return _NO_SPANS
        self._quiet += 1
        if self._quiet < self._max_quiet:
            return _NO_SPANS
        return self._close(end_seen=False)

    def _close(self, *, end_seen: bool) -> tuple[DtmfEventSpan, ...]:
        start = self._open_start
        assert start is not None
        self._open_start = None
        return self._give_out(start, self._open_end, end_seen)

    def _give_out(self, start: int, end: int, end_seen: bool) -> tuple[DtmfEventSpan, ...]:
        if not end_seen:
            self.lost_ends += 1
        self._floor = start
        return (DtmfEventSpan(start, end, end_seen),)
