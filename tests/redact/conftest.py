"""Helpers that drive a delay line on a virtual clock and check what comes out, in a few lines per test."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from bleepline.audio.tones import tone
from bleepline.redact.delayline import DelayLine
from bleepline.redact.policy import RedactionPolicy
from bleepline.timeline import AudioChunk, Samples

RATE = 8000
PACKET = 160  # 20 ms at 8 kHz
#: Loud enough that an original sample can never be mistaken for the beep (peak 8206 at -12 dBFS) or zero.
LOUD = 9000


def loud_noise(samples: int, seed: int = 0) -> Samples:
    """Random samples whose magnitude is at least ``LOUD``: any original sample that survives shows."""
    rng = np.random.default_rng(seed)
    magnitude = rng.integers(LOUD, 32768, size=samples, dtype=np.int32)
    sign = rng.integers(0, 2, size=samples, dtype=np.int32) * 2 - 1
    samples_: Samples = (magnitude * sign).astype(np.int16)
    return samples_


def beep_at(start: int, end: int, policy: RedactionPolicy) -> Samples:
    """The beep the delay line must put on ``[start, end)`` of the timeline."""
    return tone(start, end - start, RATE, policy.beep)


def seconds(sample: int) -> float:
    return sample / RATE


def joined(chunks: Iterable[AudioChunk]) -> Samples:
    """The released chunks as one array, checking they tile the timeline from 0 with no gap or overlap."""
    position = 0
    parts = []
    for chunk in chunks:
        assert chunk.start == position, f"chunk at {chunk.start}, expected {position}"
        assert chunk.sample_rate == RATE
        position = chunk.end
        parts.append(chunk.samples)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def stream(
    line: DelayLine,
    audio: Samples,
    *,
    packet: int = PACKET,
    cleared: Callable[[float], float | None] = lambda now: now,
    each: Callable[[DelayLine, float], None] | None = None,
) -> Samples:
    """Feed ``audio`` in packets as a live call would, then drain; return everything released.

    After each packet (``now`` = its end): ``each(line, now)`` (marks, say), ``clear_until(cleared(now))``
    unless that is None (a stalled recognizer), and release up to ``now - delay``.
    """
    released: list[AudioChunk] = []
    for start in range(0, len(audio), packet):
        piece = audio[start : start + packet]
        line.push(AudioChunk(piece, RATE, start))
        now = seconds(start + len(piece))
        if each is not None:
            each(line, now)
        until = cleared(now)
        if until is not None:
            line.clear_until(until)
        released += line.release_until(now - line.policy.delay_s)
    released += line.drain()
    return joined(released)


def max_step(samples: Samples) -> int:
    return int(np.max(np.abs(np.diff(samples.astype(np.int32))))) if len(samples) > 1 else 0
