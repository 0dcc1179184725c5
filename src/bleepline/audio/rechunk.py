"""Cutting a stream of sample blocks of any size into chunks of one fixed size on the timeline.

Decoders and resamplers hand out blocks of whatever size suits them; the call path wants 20 ms chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bleepline.timeline import AudioChunk


class Rechunker:
    """Buffers blocks and hands out ``chunk_samples``-long chunks numbered from ``start``."""

    def __init__(self, sample_rate: int, chunk_samples: int, start: int = 0) -> None:
        if chunk_samples <= 0:
            raise ValueError("chunk_samples must be positive")
        self.sample_rate = sample_rate
        self.chunk_samples = chunk_samples
        self.position = start  # timeline index of the next sample handed out
        self._pending: list[np.ndarray] = []
        self._pending_len = 0

    def push(self, samples: np.ndarray) -> Iterator[AudioChunk]:
        if len(samples) == 0:
            return
        self._pending.append(samples)
        self._pending_len += len(samples)
        if self._pending_len < self.chunk_samples:
            return
        block = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        whole = len(block) - len(block) % self.chunk_samples
        for offset in range(0, whole, self.chunk_samples):
            yield self._chunk(block[offset : offset + self.chunk_samples])
        rest = block[whole:]
        self._pending = [rest] if len(rest) else []
        self._pending_len = len(rest)

    def flush(self) -> Iterator[AudioChunk]:
        """Hand out what is left as one shorter chunk."""
        if self._pending_len:
            block = np.concatenate(self._pending)
            self._pending = []
            self._pending_len = 0
            yield self._chunk(block)

    def _chunk(self, samples: np.ndarray) -> AudioChunk:
        chunk = AudioChunk(np.ascontiguousarray(samples, dtype=np.int16), self.sample_rate, self.position)
        self.position += len(samples)
        return chunk
