"""The delay line: cleared audio passes bit for bit, marks and uncleared audio go out masked, on one timeline.

Everything runs on a virtual clock with generated audio; no test waits for anything.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from bleepline.audio.tones import tone
from bleepline.redact.delayline import DelayLine, MaskedStretch
from bleepline.redact.policy import MaskMode, MaskReason, RedactionPolicy
from bleepline.timeline import AudioChunk, Samples
from tests.redact.conftest import PACKET, RATE, beep_at, joined, loud_noise, max_step, seconds, stream

POLICY = RedactionPolicy(
    delay_s=2.5, pad_before_s=0.25, pad_after_s=0.2
)  # pads 0.25 s before, 0.2 s after; 5 ms fades
FADE = 40  # 5 ms at 8 kHz
PAD_BEFORE = 2000
PAD_AFTER = 1600


def rise(count: int) -> np.ndarray:
    """The delay line's crossfade ramp, 0 -> 1 over ``count`` samples."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(count) + 0.5) / count)


# -- passing and masking ------------------------------------------------------------------------------


def test_cleared_unmarked_audio_goes_out_bit_for_bit() -> None:
    audio = loud_noise(5 * RATE)
    line = DelayLine(RATE, POLICY)
    out = stream(line, audio)
    assert np.array_equal(out, audio)
    assert line.masked == []
    assert line.stats.released_samples == len(audio)
    assert sum(line.stats.masked_samples.values()) == 0


def test_a_pii_mask_beeps_exactly_the_padded_stretch_and_crossfades_outside_it() -> None:
    audio = loud_noise(6 * RATE)
    line = DelayLine(RATE, POLICY)
    line.mask(2.0, 3.0, MaskReason.PII, "CREDIT_CARD")
    out = stream(line, audio)

    lo, hi = 2 * RATE - PAD_BEFORE, 3 * RATE + PAD_AFTER
    # Every sample of [start - pad, end + pad) is the beep: no original sample survives, faded or not.
    assert np.array_equal(out[lo:hi], beep_at(lo, hi, POLICY))
    # Just outside it: the original fades out, then the beep fades in; mirrored after it.
    gain = rise(FADE)
    before, after = slice(lo - 2 * FADE, lo - FADE), slice(hi + FADE, hi + 2 * FADE)
    assert np.max(np.abs(out[before] - audio[before] * gain[::-1])) <= 1
    assert np.max(np.abs(out[lo - FADE : lo] - beep_at(lo - FADE, lo, POLICY) * gain)) <= 1
    assert np.max(np.abs(out[hi : hi + FADE] - beep_at(hi, hi + FADE, POLICY) * gain[::-1])) <= 1
    assert np.max(np.abs(out[after] - audio[after] * gain)) <= 1
    assert np.array_equal(out[: lo - 2 * FADE], audio[: lo - 2 * FADE])
    assert np.array_equal(out[hi + 2 * FADE :], audio[hi + 2 * FADE :])

    assert line.masked == [MaskedStretch(seconds(lo), seconds(hi), MaskReason.PII, "CREDIT_CARD")]
    assert line.stats.masked_samples[MaskReason.PII] == hi - lo


def test_a_span_reported_again_as_it_grows_is_one_mark_and_one_stretch() -> None:
    audio = loud_noise(7 * RATE)
    line = DelayLine(RATE, POLICY)
    held: list[int] = []

    def grow(line: DelayLine, now: float) -> None:
        if 2.0 < now <= 4.0:
            line.mask(2.0, now, MaskReason.PII, "PHONE_NUMBER")
        held.append(line.marks_held)

    out = stream(line, audio, each=grow)
    lo, hi = 2 * RATE - PAD_BEFORE, 4 * RATE + PAD_AFTER
    assert np.array_equal(out[lo:hi], beep_at(lo, hi, POLICY))
    assert line.masked == [MaskedStretch(seconds(lo), seconds(hi), MaskReason.PII, "PHONE_NUMBER")]
    assert max(held) == 1
    assert line.marks_held == 0  # pruned once released


