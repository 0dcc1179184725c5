"""Keypad tones on the call timeline: which presses count (ITU-T Q.24), where their edges are, and that
speech, music and noise give none. All audio is generated here or read from fixtures/audio.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import subprocess
import sys
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bleepline.audio.dtmf import COLUMN_HZ, ROW_HZ, DtmfDetector, DtmfOptions, DtmfTone
from bleepline.audio.files import read_audio_chunks
from bleepline.timeline import AudioChunk, Samples

FIXTURES = Path(__file__).parents[2] / "fixtures" / "audio"
KEYPAD = FIXTURES / "keypad_dtmf_8k.wav"
SPEECH = sorted(p for p in FIXTURES.glob("*.wav") if p != KEYPAD)
RATE = 8000
#: The keypad, row by row: the tests' own table (the detector has none, by design).
KEYS = "123A456B789C*0#D"
#: How far a reported edge may lie from the generated one. Measured: within 1.5 ms (the half point of
#: the 2 ms ramps is 1 ms in); the redactor's padding is its own business.
EDGE = 0.005

Signal = npt.NDArray[np.float64]


# ---- generated audio ------------------------------------------------------------------------------------


def key_tone(
    key: str,
    seconds: float,
    rate: int,
    dbfs: float = -15.0,
    twist_db: float = 0.0,
    deviation: float = 0.0,
    ramp_ms: float = 2.0,
) -> Signal:
    """One key's two sines (row tone at ``dbfs`` peak, column tone ``twist_db`` louder), with raised-cosine
    ramps against clicks, as the fixtures' presses have."""
    row, column = divmod(KEYS.index(key), 4)
    t = np.arange(round(seconds * rate)) / rate
    low = 10 ** (dbfs / 20) * np.sin(2 * np.pi * ROW_HZ[row] * (1 + deviation) * t)
    high = 10 ** ((dbfs + twist_db) / 20) * np.sin(2 * np.pi * COLUMN_HZ[column] * (1 + deviation) * t)
    wave: Signal = (low + high) * 32768
    ramp = min(round(ramp_ms / 1000 * rate), len(wave) // 2)
    if ramp == 0:
        return wave
    rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    wave[:ramp] *= rise
    wave[len(wave) - ramp :] *= rise[::-1]
    return wave


def keypad(
    keys: str, on: float, off: float, rate: int = RATE, lead: float = 0.3, **tone: float
) -> tuple[Signal, list[tuple[float, float]]]:
    """``keys`` pressed for ``on`` seconds with ``off`` between, after ``lead`` of silence; and the
    true (start, end) of every press."""
    parts: list[Signal] = [np.zeros(round(lead * rate))]
    truth: list[tuple[float, float]] = []
    cursor = len(parts[0])
    for key in keys:
        wave = key_tone(key, on, rate, **tone)
        truth.append((cursor / rate, (cursor + len(wave)) / rate))
        gap = np.zeros(round(off * rate))
        parts += [wave, gap]
        cursor += len(wave) + len(gap)
    parts.append(np.zeros(round(lead * rate)))
    return np.concatenate(parts), truth


def white_noise(count: int, dbfs: float, seed: int = 0) -> Signal:
    """Gaussian white noise whose RMS is ``dbfs`` relative to full scale."""
    noise: Signal = np.random.default_rng(seed).standard_normal(count) * 32768 * 10 ** (dbfs / 20)
    return noise


def note(frequency: float, seconds: float, rate: int, harmonics: Iterable[float], dbfs: float) -> Signal:
    """A note with a harmonic series (amplitudes of f, 2f, ...), scaled to ``dbfs`` peak."""
    t = np.arange(round(seconds * rate)) / rate
    wave: Signal = np.zeros(len(t))
    for k, amplitude in enumerate(harmonics, start=1):
        if frequency * k < rate / 2:
            wave += amplitude * np.sin(2 * np.pi * frequency * k * t + k)
    scaled: Signal = wave / np.max(np.abs(wave)) * 32768 * 10 ** (dbfs / 20)
    return scaled


def pcm(wave: Signal) -> Samples:
    samples: Samples = np.clip(np.round(wave), -32768, 32767).astype(np.int16)
    return samples


def silence(seconds: float, rate: int = RATE) -> Signal:
    return np.zeros(round(seconds * rate))


@functools.cache
def fixture(path: Path, rate: int | None = None) -> tuple[AudioChunk, ...]:
    return tuple(read_audio_chunks(path, sample_rate=rate))


# ---- driving the detector -------------------------------------------------------------------------------


def chunks(samples: Samples, rate: int, size: int, start: int = 0) -> Iterator[AudioChunk]:
    for offset in range(0, len(samples), size):
        yield AudioChunk(samples[offset : offset + size], rate, start + offset)


def run(pieces: Iterable[AudioChunk], rate: int = RATE) -> tuple[list[DtmfTone], DtmfDetector]:
    detector = DtmfDetector(rate)
    tones: list[DtmfTone] = []
    for chunk in pieces:
        tones += detector.push(chunk)
    tones += detector.flush()
    return tones, detector


def detect(wave: Signal, rate: int = RATE, size: int | None = None) -> list[DtmfTone]:
    """All presses in ``wave``, pushed in 20 ms chunks unless told, then flushed."""
    return run(chunks(pcm(wave), rate, size or rate // 50), rate)[0]


def assert_matches(tones: list[DtmfTone], truth: list[tuple[float, float]], tolerance: float = EDGE) -> None:
    assert len(tones) == len(truth)
    for tone, (start, end) in zip(tones, truth, strict=True):
        assert tone.start == pytest.approx(start, abs=tolerance)
        assert tone.end == pytest.approx(end, abs=tolerance)


# ---- key presses are found, with their edges ------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_every_key_is_one_press_with_edges_at_the_tone(rate: int) -> None:
    wave, truth = keypad(KEYS, on=0.06, off=0.08, rate=rate)
    assert_matches(detect(wave, rate), truth)


def test_forty_ms_presses_with_forty_ms_pauses_are_each_counted() -> None:
    # The same key again and again is the hard case: only the pause tells the presses apart.
    wave, truth = keypad(KEYS + "5555555555", on=0.04, off=0.04)
    assert_matches(detect(wave), truth)


def test_a_change_of_key_without_a_pause_is_two_presses_meeting_at_the_change() -> None:
    # 1 then 2 share their row tone; only the column tells them apart.
    first = key_tone("1", 0.08, RATE, ramp_ms=0.0)
    second = key_tone("2", 0.08, RATE, ramp_ms=0.0)
    wave = np.concatenate([silence(0.3), first, second, silence(0.3)])
    tones = detect(wave)
    assert len(tones) == 2
    assert tones[0].start == pytest.approx(0.3, abs=EDGE)
    assert tones[0].end == pytest.approx(0.38, abs=EDGE)
    assert tones[1].start == pytest.approx(0.38, abs=EDGE)
    assert tones[1].end == pytest.approx(0.46, abs=EDGE)


@pytest.mark.parametrize("seconds", [0.015, 0.020, 0.022])
def test_bursts_shorter_than_q24_minimum_are_rejected(seconds: float) -> None:
    wave, _ = keypad(KEYS, on=seconds, off=0.06)
    tones, detector = run(chunks(pcm(wave), RATE, 160))
    assert tones == []
    assert detector.stats.tones == 0


def test_a_press_needs_enough_windows_that_pass_every_test() -> None:
    # Speech passes every test for a window or two at a time; min_key_ms is what keeps such runs out.
    wave, truth = keypad("4", on=0.04, off=0.1)
    assert_matches(detect(wave), truth)
    strict = DtmfDetector(RATE, DtmfOptions(min_key_ms=40.0))
    tones = [tone for chunk in chunks(pcm(wave), RATE, 160) for tone in strict.push(chunk)]
    assert tones + strict.flush() == []
    assert strict.stats.too_short == 1


def test_a_ten_ms_drop_out_does_not_split_a_press() -> None:
    tone = key_tone("8", 0.2, RATE)
    tone[800:880] = 0.0  # 10 ms lost in the middle
    tones = detect(np.concatenate([silence(0.3), tone, silence(0.3)]))
    assert len(tones) == 1
    assert tones[0].start == pytest.approx(0.3, abs=EDGE)
    assert tones[0].end == pytest.approx(0.5, abs=EDGE)


@pytest.mark.parametrize("twist_db", [-7.5, -4.0, 0.0, 2.0, 3.5])
def test_twist_within_limits_is_accepted(twist_db: float) -> None:
    # Louder tone at -12 dBFS, so that the weaker one stays well above the minimum level.
    wave, truth = keypad(KEYS, on=0.05, off=0.06, dbfs=-12.0 - max(twist_db, 0.0), twist_db=twist_db)
    assert_matches(detect(wave), truth)


@pytest.mark.parametrize("twist_db", [-11.0, -9.0, 5.0, 7.0])
def test_twist_beyond_limits_is_rejected(twist_db: float) -> None:
    wave, _ = keypad(KEYS, on=0.05, off=0.06, dbfs=-12.0 - max(twist_db, 0.0), twist_db=twist_db)
    assert detect(wave) == []


@pytest.mark.parametrize("dbfs", [-3.0, -10.0, -15.0, -20.0, -25.0, -30.0])
def test_presses_from_loud_to_quiet_are_accepted(dbfs: float) -> None:
    wave, truth = keypad(KEYS, on=0.05, off=0.06, dbfs=dbfs)
    assert_matches(detect(wave), truth)


@pytest.mark.parametrize("dbfs", [-38.0, -45.0])
def test_presses_below_the_minimum_level_are_rejected(dbfs: float) -> None:
    wave, _ = keypad(KEYS, on=0.05, off=0.06, dbfs=dbfs)
    assert detect(wave) == []


@pytest.mark.parametrize("deviation", [-0.015, 0.015])
def test_senders_off_by_the_q23_tolerance_are_accepted(deviation: float) -> None:
    wave, truth = keypad(KEYS, on=0.05, off=0.06, deviation=deviation)
    assert_matches(detect(wave), truth)


@pytest.mark.parametrize(("rate", "dbfs"), [(8000, -15.0), (8000, -20.0), (16000, -15.0)])
def test_presses_in_minus_30_dbfs_white_noise_are_still_found(rate: int, dbfs: float) -> None:
    wave, truth = keypad(KEYS, on=0.05, off=0.06, rate=rate, dbfs=dbfs)
    noisy = wave + white_noise(len(wave), -30.0, seed=rate + int(-dbfs))
    assert_matches(detect(noisy, rate), truth, tolerance=0.008)


# ---- nothing else is a key press ------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPEECH, ids=lambda p: p.stem)
def test_speech_fixtures_give_no_presses_as_recorded_or_made_loud(path: Path) -> None:
    pieces = fixture(path)
    tones, detector = run(pieces, pieces[0].sample_rate)
    assert tones == []
    assert detector.stats.windows > 0
    # Made as loud as it goes (peak at -1 dBFS): levels alone must not make speech a key press.
    samples = np.concatenate([c.samples for c in pieces]).astype(np.float64)
    loud = samples * (32768 * 10 ** (-1 / 20) / np.max(np.abs(samples)))
    assert detect(loud, pieces[0].sample_rate) == []


@pytest.mark.parametrize(
    "harmonics",
    [[1 / k for k in range(1, 11)], [1.0, 0.5, 0.3, 0.2, 0.1], [1.0, 0.3, 0.1, 0.03]],
    ids=["bright", "mellow", "soft"],
)
def test_music_gives_no_presses(harmonics: list[float]) -> None:
    # Chords over three octaves, and pairs of notes pitched exactly on a row and a column frequency:
    # an instrument's harmonics carry too much of the energy to pass for a keypad's two pure tones.
    parts: list[Signal] = []
    for base in range(48, 84, 2):
        for shape in [(0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 7)]:
            chord = sum(note(440 * 2 ** ((base - 69 + s) / 12), 0.2, RATE, harmonics, -12.0) for s in shape)
            parts += [np.asarray(chord), silence(0.05)]
    for low in ROW_HZ:
        for high in COLUMN_HZ:
            parts += [
                note(low, 0.2, RATE, harmonics, -15) + note(high, 0.2, RATE, harmonics, -15),
                silence(0.05),
            ]
    assert detect(np.concatenate(parts)) == []


def test_single_sines_at_keypad_frequencies_give_no_presses() -> None:
    parts: list[Signal] = []
    for frequency in ROW_HZ + COLUMN_HZ:
        parts += [note(frequency, 0.3, RATE, [1.0], -3.0), silence(0.1)]
    wave = np.concatenate(parts)
    assert detect(wave) == []
    assert detect(wave + white_noise(len(wave), -30.0, seed=4)) == []


def test_two_tones_of_the_same_group_give_no_presses() -> None:
    parts: list[Signal] = []
    for group in (ROW_HZ, COLUMN_HZ):
        for i, low in enumerate(group):
            for high in group[i + 1 :]:
                parts += [note(low, 0.2, RATE, [1.0], -15) + note(high, 0.2, RATE, [1.0], -15), silence(0.1)]
    assert detect(np.concatenate(parts)) == []


@pytest.mark.parametrize(("third_db", "presses"), [(-6.0, 0), (-12.0, 0), (-20.0, 1)])
def test_a_third_tone_near_the_strongest_of_its_group_is_no_press(third_db: float, presses: int) -> None:
    # Key 1 (697 + 1209 Hz) with 770 Hz, the next row tone, added: the group's peak must stand out.
    press = key_tone("1", 0.1, RATE)
    t = np.arange(len(press)) / RATE
    third = 32768 * 10 ** ((-15.0 + third_db) / 20) * np.sin(2 * np.pi * ROW_HZ[1] * t)
    assert len(detect(np.concatenate([silence(0.2), press + third, silence(0.2)]))) == presses


def test_white_noise_and_silence_give_no_presses() -> None:
    wave = np.concatenate([silence(1.0), white_noise(3 * RATE, -20.0, seed=5), silence(1.0)])
    tones, detector = run(chunks(pcm(wave), RATE, 160))
    assert tones == []
    assert detector.stats.key_windows == 0


# ---- the keypad fixture ---------------------------------------------------------------------------------


def keypad_truth() -> list[tuple[float, float]]:
    truth = json.loads(KEYPAD.with_suffix(".json").read_text())
    return [
        (digit["start"], digit["end"])
        for span in truth["pii"]
        if span["entity"] == "DTMF"
        for digit in span["digits"]
    ]


@pytest.mark.parametrize("rate", [None, 16000, 48000])
def test_keypad_fixture_every_key_is_one_press_and_nothing_else_is(rate: int | None) -> None:
    pieces = fixture(KEYPAD, rate)
    tones, _ = run(pieces, pieces[0].sample_rate)
    truth = keypad_truth()
    assert len(truth) == 21
    for start, end in truth:
        matching = [t for t in tones if t.start < end and start < t.end]
        assert len(matching) == 1, f"key pressed at {start:.3f} s matched {len(matching)} presses"
        assert matching[0].start == pytest.approx(start, abs=0.015)
        assert matching[0].end == pytest.approx(end, abs=0.015)
    assert len(tones) == len(truth)


# ---- the timeline ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 37, 161, 1000])
def test_how_the_audio_is_cut_does_not_change_the_presses(size: int) -> None:
    wave, truth = keypad("5#0", on=0.05, off=0.05, lead=0.1)
    whole = detect(wave, size=len(wave))
    assert_matches(whole, truth)
    assert detect(wave, size=size) == whole


def test_keypad_fixture_in_odd_sized_chunks_gives_the_same_presses() -> None:
    samples = np.concatenate([c.samples for c in fixture(KEYPAD)])
    assert run(chunks(samples, RATE, 37))[0] == run(fixture(KEYPAD))[0]


def test_a_gap_in_the_timeline_is_silence() -> None:
    before, truth_before = keypad("12", on=0.05, off=0.05, lead=0.1)
    after, truth_after = keypad("34", on=0.05, off=0.05, lead=0.1)
    gap = 10 * RATE
    pieces = [*chunks(pcm(before), RATE, 160), *chunks(pcm(after), RATE, 160, start=len(before) + gap)]
    tones, detector = run(pieces)
    shift = (len(before) + gap) / RATE
    assert_matches(tones, truth_before + [(s + shift, e + shift) for s, e in truth_after])
    assert detector.stats.gap_windows > 0
    filled = np.concatenate([before, np.zeros(gap), after])
    assert detect(filled) == tones


def test_a_gap_inside_a_press_ends_it_there() -> None:
    tone = pcm(np.concatenate([silence(0.1), key_tone("9", 0.2, RATE)]))
    pieces = [AudioChunk(tone[:1600], RATE, 0), AudioChunk(tone[1600:], RATE, 1600 + 800)]  # 100 ms lost
    tones, _ = run(pieces)
    assert_matches(tones, [(0.1, 0.2), (0.3, 0.4)])


def test_a_stream_that_starts_late_on_the_timeline_keeps_its_times() -> None:
    wave, truth = keypad("7", on=0.06, off=0.0, lead=0.0)  # the press starts with the stream
    start = 123_457
    tones, detector = run(chunks(pcm(wave), RATE, 160, start=start))
    offset = start / RATE
    assert_matches(tones, [(s + offset, e + offset) for s, e in truth])
    assert detector.decided_until == pytest.approx(offset + len(wave) / RATE)


def test_an_hour_of_gap_costs_no_memory() -> None:
    rate = 48000
    first, _ = keypad("1", on=0.05, off=0.05, rate=rate, lead=0.1)
    tracemalloc.start()
    try:
        detector = DtmfDetector(rate)
        tones = detector.push(AudioChunk(pcm(first), rate, 0))
        tones += detector.push(AudioChunk(pcm(first), rate, len(first) + 3600 * rate))
        tones += detector.flush()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    later = (len(first) + 3600 * rate) / rate
    assert_matches(tones, [(0.1, 0.15), (later + 0.1, later + 0.15)])
    assert peak < 10_000_000  # the gap as samples would be 345 MB


HELD_KEY = """
import gc, sys, tracemalloc
import numpy as np
from bleepline.audio.dtmf import DtmfDetector
from bleepline.timeline import AudioChunk

rate = 8000
t = np.arange(rate * 30) / rate
held = np.round(6000 * (np.sin(2 * np.pi * 941 * t) + np.sin(2 * np.pi * 1336 * t))).astype(np.int16)
detector = DtmfDetector(rate)
tracemalloc.start()
tones = []
for i, start in enumerate(range(0, len(held), 160)):
    tones += detector.push(AudioChunk(held[start : start + 160], rate, start))
    if i == 250:
        gc.collect()
        early, _ = tracemalloc.get_traced_memory()
gc.collect()
late, _ = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(late - early, len(tones), detector.active_since, len(detector.flush()))
"""


def test_a_key_held_for_half_a_minute_is_one_press_in_bounded_memory() -> None:
    """In a process of its own: memory measured beside hundreds of other tests is not this detector's."""
    result = subprocess.run([sys.executable, "-c", HELD_KEY], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    grown, reported, active_since, flushed = result.stdout.split()
    # Keeping the held key's windows would grow by megabytes over 30 s (480 KB of samples alone).
    assert int(grown) < 150_000
    assert (int(reported), int(flushed)) == (0, 1)  # one press, reported when it ends
    assert float(active_since) == pytest.approx(0.0, abs=EDGE)


# ---- what the redactor reads while audio arrives --------------------------------------------------------


def test_active_since_marks_a_press_while_it_lasts_and_decided_until_never_runs_ahead() -> None:
    wave, truth = keypad("369", on=0.1, off=0.2)
    detector = DtmfDetector(RATE)
    reported: list[DtmfTone] = []
    first_active: dict[int, float] = {}
    decided = 0.0
    for chunk in chunks(pcm(wave), RATE, 160):
        for tone in detector.push(chunk):
            assert tone.start >= decided - 1e-9, "a press appeared before what was already decided"
            reported.append(tone)
        now = chunk.end / RATE
        assert decided <= detector.decided_until <= now
        decided = detector.decided_until
        since = detector.active_since
        if since is not None:
            index = next(i for i, (s, e) in enumerate(truth) if s - EDGE <= since <= e)
            assert since == pytest.approx(truth[index][0], abs=EDGE)
            assert decided <= since
            first_active.setdefault(index, now)
    reported += detector.flush()
    assert_matches(reported, truth)
    assert detector.active_since is None
    assert detector.decided_until == len(wave) / RATE
    # Masking can start within two 20 ms chunks of the key going down.
    assert all(first_active[i] - truth[i][0] <= 0.04 + 1e-9 for i in range(len(truth)))


def test_silence_is_decided_about_fifty_ms_behind_the_audio() -> None:
    detector = DtmfDetector(RATE)
    for chunk in chunks(pcm(silence(2.0)), RATE, 160):
        assert detector.push(chunk) == []
    assert 2.0 - 0.07 <= detector.decided_until <= 2.0
    assert detector.flush() == []
    assert detector.decided_until == 2.0


# ---- which key it was never leaves the detector ---------------------------------------------------------


def test_nothing_a_caller_can_see_depends_on_which_key_was_pressed() -> None:
    # Times may differ by a sample between keys (the edge estimates are not bit-identical); everything
    # else a caller, a log or a traceback can see must be the same.
    seen: list[list[str]] = []
    for key in "19":
        wave = np.concatenate([silence(0.2), key_tone(key, 0.1, RATE), silence(0.2)])
        detector = DtmfDetector(RATE)
        views: list[str] = []
        for chunk in chunks(pcm(wave), RATE, 160):
            tones = detector.push(chunk)
            views += [repr(detector), repr(detector.stats), repr(tones), repr(detector.active_since)]
            views += [repr(p) for p in (detector._open, *detector._closing) if p is not None]
        views.append(repr(detector.flush()))
        seen.append([re.sub(r"\d+\.\d+", "<time>", view) for view in views])
    assert seen[0] == seen[1]
    assert any("DtmfTone(" in view for view in seen[0])
    assert {f.name for f in dataclasses.fields(DtmfTone)} == {"start", "end"}


# ---- refusals -------------------------------------------------------------------------------------------


def test_chunks_must_match_the_rate_and_keep_to_the_timeline() -> None:
    detector = DtmfDetector(RATE)
    detector.push(AudioChunk(np.zeros(160, dtype=np.int16), RATE, 160))
    with pytest.raises(ValueError, match="16000 Hz pushed to a 8000 Hz"):
        detector.push(AudioChunk(np.zeros(320, dtype=np.int16), 16000, 320))
    with pytest.raises(ValueError, match="go back on the timeline"):
        detector.push(AudioChunk(np.zeros(160, dtype=np.int16), RATE, 200))
    assert detector.push(AudioChunk(np.zeros(0, dtype=np.int16), RATE, 320)) == []
    detector.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        detector.push(AudioChunk(np.zeros(160, dtype=np.int16), RATE, 320))
    assert detector.flush() == []


@pytest.mark.parametrize("rate", [0, 4000, 7999, 8000.0, True])
def test_rates_that_cannot_carry_the_keypad_are_refused(rate: object) -> None:
    with pytest.raises(ValueError, match="at least 8000 Hz"):
        DtmfDetector(rate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hop_ms": 0.0},
        {"hop_ms": 40.0},
        {"min_level_dbfs": 3.0},
        {"min_tone_fraction": 0.0},
        {"min_tone_fraction": 1.5},
        {"relative_peak_db": -1.0},
        {"bridge_ms": -5.0},
        {"min_tone_ms": float("nan")},
        {"block_ms": "27"},
    ],
)
def test_impossible_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"DTMF option|must be"):
        DtmfOptions(**kwargs)  # type: ignore[arg-type]


def test_an_empty_stream_flushes_to_nothing() -> None:
    detector = DtmfDetector(RATE)
    assert detector.decided_until == 0.0
    assert detector.active_since is None
    assert detector.flush() == []


# ---- the shortcut for audio that holds no key changes nothing -------------------------------------------


class _Ungated(DtmfDetector):
    """Every window through every test: the detector as it would be without its shortcut."""

    _gated = False


def _trace(detector: DtmfDetector, samples: Samples, size: int) -> list[object]:
    """Everything a caller can read, after every push and at the end."""
    seen: list[object] = []
    for chunk in chunks(samples, detector.sample_rate, size):
        seen.append((detector.push(chunk), detector.active_since, detector.decided_until))
    seen.append((detector.flush(), detector.stats))
    return seen


def _hard_cases() -> Iterator[tuple[str, Samples, int]]:
    """Presses at and beyond the Q.24 limits, near the level floor, in noise; and what must give none."""
    for deviation in (-0.035, -0.025, -0.015, 0.015, 0.025, 0.035):
        yield f"frequency {deviation:+.1%}", pcm(keypad(KEYS, 0.05, 0.06, deviation=deviation)[0]), RATE
    for twist_db in (-9.0, -8.0, -7.5, 3.5, 4.0, 5.0):
        wave = keypad(KEYS, 0.05, 0.06, dbfs=-12.0 - max(twist_db, 0.0), twist_db=twist_db)[0]
        yield f"twist {twist_db:+} dB", pcm(wave), RATE
    for dbfs in (-32.0, -33.0, -34.0):
        yield f"level {dbfs} dBFS", pcm(keypad(KEYS, 0.05, 0.06, dbfs=dbfs)[0]), RATE
    for seconds in (0.022, 0.025, 0.03):
        yield f"{seconds * 1000:.0f} ms presses", pcm(keypad(KEYS, seconds, 0.06)[0]), RATE
    wave = keypad(KEYS, 0.05, 0.06, dbfs=-20.0)[0]
    yield "presses in noise", pcm(wave + white_noise(len(wave), -30.0, seed=9)), RATE
    wave = keypad(KEYS, 0.05, 0.06, rate=16000)[0]
    yield "presses at 16 kHz", pcm(wave), 16000
    for dbfs in (-50.0, -20.0, -3.0):
        yield f"noise {dbfs} dBFS", pcm(white_noise(2 * RATE, dbfs, seed=int(-dbfs))), RATE
    chord = sum(note(440 * 2 ** (s / 12), 0.5, RATE, [1.0, 0.5, 0.3, 0.2, 0.1], -12.0) for s in (0, 4, 7))
    yield "a chord", pcm(np.asarray(chord)), RATE


@pytest.mark.parametrize(("samples", "rate"), [pytest.param(s, r, id=name) for name, s, r in _hard_cases()])
def test_the_shortcut_changes_nothing_on_hard_cases(samples: Samples, rate: int) -> None:
    for size in (rate // 50, 1000):
        assert _trace(DtmfDetector(rate), samples, size) == _trace(_Ungated(rate), samples, size)


def test_a_press_right_after_seconds_without_a_key_in_one_chunk_keeps_its_edge() -> None:
    # Six seconds of noise pushed at once, then a press in 20 ms packets: its rising edge looks back on
    # the last windows of that long push, which the shortcut keeps in a batch of their own.
    press, truth = keypad("1#", on=0.05, off=0.05, lead=0.0)
    noise = pcm(white_noise(6 * RATE, -35.0, seed=11))
    keys = pcm(press + white_noise(len(press), -35.0, seed=12))

    def pushed(detector: DtmfDetector) -> list[DtmfTone]:
        tones = detector.push(AudioChunk(noise, RATE, 0))
        for chunk in chunks(keys, RATE, RATE // 50, start=len(noise)):
            tones += detector.push(chunk)
        return tones + detector.flush()

    tones = pushed(DtmfDetector(RATE))
    assert tones == pushed(_Ungated(RATE))
    assert tones == detect(np.concatenate([noise, keys]).astype(np.float64))
    assert_matches(tones, [(start + 6.0, end + 6.0) for start, end in truth])


@pytest.mark.parametrize("path", [KEYPAD, *SPEECH], ids=lambda p: p.stem)
def test_the_shortcut_changes_nothing_on_the_fixtures(path: Path) -> None:
    pieces = fixture(path)
    rate = pieces[0].sample_rate
    samples = np.concatenate([c.samples for c in pieces])
    loud = pcm(samples * (32768 * 10 ** (-1 / 20) / np.max(np.abs(samples.astype(np.float64)))))
    for audio in (samples, loud):
        assert _trace(DtmfDetector(rate), audio, rate // 50) == _trace(_Ungated(rate), audio, rate // 50)


def test_the_shortcut_takes_most_speech_and_noise() -> None:
    """What makes the detector cheap per packet: most windows without a key stop at the shortcut."""
    detector = DtmfDetector(RATE)
    asked: list[bool] = []
    may_hold_key = detector._may_hold_key

    def counted(frames: npt.NDArray[np.float64], power: npt.NDArray[np.float64]) -> bool:
        asked.append(may_hold_key(frames, power))
        return asked[-1]

    detector._may_hold_key = counted  # type: ignore[method-assign]
    speech = [c.samples for path in SPEECH if path.stem.endswith("_8k") for c in fixture(path)]
    noise = pcm(white_noise(5 * RATE, -20.0, seed=3))
    _trace(detector, np.concatenate([*speech, noise]), RATE // 50)
    assert len(asked) > 1000
    assert sum(asked) < 0.05 * len(asked)
