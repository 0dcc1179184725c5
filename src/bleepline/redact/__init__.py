"""Redaction: the delay line that holds call audio and the policy that says how it is masked.

Takes spans and marks on the call timeline; knows nothing of how they were found.
"""

from __future__ import annotations

from bleepline.redact.delayline import DelayLine, DelayLineStats, LateMask, MaskedStretch
from bleepline.redact.policy import MaskMode, MaskReason, RedactionPolicy

__all__ = [
    "DelayLine",
    "DelayLineStats",
    "LateMask",
    "MaskMode",
    "MaskReason",
    "MaskedStretch",
    "RedactionPolicy",
]
