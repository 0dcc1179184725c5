"""What a WHIP or WHEP offer must hold before a peer connection is made for it: one audio m-line with
Opus (opus/48000/2), the right direction, ICE credentials and a DTLS fingerprint. Errors never quote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.sdp import SessionDescription

#: Largest offer taken: a browser's audio-only offer is 1-4 kB; anything near this is not one.
MAX_OFFER_BYTES = 32 * 1024

#: The directions an offer may have, by what the relay does: WHIP receives, WHEP sends.
_DIRECTIONS = {"publish": ("sendonly", "sendrecv"), "listen": ("recvonly", "sendrecv")}


class OfferError(ValueError):
    """An offer the relay cannot answer; the message (which never quotes the offer) is for the 400."""


@dataclass(frozen=True)
class CheckedOffer:
    """An offer that passed ``check_offer``: its text, and the direction its audio m-line asked for."""

    sdp: str
    direction: str


def check_offer(body: bytes, role: str) -> CheckedOffer:
    """``body`` as an offer for ``role`` ("publish": WHIP, "listen": WHEP), or ``OfferError``."""
    if role not in _DIRECTIONS:
        raise ValueError(f"role must be publish or listen, not {role!r}")
    if len(body) > MAX_OFFER_BYTES:
        raise OfferError(f"the SDP offer is larger than {MAX_OFFER_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise OfferError("the SDP offer is not UTF-8 text") from None
    if not text.startswith("v=0"):
        raise OfferError("the body is not an SDP offer (it must start with v=0)")
    try:
        description = SessionDescription.parse(text)
    except Exception:  # aiortc's parser raises whatever the line it chokes on gives (even AssertionError)
        raise OfferError("the SDP offer could not be parsed") from None
    media = description.media
    audio = [m for m in media if m.kind == "audio"]
    if not audio:
        raise OfferError("the offer has no audio m-line")
    if len(media) > 1:
        # Video or data channels would be negotiated and received for nothing (video decoding is dear).
        raise OfferError("the offer must hold exactly one m-line, audio: no video or data channels")
    (line,) = audio
    if not any(
        codec.mimeType.lower() == "audio/opus" and codec.clockRate == 48000 and codec.channels == 2
        for codec in line.rtp.codecs
    ):
        raise OfferError("the offer's audio has no Opus (opus/48000/2), the only codec taken here")
    direction = line.direction or "sendrecv"
    if direction not in _DIRECTIONS[role]:
        wanted = " or ".join(_DIRECTIONS[role])
        raise OfferError(f"the offer's audio is {direction}; this endpoint takes {wanted}")
    if line.ice is None or not line.ice.usernameFragment or not line.ice.password:
        raise OfferError("the offer has no ICE credentials (a=ice-ufrag, a=ice-pwd)")
    if line.dtls is None or not line.dtls.fingerprints:
        raise OfferError("the offer has no DTLS fingerprint (a=fingerprint)")
    return CheckedOffer(text, direction)