def test_dtmf_and_pii_marks_keep_their_own_reason_and_entity_in_the_masked_log() -> None:
    line = DelayLine(RATE, RedactionPolicy(pad_before_s=0.0, pad_after_s=0.0))
    line.mask(1.0, 1.5, MaskReason.DTMF, "DTMF")
    line.mask(1.5, 2.0, MaskReason.PII, "US_SSN")
    line.mask(3.0, 3.5, MaskReason.PII, "US_SSN")
    stream(line, loud_noise(5 * RATE))
    assert line.masked == [
        MaskedStretch(1.0, 1.5, MaskReason.DTMF, "DTMF"),
        MaskedStretch(1.5, 2.0, MaskReason.PII, "US_SSN"),
        MaskedStretch(3.0, 3.5, MaskReason.PII, "US_SSN"),
    ]


def test_silence_mode_zeroes_the_stretch_and_fades_the_original_outside_it() -> None:
    policy = RedactionPolicy(mode=MaskMode.SILENCE, pad_before_s=0.25, pad_after_s=0.2)
    audio = loud_noise(6 * RATE)
    line = DelayLine(RATE, policy)
    line.mask(2.0, 3.0, MaskReason.PII, "PERSON")
    out = stream(line, audio)

    lo, hi = 2 * RATE - PAD_BEFORE, 3 * RATE + PAD_AFTER
    assert not np.any(out[lo:hi])
    gain = rise(FADE)
    assert np.max(np.abs(out[lo - FADE : lo] - audio[lo - FADE : lo] * gain[::-1])) <= 1
    assert np.max(np.abs(out[hi : hi + FADE] - audio[hi : hi + FADE] * gain)) <= 1
    assert np.array_equal(out[: lo - FADE], audio[: lo - FADE])
    assert np.array_equal(out[hi + FADE :], audio[hi + FADE :])


def test_a_named_mark_wins_over_unverified_for_the_reason_reported_and_the_sound() -> None:
    audio = loud_noise(6 * RATE)
    line = DelayLine(RATE, POLICY)
    line.mask(2.0, 3.0, MaskReason.PII, "EMAIL_ADDRESS")
    out = stream(line, audio, cleared=lambda now: min(now, 1.0))  # the recognizer never gets past 1 s

    lo, hi = 2 * RATE - PAD_BEFORE, 3 * RATE + PAD_AFTER
    assert line.masked == [
        MaskedStretch(1.0, seconds(lo), MaskReason.UNVERIFIED),
        MaskedStretch(seconds(lo), seconds(hi), MaskReason.PII, "EMAIL_ADDRESS"),
        MaskedStretch(seconds(hi), 6.0, MaskReason.UNVERIFIED),
    ]
    assert np.array_equal(out[lo:hi], beep_at(lo, hi, POLICY))
    assert not np.any(out[RATE : lo - FADE])
    assert not np.any(out[hi + FADE :])
    assert line.stats.masked_samples == {
        MaskReason.PII: hi - lo,
        MaskReason.DTMF: 0,
        MaskReason.UNVERIFIED: 5 * RATE - (hi - lo),
    }


# -- fail closed ----------------------------------------------------------------------------------------


def test_nothing_is_released_unmasked_if_clear_never_comes() -> None:
    audio = loud_noise(4 * RATE)
    line = DelayLine(RATE, RedactionPolicy(unverified_mode=MaskMode.BEEP, pad_before_s=0.25, pad_after_s=0.2))
    out = stream(line, audio, cleared=lambda now: None)
    assert np.array_equal(out, tone(0, len(audio), RATE, POLICY.beep))
    assert line.masked == [MaskedStretch(0.0, 4.0, MaskReason.UNVERIFIED)]


def test_a_stalled_recognizer_leaves_everything_after_the_stall_masked_unverified() -> None:
    audio = loud_noise(6 * RATE)
    line = DelayLine(RATE, POLICY)
    out = stream(line, audio, cleared=lambda now: now if now <= 3.0 else None)

    stall = 3 * RATE
    assert not np.any(out[stall:])  # unverified audio becomes silence by default
    assert np.array_equal(out[: stall - FADE], audio[: stall - FADE])
    assert np.all(np.abs(out[stall - FADE : stall]) <= np.abs(audio[stall - FADE : stall]))
    assert line.masked == [MaskedStretch(3.0, 6.0, MaskReason.UNVERIFIED)]
    assert line.stats.masked_s(MaskReason.UNVERIFIED) == pytest.approx(3.0)


