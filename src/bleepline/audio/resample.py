"""Sample-rate conversion on the call timeline, with PyAV's resampler (FFmpeg libswresample).

A stream resampler keeps its own output position, so the output timeline is the input timeline scaled
by the rate ratio with no drift, however the input is cut.
"""

from __future__ import annotations

import av
import numpy as np

from bleepline.timeline import AudioChunk, Samples


class StreamResampler:
    """Converts a stream of chunks from one rate to another, keeping the timeline.

    Output lags input by the filter's delay (a few ms); ``flush()`` returns the tail at the end.
    Input chunks must be contiguous; a gap is filled with silence before resampling.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
        self._next_in: int | None = None
        self._next_out: int | None = None

    def push(self, chunk: AudioChunk) -> AudioChunk | None:
        """Resample one chunk; returns what the resampler released (None while it fills up)."""
        if chunk.sample_rate != self.from_rate:
            raise ValueError(f"chunk at {chunk.sample_rate} Hz pushed to a {self.from_rate} Hz resampler")
        if self._next_in is None:
            self._next_in = chunk.start
            self._next_out = chunk.start * self.to_rate // self.from_rate
        if chunk.start < self._next_in:
            raise ValueError("chunks must not go back on the timeline")
        samples = chunk.samples
        if chunk.start > self._next_in:
            gap = np.zeros(chunk.start - self._next_in, dtype=np.int16)
            samples = np.concatenate([gap, samples])
        self._next_in = chunk.end
        return self._emit(self._run(samples))

    def flush(self) -> AudioChunk | None:
        """Release the samples still held in the filter at the end of the stream."""
        return self._emit(_concat(self._resampler.resample(None)))

    def _run(self, samples: Samples) -> Samples:
        if len(samples) == 0:
            return np.zeros(0, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.from_rate
        return _concat(self._resampler.resample(frame))

    def _emit(self, samples: Samples) -> AudioChunk | None:
        if len(samples) == 0 or self._next_out is None:
            return None
        chunk = AudioChunk(samples, self.to_rate, self._next_out)
        self._next_out += len(samples)
        return chunk


def _concat(frames: list[av.AudioFrame]) -> Samples:
    if not frames:
        return np.zeros(0, dtype=np.int16)
    parts = [np.asarray(f.to_ndarray(), dtype=np.int16).reshape(-1) for f in frames]
    return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """Resample a whole block of mono int16 samples in one go."""
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.int16).copy()
    stream = StreamResampler(from_rate, to_rate)
    head = stream.push(AudioChunk(np.asarray(samples, dtype=np.int16), from_rate, 0))
    tail = stream.flush()
    parts = [c.samples for c in (head, tail) if c is not None]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
