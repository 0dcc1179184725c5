from __future__ import annotations

import numpy as np
import pytest

from bleepline.audio.codecs import (
    L16_8K,
    L16_16K,
    OPUS,
    PCMA,
    PCMU,
    CodecError,
    CodecSpec,
    decoder_for,
    encoder_for,
)
from tests.conftest import sine


@pytest.mark.parametrize("spec", [PCMU, PCMA])
def test_g711_packets_round_trip_within_quantisation(spec: CodecSpec) -> None:
    tone = sine(0.02, 8000, level=0.3)
    payload = encoder_for(spec).encode(tone)
    assert len(payload) == 160
    back = decoder_for(spec).decode(payload)
    assert np.max(np.abs(back.astype(np.int32) - tone)) <= np.max(np.abs(tone)) / 16 + 16


@pytest.mark.parametrize("spec", [L16_8K, L16_16K])
def test_l16_is_network_byte_order_and_exact(spec: CodecSpec) -> None:
    samples = np.array([1, -2, 32767, -32768], dtype=np.int16)
    payload = encoder_for(spec).encode(samples)
    assert payload[:2] == b"\x00\x01"
    assert np.array_equal(decoder_for(spec).decode(payload), samples)


def test_l16_with_half_a_sample_is_refused() -> None:
    with pytest.raises(CodecError, match="not whole samples"):
        decoder_for(L16_8K).decode(b"\x00\x01\x02")


def test_opus_carries_a_tone_through_twenty_ms_packets() -> None:
    tone = sine(1.0, 48000, frequency=440.0, level=0.3)
    encoder, decoder = encoder_for(OPUS), decoder_for(OPUS)
    out = np.concatenate([decoder.decode(encoder.encode(tone[i : i + 960])) for i in range(0, 48000, 960)])
    assert len(out) == 48000
    settled = out[4800:]  # past the codec's start-up
    spectrum = np.abs(np.fft.rfft(settled.astype(np.float64)))
    assert abs(np.argmax(spectrum) * 48000 / len(settled) - 440.0) < 3.0
    assert np.sqrt(np.mean(settled.astype(np.float64) ** 2)) > 0.15 * 32767 / np.sqrt(2) * 0.5


@pytest.mark.parametrize("payload", [b"", b"\xff\x00garbage", bytes(range(256)) * 8])
def test_opus_garbage_is_a_codec_error(payload: bytes) -> None:
    decoder = decoder_for(OPUS)
    try:
        decoded = decoder.decode(payload)
    except CodecError:
        return
    assert decoded.dtype == np.int16  # libopus may conceal some junk as audio; it must not crash


def test_unsupported_codecs_are_named() -> None:
    with pytest.raises(CodecError, match="unsupported codec G729/8000"):
        decoder_for(CodecSpec("G729", 8000))
    with pytest.raises(CodecError, match="unsupported codec PCMU/16000"):
        encoder_for(CodecSpec("PCMU", 16000))