def test_a_restarted_recognizer_leaves_the_gap_it_never_heard_masked() -> None:
    audio = loud_noise(9 * RATE)
    line = DelayLine(RATE, POLICY)
    released_at_restart: list[float] = []

    def restart(line: DelayLine, now: float) -> None:
        if math.isclose(now, 6.0):
            # The listener reports the stretch the dead recognizer never heard, then clears from there.
            released_at_restart.append(line.released_until)
            line.mask(3.0, 6.0, MaskReason.UNVERIFIED)

    out = stream(line, audio, cleared=lambda now: now if now <= 3.0 or now >= 6.0 else None, each=restart)
    lo, hi = 3 * RATE, 6 * RATE + PAD_AFTER
    assert released_at_restart[0] < 6.0 - POLICY.pad_before_s  # part of the gap was still held
    assert not np.any(out[lo:hi])
    assert np.array_equal(out[: lo - FADE], audio[: lo - FADE])
    assert np.array_equal(out[hi + FADE :], audio[hi + FADE :])
    assert line.masked == [MaskedStretch(3.0, seconds(hi), MaskReason.UNVERIFIED)]


def test_audio_released_while_the_recognizer_was_down_stays_masked_when_clear_jumps_ahead() -> None:
    audio = loud_noise(9 * RATE)
    line = DelayLine(RATE, POLICY)
    jump: list[int] = []

    def note(line: DelayLine, now: float) -> None:
        if math.isclose(now, 6.0):
            jump.append(round(line.released_until * RATE))

    # Down from 3 s to 6 s, then clearing everything it is given (as a careless listener might).
    out = stream(line, audio, cleared=lambda now: now if now <= 3.0 or now >= 6.0 else None, each=note)
    released = jump[0]
    assert not np.any(out[3 * RATE : released])
    assert np.array_equal(out[released + FADE :], audio[released + FADE :])
    assert line.masked == [MaskedStretch(3.0, seconds(released), MaskReason.UNVERIFIED)]


# -- late marks and late audio -------------------------------------------------------------------------


def test_a_late_mask_counts_what_already_went_out_and_masks_the_rest() -> None:
    audio = loud_noise(8 * RATE)
    line = DelayLine(RATE, POLICY)
    released: list[int] = []

    def late(line: DelayLine, now: float) -> None:
        if 5.0 - 1e-9 <= now < 5.5:
            if not released:
                released.append(round(line.released_until * RATE))
            line.mask(2.0, 3.0, MaskReason.PII, "PHONE_NUMBER")  # reported again and again: counted once

    out = stream(line, audio, each=late)
    lo, hi, gone = 2 * RATE - PAD_BEFORE, 3 * RATE + PAD_AFTER, released[0]
    assert lo < gone < hi
    assert np.array_equal(out[:gone], audio[:gone])  # what went out is not rewritten
    assert np.array_equal(out[gone:hi], beep_at(gone, hi, POLICY))
    assert line.stats.late_masks == 1
    assert line.stats.late_mask_samples == gone - lo
    (record,) = line.late
    assert record.reason is MaskReason.PII
    assert record.entity == "PHONE_NUMBER"
    assert (record.start, record.end) == (seconds(lo), seconds(hi))
    assert record.leaked_s == pytest.approx(seconds(gone - lo))
    assert line.take_late() == [record]
    assert line.late == []
    assert line.stats.late_masks == 1


def test_a_late_mask_over_audio_that_went_out_masked_is_not_a_leak() -> None:
    audio = loud_noise(8 * RATE)
    line = DelayLine(RATE, POLICY)

    def late(line: DelayLine, now: float) -> None:
        if math.isclose(now, 6.0):
            line.mask(2.0, 4.0, MaskReason.PII, "US_SSN")

    stream(line, audio, cleared=lambda now: min(now, 1.0), each=late)
    assert line.stats.late_masks == 0
    assert line.late == []
    assert any(s.reason is MaskReason.PII and s.end == 4.2 for s in line.masked)


