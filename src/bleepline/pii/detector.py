"""The spoken PII detector: finds personal data in recognised words and returns it as timeline spans.

It acts on partial evidence — a growing run of digits, a cue such as "my card number is" — because a card
number takes longer to say than the delay line holds audio.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bleepline.pii.errors import PiiDetectorError
from bleepline.pii.findings import FROM_CUE, FROM_WORDS, PERSON, Finding, ending_after
from bleepline.pii.recognizers import digit_bridges, digit_runs, spelled_letters, spoken_emails
from bleepline.pii.spoken import SpokenText, normalize
from bleepline.pii.values import ValueLimits, find_cue_values, names_before_speaking
from bleepline.timeline import PiiSpan, Word

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine


@dataclass(frozen=True)
class DetectorOptions:
    """How the detector reads words. Times are in seconds.

    - ``padding_s``: every span is widened by this much on both sides; Whisper's word edges are loose.
    - ``pause_padding_s``: a span's end is widened up to this much into the silence that follows it (never
      past the next word). Whisper ends the last word before a pause early: on the evaluation calls by
      0.1 s typically and by up to 0.39 s, more than ``padding_s``; masking more of a silence costs nothing.
    - ``min_run_digits``: a run of this many digits is a span even before anything says what it is.
    - ``max_gap_s``: a pause longer than this ends a run of digits, a spelling or a cued value.
    - ``cue_grace_tokens``, ``cue_grace_s``: how many words, and how long, a value may take to start
      after its cue ("my card number is, uh, it's 4111...").
    - ``mangled_tokens``: non-digit words tolerated inside a cued number, because ASR turns digits into
      words ("ate", "won") and hesitations.
    - ``min_presidio_score``: Presidio findings scored lower than this are dropped.
    """

    padding_s: float = 0.25
    pause_padding_s: float = 0.45
    min_run_digits: int = 4
    max_gap_s: float = 1.5
    cue_grace_tokens: int = 3
    cue_grace_s: float = 4.0
    mangled_tokens: int = 2
    min_presidio_score: float = 0.4

    def __post_init__(self) -> None:
        for name in (
            "padding_s",
            "pause_padding_s",
            "max_gap_s",
            "cue_grace_tokens",
            "cue_grace_s",
            "mangled_tokens",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"detector option {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.min_presidio_score <= 1.0:
            raise ValueError(
                f"detector option min_presidio_score must be 0..1, got {self.min_presidio_score}"
            )
        if self.min_run_digits < 1:
            raise ValueError(f"detector option min_run_digits must be >= 1, got {self.min_run_digits}")

    @property
    def value_limits(self) -> ValueLimits:
        return ValueLimits(self.max_gap_s, self.cue_grace_tokens, self.cue_grace_s, self.mangled_tokens)


class SpokenPiiDetector:
    """Finds spans of personal data in recognised words.

    Stateless over the words it is given: the caller passes the recent final words and the current
    tentative ones each time, and gets every span in them. The Presidio analyzer is loaded once per
    process and shared, unless one is passed in.
    """

    def __init__(
        self, options: DetectorOptions | None = None, analyzer: AnalyzerEngine | None = None
    ) -> None:
        # Imported here, not at the top: spaCy and Presidio take ~1.5 s to import, which commands that
        # never detect anything should not pay.
        from bleepline.pii import analyzer as presidio

        self.options = options if options is not None else DetectorOptions()
        self._analyzer = analyzer if analyzer is not None else presidio.shared_analyzer()
        self._entities = list(presidio.ANALYZED_ENTITIES)

    def detect(self, words: Sequence[Word], *, heard_until: float | None = None) -> list[PiiSpan]:
        """Spans of personal data in ``words``, padded, merged per entity, in time order.

        A span is ``final`` only when all the words it rests on are final and its value has ended (a
        later word, or a silence). ``heard_until`` is how far the audio has been heard: silence from
        the last word up to then counts as a pause, so a number at the very end can be seen to be over.
        """
        if not words:
            return []
        spoken = normalize(words, self.options.max_gap_s)
        if not spoken.tokens:
            return []
        found = self.findings(spoken, heard_until)
        return merge_spans(self._place(finding, spoken, heard_until) for finding in found)

    def findings(self, spoken: SpokenText, heard_until: float | None = None) -> list[Finding]:
        """Everything found in ``spoken``, before padding and merging."""
        options = self.options
        cue_values = find_cue_values(spoken, options.value_limits, heard_until)
        announced = {
            token: value.rule.entity
            for value in cue_values
            if value.value is not None
            for token in range(value.value[0], value.value[1] + 1)
        }
        found = [
            finding for value in cue_values if (finding := value.finding(spoken, heard_until)) is not None
        ]
        found += names_before_speaking(spoken)
        found += digit_runs(spoken, announced, options.min_run_digits, heard_until, options.max_gap_s)
        found += spelled_letters(spoken, heard_until, options.max_gap_s)
        found += spoken_emails(spoken, heard_until, options.max_gap_s)
        found += self._presidio(spoken, heard_until)
        found += digit_bridges(spoken, found, heard_until, options.max_gap_s)
        return found

    def _presidio(self, spoken: SpokenText, heard_until: float | None) -> list[Finding]:
        try:
            results = self._analyzer.analyze(
                text=spoken.ner_text,
                language="en",
                entities=self._entities,
                score_threshold=self.options.min_presidio_score,
            )
        except Exception as error:
            # The original message may quote the text; only its type is kept.
            raise PiiDetectorError(
                f"Presidio could not analyse an utterance ({type(error).__name__})"
            ) from None
        findings: list[Finding] = []
        for result in results:
            tokens = spoken.tokens_between(result.start, result.end)
            if not tokens or not _plausible(result.entity_type, spoken.ner_text[result.start : result.end]):
                continue
            first, last = spoken.tokens[tokens[0]], spoken.tokens[tokens[-1]]
            start, end = spoken.time_span(first.start, last.end)
            ending = ending_after(spoken, tokens[-1], heard_until, self.options.max_gap_s)
            evidence = (first.first_word, ending.last_evidence)
            finding = Finding(
                result.entity_type, result.score, FROM_WORDS, start, end, evidence, not ending.closed
            )
            findings.append(finding)
        return findings

    def _place(self, finding: Finding, spoken: SpokenText, heard_until: float | None) -> PiiSpan:
        first, last = finding.evidence
        settled = all(word.final for word in spoken.words[first : last + 1])
        pad = self.options.padding_s if finding.padding_s is None else finding.padding_s
        into_pause = min(self.options.pause_padding_s, _silence_after(spoken, finding.end, heard_until))
        return PiiSpan(
            start=max(0.0, finding.start - pad),
            end=finding.end + max(pad, into_pause),
            entity=finding.entity,
            score=finding.score,
            final=settled and not finding.open,
            source=finding.source,
        )


def _silence_after(spoken: SpokenText, end: float, heard_until: float | None) -> float:
    """How long nothing is said after ``end``: up to the next word's start, or to ``heard_until`` if none."""
    following = [word.start for word in spoken.words if word.end > end]
    if following:
        return max(0.0, min(following) - end)
    return 0.0 if heard_until is None else max(0.0, heard_until - end)


