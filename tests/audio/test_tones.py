from __future__ import annotations

import numpy as np
import pytest

from bleepline.audio.tones import BeepStyle, beep, tone


def test_beep_has_the_level_and_frequency_asked_for() -> None:
    style = BeepStyle(frequency=1000.0, level_dbfs=-6.0)
    samples = beep(8000, 8000, style)
    peak_dbfs = 20 * np.log10(np.max(np.abs(samples)) / 32767)
    assert peak_dbfs == pytest.approx(-6.0, abs=0.1)
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second


def test_beep_fades_in_and_out_so_it_does_not_click() -> None:
    samples = beep(8000, 8000, BeepStyle(fade_ms=5.0)).astype(np.int32)
    assert abs(samples[0]) < 300
    assert abs(samples[-1]) < 300
    # Sample-to-sample steps at the edges are no larger than inside the tone.
    inner_step = np.max(np.abs(np.diff(samples[2000:3000])))
    assert np.max(np.abs(np.diff(samples[:80]))) <= inner_step


def test_tone_is_phase_continuous_across_chunks() -> None:
    whole = tone(0, 960, 48000)
    pieces = np.concatenate([tone(start, 320, 48000) for start in (0, 320, 640)])
    assert np.array_equal(whole, pieces)


def test_a_short_beep_still_fades_both_ways() -> None:
    samples = beep(10, 8000)
    assert len(samples) == 10
    assert abs(int(samples[0])) < abs(int(np.max(np.abs(samples)))) or np.all(samples == 0)


@pytest.mark.parametrize("kwargs", [{"frequency": 5.0}, {"level_dbfs": 3.0}, {"fade_ms": -1.0}])
def test_impossible_beep_styles_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="beep"):
        BeepStyle(**kwargs)
