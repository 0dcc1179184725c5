"""The cost of keeping a recording: sealing chunks and the whole write path, per second of audio.

The media plane runs this for every call, so throughput must be in the thousands of audio-seconds per
CPU-second. The bare AEAD over the same bytes is measured in the same run as the floor to compare with.
Run: .venv/bin/python -m pytest bench/bench_recording.py
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bleepline.store import format as fmt
from bleepline.store.keys import Identity
from bleepline.store.recording import RecordingReader, RecordingWriter
from bleepline.timeline import AudioChunk

RATE = 8000  # telephone audio, the common case on the relay
SECOND = np.random.default_rng(0).integers(-32768, 32768, size=RATE, dtype=np.int16)
PACKETS = [AudioChunk(SECOND[i : i + 160], RATE, i) for i in range(0, RATE, 160)]

cpu_time = pytest.mark.benchmark(timer=time.process_time, min_rounds=50)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[RecordingWriter]:
    w = RecordingWriter(tmp_path / "bench.bleep", [Identity.generate().recipient], sample_rate=RATE)
    yield w
    w.close()


@cpu_time
def test_bare_aead_one_second(benchmark: BenchmarkFixture) -> None:
    """Baseline: ChaCha20-Poly1305 over one second of 8 kHz PCM, nothing else."""
    cipher = fmt.payload_cipher(bytes(32), bytes(16))
    plaintext = SECOND.tobytes()
    benchmark(cipher.encrypt, fmt.chunk_nonce(0, False), plaintext, None)


@cpu_time
def test_seal_one_chunk(benchmark: BenchmarkFixture, writer: RecordingWriter) -> None:
    """One one-second chunk written: copy, seal, frame, write and flush to the file."""
    clock = iter(range(0, 10**9, RATE))
    benchmark(lambda: writer.write(AudioChunk(SECOND, RATE, next(clock))))


@cpu_time
def test_write_path_per_audio_second(benchmark: BenchmarkFixture, writer: RecordingWriter) -> None:
    """One second of audio arriving as 50 packets of 20 ms, as on a live call."""
    offset = iter(range(0, 10**9, RATE))

    def one_second() -> None:
        base = next(offset)
        for packet in PACKETS:
            writer.write(AudioChunk(packet.samples, RATE, base + packet.start))

    benchmark(one_second)


@cpu_time
def test_read_path_per_audio_second(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    """Verify and decrypt one minute of recording; reported per minute (divide by 60)."""
    identity = Identity.generate()
    path = tmp_path / "minute.bleep"
    with RecordingWriter(path, [identity.recipient], sample_rate=RATE) as w:
        for second in range(60):
            w.write(AudioChunk(SECOND, RATE, second * RATE))

    def read_minute() -> int:
        with RecordingReader(path) as reader:
            reader.unlock(identity)
            return sum(len(c) for c in reader.chunks())

    assert benchmark(read_minute) == 60 * RATE
