"""bench/eval_robust.py's figures and the report's robustness section, from made-up scores (no Whisper).

What is checked: leaks, PERSON found, over-redaction mean and worst are counted as their docstrings say,
and the section renders them with the plain run first.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench import eval_redaction as er
from bench import eval_robust
from bench.report import render

from bleepline.listener import Hearing


def _row(call: str, variant: str, heard: int, person_audible: int, masked: int) -> dict[str, Any]:
    score = er.CallScore(
        call,
        spans=[
            er.SpanScore("PIN", 1.0, 2.0, 40, heard),
            er.SpanScore("PERSON", 3.0, 3.5, 20, person_audible),
        ],
        digits=[er.DigitScore("PIN", "7", 1.0, 1.4, 20, heard), er.DigitScore("PIN", "3", 1.6, 2.0, 20, 0)],
        other_speech=100,
        other_masked=masked,
        late_masks=variant == "quiet",
        late_mask_s=0.5 if variant == "quiet" else 0.0,
    )
    return {"call": call, "variant": variant, "audio_s": 10.0, "wall_s": 1.0, "score": asdict(score)}


ROWS = [
    _row("a", "plain", heard=0, person_audible=0, masked=5),
    _row("b", "plain", heard=0, person_audible=1, masked=15),
    _row("a", "quiet", heard=10, person_audible=3, masked=40),  # '7' half audible: leaked; PERSON 85 %
    _row("b", "quiet", heard=1, person_audible=0, masked=0),  # '7' touched, not leaked
]


def test_figures_per_variant() -> None:
    result = eval_robust.report(ROWS, ["plain", "quiet"])
    plain, quiet = result["by_variant"]["plain"], result["by_variant"]["quiet"]
    assert plain["digits_leaked"] == 0
    assert plain["persons_found"] == 2  # 19 of 20 frames masked is 95 %
    assert plain["over_redaction_mean"] == pytest.approx(0.10)
    assert plain["over_redaction_max"] == pytest.approx(0.15)
    assert plain["over_redaction_max_call"] == "b"
    assert quiet["digits"] == 4
    assert quiet["digits_leaked"] == 1
    assert quiet["digits_with_any_audible_frame"] == 2
    assert quiet["pii_audible"] == pytest.approx((10 + 3 + 1) / 120)
    assert quiet["persons_found"] == 1
    assert quiet["late_masks"] == 2
    assert result["overall_perturbed"]["call_variants"] == 2
    assert result["leaks"] == [
        {"call": "a", "variant": "quiet", "entity": "PIN", "digit": "7", "start": 1.0, "audible": 0.5}
    ]


def test_unscored_truth_is_guarded_but_not_counted() -> None:
    """A span marked ``scored: false`` (tempo-shifted keypad tones) is neither PII nor other speech."""
    rate = 8000
    tone = np.round(8000 * np.sin(2 * np.pi * 440 * np.arange(4 * rate) / rate)).astype(np.int16)
    chunks = er.chunked(tone, rate)
    # A listener that cleared everything as it went and found nothing: all audio comes out unchanged.
    hearings = [Hearing(c.end / rate, c.end / rate, ()) for c in chunks]
    truth = [
        {
            "entity": "DTMF",
            "start": 1.0,
            "end": 2.0,
            "scored": False,
            "digits": [{"digit": "5", "start": 1.0, "end": 1.1}],
        },
        {"entity": "PIN", "start": 3.0, "end": 3.5, "digits": [{"digit": "1", "start": 3.0, "end": 3.5}]},
    ]
    call = er.Recorded("synthetic", truth, chunks, hearings, Hearing(4.0, 4.0, ()))
    score = er.score(call, 1.0)
    assert [s.entity for s in score.spans] == ["PIN"]
    assert [d.digit for d in score.digits] == ["1"]
    assert score.digits[0].leaked
    # 4 s of tone in 20 ms frames, less each span with its 0.3 s guard band either side.
    assert score.other_speech == 200 - (50 + 30) - (25 + 30)
    assert score.other_masked == 0


def test_report_section_lists_variants_with_plain_first(tmp_path: Path) -> None:
    result = eval_robust.report(ROWS, ["plain", "quiet"])
    result.update(call_sets=["dev"], audio_s=40.0, model="whisper-tiny-en")
    lines = render.robust({"robust": result})
    text = "\n".join(lines)
    assert lines[0] == "## Robustness by variant"
    assert text.index("| plain (beside) |") < text.index("| quiet |") < text.index("| all perturbed |")
    assert "a / quiet: PIN '7' at 1.00 s (50 % audible)" in text
    assert "not measured: this section was not run" in "\n".join(render.robust({}))
