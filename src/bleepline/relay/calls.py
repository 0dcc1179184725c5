"""What the relay keeps per call and in all: a call's record, the media it is polled from, the counters,
the codecs it takes, and the error for a call that cannot be set up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bleepline.audio.codecs import OPUS, PCMA, PCMU, CodecSpec
from bleepline.call import CallReport, Listener
from bleepline.live import LiveCall
from bleepline.store.recording import RecordingWriter
from bleepline.timeline import AudioChunk
from bleepline.transport.endpoint import RtpEndpoint
from bleepline.transport.receiver import ReceiverStats
from bleepline.transport.sdp import Codec
from bleepline.transport.sender import PacedLeg
from bleepline.transport.srtp import SrtpContexts

#: How often held audio is released and receivers are polled: one packet's time at 20 ms ptime.
TICK_S = 0.02

#: Calls at once; past it a new source is dropped and counted, so a flood of sources cannot exhaust memory.
DEFAULT_MAX_CALLS = 64

#: Static payload types (RFC 3551): the only audio a static-mode call accepts, so stray UDP never
#: becomes a call.
STATIC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}

#: What an SDP-negotiated call may use, by SDP encoding name (``name/rate[/channels]``; names compare
#: without regard to case, RFC 4855): the static-mode codecs, and Opus, which RTP always calls stereo
#: (RFC 7587) and which is decoded to mono at 48 kHz; such a call is recorded at 48 kHz.
NEGOTIABLE_CODECS = {"PCMU/8000": PCMU, "PCMA/8000": PCMA, "opus/48000/2": OPUS}

CallKey = tuple[tuple[str, int], int]  # (source host and port, SSRC)
ListenerFactory = Callable[[int], Listener | None]


def negotiable_codec(codec: Codec) -> CodecSpec | None:
    """The codec spec for a negotiated payload type, or None if the relay does not take it."""
    wanted = codec.encoding.lower()
    return next((spec for name, spec in NEGOTIABLE_CODECS.items() if name.lower() == wanted), None)


@dataclass
class ServerStats:
    """Counters without content: every datagram is in ``datagrams`` and in at most one drop counter
    (packets held on probation in none yet: they go to ``rtp`` or ``unproven`` or ``still_refused``)."""

    datagrams: int = 0
    rtp: int = 0
    rtcp: int = 0
    malformed: int = 0
    oversize: int = 0
    wrong_payload_type: int = 0
    stranger: int = 0  # RTCP from an address with no call (nor a BYE ending a refusal): maybe forged
    after_end: int = 0  # packets of a call already ended
    refused: int = 0  # call set-ups refused: past max_calls, or not set up (static mode: once a source)
    refused_busy: int = 0  # of those: the recognizer was at capacity (over_capacity "refuse")
    still_refused: int = 0  # packets of a refused static-mode source, until it goes quiet or says BYE
    unproven: int = 0  # packets held for a source on probation that never passed it (spoofed, broken)
    probation_evicted: int = 0  # sources on probation forgotten to make room (not packets)
    refusals_evicted: int = 0  # refused sources forgotten to make room (not packets)
    calls_unheard: int = 0  # taken while the recognizer was at capacity, all masked (over_capacity "mask")
    calls_started: int = 0
    calls_ended: int = 0
    reports: list[CallReport] = field(default_factory=list)


class CallRefusedError(Exception):
    """A negotiated call could not be set up: no port free in the range, too many calls, the recognizer
    at capacity, or stopping."""


class MediaSource(Protocol):
    """What the tick polls a call's audio from: a ``CallReceiver`` (RTP), or a WebRTC track's frames
    (``bleepline.webrtc.ingest.FrameReceiver``). Chunks come out contiguous, starting at sample 0."""

    codec: CodecSpec
    stats: ReceiverStats

    def poll(self, now: float) -> list[AudioChunk]: ...

    def flush(self) -> list[AudioChunk]: ...

    def take_keypresses(self) -> list[tuple[float, float]]: ...

    @property
    def keypress_active_since(self) -> float | None: ...


@dataclass
class _Call:
    call_id: str
    key: CallKey
    receiver: MediaSource
    live: LiveCall
    writer: RecordingWriter
    last_activity: float
    started: float = 0.0
    endpoint: RtpEndpoint | None = None  # a negotiated call's own port; None for static mode
    state: str = "active"  # then "ending" (being finalised), then "ended" or "failed"
    report: CallReport | None = None
    leg: PacedLeg | None = None  # the redacted leg, sent from ``endpoint``
    leg_rtcp: tuple[str, int] | None = None  # where the redacted leg's RTCP BYE goes
    srtp: SrtpContexts | None = None  # the call's SRTP keys (never logged: see their repr)
    # Told the reason once the call starts ending (WebRTC sessions close their peer connections, listener
    # tokens expire); called on the loop, never allowed to break the ending.
    on_end: list[Callable[[str], None]] = field(default_factory=list)
