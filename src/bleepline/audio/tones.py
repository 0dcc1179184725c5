"""Tones: the beep that masks personal data, generated phase-continuously across chunks.

The beep fades in and out so masking does not click; a continuous generator lets a long masked stretch
be produced chunk by chunk and still sound like one tone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bleepline.timeline import Samples


@dataclass(frozen=True)
class BeepStyle:
    """How a beep sounds: a sine at ``frequency`` Hz, ``level_dbfs`` peak, ``fade_ms`` ramps."""

    frequency: float = 1000.0
    level_dbfs: float = -12.0
    fade_ms: float = 5.0

    def __post_init__(self) -> None:
        if not 20.0 <= self.frequency <= 20_000.0:
            raise ValueError(f"beep frequency must be 20..20000 Hz, got {self.frequency}")
        if self.level_dbfs > 0.0:
            raise ValueError(f"beep level must be <= 0 dBFS, got {self.level_dbfs}")
        if self.fade_ms < 0.0:
            raise ValueError(f"beep fade must be >= 0 ms, got {self.fade_ms}")

    @property
    def amplitude(self) -> float:
        return float(32767.0 * 10.0 ** (self.level_dbfs / 20.0))


def tone(start: int, count: int, sample_rate: int, style: BeepStyle = BeepStyle()) -> Samples:
    """``count`` samples of the beep's sine, phase-locked to the timeline at sample ``start``.

    Because the phase depends only on the timeline position, consecutive calls join without a click.
    """
    index = np.arange(start, start + count, dtype=np.float64)
    wave = style.amplitude * np.sin(2.0 * np.pi * style.frequency * index / sample_rate)
    return np.round(wave).astype(np.int16)


def beep(count: int, sample_rate: int, style: BeepStyle = BeepStyle()) -> Samples:
    """A whole beep of ``count`` samples with fades at both ends."""
    samples = tone(0, count, sample_rate, style).astype(np.float64)
    samples *= fade_envelope(count, sample_rate, style.fade_ms)
    return np.round(samples).astype(np.int16)


def fade_envelope(count: int, sample_rate: int, fade_ms: float) -> np.ndarray:
    """Gain from 0 to 1 and back: raised-cosine ramps of ``fade_ms`` (shortened for short beeps)."""
    ramp = min(int(sample_rate * fade_ms / 1000.0), count // 2)
    envelope = np.ones(count, dtype=np.float64)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        envelope[:ramp] = rise
        envelope[count - ramp :] = rise[::-1]
    return envelope
