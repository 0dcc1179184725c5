"""The delay line's cost per 20 ms packet (push, clear, release), with and without masking.

Every call's audio passes through it, so it must stay at tens of microseconds per packet.
Run: .venv/bin/python -m pytest bench/bench_delayline.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bleepline.redact.delayline import DelayLine
from bleepline.redact.policy import MaskReason, RedactionPolicy
from bleepline.timeline import AudioChunk

POLICY = RedactionPolicy(delay_s=3.0)
cpu_time = pytest.mark.benchmark(timer=time.process_time, group="delay line: one 20 ms packet")


def packet_loop(rate: int, masked: bool) -> Callable[[], None]:
    size = rate // 50
    line = DelayLine(rate, POLICY)
    audio = np.random.default_rng(0).integers(-8000, 8000, size=size, dtype=np.int16)
    position = [0]

    def one_packet() -> None:
        start = position[0]
        now = (start + size) / rate
        line.push(AudioChunk(audio, rate, start))
        line.clear_until(now - 0.5)
        if masked:  # a span over everything released: the beep path on every packet
            line.mask(now - 4.0, now, MaskReason.PII, "CREDIT_CARD")
        line.release_until(now - POLICY.delay_s)
        position[0] += size

    return one_packet


@cpu_time
@pytest.mark.parametrize("rate", [8000, 48000])
@pytest.mark.parametrize("masked", [False, True], ids=["cleared", "beeped"])
def test_packet(benchmark: BenchmarkFixture, rate: int, masked: bool) -> None:
    benchmark(packet_loop(rate, masked))
