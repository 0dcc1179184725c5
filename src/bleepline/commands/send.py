"""`bleepline send`: play an audio file into a relay as one RTP call, in real time, then end it.

A test and convenience sender for trying `bleepline serve` without a PBX: any audio file FFmpeg reads is
mixed to mono, resampled to the codec's 8 kHz, cut into 20 ms G.711 packets and sent from one UDP socket
at the pace a phone would send them; then an RTCP BYE from the same socket tells the relay the call is
over. It is not a softphone: it does no SDP, no SRTP and no jitter of its own, and it receives nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bleepline.audio.codecs import PCMA, PCMU, CodecSpec
from bleepline.audio.files import probe_audio, read_audio_chunks
from bleepline.errors import BleeplineError
from bleepline.server import STATIC_PAYLOAD_TYPES
from bleepline.transport.rtp import RtpPacket
from bleepline.transport.sender import RtpLegSender

CODECS = {"pcmu": PCMU, "pcma": PCMA}

#: One packet's audio: what phones and PBXs send by default (RFC 3551's default for audio).
PTIME_MS = 20

_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Destination:
    """Where the packets go: the address as given (for messages) and as resolved (for the socket)."""

    text: str
    family: socket.AddressFamily
    address: tuple[str, int]


@dataclass(frozen=True)
class SendResult:
    """What one call sent: counts and timings only."""

    ssrc: int
    packets: int
    #: Seconds of call timeline the packets cover (the file's length, up to the next whole packet).
    audio_s: float
    #: Seconds from the first packet to the BYE.
    wall_s: float
    #: Times the sender found itself more than a packet behind its schedule (a stalled machine) and moved
    #: the schedule on rather than send the missed packets in a burst.
    slips: int


def parse_destination(text: str) -> Destination:
    """``HOST:PORT`` (``[v6]:PORT``) resolved for UDP; a one-line ``BleeplineError`` if it is not one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BleeplineError(f"--to {text!r}: must be HOST:PORT, the port 1-65535")
    try:
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else "not a host name"
        raise BleeplineError(f"--to {text!r}: cannot resolve {host!r}: {reason}") from None
    family, _, _, _, sockaddr = found[0]
    return Destination(text, family, (str(sockaddr[0]), int(sockaddr[1])))


def parse_ssrc(text: str | None) -> int | None:
    """``--ssrc``: decimal or 0x-hexadecimal, 0 to 2**32 - 1; None picks a random one (RFC 3550)."""
    if text is None:
        return None
    try:
        value = int(text, 0)
    except ValueError:
        raise BleeplineError(f"--ssrc {text!r}: must be a whole number, decimal or 0x hex") from None
    if not 0 <= value <= _U32:
        raise BleeplineError(f"--ssrc {text!r}: must be 0 to {_U32}")
    return value


