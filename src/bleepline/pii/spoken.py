"""Spoken text: turns recognised words into the normalised text the PII recognizers read.

Number words become digits, spelled letters become words, spoken e-mail becomes an address; every
character of the result remembers the word it came from, so a character span maps back to a time span.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bleepline.pii.numbers import MULTIPLIERS, TEENS, TENS, UNITS, NumberRun, Reading, find_number_runs
from bleepline.timeline import Word

#: A pause longer than this (seconds) between two words ends a run of digits or spelled letters.
MAX_GAP_S = 1.5

#: Punctuation Whisper attaches to words ("4,", "five.", "John?"); never spoken.
_EDGE_PUNCTUATION = ".,?!;:\"'()[]{}<>*#-\u2013\u2014\u2026\u201c\u201d\u2018\u2019\u00ab\u00bb\u00bf\u00a1"
_DASHES = frozenset("-\u2013\u2014")  # hyphen, en dash, em dash
# Digits as Whisper writes them: "4,111,111", "555-123-4", "123-45-6,70089", "4.1.1.1".
_DIGIT_GROUPS = re.compile(r"\d+(?:[,.\-]\d+)*", re.ASCII)
_WRITTEN_ORDINAL = re.compile(r"(\d{1,2})(?:st|nd|rd|th)")
_SPELLED_WRITTEN = re.compile(r"[a-z](?:[-.][a-z])+")  # "j-o-h-n", "j.o.h.n"
_WRITTEN_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_HAS_DIGIT = re.compile(r"\d")


def word_set(words: str) -> frozenset[str]:
    """A vocabulary written as one string of space-separated words."""
    return frozenset(words.split())


NATO = {
    "alpha": "a",
    "alfa": "a",
    "bravo": "b",
    "charlie": "c",
    "delta": "d",
    "echo": "e",
    "foxtrot": "f",
    "golf": "g",
    "hotel": "h",
    "india": "i",
    "juliet": "j",
    "juliett": "j",
    "kilo": "k",
    "lima": "l",
    "mike": "m",
    "november": "n",
    "oscar": "o",
    "papa": "p",
    "quebec": "q",
    "romeo": "r",
    "sierra": "s",
    "tango": "t",
    "uniform": "u",
    "victor": "v",
    "whiskey": "w",
    "whisky": "w",
    "x-ray": "x",
    "xray": "x",
    "yankee": "y",
    "zulu": "z",
}
MONTHS = word_set(
    "january february march april may june july august september october november december jan feb mar "
    "apr jun jul aug sep sept oct nov dec"
)
ORDINAL_WORDS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}
#: Said between the parts of a spoken e-mail address, and what they stand for.
EMAIL_JOINERS = {"dot": ".", "underscore": "_", "dash": "-", "hyphen": "-", "-": "-", "_": "_"}
#: Ways of naming a letter: "m as in mike", "m for mike", "m like mike".
LETTER_NAMERS = (("as", "in"), ("for",), ("like",))
#: Letters said by their own names, as Whisper writes them: "are" for R, "oh" for O, "ess" for S. Most are
#: everyday words too, so they only count as letters where a spelling is expected.
LETTER_NAMES = {
    "ay": "a",
    "bee": "b",
    "be": "b",
    "see": "c",
    "sea": "c",
    "cee": "c",
    "dee": "d",
    "ee": "e",
    "ef": "f",
    "eff": "f",
    "gee": "g",
    "aitch": "h",
    "eye": "i",
    "aye": "i",
    "jay": "j",
    "kay": "k",
    "el": "l",
    "ell": "l",
    "elle": "l",
    "em": "m",
    "en": "n",
    "oh": "o",
    "owe": "o",
    "pee": "p",
    "pea": "p",
    "cue": "q",
    "queue": "q",
    "are": "r",
    "ar": "r",
    "ess": "s",
    "tee": "t",
    "tea": "t",
    "you": "u",
    "vee": "v",
    "ex": "x",
    "why": "y",
    "zed": "z",
    "zee": "z",
}
_WEAK_LETTERS = frozenset({"a", "i"})  # also ordinary words: letters only beside other single letters


class TokenKind(enum.Enum):
    """What a token of the normalised text is."""

    WORD = "word"  # an ordinary word, lower-case
    DIGITS = "digits"  # a run of digits, said or written: "4111"
    ORDINAL = "ordinal"  # a day of the month in a date: "5th"
    LETTERS = "letters"  # letters spelled one by one or with the NATO alphabet: "john"
    EMAIL = "email"  # an e-mail address, spoken or written: "john.smith@gmail.com"
    WRITTEN = "written"  # kept as Whisper wrote it, with symbols: "3:30", "$100", "5/3/1990", "gb82"


@dataclass(frozen=True)
class SpokenToken:
    """One token of the normalised text: characters ``start..end`` made from words ``first_word..last_word``.

    ``reading`` says how a DIGITS token was said (digit by digit, as a year, a time or an amount).
    """

    kind: TokenKind
    start: int
    end: int
    first_word: int
    last_word: int
    reading: Reading | None = None

    def __repr__(self) -> str:
        chars, words = f"{self.start}..{self.end}", f"{self.first_word}..{self.last_word}"
        return f"SpokenToken({self.kind.value}, chars {chars}, words {words})"


@dataclass(frozen=True)
class SpokenText:
    """The normalised text of ``words``, with the source word of every character.

    ``text`` is lower-case; ``cased`` has the same characters with the capitals Whisper wrote on ordinary
    words; ``ner_text`` is ``cased`` without the capitals that only start a sentence, so that the capitals
    left hint at names for named-entity recognition. ``sources[k]`` is the index in ``words`` of the word
    that produced character ``k``, or -1 for the spaces put between tokens.
    """

    text: str
    cased: str
    ner_text: str
    sources: tuple[int, ...]
    tokens: tuple[SpokenToken, ...]
    words: tuple[Word, ...]

    def __repr__(self) -> str:
        # The text is what the caller said: never in a repr.
        return f"SpokenText({len(self.text)} chars, {len(self.tokens)} tokens, {len(self.words)} words)"

    def token_text(self, token: SpokenToken) -> str:
        return self.text[token.start : token.end]

    def word_range(self, char_start: int, char_end: int) -> tuple[int, int]:
        """The first and last source word of characters ``char_start..char_end`` (end exclusive)."""
        indices = [index for index in self.sources[char_start:char_end] if index >= 0]
        if not indices:
            raise ValueError(f"characters {char_start}..{char_end} come from no word")
        return min(indices), max(indices)

    def time_span(self, char_start: int, char_end: int) -> tuple[float, float]:
        """From the start of the first source word to the end of the last one in ``char_start..char_end``."""
        first, last = self.word_range(char_start, char_end)
        return (
            min(word.start for word in self.words[first : last + 1]),
            max(word.end for word in self.words[first : last + 1]),
        )

    def tokens_between(self, char_start: int, char_end: int) -> list[int]:
        """Indices of the tokens that overlap characters ``char_start..char_end``."""
        return [i for i, token in enumerate(self.tokens) if token.start < char_end and char_start < token.end]


def ends_sentence(word: Word) -> bool:
    """Whether Whisper closed a sentence with this word ("four." or "four?", not a trailing "four...")."""
    return _closes_sentence(word.text.rstrip())


def _closes_sentence(chunk: str) -> bool:
    # Whisper writes a hesitation as an ellipsis ("ask for... Marvin"): the sentence goes on.
    return chunk.endswith((".", "?", "!")) and not chunk.endswith(("..", "\u2026"))


def normalize(words: Sequence[Word], max_gap_s: float = MAX_GAP_S) -> SpokenText:
    """The normalised spoken text of ``words`` (taken in time order)."""
    ordered = tuple(sorted(words, key=lambda word: (word.start, word.end)))
    pieces = _pieces(ordered)
    adjacent = _adjacency(pieces, ordered, max_gap_s)
    drafts = _email_addresses(_drafts(pieces, adjacent))
    return _assemble(drafts, ordered)


# --- pieces: what Whisper wrote, cut into spoken units ------------------------------------------------


# The private values below hold what the caller said, so they have no repr: a traceback that shows its
# locals must not show the words.
@dataclass(frozen=True, repr=False)
class _Piece:
    word: int
    text: str  # lower-case, no edge punctuation; written digits without separators
    cased: str
    starts_sentence: bool = False


def _pieces(words: Sequence[Word]) -> list[_Piece]:
    pieces: list[_Piece] = []
    sentence_start = True
    for index, word in enumerate(words):
        for chunk in word.text.replace("\u2019", "'").split():
            if all(char in _DASHES for char in chunk):
                pieces.append(_Piece(index, "-", "-"))
                continue
            cased = chunk.strip(_EDGE_PUNCTUATION)
            if cased:
                split = _split_chunk(cased)
                pieces.extend(
                    _Piece(index, text, cased_text, sentence_start and k == 0)
                    for k, (text, cased_text) in enumerate(split)
                )
                sentence_start = False
            if _closes_sentence(chunk):
                sentence_start = True
    return pieces


def _split_chunk(cased: str) -> list[tuple[str, str]]:
    lower = cased.lower()
    if len(lower) != len(cased):  # a few Unicode capitals lower-case to two characters
        cased = lower
    if _DIGIT_GROUPS.fullmatch(lower):
        digits = "".join(char for char in lower if char.isdigit())
        return [(digits, digits)]
    if _SPELLED_WRITTEN.fullmatch(lower):  # "J-O-H-N", "J.O.H.N"
        return [(lower[k], cased[k]) for k in range(0, len(lower), 2)]
    if "-" in lower and lower not in NATO:
        parts = lower.split("-")
        if lower == "e-mail":
            return [("email", "email")]
        if all(_is_number_word(part) for part in parts):  # "twenty-three"
            return [(part, part) for part in parts]
    return [(lower, cased)]


def _is_number_word(text: str) -> bool:
    return text in UNITS or text in TEENS or text in TENS or text in MULTIPLIERS


def _adjacency(pieces: Sequence[_Piece], words: Sequence[Word], max_gap_s: float) -> list[bool]:
    """Whether each piece follows the previous one without a pause longer than ``max_gap_s``."""
    adjacent = [False] * len(pieces)
    for k in range(1, len(pieces)):
        before, after = words[pieces[k - 1].word], words[pieces[k].word]
        adjacent[k] = pieces[k - 1].word == pieces[k].word or after.start - before.end <= max_gap_s
    return adjacent


# --- drafts: tokens before they are placed in the text ------------------------------------------------


@dataclass(repr=False)
class _Draft:
    kind: TokenKind
    text: str
    cased: str
    char_words: list[int]  # the source word of each character
    reading: Reading | None = None
    starts_sentence: bool = False


def _drafts(pieces: Sequence[_Piece], adjacent: Sequence[bool]) -> list[_Draft]:
    ordinals = _date_ordinals(pieces)
    texts = ["" if index in ordinals else piece.text for index, piece in enumerate(pieces)]
    runs = {run.first: run for run in find_number_runs(texts, adjacent)}
    taken = set(ordinals)
    for run in runs.values():
        taken.update(range(run.first, run.last + 1))
    letters = _letter_runs(pieces, adjacent, taken)
    drafts: list[_Draft] = []
    index = 0
    while index < len(pieces):
        if index in runs:
            drafts.append(_digits_draft(pieces, runs[index]))
            index = runs[index].last + 1
        elif index in ordinals:
            last, day = ordinals[index]
            drafts.append(_ordinal_draft(pieces, index, last, day))
            index = last + 1
        elif index in letters:
            last, spelled, words = letters[index]
            drafts.append(_Draft(TokenKind.LETTERS, spelled, spelled.upper(), words))
            index = last + 1
        else:
            drafts.append(_plain_draft(pieces[index]))
            index += 1
    return drafts


def _digits_draft(pieces: Sequence[_Piece], run: NumberRun) -> _Draft:
    words = [pieces[piece].word for piece in run.char_pieces]
    return _Draft(TokenKind.DIGITS, run.digits, run.digits, words, run.reading)


def _plain_draft(piece: _Piece) -> _Draft:
    text = piece.text
    if _WRITTEN_EMAIL.fullmatch(text):
        kind = TokenKind.EMAIL
    elif _HAS_DIGIT.search(text):
        kind = TokenKind.WRITTEN
    else:
        kind = TokenKind.WORD
    return _Draft(kind, text, piece.cased, [piece.word] * len(text), starts_sentence=piece.starts_sentence)


# --- dates: "march fifth", "the twenty first of may" --------------------------------------------------


def _date_ordinals(pieces: Sequence[_Piece]) -> dict[int, tuple[int, int]]:
    """Ordinals that name a day of a month, by first piece: (last piece, day).

    Only beside a month name: elsewhere "first" is just a word ("my first name is").
    """
    found: dict[int, tuple[int, int]] = {}
    index = 0
    while index < len(pieces):
        day, last = _ordinal_at(pieces, index)
        if day is not None and _beside_month(pieces, index, last):
            found[index] = (last, day)
            index = last + 1
        else:
            index += 1
    return found


def _ordinal_at(pieces: Sequence[_Piece], index: int) -> tuple[int | None, int]:
    text = pieces[index].text
    written = _WRITTEN_ORDINAL.fullmatch(text)
    if written:
        return int(written.group(1)), index
    if text in ORDINAL_WORDS:
        return ORDINAL_WORDS[text], index
    following = pieces[index + 1].text if index + 1 < len(pieces) else ""
    if text in TENS and ORDINAL_WORDS.get(following, 10) < 10:  # "twenty first"
        return TENS[text] + ORDINAL_WORDS[following], index + 1
    return None, index


def _beside_month(pieces: Sequence[_Piece], first: int, last: int) -> bool:
    before = [piece.text for piece in pieces[max(0, first - 2) : first]]
    after = [piece.text for piece in pieces[last + 1 : last + 3]]
    month_before = bool(before) and (before[-1] in MONTHS or (before[-1] == "the" and before[0] in MONTHS))
    month_after = len(after) == 2 and after[0] == "of" and after[1] in MONTHS
    return month_before or month_after


def _ordinal_draft(pieces: Sequence[_Piece], first: int, last: int, day: int) -> _Draft:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    text = f"{day}{suffix}"
    words = [pieces[first].word] * (len(text) - 1) + [pieces[last].word]
    return _Draft(TokenKind.ORDINAL, text, text, words)


# --- spelled letters: "j o h n", "J-O-H-N", "juliet oscar hotel november", "m for mike" ----------------


@dataclass(frozen=True, repr=False)
class _Letter:
    first: int
    last: int
    letter: str
    single: bool  # said as the letter itself ("j", "m for mike"), not only as a NATO word


def _letter_runs(
    pieces: Sequence[_Piece], adjacent: Sequence[bool], taken: set[int]
) -> dict[int, tuple[int, str, list[int]]]:
    """Runs of spelled letters, by first piece: (last piece, the letters, the word of each letter)."""
    letters = _letters(pieces, taken)
    found: dict[int, tuple[int, str, list[int]]] = {}
    run: list[_Letter] = []
    for letter in [*letters, None]:
        if letter is not None and run and run[-1].last + 1 == letter.first and adjacent[letter.first]:
            run.append(letter)
            continue
        for part in _strong_parts(run):
            words = [pieces[member.first].word for member in part]
            found[part[0].first] = (part[-1].last, "".join(member.letter for member in part), words)
        run = [letter] if letter is not None else []
    return found


def _letters(pieces: Sequence[_Piece], taken: set[int]) -> list[_Letter]:
    letters: list[_Letter] = []
    index = 0
    while index < len(pieces):
        text = pieces[index].text
        if index in taken:
            index += 1
            continue
        named = _named_letter(pieces, index, taken)
        if named is not None:
            letters.append(named)
            index = named.last + 1
            continue
        if len(text) == 1 and text.isalpha():
            letters.append(_Letter(index, index, text, single=True))
        elif text in NATO:
            letters.append(_Letter(index, index, NATO[text], single=False))
        index += 1
    return letters


def _named_letter(pieces: Sequence[_Piece], index: int, taken: set[int]) -> _Letter | None:
    """ "m as in mike", "m for mike": the letter, named by a word that starts with it."""
    letter = pieces[index].text
    if len(letter) != 1 or not letter.isalpha():
        return None
    for namer in LETTER_NAMERS:
        end = index + len(namer) + 1
        if end >= len(pieces) or tuple(piece.text for piece in pieces[index + 1 : end]) != namer:
            continue
        naming = pieces[end].text
        if naming.startswith(letter) and naming.isalpha() and not taken & set(range(index, end + 1)):
            return _Letter(index, end, letter, single=True)
    return None


def _strong_parts(run: list[_Letter]) -> list[list[_Letter]]:
    """The parts of a run of letter candidates that really are spelling.

    "a" and "i" are everyday words: they count only beside another single letter. A run needs two single
    letters, or three NATO words (two could be chat: "golf hotel").
    """
    kept: list[_Letter | None] = []
    for k, member in enumerate(run):
        weak = member.single and member.letter in _WEAK_LETTERS and member.first == member.last
        beside = [run[j] for j in (k - 1, k + 1) if 0 <= j < len(run)]
        kept.append(None if weak and not any(other.single for other in beside) else member)
    parts: list[list[_Letter]] = []
    current: list[_Letter] = []
    for candidate in [*kept, None]:
        if candidate is not None:
            current.append(candidate)
            continue
        singles = [m for m in current if m.single]
        strong = [m for m in singles if m.letter not in _WEAK_LETTERS or m.first != m.last]
        if (len(singles) >= 2 and strong) or len(current) >= 3:
            parts.append(current)
        current = []
    return parts


# --- e-mail: "john dot smith at gmail dot com" --------------------------------------------------------

_EMAIL_PARTS = frozenset({TokenKind.WORD, TokenKind.LETTERS, TokenKind.DIGITS, TokenKind.WRITTEN})


def _email_addresses(drafts: list[_Draft]) -> list[_Draft]:
    """Join spoken e-mail addresses into one EMAIL draft each.

    "at" becomes "@" only when a domain follows ("gmail dot com", "gmail.com"): "I live at twelve main
    street" stays as it is. The last "at" is tried first, so "email me at john at gmail dot com" keeps
    "john@gmail.com" whole.
    """
    index = len(drafts) - 1
    while index >= 0:
        address = _address_around(drafts, index)
        if address is not None:
            first, last = address
            drafts[first : last + 1] = [_join_address(drafts[first : last + 1])]
            index = first
        index -= 1
    return drafts


def _is_part(drafts: Sequence[_Draft], index: int) -> bool:
    if not 0 <= index < len(drafts) or drafts[index].kind not in _EMAIL_PARTS:
        return False
    return drafts[index].text not in EMAIL_JOINERS and drafts[index].text != "at"


def _address_around(drafts: Sequence[_Draft], at: int) -> tuple[int, int] | None:
    if drafts[at].text != "at" or not _is_part(drafts, at - 1) or not _is_part(drafts, at + 1):
        return None
    last = at + 1
    while last + 2 < len(drafts) and drafts[last + 1].text == "dot" and _is_part(drafts, last + 2):
        last += 2
    if last == at + 1 and not re.fullmatch(r"[\w\-]+(?:\.[\w\-]+)+", drafts[at + 1].text):
        return None  # no domain: "at" is just "at"
    first = at - 1
    while first - 2 >= 0 and drafts[first - 1].text in EMAIL_JOINERS and _is_part(drafts, first - 2):
        first -= 2
    return first, last


def _join_address(drafts: Sequence[_Draft]) -> _Draft:
    text = ""
    words: list[int] = []
    for draft in drafts:
        symbol = "@" if draft.text == "at" else EMAIL_JOINERS.get(draft.text)
        if symbol is not None and draft.kind is TokenKind.WORD:
            text += symbol
            words.append(draft.char_words[0])
        else:
            text += draft.text
            words.extend(draft.char_words)
    return _Draft(TokenKind.EMAIL, text, text, words)


# --- the text ---------------------------------------------------------------------------------------------


def _without_sentence_capital(draft: _Draft) -> str:
    """Whisper capitalises every sentence's first word: only other capitals hint at a name."""
    first = draft.cased[:1].lower()
    if not draft.starts_sentence or draft.cased == "I" or len(first) != 1:
        return draft.cased
    return first + draft.cased[1:]


def _assemble(drafts: Sequence[_Draft], words: tuple[Word, ...]) -> SpokenText:
    text: list[str] = []
    cased: list[str] = []
    ner: list[str] = []
    sources: list[int] = []
    tokens: list[SpokenToken] = []
    position = 0
    for draft in drafts:
        if tokens:
            text.append(" ")
            cased.append(" ")
            ner.append(" ")
            sources.append(-1)
            position += 1
        start = position
        text.append(draft.text)
        cased.append(draft.cased)
        ner.append(_without_sentence_capital(draft))
        sources.extend(draft.char_words)
        position += len(draft.text)
        first, last = min(draft.char_words), max(draft.char_words)
        tokens.append(SpokenToken(draft.kind, start, position, first, last, draft.reading))
    return SpokenText("".join(text), "".join(cased), "".join(ner), tuple(sources), tuple(tokens), words)
