"""bench/perturb.py: every variant keeps the timeline (or moves the truth with it exactly) and repeats.

A synthetic call (tone bursts over a faint floor) stands in for speech: no recogniser, no shared data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bench import eval_redaction, perturb

RATE = 8000


def _call(rate: int = RATE, seconds: float = 4.0) -> tuple[np.ndarray, dict[str, Any]]:
    """Tone bursts ("digits") at known times over a -70 dBFS floor, with their truth."""
    rng = np.random.default_rng(7)
    signal = rng.normal(0.0, 10 ** (-70 / 20), round(seconds * rate))
    digits = []
    for i, start in enumerate((0.50, 1.10, 1.70, 2.30)):
        lo, hi = round(start * rate), round((start + 0.4) * rate)
        t = np.arange(hi - lo) / rate
        signal[lo:hi] += 0.1 * np.sin(2 * np.pi * (300 + 150 * i) * t) * np.hanning(hi - lo)
        digits.append({"digit": str(i + 1), "start": lo / rate, "end": hi / rate})
    truth = {
        "audio": "synthetic.wav",
        "sample_rate": rate,
        "duration": len(signal) / rate,
        "pii": [
            {"entity": "PIN", "text": "1234", "start": digits[0]["start"], "end": digits[-1]["end"]}
            | {"digits": digits}
        ],
        "words": [{"text": "one two three four", "start": digits[0]["start"], "end": digits[-1]["end"]}],
    }
    pcm = np.clip(np.round(signal * 32768), -32768, 32767).astype(np.int16)
    return pcm, truth


CLIPS = tuple(
    np.sin(2 * np.pi * f * np.arange(2000) / RATE) * np.hanning(2000) * 0.05 for f in (200, 310, 450, 520)
)


def _times(truth: dict[str, Any]) -> list[float]:
    out = []
    for item in truth["pii"]:
        out += [item["start"], item["end"]]
        for d in item.get("digits", []):
            out += [d["start"], d["end"]]
    for w in truth.get("words", []):
        out += [w["start"], w["end"]]
    return out


@pytest.mark.parametrize("variant", perturb.VARIANTS)
def test_length_rate_and_truth_agree(variant: str) -> None:
    samples, truth = _call()
    out, rate, moved = perturb.perturb(variant, samples, RATE, truth, "synthetic", clips=CLIPS)
    assert out.dtype == np.int16
    assert moved["sample_rate"] == rate
    assert moved["duration"] == len(out) / rate
    assert len(perturb.speech_reference(variant, samples, RATE)) == len(out)
    before, after = _times(truth), _times(moved)
    if variant.startswith("pad"):
        pad = round(int(variant[3:]) / 1000 * RATE)
        assert len(out) == len(samples) + pad
        assert after == [t + pad / RATE for t in before]
    elif variant in perturb.TEMPO:
        up, down = perturb.TEMPO[variant]
        assert after == [t * up / down for t in before]
        assert abs(len(out) - len(samples) * up / down) < up
    else:
        assert len(out) == len(samples)
        assert after == before
    assert all(0 <= t <= moved["duration"] for t in after)
    assert truth["pii"][0]["start"] == 0.5  # the input truth is not touched


def test_tele_goes_to_8k_from_16k_and_keeps_times() -> None:
    samples, truth = _call(rate=16000)
    out, rate, moved = perturb.perturb("tele", samples, 16000, truth, "wide")
    assert rate == 8000
    assert len(out) == len(samples) // 2
    assert _times(moved) == _times(truth)
    # Band-limited to the telephone band: a 150 Hz tone is gone, a 1 kHz tone stays.
    t = np.arange(16000) / 16000
    low = perturb.perturb(
        "tele", np.round(8000 * np.sin(2 * np.pi * 150 * t)).astype(np.int16), 16000, truth, "x"
    )
    mid = perturb.perturb(
        "tele", np.round(8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16), 16000, truth, "x"
    )
    assert np.std(low.samples.astype(float)) < 0.05 * np.std(mid.samples.astype(float))


@pytest.mark.parametrize("variant", perturb.VARIANTS)
def test_deterministic_and_seeded_by_call_and_variant(variant: str) -> None:
    samples, truth = _call()
    a = perturb.perturb(variant, samples, RATE, truth, "synthetic", clips=CLIPS)
    b = perturb.perturb(variant, samples, RATE, truth, "synthetic", clips=CLIPS)
    assert np.array_equal(a.samples, b.samples)
    assert a.truth == b.truth
    if variant in ("pad137", "noise25", "pink15", "babble15", "loss3"):
        other = perturb.perturb(variant, samples, RATE, truth, "another call", clips=CLIPS)
        assert not np.array_equal(a.samples, other.samples)


def test_plain_is_the_call_itself() -> None:
    samples, truth = _call()
    out = perturb.perturb("plain", samples, RATE, truth, "synthetic")
    assert np.array_equal(out.samples, samples)


def test_padding_is_the_floor_not_digital_zero() -> None:
    samples, truth = _call()
    out = perturb.perturb("pad410", samples, RATE, truth, "synthetic")
    pad = out.samples[: round(0.41 * RATE)].astype(float) / 32768
    assert np.count_nonzero(pad) > 0.5 * len(pad)
    assert abs(20 * np.log10(np.sqrt(np.mean(pad**2))) - perturb.noise_floor_dbfs(samples, RATE)) < 1.5
    assert np.array_equal(out.samples[round(0.41 * RATE) :], samples)


@pytest.mark.parametrize(("variant", "snr"), [("noise25", 25.0), ("pink15", 15.0), ("babble15", 15.0)])
def test_noise_sits_at_its_snr_below_the_speech(variant: str, snr: float) -> None:
    samples, truth = _call()
    out = perturb.perturb(variant, samples, RATE, truth, "synthetic", clips=CLIPS)
    noise = out.samples.astype(float) - samples.astype(float)
    measured = perturb.speech_level_dbfs(samples, RATE) - 20 * np.log10(
        np.sqrt(np.mean((noise / 32768) ** 2))
    )
    assert abs(measured - snr) < 0.2


def test_levels() -> None:
    samples, truth = _call()
    quiet = perturb.perturb("quiet", samples, RATE, truth, "synthetic").samples
    assert perturb.speech_level_dbfs(samples, RATE) - perturb.speech_level_dbfs(quiet, RATE) == pytest.approx(
        12.0, abs=0.1
    )
    hot = perturb.perturb("loud6clip", samples * 8, RATE, truth, "synthetic").samples
    # Clipped at full scale, not wrapped round.
    assert hot.max() == 32767
    assert hot.min() == -32768


def test_loss_drops_three_percent_of_whole_packets() -> None:
    samples, truth = _call()
    samples = samples | 1  # no sample is zero before the loss
    out = perturb.perturb("loss3", samples, RATE, truth, "synthetic").samples
    packets = out.reshape(-1, 160)
    lost = np.all(packets == 0, axis=1)
    assert lost.sum() == round(0.03 * len(packets))
    assert np.array_equal(packets[~lost], samples.reshape(-1, 160)[~lost])


def test_opus_keeps_the_timeline() -> None:
    samples, truth = _call()
    out = perturb.perturb("opus16", samples, RATE, truth, "synthetic").samples
    assert len(out) == len(samples)
    a, b = samples.astype(float), out.astype(float)
    lags = list(range(-20, 21))
    corr = [np.dot(a[100 + k : len(a) - 100 + k], b[100 : len(b) - 100]) for k in lags]
    assert lags[int(np.argmax(corr))] == 0
    assert max(corr) > 0.8 * np.sqrt(np.dot(a, a) * np.dot(b, b))


def test_fft_resample_puts_samples_where_the_ratio_says() -> None:
    t = np.arange(1900) / RATE
    tone = np.sin(2 * np.pi * 250 * t)
    slow = perturb.fft_resample(tone, 20, 19)
    assert len(slow) == 2000
    # Output sample j is input time j * 19/20 samples: the same tone, stretched.
    expected = np.sin(2 * np.pi * 250 * np.arange(2000) * 19 / 20 / RATE)
    assert np.max(np.abs(slow[100:-100] - expected[100:-100])) < 0.02


def test_lost_frames_hold_no_speech_in_the_comparison() -> None:
    samples, _ = _call()
    lossy = samples.copy()
    lossy[round(0.6 * RATE) : round(0.6 * RATE) + 160] = 0
    # Released as silence where the packet was lost, unchanged elsewhere: nothing was masked.
    frames = eval_redaction.Frames.compare(lossy, lossy.copy(), RATE, reference=samples)
    index = round(0.6 * RATE) // 160
    assert not frames.speech[index]
    assert frames.speech[index + 1]
    assert frames.audible[index + 1]
