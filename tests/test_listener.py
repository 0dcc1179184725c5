"""The listener end to end on real audio: spans where PII was said, and none from silence, noise or music."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest

from bleepline.audio.files import read_audio_chunks
from bleepline.audio.resample import resample
from bleepline.listener import CallListener, Hearing
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.stream import SpanTracker
from bleepline.speech.asr import StreamingRecognizer
from bleepline.timeline import AudioChunk, PiiSpan

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"


@pytest.fixture(scope="module")
def detector() -> SpokenPiiDetector:
    return SpokenPiiDetector()


def listen(chunks: Iterable[AudioChunk], rate: int, detector: SpokenPiiDetector) -> list[PiiSpan]:
    listener = CallListener(rate, StreamingRecognizer(), SpanTracker(detector))
    spans: list[PiiSpan] = []
    end = 0.0
    for chunk in chunks:
        spans += listener.push(chunk).spans
        end = chunk.end / chunk.sample_rate
    spans += listener.end(end).spans
    return spans


def covered(spans: list[PiiSpan], start: float, end: float) -> bool:
    """Whether the spans reported, together, cover ``[start, end]``: the redactor masks each as it comes.

    An open cued value's span runs from the cue; once the value has started it starts with the value, so
    no one span need cover a digit the recognizer missed at the start, but their union does.
    """
    at = start
    for span in sorted(spans, key=lambda s: s.start):
        if span.start <= at < span.end:
            at = span.end
    return at >= end


def packets(samples: np.ndarray, rate: int) -> list[AudioChunk]:
    size = rate // 50
    return [AudioChunk(samples[i : i + size], rate, i) for i in range(0, len(samples), size)]


def test_a_phone_number_said_on_a_call_is_covered_by_a_span(detector: SpokenPiiDetector) -> None:
    truth = json.loads((FIXTURES / "phone_awb_8k.json").read_text())
    (phone,) = truth["pii"]
    spans = listen(read_audio_chunks(FIXTURES / "phone_awb_8k.wav"), 8000, detector)
    for digit in phone["digits"]:
        assert covered(spans, digit["start"], digit["end"]), digit


def test_any_input_rate_gives_spans_on_the_same_timeline(detector: SpokenPiiDetector) -> None:
    truth = json.loads((FIXTURES / "phone_awb_8k.json").read_text())
    (phone,) = truth["pii"]
    call = np.concatenate([c.samples for c in read_audio_chunks(FIXTURES / "phone_awb_8k.wav")])
    spans = listen(packets(resample(call, 8000, 48000), 48000), 48000, detector)
    assert covered(spans, phone["start"], phone["end"])


def test_clipped_audio_is_still_heard(detector: SpokenPiiDetector) -> None:
    truth = json.loads((FIXTURES / "phone_awb_8k.json").read_text())
    (phone,) = truth["pii"]
    call = np.concatenate([c.samples for c in read_audio_chunks(FIXTURES / "phone_awb_8k.wav")])
    clipped = np.clip(call.astype(np.int32) * 12, -32768, 32767).astype(np.int16)
    assert np.mean(np.abs(clipped) == 32767) > 0.01  # really clipped
    spans = listen(packets(clipped, 8000), 8000, detector)
    assert any(s.overlaps(phone["start"], phone["end"]) for s in spans)


def _music(seconds: float, rate: int) -> np.ndarray:
    """Chords with note envelopes at 120 bpm: tonal, rhythmic, loud, and no words."""
    rng = np.random.default_rng(11)
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    beat = 0.5
    for start in np.arange(0, seconds, beat):
        root = 220 * 2 ** (rng.integers(0, 12) / 12)
        mask = (t >= start) & (t < start + beat)
        local = t[mask] - start
        envelope = np.exp(-3 * local)
        for ratio in (1.0, 1.26, 1.5, 2.0):
            out[mask] += envelope * np.sin(2 * np.pi * root * ratio * local)
    peak = float(np.max(np.abs(out)))
    music: np.ndarray = np.round(out / peak * 0.5 * 32767).astype(np.int16)
    return music


def _noise(seconds: float, rate: int, dbfs: float) -> np.ndarray:
    rng = np.random.default_rng(5)
    level = 32767 * 10 ** (dbfs / 20)
    return np.clip(rng.normal(0, level, int(seconds * rate)), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros(8000 * 30, dtype=np.int16),
        lambda: _noise(20, 8000, -30.0),
        lambda: _noise(20, 8000, -15.0),
        lambda: _music(20, 8000),
    ],
    ids=["silence", "noise-30dBFS", "noise-15dBFS", "music"],
)
def test_no_spans_from_audio_without_speech(
    detector: SpokenPiiDetector, make: Callable[[], np.ndarray]
) -> None:
    assert listen(packets(make(), 8000), 8000, detector) == []


def test_a_two_hour_quiet_call_keeps_memory_flat(detector: SpokenPiiDetector) -> None:
    listener = CallListener(8000, StreamingRecognizer(), SpanTracker(detector))
    hiss = _noise(1, 8000, -62.0)
    hearing: Hearing | None = None
    tracemalloc.start()
    try:
        for second in range(2 * 3600):
            hearing = listener.push(AudioChunk(hiss, 8000, second * 8000))
            if second == 600:
                baseline, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert hearing is not None
    assert hearing.spans == ()
    assert hearing.final_until > 7190
    assert peak - baseline < 1_000_000
    assert current - baseline < 200_000
