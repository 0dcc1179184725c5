"""SDP for one audio call: read the offer of a SIP trunk, SBC or PBX, pick a codec, write the answer.

Plain RTP and SDES-SRTP only (RFC 4566, 3264, 4568). Offers come off the network: anything malformed or
oversized is an ``SdpError`` whose one-line message quotes no key material and none of the offer's text.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bleepline.transport.errors import SdpError as SdpError  # re-exported: callers catch it from here

#: Offers larger than this are refused before any parsing. Real offers are 0.5 to 4 KiB.
MAX_SDP_CHARS = 64 * 1024
MAX_SDP_LINES = 1000

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
PROTOCOLS = ("RTP/AVP", "RTP/SAVP")
TELEPHONE_EVENT = "telephone-event"

#: The codecs the relay takes unless configured otherwise, as ``name/rate[/channels]``.
SUPPORTED_CODECS = ("PCMU/8000", "PCMA/8000", "L16/8000", "L16/16000", "opus/48000/2")
#: The SDES suites SBCs offer first, both implemented by libsrtp (through pylibsrtp).
SUPPORTED_SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")

#: RFC 3551's static audio payload types: (encoding name, clock rate, channels). G.722's RTP clock is 8000
#: although it samples at 16 kHz, a historical error the RFC keeps.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

#: Master key plus master salt, in bytes, for the SDES suites of RFC 4568, RFC 6188 and RFC 7714. A key of
#: another length for a known suite is a broken offer; unknown suites are kept but never chosen.
SRTP_KEY_SALT_BYTES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "F8_128_HMAC_SHA1_80": 30,
    "AES_192_CM_HMAC_SHA1_80": 38,
    "AES_192_CM_HMAC_SHA1_32": 38,
    "AES_256_CM_HMAC_SHA1_80": 46,
    "AES_256_CM_HMAC_SHA1_32": 46,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}

# Lines whose text is free-form and may be UTF-8 (RFC 4566 5.3, 5.4, 5.6). The relay never reads them, and
# they may hold a person's name, e-mail or phone number, so no message ever quotes them.
_FREE_TEXT_LINES = frozenset("siep")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,20}")
_TYPE = re.compile(r"[a-z]")
_ATTRIBUTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MEDIA_KIND = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
_PROTOCOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,31}")
_FORMAT = re.compile(r"[\x21-\x7e]{1,32}")
# RFC 6838 restricted names: what may stand in an a=rtpmap encoding name, and so may be quoted back.
_ENCODING = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,31}")
_SUITE = re.compile(r"[A-Za-z0-9_]{1,64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{4,256}={0,2}")
_LIFETIME_POWER = re.compile(r"2\^([0-9]{1,2})")
_MAX_LIFETIME_EXPONENT = 48  # SRTP counts at most 2^48 packets under one key (RFC 3711 9.2)
_MAX_CLOCK_RATE = 1_000_000
_MAX_PTIME_MS = 1000
_MAX_LISTED = 8


@dataclass(frozen=True)
class Codec:
    """One payload type of the audio stream, from an a=rtpmap line or RFC 3551's static table.

    ``fmtp`` is the raw parameter string of the payload type's a=fmtp line, exactly as offered.
    """

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def encoding(self) -> str:
        """``name/rate`` or ``name/rate/channels``, as an a=rtpmap line writes it."""
        base = f"{self.name}/{self.clock_rate}"
        return base if self.channels == 1 else f"{base}/{self.channels}"

    def is_encoding(self, name: str, clock_rate: int, channels: int = 1) -> bool:
        # Encoding names are media subtypes, which compare without regard to case (RFC 4855 3).
        return (self.name.lower(), self.clock_rate, self.channels) == (name.lower(), clock_rate, channels)


@dataclass(frozen=True)
class SrtpKey:
    """One inline key of an a=crypto line: master key then master salt, with the optional lifetime and
    master key identifier (MKI). The bytes live only in memory: the repr leaves them out."""

    key_salt: bytes
    lifetime: int | None = None
    mki: int | None = None
    mki_length: int | None = None

    def __repr__(self) -> str:
        mki = "" if self.mki is None else f", mki={self.mki}:{self.mki_length}"
        return f"SrtpKey({len(self.key_salt)} bytes hidden, lifetime={self.lifetime}{mki})"

    def sdp_value(self) -> str:
        """The ``inline:`` key parameter. Holds the key: for the SDP body only, never for a log."""
        value = "inline:" + base64.b64encode(self.key_salt).decode("ascii")
        if self.lifetime is not None:
            exponent = self.lifetime.bit_length() - 1
            power_of_two = self.lifetime == 1 << exponent
            value += f"|2^{exponent}" if power_of_two else f"|{self.lifetime}"
        if self.mki is not None:
            value += f"|{self.mki}:{self.mki_length}"
        return value


@dataclass(frozen=True)
class CryptoAttribute:
    """An SDES a=crypto line (RFC 4568): tag, crypto suite, one or more inline keys, session parameters.

    Session parameters are kept raw and hidden too: FEC_KEY carries a key of its own.
    """

    tag: int
    suite: str
    keys: tuple[SrtpKey, ...]
    session_params: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"CryptoAttribute(tag={self.tag}, suite={self.suite}, keys={len(self.keys)} hidden, "
            f"session_params={len(self.session_params)})"
        )

    def sdp_value(self) -> str:
        """The text after ``a=crypto:``. Holds the key: for the SDP body only, never for a log."""
        keys = ";".join(key.sdp_value() for key in self.keys)
        return " ".join((str(self.tag), self.suite, keys, *self.session_params))


@dataclass(frozen=True)
class MediaLine:
    """The header of one m= line. Every one is kept, because an answer must echo each stream it rejects."""

    kind: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    port_count: int = 1


@dataclass(frozen=True)
class AudioOffer:
    """What an offer proposes for the call's audio: the first usable audio stream and where to send it.

    ``address`` is the stream's own c= if it has one, else the session's. ``codecs`` follow the offerer's
    order of preference and cover the payload types that have a name (a=rtpmap or a static type);
    ``payload_types`` lists them all. ``media`` holds every m= line and ``stream_index`` says which is
    the audio stream, so that the answer can reject the others in place.
    """

    address: str
    port: int
    protocol: str
    payload_types: tuple[int, ...]
    codecs: tuple[Codec, ...]
    direction: str
    ptime: int | None
    maxptime: int | None
    rtcp_port: int | None
    rtcp_address: str | None
    rtcp_mux: bool
    crypto: tuple[CryptoAttribute, ...]
    session_id: int
    session_version: int
    media: tuple[MediaLine, ...]
    stream_index: int

    @property
    def address_type(self) -> str:
        return "IP6" if ":" in self.address else "IP4"

    def codec(self, payload_type: int) -> Codec | None:
        return next((c for c in self.codecs if c.payload_type == payload_type), None)


@dataclass(frozen=True)
class Negotiated:
    """The outcome of one offer: the call's codec, telephone-event if both sides have it, and the offerer's
    a=crypto line whose key decrypts what it sends (None for plain RTP)."""

    offer: AudioOffer
    codec: Codec
    telephone_event: Codec | None = None
    crypto: CryptoAttribute | None = None

    @property
    def codecs(self) -> tuple[Codec, ...]:
        """The payload types the answer lists: the codec, then telephone-event if any."""
        return (self.codec,) if self.telephone_event is None else (self.codec, self.telephone_event)

    @property
    def payload_types(self) -> tuple[int, ...]:
        return tuple(c.payload_type for c in self.codecs)

    @property
    def remote_rtp(self) -> tuple[str, int]:
        return self.offer.address, self.offer.port

    @property
    def remote_rtcp(self) -> tuple[str, int] | None:
        """Where the offerer takes RTCP: the RTP port when muxed, a=rtcp if given, else the next port up."""
        if self.offer.rtcp_mux:
            return self.remote_rtp
        if self.offer.rtcp_port is not None:
            return self.offer.rtcp_address or self.offer.address, self.offer.rtcp_port
        if self.offer.port >= 65535:
            return None
        return self.offer.address, self.offer.port + 1


@dataclass(frozen=True)
class _Line:
    number: int
    type: str
    value: str


# --- parsing --------------------------------------------------------------------------------------


def parse_offer(text: str) -> AudioOffer:
    """Read an SDP offer and return its first usable audio stream (RTP/AVP or RTP/SAVP, port not 0).

    Raises ``SdpError`` and nothing else, whatever ``text`` holds.
    """
    lines = _split_lines(text)
    if lines[0].type != "v":
        raise SdpError("SDP must start with a v= line")
    if lines[0].value != "0":
        raise SdpError("line 1: unsupported SDP version; only v=0 exists")

    session: list[_Line] = []
    sections: list[tuple[_Line, list[_Line]]] = []
    for line in lines[1:]:
        if line.type == "v":
            raise SdpError(f"line {line.number}: a second v= line (two SDP bodies run together?)")
        if line.type == "m":
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line)
        else:
            session.append(line)

    origin: tuple[int, int] | None = None
    session_address: str | None = None
    session_direction: str | None = None
    for line in session:
        if line.type == "o":
            if origin is not None:
                raise SdpError(f"line {line.number}: more than one o= line")
            origin = _origin(line)
        elif line.type == "c":
            if session_address is not None:
                raise SdpError(f"line {line.number}: more than one session-level c= line")
            session_address = _connection(line)
        elif line.type == "a":
            name, _ = _attribute(line)
            if name in DIRECTIONS:
                session_direction = _one_direction(line, session_direction, name)
    if origin is None:
        raise SdpError("SDP has no o= line")
    if not sections:
        raise SdpError("SDP has no m= line: it offers no media")

    media = tuple(_media_line(header) for header, _ in sections)
    index = _choose_audio(media)
    header, body = sections[index]
    stream = _parse_audio_section(header, body, media[index])
    address = stream.address or session_address
    if address is None:
        raise SdpError(f"line {header.number}: no c= line gives the audio stream's address")
    return AudioOffer(
        address=address,
        port=media[index].port,
        protocol=media[index].protocol,
        payload_types=stream.payload_types,
        codecs=stream.codecs,
        direction=stream.direction or session_direction or "sendrecv",
        ptime=stream.ptime,
        maxptime=stream.maxptime,
        rtcp_port=stream.rtcp_port,
        rtcp_address=stream.rtcp_address,
        rtcp_mux=stream.rtcp_mux,
        crypto=stream.crypto,
        session_id=origin[0],
        session_version=origin[1],
        media=media,
        stream_index=index,
    )


def _split_lines(text: str) -> list[_Line]:
    if not isinstance(text, str):
        raise SdpError("SDP must be text")
    # Size first, so that nothing below ever runs over a hostile megabyte.
    if len(text) > MAX_SDP_CHARS:
        raise SdpError(f"SDP is {len(text)} characters; at most {MAX_SDP_CHARS} are accepted")
    newlines = text.count("\n")
    if newlines > MAX_SDP_LINES:
        raise SdpError(f"SDP has {newlines} lines; at most {MAX_SDP_LINES} are accepted")
    raw_lines = text.split("\n")
    lines: list[_Line] = []
    for number, raw in enumerate(raw_lines, 1):
        # CRLF is the standard, but bare LF is common enough that RFC 4566 asks parsers to take it.
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip(" "):
            continue  # a trailing blank line (or a stray one) says nothing
        if _CONTROL.search(line):
            raise SdpError(f"line {number}: control character in the SDP")
        if len(line) < 2 or line[1] != "=" or not _TYPE.fullmatch(line[0]):
            raise SdpError(f"line {number}: not an SDP line of the form x=value")
        if not line.isascii() and line[0] not in _FREE_TEXT_LINES:
            raise SdpError(f"line {number} ({line[0]}=): non-ASCII character")
        lines.append(_Line(number, line[0], line[2:].rstrip(" ")))
    if not lines:
        raise SdpError("SDP is empty")
    return lines


def _number(text: str, lo: int, hi: int, where: str, what: str) -> int:
    # Bounded digits only: int() would take "٣", "+5", " 5" or "1_000", and 5,000 digits cost real time.
    if not _DIGITS.fullmatch(text) or not lo <= int(text) <= hi:
        raise SdpError(f"{where}: {what} is not a whole number from {lo} to {hi}")
    return int(text)


def _origin(line: _Line) -> tuple[int, int]:
    # The user name and address of o= may identify a person or a host: check the shape, keep the numbers.
    fields = line.value.split()
    if len(fields) != 6:
        raise SdpError(f"line {line.number}: o= needs six fields (user, id, version, IN, type, address)")
    where = f"line {line.number} (o=)"
    session_id = _number(fields[1], 0, 10**20 - 1, where, "session id")
    return session_id, _number(fields[2], 0, 10**20 - 1, where, "session version")


def _connection(line: _Line) -> str:
    fields = line.value.split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise SdpError(f"line {line.number}: c= must read 'IN IP4 <address>' or 'IN IP6 <address>'")
    return _address(fields[1], fields[2], f"line {line.number} (c=)")


def _address(address_type: str, text: str, where: str) -> str:
    if "/" in text:
        raise SdpError(f"{where}: multicast addresses (address/ttl) are not supported for a call")
    if "%" in text:
        raise SdpError(f"{where}: a scoped (%zone) address means nothing to the far end")
    try:
        address = ipaddress.IPv4Address(text) if address_type == "IP4" else ipaddress.IPv6Address(text)
    except ValueError:
        kind = "IPv4" if address_type == "IP4" else "IPv6"
        raise SdpError(
            f"{where}: address is not a literal {kind} address (host names are not resolved)"
        ) from None
    if address.is_multicast:
        raise SdpError(f"{where}: multicast addresses are not supported for a call")
    # 0.0.0.0 is the old way to put a call on hold (RFC 3264 8.4); it is kept, and sending to it fails.
    return str(address)


def _attribute(line: _Line) -> tuple[str, str | None]:
    name, colon, value = line.value.partition(":")
    if not _ATTRIBUTE.fullmatch(name):
        raise SdpError(f"line {line.number}: a= line without a valid attribute name")
    return name, value if colon else None


def _one_direction(line: _Line, current: str | None, name: str) -> str:
    if current is not None and current != name:
        raise SdpError(f"line {line.number}: contradictory direction attributes ({current} and {name})")
    return name


def _media_line(line: _Line) -> MediaLine:
    fields = line.value.split()
    where = f"line {line.number} (m=)"
    if len(fields) < 4:
        raise SdpError(f"{where}: m= needs a media type, a port, a protocol and at least one format")
    kind, port_text, protocol, *formats = fields
    if not _MEDIA_KIND.fullmatch(kind):
        raise SdpError(f"{where}: invalid media type")
    port_text, slash, count_text = port_text.partition("/")
    port = _number(port_text, 0, 65535, where, "port")
    count = _number(count_text, 1, 65535, where, "port count") if slash else 1
    if not _PROTOCOL.fullmatch(protocol):
        raise SdpError(f"{where}: invalid transport protocol")
    if not all(_FORMAT.fullmatch(f) for f in formats):
        raise SdpError(f"{where}: invalid media format")
    return MediaLine(kind=kind, port=port, protocol=protocol, formats=tuple(formats), port_count=count)


def _choose_audio(media: tuple[MediaLine, ...]) -> int:
    audio = [(i, m) for i, m in enumerate(media) if m.kind.lower() == "audio"]
    for i, m in audio:
        if m.port != 0 and m.protocol in PROTOCOLS and m.port_count == 1:
            return i
    if not audio:
        kinds = sorted({m.kind for m in media})
        raise SdpError(f"the offer has no audio stream (it offers {', '.join(kinds)})")
    # Say why the first audio stream could not be used: it is the one the offerer cares about most.
    first = audio[0][1]
    if first.port == 0:
        raise SdpError("the offer's audio stream is disabled (port 0)")
    if first.protocol not in PROTOCOLS:
        raise SdpError(f"audio over {first.protocol} is not supported; only RTP/AVP and RTP/SAVP (SDES)")
    raise SdpError("audio on a range of ports (port/count) is not supported")


@dataclass(frozen=True)
class _AudioSection:
    address: str | None
    payload_types: tuple[int, ...]
    codecs: tuple[Codec, ...]
    direction: str | None
    ptime: int | None
    maxptime: int | None
    rtcp_port: int | None
    rtcp_address: str | None
    rtcp_mux: bool
    crypto: tuple[CryptoAttribute, ...]


def _parse_audio_section(header: _Line, body: list[_Line], media: MediaLine) -> _AudioSection:
    where = f"line {header.number} (m=audio)"
    if len(media.formats) > 128:
        raise SdpError(f"{where}: more payload types than RTP has (128)")
    payload_types = tuple(_number(f, 0, 127, where, "payload type") for f in media.formats)
    if len(set(payload_types)) != len(payload_types):
        raise SdpError(f"{where}: a payload type is listed twice")

    address: str | None = None
    direction: str | None = None
    ptime: int | None = None
    maxptime: int | None = None
    rtcp: tuple[int, str | None] | None = None
    rtcp_mux = False
    rtpmaps: dict[int, tuple[str, int, int]] = {}
    fmtps: dict[int, str] = {}
    crypto: list[CryptoAttribute] = []
    for line in body:
        if line.type == "c":
            if address is not None:
                raise SdpError(f"line {line.number}: more than one c= line for the audio stream")
            address = _connection(line)
            continue
        if line.type != "a":
            continue
        name, value = _attribute(line)
        if name in DIRECTIONS:
            direction = _one_direction(line, direction, name)
        elif name == "rtpmap":
            payload_type, encoding = _rtpmap(line, value)
            if not _same_encoding(rtpmaps.setdefault(payload_type, encoding), encoding):
                raise SdpError(
                    f"line {line.number}: payload type {payload_type} has contradictory a=rtpmap lines"
                )
        elif name == "fmtp":
            payload_type, parameters = _fmtp(line, value)
            if fmtps.setdefault(payload_type, parameters) != parameters:
                raise SdpError(
                    f"line {line.number}: payload type {payload_type} has contradictory a=fmtp lines"
                )
        elif name in ("ptime", "maxptime"):
            milliseconds = _number(value or "", 1, _MAX_PTIME_MS, f"line {line.number} (a={name})", name)
            previous = ptime if name == "ptime" else maxptime
            if previous is not None and previous != milliseconds:
                raise SdpError(f"line {line.number}: contradictory a={name} lines")
            if name == "ptime":
                ptime = milliseconds
            else:
                maxptime = milliseconds
        elif name == "rtcp":
            if rtcp is not None:
                raise SdpError(f"line {line.number}: more than one a=rtcp line")
            rtcp = _rtcp(line, value)
        elif name == "rtcp-mux":
            rtcp_mux = True
        elif name == "crypto":
            attribute = _crypto(line, value)
            if any(c.tag == attribute.tag for c in crypto):
                raise SdpError(f"line {line.number}: a=crypto tag {attribute.tag} is used twice")
            crypto.append(attribute)

    codecs: list[Codec] = []
    for payload_type in payload_types:
        static = STATIC_PAYLOAD_TYPES.get(payload_type)
        mapped = rtpmaps.get(payload_type)
        if static is not None and mapped is not None and not _same_encoding(static, mapped):
            raise SdpError(f"{where}: a=rtpmap contradicts static payload type {payload_type} ({static[0]})")
        # a=rtpmap for a payload type the m= line does not list describes nothing: ignored.
        known = mapped or static
        if known is not None:
            codecs.append(Codec(payload_type, *known, fmtp=fmtps.get(payload_type)))
    return _AudioSection(
        address=address,
        payload_types=payload_types,
        codecs=tuple(codecs),
        direction=direction,
        ptime=ptime,
        maxptime=maxptime,
        rtcp_port=None if rtcp is None else rtcp[0],
        rtcp_address=None if rtcp is None else rtcp[1],
        rtcp_mux=rtcp_mux,
        crypto=tuple(crypto),
    )


def _same_encoding(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
    # Encoding names are media subtypes, which compare without regard to case (RFC 4855 3).
    return (a[0].lower(), a[1], a[2]) == (b[0].lower(), b[1], b[2])


def _rtpmap(line: _Line, value: str | None) -> tuple[int, tuple[str, int, int]]:
    where = f"line {line.number} (a=rtpmap)"
    fields = (value or "").split()
    if len(fields) != 2:
        raise SdpError(f"{where}: a=rtpmap must read '<payload type> <encoding>/<clock rate>[/<channels>]'")
    payload_type = _number(fields[0], 0, 127, where, "payload type")
    parts = fields[1].split("/")
    if len(parts) not in (2, 3) or not _ENCODING.fullmatch(parts[0]):
        raise SdpError(f"{where}: a=rtpmap must read '<payload type> <encoding>/<clock rate>[/<channels>]'")
    clock_rate = _number(parts[1], 1, _MAX_CLOCK_RATE, where, "clock rate")
    channels = _number(parts[2], 1, 255, where, "channel count") if len(parts) == 3 else 1
    return payload_type, (parts[0], clock_rate, channels)


def _fmtp(line: _Line, value: str | None) -> tuple[int, str]:
    where = f"line {line.number} (a=fmtp)"
    payload_text, _, parameters = (value or "").partition(" ")
    parameters = parameters.strip(" ")
    if not parameters:
        raise SdpError(f"{where}: a=fmtp must read '<payload type> <parameters>'")
    return _number(payload_text, 0, 127, where, "payload type"), parameters


def _rtcp(line: _Line, value: str | None) -> tuple[int, str | None]:
    where = f"line {line.number} (a=rtcp)"
    fields = (value or "").split()
    if len(fields) not in (1, 4):
        raise SdpError(f"{where}: a=rtcp must read '<port>' or '<port> IN IP4|IP6 <address>'")
    port = _number(fields[0], 1, 65535, where, "port")
    if len(fields) == 1:
        return port, None
    if fields[1] != "IN" or fields[2] not in ("IP4", "IP6"):
        raise SdpError(f"{where}: a=rtcp must read '<port>' or '<port> IN IP4|IP6 <address>'")
    return port, _address(fields[2], fields[3], where)


def _crypto(line: _Line, value: str | None) -> CryptoAttribute:
    # Nothing from this line but the tag is ever quoted: a token in the wrong place may be the key.
    where = f"line {line.number} (a=crypto)"
    fields = (value or "").split()
    if len(fields) < 3:
        raise SdpError(f"{where}: a=crypto must read '<tag> <suite> inline:<key>[;...] [<session params>]'")
    tag = _number(fields[0], 0, 999_999_999, where, "tag")
    suite = fields[1]
    if not _SUITE.fullmatch(suite):
        raise SdpError(f"{where}: tag {tag} has an invalid crypto suite name")
    keys = tuple(_srtp_key(part, suite, f"{where} tag {tag}") for part in fields[2].split(";"))
    return CryptoAttribute(tag=tag, suite=suite, keys=keys, session_params=tuple(fields[3:]))


def _srtp_key(text: str, suite: str, where: str) -> SrtpKey:
    method, colon, info = text.partition(":")
    if not colon or method != "inline":
        raise SdpError(f"{where}: only inline keys are supported")
    key_text, *extras = info.split("|")
    if len(extras) > 2:
        raise SdpError(f"{where}: an inline key has at most a lifetime and an MKI after it")
    if not _BASE64.fullmatch(key_text):
        raise SdpError(f"{where}: key is not base64")
    try:
        # Some stacks drop the padding; put it back rather than refuse the call.
        key_salt = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SdpError(f"{where}: key is not base64") from None
    expected = SRTP_KEY_SALT_BYTES.get(suite)
    if expected is not None and len(key_salt) != expected:
        raise SdpError(f"{where}: key is {len(key_salt)} bytes, {suite} needs {expected}")
    lifetime: int | None = None
    mki: int | None = None
    mki_length: int | None = None
    for extra in extras:
        if ":" in extra:
            if mki is not None:
                raise SdpError(f"{where}: more than one MKI for a key")
            mki_text, _, length_text = extra.partition(":")
            mki = _number(mki_text, 0, 2**32 - 1, where, "MKI")
            mki_length = _number(length_text, 1, 128, where, "MKI length")
        elif lifetime is not None or mki is not None:
            raise SdpError(f"{where}: the key lifetime must come once, before the MKI")
        else:
            power = _LIFETIME_POWER.fullmatch(extra)
            if power is not None:
                exponent = _number(power[1], 0, _MAX_LIFETIME_EXPONENT, where, "lifetime exponent")
                lifetime = 1 << exponent
            else:
                lifetime = _number(extra, 1, 1 << _MAX_LIFETIME_EXPONENT, where, "key lifetime")
    return SrtpKey(key_salt=key_salt, lifetime=lifetime, mki=mki, mki_length=mki_length)


# --- negotiation ----------------------------------------------------------------------------------


def negotiate(
    offer: AudioOffer,
    supported: Sequence[str] = SUPPORTED_CODECS,
    *,
    srtp_suites: Sequence[str] = SUPPORTED_SRTP_SUITES,
) -> Negotiated:
    """Choose the call's codec: the offerer's most preferred one among ``supported`` (``name/rate[/ch]``).

    telephone-event comes along when offered at the codec's clock rate. An RTP/SAVP offer also needs an
    a=crypto line the relay can use; the first such line, in the offerer's order, is chosen.
    """
    wanted = [_codec_spec(entry) for entry in supported]
    codec = next((c for c in offer.codecs if any(c.is_encoding(*spec) for spec in wanted)), None)
    if codec is None:
        raise SdpError(f"no supported audio codec in the offer: offered {_offered(offer)}")
    events = next(
        (c for c in offer.codecs if c.is_encoding(TELEPHONE_EVENT, codec.clock_rate)),
        None,
    )
    crypto = _choose_crypto(offer, srtp_suites) if offer.protocol == "RTP/SAVP" else None
    return Negotiated(offer=offer, codec=codec, telephone_event=events, crypto=crypto)


def _codec_spec(entry: str) -> tuple[str, int, int]:
    parts = entry.split("/")
    try:
        if len(parts) not in (2, 3) or not _ENCODING.fullmatch(parts[0]):
            raise ValueError
        return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        # A configuration mistake, not a bad offer: a plain ValueError, so no boundary files it as one.
        raise ValueError(f"supported codec {entry!r} is not written name/rate[/channels]") from None


def _offered(offer: AudioOffer) -> str:
    named = {c.payload_type for c in offer.codecs}
    items = [c.encoding for c in offer.codecs]
    items += [f"payload type {pt} without a=rtpmap" for pt in offer.payload_types if pt not in named]
    more = len(items) - _MAX_LISTED
    return ", ".join(items[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _choose_crypto(offer: AudioOffer, suites: Sequence[str]) -> CryptoAttribute:
    if not offer.crypto:
        raise SdpError("RTP/SAVP offer without an a=crypto line; only SDES keying is supported")
    refused: list[str] = []
    for attribute in offer.crypto:
        if attribute.suite not in suites:
            # Only a known suite name is quoted: an unknown one is a token from the wire, maybe the key.
            refused.append(attribute.suite if attribute.suite in SRTP_KEY_SALT_BYTES else "an unknown suite")
        # pylibsrtp takes one key per direction and no MKI, and cannot honour session parameters
        # (UNENCRYPTED_SRTP, KDR, FEC_ORDER...), so such lines are passed over rather than half-honoured.
        elif len(attribute.keys) != 1 or attribute.keys[0].mki is not None:
            refused.append(f"{attribute.suite} (with MKI)")
        elif attribute.session_params:
            refused.append(f"{attribute.suite} (with session parameters)")
        else:
            return attribute
    more = len(refused) - _MAX_LISTED
    listed = ", ".join(refused[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")
    raise SdpError(f"no supported SRTP crypto suite in the offer: offered {listed}")


def answer_direction(offered: str, wanted: str = "sendrecv") -> str:
    """The direction an answer may state (RFC 3264 6.1): ``wanted``, cut to what the offer allows."""
    if offered not in DIRECTIONS or wanted not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
    sends = wanted in ("sendrecv", "sendonly") and offered in ("sendrecv", "recvonly")
    receives = wanted in ("sendrecv", "recvonly") and offered in ("sendrecv", "sendonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get(
        (sends, receives), "inactive"
    )


def answer_crypto(offered: CryptoAttribute, key_salt: bytes | None = None) -> CryptoAttribute:
    """The relay's a=crypto line answering ``offered``: same tag and suite, the relay's own key.

    ``key_salt`` defaults to fresh random bytes of the suite's length.
    """
    expected = SRTP_KEY_SALT_BYTES.get(offered.suite)
    if expected is None:
        raise ValueError(f"unknown SRTP suite {offered.suite}")
    if key_salt is None:
        key_salt = os.urandom(expected)
    if len(key_salt) != expected:
        raise ValueError(f"{offered.suite} needs a {expected}-byte key and salt, got {len(key_salt)} bytes")
    return CryptoAttribute(tag=offered.tag, suite=offered.suite, keys=(SrtpKey(key_salt),))


# --- the answer -----------------------------------------------------------------------------------


def build_answer(
    negotiated: Negotiated,
    *,
    address: str,
    port: int,
    session_id: int,
    direction: str,
    crypto: CryptoAttribute | None,
    session_version: int = 0,
) -> str:
    """The relay's SDP answer: the chosen payload types on ``address:port``, every other stream rejected.

    RFC 3264 wants one m= line per offered one, in order, so the streams the relay does not take come back
    with port 0. ``crypto`` is the relay's own key (see ``answer_crypto``), required exactly when the offer
    was RTP/SAVP. Lines end in CRLF.
    """
    offer = negotiated.offer
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise SdpError("the answer's address must be a literal IPv4 or IPv6 address") from None
    if ip.is_multicast or "%" in address:
        raise SdpError("the answer's address must be a unicast address without a zone")
    address_type = "IP4" if ip.version == 4 else "IP6"
    if not 1 <= port <= 65535:
        raise SdpError(f"the answer's port {port} is not from 1 to 65535")
    if session_id < 0 or session_version < 0:
        raise SdpError("the answer's session id and version must not be negative")
    if direction not in DIRECTIONS:
        raise SdpError(f"the answer's direction must be one of {', '.join(DIRECTIONS)}")
    if answer_direction(offer.direction, direction) != direction:
        raise SdpError(f"a {offer.direction} offer cannot be answered {direction} (RFC 3264 6.1)")
    _check_answer_crypto(negotiated.crypto, crypto)

    lines = [
        "v=0",
        f"o=bleepline {session_id} {session_version} IN {address_type} {ip}",
        "s=-",
        f"c=IN {address_type} {ip}",
        "t=0 0",
    ]
    for index, media in enumerate(offer.media):
        if index != offer.stream_index:
            # A rejected stream keeps its protocol and one of its formats, which SDP requires to be there.
            lines.append(f"m={media.kind} 0 {media.protocol} {media.formats[0]}")
            continue
        formats = " ".join(str(pt) for pt in negotiated.payload_types)
        lines.append(f"m=audio {port} {offer.protocol} {formats}")
        lines += [f"a=rtpmap:{c.payload_type} {c.encoding}" for c in negotiated.codecs]
        # The codecs' own fmtp defaults (mono opus, no FEC asked for) are what the relay wants to receive;
        # the offer's event range is echoed, since the relay only ever listens for events.
        events = negotiated.telephone_event
        if events is not None and events.fmtp is not None:
            lines.append(f"a=fmtp:{events.payload_type} {events.fmtp}")
        if offer.ptime is not None:
            lines.append(f"a=ptime:{offer.ptime}")
        lines.append(f"a={direction}")
        if offer.rtcp_mux:
            lines.append("a=rtcp-mux")
        if crypto is not None:
            lines.append(f"a=crypto:{crypto.sdp_value()}")
    return "\r\n".join(lines) + "\r\n"


def _check_answer_crypto(offered: CryptoAttribute | None, answer: CryptoAttribute | None) -> None:
    if offered is None:
        if answer is not None:
            raise SdpError("the offer is plain RTP/AVP: the answer must carry no a=crypto line")
        return
    if answer is None:
        raise SdpError("the offer is RTP/SAVP: the answer needs the relay's own a=crypto line")
    if (answer.tag, answer.suite) != (offered.tag, offered.suite):
        raise SdpError(
            f"the answer's a=crypto must use the chosen tag {offered.tag} and suite {offered.suite}"
        )
    if len(answer.keys) != 1 or answer.session_params:
        raise SdpError("the answer's a=crypto must carry exactly one key and no session parameters")
