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
from bleepline.pii.spoken import (
    LETTER_NAMERS,
    LETTER_NAMES,
    MONTHS,
    NATO,
    SpokenText,
    SpokenToken,
    TokenKind,
)

CUE_SCORE = 0.8
SILENCE_SCORE = 0.5
#: A cued number shorter than its rule's ``min_value``: what was heard of it is masked all the same,
#: since the recognizer may have dropped the rest ("my card number is 3 3", then words it misheard).
SHORT_VALUE_SCORE = 0.4
_DATE_JOINERS = frozenset({"of", "the", "slash", "/"})
_SPELLING_LOOKAHEAD = 3  # tokens after a name where its spelling may start
_SPELLING_S = 15.0  # the longest a spelling may take
_MISHEARD_LETTER_CHARS = 4  # a letter heard as a word is one short syllable: "go" for "o", "and" for "n"
_MERGED_NAMERS = frozenset({"before"})  # a letter run into "for": "b for" heard as one word
_WEAK_LETTERS = frozenset({"a", "i"})  # letters that are everyday words too
_ARTICLES = frozenset({"a", "an", "the"})
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

    def finding(self, spoken: SpokenText, heard_until: float | None = None) -> Finding | None:
        """The span this cue opens, or None for a finished cue whose value never came or is too small.

        An open value's span reaches ``heard_until`` (how far the audio has been heard), past the last
        word: what was said since may be more of the value, and the recognizer has not written it yet,
        or missed it.
        """
        # The span runs from the cue, even once the value has started: what lies between may be the
        # value's first digits, misheard ("my count numbers. During the year of 8 1 7 2 6 3" for "my
        # account number is 9 0 8 1 7 2 6 3"). Fillers there ("is, uh, it's") cost a little masking.
        start = self.cue_end
        if self.open:
            end, score = max(max(word.end for word in spoken.words), heard_until or 0.0), CUE_SCORE
        elif (
            self.value is not None and _value_size(spoken, self.rule.shape, self.value) >= self.rule.min_value
        ):
            last = spoken.tokens[self.value[1]]
            end, score = spoken.time_span(last.start, last.end)[1], CUE_SCORE
        elif (
            self.value is not None
            and self.rule.shape is Shape.NUMBER
            and _value_size(spoken, self.rule.shape, self.value) > 0
        ):
            last = spoken.tokens[self.value[1]]
            end, score = spoken.time_span(last.start, last.end)[1], SHORT_VALUE_SCORE
        elif self.silent_until is not None:
            # A cue, a long pause, and no value: the recognizer may have lost the value in that pause.
            end, score = self.silent_until, SILENCE_SCORE
        else:
            return None
        evidence = (self.cue_words[0], self.last_evidence)
        span_end = max(end, start)
        still_open = self.open or (self.value is None and self.still_silent)
        return Finding(self.rule.entity, score, FROM_CUE, start, span_end, evidence, still_open)


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


@dataclass(frozen=True)
class _NamedLetter:
    """Tokens ``first..last`` name one letter; a ``weak`` one counts only beside more spelling."""

    first: int
    last: int
    weak: bool


def _letter_of(spoken: SpokenText, token: SpokenToken) -> str | None:
    """The letter a token says: a letter alone ("r"), by its name ("are"), or the last of spelled letters."""
    text = spoken.token_text(token)
    if token.kind is TokenKind.LETTERS:
        return text[-1]
    if token.kind is not TokenKind.WORD:
        return None
    return text if len(text) == 1 and text.isalpha() else LETTER_NAMES.get(text)


def _named_letter_at(spoken: SpokenText, index: int, stop: int) -> _NamedLetter | None:
    """A letter named by a word from token ``index`` on, before token ``stop``: "r for romeo", "m as in mary".

    Where a spelling is expected, the recognizer's mangled forms count too, as long as one side still
    sounds like spelling:

    - a NATO word names the letter, whatever short word was heard for it: "go for oscar";
    - a letter said alone (not "a" or "i") is named by any word, however misheard: "s for the air" (an
      article before the word is skipped);
    - a letter said by its name, "a", "i", or "before" (a letter run into "for"), only with a word that
      starts with it ("are for robert", "you for uniform") and only beside more spelling: alone, "thank you
      for using" is no spelling.
    """
    said = spoken.tokens[index]
    text = spoken.token_text(said)
    namings = [
        index + len(namer) + 1
        for namer in LETTER_NAMERS
        if tuple(_token_text(spoken, k) for k in range(index + 1, index + len(namer) + 1)) == namer
    ]
    if text in _MERGED_NAMERS:
        namings.append(index + 1)
    letter = _letter_of(spoken, said)
    for naming in namings:
        if naming + 1 < stop and _token_text(spoken, naming) in _ARTICLES:
            naming += 1  # the recognizer puts in articles: "s for the sierra"
        if naming >= stop or spoken.tokens[naming].kind is not TokenKind.WORD:
            continue
        word = _token_text(spoken, naming)
        short = said.kind is TokenKind.WORD and len(text) <= _MISHEARD_LETTER_CHARS and text.isalpha()
        short = short or text in _MERGED_NAMERS
        if word in NATO and (letter is not None or short):
            return _NamedLetter(index, naming, weak=False)
        if said.kind is TokenKind.WORD and letter == text and text not in _WEAK_LETTERS:
            return _NamedLetter(index, naming, weak=False)
        if text in _MERGED_NAMERS or (letter is not None and word.startswith(letter)):
            return _NamedLetter(index, naming, weak=True)
    return None


