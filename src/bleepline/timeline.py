"""The call timeline: the value types every layer shares.

A call has one clock, counted in samples from its first sample. Every chunk says where it sits on that
clock, so gaps are filled rather than squeezed out and all times agree to the sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.int16]

#: The length of one chunk on the live path, as on an RTP packet or a WebRTC frame.
CHUNK_MS = 20


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """Mono 16-bit samples placed on the call's clock.

    ``start`` is the index of the first sample on the call timeline at ``sample_rate``.
    """

    samples: Samples
    sample_rate: int
    start: int

    def __post_init__(self) -> None:
        if not isinstance(self.samples, np.ndarray) or self.samples.dtype != np.int16:
            raise TypeError("AudioChunk samples must be a numpy int16 array")
        if self.samples.ndim != 1:
            raise ValueError(f"AudioChunk samples must be mono (1-D), got shape {self.samples.shape}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.sample_rate}")
        if self.start < 0:
            raise ValueError(f"chunk start must be >= 0, got {self.start}")

    @property
    def end(self) -> int:
        """Index one past the last sample."""
        return self.start + len(self.samples)

    @property
    def start_seconds(self) -> float:
        return self.start / self.sample_rate

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        # Never show samples: a chunk's repr can end up in a log or an exception.
        return f"AudioChunk(start={self.start}, samples={len(self.samples)}, rate={self.sample_rate})"


def samples_per_chunk(sample_rate: int, chunk_ms: int = CHUNK_MS) -> int:
    """Samples in one chunk of ``chunk_ms`` milliseconds at ``sample_rate``."""
    count = sample_rate * chunk_ms // 1000
    if count <= 0:
        raise ValueError(f"a {chunk_ms} ms chunk at {sample_rate} Hz holds no samples")
    return count


@dataclass(frozen=True)
class Word:
    """A recognised word on the call timeline (seconds from the call's first sample).

    ``final`` words will not change; tentative ones may be revised or dropped by a later hypothesis.
    ``text`` is raw speech content: it must never reach a log, a metric or an exception message.
    """

    start: float
    end: float
    text: str
    probability: float = 1.0
    final: bool = False

    def __repr__(self) -> str:
        # The text may be personal data: keep it out of reprs that end up in logs and tracebacks.
        state = "final" if self.final else "tentative"
        return f"Word({self.start:.2f}-{self.end:.2f}, {len(self.text)} chars, {state})"


@dataclass(frozen=True)
class PiiSpan:
    """A stretch of the call timeline (seconds) that holds personal data of one entity type.

    ``source`` says how it was found: ``asr`` (the words themselves), ``cue`` (a phrase such as "my card
    number is" announced it), ``dtmf`` (keypad tones). A span that is not ``final`` may still grow or be
    revised as tentative words change; the redactor masks it all the same, provisionally (see
    ``CallSession._settle``).
    """

    start: float
    end: float
    entity: str
    score: float
    final: bool = False
    source: str = "asr"

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"span ends ({self.end}) before it starts ({self.start})")

    def overlaps(self, start: float, end: float) -> bool:
        return self.start < end and start < self.end
