"""Unheard speech: stretches the voice activity detector calls speech and the recognizer, once final, wrote
no word for.

Whisper drops words, most of all inside long runs of digits and spelled letters: a dropped digit is a
short voiced stretch with no word on it, often a VAD region of its own when the caller reads the number
slowly. What was never written down was never checked for personal data, so it is not cleared: the
listener reports it as ``unverified`` and the redactor masks it (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bleepline.speech.vad import SpeechRegion
from bleepline.timeline import Word

#: Shorter uncovered stretches are breaths, hesitations and Whisper's loose word edges, not lost words.
MIN_UNHEARD_S = 0.5
#: Inside a sensitive stretch (a value being said, or just said), a lost word is most likely a digit, and
#: a spoken digit can be as short as 0.2 s: this much uncovered speech there counts.
MIN_SENSITIVE_S = 0.15
#: Uncovered stretches closer than this to each other, with no word between them, are one lost stretch
#: (a digit group read with short pauses, each digit a region of its own): their lengths add up.
CLUSTER_GAP_S = 0.6
#: A word covers this much more than its own edges (Whisper's word times are loose by about this much).
WORD_MARGIN_S = 0.2
#: ...and the last word before a pause this much past its end: Whisper ends it early, by 0.1 s
#: typically and up to 0.4 s on the evaluation calls. A span reaches as far into the pause after a
#: value (the detector's ``pause_padding_s``), so a digit dropped there is masked all the same.
TAIL_MARGIN_S = 0.45
#: Uncovered slivers shorter than this are rounding at word edges: never counted, even in a cluster.
_SLIVER_S = 0.04


@dataclass(frozen=True)
class _Gap:
    """Uncovered speech (``start``-``end``, judged by its length) and what to mask if it is reported: out
    to the VAD's padding and the neighbouring words' own edges, since a lost word's weak onset and tail
    fall outside the frames the VAD called speech."""

    start: float
    end: float
    mask_start: float
    mask_end: float

    @property
    def masked(self) -> tuple[float, float]:
        return (self.mask_start, self.mask_end)


@dataclass
class UnheardSpeech:
    """Collects speech regions and final words of one call, and finds speech no final word covers.

    A region is checked once, whole, when it has closed and the transcript is final past its end (the
    listener makes the recognizer final at every pause, so that is soon after the region closes). An
    uncovered stretch is reported when it is long enough by itself (``min_s``), when it lies in a
    sensitive stretch the caller names (``min_sensitive_s``), or when, with its neighbours of a cluster
    (``cluster_gap_s``, no word between them, checked now or just before), it adds up to ``min_s``. A
    stretch reported for its cluster may lie in a region checked a moment earlier: it is still held in the
    delay line, which is far longer than the cluster's reach.
    """

    min_s: float = MIN_UNHEARD_S
    word_margin_s: float = WORD_MARGIN_S
    region_padding_s: float = 0.0  # how far the VAD widened each region beyond its speech
    min_sensitive_s: float = MIN_SENSITIVE_S
    cluster_gap_s: float = CLUSTER_GAP_S
    tail_margin_s: float = TAIL_MARGIN_S

    def __post_init__(self) -> None:
        self._regions: list[SpeechRegion] = []  # closed, not yet checked
        self._words: list[tuple[float, float]] = []  # final words that may still cover a region
        self._cluster: list[_Gap] = []  # the last cluster's stretches, none reported yet
        self._cluster_reported = False  # the last cluster has been reported: what joins it is too
        #: The end of the last region checked: before it, every stretch of speech no word covers that
        #: this test counts has been reported (outside regions the VAD heard no speech).
        self.checked_until = 0.0

    def add(self, regions: Iterable[SpeechRegion], words: Iterable[Word]) -> None:
        self._regions.extend(regions)
        self._words.extend((word.start, word.end) for word in words)

    def check(
        self, final_until: float, sensitive: Sequence[tuple[float, float]] = ()
    ) -> list[tuple[float, float]]:
        """Stretches of speech in regions that are final by ``final_until`` that no final word covers.

        ``sensitive``: stretches of the timeline where a value is being said or was just said (the caller
        knows; this layer knows nothing of personal data): shorter uncovered speech counts there.
        """
        ready = sorted((r for r in self._regions if r.end <= final_until), key=lambda r: r.start)
        if not ready:
            return []
        self._regions = [region for region in self._regions if region.end > final_until]
        self.checked_until = max(self.checked_until, ready[-1].end)
        words = sorted(self._words)
        reported: list[tuple[float, float]] = []
        for region in ready:
            gaps = self._uncovered(region, words)
            wordless = len(gaps) == 1 and (gaps[0].start, gaps[0].end) == self._speech(region)
            for gap in gaps:
                reported += self._judge(gap, wordless, words, sensitive)
        # Words before every region still waiting can no longer cover anything.
        horizon = min((region.start for region in self._regions), default=final_until)
        keep_from = min(horizon, self._cluster[-1].start if self._cluster else horizon)
        self._words = [w for w in self._words if w[1] + self.word_margin_s > keep_from]
        return _merged(reported)

    def _speech(self, region: SpeechRegion) -> tuple[float, float]:
        # The speech itself, without the padding: a padded edge past the last word is not a lost word.
        return region.start + self.region_padding_s, region.end - self.region_padding_s

    def _uncovered(self, region: SpeechRegion, words: Sequence[tuple[float, float]]) -> list[_Gap]:
        """The stretches of ``region``'s speech that no word (with its margin) covers; the region's
        last word covers ``tail_margin_s`` past its end."""
        first, last = self._speech(region)
        margin = self.word_margin_s
        gaps: list[_Gap] = []
        at, after = first, region.start  # where uncovered speech may start; the mask may reach back to
        for start, end in words:
            if end + margin <= first:
                continue
            if start - margin >= last:
                break
            if start - margin - at >= _SLIVER_S:
                gaps.append(_Gap(at, start - margin, after, max(start, at)))
            at, after = max(at, end + margin), max(after, end)
        if after > region.start:  # a word was heard: the last one runs on into the pause
            at = max(at, after + self.tail_margin_s)
        if last - at >= _SLIVER_S:
            gaps.append(_Gap(at, last, after, region.end))
        return gaps

    def _judge(
        self,
        gap: _Gap,
        wordless: bool,
        words: Sequence[tuple[float, float]],
        sensitive: Sequence[tuple[float, float]],
    ) -> list[tuple[float, float]]:
        """What to report now that ``gap`` was found: nothing, the gap, or the gap with its cluster.

        Only ``wordless`` regions (speech the recognizer wrote nothing at all for) form clusters: a run of
        short voiced regions with no word is how a number read slowly sounds once Whisper dropped it.
        The uncovered edge of a region with words is the loose end of a word, said before a pause.
        """
        start, end = gap.start, gap.end
        inside = any(s < end and e > start for s, e in sensitive)
        if end - start >= self.min_s or (inside and end - start >= self.min_sensitive_s):
            self._cluster, self._cluster_reported = [gap], True
            return [gap.masked]
        if not wordless:
            return []
        if self._cluster:
            before = self._cluster[-1].end
            joined = start - before <= self.cluster_gap_s and not any(
                s < start and e > before for s, e in words
            )
            if not joined:
                self._cluster, self._cluster_reported = [], False
        self._cluster.append(gap)
        if self._cluster_reported:
            return [gap.masked]
        if sum(g.end - g.start for g in self._cluster) >= self.min_s:
            self._cluster_reported = True
            return [g.masked for g in self._cluster]
        return []


def _merged(stretches: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``stretches`` in order, each once (a cluster may hand the same stretch back when it grows)."""
    out: list[tuple[float, float]] = []
    for stretch in sorted(set(stretches)):
        if out and stretch[0] <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stretch[1]))
        else:
            out.append(stretch)
    return out
