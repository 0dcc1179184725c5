from __future__ import annotations

import itertools

import numpy as np
import pytest

from bleepline.audio.resample import StreamResampler, resample
from bleepline.timeline import AudioChunk
from tests.conftest import sine


def _dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (48000, 16000), (16000, 8000), (44100, 8000)])
def test_one_shot_resampling_keeps_duration_and_pitch(src: int, dst: int) -> None:
    out = resample(sine(1.0, src, frequency=1000.0), src, dst)
    assert abs(len(out) - dst) <= 2
    assert _dominant_frequency(out, dst) == pytest.approx(1000.0, abs=2.0)


def test_streaming_in_20ms_chunks_matches_one_shot_and_keeps_the_timeline() -> None:
    tone = sine(1.0, 48000, frequency=700.0)
    stream = StreamResampler(48000, 16000)
    out: list[AudioChunk] = []
    for start in range(0, len(tone), 960):
        chunk = stream.push(AudioChunk(tone[start : start + 960], 48000, start))
        if chunk is not None:
            out.append(chunk)
    tail = stream.flush()
    if tail is not None:
        out.append(tail)
    for before, after in itertools.pairwise(out):
        assert after.start == before.end
    assert out[0].start == 0
    assert np.array_equal(np.concatenate([c.samples for c in out]), resample(tone, 48000, 16000))


def test_stream_that_starts_late_lands_at_the_scaled_position() -> None:
    stream = StreamResampler(8000, 16000)
    first = stream.push(AudioChunk(sine(0.02, 8000), 8000, start=8000))
    assert first is not None
    assert first.start == 16000


def test_gaps_are_filled_with_silence_not_squeezed_out() -> None:
    stream = StreamResampler(8000, 16000)
    pieces = [stream.push(AudioChunk(sine(0.02, 8000), 8000, start)) for start in (0, 800)]
    pieces.append(stream.flush())
    total = sum(len(c) for c in pieces if c is not None)
    assert total == 2 * (800 + 160)


def test_wrong_rate_and_going_back_are_refused() -> None:
    stream = StreamResampler(8000, 16000)
    with pytest.raises(ValueError, match="16000 Hz pushed"):
        stream.push(AudioChunk(sine(0.02, 16000), 16000, 0))
    stream.push(AudioChunk(sine(0.02, 8000), 8000, 160))
    with pytest.raises(ValueError, match="go back"):
        stream.push(AudioChunk(sine(0.02, 8000), 8000, 0))