def _named_letters(spoken: SpokenText, first: int, stop: int) -> frozenset[int]:
    """The tokens of the letters named between tokens ``first`` and ``stop``: see ``_named_letter_at``."""
    found: list[_NamedLetter] = []
    index = first
    while index < stop:
        named = _named_letter_at(spoken, index, stop)
        if named is None:
            index += 1
        else:
            found.append(named)
            index = named.last + 1
    starts = {named.first for named in found}
    ends = {named.last for named in found}

    def spelling_at(index: int) -> bool:
        if index in starts or index in ends:
            return True
        if not 0 <= index < len(spoken.tokens) or _token_text(spoken, index) in _WEAK_LETTERS:
            return False
        token = spoken.tokens[index]
        return token.kind is not TokenKind.DIGITS and _is_spelled(spoken, token)

    kept: set[int] = set()
    for named in found:
        if not named.weak or spelling_at(named.first - 1) or spelling_at(named.last + 1):
            kept.update(range(named.first, named.last + 1))
    return frozenset(kept)


def _token_text(spoken: SpokenText, index: int) -> str:
    return spoken.token_text(spoken.tokens[index]) if 0 <= index < len(spoken.tokens) else ""


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
        if shape is Shape.SPELLING:
            named = _named_letters(self.spoken, self.first, self.stop)
            return self._tokens(self._spelled(named), self.first)
        kinds: dict[Shape, Callable[[SpokenText, SpokenToken], bool]] = {
            Shape.NUMBER: _is_number,
            Shape.CODE: _is_code,
            Shape.DATE: _is_date,
        }
        accepts = kinds[shape]
        return self._tokens(lambda index: accepts(self.spoken, self.spoken.tokens[index]), self.first)

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

    def _tokens(self, accepts: Callable[[int], bool], first: int, spelling: bool = False) -> CueValue:
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
            start, end = self._times(index)
            if value is None:
                if start - self.cue_end > self.limits.grace_s:
                    return self._closed(None, index)
                if accepts(index):
                    value, value_start = (index, index), start
                elif self._text(index) not in FILLERS:  # "it's", "uh" come free
                    grace += 1
                    if grace > self.limits.grace_tokens:
                        return self._closed(None, index)
            else:
                paused = start - previous_end > self.limits.max_gap_s
                if end - value_start > longest or (paused and not accepts(index)):
                    return self._closed(value, index)
                if accepts(index):
                    value, mangled = (value[0], index), 0
                elif not (self.rule.shape is Shape.DATE and self._text(index) in _DATE_JOINERS):
                    mangled += 1
                    if mangled > allowed:
                        return self._closed(value, index)
            previous_end = end
        return self._ran_out(value)

    def _name(self) -> CueValue:
        """One to three name words after a few fillers, and the spelling that may follow them.

        A letter named by a word ends the name even if it sounds like one: "Nadia, go for november".
        """
        index = self.first
        while index < self.stop and index - self.first < 2 and self._text(index) in FILLERS:
            index += 1
        named = _named_letters(self.spoken, self.first, self.stop)
        names: list[int] = []
        while index < self.stop and len(names) < _NAME_WINDOW and index not in named:
            token = self.spoken.tokens[index]
            late = bool(names) and self._too_late(index, self._times(names[-1])[1], self._times(names[0])[0])
            if late or not _is_name(self.spoken, token, self.rule.capitalised):
                break
            names.append(index)
            index += 1
        value = (names[0], names[-1]) if names else None
        spelled = self._spelling_after(index, named) if names and index < self.stop else None
        if spelled is not None and spelled.value is not None:
            return replace(spelled, value=(names[0], spelled.value[1]))
        if index < self.stop or len(names) == _NAME_WINDOW:
            return self._closed(value, index)
        return self._ran_out(value)

    def _spelling_after(self, index: int, named: frozenset[int]) -> CueValue | None:
        """The spelling that often follows a name: "Hartley, that's H A R T L E Y".

        It may start a few words later ("that's spelled"), and single NATO words count even when the
        recognizer mangled their neighbours ("delta echo line line oscar"), as do letters named by a word
        however mangled ("go for oscar, s for the air"): ``named`` holds their tokens.
        """
        for ahead in range(index, min(index + _SPELLING_LOOKAHEAD, self.stop)):
            token = self.spoken.tokens[ahead]
            weak = self._text(ahead) in _WEAK_LETTERS
            alone = _is_spelled(self.spoken, token) and token.kind is not TokenKind.DIGITS and not weak
            if alone or ahead in named:
                return self._tokens(self._spelled(named), ahead, spelling=True)
        return None

    def _spelled(self, named: frozenset[int]) -> Callable[[int], bool]:
        """Whether a token is part of a spelling: spelled letters, or a letter named by a word (``named``)."""
        return lambda index: index in named or _is_spelled(self.spoken, self.spoken.tokens[index])

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