def test_late_audio_is_dropped_and_counted_never_written_twice() -> None:
    audio = loud_noise(3 * RATE)
    line = DelayLine(RATE, RedactionPolicy(delay_s=1.0, pad_before_s=0.25, pad_after_s=0.2))
    out: list[AudioChunk] = []
    for start in range(0, 2 * RATE, PACKET):
        line.push(AudioChunk(audio[start : start + PACKET], RATE, start))
        out += line.release_until(seconds(start + PACKET) - 1.0)  # the listener has cleared nothing yet
    released = round(line.released_until * RATE)
    line.push(AudioChunk(loud_noise(PACKET, seed=9), RATE, 0))  # a duplicate of long-gone audio
    straddling = loud_noise(400, seed=10)
    line.push(AudioChunk(straddling, RATE, released - 100))  # a reordered packet, partly too late
    line.clear_until(2.0)  # now the listener catches up, having heard the reordered packet too
    out += line.drain()

    result = joined(out)
    assert len(result) == 2 * RATE
    assert line.stats.late_audio_samples == PACKET + 100
    assert not np.any(result[:released])  # uncleared when it went out: masked
    # The part in time is kept (after the fade out of the masked stretch before it).
    assert np.array_equal(result[released + FADE : released + 300], straddling[100 + FADE :])
    assert np.array_equal(result[released + 300 :], audio[released + 300 : 2 * RATE])


def test_audio_for_time_already_cleared_is_dropped_because_the_listener_never_heard_it() -> None:
    audio = loud_noise(3 * RATE)
    line = DelayLine(RATE, POLICY)
    line.push(AudioChunk(audio, RATE, 0))
    line.clear_until(2.0)
    line.push(AudioChunk(loud_noise(2 * PACKET, seed=4), RATE, RATE))  # e.g. a reordered packet, unheard
    line.clear_until(3.0)
    result = joined(line.drain())
    assert np.array_equal(result, audio)  # what the listener heard and cleared is what goes out
    assert line.stats.unheard_audio_samples == 2 * PACKET
    assert line.stats.late_audio_samples == 0


