"""Streaming recognition cost against the two baselines a user would otherwise build, in one run.

- ``streaming``: bleepline's StreamingRecognizer, 20 ms chunks in, a decode step per second of audio.
- ``streaming_at_pauses``: the same, driven as the product's listener drives it: the voice activity
  detector's pauses flush it (words before a pause final at once, the window trimmed). VAD time included.
- ``offline``: faster-whisper ``transcribe()`` over the whole file once (beam 1, temperature 0, word
  timestamps): the floor, but useless live.
- ``naive``: faster-whisper ``transcribe()`` on a rolling window (up to 12 s) every second, as a naive live
  transcriber would: every call pads to 30 s.

All on Whisper tiny.en int8 with one CPU thread, timed in CPU seconds (process time). Each result's
``extra_info`` carries CPU-s per audio-s; the summary at the end prints them and the ratios.
Run: .venv/bin/python -m pytest bench/bench_asr.py
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bleepline.audio.files import read_audio_chunks
from bleepline.audio.resample import resample
from bleepline.speech.asr import StreamingRecognizer
from bleepline.speech.models import load_whisper, resolve_model
from bleepline.speech.vad import VoiceActivityDetector
from bleepline.timeline import AudioChunk

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
#: Three calls back to back (about 52 s at 8 kHz): one short call would flatter the offline baseline,
#: which pays for a whole 30 s window once however little of it holds speech.
CALLS = ("card_kal_8k.wav", "phone_awb_8k.wav", "account_pin_rms_8k.wav")
CALL_AUDIO = np.concatenate([c.samples for name in CALLS for c in read_audio_chunks(FIXTURES / name)])
CHUNKS: list[AudioChunk] = [
    AudioChunk(CALL_AUDIO[i : i + 160], 8000, i) for i in range(0, len(CALL_AUDIO), 160)
]
AUDIO_SECONDS = len(CALL_AUDIO) / 8000
AUDIO_16K = resample(CALL_AUDIO, 8000, 16000).astype(np.float32) / 32768
RESULTS: dict[str, float] = {}

cpu_time = pytest.mark.benchmark(timer=time.process_time, group="asr: CPU seconds per call")


def _record(benchmark: BenchmarkFixture, name: str) -> None:
    if benchmark.disabled:  # --benchmark-disable (CI's quick mode): each ran once, untimed
        return
    assert benchmark.stats is not None
    per_audio_second = benchmark.stats.stats.median / AUDIO_SECONDS
    benchmark.extra_info["audio_seconds"] = AUDIO_SECONDS
    benchmark.extra_info["cpu_s_per_audio_s"] = per_audio_second
    RESULTS[name] = per_audio_second


@pytest.fixture(scope="module")
def whisper() -> Any:
    return load_whisper(resolve_model())


def _stream(whisper: Any, at_pauses: bool) -> int:
    """The fixture through a StreamingRecognizer in 20 ms chunks; with ``at_pauses``, flushed at the VAD's
    pauses as CallListener does. Returns the final words' count."""
    recognizer = StreamingRecognizer(whisper=whisper)
    vad = VoiceActivityDetector(8000) if at_pauses else None
    words = 0
    for chunk in CHUNKS:
        regions = vad.push(chunk) if vad is not None else []
        recognizer.push(chunk)
        if vad is not None and regions and not vad.in_speech:
            recognizer.flush()
        words += sum(len(u.final) for u in recognizer.updates())
    recognizer.end()
    return words + sum(len(u.final) for u in recognizer.updates())


@cpu_time
@pytest.mark.parametrize("at_pauses", [False, True], ids=["alone", "at_pauses"])
def test_streaming(benchmark: BenchmarkFixture, whisper: Any, at_pauses: bool) -> None:
    assert (
        benchmark.pedantic(  # type: ignore[no-untyped-call]
            _stream, args=(whisper, at_pauses), rounds=3, iterations=1, warmup_rounds=1
        )
        > 10
    )
    _record(benchmark, "streaming_at_pauses" if at_pauses else "streaming")


@cpu_time
def test_offline_whole_file(benchmark: BenchmarkFixture, whisper: Any) -> None:
    def run() -> int:
        segments, _ = whisper.transcribe(
            AUDIO_16K,
            language="en",
            beam_size=1,
            temperature=0.0,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        return sum(len(s.words or []) for s in segments)

    assert (
        benchmark.pedantic(  # type: ignore[no-untyped-call]
            run, rounds=3, iterations=1, warmup_rounds=1
        )
        > 10
    )
    _record(benchmark, "offline")


@cpu_time
def test_naive_rolling_window(benchmark: BenchmarkFixture, whisper: Any) -> None:
    def run() -> int:
        words = 0
        for end in range(16000, len(AUDIO_16K) + 16000, 16000):
            window = AUDIO_16K[max(0, end - 12 * 16000) : end]
            segments, _ = whisper.transcribe(
                window,
                language="en",
                beam_size=1,
                temperature=0.0,
                word_timestamps=True,
                condition_on_previous_text=False,
            )
            words = sum(len(s.words or []) for s in segments)
        return words

    benchmark.pedantic(  # type: ignore[no-untyped-call]
        run, rounds=2, iterations=1
    )
    _record(benchmark, "naive")


def test_summary(request: pytest.FixtureRequest) -> None:
    """Prints the figures and ratios (runs last; fails only if a benchmark above did not run)."""
    if request.config.getoption("benchmark_disable"):
        pytest.skip("benchmarks ran untimed (--benchmark-disable): no figures to summarise")
    assert set(RESULTS) == {"streaming", "streaming_at_pauses", "offline", "naive"}
    streaming = RESULTS["streaming"]
    print(f"\nCPU-s per audio-s on {' + '.join(CALLS)} ({AUDIO_SECONDS:.1f} s):")
    for name, value in RESULTS.items():
        print(f"  {name:20s} {value:.3f}")
    print(f"  streaming / offline = {streaming / RESULTS['offline']:.2f}")
    print(f"  streaming_at_pauses / offline = {RESULTS['streaming_at_pauses'] / RESULTS['offline']:.2f}")
    print(f"  naive / streaming   = {RESULTS['naive'] / streaming:.2f}")