def _plausible(entity: str, text: str) -> bool:
    """Whether a Presidio finding is worth keeping.

    The small spaCy model calls lower-case words names ("expiry date is ..."). Whisper capitalises names,
    and the normaliser has already removed the capitals that only start a sentence, so a name needs one.
    Names said in lower case after a cue are the cues' to find.
    """
    return entity != PERSON or any(char.isupper() for char in text)


#: Spans closer than this count as touching, so rounding in the padding does not split one stretch.
_TOUCHING_S = 1e-6


def merge_spans(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Overlapping spans of the same entity as one span, all in time order.

    A merged span is final only if all its parts are, takes the highest score, and counts as found by a
    cue if any part was: the cue is what started masking.
    """
    merged: list[PiiSpan] = []
    by_entity: dict[str, list[PiiSpan]] = {}
    for span in spans:
        by_entity.setdefault(span.entity, []).append(span)
    for entity_spans in by_entity.values():
        entity_spans.sort(key=lambda span: span.start)
        current = entity_spans[0]
        for span in entity_spans[1:]:
            if span.start <= current.end + _TOUCHING_S:
                current = _join(current, span)
            else:
                merged.append(current)
                current = span
        merged.append(current)
    return sorted(merged, key=lambda span: (span.start, span.end, span.entity))


def _join(one: PiiSpan, other: PiiSpan) -> PiiSpan:
    source = FROM_CUE if FROM_CUE in (one.source, other.source) else FROM_WORDS
    return PiiSpan(
        start=min(one.start, other.start),
        end=max(one.end, other.end),
        entity=one.entity,
        score=max(one.score, other.score),
        final=one.final and other.final,
        source=source,
    )
