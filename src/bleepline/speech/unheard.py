"""Unheard speech: stretches the voice activity detector calls speech and the recognizer, once final, wrote
no word for.

Whisper drops words, most of all inside long runs of digits and spelled letters: on the evaluation calls
nearly every such stretch of half a second or more lay inside a card, account or phone number. What was
never written down was never checked for personal data, so it is not cleared: the listener reports it as
``unverified`` and the redactor masks it (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bleepline.speech.vad import SpeechRegion
from bleepline.timeline import Word

#: Shorter gaps are breaths, hesitations and Whisper's loose word edges, not lost words.
MIN_UNHEARD_S = 0.5
#: A word covers this much more than its own edges (Whisper's word times are loose by about this much).
WORD_MARGIN_S = 0.2


@dataclass
class UnheardSpeech:
    """Collects speech regions and final words of one call, and finds speech no final word covers.

    A region is checked once, whole, when it has closed and the transcript is final past its end (the
    listener makes the recognizer final at every pause, so that is soon after the region closes).
    """

    min_s: float = MIN_UNHEARD_S
    word_margin_s: float = WORD_MARGIN_S
    region_padding_s: float = 0.0  # how far the VAD widened each region beyond its speech

    def __post_init__(self) -> None:
        self._regions: list[SpeechRegion] = []  # closed, not yet checked
        self._words: list[tuple[float, float]] = []  # final words that may still cover a region

    def add(self, regions: Iterable[SpeechRegion], words: Iterable[Word]) -> None:
        self._regions.extend(regions)
        self._words.extend((word.start, word.end) for word in words)

    def check(self, final_until: float) -> list[tuple[float, float]]:
        """Stretches of speech in regions that are final by ``final_until`` that no final word covers."""
        ready = [region for region in self._regions if region.end <= final_until]
        if not ready:
            return []
        self._regions = [region for region in self._regions if region.end > final_until]
        gaps: list[tuple[float, float]] = []
        margin = self.word_margin_s
        for region in ready:
            # The speech itself, without the padding: a padded edge past the last word is not a lost word.
            first, last = region.start + self.region_padding_s, region.end - self.region_padding_s
            at = first
            for start, end in sorted(w for w in self._words if w[1] + margin > first):
                if start - margin >= last:
                    break
                if start - margin - at >= self.min_s:
                    gaps.append((at, start - margin))
                at = max(at, end + margin)
            if last - at >= self.min_s:
                gaps.append((at, last))
        # Words before every region still waiting can no longer cover anything.
        horizon = min((region.start for region in self._regions), default=final_until)
        self._words = [w for w in self._words if w[1] + margin > horizon]
        return gaps
