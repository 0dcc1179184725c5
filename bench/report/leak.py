"""Leak and over-redaction by delay D: ``bench.eval_redaction``'s measurement, on one loaded model.

The calls are transcribed once (the listener does not depend on D) and every D replays that hearing
through a real CallSession, so the figures per D are deterministic given the transcription: repeating
them would show no spread, and none is claimed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench import eval_redaction
from bench.eval_pii import SHARED_CALLS, truth_calls
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.speech.models import ModelSpec, load_whisper

FULL_DELAYS = (1.5, 2.0, 2.5, 3.0, 3.5, 5.0)
QUICK_DELAYS = (2.0, 3.0)
#: The quick run's calls: a card number and a phone number, the two the README's demo is about.
QUICK_CALLS = ("card_kal_8k", "phone_awb_8k")


def run(model: ModelSpec, delays: Sequence[float], quick: bool) -> dict[str, Any]:
    paths = truth_calls("fixtures" if quick else "all")
    if quick:
        paths = [p for p in paths if p.stem in QUICK_CALLS]
    whisper = load_whisper(model)
    detector = SpokenPiiDetector()
    began = time.perf_counter()
    calls = [eval_redaction.record(path, whisper, detector) for path in paths]
    transcribed_s = time.perf_counter() - began
    return {
        "calls": len(calls),
        "fixture_calls": sum(1 for p in paths if p.parent != SHARED_CALLS),
        "shared_calls": sum(1 for p in paths if p.parent == SHARED_CALLS),
        "shared_present": SHARED_CALLS.is_dir(),
        "audio_s": sum(c.chunks[-1].end / c.chunks[-1].sample_rate for c in calls),
        "transcription_wall_s": transcribed_s,
        "delays": [eval_redaction.evaluate(calls, float(d)) for d in delays],
    }
