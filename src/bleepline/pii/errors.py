"""Errors of the PII layer: the detector could not be built or could not read an utterance.

Either way the caller must fail closed and mask. Messages name the stage and never the words.
"""

from __future__ import annotations

from bleepline.errors import BleeplineError


class PiiDetectorError(BleeplineError):
    """The PII detector failed; the audio it was judging has not been cleared and must be masked."""
