"""The media plane's hot path, per 20 ms packet: decode, resample, VAD, keypad detection, encode.

Every call pays these on every packet, so each should cost microseconds to tens of microseconds.
Run: .venv/bin/python -m pytest bench/bench_media.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bleepline.audio.codecs import OPUS, PCMU, decoder_for, encoder_for
from bleepline.audio.dtmf import DtmfDetector
from bleepline.audio.files import read_audio_chunks
from bleepline.audio.resample import StreamResampler
from bleepline.speech.vad import VoiceActivityDetector
from bleepline.timeline import AudioChunk

cpu_time = pytest.mark.benchmark(timer=time.process_time, group="media plane: one 20 ms packet")
RNG = np.random.default_rng(0)
PACKET_8K = (RNG.normal(0, 3000, 160)).astype(np.int16)
PACKET_48K = (RNG.normal(0, 3000, 960)).astype(np.int16)
#: A recorded call's speech and pauses, in 20 ms packets: what the keypad detector meets most of the time.
#: The noise packet above is its costliest audio without a key (loud, and every window analysed).
SPEECH_FILE = Path(__file__).parents[1] / "fixtures" / "audio" / "no_pii_awb_8k.wav"
SPEECH_8K = np.concatenate([chunk.samples for chunk in read_audio_chunks(SPEECH_FILE)])
SPEECH_PACKETS = [SPEECH_8K[i : i + 160] for i in range(0, len(SPEECH_8K) - 159, 160)]


def _on_timeline(step: Callable[[AudioChunk], object], samples: np.ndarray, rate: int) -> Callable[[], None]:
    position = [0]

    def one_packet() -> None:
        step(AudioChunk(samples, rate, position[0]))
        position[0] += len(samples)

    return one_packet


@cpu_time
def test_pcmu_decode(benchmark: BenchmarkFixture) -> None:
    payload = encoder_for(PCMU).encode(PACKET_8K)
    benchmark(decoder_for(PCMU).decode, payload)


@cpu_time
def test_pcmu_encode(benchmark: BenchmarkFixture) -> None:
    benchmark(encoder_for(PCMU).encode, PACKET_8K)


@cpu_time
def test_opus_decode(benchmark: BenchmarkFixture) -> None:
    encoder = encoder_for(OPUS)
    payloads = [encoder.encode(PACKET_48K) for _ in range(50)]
    decoder = decoder_for(OPUS)
    index = [0]

    def one_packet() -> None:
        decoder.decode(payloads[index[0] % 50])
        index[0] += 1

    benchmark(one_packet)


@cpu_time
def test_opus_encode(benchmark: BenchmarkFixture) -> None:
    benchmark(encoder_for(OPUS).encode, PACKET_48K)


@cpu_time
def test_resample_8k_to_16k(benchmark: BenchmarkFixture) -> None:
    benchmark(_on_timeline(StreamResampler(8000, 16000).push, PACKET_8K, 8000))


@cpu_time
def test_vad(benchmark: BenchmarkFixture) -> None:
    benchmark(_on_timeline(VoiceActivityDetector(8000).push, PACKET_8K, 8000))


@cpu_time
def test_dtmf_detection(benchmark: BenchmarkFixture) -> None:
    benchmark(_on_timeline(DtmfDetector(8000).push, PACKET_8K, 8000))


@cpu_time
def test_dtmf_detection_silence(benchmark: BenchmarkFixture) -> None:
    benchmark(_on_timeline(DtmfDetector(8000).push, np.zeros(160, dtype=np.int16), 8000))


@cpu_time
def test_dtmf_detection_speech(benchmark: BenchmarkFixture) -> None:
    """The recorded call's packets in turn, over and over, on one rising timeline."""
    detector = DtmfDetector(8000)
    position = [0]

    def one_packet() -> None:
        packet = SPEECH_PACKETS[position[0] // 160 % len(SPEECH_PACKETS)]
        detector.push(AudioChunk(packet, 8000, position[0]))
        position[0] += 160

    benchmark(one_packet)
    assert detector.stats.tones == 0  # speech: no key presses
