"""Frame-by-frame comparison of redacted audio with its reference, for the end-to-end tests (real peers,
real browsers, WHIP): which frames hold speech, and how far the output strays from the reference in each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.02
SPEECH_DBFS = -45.0


@dataclass
class Frames:
    speech: np.ndarray  # the reference has speech in the frame
    # rms(output - reference) / rms(reference), per frame; NaN where the output is NaN (has nothing)
    error: np.ndarray

    @classmethod
    def compare(cls, reference_: np.ndarray, output: np.ndarray, rate: int) -> Frames:
        size = int(rate * FRAME_S)
        count = min(len(reference_), len(output)) // size
        a = reference_[: count * size].reshape(count, size).astype(np.float64)
        b = output[: count * size].reshape(count, size).astype(np.float64)
        rms = np.sqrt(np.mean(a * a, axis=1))
        speech = 20 * np.log10(np.maximum(rms, 1e-9) / 32768) > SPEECH_DBFS
        error = np.sqrt(np.mean((b - a) ** 2, axis=1)) / np.maximum(rms, 1e-9)
        return cls(speech, error)

    def frames(self, start: float, end: float) -> slice:
        return slice(int(start / FRAME_S), int(np.ceil(end / FRAME_S)))
