"""Plain talk: words that are never personal data on a call, so masking laid over them may be taken back.

A cue span masks from the cue until its value is over, and masks provisionally while it is open. Once the
words are final, masking is taken back only from words on this list — everyday words, cue words and
fillers that cannot be part of a value — never from a word the recognizer was unsure of ("prep" heard
inside an expiry date), a name, a number or a letter, an everyday word right beside a digit (Whisper wrote
a spoken "two" as "I'm"), nor from silence between words (speech the recognizer missed may be there).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Collection, Sequence

from bleepline.pii.cues import FILLERS, RULES
from bleepline.pii.numbers import MULTIPLIERS, REPEATS, SOUNDALIKES, TEENS, TENS, UNITS
from bleepline.pii.spoken import EMAIL_JOINERS, MONTHS, NATO, ORDINAL_WORDS, ends_sentence, word_set
from bleepline.timeline import Word

#: Said on calls around personal data, and never part of it.
_CALL_TALK = word_set(
    "yes yeah yep no nope okay ok great thanks thank sure hello hi hey perfect right alright good fine "
    "sorry excellent lovely cheers bye goodbye wonderful correct exactly number numbers code date birth "
    "address email name surname spell spelled digits digit long short security social account card "
    "hash pound star key keys keypad press enter type dial mr mrs ms miss dr sir madam"
)
#: Letters that are everyday words too ("a bit", "I think"), and ordinals said far more often outside dates
#: than in them ("first name", "one second"): not values by themselves. In a spelling or a date, the
#: letters, numbers and months beside them are.
_EVERYDAY = frozenset({"a", "i", "first", "second"})
_EDGE = ".,?!;:\"'()[]{}<>*#-\u2013\u2014\u2026\u201c\u201d\u2018\u2019\u00ab\u00bb\u00bf\u00a1"
_DIGIT = re.compile(r"\d")
_NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS) | frozenset(MULTIPLIERS)


@functools.cache
def _cue_words() -> frozenset[str]:
    """Every word of every cue phrase ("card", "number", "security", "code", ...)."""
    return frozenset(
        word for rule in RULES for phrase in rule.phrases for word in re.findall(r"[a-z]+", phrase)
    )


@functools.cache
def _plain_words() -> frozenset[str]:
    # spaCy is loaded with the detector anyway; imported here so that importing this module costs nothing.
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | _CALL_TALK | FILLERS | _cue_words()


def might_be_value(word: Word, previous: Word | None) -> bool:
    """Whether ``word`` could be part of a value whatever the words around it: a digit, a number word or
    a sound-alike of one, a letter or a NATO word, e-mail punctuation, a month or an ordinal, or a
    capitalised word inside a sentence (Whisper capitalises names). ``previous`` is the word before it.
    """
    text = word.text.strip()
    if _DIGIT.search(text) or "@" in text:
        return True
    bare = text.strip(_EDGE)
    lower = bare.lower()
    if lower in _EVERYDAY:
        return False
    if len(bare) == 1 or lower in NATO or lower in EMAIL_JOINERS or lower in REPEATS:
        return True
    if any(part in _NUMBER_WORDS for part in lower.split("-")):
        return True
    if lower in SOUNDALIKES or lower in ORDINAL_WORDS or lower in MONTHS:
        return True
    if not bare[:1].isupper() or previous is None or ends_sentence(previous):
        return False
    # Whisper also capitalises a sentence when it did not close the one before: "... 1111 It expires".
    return lower.split("'")[0] not in _plain_words()


def is_number(word: Word) -> bool:
    """Whether ``word`` is a number and nothing else: digits ("5", "4,111", "$100") or number words
    ("five", "twenty-four"), not a letter, a month or a capitalised word that could be a name."""
    bare = word.text.strip().strip(_EDGE).lower()
    if not bare:
        return False
    if _DIGIT.search(bare):
        return not any(ch.isalpha() for ch in bare)
    return all(part in _NUMBER_WORDS for part in bare.split("-"))


_YEAR = re.compile(r"(19|20)\d\d")
_CLOCK_OR_AMOUNT = re.compile(r"\d{1,2}:\d\d|[$\u00a3\u20ac]\d[\d,.]*|\d[\d,.]*%")


def is_everyday_number(word: Word) -> bool:
    """Whether ``word`` is a number as everyday talk says one: number words, a numeral of one or two
    digits, a year, a clock time or an amount. Not a numeral of three or more digits otherwise ("737",
    "014"): Whisper writes a security code or a group of a card number read out that way."""
    if not is_number(word):
        return False
    bare = word.text.strip().strip(_EDGE)
    digits = sum(ch.isdigit() for ch in bare)
    return digits <= 2 or bool(_YEAR.fullmatch(bare) or _CLOCK_OR_AMOUNT.fullmatch(bare))


class Talk(enum.Enum):
    """What a final word is, for taking back provisional masking over it."""

    PLAIN = "plain"  # plainly not personal data: its masking may be taken back
    VALUE = "value"  # could be part of a value: stays masked, and so do its loose edges
    UNKNOWN = "unknown"  # neither (an unusual word, a mishearing): stays masked


def classify(words: Sequence[Word], no_value: Collection[int] = ()) -> list[Talk]:
    """What each of ``words`` (consecutive, in order) is. ``no_value`` are indices of numbers known to be
    no part of any value (the detector had every word that could join them to one): plain, and no
    reason to keep the words beside them."""
    kinds: list[Talk] = []
    for index, word in enumerate(words):
        previous = words[index - 1] if index else None
        following = words[index + 1] if index + 1 < len(words) else None
        if index in no_value:
            kinds.append(Talk.PLAIN)
        elif _counts_digits(word, following):
            kinds.append(Talk.PLAIN)  # "the three digits on the back", "a four digit pin"
        elif bare(word) in SOUNDALIKES:
            # "for" is a digit between digits ("four for two"), and a plain word elsewhere ("ask for").
            beside = (w for w in (previous, following) if w is not None)
            numeric = any(might_be_value(w, None) and bare(w) not in SOUNDALIKES for w in beside)
            kinds.append(Talk.VALUE if numeric else _plain_or_unknown(word))
        elif might_be_value(word, previous):
            kinds.append(Talk.VALUE)
        else:
            kinds.append(_plain_or_unknown(word))
    # Beside a value, Whisper writes a misheard digit as an everyday word ("I'm" for "two" before "5"):
    # there only fillers and cue words ("my number is 5...") stay plain.
    for index, word in enumerate(words):
        if index in no_value:
            continue  # known to be no value, beside whatever
        if kinds[index] is Talk.PLAIN and _beside_value(words, kinds, index) and not _filler(word):
            kinds[index] = Talk.UNKNOWN
    return kinds


#: A word this close to a value word is beside it.
_BESIDE_S = 0.5


def _beside_value(words: Sequence[Word], kinds: Sequence[Talk], index: int) -> bool:
    word = words[index]
    before = index > 0 and kinds[index - 1] is Talk.VALUE and word.start - words[index - 1].end <= _BESIDE_S
    after = (
        index + 1 < len(words)
        and kinds[index + 1] is Talk.VALUE
        and words[index + 1].start - word.end <= _BESIDE_S
    )
    return before or after


#: Plain even right beside a value: what is said around a number rather than instead of one of its digits.
_AROUND_VALUES = word_set("and then thanks thank great perfect")


@functools.cache
def _fillers() -> frozenset[str]:
    return FILLERS | _cue_words() | _AROUND_VALUES


def _filler(word: Word) -> bool:
    return bare(word) in _fillers()


def _plain_or_unknown(word: Word) -> Talk:
    return Talk.PLAIN if bare(word).split("'")[0] in _plain_words() else Talk.UNKNOWN


def _counts_digits(word: Word, following: Word | None) -> bool:
    """A number word that says how many digits a value has, not one of them."""
    return (
        following is not None
        and bare(word) in _NUMBER_WORDS
        and bare(following).split("-")[0] in ("digit", "digits")
    )


def bare(word: Word) -> str:
    """``word`` as it is compared with word lists: lower case, without the punctuation around it."""
    return word.text.strip().strip(_EDGE).lower()
