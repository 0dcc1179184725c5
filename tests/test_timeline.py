from __future__ import annotations

import numpy as np
import pytest

from bleepline.timeline import AudioChunk, samples_per_chunk


def test_chunk_knows_its_place_on_the_timeline() -> None:
    chunk = AudioChunk(np.zeros(160, dtype=np.int16), 8000, start=800)
    assert chunk.end == 960
    assert chunk.start_seconds == pytest.approx(0.1)
    assert chunk.duration == pytest.approx(0.02)
    assert len(chunk) == 160


@pytest.mark.parametrize(
    ("samples", "rate", "start", "error"),
    [
        (np.zeros(160, dtype=np.float32), 8000, 0, TypeError),
        (np.zeros((2, 160), dtype=np.int16), 8000, 0, ValueError),
        (np.zeros(160, dtype=np.int16), 0, 0, ValueError),
        (np.zeros(160, dtype=np.int16), 8000, -1, ValueError),
    ],
)
def test_chunk_rejects_what_is_not_mono_int16_on_the_timeline(
    samples: np.ndarray, rate: int, start: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        AudioChunk(samples, rate, start)


def test_chunk_repr_never_shows_samples() -> None:
    chunk = AudioChunk(np.full(4, 12345, dtype=np.int16), 8000, 0)
    assert "12345" not in repr(chunk)


@pytest.mark.parametrize(("rate", "expected"), [(8000, 160), (16000, 320), (48000, 960)])
def test_twenty_ms_chunks(rate: int, expected: int) -> None:
    assert samples_per_chunk(rate) == expected