def stream_file(
    path: Path,
    destination: Destination,
    *,
    codec: CodecSpec = PCMU,
    ssrc: int | None = None,
    on_start: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SendResult:
    """Send ``path`` to ``destination`` as one RTP call in real time, then an RTCP BYE; return the counts.

    Each packet leaves at its own deadline on ``clock`` (the first packet's send time plus its place on
    the call timeline), so sleeping late never adds up to drift. ``on_start`` is told the SSRC just
    before the first packet. The file is checked before anything is sent; if sending stops part way
    (a damaged file, Ctrl-C, a refused port), a BYE still goes out when it can, so the relay ends the call
    now rather than at its idle timeout.
    """
    probe_audio(path)  # a bad file fails here, one line, before a call is started
    chunks = read_audio_chunks(path)
    first = next(chunks, None)
    if first is None:
        raise BleeplineError(f"{path}: holds no audio")
    # The sender resamples from the file's rate to the codec's clock itself, keeping the timeline.
    sender = RtpLegSender(
        codec, STATIC_PAYLOAD_TYPES[codec.name], sample_rate=first.sample_rate, ptime_ms=PTIME_MS, ssrc=ssrc
    )
    ptime_s = PTIME_MS / 1000
    sock = socket.socket(destination.family, socket.SOCK_DGRAM)
    # Connected: only this destination's answers count, and a closed port's ICMP error shows on a send.
    try:
        sock.connect(destination.address)
    except OSError as exc:
        sock.close()
        raise BleeplineError(f"{destination.text}: cannot send there: {_reason(exc)}") from None
    anchor: float | None = None
    began = last_sent = 0.0
    sent = slips = 0
    last_at = 0.0
    ended = False

    def send(packet: RtpPacket) -> None:
        nonlocal anchor, began, last_sent, sent, slips, last_at
        at = sender.packet_time(packet)
        now = clock()
        if anchor is None:
            if on_start is not None:
                on_start(sender.ssrc)
            began = last_sent = now
            anchor = now - at
        deadline = anchor + at
        if now - deadline > ptime_s:
            # More than a packet late (the machine stalled): move the schedule on, keeping this packet a
            # packet's time after the last one. Catching up would send a burst, which a relay's jitter
            # buffer would take for a network spike; the timestamps stay on the timeline either way.
            moved = max(now, last_sent + ptime_s)
            anchor += moved - deadline
            deadline = moved
            slips += 1
        if deadline > now:
            sleep(deadline - now)
        _send(sock, packet.serialize(), destination)
        last_sent = clock()
        sent += 1
        last_at = at

    try:
        for chunk in itertools.chain((first,), chunks):
            for packet in sender.write(chunk):
                send(packet)
        for packet in sender.flush():  # the last partial packet, padded with silence
            send(packet)
        if anchor is not None:
            # The BYE goes when the last packet's audio has played out, as a phone hanging up would.
            wait = anchor + last_at + ptime_s - clock()
            if wait > 0:
                sleep(wait)
            ended = True
            _send(sock, _goodbye(sender), destination)
    finally:
        if not ended and sent:
            # Already failing: if this cannot go either, the relay's idle timeout ends the call instead.
            with contextlib.suppress(OSError):
                sock.send(_goodbye(sender))
        sock.close()
    wall_s = 0.0 if anchor is None else clock() - began
    return SendResult(sender.ssrc, sent, sent * ptime_s, wall_s, slips)


def _goodbye(sender: RtpLegSender) -> bytes:
    # A compound packet (RFC 3550 6.1): a sender report, then the BYE naming our SSRC.
    return sender.sender_report(time.time()) + sender.bye()


def _send(sock: socket.socket, data: bytes, destination: Destination) -> None:
    try:
        sock.send(data)
    except ConnectionRefusedError:
        raise BleeplineError(
            f"{destination.text}: nothing is listening there (port unreachable); start the relay first"
        ) from None
    except OSError as exc:
        raise BleeplineError(f"{destination.text}: cannot send there: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else type(exc).__name__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("input", type=Path, metavar="AUDIO", help="audio file to send (anything FFmpeg reads)")
    add("--to", required=True, metavar="HOST:PORT", help="the relay's RTP address (serve --rtp-listen)")
    add("--codec", choices=sorted(CODECS), default="pcmu", help="G.711 law to send (default pcmu)")
    add("--ssrc", metavar="N", help="the call's RTP SSRC, decimal or 0x hex (default: random)")


def run(args: argparse.Namespace) -> int:
    destination = parse_destination(args.to)
    ssrc = parse_ssrc(args.ssrc)
    codec = CODECS[args.codec]
    info = probe_audio(args.input)
    length = f"{info.duration:.1f} s, " if info.duration else ""

    def started(ssrc: int) -> None:
        print(
            f"sending {args.input} ({length}{info.sample_rate} Hz) to {destination.text} as {codec.name}, "
            f"SSRC {ssrc:#010x}, in real time",
            flush=True,
        )

    result = stream_file(args.input, destination, codec=codec, ssrc=ssrc, on_start=started)
    print(
        f"sent {result.packets} packets ({result.audio_s:.2f} s of audio in {result.wall_s:.2f} s), "
        "then an RTCP BYE"
    )
    if result.slips:
        print(f"  fell behind {result.slips} time(s) (a busy machine): the schedule moved on, no burst")
    return 0