def test_audio_beyond_what_the_ring_holds_is_dropped_as_early_and_goes_out_as_silence() -> None:
    line = DelayLine(RATE, RedactionPolicy(delay_s=1.0, pad_before_s=0.25, pad_after_s=0.2), headroom_s=0.5)
    line.push(AudioChunk(loud_noise(RATE), RATE, 0))  # fits: the ring holds 1.5 s
    line.push(AudioChunk(loud_noise(RATE, seed=1), RATE, RATE))  # half of it fits
    line.clear_until(3.0)
    out = joined(line.release_until(3.0))
    assert line.stats.early_audio_samples == RATE // 2
    assert len(out) == 3 * RATE
    assert not np.any(out[3 * RATE // 2 :])


# -- the timeline ------------------------------------------------------------------------------------


def test_output_keeps_the_input_timeline_with_gaps_and_any_chunk_sizes() -> None:
    rng = np.random.default_rng(3)
    audio = loud_noise(10 * RATE)
    expected = np.zeros_like(audio)
    line = DelayLine(RATE, POLICY)
    out: list[AudioChunk] = []
    position = 0
    while position < len(audio):
        size = int(rng.integers(1, 700))
        piece = audio[position : position + size]
        if rng.random() > 0.2:  # one in five packets lost: a gap, filled with silence
            line.push(AudioChunk(piece, RATE, position))
            expected[position : position + len(piece)] = piece
        position += len(piece)
        line.clear_until(seconds(position))
        out += line.release_until(seconds(position) - float(rng.uniform(1.0, 2.5)))
    out += line.release_until(12.0)  # past the last packet: the trailing gap is filled up to t

    result = joined(out)
    assert len(result) == 12 * RATE
    assert np.array_equal(result[: len(audio)], expected)
    assert not np.any(result[len(audio) :])


def test_a_long_beep_released_in_pieces_of_any_size_is_one_continuous_tone() -> None:
    audio = loud_noise(8 * RATE)
    lines = DelayLine(RATE, POLICY), DelayLine(RATE, POLICY)
    outputs = []
    for seed, line in enumerate(lines):
        rng = np.random.default_rng(seed)
        line.mask(1.0, 6.0, MaskReason.PII, "CREDIT_CARD")
        chunks: list[AudioChunk] = []
        for start in range(0, len(audio), PACKET):
            line.push(AudioChunk(audio[start : start + PACKET], RATE, start))
            line.clear_until(seconds(start + PACKET))
            # A release clock that ticks unevenly: any piece size, often mid-packet.
            chunks += line.release_until(seconds(start + PACKET) - 2.5 + float(rng.uniform(-0.01, 0.01)))
        chunks += line.drain()
        assert len({len(c) for c in chunks}) > 10
        outputs.append(joined(chunks))

    lo, hi = RATE - PAD_BEFORE, 6 * RATE + PAD_AFTER
    assert np.array_equal(outputs[0], outputs[1])
    assert np.array_equal(outputs[0][lo:hi], beep_at(lo, hi, POLICY))


def test_drain_releases_everything_held_and_masks_the_uncleared_tail() -> None:
    audio = loud_noise(6 * RATE)
    line = DelayLine(RATE, POLICY)
    out: list[AudioChunk] = []
    for start in range(0, len(audio), PACKET):
        line.push(AudioChunk(audio[start : start + PACKET], RATE, start))
        line.clear_until(min(seconds(start + PACKET), 4.0))
        out += line.release_until(seconds(start + PACKET) - 2.5)
    assert line.stats.held_s == pytest.approx(2.5)
    out += line.drain()

    result = joined(out)
    assert len(result) == len(audio)
    assert np.array_equal(result[: 4 * RATE - FADE], audio[: 4 * RATE - FADE])
    assert not np.any(result[4 * RATE :])
    assert line.masked == [MaskedStretch(4.0, 6.0, MaskReason.UNVERIFIED)]
    assert line.stats.held_samples == 0
    assert line.stats.max_held_s == pytest.approx(2.5 + seconds(PACKET))
    assert line.drain() == []


# -- no clicks ---------------------------------------------------------------------------------------


def dc(seconds_: float, level: int = 16000) -> Samples:
    """A constant: the worst case for a hard cut, which would step by the whole level."""
    return np.full(round(seconds_ * RATE), level, dtype=np.int16)


def test_beep_edges_step_no_more_than_the_beep_itself() -> None:
    line = DelayLine(RATE, POLICY)
    line.mask(2.0, 3.0, MaskReason.PII, "CREDIT_CARD")
    out = stream(line, dc(5.0))
    lo, hi = 2 * RATE - PAD_BEFORE, 3 * RATE + PAD_AFTER
    own_step = max_step(beep_at(lo, hi, POLICY))
    assert max_step(out[lo - 2 * FADE : lo + 2 * FADE]) <= own_step
    assert max_step(out[hi - 2 * FADE : hi + 2 * FADE]) <= own_step


def test_silence_edges_ramp_the_original_down_and_up_without_a_step() -> None:
    line = DelayLine(RATE, RedactionPolicy(mode=MaskMode.SILENCE, pad_before_s=0.25, pad_after_s=0.2))
    line.mask(2.0, 3.0, MaskReason.PII, "CREDIT_CARD")
    out = stream(line, dc(5.0))
    # A raised cosine over 40 samples moves a 16000 level by at most 16000 * pi / 80 per sample.
    assert max_step(out) <= math.ceil(16000 * math.pi / (2 * FADE))


@pytest.mark.parametrize("unverified_mode", list(MaskMode))
def test_clear_overtaking_a_masked_stretch_at_a_release_boundary_fades_out(unverified_mode: MaskMode) -> None:
    policy = RedactionPolicy(delay_s=2.5, unverified_mode=unverified_mode, pad_before_s=0.25, pad_after_s=0.2)
    line = DelayLine(RATE, policy)
    # Down from 2 s to 5 s; then clear jumps ahead, so the masked stretch ends where release stands.
    out = stream(line, dc(8.0), cleared=lambda now: now if now <= 2.0 or now >= 5.0 else None)
    (stretch,) = line.masked
    end = round(stretch.end * RATE)
    assert end % PACKET == 0  # the edge falls on a release boundary
    window = out[end - 2 * FADE : end + 2 * FADE]
    limit = max_step(tone(0, RATE, RATE, policy.beep)) if unverified_mode is MaskMode.BEEP else 700
    assert max_step(window) <= limit
    assert np.array_equal(out[end + 2 * FADE :], dc(8.0)[end + 2 * FADE :])


# -- bounded and cheap ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_memory_stays_flat_over_a_two_hour_call() -> None:
    """Two hours in half-second packets: PII every minute, a lagging recognizer that stalls now and then."""
    packet = RATE // 2
    audio = loud_noise(packet, seed=5)
    line = DelayLine(RATE, POLICY)
    tracemalloc.start()
    try:
        baseline = 0
        for index in range(2 * 3600 * 2):
            start = index * packet
            now = seconds(start + packet)
            line.push(AudioChunk(audio, RATE, start))
            if index % 120 == 0:
                line.mask(now - 2.0, now - 0.5, MaskReason.PII, "CREDIT_CARD")
            if index % 1200 >= 20:  # ten seconds of stall every ten minutes
                line.clear_until(now - 1.0)
            line.release_until(now - POLICY.delay_s)
            if index % 120 == 0:
                line.take_masked()  # the transcript writer takes the finished stretches
                line.take_late()
            if index == 1200:
                baseline = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 4096  # bytes, over two hours: nothing accumulates per packet, mark or stretch
    assert line.marks_held <= 2
    assert line.stats.max_held_s <= POLICY.delay_s + 0.5
    assert line.stats.masked_s(MaskReason.PII) > 100
    assert line.stats.late_masks == 0


# -- misuse --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda line: line.mask(float("nan"), 1.0, MaskReason.PII),
        lambda line: line.mask(2.0, 1.0, MaskReason.PII),
        lambda line: line.mask(1.0, 2.0, "secret"),
        lambda line: line.clear_until(float("inf")),
        lambda line: line.release_until(float("nan")),
        lambda line: line.push(AudioChunk(np.zeros(10, dtype=np.int16), 16000, 0)),
    ],
)
def test_nonsense_from_the_caller_is_refused_loudly(call: Callable[[DelayLine], object]) -> None:
    line = DelayLine(RATE, POLICY)
    with pytest.raises(ValueError):  # noqa: PT011 - each call has its own message
        call(line)


