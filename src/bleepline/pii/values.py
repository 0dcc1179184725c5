"""Cue values: what follows a cue, read word by word until the value is over.

A cue opens a span where it ends, before any digit is heard. The span covers what follows until the value
is over (its shape ends, a pause, a time limit, the next cue) and runs to the last word while it is not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bleepline.pii.cues import (
    FILLERS,
    NAME_STOP,
    STREET_STOP,
    STREET_WORDS,
    CueMatch,
    CueRule,
    Shape,
    find_cues,
)
from bleepline.pii.findings import FROM_CUE, PERSON, Finding
from bleepline.pii.spoken import MONTHS, NATO, SpokenText, SpokenToken, TokenKind

CUE_SCORE = 0.8
SILENCE_SCORE = 0.5
_DATE_JOINERS = frozenset({"of", "the", "slash", "/"})
_SPELLING_LOOKAHEAD = 3  # tokens after a name where its spelling may start
_SPELLING_S = 15.0  # the longest a spelling may take
_EMAIL_MARKERS = frozenset({"at", "dot", "underscore", "dash", "hyphen"})
_NAME_WINDOW = 3  # name tokens
_EMAIL_WINDOW = 12  # tokens
_STREET_WINDOW = 10  # tokens


@dataclass(frozen=True)
class ValueLimits:
    """How far a value may stray: see ``DetectorOptions`` for what each one means."""

    max_gap_s: float = 1.5
    grace_tokens: int = 3
    grace_s: float = 4.0
    mangled_tokens: int = 2


@dataclass(frozen=True)
class CueValue:
    """What one cue announced: the value's tokens ``value`` (first, last), if any were heard yet.

    ``open`` values may still be going on at the last word; ``last_evidence`` is the last word whose
    revision could change the value (the word that ended it, or the last word given).
    """

    rule: CueRule
    cue_words: tuple[int, int]
    cue_end: float
    value: tuple[int, int] | None
    open: bool
    last_evidence: int
    silent_until: float | None = None  # where the words resume, when a long pause follows the cue
    still_silent: bool = False  # the pause lasts to ``heard_until``: it may grow

    def __repr__(self) -> str:
        return f"CueValue({self.rule.entity}, words {self.cue_words}, value {self.value}, open={self.open})"

    def finding(self, spoken: SpokenText) -> Finding | None:
        """The span this cue opens, or None for a finished cue whose value never came or is too small."""
        if self.open:
            end, score = max(word.end for word in spoken.words), CUE_SCORE
        elif (
            self.value is not None and _value_size(spoken, self.rule.shape, self.value) >= self.rule.min_value
        ):
            last = spoken.tokens[self.value[1]]
            end, score = spoken.time_span(last.start, last.end)[1], CUE_SCORE
        elif self.silent_until is not None:
            # A cue, a long pause, and no value: the recognizer may have lost the value in that pause.
            end, score = self.silent_until, SILENCE_SCORE
        else:
            return None
        evidence = (self.cue_words[0], self.last_evidence)
        span_end = max(end, self.cue_end)
        still_open = self.open or (self.value is None and self.still_silent)
        return Finding(self.rule.entity, score, FROM_CUE, self.cue_end, span_end, evidence, still_open)


@dataclass(frozen=True)
class _Cue:
    rule: CueRule
    words: tuple[int, int]
    end: float  # seconds


def find_cue_values(spoken: SpokenText, limits: ValueLimits, heard_until: float | None) -> list[CueValue]:
    """Every cue in ``spoken`` with the value that follows it; a value ends where the next cue starts."""
    matches = find_cues(spoken.text)
    values: list[CueValue] = []
    for index, match in enumerate(matches):
        stop_char = matches[index + 1].start if index + 1 < len(matches) else len(spoken.text) + 1
        first = _first_token_from(spoken.tokens, match.end)
        stop = _first_token_from(spoken.tokens, stop_char)
        cue = _Cue(match.rule, _cue_words(spoken, match), _cue_end_time(spoken, match))
        values.append(_Scanner(spoken, cue, first, stop, limits, heard_until).value())
    return values


def names_before_speaking(spoken: SpokenText) -> list[Finding]:
    """ "Sarah speaking": the capitalised name just before "speaking" answers a call."""
    findings: list[Finding] = []
    for index in range(1, len(spoken.tokens)):
        if spoken.token_text(spoken.tokens[index]) != "speaking":
            continue
        name = spoken.tokens[index - 1]
        # A capital that starts a sentence is no evidence here: "Public speaking is hard."
        if _is_name(spoken, name, capitalised=False) and spoken.ner_text[name.start].isupper():
            start, end = spoken.time_span(name.start, name.end)
            evidence = (name.first_word, spoken.tokens[index].last_word)
            findings.append(Finding(PERSON, CUE_SCORE, FROM_CUE, start, end, evidence, False))
    return findings


def _first_token_from(tokens: Sequence[SpokenToken], char: int) -> int:
    return next((index for index, token in enumerate(tokens) if token.start >= char), len(tokens))


def _cue_words(spoken: SpokenText, match: CueMatch) -> tuple[int, int]:
    return spoken.word_range(match.start, match.end)


def _cue_end_time(spoken: SpokenText, match: CueMatch) -> float:
    return spoken.time_span(match.start, match.end)[1]


def _is_name(spoken: SpokenText, token: SpokenToken, capitalised: bool) -> bool:
    if token.kind is TokenKind.LETTERS:
        return True
    text = spoken.token_text(token)
    if token.kind is not TokenKind.WORD or text in NAME_STOP or not text.replace("'", "").isalpha():
        return False
    return not capitalised or spoken.cased[token.start].isupper()


def _value_size(spoken: SpokenText, shape: Shape, value: tuple[int, int]) -> int:
    tokens = spoken.tokens[value[0] : value[1] + 1]
    if shape is Shape.NUMBER:
        return sum(sum(c.isdigit() for c in spoken.token_text(t)) for t in tokens)
    if shape is Shape.CODE:
        return sum(sum(c.isalnum() for c in spoken.token_text(t)) for t in tokens if _is_code(spoken, t))
    return len(tokens)


def _is_number(spoken: SpokenText, token: SpokenToken) -> bool:
    return token.kind is TokenKind.DIGITS or (
        token.kind is TokenKind.WRITTEN and any(c.isdigit() for c in spoken.token_text(token))
    )


def _is_code(spoken: SpokenText, token: SpokenToken) -> bool:
    single = token.kind is TokenKind.WORD and len(spoken.token_text(token)) == 1
    return _is_number(spoken, token) or token.kind is TokenKind.LETTERS or single


def _is_spelled(spoken: SpokenText, token: SpokenToken) -> bool:
    """Letters and digits spelled out, including NATO words that were not joined into letters."""
    nato = token.kind is TokenKind.WORD and spoken.token_text(token) in NATO
    return _is_code(spoken, token) or nato


def _is_date(spoken: SpokenText, token: SpokenToken) -> bool:
    month = token.kind is TokenKind.WORD and spoken.token_text(token) in MONTHS
    return _is_number(spoken, token) or token.kind is TokenKind.ORDINAL or month


class _Scanner:
    """Reads the value after one cue, token by token, until the value's shape says it is over."""

    def __init__(
        self,
        spoken: SpokenText,
        cue: _Cue,
        first: int,
        stop: int,
        limits: ValueLimits,
        heard_until: float | None,
    ) -> None:
        self.spoken = spoken
        self.rule = cue.rule
        self.cue_words = cue.words
        self.cue_end = cue.end
        self.first = first  # the first token after the cue
        self.stop = stop  # the first token of the next cue, or the end
        self.limits = limits
        self.heard_until = heard_until
        self.silent_until, self.still_silent = self._silence_after_cue()

    def value(self) -> CueValue:
        shape = self.rule.shape
        if shape is Shape.NAME:
            return self._name()
        if shape is Shape.EMAIL:
            return self._email()
        if shape is Shape.STREET:
            return self._street()
        accepts: dict[Shape, Callable[[SpokenText, SpokenToken], bool]] = {
            Shape.NUMBER: _is_number,
            Shape.CODE: _is_code,
            Shape.DATE: _is_date,
            Shape.SPELLING: _is_spelled,
        }
        return self._tokens(accepts[shape], self.first)

    def _silence_after_cue(self) -> tuple[float | None, bool]:
        """Where the words resume, if a long pause follows the cue (after fillers such as "is").

        A pause that lasts up to ``heard_until`` counts too, and may still grow. Either is masked only
        as long as the cue's value could take to say: a silence on hold is not the value.
        """
        longest = self.cue_end + self.rule.max_duration_s
        previous_end = self.cue_end
        for index in range(self.first, len(self.spoken.tokens)):
            start, end = self._times(index)
            if start - previous_end > self.limits.max_gap_s:
                return min(start, longest), False
            if self._text(index) not in FILLERS:
                return None, False
            previous_end = end
        if self.heard_until is not None and self.heard_until - previous_end > self.limits.max_gap_s:
            return min(self.heard_until, longest), True
        return None, False

    # -- outcomes --

    def _closed(self, value: tuple[int, int] | None, ended_by: int) -> CueValue:
        evidence = self.spoken.tokens[ended_by].first_word if ended_by < len(self.spoken.tokens) else -1
        last_evidence = max(evidence, self.cue_words[1], *(self._words_of(value)))
        return CueValue(
            self.rule,
            self.cue_words,
            self.cue_end,
            value,
            False,
            last_evidence,
            self.silent_until,
            self.still_silent,
        )

    def _ran_out(self, value: tuple[int, int] | None) -> CueValue:
        """The tokens ran out before the value ended: the next cue, a long silence, or still going."""
        if self.stop < len(self.spoken.tokens):
            return self._closed(value, self.stop)
        last_word = len(self.spoken.words) - 1
        silence = None if self.heard_until is None else self.heard_until - self.spoken.words[last_word].end
        if silence is not None and silence > self.limits.max_gap_s:
            return self._closed(value, self.stop)
        return CueValue(
            self.rule,
            self.cue_words,
            self.cue_end,
            value,
            True,
            last_word,
            self.silent_until,
            self.still_silent,
        )

    def _words_of(self, value: tuple[int, int] | None) -> tuple[int, ...]:
        return () if value is None else (self.spoken.tokens[value[1]].last_word,)

    # -- token timing --

    def _times(self, index: int) -> tuple[float, float]:
        token = self.spoken.tokens[index]
        return self.spoken.time_span(token.start, token.end)

    def _too_late(self, index: int, previous_end: float, value_start: float) -> bool:
        start, end = self._times(index)
        return start - previous_end > self.limits.max_gap_s or end - value_start > self.rule.max_duration_s

    # -- shapes --

    def _tokens(
        self, accepts: Callable[[SpokenText, SpokenToken], bool], first: int, spelling: bool = False
    ) -> CueValue:
        """Numbers, codes, dates, spellings: value tokens with a few mangled words allowed between.

        A pause ends the value only if what follows it is not more of the value: callers pause between
        the groups of a number, and the recognizer drops words, leaving gaps.
        """
        value: tuple[int, int] | None = None
        grace = mangled = 0
        value_start = previous_end = self.cue_end
        spelling = spelling or self.rule.shape is Shape.SPELLING
        allowed = {Shape.DATE: 1}.get(self.rule.shape, self.limits.mangled_tokens) + int(spelling)
        longest = _SPELLING_S if spelling else self.rule.max_duration_s
        for index in range(first, self.stop):
            token = self.spoken.tokens[index]
            start, end = self._times(index)
            if value is None:
                if start - self.cue_end > self.limits.grace_s:
                    return self._closed(None, index)
                if accepts(self.spoken, token):
                    value, value_start = (index, index), start
                elif self._text(index) not in FILLERS:  # "it's", "uh" come free
                    grace += 1
                    if grace > self.limits.grace_tokens:
                        return self._closed(None, index)
            else:
                paused = start - previous_end > self.limits.max_gap_s
                if end - value_start > longest or (paused and not accepts(self.spoken, token)):
                    return self._closed(value, index)
                if accepts(self.spoken, token):
                    value, mangled = (value[0], index), 0
                elif not (self.rule.shape is Shape.DATE and self._text(index) in _DATE_JOINERS):
                    mangled += 1
                    if mangled > allowed:
                        return self._closed(value, index)
            previous_end = end
        return self._ran_out(value)

    def _name(self) -> CueValue:
        """One to three name words after a few fillers, and the spelling that may follow them."""
        index = self.first
        while index < self.stop and index - self.first < 2 and self._text(index) in FILLERS:
            index += 1
        names: list[int] = []
        while index < self.stop and len(names) < _NAME_WINDOW:
            token = self.spoken.tokens[index]
            late = bool(names) and self._too_late(index, self._times(names[-1])[1], self._times(names[0])[0])
            if late or not _is_name(self.spoken, token, self.rule.capitalised):
                break
            names.append(index)
            index += 1
        value = (names[0], names[-1]) if names else None
        spelled = self._spelling_after(index) if names and index < self.stop else None
        if spelled is not None and spelled.value is not None:
            return replace(spelled, value=(names[0], spelled.value[1]))
        if index < self.stop or len(names) == _NAME_WINDOW:
            return self._closed(value, index)
        return self._ran_out(value)

    def _spelling_after(self, index: int) -> CueValue | None:
        """The spelling that often follows a name: "Hartley, that's H A R T L E Y".

        It may start a few words later ("that's spelled"), and single NATO words count even when the
        recognizer mangled their neighbours ("delta echo line line oscar").
        """
        for ahead in range(index, min(index + _SPELLING_LOOKAHEAD, self.stop)):
            token = self.spoken.tokens[ahead]
            weak = self._text(ahead) in ("a", "i")
            if _is_spelled(self.spoken, token) and token.kind is not TokenKind.DIGITS and not weak:
                return self._tokens(_is_spelled, ahead, spelling=True)
        return None

    def _email(self) -> CueValue:
        """Up to an address the normaliser assembled; failing that, over what sounded like one."""
        last_marker: int | None = None
        previous_end = self.cue_end
        for index in range(self.first, min(self.stop, self.first + _EMAIL_WINDOW)):
            token = self.spoken.tokens[index]
            if index > self.first and self._too_late(index, previous_end, self.cue_end):
                return self._closed(self._email_guess(last_marker), index)
            if token.kind is TokenKind.EMAIL and index + 1 < len(self.spoken.tokens):
                return self._closed((self.first, index), index + 1)
            if token.kind is TokenKind.EMAIL:  # the domain may still grow: "gmail dot co" ... "dot uk"
                return self._ran_out((self.first, index))
            if self._text(index) in _EMAIL_MARKERS or self._text(index - 1) in _EMAIL_MARKERS:
                last_marker = index
            previous_end = self._times(index)[1]
        if self.stop - self.first > _EMAIL_WINDOW:
            return self._closed(self._email_guess(last_marker), self.first + _EMAIL_WINDOW)
        return self._ran_out(self._email_guess(last_marker))

    def _email_guess(self, last_marker: int | None) -> tuple[int, int] | None:
        # Said like an address ("john smith at gmail") but not put together: mask it all the same.
        return None if last_marker is None else (self.first, last_marker)

    def _street(self) -> CueValue:
        """From the first word after the cue up to the last number or street word before a stop word."""
        index = self.first
        while (
            index < self.stop
            and index - self.first < self.limits.grace_tokens
            and self._text(index) in FILLERS
        ):
            index += 1
        start = index
        last_anchor: int | None = None
        previous_end = self.cue_end
        value_start = self._times(start)[0] if start < self.stop else self.cue_end
        while index < self.stop:
            token = self.spoken.tokens[index]
            ended = self._text(index) in STREET_STOP or index - start >= _STREET_WINDOW
            if ended or self._too_late(index, previous_end, value_start):
                return self._closed(None if last_anchor is None else (start, last_anchor), index)
            if (
                _is_code(self.spoken, token)
                or token.kind is TokenKind.ORDINAL
                or self._text(index) in STREET_WORDS
            ):
                last_anchor = index
            previous_end = self._times(index)[1]
            index += 1
        return self._ran_out(None if last_anchor is None else (start, last_anchor))

    def _text(self, index: int) -> str:
        if not 0 <= index < len(self.spoken.tokens):
            return ""
        return self.spoken.token_text(self.spoken.tokens[index])
