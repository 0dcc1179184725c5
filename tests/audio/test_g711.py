from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

from bleepline.audio import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop: types.ModuleType | None
    try:
        import audioop
    except ImportError:  # Python 3.13 removed it; the table checks below still run
        audioop = None

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


@pytest.fixture
def reference() -> types.ModuleType:
    """The reference C implementation, where this Python still ships it."""
    if audioop is None:
        pytest.skip("audioop is gone from this Python; the table checks below still run")
    return audioop


def test_ulaw_encode_matches_reference_for_every_sample(reference: types.ModuleType) -> None:
    expected = np.frombuffer(reference.lin2ulaw(ALL_SAMPLES.tobytes(), 2), dtype=np.uint8)
    assert np.array_equal(g711.ulaw_encode(ALL_SAMPLES), expected)


def test_alaw_encode_matches_reference_for_every_sample(reference: types.ModuleType) -> None:
    expected = np.frombuffer(reference.lin2alaw(ALL_SAMPLES.tobytes(), 2), dtype=np.uint8)
    assert np.array_equal(g711.alaw_encode(ALL_SAMPLES), expected)


def test_decoders_match_reference_for_every_code(reference: types.ModuleType) -> None:
    ulaw = np.frombuffer(reference.ulaw2lin(ALL_CODES.tobytes(), 2), dtype=np.int16)
    alaw = np.frombuffer(reference.alaw2lin(ALL_CODES.tobytes(), 2), dtype=np.int16)
    assert np.array_equal(g711.ulaw_decode(ALL_CODES), ulaw)
    assert np.array_equal(g711.alaw_decode(ALL_CODES), alaw)


# Values from the G.711 tables (µ-law in 14-bit units x4, A-law in 13-bit units x8), at the segment
# ends where an off-by-one in a derived table would show.
@pytest.mark.parametrize(
    ("code", "linear"),
    [
        (0xFF, 0),
        (0x7F, 0),
        (0xF0, 120),
        (0xEF, 132),
        (0xE0, 372),
        (0xDF, 396),
        (0x8F, 16764),
        (0x80, 32124),
        (0x00, -32124),
        (0x70, -120),
    ],
)
def test_ulaw_decode_at_segment_ends(code: int, linear: int) -> None:
    assert int(g711.ulaw_decode(np.array([code], dtype=np.uint8))[0]) == linear


@pytest.mark.parametrize(
    ("code", "linear"),
    [
        (0xD5, 8),
        (0x55, -8),
        (0xDA, 248),
        (0xC5, 264),
        (0xCA, 504),
        (0xF5, 528),
        (0xAA, 32256),
        (0x2A, -32256),
    ],
)
def test_alaw_decode_at_segment_ends(code: int, linear: int) -> None:
    assert int(g711.alaw_decode(np.array([code], dtype=np.uint8))[0]) == linear


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_encoding_a_decoded_value_gives_a_code_for_the_same_value(encode, decode) -> None:  # type: ignore[no-untyped-def]
    decoded = decode(ALL_CODES)
    assert np.array_equal(decode(encode(decoded)), decoded)


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_quantisation_is_monotonic_and_bounded(encode, decode) -> None:  # type: ignore[no-untyped-def]
    roundtrip = decode(encode(ALL_SAMPLES)).astype(np.int32)
    assert np.all(np.diff(roundtrip) >= 0)
    # G.711 keeps at least 4 bits of mantissa: the error is under 1/16 of the magnitude (+ the step
    # of the smallest segment).
    error = np.abs(roundtrip - ALL_SAMPLES.astype(np.int32))
    assert np.all(error <= np.abs(ALL_SAMPLES.astype(np.int32)) / 16 + 16)


def test_silence_codes_and_bytes_payloads() -> None:
    assert g711.ULAW_SILENCE == 0xFF
    assert g711.ALAW_SILENCE == 0xD5
    assert np.array_equal(g711.ulaw_decode(bytes([0xFF, 0x80])), [0, 32124])
    assert np.array_equal(g711.alaw_decode(bytes([0xD5])), [8])