def test_a_delay_line_needs_a_sample_rate_and_a_headroom_that_make_sense() -> None:
    with pytest.raises(ValueError, match="sample rate"):
        DelayLine(0, POLICY)
    with pytest.raises(ValueError, match="headroom"):
        DelayLine(RATE, POLICY, headroom_s=-1.0)


def test_clear_until_never_goes_back() -> None:
    line = DelayLine(RATE, POLICY)
    line.clear_until(3.0)
    line.clear_until(1.0)
    assert line.cleared_until == 3.0


@pytest.mark.parametrize("fade_ms", [0.0, 5.0])
def test_releasing_one_sample_at_a_time_gives_what_one_release_gives(fade_ms: float) -> None:
    """Every mark and clear edge lands on a release boundary once: no off-by-one lets a sample through."""
    policy = RedactionPolicy(
        fade_ms=fade_ms, pad_before_s=0.0, pad_after_s=0.0, unverified_mode=MaskMode.BEEP
    )
    audio = loud_noise(RATE // 2)
    outputs = []
    for step in (1, len(audio)):
        line = DelayLine(RATE, policy)
        line.push(AudioChunk(audio, RATE, 0))
        line.clear_until(0.4)
        line.mask(0.1, 0.1 + 37 / RATE, MaskReason.PII, "US_SSN")
        line.mask(0.2, 0.25, MaskReason.DTMF)
        chunks: list[AudioChunk] = []
        for until in range(step, len(audio) + step, step):
            chunks += line.release_until(until / RATE)
        outputs.append(joined(chunks))
    assert np.array_equal(outputs[0], outputs[1])
    for lo, hi in ((800, 837), (1600, 2000), (3200, 4000)):
        assert np.array_equal(outputs[0][lo:hi], beep_at(lo, hi, policy))


# -- provisional marks ----------------------------------------------------------------------------------


def test_a_withdrawn_provisional_stretch_goes_out_unchanged_and_the_rest_stays_masked() -> None:
    audio = loud_noise(6 * RATE)
    line = DelayLine(RATE, POLICY)
    line.mask(1.0, 4.0, MaskReason.PII, "CREDIT_CARD", provisional=True)
    assert line.withdraw(2.0, 3.0) == pytest.approx(1.0)
    out = stream(line, audio)
    kept_lo, kept_hi = 2 * RATE + 2 * FADE, 3 * RATE - 2 * FADE  # clear of the new edges' fades
    assert np.array_equal(out[kept_lo:kept_hi], audio[kept_lo:kept_hi])
    lo = 1 * RATE - PAD_BEFORE
    assert np.array_equal(out[lo : 2 * RATE], beep_at(lo, 2 * RATE, POLICY))
    hi = 4 * RATE + PAD_AFTER
    assert np.array_equal(out[3 * RATE : hi], beep_at(3 * RATE, hi, POLICY))
    assert line.stats.withdrawn_s == pytest.approx(1.0)


def test_withdraw_leaves_firm_marks_alone() -> None:
    audio = loud_noise(5 * RATE)
    line = DelayLine(RATE, POLICY)
    line.mask(1.0, 3.0, MaskReason.PII, "CREDIT_CARD")
    line.mask(1.0, 3.0, MaskReason.PII, "CREDIT_CARD", provisional=True)
    line.withdraw(0.0, 5.0)
    out = stream(line, audio)
    lo, hi = 1 * RATE - PAD_BEFORE, 3 * RATE + PAD_AFTER
    assert np.array_equal(out[lo:hi], beep_at(lo, hi, POLICY))


def test_a_provisional_mark_does_not_merge_with_a_firm_one() -> None:
    audio = loud_noise(5 * RATE)
    line = DelayLine(RATE, POLICY)
    line.mask(1.0, 2.0, MaskReason.PII, "CREDIT_CARD")
    line.mask(1.5, 3.0, MaskReason.PII, "CREDIT_CARD", provisional=True)
    line.withdraw(0.0, 5.0)  # takes back only what the provisional mark added
    out = stream(line, audio)
    lo, hi = 1 * RATE - PAD_BEFORE, 2 * RATE + PAD_AFTER
    assert np.array_equal(out[lo:hi], beep_at(lo, hi, POLICY))
    after = slice(hi + 2 * FADE, len(audio))
    assert np.array_equal(out[after], audio[after])


def test_withdraw_never_reaches_audio_already_released_or_a_fade_under_way() -> None:
    audio = loud_noise(6 * RATE)
    line = DelayLine(RATE, POLICY)
    line.mask(0.5, 5.0, MaskReason.PII, "CREDIT_CARD", provisional=True)
    released: list[AudioChunk] = []
    gone = 0
    for start in range(0, len(audio), PACKET):
        line.push(AudioChunk(audio[start : start + PACKET], RATE, start))
        now = seconds(start + PACKET)
        line.clear_until(now)
        if now == pytest.approx(4.0):
            gone = round(line.released_until * RATE)
            line.withdraw(0.0, 6.0)
        released += line.release_until(now - POLICY.delay_s)
    released += line.drain()
    out = joined(released)
    assert gone > RATE
    lo = int(0.5 * RATE) - PAD_BEFORE
    assert np.array_equal(out[lo:gone], beep_at(lo, gone, POLICY))  # what went out masked stayed so
    margin = 4 * FADE  # a beep's fades reach two ramps each way
    assert np.array_equal(out[gone : gone + margin], beep_at(gone, gone + margin, POLICY))
    assert np.array_equal(out[gone + margin + 2 * FADE :], audio[gone + margin + 2 * FADE :])


def test_withdraw_of_nothing_provisional_changes_nothing() -> None:
    line = DelayLine(RATE, POLICY)
    assert line.withdraw(0.0, 10.0) == 0.0
    assert line.withdraw(3.0, 2.0) == 0.0
    with pytest.raises(ValueError, match="finite"):
        line.withdraw(math.nan, 1.0)
