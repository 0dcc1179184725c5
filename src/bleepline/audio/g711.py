"""G.711 µ-law (PCMU) and A-law (PCMA), vectorised with numpy.

Decoding is a 256-entry table; encoding a 65,536-entry table indexed by the 16-bit sample, so both are a
single gather per packet. The tables are derived from the segment rules of ITU-T G.711 at import time and
agree bit for bit with the reference C implementation (as in Python's former ``audioop``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Codes = npt.NDArray[np.uint8]
Pcm = npt.NDArray[np.int16]

_SEGMENTS = np.arange(8)


def _ulaw_encode_all() -> Codes:
    """µ-law code for every int16 value, from the 14-bit G.711 rule."""
    linear = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit magnitude domain
    negative = linear < 0
    magnitude = np.minimum(np.where(negative, -linear, linear), 8159) + 33  # clip, add the bias
    # Segment s covers biased magnitudes up to 2**(s+6) - 1; the clipped maximum lands past the last
    # one and saturates to the top code.
    segment = np.searchsorted((1 << (_SEGMENTS + 6)) - 1, magnitude)
    saturated = segment >= 8
    segment = np.minimum(segment, 7)
    code = np.where(saturated, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    mask = np.where(negative, 0x7F, 0xFF)
    return (code ^ mask).astype(np.uint8)


def _ulaw_decode_all() -> Pcm:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + 0x84) << segment
    return np.where(code & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _alaw_encode_all() -> Codes:
    """A-law code for every int16 value, from the 13-bit G.711 rule."""
    linear = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit domain
    negative = linear < 0
    magnitude = np.where(negative, -linear - 1, linear)
    # Segment s covers magnitudes up to 2**(s+5) - 1; anything beyond the last one saturates.
    segment = np.searchsorted((1 << (_SEGMENTS + 5)) - 1, magnitude)
    saturated = segment >= 8
    segment = np.minimum(segment, 7)
    shift = np.where(segment < 2, 1, segment)
    code = np.where(saturated, 0x7F, (segment << 4) | ((magnitude >> shift) & 0x0F))
    mask = np.where(negative, 0x55, 0xD5)
    return (code ^ mask).astype(np.uint8)


def _alaw_decode_all() -> Pcm:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code >> 4) & 0x07
    magnitude = (code & 0x0F) << 4
    magnitude = np.where(
        segment == 0,
        magnitude + 8,
        (magnitude + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_ENCODE: Codes = _ulaw_encode_all()
ULAW_DECODE: Pcm = _ulaw_decode_all()
ALAW_ENCODE: Codes = _alaw_encode_all()
ALAW_DECODE: Pcm = _alaw_decode_all()
for _table in (ULAW_ENCODE, ULAW_DECODE, ALAW_ENCODE, ALAW_DECODE):
    _table.setflags(write=False)

#: The code for silence, for filling lost packets in the wire format itself.
ULAW_SILENCE = int(ULAW_ENCODE[32768])
ALAW_SILENCE = int(ALAW_ENCODE[32768])


def _as_index(pcm: Pcm) -> npt.NDArray[np.intp]:
    # int16 viewed as uint16 maps -32768..-1 to 32768..65535; the tables start at -32768, so flip the
    # top bit to get the offset from -32768.
    return (np.asarray(pcm, dtype=np.int16).view(np.uint16) ^ 0x8000).astype(np.intp)


def ulaw_encode(pcm: Pcm) -> Codes:
    """Linear int16 samples to µ-law codes."""
    return ULAW_ENCODE[_as_index(pcm)]


def ulaw_decode(codes: Codes | bytes) -> Pcm:
    """µ-law codes (an array or the payload bytes) to linear int16 samples."""
    return ULAW_DECODE[np.frombuffer(codes, dtype=np.uint8) if isinstance(codes, bytes) else codes]


def alaw_encode(pcm: Pcm) -> Codes:
    """Linear int16 samples to A-law codes."""
    return ALAW_ENCODE[_as_index(pcm)]


def alaw_decode(codes: Codes | bytes) -> Pcm:
    """A-law codes (an array or the payload bytes) to linear int16 samples."""
    return ALAW_DECODE[np.frombuffer(codes, dtype=np.uint8) if isinstance(codes, bytes) else codes]
