from __future__ import annotations

import functools
import itertools
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bleepline.audio.files import read_audio_chunks
from bleepline.audio.resample import resample
from bleepline.speech.vad import SpeechRegion, VadOptions, VoiceActivityDetector
from bleepline.timeline import AudioChunk, Samples

FIXTURE = Path(__file__).parents[2] / "fixtures" / "audio" / "welcome_8k.wav"
RATE = 8000
DEFAULTS = VadOptions()
PADDING = DEFAULTS.padding_ms / 1000


# ---- generated audio ------------------------------------------------------------------------------------


def white_noise(seconds: float, rate: int, dbfs: float, seed: int = 0) -> Samples:
    """Gaussian white noise whose RMS is ``dbfs`` (dB re a full-scale square wave)."""
    rms = 32768 * 10 ** (dbfs / 20)
    noise = np.random.default_rng(seed).standard_normal(round(seconds * rate)) * rms
    return np.clip(np.round(noise), -32768, 32767).astype(np.int16)


def tone(seconds: float, rate: int, dbfs: float = -20.0, frequency: float = 1000.0) -> Samples:
    amplitude = 32768 * 10 ** (dbfs / 20) * 2**0.5
    t = np.arange(round(seconds * rate)) / rate
    wave: Samples = np.round(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return wave


def silence(seconds: float, rate: int = RATE) -> Samples:
    return np.zeros(round(seconds * rate), dtype=np.int16)


def mix(a: Samples, b: Samples) -> Samples:
    both: Samples = np.clip(a.astype(np.int32) + b, -32768, 32767).astype(np.int16)
    return both


@functools.cache
def welcome() -> Samples:
    """The TTS fixture: 8.1 s of speech at 8 kHz with short silences at both ends."""
    samples = np.concatenate([c.samples for c in read_audio_chunks(FIXTURE)])
    samples.flags.writeable = False
    return samples


def speech_extent(samples: Samples, rate: int) -> tuple[float, float]:
    """First and last 10 ms of ``samples`` within 40 dB of the loudest: where the speech truly is."""
    window = rate // 100
    frames = samples[: len(samples) // window * window].reshape(-1, window).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    loud = np.flatnonzero(level >= level.max() - 40)
    return loud[0] * window / rate, (loud[-1] + 1) * window / rate


# ---- driving the detector -------------------------------------------------------------------------------


def chunks(samples: Samples, rate: int, size: int, start: int = 0) -> Iterator[AudioChunk]:
    for offset in range(0, len(samples), size):
        yield AudioChunk(samples[offset : offset + size], rate, start + offset)


def detect(
    samples: Samples,
    rate: int = RATE,
    options: VadOptions = DEFAULTS,
    chunk_samples: int | None = None,
) -> list[SpeechRegion]:
    """All regions of ``samples`` pushed in chunks (20 ms unless told) and flushed."""
    return run(chunks(samples, rate, chunk_samples or rate // 50), rate, options)[0]


def run(
    pieces: Iterable[AudioChunk], rate: int = RATE, options: VadOptions = DEFAULTS
) -> tuple[list[SpeechRegion], VoiceActivityDetector]:
    vad = VoiceActivityDetector(rate, options)
    regions: list[SpeechRegion] = []
    for chunk in pieces:
        regions += vad.push(chunk)
    regions += vad.flush()
    return regions, vad


def covers(regions: list[SpeechRegion], start: float, end: float) -> bool:
    return any(r.start <= start and end <= r.end for r in regions)


# ---- silence and noise are not speech -------------------------------------------------------------------


def test_digital_silence_gives_no_regions_and_is_decided_as_it_arrives() -> None:
    vad = VoiceActivityDetector(RATE)
    for chunk in chunks(silence(5.0), RATE, 160):
        assert vad.push(chunk) == []
        assert not vad.in_speech
    # Only the last padding is held back: it could still become the leading padding of a region.
    assert vad.decided_until == pytest.approx(5.0 - PADDING)
    assert vad.flush() == []
    assert vad.decided_until == 5.0
    assert vad.stats.speech_frames == 0


@pytest.mark.parametrize("dbfs", [-40.0, -30.0, -20.0])
@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_steady_white_noise_gives_no_regions(dbfs: float, rate: int) -> None:
    regions, vad = run(chunks(white_noise(6.0, rate, dbfs, seed=1), rate, rate // 50), rate)
    assert regions == []
    assert vad.stats.speech_frames == 0


def test_the_energy_gate_is_what_keeps_loud_noise_out() -> None:
    noise = white_noise(6.0, RATE, -20.0, seed=2)
    ungated, vad = run(chunks(noise, RATE, 160), options=VadOptions(energy_gate_db=0.0))
    assert ungated, "webrtcvad alone should call -20 dBFS white noise speech (FIELD-NOTES)"
    gated, vad = run(chunks(noise, RATE, 160))
    assert gated == []
    assert vad.stats.gated_frames > vad.stats.frames // 2


def test_noise_that_starts_after_silence_is_speech_for_at_most_one_noise_window() -> None:
    # Nothing tells new steady noise from a voice at first; the floor catches up within its window.
    audio = np.concatenate([silence(2.0), white_noise(10.0, RATE, -20.0, seed=6)])
    regions = detect(audio)
    window = DEFAULTS.noise_window_ms / 1000
    assert len(regions) == 1
    assert regions[0].start == pytest.approx(2.0 - PADDING)
    assert regions[0].end <= 2.0 + window + PADDING


def test_frames_under_the_absolute_floor_are_never_speech() -> None:
    # A burst webrtcvad calls speech, far above a silent floor: only its level keeps it out.
    burst = np.concatenate([silence(1.0), tone(0.5, RATE, dbfs=-20.0), silence(1.0)])
    assert len(detect(burst)) == 1
    assert detect(burst, options=VadOptions(min_level_dbfs=-15.0)) == []


# ---- speech is speech -----------------------------------------------------------------------------------


def test_fixture_speech_is_one_region_from_its_start_to_its_end_and_not_into_the_silence_after() -> None:
    audio = np.concatenate([silence(0.5), welcome(), silence(2.0)])
    first, last = speech_extent(audio, RATE)
    regions = detect(audio)
    assert len(regions) == 1
    (region,) = regions
    assert first - PADDING - 0.06 <= region.start <= first
    assert last <= region.end <= last + PADDING + 0.1
    assert region.end < len(audio) / RATE - 1.5


def test_fixture_as_committed_gives_one_region_clamped_to_the_audio() -> None:
    first, last = speech_extent(welcome(), RATE)
    regions = detect(welcome())
    assert len(regions) == 1
    assert covers(regions, first, last)
    assert regions[0].start >= 0.0
    assert regions[0].end <= len(welcome()) / RATE


def test_speech_in_minus_40_dbfs_white_noise_is_still_detected() -> None:
    clean = np.concatenate([silence(1.0), welcome(), silence(2.0)])
    first, last = speech_extent(clean, RATE)
    noisy = mix(clean, white_noise(len(clean) / RATE, RATE, -40.0, seed=3))
    regions, vad = run(chunks(noisy, RATE, 160))
    assert covers(regions, first, last)
    assert all(r.start >= first - PADDING - 0.06 for r in regions), "the noise before the speech is speech"
    assert all(r.end <= last + PADDING + 0.1 for r in regions), "the noise after the speech is speech"
    assert vad.stats.gated_frames > 0


def test_a_tone_burst_after_silence_is_a_region_padded_at_both_ends() -> None:
    audio = np.concatenate([silence(1.0), tone(0.5, RATE), silence(1.0)])
    assert detect(audio) == [SpeechRegion(1.0 - PADDING, 1.5 + PADDING)]


def test_a_tone_that_never_stops_is_gated_like_noise() -> None:
    assert detect(tone(6.0, RATE)) == []


def test_clicks_are_not_speech() -> None:
    audio = silence(3.0)
    audio[::1600] = 20000  # a click every 200 ms
    regions, vad = run(chunks(audio, RATE, 160))
    assert regions == []
    assert vad.stats.speech_frames <= 15


def test_bursts_shorter_than_min_speech_are_ignored() -> None:
    def burst(seconds: float) -> Samples:
        return np.concatenate([silence(1.0), tone(seconds, RATE), silence(1.0)])

    assert detect(burst(0.04)) == []
    assert len(detect(burst(0.1))) == 1


def test_a_pause_shorter_than_the_hangover_does_not_split_a_region() -> None:
    audio = np.concatenate([silence(1.0), tone(0.3, RATE), silence(0.2), tone(0.3, RATE), silence(1.0)])
    assert detect(audio) == [SpeechRegion(0.8, 2.0)]


def test_regions_separated_by_less_than_twice_the_padding_abut_and_never_overlap() -> None:
    audio = np.concatenate([silence(1.0), tone(0.3, RATE), silence(0.36), tone(0.3, RATE), silence(1.0)])
    first, second = detect(audio)
    assert first == SpeechRegion(0.8, 1.5)
    assert second.start == first.end
    assert second.end == pytest.approx(1.96 + PADDING)


def test_leading_padding_is_clamped_at_the_start_of_the_call() -> None:
    audio = np.concatenate([silence(0.06), tone(0.5, RATE), silence(1.0)])
    assert detect(audio) == [SpeechRegion(0.0, 0.56 + PADDING)]


# ---- frames, rates, chunking and the timeline -----------------------------------------------------------


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_every_frame_length_finds_the_same_speech(frame_ms: int) -> None:
    audio = np.concatenate([silence(0.5), welcome(), silence(2.0)])
    first, last = speech_extent(audio, RATE)
    regions = detect(audio, options=VadOptions(frame_ms=frame_ms))
    assert len(regions) == 1
    assert first - PADDING - 2 * frame_ms / 1000 <= regions[0].start <= first
    assert last <= regions[0].end <= last + PADDING + 0.1


@pytest.mark.parametrize("rate", [16000, 32000, 44100, 48000, 11025])
def test_every_rate_gives_regions_at_the_same_timeline_seconds(rate: int) -> None:
    audio = np.concatenate([silence(0.5), welcome(), silence(1.0), tone(0.5, RATE), silence(1.0)])
    at_8k = detect(audio)
    at_rate = detect(resample(audio, RATE, rate), rate)
    assert len(at_rate) == len(at_8k) == 2
    for ours, theirs in zip(at_rate, at_8k, strict=True):
        assert ours.start == pytest.approx(theirs.start, abs=0.04)
        assert ours.end == pytest.approx(theirs.end, abs=0.04)


@pytest.mark.parametrize(("rate", "odd"), [(8000, 137), (8000, 1), (44100, 137), (44100, 4411)])
def test_chunks_of_odd_sizes_give_the_same_regions_as_20ms_chunks(rate: int, odd: int) -> None:
    audio = np.concatenate([silence(0.5), welcome(), silence(1.0)])
    if rate != RATE:
        audio = resample(audio, RATE, rate)
    if odd == 1:
        audio = audio[: RATE * 2]  # a sample at a time is slow: two seconds will do
    assert detect(audio, rate, chunk_samples=odd) == detect(audio, rate)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_a_gap_in_chunk_starts_is_silence_and_keeps_regions_on_the_timeline(rate: int) -> None:
    burst = np.concatenate([silence(1.0, rate), tone(0.5, rate), silence(1.0, rate)])
    gap = 10 * rate  # ten seconds nobody sent
    pieces = [*chunks(burst, rate, rate // 50), *chunks(burst, rate, rate // 50, start=len(burst) + gap)]
    regions, vad = run(pieces, rate)
    later = (len(burst) + gap) / rate
    expected = [0.8, 1.7, later + 0.8, later + 1.7]
    assert [t for r in regions for t in (r.start, r.end)] == pytest.approx(expected, abs=0.02)
    assert vad.stats.gap_frames >= 10 * 50 - 2


def test_a_gap_in_the_middle_of_speech_closes_the_region_at_the_last_speech_heard() -> None:
    audio = np.concatenate([silence(1.0), tone(1.0, RATE)])
    pieces = [*chunks(audio, RATE, 160), AudioChunk(tone(0.5, RATE), RATE, RATE * 10)]
    regions, _ = run(pieces)
    assert regions[0] == SpeechRegion(0.8, 2.0 + PADDING)
    assert regions[1].start == pytest.approx(10.0 - PADDING)


def test_a_stream_that_starts_late_keeps_its_timeline() -> None:
    audio = np.concatenate([silence(1.0), tone(0.5, RATE), silence(1.0)])
    regions, _ = run(chunks(audio, RATE, 160, start=RATE * 3600 + 77))
    assert len(regions) == 1
    assert regions[0].start == pytest.approx(3601.0 - PADDING, abs=0.02)


# ---- the stream's life cycle ----------------------------------------------------------------------------


def test_flush_closes_an_open_region_at_the_end_of_the_audio() -> None:
    first, _ = speech_extent(welcome(), RATE)
    vad = VoiceActivityDetector(RATE)
    cut = RATE * 4  # mid-sentence
    for chunk in chunks(welcome()[:cut], RATE, 160):
        assert vad.push(chunk) == []
    assert vad.in_speech
    open_start = vad.open_region_start
    assert open_start is not None
    assert first - PADDING - 0.06 <= open_start <= first
    assert vad.flush() == [SpeechRegion(open_start, 4.0)]
    assert not vad.in_speech
    assert vad.open_region_start is None
    assert vad.decided_until == 4.0
    assert vad.flush() == []
    with pytest.raises(RuntimeError, match="flushed"):
        vad.push(AudioChunk(silence(0.02), RATE, cut))


@pytest.mark.parametrize(("rate", "size"), [(8000, 137), (44100, 1000)])
def test_decided_until_only_moves_forward_and_never_passes_the_audio(rate: int, size: int) -> None:
    speech = resample(welcome(), RATE, rate)
    audio = np.concatenate([silence(1.0, rate), speech, silence(3.0, rate), speech])
    audio = mix(audio, white_noise(len(audio) / rate, rate, -45.0, seed=4))
    audio = np.concatenate([audio, silence(2.0, rate)])
    pieces = list(chunks(audio, rate, size))
    middle = len(pieces) // 4
    pieces[middle : middle + 5] = []  # a gap, inside the first sentence
    vad = VoiceActivityDetector(rate)
    regions: list[SpeechRegion] = []
    decided = 0.0
    open_start: float | None = None
    for chunk in pieces:
        new = vad.push(chunk)
        # What was decided stays decided: a region never reaches back before what was already decided.
        for region in new:
            assert region.start >= decided or region.start == open_start
        if vad.open_region_start is not None and vad.open_region_start != open_start:
            assert vad.open_region_start >= decided
        open_start = vad.open_region_start
        regions += new
        assert decided <= vad.decided_until <= chunk.end / rate
        decided = vad.decided_until
        assert all(r.end <= decided for r in regions)
        assert open_start is None or open_start <= decided
    # In the trailing silence it keeps up with the audio, short of the padding a region might claim.
    assert decided >= len(audio) / rate - PADDING - 0.04
    regions += vad.flush()
    assert len(regions) >= 2
    for before, after in itertools.pairwise(regions):
        assert before.end <= after.start


def test_a_two_hour_stream_keeps_memory_flat() -> None:
    seconds = 2 * 3600
    second_of_hiss = white_noise(1.0, RATE, -60.0, seed=5)
    second_with_burst = np.concatenate([silence(0.2), tone(0.5, RATE), silence(0.3)])
    vad = VoiceActivityDetector(RATE)
    regions = 0

    def push(second: int) -> None:
        nonlocal regions
        samples = second_with_burst if second % 60 == 0 else second_of_hiss
        if second % 600 != 1:  # every ten minutes a second goes missing
            regions += len(vad.push(AudioChunk(samples, RATE, second * RATE)))

    # Tracing every allocation is slow: run most of the call untraced, then watch the last 20 minutes,
    # long enough for anything kept per frame (60,000 frames) or per region to show.
    for second in range(seconds - 1200):
        push(second)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for second in range(seconds - 1200, seconds):
            push(second)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert regions == seconds // 60
    assert after - before < 16_000
    assert peak - before < 200_000
    assert vad.stats.frames + vad.stats.gap_frames == seconds * 50
    assert vad.flush() == []


# ---- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": 4}, "mode must be 0, 1, 2 or 3"),
        ({"mode": -1}, "mode must be 0, 1, 2 or 3"),
        ({"mode": True}, "mode must be 0, 1, 2 or 3"),
        ({"frame_ms": 25}, "frame_ms must be 10, 20 or 30"),
        ({"frame_ms": 20.0}, "frame_ms must be 10, 20 or 30"),
        ({"energy_gate_db": -1.0}, "energy_gate_db must be"),
        ({"energy_gate_db": float("nan")}, "energy_gate_db must be"),
        ({"min_level_dbfs": 3.0}, "min_level_dbfs must be"),
        ({"min_level_dbfs": float("-inf")}, "min_level_dbfs must be"),
        ({"hangover_ms": -1}, "hangover_ms must be"),
        ({"padding_ms": -200}, "padding_ms must be"),
        ({"padding_ms": 0.5}, "padding_ms must be"),
        ({"min_speech_ms": -60}, "min_speech_ms must be"),
        ({"noise_window_ms": 10}, "noise_window_ms must be"),
    ],
)
def test_bad_options_are_refused_with_what_was_wrong(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VadOptions(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0, -8000, 8000.0])
def test_a_detector_needs_a_positive_whole_rate(rate: int) -> None:
    with pytest.raises(ValueError, match="sample rate must be"):
        VoiceActivityDetector(rate)


def test_a_numpy_integer_rate_is_a_rate() -> None:
    vad = VoiceActivityDetector(np.int64(16000))  # type: ignore[arg-type]
    assert vad.sample_rate == 16000
    assert type(vad.sample_rate) is int


def test_chunks_at_another_rate_or_going_back_are_refused() -> None:
    vad = VoiceActivityDetector(RATE)
    with pytest.raises(ValueError, match="16000 Hz pushed to a 8000 Hz detector"):
        vad.push(AudioChunk(silence(0.02, 16000), 16000, 0))
    vad.push(AudioChunk(silence(0.1), RATE, 800))
    with pytest.raises(ValueError, match="must not go back on the timeline"):
        vad.push(AudioChunk(silence(0.02), RATE, 1000))
