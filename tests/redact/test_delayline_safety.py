"""The safety gate under random schedules: no sample goes out as it came in unless cleared and unmarked.

Each seed drives a delay line with random pushes (gaps, duplicates, reordered and late packets), marks
(early, late, overlapping), clears (advancing, stalling, jumping) and releases (any size, past the end),
and checks every released sample against a model of what the line knew when that sample went out.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from bleepline.audio.tones import tone
from bleepline.redact.delayline import DelayLine
from bleepline.redact.policy import MaskMode, MaskReason, RedactionPolicy
from bleepline.timeline import AudioChunk, Samples
from tests.redact.conftest import RATE, loud_noise

CALL = 6 * RATE

Mask = npt.NDArray[np.bool_]


def random_policy(rng: np.random.Generator) -> RedactionPolicy:
    modes = list(MaskMode)
    return RedactionPolicy(
        delay_s=float(rng.uniform(0.2, 1.0)),
        mode=modes[int(rng.integers(2))],
        unverified_mode=modes[int(rng.integers(2))],
        pad_before_s=float(rng.uniform(0.0, 0.3)),
        pad_after_s=float(rng.uniform(0.0, 0.3)),
        fade_ms=float(rng.choice([0.0, 1.0, 5.0, 10.0])),
    )


class Model:
    """What the delay line should hold and know: audio by position, clear point, padded marks in samples."""

    def __init__(self, line: DelayLine) -> None:
        self.line = line
        self.held = np.zeros(4 * CALL, dtype=np.int16)
        self.marks: list[tuple[int, int, bool]] = []  # (first, last, beeps)
        self.capacity = line.stats.capacity_samples
        self.released = 0
        self.reach = 2 * round(line.policy.fade_ms * RATE / 1000)
        self.carry_until = 0

    def push(self, start: int, samples: Samples) -> None:
        """Held unless already released, already cleared (never heard), or beyond the ring."""
        cleared = round(self.line.cleared_until * RATE)
        lo = max(start, self.released, cleared)
        hi = min(start + len(samples), self.released + self.capacity)
        if lo < hi:
            self.held[lo:hi] = samples[lo - start : hi - start]

    def mark(self, start: float, end: float, reason: MaskReason) -> None:
        policy = self.line.policy
        first = max(0, math.floor((start - policy.pad_before_s) * RATE + 1e-6))
        last = math.ceil((end + policy.pad_after_s) * RATE - 1e-6)
        self.marks.append((first, last, policy.mode_for(reason) is MaskMode.BEEP))

    def protection(self, lo: int, hi: int) -> tuple[Mask, Mask]:
        """For positions [lo, hi): masked in full as the line knows now, and masked by a beep."""
        cleared = round(self.line.cleared_until * RATE)
        positions = np.arange(lo, hi)
        protected = positions >= cleared
        unverified_beeps = self.line.policy.unverified_mode is MaskMode.BEEP
        beeped = protected.copy() if unverified_beeps else np.zeros_like(protected)
        for first, last, beeps in self.marks:
            inside = (positions >= first) & (positions < last)
            protected |= inside
            if beeps:
                beeped |= inside
        return protected, beeped

    def check_release(self, released: list[AudioChunk], until: int) -> int:
        """Check one release call's chunks; return how many samples went out masked in full."""
        masked_in_full = 0
        for chunk in released:
            assert chunk.start == self.released, "chunks must tile the timeline"
            lo, hi = chunk.start, chunk.end
            out = chunk.samples
            original = self.held[lo:hi]
            protected, beeped = self.protection(lo, hi)
            masked_in_full += int(protected.sum())
            beep = tone(lo, hi - lo, RATE, self.line.policy.beep)

            # Masked in full: exactly the beep where one is due; elsewhere silence, or a beep fading out
            # over it (never louder than the beep, never the original).
            assert np.array_equal(out[beeped], beep[beeped])
            quiet = protected & ~beeped
            assert np.all(np.abs(out[quiet].astype(np.int32)) <= np.abs(beep[quiet].astype(np.int32)))
            assert np.all(out[quiet].astype(np.int32) * beep[quiet] >= 0)
            # The gate's rule, stated directly: an unchanged, non-silent sample was cleared and unmarked.
            unchanged = (out == original) & (original != 0)
            assert not np.any(unchanged & protected)

            # Far from every mask edge (and from a fade carried over from the last release): untouched.
            wide, _ = self.protection(lo - self.reach, hi + self.reach)
            near = np.convolve(wide, np.ones(2 * self.reach + 1), mode="valid")[: hi - lo] > 0
            positions = np.arange(lo, hi)
            free = ~near & (positions >= self.carry_until)
            assert np.array_equal(out[free], original[free])
            if near[-1] or positions[-1] < self.carry_until:
                self.carry_until = max(self.carry_until, hi + self.reach)
            self.released = hi
        assert self.released == max(until, self.released)
        return masked_in_full


@pytest.mark.parametrize("seed", range(40))
def test_no_sample_goes_out_unchanged_unless_cleared_and_unmarked_when_released(seed: int) -> None:
    rng = np.random.default_rng(seed)
    line = DelayLine(RATE, random_policy(rng), headroom_s=float(rng.uniform(0.0, 1.0)))
    model = Model(line)
    first_take, second_take = loud_noise(CALL, seed=seed), loud_noise(CALL, seed=seed + 1000)
    cursor = 0  # the newest audio pushed so far
    masked_in_full = 0
    entities = ("CREDIT_CARD", "PHONE_NUMBER", None)

    while cursor < CALL:
        op = rng.random()
        if op < 0.45:
            size = int(rng.integers(1, 400))
            if rng.random() < 0.1:
                cursor += size  # lost packets: a gap
                continue
            if rng.random() < 0.15:
                # A duplicate or reordered packet, some of it possibly already released.
                start = max(0, cursor - int(rng.integers(1, 4000)))
                samples = second_take[start : start + size]
            else:
                start, samples = cursor, first_take[cursor : cursor + size]
                cursor += len(samples)
            model.push(start, samples)
            line.push(AudioChunk(samples, RATE, start))
        elif op < 0.6:
            if rng.random() < 0.7:  # else a stall; and clear sometimes goes back, which changes nothing
                line.clear_until(cursor / RATE - float(rng.uniform(-0.2, 1.5)))
        elif op < 0.75:
            begin = line.released_until + float(rng.uniform(-0.6, 1.5))  # late ones too
            end = begin + float(rng.uniform(0.0, 1.0))
            reason = list(MaskReason)[int(rng.integers(3))]
            line.mask(begin, end, reason, entities[int(rng.integers(3))])
            model.mark(begin, end, reason)
        else:
            t = cursor / RATE - line.policy.delay_s + float(rng.uniform(-0.2, 0.2))
            if rng.random() < 0.02:  # the clock jumps: a trailing gap, maybe longer than the ring
                t += float(rng.uniform(0.0, 3.0))
            until = math.floor(t * RATE + 1e-6)
            masked_in_full += model.check_release(line.release_until(t), until)

    masked_in_full += model.check_release(line.drain(), 0)
    assert line.stats.released_samples == model.released
    assert sum(line.stats.masked_samples.values()) == masked_in_full
