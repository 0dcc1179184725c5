"""The hot-path stages the other bench files leave out, and the baselines their groups lack.

Already measured elsewhere (not repeated here): µ-law decode, Opus decode, 8→16 kHz resampling, VAD and
keypad (DTMF) detection per 20 ms packet in bench_media.py; the delay line's release per packet, cleared
and masked, in bench_delayline.py; chunk sealing in bench_recording.py. This file adds A-law decode, the
PII detector per utterance, and a baseline in each group so a stage reads as a ratio to it, which is
steadier than the absolute figures on a shared machine.

Stages well under a millisecond use pytest-benchmark's default timer (wall clock, finer grained and
cheaper to read than process time). A baseline that joins another file's group uses that group's timer,
since a ratio only means something when both sides are read off the same clock.

Each benchmark also checks its stage's output, so the quick CI run (``--benchmark-disable``: every
benchmark once, untimed) still catches a stage that broke.
Run: .venv/bin/python -m pytest bench/bench_hot_path.py
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bleepline.audio.codecs import PCMA, PCMU, decoder_for, encoder_for
from bleepline.pii import analyzer as presidio
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.spoken import normalize
from bleepline.timeline import AudioChunk, Samples, Word

RNG = np.random.default_rng(0)
#: One 20 ms packet of speech-like noise at 8 kHz, and the same packet as G.711 payloads (160 bytes).
PACKET_8K: Samples = RNG.normal(0, 3000, 160).astype(np.int16)
ULAW_PAYLOAD = encoder_for(PCMU).encode(PACKET_8K)
ALAW_PAYLOAD = encoder_for(PCMA).encode(PACKET_8K)

G711 = "hot path: G.711 decode, one 20 ms packet (160 bytes)"
#: bench_media.py's and bench_delayline.py's groups, and the timer both use.
MEDIA = "media plane: one 20 ms packet"
DELAY = "delay line: one 20 ms packet"
PII = "pii: one utterance (15 words, a card number)"

#: Loaded at import, once for the module: spaCy and Presidio take about a second to load, which no
#: timed round should pay and every benchmark here would otherwise repeat.
DETECTOR = SpokenPiiDetector()
#: About five seconds of a caller giving a card number, as the recognizer hands it over: final words,
#: 0.4 s apart; the four digit groups are words 6 to 9.
UTTERANCE = "okay so my card number is 4111 1111 1111 1111 and it expires next june"
WORDS = [Word(k * 0.4, k * 0.4 + 0.3, text, final=True) for k, text in enumerate(UTTERANCE.split(" "))]
#: A second of silence heard after the last word, so the detector can tell the number has ended.
HEARD_UNTIL = WORDS[-1].end + 1.0


def _widen(payload: bytes) -> Samples:
    """The floor of any 160 bytes → 160 samples stage: read the bytes and widen them to int16."""
    return np.frombuffer(payload, dtype=np.uint8).astype(np.int16)


def _is_packet(samples: object, count: int = 160) -> bool:
    return isinstance(samples, np.ndarray) and samples.dtype == np.int16 and samples.shape == (count,)


# --- G.711 decode: A-law (µ-law is in bench_media.py) against the bare copy of the same bytes ---


@pytest.mark.benchmark(group=G711)
def test_g711_baseline_copy(benchmark: BenchmarkFixture) -> None:
    assert _is_packet(benchmark(_widen, ALAW_PAYLOAD))


@pytest.mark.benchmark(group=G711)
def test_pcma_decode(benchmark: BenchmarkFixture) -> None:
    decoded = benchmark(decoder_for(PCMA).decode, ALAW_PAYLOAD)
    assert _is_packet(decoded)
    # A-law keeps about 12 bits of a 16-bit sample: the packet comes back close, not bit for bit.
    assert np.corrcoef(decoded, PACKET_8K)[0, 1] > 0.999


# --- The media plane group (bench_media.py: decode, resample, VAD, keypad) had no baseline ---


@pytest.mark.benchmark(group=MEDIA, timer=time.process_time)
def test_media_baseline_copy(benchmark: BenchmarkFixture) -> None:
    """The same bytes copy, on bench_media.py's clock, for the ratios in its group."""
    assert _is_packet(benchmark(_widen, ULAW_PAYLOAD))


# --- The delay line group (bench_delayline.py) had no baseline either ---


@pytest.mark.benchmark(group=DELAY, timer=time.process_time)
@pytest.mark.parametrize("rate", [8000, 48000])
def test_delay_baseline_copy_into_chunk(benchmark: BenchmarkFixture, rate: int) -> None:
    """The least a line holding audio can do per packet: copy the samples and place them on the timeline."""
    size = rate // 50
    audio = RNG.integers(-8000, 8000, size=size, dtype=np.int16)
    chunk = benchmark(lambda: AudioChunk(audio.copy(), rate, 0))
    assert isinstance(chunk, AudioChunk)
    assert _is_packet(chunk.samples, size)


# --- The PII detector per utterance (milliseconds: CPU time), against Presidio alone on the same text ---


@pytest.mark.benchmark(group=PII, timer=time.process_time)
def test_pii_baseline_presidio_only(benchmark: BenchmarkFixture) -> None:
    """Presidio (spaCy's NER and its recognizers) over the utterance's text, without the spoken rules."""
    text = normalize(WORDS, DETECTOR.options.max_gap_s).ner_text
    engine = presidio.shared_analyzer()
    entities = list(presidio.ANALYZED_ENTITIES)
    threshold = DETECTOR.options.min_presidio_score

    def analyze() -> list[object]:
        return list(engine.analyze(text=text, language="en", entities=entities, score_threshold=threshold))

    results = benchmark(analyze)
    assert all(getattr(result, "entity_type", None) in entities for result in results)


@pytest.mark.benchmark(group=PII, timer=time.process_time)
def test_pii_detect_utterance(benchmark: BenchmarkFixture) -> None:
    spans = benchmark(DETECTOR.detect, WORDS, heard_until=HEARD_UNTIL)
    cards = [span for span in spans if span.entity == "CREDIT_CARD"]
    assert len(cards) == 1
    # The span covers all four digit groups, and is settled: every word final, a pause after it.
    assert cards[0].start <= WORDS[6].start
    assert WORDS[9].end <= cards[0].end
    assert cards[0].final
