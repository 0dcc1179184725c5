"""What masking means for one deployment: how long audio is held, what a mask sounds like, how wide it is.

A ``RedactionPolicy`` is a value: it goes into recording headers and transcripts under its ``version``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from bleepline.audio.tones import BeepStyle


class MaskMode(StrEnum):
    """What replaces masked audio."""

    BEEP = "beep"
    SILENCE = "silence"


class MaskReason(StrEnum):
    """Why audio was masked, as the transcript's redactions list and the metrics report it."""

    PII = "pii"
    DTMF = "dtmf"
    UNVERIFIED = "unverified"


#: Longest hold a policy may ask for: memory per call grows with it, and a caller waits that long.
MAX_DELAY_S = 30.0
#: Widest padding: beyond this a mask hides neighbouring words rather than loose word edges.
MAX_PAD_S = 2.0
#: Longest crossfade: past a few tens of ms a fade is audible as a swell, not a smooth edge.
MAX_FADE_MS = 50.0


@dataclass(frozen=True)
class RedactionPolicy:
    """How the delay line masks.

    ``delay_s``: how long audio is held before release; the recognizer and the detector have this long to
    clear it or mark it. ``mode`` is how PII and DTMF stretches sound, ``unverified_mode`` how audio that
    was never cleared sounds. ``pad_before_s``/``pad_after_s`` widen every mark (all reasons); the widened
    stretch is masked in full. ``fade_ms`` is the length of one ramp at a mask edge, laid just outside the
    masked stretch so that no original sample survives inside it, not even a faded one: into a beep, the
    original fades out over one ramp and then the beep fades in over the next (one after the other, so the
    two never add up into a step); into silence, the original fades out. Edges out mirror edges in.
    """

    # 3.5 s: on the evaluation calls no PII was audible at any delay tested (1.5-5 s) and no mark came
    # late from 2.5 s up; what a shorter delay costs is masking of other speech: 5.5 % at 3 s, 4.6 % at
    # 3.5 s, 4.3 % at 5 s. 3.5 s is the shortest delay under 5 % (bench/eval_redaction.py).
    delay_s: float = 3.5
    mode: MaskMode = MaskMode.BEEP
    # Silence, not a beep: a beep should mean "personal data was here"; an outage of the recognizer (or a
    # quiet stretch it never finalised) would otherwise turn into minutes of tone. The transcript still
    # says why (reason "unverified").
    unverified_mode: MaskMode = MaskMode.SILENCE
    beep: BeepStyle = field(default_factory=BeepStyle)
    # Spans arrive padded already: the detector widens them by its measured word-edge error (0.25 s
    # before, up to 0.45 s into a following pause). This is only the margin for rounding and fades; the
    # 0.25/0.2 s once used here on top doubled the padding and over-redacted 30.6 % of non-PII speech
    # against 23.2 % at 0.05 s, with no PII audible at 3 s either way (bench/eval_redaction.py).
    pad_before_s: float = 0.05
    pad_after_s: float = 0.05
    fade_ms: float = 5.0
    version: str = "1"

    def __post_init__(self) -> None:
        _check_range("delay_s", self.delay_s, 0.0, MAX_DELAY_S, low_open=True)
        _check_range("pad_before_s", self.pad_before_s, 0.0, MAX_PAD_S)
        _check_range("pad_after_s", self.pad_after_s, 0.0, MAX_PAD_S)
        _check_range("fade_ms", self.fade_ms, 0.0, MAX_FADE_MS)
        for name in ("mode", "unverified_mode"):
            # A policy read from a config file says "beep": take the plain string, refuse anything else.
            value = getattr(self, name)
            if not isinstance(value, MaskMode):
                if value not in tuple(MaskMode):
                    raise ValueError(f"redaction policy {name} must be one of {', '.join(MaskMode)}")
                object.__setattr__(self, name, MaskMode(value))
        if not isinstance(self.beep, BeepStyle):
            raise ValueError("redaction policy beep must be a BeepStyle")
        if not (isinstance(self.version, str) and 0 < len(self.version) <= 64 and self.version.isprintable()):
            raise ValueError("redaction policy version must be 1..64 printable characters")

    def mode_for(self, reason: MaskReason) -> MaskMode:
        """How audio masked for ``reason`` sounds."""
        return self.unverified_mode if reason is MaskReason.UNVERIFIED else self.mode

    def describe(self) -> dict[str, str | float]:
        """The policy as plain values, for a recording header or a transcript."""
        return {
            "version": self.version,
            "delay_s": self.delay_s,
            "mode": str(self.mode),
            "unverified_mode": str(self.unverified_mode),
            "beep_hz": self.beep.frequency,
            "beep_dbfs": self.beep.level_dbfs,
            "pad_before_s": self.pad_before_s,
            "pad_after_s": self.pad_after_s,
            "fade_ms": self.fade_ms,
        }


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    # bool is an int: a policy read from a config file with "delay_s = true" must not pass as 1 s.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"redaction policy {name} must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"redaction policy {name} must be in {bracket}{low}, {high}], got {value}")
