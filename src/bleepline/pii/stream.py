"""Following one call's words as they are recognised, and the PII spans found in them.

The recognizer hands out final words once and tentative words that replace each other; the detector is
stateless over the words it is given. ``SpanTracker`` keeps the recent final words and the current
tentative ones, and runs the detector over them whenever they change.
"""

from __future__ import annotations

from collections.abc import Sequence

from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.recognizers import BRIDGE_S
from bleepline.timeline import PiiSpan, Word


class SpanTracker:
    """The words of one call in a sliding context, and the spans the detector finds in them.

    ``context_s`` bounds the words kept: a cue said longer ago than that no longer opens a span, and the
    detector's cost per update stays flat however long the call runs.
    """

    def __init__(self, detector: SpokenPiiDetector, context_s: float = 30.0) -> None:
        if context_s <= 0:
            raise ValueError(f"context_s must be positive, got {context_s}")
        self.detector = detector
        self.context_s = context_s
        self._final: list[Word] = []
        self._tentative: tuple[Word, ...] = ()

    @property
    def words(self) -> tuple[Word, ...]:
        """The words the detector sees now: recent final words, then the tentative ones."""
        return (*self._final, *self._tentative)

    def update(
        self, final: Sequence[Word], tentative: Sequence[Word], heard_until: float, *, ended: bool = False
    ) -> list[PiiSpan]:
        """Add newly final words, replace the tentative ones, and return the spans found now.

        ``heard_until`` is how far the audio has been heard (seconds): silence after the last word up to
        it counts as a pause, which lets a value at the end of what was said close. ``ended``: the call
        is over, so the silence after the last word is as long as any pause that ends a value.
        """
        if ended:
            # Nothing more will be said: the silence after the last word outlasts any pause that could
            # continue a value, or bridge one to digits said after it.
            heard_until += max(self.detector.options.max_gap_s, BRIDGE_S) + 1.0
        self._final.extend(final)
        self._tentative = tuple(tentative)
        horizon = heard_until - self.context_s
        if self._final and self._final[0].end < horizon:
            self._final = [w for w in self._final if w.end >= horizon]
        if not self._final and not self._tentative:
            return []
        return self.detector.detect(self.words, heard_until=heard_until)
